//! The collector stores its own metrics under its own host name, queryable
//! like any host's.

use nightjar_e2e::{Collector, free_port, latest_by_series, poll, start_agent, unique_host};

#[test]
fn collector_metrics_are_queryable_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique_host("collector");
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!("name = \"{name}\"\nself_metrics_interval = \"1s\"\n"),
    )
    .unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = unique_host("selfmetrics-agent");
    let _agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);

    let stored = poll("the collector to count stored samples", || {
        latest_by_series(&collector, "collector_samples_stored_total", &name)
            .first()
            .map(|(_, v)| *v)
            .filter(|v| *v > 0.0)
    });
    assert!(stored > 0.0);
    let series = latest_by_series(&collector, "collector_series", &name);
    assert!(series[0].1 > 0.0);
    let disk = latest_by_series(&collector, "collector_disk_bytes", &name);
    assert!(disk[0].1 > 0.0);
    let rejected = latest_by_series(&collector, "collector_samples_rejected_total", &name);
    let mut reasons: Vec<&str> = rejected
        .iter()
        .map(|(l, _)| l["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad_label_name",
            "bad_metric_name",
            "duplicate_label",
            "foreign_host",
            "non_finite_value",
            "unsupported_value"
        ]
    );
    assert!(
        rejected.iter().all(|(_, v)| *v == 0.0),
        "the agent sends only valid samples"
    );

    let hosts = collector.cli_json(&["hosts"]);
    assert!(
        hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["host"] == name.as_str()),
        "the collector is listed as a host: {hosts}"
    );
}
