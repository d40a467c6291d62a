//! Our own compliance suite against the reference implementation: the same
//! samples go to Nightjar (by gRPC) and, through Nightjar's remote_write
//! sender, to Debian's real Prometheus 2.42; then a fixed list of PromQL
//! queries runs against both `/api/v1/` APIs, instant at several times and
//! as range queries, and the answers must hold the same series with the
//! same values (within float tolerance). `promtool query`, a client we did
//! not write, reads the collector too. Skips, saying why, without
//! `prometheus`/`promtool`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::prometheus::{Prometheus, have_tool, url_encode};
use nightjar_e2e::{Collector, free_port, http_get, poll_for};
use serde_json::Value;

/// The queries both must answer alike.
const QUERIES: &[&str] = &[
    "http_requests_total",
    "http_requests_total{code=\"500\"}",
    "http_requests_total{code!=\"200\"}",
    "http_requests_total{job=~\"a.*\"}",
    "http_requests_total{job!~\"a.*\"}",
    "{__name__=~\"node_.*\"}",
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "irate(http_requests_total[5m])",
    "increase(http_requests_total[10m])",
    "delta(node_load[5m])",
    "idelta(node_load[5m])",
    "changes(node_load[10m])",
    "resets(http_requests_total[30m])",
    "avg_over_time(node_load[5m])",
    "min_over_time(node_load[5m])",
    "max_over_time(node_load[5m])",
    "sum_over_time(node_load[5m])",
    "count_over_time(node_load[5m])",
    "last_over_time(node_load[5m])",
    "stddev_over_time(node_load[10m])",
    "stdvar_over_time(node_load[10m])",
    "quantile_over_time(0.9, node_load[10m])",
    "present_over_time(temperature[5m])",
    "sum(rate(http_requests_total[5m]))",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (http_requests_total)",
    "avg by (host) (node_load)",
    "min(node_load)",
    "max by (instance) (node_load)",
    "count(http_requests_total)",
    "count by (code) (http_requests_total)",
    "stddev(node_load)",
    "stdvar(temperature)",
    "quantile(0.75, node_load)",
    "topk(2, node_load)",
    "bottomk(1, temperature)",
    "group by (job) (http_requests_total)",
    "node_load * 2",
    "node_load + 1",
    "100 - node_load",
    "node_load / 4",
    "node_load % 3",
    "node_load ^ 2",
    "-node_load",
    "node_load > 1",
    "node_load > bool 1",
    "2 < node_load",
    "rate(http_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(http_requests_total{code=\"200\"}[5m])",
    "sum by (job) (rate(http_requests_total{code=\"500\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
    "http_requests_total and on(job) http_requests_total{code=\"500\", instance=\"1\"}",
    "http_requests_total unless http_requests_total{code=\"500\"}",
    "node_load or temperature",
    "node_load > on(host) group_left() sum by (host) (temperature) / 20",
    "abs(node_load - 2)",
    "ceil(node_load)",
    "floor(node_load)",
    "round(node_load)",
    "round(node_load, 0.5)",
    "sqrt(node_load)",
    "clamp(node_load, 1, 2)",
    "clamp_min(node_load, 1.5)",
    "clamp_max(node_load, 1.5)",
    "exp(temperature / 10)",
    "ln(node_load)",
    "log2(node_load)",
    "log10(temperature)",
    "scalar(sum(node_load))",
    "vector(1)",
    "time()",
    "sum(node_load) * scalar(count(node_load))",
    "node_load offset 5m",
    "rate(http_requests_total[5m] offset 5m)",
    "1 + 2 * 3",
];

/// One series of the data set: host, metric, labels.
type DataSeries = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The series of the data set.
fn series() -> Vec<DataSeries> {
    let mut out = Vec::new();
    for host in ["h1", "h2"] {
        for (job, instance, code) in [
            ("api", "1", "200"),
            ("api", "1", "500"),
            ("api", "2", "200"),
            ("web", "1", "200"),
            ("web", "1", "500"),
        ] {
            out.push((
                host,
                "http_requests_total",
                vec![("job", job), ("instance", instance), ("code", code)],
            ));
        }
        for instance in ["1", "2", "3"] {
            out.push((host, "node_load", vec![("instance", instance)]));
        }
        for room in ["a", "b"] {
            out.push((host, "temperature", vec![("room", room)]));
        }
    }
    out
}

/// The value of series `k` at point `i`: counters rise at different
/// rates (one resets), gauges wander without ties.
fn value(k: usize, metric: &str, i: usize) -> f64 {
    let x = i as f64;
    match metric {
        "http_requests_total" => {
            let rate = 1.0 + k as f64 * 0.7;
            if k == 1 && i >= 70 {
                (x - 70.0) * rate
            } else {
                x * rate + k as f64 * 13.0
            }
        }
        "node_load" => 0.5 + k as f64 * 0.173 + ((x + k as f64) * 0.37).sin().abs() * 2.0,
        _ => 18.0 + k as f64 * 1.37 + (x * 0.11 + k as f64).cos() * 3.0,
    }
}

/// An answer's series as (labels as text, values as (t ms, v)).
fn normalise(data: &Value) -> BTreeMap<String, Vec<(i64, f64)>> {
    let point = |p: &Value| {
        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
        let v: f64 = p[1].as_str().unwrap().parse().unwrap();
        (t, v)
    };
    let mut out = BTreeMap::new();
    match data["resultType"].as_str().unwrap() {
        "scalar" => {
            out.insert("scalar".into(), vec![point(&data["result"])]);
        }
        _ => {
            for s in data["result"].as_array().unwrap() {
                let key = s["metric"].to_string();
                let points = match (&s["value"], &s["values"]) {
                    (Value::Array(_), _) => vec![point(&s["value"])],
                    (_, Value::Array(v)) => v.iter().map(point).collect(),
                    _ => panic!("no value in {s}"),
                };
                out.insert(key, points);
            }
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn answer(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let (status, body) = http_get(addr, path);
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status} {body}: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("{status} {body}"));
    }
    Ok(v["data"].clone())
}

