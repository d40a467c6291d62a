//! The durability contract under SIGKILL: what the collector acked survives,
//! what the agent resends is stored once, and nothing is missing afterwards.

use std::collections::BTreeMap;

use nightjar_e2e::{Collector, free_port, log_events, poll, start_agent, unique_host};

/// (seq → timestamp_ms) of every batch the agent queued, and the highest ack.
fn agent_progress(lines: &[String]) -> (BTreeMap<u64, i64>, u64) {
    let queued = log_events(lines, "batch queued")
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["timestamp_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let acked = log_events(lines, "ack received")
        .iter()
        .filter_map(|e| e["acked_through"].as_u64())
        .max()
        .unwrap_or(0);
    (queued, acked)
}

#[test]
fn acked_batches_survive_sigkill_and_resent_batches_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let mut collector = Collector::start(port, &data_dir);
    let host = unique_host("durability");
    let agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);

    poll("three acked batches", || {
        (agent_progress(&agent.stderr_lines()).1 >= 3).then_some(())
    });
    collector.proc.kill();
    let (queued_at_kill, acked_before_kill) = agent_progress(&agent.stderr_lines());
    let last_seq_at_kill = *queued_at_kill.keys().max().unwrap();

    // The agent keeps sampling while the collector is gone.
    poll("two batches queued while the collector is down", || {
        let (queued, _) = agent_progress(&agent.stderr_lines());
        (queued.keys().max().copied().unwrap_or(0) >= last_seq_at_kill + 2).then_some(())
    });

    let collector = Collector::start(port, &data_dir);
    let (queued_at_restart, _) = agent_progress(&agent.stderr_lines());
    let target = *queued_at_restart.keys().max().unwrap();
    poll("the agent to resend everything", || {
        (agent_progress(&agent.stderr_lines()).1 >= target).then_some(())
    });
    let (queued, acked) = agent_progress(&agent.stderr_lines());

    // memory_used_bytes is in every batch, so its timestamps stand for the batches.
    let v = collector.cli_json(&[
        "query",
        "memory_used_bytes",
        "--host",
        &host,
        "--since",
        "1h",
        "--step",
        "0",
    ]);
    let series = v.as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    let stored: Vec<i64> = series[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_i64().unwrap())
        .collect();

    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "a timestamp is stored twice or out of order: {stored:?}"
    );
    for (seq, ts) in queued.range(..=acked_before_kill) {
        assert!(
            stored.contains(ts),
            "batch {seq} (t={ts}) was acked before SIGKILL but is gone"
        );
    }
    for (seq, ts) in queued.range(..=acked) {
        assert!(
            stored.contains(ts),
            "gap: batch {seq} (t={ts}) was acked after the restart but is missing"
        );
    }
    assert!(
        acked > last_seq_at_kill,
        "batches queued during the outage were acked ({acked} > {last_seq_at_kill})"
    );
}
