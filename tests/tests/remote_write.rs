//! The collector's remote_write sender against the real thing: Debian's
//! Prometheus 2.42 with its remote-write receiver gets every stored sample
//! with its values and labels, across a 30 s outage of Prometheus and a
//! SIGKILL of the collector mid-backlog; a real HTTP receiver shows that a
//! 400 is dropped and counted while a 503 is retried.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::prometheus::{Prometheus, api_data, have_tool, url_encode};
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::remote_write::WriteRequest;
use nightjar_e2e::{Collector, free_port, http_get, poll, poll_for, unique_host};

fn collector(dir: &Path, port: u16, remote_write: &str) -> Collector {
    let config = dir.join("collector.toml");
    std::fs::write(&config, remote_write).unwrap();
    Collector::start_with(
        port,
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
    )
}

/// Every raw sample of `selector` Prometheus holds, by its `series` label:
/// (timestamp ms, value), with the labels of each series.
fn prometheus_samples(
    prometheus: &Prometheus,
    selector: &str,
) -> BTreeMap<String, (serde_json::Value, Vec<(i64, f64)>)> {
    let data = api_data(
        prometheus.addr,
        &format!(
            "/api/v1/query?query={}&time={}",
            url_encode(&format!("{selector}[1h]")),
            now_ms() as f64 / 1000.0 + 1.0
        ),
    );
    let mut out = BTreeMap::new();
    for series in data["result"].as_array().into_iter().flatten() {
        let points = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect();
        let name = series["metric"]["series"].as_str().unwrap_or("").to_owned();
        out.insert(name, (series["metric"].clone(), points));
    }
    out
}

/// Waits until Prometheus holds exactly `sent` for each series.
fn wait_for_all(prometheus: &Prometheus, sent: &BTreeMap<String, Vec<(i64, f64)>>, what: &str) {
    let selector = "rw_probe";
    poll_for(what, Duration::from_secs(60), || {
        let got = prometheus_samples(prometheus, selector);
        sent.iter()
            .all(|(name, points)| got.get(name).is_some_and(|(_, p)| p == points))
            .then_some(())
    });
}

/// Sends batch `i`: one point of each probe series, stamped a second ago
/// (a timestamp no earlier batch has), recorded in `sent`.
fn send(feeder: &mut Feeder, sent: &mut BTreeMap<String, Vec<(i64, f64)>>, i: usize) {
    let ts = now_ms() - 1_000;
    let samples = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let value = i as f64 * 1.25 + k as f64 / 3.0;
            sent.entry(s.to_string()).or_default().push((ts, value));
            feeder.sample("rw_probe", &[("series", s)], ts, value)
        })
        .collect();
    let ack = feeder.send_batch(samples).expect("acked");
    assert_eq!(ack.rejected_samples, 0, "{}", ack.first_rejection);
    poll("the clock to move on", || {
        (now_ms() - 1_000 > ts).then_some(())
    });
}

