//! Fault tests against the real binaries: full disks, SIGKILL during
//! delivery, a network blackhole, hostile wire values, a damaged spool.
//! Each asserts the durability contract: every batch whose ack the agent
//! received is queryable, none is stored twice, no page is lost.

use std::path::Path;
use std::time::Duration;

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::notify::NotifySocket;
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::small_fs::SmallFs;
use nightjar_e2e::{
    Collector, agent_progress, bin, free_port, http_get, poll, poll_for, start_agent, status_addr,
    stored_timestamps, unique_host,
};
use nightjar_proto::v1 as pb;
use pb::alert_service_client::AlertServiceClient;
use pb::ingest_service_client::IngestServiceClient;
use pb::query_service_client::QueryServiceClient;

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

/// A collector with the probe rule and a webhook to `receiver`, on
/// `data_dir` (restartable with the same arguments).
fn start_paging_collector(dir: &Path, port: u16) -> Collector {
    Collector::start_with(
        port,
        &dir.join("data"),
        &["--config", dir.join("collector.toml").to_str().unwrap()],
    )
}

/// The distinct notification ids of the `event` notifications accepted.
fn accepted_ids(receiver: &Receiver, event: &str) -> Vec<String> {
    let mut ids: Vec<String> = receiver
        .accepted("/ops")
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["event"] == event)
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn sigkill_while_the_receiver_holds_its_response_open_redelivers_the_same_page() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    write_config(dir.path(), &receiver);
    let port = free_port();
    let mut collector = start_paging_collector(dir.path(), port);
    receiver.set_delay(Duration::from_secs(3600));
    let mut feed = Feeder::new(&collector.url(), &unique_host("held"));
    feed.send("probe", &[], 99.0);
    let first = poll("the page to reach the receiver", || {
        receiver.arrived("/ops").first().map(|r| r.json())
    });
    let id = first["alerts"][0]["id"].as_str().unwrap().to_owned();
    collector.proc.kill();
    receiver.set_delay(Duration::ZERO);
    let _collector = start_paging_collector(dir.path(), port);
    let ids = poll("the page to be delivered after the restart", || {
        let ids = accepted_ids(&receiver, "firing");
        (!ids.is_empty()).then_some(ids)
    });
    assert_eq!(ids, vec![id], "the same notification, not a new one");
}

#[test]
fn sigkill_right_after_a_crossing_batchs_ack_still_pages_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    write_config(dir.path(), &receiver);
    let port = free_port();
    let mut collector = start_paging_collector(dir.path(), port);
    let mut feed = Feeder::new(&collector.url(), &unique_host("ackkill"));
    // Acked: the transition and its outbox entry were durable before it.
    feed.send("probe", &[], 99.0);
    collector.proc.kill();
    let _collector = start_paging_collector(dir.path(), port);
    let ids = poll("the page after the restart", || {
        let ids = accepted_ids(&receiver, "firing");
        (!ids.is_empty()).then_some(ids)
    });
    assert_eq!(ids.len(), 1, "one page, under one id: {ids:?}");
}

