//! Debian's real `prometheus` (2.42) and `promtool`, started by hand on a
//! free loopback port with a temp TSDB, as the reference implementation
//! the Prometheus-ecosystem tests compare Nightjar with.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Proc, free_port, http_get, poll};

/// Whether `name` is on PATH; prints why a test skips if not.
pub fn have_tool(name: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!(
            "SKIP {test}: `{name}` is not installed (apt-get install prometheus prometheus-node-exporter; scripts/ensure-build-deps.sh does)"
        );
    }
    found
}

/// A running Prometheus server.
pub struct Prometheus {
    /// The process.
    pub proc: Proc,
    /// Its HTTP address.
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) in `dir`, with the
    /// remote-write receiver on, and waits until it is ready.
    pub fn start(dir: &Path, config: &str) -> Prometheus {
        Self::start_on(dir, config, free_port())
    }

    /// Like [`Prometheus::start`] on a given port (to restart on the same
    /// address).
    pub fn start_on(dir: &Path, config: &str, port: u16) -> Prometheus {
        std::fs::create_dir_all(dir).expect("prometheus dir");
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus config");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let proc = Proc::spawn(
            Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--log.level=warn"),
        );
        poll("prometheus to be ready", || {
            std::net::TcpStream::connect(addr).ok()?;
            (http_get(addr, "/-/ready").0 == 200).then_some(())
        });
        Prometheus { proc, addr }
    }

    /// The `data` of an instant query's answer at `time` (epoch seconds;
    /// now when None).
    pub fn query(&self, expr: &str, time: Option<f64>) -> serde_json::Value {
        let mut path = format!("/api/v1/query?query={}", url_encode(expr));
        if let Some(t) = time {
            path += &format!("&time={t}");
        }
        api_data(self.addr, &path)
    }
}

/// GETs a Prometheus-API path and returns its `data`, asserting success.
pub fn api_data(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, path);
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: {status} {body:?} is not JSON: {e}"));
    assert_eq!(v["status"], "success", "GET {path}: {status} {body}");
    v["data"].clone()
}

/// Percent-encodes a query parameter.
pub fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

/// Runs `promtool check metrics` on `page`: (exit code, its output).
pub fn promtool_check_metrics(page: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("page written");
    let out = child.wait_with_output().expect("promtool output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}
