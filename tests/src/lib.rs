//! Harness for the end-to-end tests: spawns the real `nightjar-collector`,
//! `nightjar-agent` and `nightjar` binaries on free loopback ports with temp
//! dirs, and polls with deadlines instead of sleeping.
//!
//! The binaries are looked up next to the test executable (`target/<profile>`);
//! build them first with `cargo build --workspace --bins` (the README's test
//! command does).

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long tests wait for something that should happen within seconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago and that no other test of
/// this process has been given. (The kernel may hand a just-released
/// ephemeral port to a parallel test; two collectors on one port would make
/// one test talk to the other's collector.)
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().expect("poisoned");
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding an ephemeral port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Calls `f` every 100 ms until it returns `Some`, or panics with `what`
/// after `DEADLINE`.
pub fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_for(what, DEADLINE, f)
}

/// Like [`poll`] with an explicit deadline.
pub fn poll_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command that is expected to exit by itself within `DEADLINE`.
pub fn run_to_exit(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a nightjar binary");
    poll("the process to exit", || {
        child.try_wait().expect("waiting").map(|_| ())
    });
    child.wait_with_output().expect("collecting output")
}

/// A child process that is killed when dropped, with its stderr lines kept.
pub struct Proc {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `cmd` with stderr captured (for binaries started through a
    /// wrapper, e.g. `setpriv`; the helpers below cover the plain cases).
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a nightjar binary");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("piped stderr");
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().expect("poisoned").push(line);
            }
        });
        Proc { child, stderr }
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("poisoned").clone()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("waiting").is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running collector.
pub struct Collector {
    /// The process.
    pub proc: Proc,
    /// Its listen address.
    pub addr: SocketAddr,
}

impl Collector {
    /// Starts a collector on `port` with `data_dir` and waits until it
    /// accepts connections.
    pub fn start(port: u16, data_dir: &Path) -> Collector {
        Collector::start_with(port, data_dir, &[])
    }

    /// Like [`Collector::start`], with extra arguments (e.g. `--config`).
    pub fn start_with(port: u16, data_dir: &Path, extra: &[&str]) -> Collector {
        Collector::start_env(port, data_dir, extra, &[])
    }

    /// Like [`Collector::start_with`], with extra environment variables.
    pub fn start_env(
        port: u16,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Collector {
        Collector::start_command(
            Command::new(bin("nightjar-collector")),
            port,
            data_dir,
            extra,
            env,
        )
    }

    /// Like [`Collector::start_env`], running `cmd` (the collector binary,
    /// or a wrapper that runs it: [`small_fs::SmallFs::command`]).
    pub fn start_command(
        mut cmd: Command,
        port: u16,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Collector {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut proc = Proc::spawn(
            cmd.arg("--listen")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                // An ephemeral status port: parallel tests must not collide.
                .args(["--http-listen", "127.0.0.1:0"])
                .args(extra)
                .envs(env.iter().copied()),
        );
        // Wait for this collector's own "ready" line, not just for something
        // to accept on the port: a collector that failed to bind must not
        // pass for one that listens.
        poll("the collector to listen", || {
            assert!(
                !proc.has_exited(),
                "collector exited: {:?}",
                proc.stderr_lines()
            );
            proc.stderr_lines()
                .iter()
                .any(|l| l.contains("collector ready"))
                .then(|| TcpStream::connect(addr).ok())
                .flatten()
                .map(|_| ())
        });
        Collector { proc, addr }
    }

    /// The collector's HTTP port (status, gRPC-web, the Prometheus APIs).
    pub fn http_addr(&self) -> SocketAddr {
        poll("the collector's HTTP port", || {
            status_addr(&self.proc.stderr_lines())
        })
    }

    /// The collector's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `nightjar --collector <url> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_to_exit(
            Command::new(bin("nightjar"))
                .arg("--collector")
                .arg(self.url())
                .args(args),
        )
    }

    /// The row of `host` in `nightjar status --json`, if listed.
    pub fn status_row(&self, host: &str) -> Option<serde_json::Value> {
        self.cli_json(&["status"])
            .as_array()?
            .iter()
            .find(|r| r["host"] == host)
            .cloned()
    }

    /// Runs `nightjar --collector <url> ARGS --json` and parses stdout;
    /// panics with stderr if the command fails.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(&[args, &["--json"]].concat());
        assert!(
            out.status.success(),
            "nightjar {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("nightjar --json prints JSON")
    }
}

/// Runs a collector with `config` that is expected to refuse to start (a
/// bad rule or service file); its output, for the error it printed.
pub fn collector_refusing_to_start(config: &Path, data_dir: &Path) -> Output {
    run_to_exit(
        Command::new(bin("nightjar-collector"))
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(config),
    )
}

