//! statsd end to end: real UDP datagrams and a real TCP stream into a real
//! agent, aggregated and shipped to a real collector, read back through the
//! query API (the CLI) and compared with figures computed here.

use std::io::Write as _;
use std::net::{TcpStream, UdpSocket};

use nightjar_e2e::{
    Collector, agent_progress, free_port, last_points, latest_by_series, latest_value, log_events,
    poll, start_agent, unique_host,
};

/// Relative precision of the stored histograms (2 significant digits:
/// bucket width ≤ 1/128 of the value), plus the microsecond unit.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.01 + 2e-6
}

/// The nearest-rank percentile (what p50/p99 mean for the histograms).
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Sends `lines` over UDP in datagrams of at most 20 lines.
fn send_udp(port: u16, lines: &[String]) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for chunk in lines.chunks(20) {
        socket
            .send_to(chunk.join("\n").as_bytes(), ("127.0.0.1", port))
            .unwrap();
    }
}

/// Starts an agent with statsd on a free port; returns it and the port,
/// once the listeners are bound.
fn agent_with_statsd(
    collector: &Collector,
    host: &str,
    dir: &std::path::Path,
) -> (nightjar_e2e::Proc, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let agent = start_agent(
        &collector.url(),
        host,
        &dir.join(host),
        &["--statsd", &addr],
    );
    poll("statsd listening", || {
        (log_events(&agent.stderr_lines(), "statsd listening").len() == 2).then_some(())
    });
    (agent, port)
}

/// One figure per series of `metric` for `host` over the last hour, all
/// buckets in one (`step` 1000 days), with `agg`; `by_all` merges every
/// host's series into one.
fn figure(
    collector: &Collector,
    metric: &str,
    host: Option<&str>,
    agg: &str,
    step: &str,
) -> Vec<(serde_json::Value, f64)> {
    let mut args = vec![
        "query", metric, "--since", "1h", "--step", step, "--agg", agg,
    ];
    if let Some(h) = host {
        args.extend(["--host", h]);
    } else {
        args.push("--by");
    }
    last_points(&collector.cli_json(&args))
}

const ALL: &str = "1000d";

#[test]
fn statsd_lines_over_udp_and_tcp_become_counts_rates_gauges_sets_and_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("statsd");
    let (_agent, port) = agent_with_statsd(&collector, &host, dir.path());

    // Counters (with a sample rate), gauges with deltas, a set, timers,
    // a tagged histogram, and three malformed lines.
    let mut lines: Vec<String> = Vec::new();
    lines.extend((0..100).map(|_| "jobs.done:1|c".to_owned()));
    lines.extend((0..50).map(|_| "jobs.done:1|c|@0.5".to_owned()));
    let timer_ms: Vec<f64> = (0..500)
        .map(|i| 1.0 + ((i * 37) % 500) as f64 * 1.3)
        .collect();
    lines.extend(timer_ms.iter().map(|v| format!("api.latency:{v}|ms")));
    lines.extend((0..20).map(|i| format!("payload:{}|h|#route:/api,env:test", 100 + i * 10)));
    lines.extend((0..5).map(|_| "tagged:1|c|#env:prod,dc:x".to_owned()));
    send_udp(port, &lines);
    send_udp(
        port,
        &[
            "queue.depth:10|g".into(),
            "queue.depth:+5|g".into(),
            "queue.depth:-2|g".into(),
        ],
    );
    send_udp(
        port,
        &[
            "users:alice|s".into(),
            "users:bob|s".into(),
            "users:alice|s".into(),
            "users:carol|s".into(),
        ],
    );
    send_udp(port, &["garbage".into(), "x:1|q".into(), "y:abc|c".into()]);
    let mut tcp = poll("statsd TCP accepts", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    for _ in 0..10 {
        tcp.write_all(b"tcp.jobs:2|c\n").unwrap();
    }
    tcp.write_all(b"tcp.latency:5|ms\ntcp.latency:15|ms\n")
        .unwrap();
    drop(tcp);

    poll("jobs_total reaches 200 (100 + 50 at rate 0.5)", || {
        (latest_value(&collector, "jobs_done_total", &host) == Some(200.0)).then_some(())
    });
    // Each flush's rate is its count over 1 s: the rates add up to the total.
    let rates = figure(&collector, "jobs_done_per_second", Some(&host), "sum", ALL);
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert!((rates[0].1 - 200.0).abs() < 1e-9, "{rates:?}");
    poll("tcp_jobs_total reaches 20", || {
        (latest_value(&collector, "tcp_jobs_total", &host) == Some(20.0)).then_some(())
    });
    poll("queue_depth is 10 + 5 - 2", || {
        (latest_value(&collector, "queue_depth", &host) == Some(13.0)).then_some(())
    });
    let users = figure(&collector, "users", Some(&host), "max", ALL);
    assert_eq!(users[0].1, 3.0, "distinct set members: {users:?}");
    let tagged = latest_by_series(&collector, "tagged_total", &host);
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].0["env"], "prod");
    assert_eq!(tagged[0].0["dc"], "x");
    assert_eq!(tagged[0].1, 5.0);

    // Timers: a histogram of seconds; every percentile within precision.
    poll("all 500 timer values stored", || {
        let count = figure(&collector, "api_latency_seconds", Some(&host), "count", ALL);
        (count.first().map(|c| c.1) == Some(500.0)).then_some(())
    });
    let seconds: Vec<f64> = timer_ms.iter().map(|ms| ms / 1000.0).collect();
    for (agg, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p95", 0.95),
        ("p99", 0.99),
        ("p999", 0.999),
        ("max", 1.0),
    ] {
        let got = figure(&collector, "api_latency_seconds", Some(&host), agg, ALL)[0].1;
        let want = percentile(&seconds, q);
        assert!(close(got, want), "{agg}: got {got}, want {want}");
    }
    let mean = figure(&collector, "api_latency_seconds", Some(&host), "mean", ALL)[0].1;
    let want_mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    assert!(close(mean, want_mean), "mean: got {mean}, want {want_mean}");
    poll("both TCP timer values stored", || {
        let count = figure(&collector, "tcp_latency_seconds", Some(&host), "count", ALL);
        (count.first().map(|c| c.1) == Some(2.0)).then_some(())
    });

    // Histograms keep their tags as labels.
    let payload = figure(&collector, "payload", Some(&host), "count", ALL);
    assert_eq!(payload.len(), 1, "{payload:?}");
    assert_eq!(payload[0].0["route"], "/api");
    assert_eq!(payload[0].1, 20.0);
    let max = figure(&collector, "payload", Some(&host), "max", ALL)[0].1;
    assert!(close(max, 290.0), "{max}");

    poll("the three malformed lines are counted", || {
        (latest_value(&collector, "agent_statsd_malformed_total", &host) == Some(3.0)).then_some(())
    });
}

