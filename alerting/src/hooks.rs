//! Delivering one message (a group of notifications) through one hook:
//! HTTP POST for webhook, PagerDuty and Slack; a child process for exec.

use std::process::Stdio;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

use super::config::{Hook, HookKind};
use super::notify::{Notification, pagerduty_event, slack_body, webhook_body};

/// The header carrying the signature: `sha256=<hex>`, the HMAC-SHA256 of
/// `<timestamp>.<body>`.
pub const SIGNATURE_HEADER: &str = "X-Nightjar-Signature";

/// The header carrying the signed timestamp (Unix seconds of the attempt),
/// so a receiver can refuse a replayed request (older than a few minutes).
pub const TIMESTAMP_HEADER: &str = "X-Nightjar-Timestamp";

/// Most bytes of a command's stderr kept in the error of a failed exec
/// hook (it goes into the outbox and the history).
const MAX_STDERR_BYTES: usize = 1024;

/// How a delivery went.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hook took it.
    Accepted,
    /// Try again later (network error, timeout, 5xx, 429).
    Retry(String),
    /// The hook refused it for good (4xx): retrying cannot help.
    Rejected(String),
}

/// `sha256=<hex of HMAC-SHA256(secret, "<timestamp>." + body)>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let prefix = format!("{timestamp}.");
    format!("sha256={}", hmac_hex(secret, &[prefix.as_bytes(), body]))
}

/// Hex HMAC-SHA256 of the concatenated `parts`.
fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn post(
    client: &reqwest::Client,
    hook: &Hook,
    url: &str,
    body: Vec<u8>,
    secret: Option<&str>,
) -> Outcome {
    let mut request = client
        .post(url)
        .timeout(hook.timeout)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("nightjar/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(secret) = secret {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        request = request
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(secret, timestamp, &body));
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Outcome::Accepted
            } else if status.is_redirection() {
                // The client follows none: the signed body would go to
                // wherever the receiver points.
                Outcome::Rejected(format!(
                    "HTTP {status}: redirects are not followed; set the hook's url to where it leads"
                ))
            } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                let text = response.text().await.unwrap_or_default();
                Outcome::Rejected(format!(
                    "HTTP {status}: {}",
                    text.chars().take(200).collect::<String>()
                ))
            } else {
                Outcome::Retry(format!("HTTP {status}"))
            }
        }
        // Without the URL: a Slack or PagerDuty URL is a credential, and
        // this text goes to logs, the outbox and the history.
        Err(error) => Outcome::Retry(error_chain(&error.without_url())),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn exec(hook: &Hook, command: &[String], body: Vec<u8>) -> Outcome {
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Outcome::Retry(format!("cannot run {:?}: {e}", command[0])),
    };
    let mut stdin = child.stdin.take().expect("stdin piped");
    let run = async move {
        // A command that ignores stdin may close it early; that is its business.
        let _ = stdin.write_all(&body).await;
        drop(stdin);
        child.wait_with_output().await
    };
    match tokio::time::timeout(hook.timeout, run).await {
        Err(_) => Outcome::Retry(format!(
            "{:?} did not finish within {:?}",
            command[0], hook.timeout
        )),
        Ok(Err(e)) => Outcome::Retry(format!("{:?}: {e}", command[0])),
        Ok(Ok(out)) if out.status.success() => Outcome::Accepted,
        Ok(Ok(out)) => {
            let kept = &out.stderr[..out.stderr.len().min(MAX_STDERR_BYTES)];
            let stderr = String::from_utf8_lossy(kept);
            Outcome::Retry(format!(
                "{:?} exited with {}: {}{}",
                command[0],
                out.status,
                stderr.trim(),
                if out.stderr.len() > MAX_STDERR_BYTES {
                    " …"
                } else {
                    ""
                }
            ))
        }
    }
}

