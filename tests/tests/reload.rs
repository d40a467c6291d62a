//! SIGHUP: the agent applies changed labels without a restart; the
//! collector reloads its rules (see alerting.rs for rule state kept across
//! reloads).

use nightjar_e2e::*;

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
    agent.signal("HUP");
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
    agent.signal("HUP");
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

#[test]
fn sighup_applies_changed_collector_hooks_and_names_what_needs_a_restart() {
    use nightjar_e2e::feeder::Feeder;
    use nightjar_e2e::receiver::Receiver;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let rules = "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\n";
    std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
    let config = |path: &str, interval: &str| {
        format!(
            "rules = [\"rules.toml\"]\nself_metrics_interval = \"{interval}\"\n\n[alerting]\nhost_down_after = 0\n\n[[alerting.hook]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            receiver.url(path)
        )
    };
    let file = dir.path().join("collector.toml");
    std::fs::write(&file, config("/old", "10s")).unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &["--config", file.to_str().unwrap()],
    );
    // The hook moves; a key that needs a restart changes too.
    std::fs::write(&file, config("/new", "5s")).unwrap();
    collector.proc.signal("HUP");
    let log = poll("the reload", || {
        collector
            .proc
            .stderr_lines()
            .into_iter()
            .find(|l| l.contains("take effect after a restart"))
    });
    assert!(log.contains("self_metrics_interval"), "{log}");
    poll("the hooks reload", || {
        collector
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("hooks, routes and maintenance windows reloaded"))
            .then_some(())
    });
    Feeder::new(&collector.url(), &unique_host("hooks")).send("temp", &[], 90.0);
    let page = poll("the page at the new hook URL", || {
        receiver.accepted("/new").into_iter().next()
    });
    assert_eq!(page["rule"], "hot");
    assert!(receiver.received("/old").is_empty());
}
