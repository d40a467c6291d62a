//! The three probes: an HTTP(S) request, a TCP connect, a command. Each
//! returns whether the target is up, or the reason it is not (one of
//! [`REASONS`], the `reason` label of `check_failures_total`) with detail
//! for the log.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;

/// Every failure reason.
pub const REASONS: [&str; 8] = [
    "timeout",
    "connect",
    "tls",
    "request",
    "status",
    "body",
    "exit_code",
    "spawn",
];

/// Why a probe failed: a reason from [`REASONS`] and the detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// One of [`REASONS`].
    pub reason: &'static str,
    /// What happened, for the log.
    pub detail: String,
}

fn fail(reason: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        reason,
        detail: detail.into(),
    }
}

/// Most body bytes read to look for `body_contains`.
const MAX_BODY: usize = 1024 * 1024;

/// What a check probes.
#[derive(Clone, Debug)]
pub enum Probe {
    /// An HTTP(S) request.
    Http {
        /// The method.
        method: reqwest::Method,
        /// The URL.
        url: reqwest::Url,
        /// The status that means up (None: any 2xx).
        expect_status: Option<u16>,
        /// A string the body must contain.
        body_contains: Option<String>,
    },
    /// A TCP connect to `host:port`.
    Tcp {
        /// The address.
        address: String,
    },
    /// A command; exit status 0 means up.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

impl Probe {
    /// The `type` label value.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Http { .. } => "http",
            Probe::Tcp { .. } => "tcp",
            Probe::Command { .. } => "command",
        }
    }

    /// Runs the probe once, giving up after `timeout`.
    pub async fn run(&self, client: &reqwest::Client, timeout: Duration) -> Result<(), Failure> {
        match tokio::time::timeout(timeout, self.run_unbounded(client)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(fail(
                "timeout",
                format!(
                    "no answer within {}",
                    nightjar_common::duration::format(timeout)
                ),
            )),
        }
    }

    async fn run_unbounded(&self, client: &reqwest::Client) -> Result<(), Failure> {
        match self {
            Probe::Http {
                method,
                url,
                expect_status,
                body_contains,
            } => {
                http(
                    client,
                    method,
                    url,
                    *expect_status,
                    body_contains.as_deref(),
                )
                .await
            }
            Probe::Tcp { address } => tokio::net::TcpStream::connect(address.as_str())
                .await
                .map(drop)
                .map_err(|e| fail("connect", format!("{address}: {e}"))),
            Probe::Command { argv } => command(argv).await,
        }
    }
}

async fn http(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &reqwest::Url,
    expect_status: Option<u16>,
    body_contains: Option<&str>,
) -> Result<(), Failure> {
    let mut response = client
        .request(method.clone(), url.clone())
        .send()
        .await
        .map_err(|e| {
            let reason = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                if format!("{e:?}").contains("certificate") || format!("{e:?}").contains("Tls") {
                    "tls"
                } else {
                    "connect"
                }
            } else {
                "request"
            };
            fail(reason, format!("{url}: {e}"))
        })?;
    let status = response.status().as_u16();
    let ok = match expect_status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    if !ok {
        let want = expect_status.map_or("2xx".to_owned(), |s| s.to_string());
        return Err(fail(
            "status",
            format!("{url}: status {status}, expected {want}"),
        ));
    }
    if let Some(needle) = body_contains {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail("request", format!("{url}: reading the body: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        if !String::from_utf8_lossy(&body).contains(needle) {
            return Err(fail(
                "body",
                format!("{url}: the body does not contain {needle:?}"),
            ));
        }
    }
    Ok(())
}

async fn command(argv: &[String]) -> Result<(), Failure> {
    let mut command = tokio::process::Command::new(&argv[0]);
    // The agent's unit gives it ambient capabilities (to read every
    // process's /proc files); a check's command must not inherit them.
    // SAFETY: the closure runs in the forked child before exec and only
    // makes one prctl system call, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| Ok(rustix::thread::clear_ambient_capability_set()?));
    }
    let mut child = command
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail("spawn", format!("{}: {e}", argv[0])))?;
    let pipe = child.stderr.take();
    let read_stderr = async {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = (&mut pipe).take(4096).read_to_end(&mut kept).await;
            // The rest is read and dropped, not left unread: closing the
            // pipe early would kill a chatty command with SIGPIPE, and a
            // healthy service would be reported down.
            let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
        }
        String::from_utf8_lossy(&kept).trim().to_owned()
    };
    let (stderr, status) = tokio::join!(read_stderr, child.wait());
    let status = status.map_err(|e| fail("spawn", format!("{}: {e}", argv[0])))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(
            "exit_code",
            format!("{}: {status}; stderr: {stderr:?}", argv[0]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::command;

    fn argv(script: &str) -> Vec<String> {
        ["sh", "-c", script].map(String::from).to_vec()
    }

    #[tokio::test]
    async fn a_command_writing_much_to_stderr_is_judged_by_its_exit_code() {
        // 100 KB to stderr, far past what is kept: not killed by SIGPIPE.
        let chatty = "head -c 100000 /dev/zero >&2";
        assert!(command(&argv(chatty)).await.is_ok());
        let failing = "head -c 100000 /dev/zero | tr '\\0' y >&2; exit 2";
        let error = command(&argv(failing)).await.unwrap_err();
        let text = format!("{error:?}");
        assert!(text.contains("exit status: 2"), "{text}");
        assert!(
            text.len() < 6_000,
            "stderr kept short: {} bytes",
            text.len()
        );
    }
}