/// Starts an agent sending to `collector_url` every second, with JSON debug
/// logs on stderr (so tests can read its batch and ack events).
pub fn start_agent(collector_url: &str, host: &str, state_dir: &Path, extra: &[&str]) -> Proc {
    start_agent_env(collector_url, host, state_dir, extra, &[])
}

/// Like [`start_agent`], with extra environment variables.
pub fn start_agent_env(
    collector_url: &str,
    host: &str,
    state_dir: &Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> Proc {
    start_agent_command(
        Command::new(bin("nightjar-agent")),
        collector_url,
        host,
        state_dir,
        extra,
        env,
    )
}

/// Like [`start_agent_env`], running `cmd` (the agent binary, or a wrapper
/// that runs it: [`small_fs::SmallFs::command`]).
pub fn start_agent_command(
    mut cmd: Command,
    collector_url: &str,
    host: &str,
    state_dir: &Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> Proc {
    Proc::spawn(
        cmd.env("RUST_LOG", "nightjar_agent=debug,info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args([
                "--collector",
                collector_url,
                "--interval",
                "1s",
                "--host",
                host,
            ])
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            // Tests run agents in parallel: statsd only where a test asks.
            .args(if extra.contains(&"--statsd") {
                &[][..]
            } else {
                &["--statsd", "off"][..]
            })
            .args(extra),
    )
}

/// The token-file line of `token` (role, name), made by `nightjar token
/// hash` the way operators do.
pub fn token_line(role: &str, name: &str, token: &str) -> String {
    let mut child = Command::new(bin("nightjar"))
        .args(["token", "hash", role, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nightjar token hash runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("token written");
    let out = child.wait_with_output().expect("token hash output");
    assert!(
        out.status.success(),
        "nightjar token hash {role} {name} failed"
    );
    String::from_utf8(out.stdout).expect("UTF-8 token line")
}

/// The JSON log events with the given message.
pub fn log_events(lines: &[String], message: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// A host name unique to this test process.
pub fn unique_host(test: &str) -> String {
    format!("e2e-{test}-{}", std::process::id())
}

/// What an agent's debug log says it did: (seq → timestamp_ms) of every
/// batch it spooled, and the highest seq the collector acked.
pub fn agent_progress(lines: &[String]) -> (std::collections::BTreeMap<u64, i64>, u64) {
    let queued = log_events(lines, "batch queued")
        .iter()
        .filter_map(|e| Some((e["seq"].as_u64()?, e["timestamp_ms"].as_i64()?)))
        .collect();
    let acked = log_events(lines, "ack received")
        .iter()
        .filter_map(|e| e["acked_through"].as_u64())
        .max()
        .unwrap_or(0);
    (queued, acked)
}

/// The raw timestamps stored for `metric` of `host` over the last hour,
/// asserting there is exactly one such series.
pub fn stored_timestamps(collector: &Collector, metric: &str, host: &str) -> Vec<i64> {
    let v = collector.cli_json(&[
        "query", metric, "--host", host, "--since", "1h", "--step", "0",
    ]);
    let series = v.as_array().expect("a list of series");
    assert_eq!(
        series.len(),
        1,
        "expected one {metric} series for {host}: {v}"
    );
    series[0]["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p[0].as_i64().expect("timestamp"))
        .collect()
}

/// The newest raw value of `metric` of `host`, if any.
pub fn latest_value(collector: &Collector, metric: &str, host: &str) -> Option<f64> {
    let v = collector.cli_json(&[
        "query", metric, "--host", host, "--since", "1h", "--step", "0",
    ]);
    v.as_array()?.first()?["points"].as_array()?.last()?[1].as_f64()
}

/// The newest raw value of each series of `metric` for `host`, with the
/// series' labels.
pub fn latest_by_series(
    collector: &Collector,
    metric: &str,
    host: &str,
) -> Vec<(serde_json::Value, f64)> {
    let v = collector.cli_json(&[
        "query", metric, "--host", host, "--since", "1h", "--step", "0",
    ]);
    last_points(&v)
}

/// Each series of a `query --json` answer: its labels and its newest value.
pub fn last_points(answer: &serde_json::Value) -> Vec<(serde_json::Value, f64)> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let value = s["points"].as_array()?.last()?[1].as_f64()?;
            Some((s["labels"].clone(), value))
        })
        .collect()
}

/// The status port a daemon logged ("... ready" with `http_listen=ADDR`).
pub fn status_addr(lines: &[String]) -> Option<SocketAddr> {
    let line = lines.iter().find(|l| l.contains("HTTP status port"))?;
    let at = line.find("127.0.0.1:")?;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse().ok()
}

/// A plain HTTP/1.0 GET; (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A plain HTTP/1.0 POST; (status line, headers, body bytes).
pub fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (String, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, head, response[split + 4..].to_vec())
}

pub mod feeder;
pub mod notify;
pub mod pki;
pub mod prometheus;
pub mod proxy;
pub mod receiver;
pub mod remote_write;
pub mod small_fs;