#[test]
fn percentiles_merged_across_two_agents_are_those_of_the_union() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let metric = format!("merge_{}", std::process::id());
    let (host_a, host_b) = (unique_host("merge-a"), unique_host("merge-b"));
    let (_a, port_a) = agent_with_statsd(&collector, &host_a, dir.path());
    let (_b, port_b) = agent_with_statsd(&collector, &host_b, dir.path());
    // A: a fast service (1..400 ms); B: a slow one (1000..1099 ms).
    let fast: Vec<f64> = (1..=400).map(f64::from).collect();
    let slow: Vec<f64> = (1000..1100).map(f64::from).collect();
    let lines = |values: &[f64]| -> Vec<String> {
        values.iter().map(|v| format!("{metric}:{v}|ms")).collect()
    };
    send_udp(port_a, &lines(&fast));
    send_udp(port_b, &lines(&slow));
    let name = format!("{metric}_seconds");
    for (host, n) in [(&host_a, 400.0), (&host_b, 100.0)] {
        poll("every value stored", || {
            let count = figure(&collector, &name, Some(host), "count", ALL);
            (count.first().map(|c| c.1) == Some(n)).then_some(())
        });
    }
    let union: Vec<f64> = fast.iter().chain(&slow).map(|ms| ms / 1000.0).collect();
    for (agg, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        // From the 1-hour rollups (step of whole hours) and from the raw
        // histograms (a step no rollup tiles): the same merged histogram.
        let rolled = figure(&collector, &name, None, agg, ALL);
        let raw = figure(&collector, &name, None, agg, "1000d 1ms");
        assert_eq!(rolled.len(), 1, "one merged series: {rolled:?}");
        let want = percentile(&union, q);
        assert!(
            close(rolled[0].1, want),
            "{agg}: got {}, want {want}",
            rolled[0].1
        );
        assert_eq!(rolled[0].1, raw[0].1, "{agg}: rollup and raw agree");
    }
    // Averaging the per-host p90s would say ~0.7 s; the union's p90 is 1.05 s.
    let per_host: Vec<f64> = [&host_a, &host_b]
        .iter()
        .map(|h| figure(&collector, &name, Some(h), "p90", ALL)[0].1)
        .collect();
    let averaged = per_host.iter().sum::<f64>() / 2.0;
    assert!(
        (averaged - percentile(&union, 0.9)).abs() > 0.2,
        "{per_host:?}"
    );
}

#[test]
fn timer_histograms_survive_a_collector_sigkill_and_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut collector = Collector::start(port, &data);
    let host = unique_host("statsd-kill");
    let (agent, statsd_port) = agent_with_statsd(&collector, &host, dir.path());
    let burst = |from: u32| -> Vec<String> {
        (from..from + 100)
            .map(|v| format!("killed.latency:{v}|ms"))
            .collect()
    };
    let count = |c: &Collector, step: &str| {
        figure(c, "killed_latency_seconds", Some(&host), "count", step)
            .first()
            .map(|(_, n)| *n)
    };
    send_udp(statsd_port, &burst(1));
    poll("the first burst stored", || {
        (count(&collector, ALL) == Some(100.0)).then_some(())
    });

    // Killed mid-stream: what the agent sends meanwhile waits in its spool;
    // a batch stored but not acked before the kill is replayed, and must
    // count once.
    send_udp(statsd_port, &burst(101));
    collector.proc.kill();
    send_udp(statsd_port, &burst(201));
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    poll(
        "the agent spools a flush while the collector is down",
        || {
            let (queued, _) = agent_progress(&agent.stderr_lines());
            queued.values().any(|ts| *ts > sent_at).then_some(())
        },
    );
    collector = Collector::start(port, &data);
    send_udp(statsd_port, &burst(301));
    poll("every burst stored, once", || {
        let (raw, rolled) = (count(&collector, "1000d 1ms"), count(&collector, ALL));
        (raw == Some(400.0) && rolled == Some(400.0)).then_some(())
    });
    let max = figure(
        &collector,
        "killed_latency_seconds",
        Some(&host),
        "max",
        ALL,
    )[0]
    .1;
    assert!(close(max, 0.4), "{max}");
}
