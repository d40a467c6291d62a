//! Bad input gets a clear error naming the file, key, path or address, and
//! a non-zero exit.

use std::process::{Command, Output};

use nightjar_e2e::{
    Collector, bin, free_port, latest_by_series, latest_value, poll, run_to_exit, unique_host,
};

#[track_caller]
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

#[test]
fn unknown_config_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let agent_cfg = dir.path().join("agent.toml");
    std::fs::write(&agent_cfg, "interval = \"1s\"\nintervall = \"2s\"\n").unwrap();
    let out = run_to_exit(
        Command::new(bin("nightjar-agent"))
            .arg("--config")
            .arg(&agent_cfg),
    );
    assert_fails_with(&out, &[agent_cfg.to_str().unwrap(), "intervall"]);

    let collector_cfg = dir.path().join("collector.toml");
    std::fs::write(&collector_cfg, "listen = \"127.0.0.1:1\"\nretention = 5\n").unwrap();
    let out = run_to_exit(
        Command::new(bin("nightjar-collector"))
            .arg("--config")
            .arg(&collector_cfg),
    );
    assert_fails_with(&out, &[collector_cfg.to_str().unwrap(), "retention"]);
}

#[test]
fn unparsable_duration_names_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_to_exit(
        Command::new(bin("nightjar-agent"))
            .args(["--interval", "10parsecs", "--state-dir"])
            .arg(&state),
    );
    assert_fails_with(&out, &["command line", "interval", "10parsecs"]);

    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "interval = \"soon\"\n").unwrap();
    let out = run_to_exit(
        Command::new(bin("nightjar-agent"))
            .arg("--config")
            .arg(&cfg),
    );
    assert_fails_with(&out, &[cfg.to_str().unwrap(), "interval", "soon"]);

    let out = run_to_exit(Command::new(bin("nightjar")).args(["query", "x", "--since", "banana"]));
    assert_fails_with(&out, &["--since", "banana"]);
}

#[test]
fn unwritable_data_dir_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data_dir = file.join("data");
    let out = run_to_exit(
        Command::new(bin("nightjar-collector"))
            .args([
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--data-dir",
            ])
            .arg(&data_dir),
    );
    assert_fails_with(&out, &[data_dir.to_str().unwrap()]);

    let state_dir = file.join("state");
    let out = run_to_exit(
        Command::new(bin("nightjar-agent"))
            .arg("--state-dir")
            .arg(&state_dir),
    );
    assert_fails_with(&out, &[state_dir.to_str().unwrap()]);
}

#[test]
fn bad_listen_address_names_key() {
    let out =
        run_to_exit(Command::new(bin("nightjar-collector")).args(["--listen", "localhost-ish"]));
    assert_fails_with(&out, &["listen", "localhost-ish"]);
}

#[test]
fn cli_against_dead_collector_names_the_address() {
    let addr = format!("127.0.0.1:{}", free_port());
    for cmd in [&["hosts"][..], &["status"], &["query", "cpu_usage_percent"]] {
        let out = run_to_exit(
            Command::new(bin("nightjar"))
                .args(["--collector", &format!("http://{addr}")])
                .args(cmd),
        );
        assert_fails_with(&out, &[&addr, "cannot reach collector"]);
    }
}

#[test]
fn an_oversized_batch_is_refused_and_the_collector_keeps_serving() {
    use nightjar_e2e::feeder::{Feeder, now_ms};
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let mut feed = Feeder::new(&collector.url(), &unique_host("big"));
    // ~20 MiB: over the 16 MiB message limit.
    let value = "x".repeat(1000);
    let samples: Vec<_> = (0..20_000)
        .map(|i| {
            feed.sample(
                "big_metric",
                &[("blob", &value), ("i", &i.to_string())],
                now_ms(),
                1.0,
            )
        })
        .collect();
    let err = feed.send_batch(samples).unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    // The collector is alive and stores the next, normal batch.
    let ack = feed
        .send_batch(vec![feed.sample("small_metric", &[], now_ms(), 2.0)])
        .unwrap();
    assert_eq!(ack.rejected_samples, 0);
    assert!(
        !collector
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("panicked"))
    );
}

#[test]
fn bad_samples_are_counted_and_the_good_ones_of_their_batch_stored() {
    use nightjar_e2e::feeder::{Feeder, now_ms};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "self_metrics_interval = \"1s\"\nname = \"bad-samples-collector\"\n",
    )
    .unwrap();
    let collector = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &["--config", dir.path().join("c.toml").to_str().unwrap()],
    );
    let host = unique_host("mixed");
    let mut feed = Feeder::new(&collector.url(), &host);
    let now = now_ms();
    let samples = vec![
        feed.sample("good_metric", &[], now, 1.0),
        feed.sample("future_metric", &[], now + 3_600_000, 1.0),
        feed.sample("ancient_metric", &[], now - 30 * 86_400_000, 1.0),
        feed.sample("nan_metric", &[], now, f64::NAN),
        feed.sample("bad-name", &[], now, 1.0),
    ];
    let ack = feed.send_batch(samples).unwrap();
    assert_eq!(ack.rejected_samples, 4, "{}", ack.first_rejection);
    assert_eq!(latest_value(&collector, "good_metric", &host), Some(1.0));
    let counted = |reason: &str| {
        latest_by_series(
            &collector,
            "collector_samples_rejected_total",
            "bad-samples-collector",
        )
        .into_iter()
        .find(|(labels, _)| labels["reason"] == reason)
        .map(|(_, v)| v)
    };
    poll("the rejections in the self-metrics", || {
        (counted("timestamp_out_of_range") == Some(2.0)
            && counted("non_finite_value") == Some(1.0)
            && counted("bad_metric_name") == Some(1.0))
        .then_some(())
    });
}
