//! Synthetic checks end to end: a real agent probes a real local HTTP
//! server that flips between 200, 500 and slow answers, an open TCP port
//! and a closed one; check_up, check_sla_met, the failure counters and the
//! duration histogram follow, read back through the query API. A command
//! check does not pass the agent's capabilities on.

use std::process::Command;
use std::time::Duration;

use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::{
    Collector, Proc, bin, free_port, latest_by_series, log_events, poll, start_agent, unique_host,
};

/// The newest value of `metric` for the series with these labels.
fn latest(collector: &Collector, metric: &str, host: &str, labels: &[(&str, &str)]) -> Option<f64> {
    latest_by_series(collector, metric, host)
        .into_iter()
        .find(|(l, _)| labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|(_, v)| v)
}

#[test]
fn checks_follow_a_flipping_http_server_and_tcp_ports() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let server = Receiver::start(free_port());
    let closed = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[check]]
name = "web"
http = "{url}"
body_contains = "ok"
interval = "1s"
timeout = "1s"
sla = "300ms"

[[check]]
name = "closed"
tcp = "127.0.0.1:{closed}"
interval = "1s"
timeout = "1s"

[[check]]
name = "open"
tcp = "{open}"
interval = "1s"
"#,
            url = server.url("/health"),
            open = server.addr,
        ),
    )
    .unwrap();
    let host = unique_host("checks");
    let agent = start_agent(
        &collector.url(),
        &host,
        &dir.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let web = [("check", "web")];
    let is = |metric: &str, labels: &[(&str, &str)], want: f64| {
        latest(&collector, metric, &host, labels) == Some(want)
    };

    // Answering 200 fast: up, within the SLA.
    poll("web up and within its SLA", || {
        (is("check_up", &web, 1.0) && is("check_sla_met", &web, 1.0)).then_some(())
    });
    poll("the open port is up, the closed one down", || {
        (is("check_up", &[("check", "open")], 1.0) && is("check_up", &[("check", "closed")], 0.0))
            .then_some(())
    });
    poll("connection refusals counted by reason", || {
        latest(
            &collector,
            "check_failures_total",
            &host,
            &[("check", "closed"), ("reason", "connect")],
        )
        .filter(|n| *n >= 1.0)
    });
    assert_eq!(
        latest(&collector, "check_sla_met", &host, &[("check", "open")]),
        None,
        "no SLA configured, no check_sla_met"
    );

    // 500: down, SLA missed, counted as a status failure.
    server.set_status(500);
    poll("web down on 500", || {
        (is("check_up", &web, 0.0) && is("check_sla_met", &web, 0.0)).then_some(())
    });
    poll("status failures counted", || {
        latest(
            &collector,
            "check_failures_total",
            &host,
            &[("check", "web"), ("reason", "status")],
        )
        .filter(|n| *n >= 1.0)
    });

    // 200 but slow (600 ms > 300 ms SLA, < 1 s timeout): up, SLA missed.
    server.set_status(200);
    server.set_delay(Duration::from_millis(600));
    poll("web up but outside its SLA", || {
        (is("check_up", &web, 1.0) && is("check_sla_met", &web, 0.0)).then_some(())
    });

    // Slower than the timeout: down, counted as a timeout.
    server.set_delay(Duration::from_millis(1500));
    poll("web down on timeout", || {
        is("check_up", &web, 0.0).then_some(())
    });
    poll("timeouts counted", || {
        latest(
            &collector,
            "check_failures_total",
            &host,
            &[("check", "web"), ("reason", "timeout")],
        )
        .filter(|n| *n >= 1.0)
    });

    // Fast again: back within the SLA.
    server.set_delay(Duration::ZERO);
    poll("web recovers", || {
        (is("check_up", &web, 1.0) && is("check_sla_met", &web, 1.0)).then_some(())
    });

    // The durations histogram saw the slow answers.
    let v = collector.cli_json(&[
        "query",
        "check_duration_seconds",
        "--host",
        &host,
        "--label",
        "check=web",
        "--since",
        "1h",
        "--step",
        "1000d",
        "--agg",
        "max",
    ]);
    let max = v[0]["points"][0][1].as_f64().expect("a max duration");
    assert!((0.6..=1.1).contains(&max), "slowest web run {max} s");

    // The reason is in the agent's log too.
    let failed = log_events(
        &agent.stderr_lines(),
        "check failed (repeated failures are logged at most once a minute)",
    );
    assert!(
        failed
            .iter()
            .any(|e| e["check"] == "web" && e["reason"] == "status"),
        "{failed:?}"
    );
}

/// The capability bitmask a process's `/proc/PID/status` line `name` shows.
fn caps(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn check_commands_do_not_inherit_the_agents_ambient_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let out = dir.path().join("child-status");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[check]]
name = "caps"
command = ["sh", "-c", "cat /proc/self/status > {}"]
interval = "1s"
"#,
            out.display()
        ),
    )
    .unwrap();
    // As the systemd unit starts it: with an ambient capability.
    let agent = Proc::spawn(
        Command::new("setpriv")
            .args([
                "--inh-caps",
                "+dac_read_search",
                "--ambient-caps",
                "+dac_read_search",
            ])
            .arg(bin("nightjar-agent"))
            .args(["--collector", &collector.url(), "--interval", "1s"])
            .args(["--host", &unique_host("check-caps"), "--statsd", "off"])
            .args(["--http-listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state")),
    );
    // Read once setpriv has exec'd the agent.
    let agent_status = poll("the agent runs", || {
        std::fs::read_to_string(format!("/proc/{}/status", agent.pid()))
            .ok()
            .filter(|s| s.contains("Name:\tnightjar-agent"))
    });
    assert_ne!(
        caps(&agent_status, "CapAmb:"),
        0,
        "the agent runs with an ambient capability"
    );
    let child_status = poll("the check's command ran", || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.contains("CapAmb:"))
    });
    assert_eq!(caps(&child_status, "CapAmb:"), 0, "{child_status}");
}
