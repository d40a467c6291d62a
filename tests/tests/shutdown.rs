//! SIGTERM drains: the collector exits cleanly and everything it acked is
//! there after a restart; the agent exits cleanly and what it had not
//! delivered is sent after its next start.

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::*;

#[test]
fn sigterm_keeps_every_acked_batch_of_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut collector = Collector::start(port, &dir.path().join("data"));
    let host = unique_host("term");
    let mut feed = Feeder::new(&collector.url(), &host);
    let start = now_ms() - 60_000;
    for i in 0..50 {
        // Each send returns only after its ack.
        feed.send_at("drain_metric", &[], start + i * 1000, i as f64);
    }
    collector.proc.signal("TERM");
    poll("the collector to exit", || {
        collector.proc.has_exited().then_some(())
    });
    let lines = collector.proc.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("collector stopped")),
        "{lines:?}"
    );
    let collector = Collector::start(port, &dir.path().join("data"));
    assert_eq!(
        stored_timestamps(&collector, "drain_metric", &host).len(),
        50
    );
}

#[test]
fn sigterm_stops_the_agent_cleanly_and_its_unsent_batches_follow_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let collector = Collector::start(port, &dir.path().join("data"));
    let host = unique_host("agent-term");
    let state = dir.path().join("state");
    let mut agent = start_agent(&collector.url(), &host, &state, &[]);
    poll("the first batch", || {
        latest_value(&collector, "memory_total_bytes", &host)
    });
    // The collector goes away: the agent spools.
    drop(collector);
    poll("batches spooled while the collector is away", || {
        let (queued, acked) = agent_progress(&agent.stderr_lines());
        (queued.keys().filter(|seq| **seq > acked).count() >= 2).then_some(())
    });
    agent.signal("TERM");
    poll("the agent to exit", || agent.has_exited().then_some(()));
    let lines = agent.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("agent stopped")),
        "{lines:?}"
    );
    let (spooled, _) = agent_progress(&lines);
    // Restarted, both: the spooled batches arrive.
    let collector = Collector::start(port, &dir.path().join("data"));
    let _agent = start_agent(&collector.url(), &host, &state, &[]);
    poll("every batch taken before the SIGTERM", || {
        let stored = stored_timestamps(&collector, "memory_total_bytes", &host);
        spooled.values().all(|ts| stored.contains(ts)).then_some(())
    });
}
