//! SIGHUP: the agent applies changed labels without a restart; the
//! collector reloads its rules (see alerting.rs for rule state kept across
//! reloads).

use std::process::Command;

use nightjar_e2e::*;

fn sighup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_applies_changed_agent_labels_and_names_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("hup");
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[labels]\nenv = \"staging\"\n").unwrap();
    let agent = start_agent(
        &collector.url(),
        &host,
        &dir.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let has_env = |env: &str| {
        latest_by_series(&collector, "memory_total_bytes", &host)
            .iter()
            .any(|(labels, _)| labels["env"] == env)
    };
    poll("samples labelled staging", || {
        has_env("staging").then_some(())
    });
    std::fs::write(
        &config,
        "spool_max_bytes = 2097152\n\n[labels]\nenv = \"prod\"\n",
    )
    .unwrap();
    sighup(agent.pid());
    poll("samples labelled prod", || has_env("prod").then_some(()));
    let lines = agent.stderr_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("take effect after a restart") && l.contains("spool_max_bytes")),
        "{lines:?}"
    );
    // A broken file keeps the running settings.
    std::fs::write(&config, "[labels]\nenv = 1\n").unwrap();
    sighup(agent.pid());
    poll("the refusal", || {
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("config not reloaded"))
            .then_some(())
    });
    let mut agent = agent;
    assert!(!agent.has_exited(), "a bad reload must not stop the agent");
}
