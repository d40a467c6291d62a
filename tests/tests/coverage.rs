//! Every metric family of the agent appears with plausible values on this
//! machine, and the readings agree with the standard tools (df, free).

use std::process::Command;

use nightjar_e2e::{
    Collector, agent_progress, free_port, latest_by_series, poll, start_agent, unique_host,
};
use serde_json::Value;

fn values(c: &Collector, metric: &str, host: &str) -> Vec<(Value, f64)> {
    latest_by_series(c, metric, host)
}

fn one(c: &Collector, metric: &str, host: &str) -> f64 {
    let v = values(c, metric, host);
    assert_eq!(v.len(), 1, "{metric}: expected one series, got {v:?}");
    v[0].1
}

fn with_label<'a>(v: &'a [(Value, f64)], name: &str, value: &str) -> Vec<&'a (Value, f64)> {
    v.iter().filter(|(l, _)| l[name] == value).collect()
}

#[test]
fn every_metric_family_has_plausible_values() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("coverage");
    let agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);
    // Three acked batches: rates exist from the second on.
    poll("three acked batches", || {
        (agent_progress(&agent.stderr_lines()).1 >= 3).then_some(())
    });

    // CPU modes add up to 100 for the total and each core.
    let modes = values(&collector, "cpu_mode_percent", &host);
    let total = with_label(&modes, "cpu", "total");
    let mode_names: std::collections::BTreeSet<&str> = total
        .iter()
        .map(|(l, _)| l["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        mode_names.into_iter().collect::<Vec<_>>(),
        [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"
        ]
    );
    let sum: f64 = total.iter().map(|(_, v)| v).sum();
    assert!((sum - 100.0).abs() < 0.5, "cpu modes sum to {sum}");
    assert!(with_label(&modes, "cpu", "0").len() == 8);

    assert!(one(&collector, "context_switches_per_second", &host) > 0.0);
    assert!(one(&collector, "interrupts_per_second", &host) >= 0.0);
    assert!(
        one(&collector, "procs_running", &host) >= 1.0,
        "the agent itself runs"
    );

    let total_mem = one(&collector, "memory_total_bytes", &host);
    for m in [
        "memory_free_bytes",
        "memory_cached_bytes",
        "memory_buffers_bytes",
        "memory_available_bytes",
    ] {
        let v = one(&collector, m, &host);
        assert!((0.0..=total_mem).contains(&v), "{m} = {v} of {total_mem}");
    }
    assert!(one(&collector, "swap_in_pages_per_second", &host) >= 0.0);
    assert!(one(&collector, "oom_kills_total", &host) >= 0.0);

    for (labels, v) in values(&collector, "disk_inodes_used_percent", &host) {
        assert!((0.0..=100.0).contains(&v), "{labels}: {v}");
    }
    let mounts = values(&collector, "disk_used_percent", &host);
    assert!(
        mounts.iter().any(|(l, _)| l["mountpoint"] == "/"),
        "/ is not reported: {mounts:?}"
    );
    for (labels, _) in &mounts {
        let m = labels["mountpoint"].as_str().unwrap();
        let pseudo = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}/")));
        assert!(!pseudo, "pseudo filesystem reported: {labels}");
    }
    let root_ro = values(&collector, "disk_read_only", &host);
    assert!(root_ro.iter().all(|(_, v)| *v == 0.0 || *v == 1.0));

    let util = values(&collector, "diskio_util_percent", &host);
    assert!(!util.is_empty(), "no block device reported");
    for (labels, v) in &util {
        assert!((0.0..=100.0).contains(v), "{labels}: {v}");
    }
    for m in [
        "diskio_read_bytes_per_second",
        "diskio_write_bytes_per_second",
        "diskio_reads_per_second",
        "diskio_writes_per_second",
        "diskio_await_seconds",
    ] {
        assert!(
            values(&collector, m, &host).iter().all(|(_, v)| *v >= 0.0),
            "{m}"
        );
    }

    let rx = values(&collector, "net_rx_packets_per_second", &host);
    assert!(!rx.is_empty(), "no interface reported");
    assert!(
        with_label(&rx, "interface", "lo").is_empty(),
        "loopback is excluded by default"
    );
    for m in [
        "net_tx_packets_per_second",
        "net_rx_errors_per_second",
        "net_tx_errors_per_second",
        "net_rx_drops_per_second",
        "net_tx_drops_per_second",
    ] {
        assert!(
            values(&collector, m, &host).iter().all(|(_, v)| *v >= 0.0),
            "{m}"
        );
    }
    let links = values(&collector, "net_link_up", &host);
    assert!(
        links.iter().any(|(_, v)| *v == 1.0),
        "no link up: {links:?}"
    );

    // The agent's own stream to the collector is an established connection.
    assert!(one(&collector, "tcp_established_connections", &host) >= 1.0);
    assert!(one(&collector, "tcp_retransmits_per_second", &host) >= 0.0);
    assert!(one(&collector, "tcp_listen_overflows_per_second", &host) >= 0.0);

    assert!(one(&collector, "host_uptime_seconds", &host) > 0.0);
    assert!(one(&collector, "host_processes", &host) >= 3.0);
    let (fds, max_fds) = (
        one(&collector, "host_open_fds", &host),
        one(&collector, "host_max_fds", &host),
    );
    assert!(fds > 0.0 && fds <= max_fds, "{fds} of {max_fds}");

    if std::path::Path::new("/proc/pressure/cpu").exists() {
        let some = values(&collector, "pressure_some_percent", &host);
        assert!(!with_label(&some, "resource", "cpu").is_empty());
        assert!(some.iter().all(|(_, v)| (0.0..=100.0).contains(v)));
    }

    assert!(one(&collector, "agent_batches_acked_total", &host) >= 1.0);
    assert_eq!(
        one(&collector, "agent_spool_corrupt_records_total", &host),
        0.0
    );
}

