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
    let mut tiers: Vec<String> = latest_by_series(&collector, "collector_tier_disk_bytes", &name)
        .iter()
        .map(|(l, _)| l["tier"].as_str().unwrap().to_owned())
        .collect();
    tiers.sort();
    assert_eq!(tiers, ["1h", "1m", "raw"]);
    for gauge in [
        "collector_write_stall_seconds_total",
        "collector_compactions_running",
        "collector_ingest_log_bytes",
    ] {
        assert_eq!(
            latest_by_series(&collector, gauge, &name).len(),
            1,
            "{gauge}"
        );
    }
    let rejected = latest_by_series(&collector, "collector_samples_rejected_total", &name);
    let mut reasons: Vec<&str> = rejected
        .iter()
        .map(|(l, _)| l["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "bad_histogram",
            "bad_label_name",
            "bad_metric_name",
            "duplicate_label",
            "foreign_host",
            "label_too_long",
            "metric_name_too_long",
            "non_finite_value",
            "out_of_order",
            "series_limit",
            "timestamp_out_of_range",
            "too_many_labels",
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

#[test]
fn series_over_the_per_host_limit_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique_host("limited");
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\nself_metrics_interval = \"1s\"\n[limits]\nmax_series_per_host = 5\n"
        ),
    )
    .unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let host = unique_host("limited-agent");
    let _agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);

    poll("series-limit rejections to be counted", || {
        latest_by_series(&collector, "collector_samples_rejected_total", &name)
            .into_iter()
            .find(|(l, v)| l["reason"] == "series_limit" && *v > 0.0)
    });
    let series = collector.cli_json(&["series", "--host", &host]);
    assert_eq!(series.as_array().unwrap().len(), 5, "{series}");
    // The admitted series keep flowing: one of them gathers more points.
    let first_metric = series[0]["metric"].as_str().unwrap().to_owned();
    poll("an admitted series to keep receiving points", || {
        let v = collector.cli_json(&[
            "query",
            &first_metric,
            "--host",
            &host,
            "--since",
            "1h",
            "--step",
            "0",
        ]);
        let n = v.as_array()?.first()?["points"].as_array()?.len();
        (n >= 3).then_some(())
    });
}
