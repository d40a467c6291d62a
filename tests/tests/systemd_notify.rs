//! The systemd service protocol, observed on a NOTIFY_SOCKET the test
//! creates: both daemons say READY=1 once they are up, ping WATCHDOG=1 while
//! they work, and say STOPPING=1 on SIGTERM.

use nightjar_e2e::notify::NotifySocket;
use nightjar_e2e::*;

#[test]
fn collector_notifies_ready_watchdog_and_stopping() {
    let notify = NotifySocket::new();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_env(
        free_port(),
        &dir.path().join("data"),
        &[],
        &[
            ("NOTIFY_SOCKET", &notify.path),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let ready = notify.expect("READY=1");
    assert!(ready.contains("STATUS=listening on 127.0.0.1:"), "{ready}");
    // Pings come from the alert sweep, once a second.
    notify.expect("WATCHDOG=1");
    notify.expect("WATCHDOG=1");
    collector.proc.signal("TERM");
    notify.expect("STOPPING=1");
}

#[test]
fn agent_notifies_ready_after_its_first_sample_and_pings_the_watchdog() {
    let notify = NotifySocket::new();
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let agent = start_agent_env(
        &collector.url(),
        &unique_host("notify"),
        &dir.path().join("state"),
        &[],
        &[
            ("NOTIFY_SOCKET", notify.path.clone()),
            ("WATCHDOG_USEC", "4000000".into()),
        ],
    );
    let ready = notify.expect("READY=1");
    assert!(ready.contains("STATUS=sampling every 1s"), "{ready}");
    // The first sample was spooled (and logged) before READY=1.
    poll("the first batch's log line", || {
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("batch queued"))
            .then_some(())
    });
    notify.expect("WATCHDOG=1");
    agent.signal("TERM");
    notify.expect("STOPPING=1");
}