#[test]
fn nightjar_answers_promql_as_prometheus_does_on_the_same_data() {
    let test = "nightjar_answers_promql_as_prometheus_does_on_the_same_data";
    if !have_tool("prometheus", test) || !have_tool("promtool", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(
        &dir.path().join("prometheus"),
        "global:\n  scrape_interval: 1m\n",
    );
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[remote_write]]\nurl = \"http://{}/api/v1/write\"\nexclude = [\"collector_.*\"]\n",
            prometheus.addr
        ),
    )
    .unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let nightjar = collector.http_addr();

    // 30 minutes at 15 s, ending a minute ago, oldest first.
    const POINTS: usize = 120;
    let end = (now_ms() - 60_000) / 1000 * 1000;
    let start = end - (POINTS as i64 - 1) * 15_000;
    let all = series();
    let mut feeders: BTreeMap<&str, Feeder> = ["h1", "h2"]
        .into_iter()
        .map(|h| (h, Feeder::new(&collector.url(), h)))
        .collect();
    for i in 0..POINTS {
        let t = start + i as i64 * 15_000;
        for host in ["h1", "h2"] {
            let feeder = feeders.get_mut(host).unwrap();
            let samples = all
                .iter()
                .enumerate()
                .filter(|(_, s)| s.0 == host)
                .map(|(k, (_, metric, labels))| {
                    feeder.sample(metric, labels, t, value(k, metric, i))
                })
                .collect();
            let ack = feeder.send_batch(samples).expect("acked");
            assert_eq!(ack.rejected_samples, 0, "{}", ack.first_rejection);
        }
    }
    let total = (all.len() * POINTS).to_string();
    let count = format!(
        "/api/v1/query?query={}&time={}",
        url_encode(
            "sum(count_over_time({__name__=~\"http_requests_total|node_load|temperature\"}[1h]))"
        ),
        end / 1000
    );
    poll_for(
        "Prometheus to hold every sample",
        Duration::from_secs(60),
        || {
            let data = answer(prometheus.addr, &count).ok()?;
            (data["result"][0]["value"][1] == total.as_str()).then_some(())
        },
    );
    assert_eq!(
        answer(nightjar, &count).unwrap()["result"][0]["value"][1],
        total.as_str()
    );

    let mut failures = Vec::new();
    let mut compared = 0;
    let instants = [
        end - 60_000,
        end - 7 * 60_000 - 300,
        end - 15 * 60_000 + 7_500,
    ];
    for q in QUERIES {
        let mut paths: Vec<String> = instants
            .iter()
            .map(|t| {
                format!(
                    "/api/v1/query?query={}&time={}",
                    url_encode(q),
                    *t as f64 / 1000.0
                )
            })
            .collect();
        paths.push(format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=30",
            url_encode(q),
            (end - 20 * 60_000) / 1000,
            end / 1000
        ));
        for path in paths {
            let theirs = answer(prometheus.addr, &path);
            let ours = answer(nightjar, &path);
            match (theirs, ours) {
                (Ok(t), Ok(o)) => {
                    let (t, o) = (normalise(&t), normalise(&o));
                    let same = t.len() == o.len()
                        && t.iter().all(|(k, tv)| {
                            o.get(k).is_some_and(|ov| {
                                ov.len() == tv.len()
                                    && ov
                                        .iter()
                                        .zip(tv)
                                        .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
                            })
                        });
                    if t.is_empty() {
                        failures.push(format!(
                            "{q}: Prometheus answered nothing at {path} (a useless case)"
                        ));
                    } else if !same {
                        failures.push(format!(
                            "{q} ({path}):\n  prometheus {t:?}\n  nightjar   {o:?}"
                        ));
                    }
                    compared += 1;
                }
                (t, o) => failures.push(format!("{q} ({path}): prometheus {t:?}, nightjar {o:?}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(QUERIES.len() >= 30);

    // promtool, a client we did not write, reads both alike.
    let promtool = |addr: SocketAddr, args: &[&str]| {
        let out = Command::new("promtool")
            .arg("query")
            .args(&args[..1])
            .args(&args[1..args.len() - 1])
            .arg(format!("http://{addr}"))
            .arg(args[args.len() - 1])
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let time = format!("--time={}", (end - 60_000) / 1000);
    for args in [
        vec![
            "instant",
            time.as_str(),
            "http_requests_total{code=\"500\"}",
        ],
        vec![
            "instant",
            time.as_str(),
            "count by (job) (http_requests_total)",
        ],
        vec!["series", "--match=http_requests_total{job=\"web\"}"],
        vec!["labels", "job"],
    ] {
        let (theirs, ours) = (promtool(prometheus.addr, &args), promtool(nightjar, &args));
        assert!(!theirs.is_empty(), "promtool {args:?} printed nothing");
        assert_eq!(ours, theirs, "promtool {args:?}");
    }
    let range_start = format!("--start={}", (end - 10 * 60_000) / 1000);
    let range_end = format!("--end={}", end / 1000);
    let args = [
        "range",
        range_start.as_str(),
        range_end.as_str(),
        "--step=1m",
        "max by (job) (http_requests_total)",
    ];
    assert_eq!(promtool(nightjar, &args), promtool(prometheus.addr, &args));
}