#[test]
fn a_real_prometheus_gets_every_sample_across_its_outage_and_a_collector_kill() {
    let test = "a_real_prometheus_gets_every_sample_across_its_outage_and_a_collector_kill";
    if !have_tool("prometheus", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prometheus_port = free_port();
    let prometheus_dir = dir.path().join("prometheus");
    let no_scrapes = "global:\n  scrape_interval: 1m\n";
    let mut prometheus = Prometheus::start_on(&prometheus_dir, no_scrapes, prometheus_port);
    let config = format!(
        "[[remote_write]]\nname = \"prom\"\nurl = \"http://127.0.0.1:{prometheus_port}/api/v1/write\"\nshards = 2\nmax_samples_per_send = 7\nlabels = {{ cluster = \"eu-test\" }}\n"
    );
    let port = free_port();
    let mut collector = collector(dir.path(), port, &config);
    let host = unique_host("rw");
    let mut feeder = Feeder::new(&collector.url(), &host);
    let mut sent: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();

    // Values and labels as stored.
    for i in 0..10 {
        send(&mut feeder, &mut sent, i);
    }
    wait_for_all(&prometheus, &sent, "Prometheus to hold the first points");
    let got = prometheus_samples(&prometheus, "rw_probe");
    let (labels, _) = &got["a"];
    assert_eq!(
        labels,
        &serde_json::json!({
            "__name__": "rw_probe", "series": "a", "host": host, "cluster": "eu-test"
        })
    );

    // Prometheus away for 30 s while data keeps arriving: no hole after.
    prometheus.proc.signal("TERM");
    poll("Prometheus to stop", || {
        prometheus.proc.has_exited().then_some(())
    });
    let outage = Instant::now();
    let mut i = 10;
    while outage.elapsed() < Duration::from_secs(30) {
        send(&mut feeder, &mut sent, i);
        i += 1;
        // A batch a second, as an agent sends.
        let next = outage + Duration::from_secs((i - 10) as u64);
        while Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (_, metrics) = http_get(collector.http_addr(), "/metrics");
    assert!(
        metrics.contains("collector_remote_write_samples_failed_total{endpoint=\"prom\""),
        "{metrics}"
    );
    prometheus = Prometheus::start_on(&prometheus_dir, no_scrapes, prometheus_port);
    wait_for_all(&prometheus, &sent, "the outage's points to arrive");

    // A backlog, then the collector killed and started again: nothing lost.
    prometheus.proc.signal("TERM");
    poll("Prometheus to stop", || {
        prometheus.proc.has_exited().then_some(())
    });
    for _ in 0..8 {
        send(&mut feeder, &mut sent, i);
        i += 1;
    }
    collector.proc.kill();
    // Same port: the feeder (its seq going on) sends to the new process.
    collector = self::collector(dir.path(), port, &config);
    for _ in 0..3 {
        send(&mut feeder, &mut sent, i);
        i += 1;
    }
    prometheus = Prometheus::start_on(&prometheus_dir, no_scrapes, prometheus_port);
    wait_for_all(
        &prometheus,
        &sent,
        "the backlog to arrive after the collector's restart",
    );
    let got = prometheus_samples(&prometheus, "rw_probe");
    assert_eq!(got["c"].1, sent["c"], "every point once, in order");
    // The new process sent the backlog (its counters start at 0).
    let (_, metrics) = http_get(collector.http_addr(), "/metrics");
    let sent_total = metrics
        .lines()
        .find(|l| l.starts_with("collector_remote_write_samples_sent_total{"))
        .and_then(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok());
    assert!(sent_total >= Some(11.0 * 3.0), "{metrics}");
}

/// The samples of a remote_write body (the tests' own decoder).
fn decode(body: &[u8]) -> Vec<(String, i64, f64)> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let request: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
    request
        .timeseries
        .iter()
        .flat_map(|s| {
            let name = s
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .unwrap()
                .value
                .clone();
            s.samples
                .iter()
                .map(move |p| (name.clone(), p.timestamp, p.value))
        })
        .collect()
}

#[test]
fn a_400_is_dropped_and_counted_and_a_503_is_retried_until_taken() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    receiver.set_status(400);
    let config = format!(
        "[[remote_write]]\nname = \"hook\"\nurl = \"{}\"\nshards = 1\nexclude = [\"collector_.*\"]\n",
        receiver.url("/write")
    );
    let collector = collector(dir.path(), free_port(), &config);
    let mut feeder = Feeder::new(&collector.url(), &unique_host("rw400"));
    let t = now_ms() - 10_000;
    for k in 0..3 {
        feeder.send_at("refused_probe", &[], t + k, k as f64);
    }
    let dropped = |metrics: &str| {
        metrics.lines().find_map(|l| {
            (l.starts_with("collector_remote_write_samples_dropped_total{")
                && l.contains("reason=\"rejected\""))
            .then(|| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        })
    };
    poll("the refused samples to be counted as dropped", || {
        let (_, metrics) = http_get(collector.http_addr(), "/metrics");
        (dropped(&metrics)? >= 3.0).then_some(())
    });
    // Each refused request came once: a 4xx is not retried.
    let refused: Vec<Vec<u8>> = receiver
        .received("/write")
        .into_iter()
        .map(|r| r.body)
        .collect();
    let mut distinct = refused.clone();
    distinct.dedup();
    assert_eq!(
        refused.len(),
        distinct.len(),
        "a refused request was sent again"
    );
    let refused_samples: Vec<_> = refused.iter().flat_map(|b| decode(b)).collect();
    assert_eq!(refused_samples.len(), 3);

    // A 503 is retried with the same request until the endpoint takes it.
    receiver.set_status(503);
    feeder.send_at("retried_probe", &[], t + 10, 42.0);
    poll("a retry of the 503-answered request", || {
        let retried = receiver
            .received("/write")
            .iter()
            .filter(|r| r.status == 503)
            .count();
        (retried >= 2).then_some(())
    });
    receiver.set_status(204);
    let taken = poll("the retried request to be taken", || {
        receiver
            .received("/write")
            .into_iter()
            .find(|r| r.status == 204)
    });
    assert_eq!(
        decode(&taken.body),
        [("retried_probe".to_owned(), t + 10, 42.0)]
    );
    let headers = &taken.headers;
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    // The refused samples stay dropped: never offered again.
    assert!(
        receiver
            .received("/write")
            .iter()
            .filter(|r| r.status != 400)
            .all(|r| decode(&r.body).iter().all(|s| s.0 == "retried_probe"))
    );
}