/// Sends one batch on a stream of its own, as a hostile or buggy client
/// would; the ack or the status that ended the stream.
fn send_raw(url: &str, batch: pb::Batch) -> Result<pb::Ack, tonic::Status> {
    runtime().block_on(async {
        let mut client = IngestServiceClient::connect(url.to_owned())
            .await
            .expect("collector reachable");
        let mut acks = client.stream(tokio_stream::once(batch)).await?.into_inner();
        acks.message()
            .await?
            .ok_or_else(|| tonic::Status::unknown("stream ended without an ack"))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hostile_batch(agent_id: &str, host: &str, seq: u64, interval_ms: u64) -> pb::Batch {
    pb::Batch {
        agent_id: agent_id.into(),
        host: host.into(),
        seq,
        interval_ms,
        samples: vec![pb::Sample {
            metric: "memory_used_bytes".into(),
            labels: vec![pb::Label {
                name: "host".into(),
                value: host.into(),
            }],
            timestamp_ms: now_ms(),
            value: Some(pb::sample::Value::Gauge(1.0)),
        }],
    }
}

#[test]
fn hostile_wire_values_are_refused_and_the_victim_keeps_landing() {
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
    let url = collector.url();
    let victim = unique_host("victim");
    let agent = start_agent(&url, &victim, &dir.path().join("state"), &[]);
    poll("two acked batches", || {
        (agent_progress(&agent.stderr_lines()).1 >= 2).then_some(())
    });
    let victim_id = poll("the victim's agent id", || {
        nightjar_e2e::log_events(&agent.stderr_lines(), "agent starting")
            .first()
            .and_then(|e| e["agent_id"].as_str().map(str::to_owned))
    });

    // Another host's agent id with a huge seq: stored under that host's
    // own mark, which is not the victim's.
    let other = send_raw(&url, hostile_batch(&victim_id, "intruder", 1 << 62, 1_000));
    assert!(other.is_ok(), "{other:?}");
    poll("the collector to log one agent id on two hosts", || {
        collector
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("one agent id sends for two hosts"))
            .then_some(())
    });
    // Values no agent can send: refused, naming the field.
    for (batch, field) in [
        (
            hostile_batch(&victim_id, &victim, u64::MAX, 1_000),
            "batch.seq",
        ),
        (hostile_batch(&victim_id, &victim, 0, 1_000), "batch.seq"),
        (
            hostile_batch("hostile", "intruder-2", 1, 1 << 62),
            "batch.interval_ms",
        ),
    ] {
        let status = send_raw(&url, batch).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{}", status.message());
    }
    let (query, history) = runtime().block_on(async {
        let mut q = QueryServiceClient::connect(url.clone()).await.unwrap();
        let query = q
            .query_range(pb::QueryRangeRequest {
                selector: Some(pb::Selector {
                    metric: "memory_used_bytes".into(),
                    matchers: Vec::new(),
                }),
                start_ms: i64::MIN,
                end_ms: i64::MAX,
                step_ms: 0,
                ..Default::default()
            })
            .await;
        let mut a = AlertServiceClient::connect(url.clone()).await.unwrap();
        let history = a
            .alert_history(pb::AlertHistoryRequest {
                since_ms: i64::MIN,
                limit: u32::MAX,
                alert_id: String::new(),
            })
            .await;
        (query, history)
    });
    let status = query.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("step_ms 0"),
        "{}",
        status.message()
    );
    assert!(
        history.is_ok(),
        "an unbounded history request is answered, capped: {history:?}"
    );

    // Still alive, still sweeping, and the victim's batches still land.
    notify.drain();
    notify.expect("WATCHDOG=1");
    let (_, acked_after_attack) = agent_progress(&agent.stderr_lines());
    poll("three more of the victim's batches to be acked", || {
        (agent_progress(&agent.stderr_lines()).1 >= acked_after_attack + 3).then_some(())
    });
    assert_acked_batches_stored_once(&collector, &agent.stderr_lines(), &victim);
    let status = status_addr(&collector.proc.stderr_lines()).expect("the status port");
    let (_, metrics) = http_get(status, "/metrics");
    let refused: f64 = metrics
        .lines()
        .find(|l| l.starts_with("collector_batches_refused_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no collector_batches_refused_total in {metrics}"));
    assert_eq!(refused, 3.0, "each refused batch is counted");
}

/// Spools four batches with no collector, kills the agent, lets `damage`
/// change the state dir, then delivers: returns the spooled (seq, ts) and
/// the timestamps stored once the restarted agent's first batch is acked.
fn deliver_damaged_spool(
    test: &str,
    damage: impl FnOnce(&Path, &[u8], &[usize]) -> Vec<u8>,
) -> (Vec<(u64, i64)>, Vec<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let port = free_port();
    let host = unique_host(test);
    let url = format!("http://127.0.0.1:{port}");
    let mut first = start_agent(&url, &host, &state_dir, &[]);
    poll("four spooled batches", || {
        (agent_progress(&first.stderr_lines()).0.len() >= 4).then_some(())
    });
    first.kill();
    let spooled: Vec<(u64, i64)> = agent_progress(&first.stderr_lines())
        .0
        .into_iter()
        .collect();
    let segment = std::fs::read_dir(state_dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a spool segment");
    let bytes = std::fs::read(&segment).unwrap();
    // Record offsets, from each header's length field.
    let mut offsets = vec![0usize];
    while let Some(&at) = offsets.last() {
        let next = at + 20 + u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if next >= bytes.len() {
            break;
        }
        offsets.push(next);
    }
    std::fs::write(&segment, damage(&state_dir, &bytes, &offsets)).unwrap();

    let collector = Collector::start(port, &dir.path().join("data"));
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
    assert_acked_batches_stored_once(&collector, &second.stderr_lines(), &host);
    (spooled, stored_timestamps(&collector, EVERY_BATCH, &host))
}

#[test]
fn a_damaged_length_field_loses_only_its_record() {
    let (spooled, stored) = deliver_damaged_spool("badlen", |_, bytes, offsets| {
        let mut bytes = bytes.to_vec();
        let at = offsets[1] + 4;
        bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        bytes
    });
    assert!(
        !stored.contains(&spooled[1].1),
        "the damaged record was delivered"
    );
    for (seq, ts) in spooled.iter().filter(|(seq, _)| *seq != spooled[1].0) {
        assert!(
            stored.contains(ts),
            "record {seq} beside the damaged one is missing"
        );
    }
}

#[test]
fn a_header_cut_in_half_at_the_tail_loses_only_the_torn_record() {
    let (spooled, stored) = deliver_damaged_spool("torn", |_, bytes, offsets| {
        let last = *offsets.last().unwrap();
        bytes[..last + 10].to_vec()
    });
    let torn = spooled.len() - 1;
    for (seq, ts) in &spooled[..torn] {
        assert!(
            stored.contains(ts),
            "record {seq} before the torn one is missing"
        );
    }
    assert!(
        !stored.contains(&spooled[torn].1),
        "the torn record cannot be read"
    );
}

#[test]
fn a_corrupt_acked_file_resends_everything_and_stores_it_once() {
    let (spooled, stored) = deliver_damaged_spool("badack", |state_dir, bytes, _| {
        // Trusted, this mark would call every spooled batch delivered.
        std::fs::write(state_dir.join("spool/acked"), "18446744073709551615\n").unwrap();
        bytes.to_vec()
    });
    for (seq, ts) in &spooled {
        assert!(
            stored.contains(ts),
            "record {seq} was dropped by a damaged ack mark"
        );
    }
}

/// The value of an unlabelled-by-us counter on a daemon's `/metrics`.
fn metric(proc: &nightjar_e2e::Proc, name: &str) -> Option<f64> {
    let status = status_addr(&proc.stderr_lines())?;
    let (_, body) = http_get(status, "/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_full_state_dir_is_counted_and_everything_spooled_is_delivered_later() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = small_fs(&dir.path().join("mnt"), 16, "full state dir") else {
        return;
    };
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let host = unique_host("fullstate");
    let agent = nightjar_e2e::start_agent_command(
        fs.command(bin("nightjar-agent")),
        &url,
        &host,
        &fs.path.join("state"),
        &[],
        &[],
    );
    poll("three spooled batches", || {
        (agent_progress(&agent.stderr_lines()).0.len() >= 3).then_some(())
    });
    fs.fill();
    let failures = poll("spool writes to fail and be counted", || {
        metric(&agent, "agent_spool_write_failures_total").filter(|n| *n >= 3.0)
    });
    assert!(failures >= 3.0);
    assert!(
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("cannot spool a batch")),
        "the failure is logged"
    );
    fs.free();
    let spooled_before = agent_progress(&agent.stderr_lines()).0.len();
    poll("spooling to resume", || {
        (agent_progress(&agent.stderr_lines()).0.len() >= spooled_before + 2).then_some(())
    });
    let collector = Collector::start(port, &dir.path().join("data"));
    let (queued, _) = agent_progress(&agent.stderr_lines());
    let target = *queued.keys().max().unwrap();
    poll_for(
        "everything spooled to be acked",
        Duration::from_secs(60),
        || (agent_progress(&agent.stderr_lines()).1 >= target).then_some(()),
    );
    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);
    for (seq, ts) in &queued {
        assert!(
            stored.contains(ts),
            "spooled batch {seq} (t={ts}) was not delivered"
        );
    }
    assert_acked_batches_stored_once(&collector, &agent.stderr_lines(), &host);
}

