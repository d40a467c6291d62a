//! Process health with real processes: a watched program is reported up,
//! then down when killed, and a restart is counted.

use std::process::{Child, Command};

use nightjar_e2e::{Collector, free_port, latest_by_series, poll, start_agent, unique_host};

fn latest(c: &Collector, metric: &str, host: &str, process: &str) -> Option<f64> {
    latest_by_series(c, metric, host)
        .into_iter()
        .find(|(labels, _)| labels["process"] == process)
        .map(|(_, v)| v)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watched_process_up_down_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of sleep under a name no other process on the machine has.
    let exe_name = format!("njsleep{}", std::process::id());
    let exe = dir.path().join(&exe_name);
    std::fs::copy("/bin/sleep", &exe).unwrap();
    let pidfile = dir.path().join("sleeper.pid");
    let start_sleeper = || {
        let child = Command::new(&exe).arg("1000").spawn().unwrap();
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        Killed(child)
    };
    let mut sleeper = start_sleeper();

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[watch]]
name = "sleeper"
exe = "{exe_name}"

[[watch]]
name = "by-cmdline"
cmdline = "{exe_name} 1000$"

[[watch]]
name = "by-pidfile"
pidfile = "{pidfile}"

[[watch]]
name = "absent"
exe = "no-such-process-nj"
min_count = 1
"#,
            pidfile = pidfile.display()
        ),
    )
    .unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("procwatch");
    let _agent = start_agent(
        &collector.url(),
        &host,
        &dir.path().join("state"),
        &["--config", config.to_str().unwrap()],
    );

    let up = |process: &str| latest(&collector, "process_up", &host, process);
    poll("the sleeper to be reported up with CPU figures", || {
        latest(&collector, "process_cpu_percent", &host, "sleeper").map(|_| ())
    });
    for entry in ["sleeper", "by-cmdline", "by-pidfile"] {
        assert_eq!(up(entry), Some(1.0), "{entry}");
        assert_eq!(
            latest(&collector, "process_instances", &host, entry),
            Some(1.0),
            "{entry}"
        );
    }
    assert_eq!(up("absent"), Some(0.0));
    assert_eq!(
        latest(&collector, "process_instances", &host, "absent"),
        Some(0.0)
    );
    let rss = latest(&collector, "process_rss_bytes", &host, "sleeper").unwrap();
    assert!(rss > 0.0 && rss < 1e9, "rss {rss}");
    assert!(latest(&collector, "process_threads", &host, "sleeper").unwrap() >= 1.0);
    assert!(latest(&collector, "process_open_fds", &host, "sleeper").unwrap() >= 0.0);
    let uptime = latest(&collector, "process_uptime_seconds", &host, "sleeper").unwrap();
    assert!((0.0..3600.0).contains(&uptime), "uptime {uptime}");
    let cpu = latest(&collector, "process_cpu_percent", &host, "sleeper").unwrap();
    assert!(
        (0.0..5.0).contains(&cpu),
        "a sleeping process uses no CPU, got {cpu}"
    );
    assert_eq!(
        latest(&collector, "process_restarts_total", &host, "sleeper"),
        Some(0.0)
    );

    // Killed: down.
    drop(sleeper);
    poll("the sleeper to be reported down", || {
        (up("sleeper") == Some(0.0)).then_some(())
    });
    assert_eq!(up("by-pidfile"), Some(0.0));

    // Started again: up, one restart.
    sleeper = start_sleeper();
    poll("the restart to be counted", || {
        (latest(&collector, "process_restarts_total", &host, "sleeper") == Some(1.0)).then_some(())
    });
    assert_eq!(up("sleeper"), Some(1.0));
    drop(sleeper);
}