/// `df -B1 --output=used,avail /` as (used, avail).
fn df_root() -> (f64, f64) {
    let out = Command::new("df")
        .args(["-B1", "--output=used,avail", "/"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let nums: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn readings_match_df_and_free() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("readings");
    let agent = start_agent(&collector.url(), &host, &dir.path().join("state"), &[]);
    poll("an acked batch", || {
        (agent_progress(&agent.stderr_lines()).1 >= 1).then_some(())
    });

    let disks = latest_by_series(&collector, "disk_used_percent", &host);
    let root = disks
        .iter()
        .find(|(l, _)| l["mountpoint"] == "/")
        .expect("/ is reported");
    let (used, avail) = df_root();
    let df_percent = used / (used + avail) * 100.0;
    // Other tests write to the same disk meanwhile: allow a sliver.
    assert!(
        (root.1 - df_percent).abs() < 0.5,
        "ours {} vs df {df_percent}",
        root.1
    );
    let free_disk = latest_by_series(&collector, "disk_free_bytes", &host);
    let ours_avail = free_disk
        .iter()
        .find(|(l, _)| l["mountpoint"] == "/")
        .unwrap()
        .1;
    // The same sliver as above, in bytes: 0.5 % of the filesystem (a
    // relative bound on "avail" alone fails on a nearly full disk that a
    // parallel build writes to between our sample and df).
    assert!(
        (ours_avail - avail).abs() < 0.005 * (used + avail),
        "ours {ours_avail} vs df {avail}"
    );

    let out = Command::new("free").arg("-b").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mem: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let total = latest_by_series(&collector, "memory_total_bytes", &host)[0].1;
    assert_eq!(total, mem[0], "memory_total_bytes is free's total");
}

#[test]
fn systemd_unit_states_are_reported_and_absent_systemd_is_no_error() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    // A stand-in systemctl (this machine's PID 1 is not systemd) answering
    // `systemctl show UNIT... --property=Id,ActiveState` as systemd does.
    let fake_bin = dir.path().join("bin");
    std::fs::create_dir(&fake_bin).unwrap();
    let systemctl = fake_bin.join("systemctl");
    std::fs::write(
        &systemctl,
        "#!/bin/sh\nfor u in \"$@\"; do case \"$u\" in show|--*) ;; nginx.service) printf 'Id=%s\\nActiveState=active\\n\\n' \"$u\";; *) printf 'Id=%s\\nActiveState=failed\\n\\n' \"$u\";; esac; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "systemd_units = [\"nginx.service\", \"backup.service\"]\n",
    )
    .unwrap();

    let collector = Collector::start(free_port(), &dir.path().join("data"));
    let with_systemd = unique_host("systemd");
    let path = format!(
        "{}:{}",
        fake_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _a = nightjar_e2e::start_agent_env(
        &collector.url(),
        &with_systemd,
        &dir.path().join("state-a"),
        &["--config", config.to_str().unwrap()],
        &[("PATH", path)],
    );
    let without_systemd = unique_host("nosystemd");
    let b = start_agent(
        &collector.url(),
        &without_systemd,
        &dir.path().join("state-b"),
        &["--config", config.to_str().unwrap()],
    );

    let units = poll("unit states", || {
        let v = latest_by_series(&collector, "systemd_unit_active", &with_systemd);
        (v.len() == 2).then_some(v)
    });
    let nginx = with_label(&units, "unit", "nginx.service");
    assert_eq!(
        (nginx[0].0["state"].as_str(), nginx[0].1),
        (Some("active"), 1.0)
    );
    let backup = with_label(&units, "unit", "backup.service");
    assert_eq!(
        (backup[0].0["state"].as_str(), backup[0].1),
        (Some("failed"), 0.0)
    );

    // Without systemd the agent keeps shipping, just without unit states.
    poll("batches from the host without systemd", || {
        (agent_progress(&b.stderr_lines()).1 >= 3).then_some(())
    });
    assert!(latest_by_series(&collector, "systemd_unit_active", &without_systemd).is_empty());
}
