//! The durability contract under SIGKILL and outages: what the collector
//! acked survives, what the agent resends is stored once, and nothing the
//! agent spooled is missing afterwards.

use std::time::Duration;

use nightjar_e2e::{
    Collector, agent_progress, free_port, latest_value, log_events, poll, poll_for, start_agent,
    stored_timestamps, unique_host,
};

/// memory_used_bytes is in every batch, so its timestamps stand for batches.
const EVERY_BATCH: &str = "memory_used_bytes";

#[track_caller]
fn assert_stored_once(stored: &[i64]) {
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "a timestamp is stored twice or out of order: {stored:?}"
    );
}

/// Kills the collector, lets the agent spool for `outage`, restarts the
/// collector on the same data dir and checks every batch arrived once.
fn survive_collector_outage(test: &str, outage_batches: u64, resend_deadline: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let mut collector = Collector::start(port, &data_dir);
    let host = unique_host(test);
    let agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);

    poll("three acked batches", || {
        (agent_progress(&agent.stderr_lines()).1 >= 3).then_some(())
    });
    collector.proc.kill();
    let (queued_at_kill, acked_before_kill) = agent_progress(&agent.stderr_lines());
    let last_seq_at_kill = *queued_at_kill.keys().max().unwrap();

    poll_for(
        "batches spooled while the collector is down",
        resend_deadline,
        || {
            let (queued, _) = agent_progress(&agent.stderr_lines());
            (queued.keys().max().copied().unwrap_or(0) >= last_seq_at_kill + outage_batches)
                .then_some(())
        },
    );

    let collector = Collector::start(port, &data_dir);
    let (queued_at_restart, _) = agent_progress(&agent.stderr_lines());
    let target = *queued_at_restart.keys().max().unwrap();
    poll_for("the agent to resend everything", resend_deadline, || {
        (agent_progress(&agent.stderr_lines()).1 >= target).then_some(())
    });
    let (queued, acked) = agent_progress(&agent.stderr_lines());
    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);

    assert_stored_once(&stored);
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
        "batches spooled during the outage were acked"
    );
}

#[test]
fn acked_batches_survive_collector_sigkill_and_resent_batches_are_stored_once() {
    survive_collector_outage("sigkill", 2, Duration::from_secs(30));
}

#[test]
fn thirty_second_collector_outage_leaves_no_gap() {
    // Reconnect backoff grows to 16-30 s during a 30 s outage: allow for it.
    survive_collector_outage("outage30", 30, Duration::from_secs(90));
}

#[test]
fn agent_sigkilled_while_collector_down_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let state_dir = dir.path().join("state");
    let port = free_port();
    let host = unique_host("agentkill");

    let mut collector = Collector::start(port, &data_dir);
    let mut first = start_agent(&collector.url(), &host, &state_dir, &[]);
    poll("two acked batches", || {
        (agent_progress(&first.stderr_lines()).1 >= 2).then_some(())
    });
    collector.proc.kill();
    let last_acked_seq = *agent_progress(&first.stderr_lines())
        .0
        .keys()
        .max()
        .unwrap();
    poll("three batches spooled with the collector down", || {
        let (queued, _) = agent_progress(&first.stderr_lines());
        (queued.keys().max().copied().unwrap_or(0) >= last_acked_seq + 3).then_some(())
    });
    first.kill();
    let (first_queued, _) = agent_progress(&first.stderr_lines());

    let collector = Collector::start(port, &data_dir);
    let second = start_agent(&collector.url(), &host, &state_dir, &[]);
    let (second_first_seq, second_target) =
        poll("the restarted agent to spool two batches", || {
            let (queued, _) = agent_progress(&second.stderr_lines());
            (queued.len() >= 2).then(|| {
                (
                    *queued.keys().next().unwrap(),
                    *queued.keys().nth(1).unwrap(),
                )
            })
        });
    assert!(
        second_first_seq > *first_queued.keys().max().unwrap(),
        "the restarted agent reused a sequence number"
    );
    poll("the restarted agent's batches to be acked", || {
        (agent_progress(&second.stderr_lines()).1 >= second_target).then_some(())
    });

    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);
    assert_stored_once(&stored);
    for (seq, ts) in &first_queued {
        assert!(
            stored.contains(ts),
            "batch {seq} (t={ts}) spooled before the agent's SIGKILL is missing"
        );
    }
    let (second_queued, _) = agent_progress(&second.stderr_lines());
    for (seq, ts) in second_queued.range(..=second_target) {
        assert!(
            stored.contains(ts),
            "batch {seq} (t={ts}) of the restarted agent is missing"
        );
    }
}

