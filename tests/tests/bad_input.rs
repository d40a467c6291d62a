//! Bad input gets a clear error naming the file, key, path or address, and
//! a non-zero exit.

use std::process::{Command, Output};

use nightjar_e2e::{bin, free_port, run_to_exit};

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
