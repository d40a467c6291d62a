//! Nightjar beside the real Prometheus (Debian's 2.42): the agent's
//! node_exporter-style page, scraped and linted by the reference tools.
//! Skips, saying why, where `prometheus` or `promtool` is not installed.

use nightjar_e2e::prometheus::{Prometheus, have_tool, promtool_check_metrics};
use nightjar_e2e::{free_port, http_get, poll, start_agent, status_addr, unique_host};

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