#[test]
fn a_sixty_second_blackhole_is_noticed_and_leaves_no_hole_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let proxy = nightjar_e2e::proxy::Proxy::start(collector.addr);
    let host = unique_host("blackhole");
    let agent = start_agent(
        &format!("http://{}", proxy.addr),
        &host,
        &dir.path().join("state"),
        &[],
    );
    poll("three acked batches through the proxy", || {
        (agent_progress(&agent.stderr_lines()).1 >= 3).then_some(())
    });
    let started = std::time::Instant::now();
    let failures_before = unreachable_lines(&agent);
    proxy.set_blackhole(true);
    // HTTP/2 keepalive (10 s, then 10 s for the answer) ends the frozen
    // session; nothing closed it.
    poll_for(
        "the agent to notice the dead connection",
        Duration::from_secs(45),
        || (unreachable_lines(&agent) > failures_before).then_some(()),
    );
    // The fault lasts 60 s (reconnects are frozen too), then the route is back.
    poll_for(
        "the end of the 60 s blackhole",
        Duration::from_secs(70),
        || (started.elapsed() >= Duration::from_secs(60)).then_some(()),
    );
    proxy.set_blackhole(false);
    let (queued, _) = agent_progress(&agent.stderr_lines());
    let target = *queued.keys().max().unwrap();
    poll_for(
        "everything spooled meanwhile to be acked",
        Duration::from_secs(90),
        || (agent_progress(&agent.stderr_lines()).1 >= target).then_some(()),
    );
    let (queued, acked) = agent_progress(&agent.stderr_lines());
    let stored = stored_timestamps(&collector, EVERY_BATCH, &host);
    for (seq, ts) in queued.range(..=acked) {
        assert!(stored.contains(ts), "hole: batch {seq} (t={ts}) is missing");
    }
    assert_acked_batches_stored_once(&collector, &agent.stderr_lines(), &host);
}

/// How many times the agent logged a failed or ended session.
fn unreachable_lines(agent: &nightjar_e2e::Proc) -> usize {
    agent
        .stderr_lines()
        .iter()
        .filter(|l| l.contains("collector unreachable"))
        .count()
}
