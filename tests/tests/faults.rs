//! Fault tests against the real binaries: full disks, SIGKILL during
//! delivery, a network blackhole, hostile wire values, a damaged spool.
//! Each asserts the durability contract: every batch whose ack the agent
//! received is queryable, none is stored twice, no page is lost.

use std::path::Path;
use std::time::Duration;

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::small_fs::SmallFs;
use nightjar_e2e::{
    Collector, agent_progress, bin, free_port, http_get, poll, poll_for, start_agent, status_addr,
    stored_timestamps, unique_host,
};

/// memory_used_bytes is in every batch, so its timestamps stand for batches.
const EVERY_BATCH: &str = "memory_used_bytes";

const PROBE_RULE: &str = r#"
[[rule]]
name = "probe_high"
metric = "probe"
warning = 50
summary = "probe at {{value}}"
"#;

/// A small filesystem, or None after printing why the test skips.
fn small_fs(path: &Path, mib: u32, test: &str) -> Option<SmallFs> {
    match SmallFs::mount(path, mib) {
        Ok(fs) => Some(fs),
        Err(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

/// collector.toml with the probe rule and a webhook to `receiver`.
fn write_config(dir: &Path, receiver: &Receiver) -> String {
    std::fs::write(dir.join("rules.toml"), PROBE_RULE).unwrap();
    let config = format!(
        "rules = [\"{}\"]\n\n[alerting]\nhost_down_after = 0\n\n[[alerting.hook]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        dir.join("rules.toml").display(),
        receiver.url("/ops")
    );
    let path = dir.join("collector.toml");
    std::fs::write(&path, config).unwrap();
    path.display().to_string()
}

/// Every batch the agent saw acked is stored, none twice.
#[track_caller]
fn assert_acked_batches_stored_once(collector: &Collector, agent_lines: &[String], host: &str) {
    let (queued, acked) = agent_progress(agent_lines);
    let stored = stored_timestamps(collector, EVERY_BATCH, host);
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "a timestamp is stored twice or out of order: {stored:?}"
    );
    for (seq, ts) in queued.range(..=acked) {
        assert!(
            stored.contains(ts),
            "batch {seq} (t={ts}) was acked but is not stored"
        );
    }
}

/// Sends `probe = value` (stamped `ts`) until a collector acks it, as an
/// agent resends a batch that was not acked.
fn send_until_acked(feed: &mut Feeder, ts: i64, value: f64) -> usize {
    let mut refused = 0;
    poll_for(
        "the probe batch to be acked",
        Duration::from_secs(60),
        || {
            let sample = feed.sample("probe", &[], ts, value);
            match feed.send_batch(vec![sample]) {
                Ok(_) => Some(()),
                Err(_) => {
                    refused += 1;
                    None
                }
            }
        },
    );
    refused
}

#[test]
fn a_full_data_dir_acks_nothing_unstored_reports_unhealthy_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = small_fs(&dir.path().join("mnt"), 64, "full data dir") else {
        return;
    };
    let receiver = Receiver::start(free_port());
    let config = write_config(dir.path(), &receiver);
    let data_dir = fs.path.join("data");
    let mut collector = Collector::start_command(
        fs.command(bin("nightjar-collector")),
        free_port(),
        &data_dir,
        &["--config", &config],
        &[],
    );
    let status = poll("the status port", || {
        status_addr(&collector.proc.stderr_lines())
    });
    poll("a healthy collector", || {
        (http_get(status, "/healthz").0 == 200).then_some(())
    });
    let host = unique_host("fulldisk");
    let agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);
    poll("three acked batches", || {
        (agent_progress(&agent.stderr_lines()).1 >= 3).then_some(())
    });

    fs.fill();
    let unhealthy = poll("/healthz to report the failing writes", || {
        let (code, body) = http_get(status, "/healthz");
        (code == 503).then_some(body)
    });
    assert!(unhealthy.contains("storage"), "{unhealthy}");
    let logged =
        poll("an error naming the data dir and the cause", || {
            collector.proc.stderr_lines().into_iter().find(|l| {
                l.contains(&data_dir.display().to_string()) && l.contains("No space left")
            })
        });
    assert!(logged.contains("ERROR"), "{logged}");
    // A crossing while the disk is full: refused (not acked) at first.
    let mut feed = Feeder::new(&collector.url(), &unique_host("fulldisk-probe"));
    let crossing_ts = now_ms();
    let sample = feed.sample("probe", &[], crossing_ts, 99.0);
    assert!(
        feed.send_batch(vec![sample]).is_err(),
        "a batch that cannot be stored must not be acked"
    );
    let (_, acked_when_full) = agent_progress(&agent.stderr_lines());
    poll(
        "the agent to spool batches the collector cannot take",
        || {
            let (queued, _) = agent_progress(&agent.stderr_lines());
            (queued.keys().max().copied().unwrap_or(0) >= acked_when_full + 3).then_some(())
        },
    );
    assert!(
        receiver.accepted("/ops").is_empty(),
        "nothing stored, nothing paged"
    );

    fs.free();
    poll_for("/healthz to recover", Duration::from_secs(60), || {
        (http_get(status, "/healthz").0 == 200).then_some(())
    });
    assert!(
        !collector.proc.has_exited(),
        "it recovered without a restart"
    );
    send_until_acked(&mut feed, crossing_ts, 99.0);
    let (queued, _) = agent_progress(&agent.stderr_lines());
    let target = *queued.keys().max().unwrap();
    poll_for(
        "the agent's spool to drain",
        Duration::from_secs(60),
        || (agent_progress(&agent.stderr_lines()).1 >= target).then_some(()),
    );
    let page = poll("the page for the crossing", || {
        receiver.accepted("/ops").first().cloned()
    });
    assert_eq!(page["alerts"][0]["event"], "firing");
    assert_eq!(page["alerts"][0]["rule"], "probe_high");
    assert_acked_batches_stored_once(&collector, &agent.stderr_lines(), &host);
    collector.proc.kill();
}