#[test]
fn corrupt_spool_record_is_skipped_counted_and_later_records_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let state_dir = dir.path().join("state");
    let port = free_port();
    let host = unique_host("corrupt");

    // Spool four batches with no collector, then stop the agent hard.
    let url = format!("http://127.0.0.1:{port}");
    let mut first = start_agent(&url, &host, &state_dir, &[]);
    poll("four spooled batches", || {
        (agent_progress(&first.stderr_lines()).0.len() >= 4).then_some(())
    });
    first.kill();
    let (spooled, _) = agent_progress(&first.stderr_lines());

    // Damage one payload byte of the second record.
    let spool_dir = state_dir.join("spool");
    let segment = std::fs::read_dir(&spool_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a spool segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let first_len = 20 + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    bytes[first_len + 30] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let collector = Collector::start(port, &data_dir);
    let second = start_agent(&collector.url(), &host, &state_dir, &[]);
    let first_new_seq = poll("the restarted agent to spool a batch", || {
        agent_progress(&second.stderr_lines())
            .0
            .keys()
            .next()
            .copied()
    });
    poll("the restarted agent's first batch to be acked", || {
        (agent_progress(&second.stderr_lines()).1 >= first_new_seq).then_some(())
    });
    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);
    let spooled: Vec<(u64, i64)> = spooled.into_iter().collect();
    assert!(
        !stored.contains(&spooled[1].1),
        "the corrupt record was delivered"
    );
    for (seq, ts) in spooled.iter().filter(|(seq, _)| *seq != spooled[1].0) {
        assert!(
            stored.contains(ts),
            "record {seq} (t={ts}) next to the corrupt one was not delivered"
        );
    }
    let corrupt = poll("the corrupt-record counter to be reported", || {
        latest_value(&collector, "agent_spool_corrupt_records_total", &host).filter(|v| *v >= 1.0)
    });
    assert_eq!(corrupt, 1.0);
}

#[test]
fn agent_with_lost_sequence_lease_takes_a_new_id_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("lostlease");

    let mut first = start_agent(&collector.url(), &host, &state_dir, &[]);
    poll("three acked batches", || {
        (agent_progress(&first.stderr_lines()).1 >= 3).then_some(())
    });
    first.kill();
    let old_high = *agent_progress(&first.stderr_lines())
        .0
        .keys()
        .max()
        .unwrap();

    // The sequence lease and the spool are lost; the agent id survives, so
    // the restarted agent counts from 1 again, below the collector's mark.
    std::fs::remove_file(state_dir.join("seq_lease")).unwrap();
    std::fs::remove_dir_all(state_dir.join("spool")).unwrap();

    let second = start_agent(&collector.url(), &host, &state_dir, &[]);
    poll("batches past the old mark's count to be acked", || {
        let (queued, acked) = agent_progress(&second.stderr_lines());
        (queued.len() as u64 > old_high + 2
            && acked >= *queued.keys().nth(old_high as usize + 2)?)
        .then_some(())
    });
    let (queued, acked) = agent_progress(&second.stderr_lines());
    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);
    assert_stored_once(&stored);
    // The first ack named the old mark, above anything this agent sent:
    // ignored, and a new id, under which every batch is stored. None is
    // taken for a replay.
    let lost: Vec<&u64> = queued
        .range(..=acked)
        .filter(|(_, ts)| !stored.contains(ts))
        .map(|(seq, _)| seq)
        .collect();
    assert!(
        lost.is_empty(),
        "batches {lost:?} were taken for replays (old mark {old_high})"
    );
    assert!(
        second
            .stderr_lines()
            .iter()
            .any(|l| l.contains("took a new agent id")),
        "the new id was not logged"
    );
    let id_now = std::fs::read_to_string(state_dir.join("agent_id")).unwrap();
    let id_before = log_events(&first.stderr_lines(), "agent starting")[0]["agent_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    assert_ne!(id_now.trim(), id_before, "the new id is durable");
}