/// Delivers `group` (notifications of one rule and event) through `hook`.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &Hook,
    group: &[&Notification],
    now_ms: i64,
) -> Outcome {
    let to_vec = |v: serde_json::Value| serde_json::to_vec(&v).expect("JSON serializes");
    match &hook.kind {
        HookKind::Webhook { url, secret } => {
            post(
                client,
                hook,
                url,
                to_vec(webhook_body(group, now_ms)),
                secret.as_deref(),
            )
            .await
        }
        HookKind::Slack { url } => post(client, hook, url, to_vec(slack_body(group)), None).await,
        HookKind::PagerDuty { url, routing_key } => {
            // PagerDuty takes one event per request; it deduplicates by
            // dedup_key, so resending the whole group after a partial failure is safe.
            for n in group {
                let outcome = post(
                    client,
                    hook,
                    url,
                    to_vec(pagerduty_event(n, routing_key)),
                    None,
                )
                .await;
                if outcome != Outcome::Accepted {
                    return outcome;
                }
            }
            Outcome::Accepted
        }
        HookKind::Exec { command } => {
            exec(hook, command, to_vec(webhook_body(group, now_ms))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex_of_timestamp_dot_body() {
        // RFC 4231 test case 2, fed in two parts.
        assert_eq!(
            hmac_hex("Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature("Jefe", 1_700_000_000, b"{}"),
            format!("sha256={}", hmac_hex("Jefe", &[b"1700000000.{}"]))
        );
        assert_ne!(
            signature("Jefe", 1_700_000_000, b"{}"),
            signature("Jefe", 1_700_000_001, b"{}"),
            "another time, another signature: a replay shows"
        );
    }

    fn hook(command: &[&str]) -> Hook {
        Hook {
            name: "x".into(),
            kind: HookKind::Exec {
                command: command.iter().map(|s| s.to_string()).collect(),
            },
            timeout: std::time::Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn exec_passes_json_on_stdin_and_judges_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let n = super::super::notify::tests_support::sample(
            super::super::notify::NotifyEvent::Firing,
            Some(super::super::state::Level::Critical),
        );
        let script = format!("cat > {}", out.display());
        let h = hook(&["sh", "-c", &script]);
        let HookKind::Exec { command } = &h.kind else {
            unreachable!()
        };
        assert_eq!(
            exec(&h, command, b"{\"a\":1}".to_vec()).await,
            Outcome::Accepted
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"a\":1}");
        let client = reqwest::Client::new();
        assert_eq!(deliver(&client, &h, &[&n], 0).await, Outcome::Accepted);
        let body: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(body["alerts"][0]["rule"], "disk_full");
        let failing = hook(&["sh", "-c", "echo broken >&2; exit 3"]);
        let HookKind::Exec { command } = &failing.kind else {
            unreachable!()
        };
        let Outcome::Retry(e) = exec(&failing, command, Vec::new()).await else {
            panic!()
        };
        assert!(e.contains("broken"), "{e}");
        let mut slow = hook(&["sleep", "5"]);
        slow.timeout = std::time::Duration::from_millis(100);
        let HookKind::Exec { command } = &slow.kind else {
            unreachable!()
        };
        let Outcome::Retry(e) = exec(&slow, command, Vec::new()).await else {
            panic!()
        };
        assert!(e.contains("did not finish"), "{e}");
    }

    fn webhook(url: &str) -> Hook {
        Hook {
            name: "web".into(),
            kind: HookKind::Webhook {
                url: url.into(),
                secret: Some("k".into()),
            },
            timeout: std::time::Duration::from_secs(2),
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_redirect_is_refused_and_the_signed_body_goes_nowhere_else() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let elsewhere = std::sync::Arc::new(AtomicUsize::new(0));
        let hits = elsewhere.clone();
        let other = axum::Router::new().fallback(move || {
            hits.fetch_add(1, Ordering::Relaxed);
            async { "taken" }
        });
        let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}/steal", other_listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(other_listener, other).await });
        let redirecting = axum::Router::new().fallback(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, redirecting).await });
        let n = super::super::notify::tests_support::sample(
            super::super::notify::NotifyEvent::Firing,
            Some(super::super::state::Level::Critical),
        );
        let Outcome::Rejected(e) = deliver(&client(), &webhook(&url), &[&n], 0).await else {
            panic!("a 307 must be a refusal")
        };
        assert!(e.contains("redirects are not followed"), "{e}");
        assert_eq!(elsewhere.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_failed_delivery_does_not_record_the_hooks_url() {
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/T000/B000/SECRET-PATH",
            dead.local_addr().unwrap()
        );
        drop(dead);
        let n = super::super::notify::tests_support::sample(
            super::super::notify::NotifyEvent::Firing,
            Some(super::super::state::Level::Critical),
        );
        let Outcome::Retry(e) = deliver(&client(), &webhook(&url), &[&n], 0).await else {
            panic!("a refused connection is retried")
        };
        assert!(
            !e.contains("SECRET-PATH") && !e.contains("/services/"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_exec_hooks_stderr_is_kept_short() {
        let noisy = hook(&[
            "sh",
            "-c",
            "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1",
        ]);
        let HookKind::Exec { command } = &noisy.kind else {
            unreachable!()
        };
        let Outcome::Retry(e) = exec(&noisy, command, Vec::new()).await else {
            panic!()
        };
        assert!(e.len() < 2 * MAX_STDERR_BYTES, "{} bytes kept", e.len());
        assert!(e.ends_with('…'), "{e}");
    }
}
