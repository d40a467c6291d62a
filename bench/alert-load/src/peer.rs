//! The peer: Debian's Prometheus + Alertmanager, started by hand on
//! loopback with their packaged timing (scrape and evaluation every 15 s as
//! in /etc/prometheus/prometheus.yml, group_wait 30 s as in
//! alertmanager.yml), paging the same receiver.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;

use super::{Killed, THRESHOLD, free_port};

/// The running peer.
pub struct Peer {
    _prometheus: Killed,
    _alertmanager: Killed,
    versions: String,
}

fn version(exe: &str) -> String {
    Command::new(exe)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

impl Peer {
    /// Writes the configs into `dir` and starts both.
    pub fn start(dir: &Path, receiver_port: u16, rules: usize) -> anyhow::Result<Peer> {
        let am_port = free_port()?;
        let prom_port = free_port()?;
        let mut rule_yaml = String::from("groups:\n- name: bench\n  rules:\n");
        for r in 0..rules {
            rule_yaml.push_str(&format!(
                "  - alert: bench_{r}\n    expr: bench_gauge_{r} > {THRESHOLD}\n"
            ));
        }
        std::fs::write(dir.join("prom-rules.yml"), rule_yaml)?;
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files:\n- {}\nalerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n- job_name: bench\n  static_configs:\n  - targets: ['127.0.0.1:{receiver_port}']\n",
                dir.join("prom-rules.yml").display()
            ),
        )?;
        std::fs::write(
            dir.join("alertmanager.yml"),
            format!(
                "route:\n  group_by: ['...']\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 3h\n  receiver: bench\nreceivers:\n- name: bench\n  webhook_configs:\n  - url: http://127.0.0.1:{receiver_port}/peer\n    send_resolved: false\n"
            ),
        )?;
        let alertmanager = Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus-alertmanager (Debian package prometheus-alertmanager)")?;
        let prometheus = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus (Debian package prometheus)")?;
        Ok(Peer {
            _prometheus: Killed(prometheus),
            _alertmanager: Killed(alertmanager),
            versions: format!(
                "Prometheus {} + Alertmanager {}, packaged timing",
                version("prometheus"),
                version("prometheus-alertmanager")
            ),
        })
    }

    /// What ran.
    pub fn describe(&self) -> &str {
        &self.versions
    }
}
