//! Nightjar beside the real Prometheus (Debian's 2.42): the agent's
//! node_exporter-style page, scraped and linted by the reference tools.
//! Skips, saying why, where `prometheus` or `promtool` is not installed.

use std::process::Command;

use nightjar_e2e::prometheus::{Prometheus, have_tool, promtool_check_metrics};
use nightjar_e2e::remote_write::{WriteRequest, push, push_raw, series};
use nightjar_e2e::{
    Collector, Proc, free_port, http_get, latest_by_series, poll, start_agent, status_addr,
    token_line, unique_host,
};

/// The value of the line `name{labels} value` (labels as written) on a
/// text-format page.
fn page_value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_agents_metrics_page_passes_promtool_and_a_real_prometheus_stores_it() {
    let test = "the_agents_metrics_page_passes_promtool_and_a_real_prometheus_stores_it";
    if !have_tool("prometheus", test) || !have_tool("promtool", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // No collector: the page is served whether or not batches get through.
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let agent = start_agent(
        &unreachable,
        &unique_host("exposition"),
        &dir.path().join("state"),
        &[],
    );
    let addr = poll("the agent's status port", || {
        status_addr(&agent.stderr_lines())
    });
    // Rates exist from the second pass on.
    let page = poll("host rates on /metrics", || {
        let (status, page) = http_get(addr, "/metrics");
        (status == 200 && page.contains("\nnet_rx_bytes_per_second{")).then_some(page)
    });
    for family in [
        "cpu_mode_percent",
        "memory_total_bytes",
        "disk_used_percent",
        "load_average",
        "agent_samples_total",
    ] {
        assert!(
            page.contains(&format!("\n# HELP {family} "))
                || page.starts_with(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{page}"
        );
    }
    let (code, problems) = promtool_check_metrics(&page);
    assert_eq!((code, problems.as_str()), (0, ""), "promtool check metrics");

    let prometheus = Prometheus::start(
        &dir.path().join("prometheus"),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nightjar-agent\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );
    // memory_total_bytes does not change while the host runs: Prometheus
    // must hold exactly the page's value, under the scrape's labels.
    let want = page_value(&page, "memory_total_bytes").expect("memory_total_bytes on the page");
    let stored = poll("prometheus to store the agent's memory_total_bytes", || {
        let data = prometheus.query("memory_total_bytes{job=\"nightjar-agent\"}", None);
        let first = data["result"].as_array()?.first()?.clone();
        Some(first)
    });
    assert_eq!(stored["metric"]["instance"], addr.to_string());
    let value: f64 = stored["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(value, want);
    // Every CPU mode of the total arrives as its own series.
    let modes = prometheus.query("count(cpu_mode_percent{cpu=\"total\"})", None);
    assert_eq!(modes["result"][0]["value"][1], "8", "{modes}");
    // The scrape itself is healthy: no sample Prometheus refused.
    let up = prometheus.query("up{job=\"nightjar-agent\"}", None);
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");
}

/// A collector in `dir` whose token file holds a `write` and a `read` token.
fn collector_with_tokens(dir: &std::path::Path) -> Collector {
    let tokens = token_line("write", "vmagent", "write-secret")
        + &token_line("read", "grafana", "read-secret");
    std::fs::write(dir.join("tokens"), tokens).unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        "[auth]\ntokens_file = \"tokens\"\n",
    )
    .unwrap();
    Collector::start_with(
        free_port(),
        &dir.join("data"),
        &["--config", dir.join("collector.toml").to_str().unwrap()],
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn the_remote_write_receiver_needs_a_write_token_refuses_bad_bodies_and_stores_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let collector = collector_with_tokens(dir.path());
    let http = collector.http_addr();
    let t = now_ms() - 5_000;
    let request = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "queue_depth"),
                    ("instance", "q-1:9000"),
                    ("job", "queues"),
                ],
                &[(t, 3.0), (t + 1_000, 4.5)],
            ),
            // Not a valid metric name: refused, the rest stored.
            series(&[("__name__", "bad-name"), ("host", "q-1")], &[(t, 1.0)]),
        ],
    };
    assert!(push(http, &request, None).contains(" 401 "), "no token");
    assert!(
        push(http, &request, Some("read-secret")).contains(" 403 "),
        "a read token"
    );
    assert!(
        push(http, &request, Some("guessed")).contains(" 401 "),
        "an unknown token"
    );
    let status = push_raw(http, b"not snappy at all", Some("write-secret"));
    assert!(status.contains(" 400 "), "{status}");
    assert!(push(http, &request, Some("write-secret")).contains(" 204 "));

    // Stored under the instance as host, with every label of the request.
    let read = dir.path().join("read.token");
    std::fs::write(&read, "read-secret").unwrap();
    let stored = || {
        let out = collector.cli(&[
            "--token-file",
            read.to_str().unwrap(),
            "query",
            "queue_depth",
            "--host",
            "q-1:9000",
            "--since",
            "1h",
            "--step",
            "0",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let answer = stored();
    let points = &answer[0]["points"];
    assert_eq!(
        points,
        &serde_json::json!([[t, 3.0], [t + 1_000, 4.5]]),
        "{answer}"
    );
    assert_eq!(answer[0]["labels"]["job"], "queues");
    assert_eq!(answer[0]["labels"]["instance"], "q-1:9000");

    // The same request again (a sender's retry) stores nothing twice.
    assert!(push(http, &request, Some("write-secret")).contains(" 204 "));
    let (_, metrics) = http_get(http, "/metrics");
    // The value of the first line of family `name` whose labels hold `label`.
    let value = |name: &str, label: &str| {
        metrics.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, v) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{'))
                .then_some(())
                .filter(|()| labels.contains(label))?;
            v.parse::<f64>().ok()
        })
    };
    assert_eq!(
        value("collector_remote_write_requests_refused_total", ""),
        Some(1.0)
    );
    assert_eq!(
        value(
            "collector_samples_rejected_total",
            "reason=\"bad_metric_name\""
        ),
        Some(2.0),
        "{metrics}"
    );
    let again = stored();
    assert_eq!(again[0]["points"], answer[0]["points"]);
}

#[test]
fn a_real_prometheus_remote_writes_its_node_exporter_scrape_into_the_collector() {
    let test = "a_real_prometheus_remote_writes_its_node_exporter_scrape_into_the_collector";
    if !have_tool("prometheus", test) || !have_tool("prometheus-node-exporter", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let http = collector.http_addr();
    let exporter_addr = format!("127.0.0.1:{}", free_port());
    let _exporter = Proc::spawn(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address={exporter_addr}"))
            .arg("--log.level=warn"),
    );
    let prometheus = Prometheus::start(
        &dir.path().join("prometheus"),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{exporter_addr}']\nremote_write:\n  - url: http://{http}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n"
        ),
    );
    // node_memory_MemTotal_bytes is constant: the collector must hold
    // Prometheus' own value, under Prometheus' labels.
    let stored = poll("the collector to hold node_exporter's MemTotal", || {
        latest_by_series(&collector, "node_memory_MemTotal_bytes", &exporter_addr)
            .into_iter()
            .next()
    });
    assert_eq!(stored.0["job"], "node");
    assert_eq!(stored.0["instance"], exporter_addr);
    let theirs = prometheus.query("node_memory_MemTotal_bytes", None);
    let theirs: f64 = theirs["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored.1, theirs);
    // Prometheus' own `up` of the scrape is forwarded too, as 1.
    let up = poll("the scrape's up series", || {
        latest_by_series(&collector, "up", &exporter_addr)
            .into_iter()
            .next()
    });
    assert_eq!(up.1, 1.0);
}
