//! Capacity end to end (docs/capacity.md), with the real collector, agent
//! and CLI: a statsd gauge fed a known ramp is forecast to cross its
//! threshold when the ramp says; a filesystem filled at a steady rate
//! tops `nightjar capacity`; a forecast rule pages a webhook receiver
//! before the threshold is reached, and not for a flat series; bad input
//! gets an answer, not a NaN.

use std::path::Path;
use std::time::{Duration, Instant};

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::small_fs::SmallFs;
use nightjar_e2e::*;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_statsd_ramp_is_forecast_to_cross_when_the_ramp_says() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(free_port(), &dir.path().join("data"));
    let statsd = free_port();
    let host = unique_host("ramp");
    let _agent = start_agent(
        &c.url(),
        &host,
        &dir.path().join("state"),
        &["--statsd", &format!("127.0.0.1:{statsd}")],
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // The ramp: 10 + 2 per second from t0, so 200 at t0 + 95 s.
    let t0 = now_ms();
    let value_at = |t: i64| 10.0 + 2.0 * (t - t0) as f64 / 1000.0;
    let stored = |c: &Collector| {
        c.cli_json(&[
            "query",
            "ramp_depth",
            "--host",
            &host,
            "--since",
            "5m",
            "--step",
            "0",
        ])[0]["points"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // Feed the gauge until the agent has stored 15 of its readings.
    poll_for("15 readings of the ramp", Duration::from_secs(60), || {
        let now = now_ms();
        udp.send_to(
            format!("ramp_depth:{}|g", value_at(now)).as_bytes(),
            ("127.0.0.1", statsd),
        )
        .unwrap();
        (stored(&c) >= 15).then_some(())
    });
    let rows = c.cli_json(&[
        "forecast",
        "ramp_depth",
        "--host",
        &host,
        "--threshold",
        "200",
        "--since",
        "5m",
    ]);
    let row = &rows[0];
    eprintln!("forecast: {row:#}");
    assert_eq!(row["fit"], "linear");
    assert_eq!(row["crossing"], "crossing", "{row}");
    assert!(row["r_squared"].as_f64().unwrap() > 0.99, "{row}");
    // 2 a second = 172800 a day.
    let slope = row["slope_per_day"].as_f64().unwrap();
    assert!((slope / 172_800.0 - 1.0).abs() < 0.05, "slope {slope}/day");
    let eta = row["eta_ms"].as_i64().unwrap();
    let expected = t0 + 95_000;
    // The agent reads the gauge once a second: its readings lag the ramp
    // by up to a second (and the statsd packet's way).
    assert!(
        (eta - expected).abs() <= 3_000,
        "crossing predicted at {eta}, the ramp crosses at {expected} ({} ms off)",
        eta - expected
    );
    let (low, high) = (
        row["eta_low_ms"].as_i64().unwrap(),
        row["eta_high_ms"].as_i64().unwrap(),
    );
    assert!(low <= eta && eta <= high, "{row}");
    // An exponential fit of a line fits it a little worse.
    let exp = c.cli_json(&[
        "forecast",
        "ramp_depth",
        "--host",
        &host,
        "--threshold",
        "200",
        "--since",
        "5m",
        "--fit",
        "exponential",
    ]);
    assert!(exp[0]["r_squared"].as_f64().unwrap() <= row["r_squared"].as_f64().unwrap());
}

#[test]
fn a_filesystem_filling_steadily_tops_nightjar_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("growing");
    let fs = match SmallFs::mount_ext4(&mount, 64) {
        Ok(fs) => fs,
        Err(reason) => {
            eprintln!("SKIPPED a_filesystem_filling_steadily_tops_nightjar_capacity: {reason}");
            return;
        }
    };
    let c = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("filling");
    let _agent = start_agent_command(
        fs.command(bin("nightjar-agent")),
        &c.url(),
        &host,
        &dir.path().join("state"),
        &[],
        &[],
    );
    let mountpoint = mount.display().to_string();
    let readings = |c: &Collector| {
        c.cli_json(&[
            "query",
            "disk_used_percent",
            "--host",
            &host,
            "--label",
            &format!("mountpoint={mountpoint}"),
            "--since",
            "5m",
            "--step",
            "0",
        ])[0]["points"]
            .as_array()
            .map_or(0, Vec::len)
    };
    poll("the filesystem reported", || {
        (readings(&c) > 0).then_some(())
    });
    // 1 MiB every 250 ms: a steady 4 MiB/s into 64 MiB.
    let started = Instant::now();
    let mut written = 0;
    while readings(&c) < 8 || started.elapsed() < Duration::from_secs(6) {
        let status = fs
            .command("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}/fill-{written}", mountpoint))
            .args(["bs=1M", "count=1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        written += 1;
        assert!(written < 50, "filled {written} MiB without 8 readings");
        std::thread::sleep(Duration::from_millis(250));
    }
    let rows = c.cli_json(&["capacity", "--host", &host, "--since", "5m"]);
    let top = &rows[0];
    eprintln!("capacity top: {top:#}");
    assert_eq!(
        top["resource"],
        format!("filesystem {mountpoint}"),
        "the filling filesystem is first: {rows:#}"
    );
    assert_eq!(top["crossing"], "crossing", "{top}");
    assert!(top["slope_per_day"].as_f64().unwrap() > 0.0);
    let table = ok(c.cli(&["capacity", "--host", &host, "--since", "5m"]));
    let first_row = table.lines().nth(1).unwrap_or_default();
    assert!(
        first_row.contains(&format!("filesystem {mountpoint}")),
        "{table}"
    );
}

fn write_forecast_config(dir: &Path, hook: &str) {
    std::fs::write(
        dir.join("rules.toml"),
        r#"
[[rule]]
name = "queue_full_soon"
kind = "forecast"
metric = "queue_depth"
threshold = 1000
horizon = "1h"
over = "30m"
min_r_squared = 0.9
severity = "critical"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "rules = [\"rules.toml\"]\n\n[capacity]\nforecast_interval = \"1s\"\n\n[alerting]\nhost_down_after = 0\n\n[[alerting.hook]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook}\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_forecast_rule_pages_before_the_threshold_and_not_for_a_flat_series() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    write_forecast_config(dir.path(), &receiver.url("/ops"));
    let c = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &[
            "--config",
            dir.path().join("collector.toml").to_str().unwrap(),
        ],
    );
    let rising = unique_host("q-rising");
    let flat = unique_host("q-flat");
    // The last 20 minutes: rising from 100 by 15 a minute (400 now, 1000
    // in 40 minutes: within the 1 h horizon), and flat at 400.
    let now = now_ms();
    let mut a = Feeder::new(&c.url(), &rising);
    let mut b = Feeder::new(&c.url(), &flat);
    for i in 0..=20 {
        let t = now - (20 - i) * 60_000;
        a.send_at("queue_depth", &[], t, 100.0 + 15.0 * i as f64);
        b.send_at("queue_depth", &[], t, 400.0);
    }
    let page = poll("the forecast page", || {
        receiver
            .accepted("/ops")
            .into_iter()
            .find(|m| m["rule"] == "queue_full_soon" && m["event"] == "firing")
    });
    let alert = &page["alerts"][0];
    assert_eq!(alert["labels"]["host"], rising, "{page}");
    assert_eq!(alert["severity"], "critical");
    let seconds = alert["value"].as_f64().unwrap();
    assert!(
        (seconds - 2400.0).abs() < 120.0,
        "predicted {seconds} s to 1000; the ramp says 2400 s"
    );
    // Paged before the threshold: the queue is at 400 of 1000.
    let latest = latest_value(&c, "queue_depth", &rising).unwrap();
    assert!(latest < 1000.0, "{latest}");
    // The flat series has its forecast too: never.
    let flat_forecast = poll("the flat series' forecast", || {
        c.cli_json(&[
            "query",
            "forecast_seconds_to_threshold",
            "--host",
            &flat,
            "--since",
            "5m",
            "--step",
            "0",
        ])
        .as_array()
        .and_then(|s| s.first().cloned())
    });
    let last = flat_forecast["points"].as_array().unwrap().last().unwrap()[1]
        .as_f64()
        .unwrap();
    assert_eq!(last, 1.0e9, "not crossing: {flat_forecast}");
    assert!(
        !receiver
            .accepted("/ops")
            .iter()
            .flat_map(|m| m["alerts"].as_array().cloned().unwrap_or_default())
            .any(|a| a["labels"]["host"] == flat),
        "the flat series paged"
    );
}

#[test]
fn bad_capacity_input_gets_an_answer_not_a_nan() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(free_port(), &dir.path().join("data"));
    let host = unique_host("cap-bad");
    let mut f = Feeder::new(&c.url(), &host);
    let now = now_ms();
    f.send_at("two_points", &[], now - 60_000, 1.0);
    f.send_at("two_points", &[], now - 30_000, 2.0);
    for i in 0..5 {
        f.send_at("negative", &[], now - 50_000 + i * 10_000, -5.0 + i as f64);
        f.send_at(
            "full",
            &[],
            now - 50_000 + i * 10_000,
            90.0 + i as f64 * 5.0,
        );
    }
    let one = |metric: &str, extra: &[&str]| {
        let mut args = vec!["forecast", metric, "--host", &host, "--since", "10m"];
        args.extend_from_slice(extra);
        c.cli_json(&args)[0].clone()
    };
    let few = one("two_points", &["--threshold", "10"]);
    assert_eq!(few["crossing"], "error");
    assert_eq!(few["error"], "2 points; a fit needs at least 3");
    let log = one("negative", &["--threshold", "10", "--fit", "logarithmic"]);
    assert_eq!(
        log["crossing"], "crossing",
        "logarithmic takes any y: {log}"
    );
    let exp = one("negative", &["--threshold", "10", "--fit", "exponential"]);
    assert_eq!(exp["crossing"], "error");
    assert!(
        exp["error"]
            .as_str()
            .unwrap()
            .contains("needs values above zero; this series has -5"),
        "{exp}"
    );
    let crossed = one("full", &["--threshold", "100"]);
    assert_eq!(crossed["crossing"], "already", "{crossed}");
    assert!(crossed["eta_low_ms"].is_null());
    let refused = |args: &[&str]| {
        let out = c.cli(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let short = refused(&["forecast", "full", "--threshold", "1", "--since", "10s"]);
    assert!(short.contains("too short to fit a trend"), "{short}");
    let fit = refused(&["forecast", "full", "--threshold", "1", "--fit", "cubic"]);
    assert!(
        fit.contains("\"cubic\" is not linear, exponential"),
        "{fit}"
    );
    let growth = refused(&[
        "capacity",
        "correlate",
        "--kpi",
        "full",
        "--volume",
        "full",
        "--what-if",
        "-150%",
    ]);
    assert!(growth.contains("cannot shrink by 100 %"), "{growth}");
}

/// The worked example of docs/capacity.md with real binaries: price
/// generation at 1 ms today, the fit predicting 4 ms at +50 % volume,
/// within a 5 ms SLA; and the capacity report with it.
#[test]
fn the_worked_example_correlates_volume_and_kpi_and_the_report_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = unique_host("pricing");
    std::fs::write(
        dir.path().join("services.toml"),
        format!(
            "[[service]]\nname = \"pricing\"\n[[service.component]]\nname = \"price generation\"\nlayer = \"business\"\nmetric = \"price_generation_ms\"\nmatchers = [\"host={host}\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("collector.toml"),
        "services = [\"services.toml\"]\n\n[[capacity.correlation]]\nname = \"price generation\"\nservice = \"pricing\"\nkpi = \"price_generation_ms\"\nvolume = \"prices_per_minute\"\nwhat_if = 0.5\nsla = 5.0\n",
    )
    .unwrap();
    let c = Collector::start_with(
        free_port(),
        &dir.path().join("data"),
        &[
            "--config",
            dir.path().join("collector.toml").to_str().unwrap(),
        ],
    );
    let mut f = Feeder::new(&c.url(), &host);
    let now = now_ms();
    // A minute apart over the last 20 minutes: volume 900 → 1000 prices a
    // minute; 6 µs more per extra price: 0.4 ms → 1 ms.
    for i in 0..=20 {
        let t = now - (20 - i) * 60_000;
        let v = 900.0 + 5.0 * i as f64;
        f.send_at("prices_per_minute", &[], t, v);
        f.send_at("price_generation_ms", &[], t, 1.0 + 0.006 * (v - 1000.0));
    }
    let correlate = &[
        "capacity",
        "correlate",
        "--kpi",
        "price_generation_ms",
        "--volume",
        "prices_per_minute",
        "--since",
        "30m",
        "--step",
        "1m",
        "--what-if",
        "+50%",
        "--sla",
        "5",
    ];
    let r = c.cli_json(correlate);
    eprintln!("correlate: {r:#}");
    let f64_of = |v: &serde_json::Value| v.as_f64().unwrap();
    assert_eq!(r["buckets"], 21);
    assert!((f64_of(&r["kpi_now"]) - 1.0).abs() < 1e-6, "{r}");
    assert!((f64_of(&r["what_if"]["kpi"]) - 4.0).abs() < 1e-6, "{r}");
    assert_eq!(r["what_if"]["within_sla"], true);
    assert!((f64_of(&r["elasticity_percent"]) - 6.0).abs() < 1e-6, "{r}");
    assert!(f64_of(&r["r_squared"]) > 0.999999);
    let text = ok(c.cli(correlate));
    assert!(text.contains("within the SLA of 5"), "{text}");
    // The report: the declared correlation (its 1 min buckets by default
    // for a window under two days) and the service's KPI trend.
    let report = c.cli_json(&["report", "capacity", "--window", "30m"]);
    let corr = &report["correlations"][0];
    assert_eq!(corr["name"], "price generation", "{report}");
    assert_eq!(corr["result"]["within_sla"], true, "{corr}");
    let kpi = &report["kpis"][0];
    assert_eq!(
        (kpi["service"].as_str(), kpi["component"].as_str()),
        (Some("pricing"), Some("price generation"))
    );
    assert!(f64_of(&kpi["series"][0]["slope_per_day"]) > 0.0, "{kpi}");
    let html = ok(c.cli(&["report", "capacity", "--window", "30m", "--html"]));
    assert!(
        html.starts_with("<!doctype html>") && html.contains("<h2>Volume vs KPI</h2>"),
        "{html}"
    );
}
