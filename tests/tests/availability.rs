//! Availability against the SLA end to end (docs/availability.md): a real
//! agent runs a synthetic check that the test fails on purpose for a
//! measured time, inside a window with a one-off maintenance window over
//! part of the outage and a collector stop; `nightjar report availability`
//! reports the raw and weighted outage, the excluded and the unknown time.

use std::path::Path;
use std::time::{Duration, Instant};

use nightjar_e2e::feeder::now_ms;
use nightjar_e2e::*;

/// The check runs every second and the recorder judges at least every 2 s
/// (and at each alert change): what a measured time may be off by.
const RESOLUTION_S: f64 = 3.0;

fn write_config(dir: &Path, maintenance_from: i64, maintenance_until: i64) {
    let ts = |ms: i64| {
        let secs = ms / 1000;
        let nanos = (ms % 1000) * 1_000_000;
        let d = std::time::UNIX_EPOCH + Duration::new(secs as u64, nanos as u32);
        humantime::format_rfc3339_millis(d).to_string()
    };
    std::fs::write(
        dir.join("services.toml"),
        r#"
[[service]]
name = "reports"
description = "Regional reports"
availability_target = 99.0
users = { label = "region", shares = { eu = 0.9, us = 0.1 } }

[[service.component]]
name = "report smoke test"
layer = "application"
metric = "check_up"
matchers = ["check=smoke"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("rules.toml"),
        r#"
[[rule]]
name = "smoke_down"
metric = "check_up"
match = { check = "smoke" }
op = "<"
critical = 0.5
labels = { region = "us" }
summary = "the US report smoke test fails"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "services = [\"services.toml\"]\nrules = [\"rules.toml\"]\n\n[[alerting.maintenance]]\nname = \"report-db-upgrade\"\nmatch = [\"service=reports\"]\nfrom = \"{}\"\nuntil = \"{}\"\n",
            ts(maintenance_from),
            ts(maintenance_until)
        ),
    )
    .unwrap();
}

/// An agent whose command check `smoke` is up while the file it returns
/// exists: the test fails the check by removing the file.
fn smoke_agent(dir: &Path, collector: &Collector, name: &str) -> (std::path::PathBuf, Proc) {
    let up_file = dir.join("up");
    std::fs::write(&up_file, "").unwrap();
    let agent_config = dir.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "[[check]]\nname = \"smoke\"\ncommand = [\"test\", \"-e\", \"{}\"]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
            up_file.display()
        ),
    )
    .unwrap();
    let agent = start_agent(
        &collector.url(),
        &unique_host(name),
        &dir.join("state"),
        &["--config", agent_config.to_str().unwrap()],
    );
    (up_file, agent)
}

fn start_collector(dir: &Path, port: u16) -> Collector {
    Collector::start_with(
        port,
        &dir.join("data"),
        &["--config", dir.join("collector.toml").to_str().unwrap()],
    )
}

/// Waits until the wall clock reaches `at_ms` (the scenario's own
/// timetable: these waits make the outage, they synchronise nothing).
fn until(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

fn firing(collector: &Collector) -> bool {
    collector
        .cli_json(&["alerts"])
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["rule"] == "smoke_down" && a["state"] == "firing")
}

#[test]
fn a_failed_check_a_maintenance_window_and_a_collector_stop_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The timetable: the check fails 20 s from T, for 20 s; maintenance
    // covers 5 s of it; the collector stops 6 s after the outage.
    let begin = now_ms() + 8_000;
    let fail_at = begin + 12_000;
    let restore_at = fail_at + 20_000;
    let (maint_from, maint_until) = (fail_at + 5_000, fail_at + 10_000);
    write_config(dir.path(), maint_from, maint_until);
    let mut collector = start_collector(dir.path(), port);
    let (up_file, _agent) = smoke_agent(dir.path(), &collector, "availability");
    poll("the service judged ok", || {
        let s = collector.cli_json(&["service", "reports"]);
        (s["health"] == "ok").then_some(())
    });
    assert!(
        now_ms() < begin,
        "the set-up took longer than the timetable allows"
    );

    // The outage, made on purpose and measured by this clock.
    until(fail_at);
    std::fs::remove_file(&up_file).unwrap();
    let failed = Instant::now();
    poll("the smoke test alert", || firing(&collector).then_some(()));
    until(restore_at);
    std::fs::write(&up_file, "").unwrap();
    let outage_s = failed.elapsed().as_secs_f64();
    poll("the alert to resolve", || {
        (!firing(&collector)).then_some(())
    });

    // A collector stop: the agent spools, the time is unknown.
    collector.proc.signal("TERM");
    poll("the collector to stop", || {
        collector.proc.has_exited().then_some(())
    });
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    collector = start_collector(dir.path(), port);
    let down_s = stopped.elapsed().as_secs_f64();
    // The first judgement of the new run, then the window ends.
    let end = now_ms() + 4_000;
    until(end);

    let window = format!("{begin}..{end}");
    let report = collector.cli_json(&[
        "report",
        "availability",
        "--window",
        &window,
        "--service",
        "reports",
    ]);
    let s = &report["services"][0];
    let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
    let seconds = |k: &str| f(k) * 60.0;
    eprintln!("report: {s:#}");

    // Scheduled: the whole window minus the maintenance window.
    let window_s = (end - begin) as f64 / 1000.0;
    assert!((seconds("excluded_minutes") - 5.0).abs() < 0.01, "{s}");
    assert!(
        (seconds("scheduled_minutes") - (window_s - 5.0)).abs() < 0.01,
        "{s}"
    );
    // The outage minus the 5 s of maintenance, raw and at the US share.
    let raw = seconds("raw_outage_minutes");
    assert!(
        (raw - (outage_s - 5.0)).abs() <= RESOLUTION_S,
        "raw outage {raw} s, made {outage_s} s − 5 s: {s}"
    );
    assert!(
        (seconds("weighted_outage_minutes") - raw * 0.1).abs() < 1e-6,
        "weighted = raw × 0.1: {s}"
    );
    assert_eq!(s["incidents"], 1, "{s}");
    assert_eq!(s["outages"][0]["worst"], 0.1, "{s}");
    // The collector's stop is unknown time, not up and not down.
    let unknown = seconds("unknown_minutes");
    assert!(
        unknown >= down_s - 1.0 && unknown <= down_s + RESOLUTION_S + 2.0,
        "unknown {unknown} s, stopped {down_s} s: {s}"
    );
    let known = f("known_minutes");
    assert!((known + f("unknown_minutes") - f("scheduled_minutes")).abs() < 1e-9);
    let expect = (known - f("weighted_outage_minutes")) / known * 100.0;
    assert!((f("availability_percent") - expect).abs() < 1e-9, "{s}");
    let expect_raw = (known - f("raw_outage_minutes")) / known * 100.0;
    assert!(
        (f("raw_availability_percent") - expect_raw).abs() < 1e-9,
        "{s}"
    );
    // Budget: 1 % of the scheduled time.
    assert!((f("budget_minutes") - f("scheduled_minutes") * 0.01).abs() < 1e-9);
    assert!(
        (f("budget_left_minutes") - (f("budget_minutes") - f("weighted_outage_minutes"))).abs()
            < 1e-9
    );

    // An adjustment after review: the report shows it, who and why.
    let start = s["outages"][0]["start_ms"].as_i64().unwrap().to_string();
    let adjusted = collector.cli(&[
        "report",
        "adjust",
        "reports",
        &start,
        "--share",
        "0.1",
        "--impact",
        "0.5",
        "--by",
        "Ada",
        "--why",
        "reports could still be read",
    ]);
    assert!(
        adjusted.status.success(),
        "{}",
        String::from_utf8_lossy(&adjusted.stderr)
    );
    let again = collector.cli_json(&[
        "report",
        "availability",
        "--window",
        &window,
        "--service",
        "reports",
    ]);
    let o = &again["services"][0]["outages"][0];
    assert_eq!(
        (o["adjusted_by"].as_str(), o["adjusted_why"].as_str()),
        (Some("Ada"), Some("reports could still be read"))
    );
    let w = again["services"][0]["weighted_outage_minutes"]
        .as_f64()
        .unwrap()
        * 60.0;
    assert!(
        (w - raw * 0.05).abs() < 1e-6,
        "weighted {w} s = raw × 0.1 × 0.5"
    );
    let md = collector.cli(&["report", "availability", "--window", &window, "--markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("| reports |") && md.contains("adjusted by Ada"),
        "{md}"
    );
}

#[test]
fn bad_report_requests_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), now_ms() + 86_400_000, now_ms() + 90_000_000);
    let collector = start_collector(dir.path(), free_port());
    let err = |args: &[&str]| {
        let out = collector.cli(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unknown = err(&["report", "availability", "--service", "nope"]);
    assert!(
        unknown.contains("no service is named \"nope\"") && unknown.contains("reports"),
        "{unknown}"
    );
    let backwards = err(&[
        "report",
        "availability",
        "--window",
        "2026-11-08..2026-11-01",
    ]);
    assert!(
        backwards.contains("--window") && backwards.contains("ends before it starts"),
        "{backwards}"
    );
    let adjust = err(&[
        "report", "adjust", "reports", "1", "--share", "2", "--impact", "1", "--by", "x", "--why",
        "y",
    ]);
    assert!(
        adjust.contains("share: 2 must be between 0 and 1"),
        "{adjust}"
    );
    // A service file with shares that do not sum to 1 stops the start.
    let bad = tempfile::tempdir().unwrap();
    write_config(bad.path(), 0, 1);
    let text = std::fs::read_to_string(bad.path().join("services.toml"))
        .unwrap()
        .replace("us = 0.1", "us = 0.2");
    std::fs::write(bad.path().join("services.toml"), text).unwrap();
    let out =
        collector_refusing_to_start(&bad.path().join("collector.toml"), &bad.path().join("data"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("services.toml") && stderr.contains("users: shares: they sum to 1.1"),
        "{stderr}"
    );
}

/// Two services on one failing check: "checkout" loses everything (no user
/// shares), "regional" only the US tenth. With a 12 h SLO window the fast
/// page condition is 14.4× over 1 min and 5 s: checkout burns 100× and
/// pages through the webhook; regional burns 10× and does not.
#[test]
fn a_fast_budget_burn_pages_through_the_webhook_and_a_slow_one_does_not() {
    use nightjar_e2e::receiver::Receiver;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    std::fs::write(
        dir.path().join("services.toml"),
        r#"
[[service]]
name = "checkout"
availability_target = 99.0
slo_window = "12h"
[[service.component]]
name = "smoke"
layer = "application"
metric = "check_up"
matchers = ["check=smoke"]

[[service]]
name = "regional"
availability_target = 99.0
slo_window = "12h"
users = { label = "region", shares = { eu = 0.9, us = 0.1 } }
[[service.component]]
name = "smoke"
layer = "application"
metric = "check_up"
matchers = ["check=smoke"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        r#"
[[rule]]
name = "smoke_down"
metric = "check_up"
match = { check = "smoke" }
op = "<"
critical = 0.5
labels = { region = "us" }

[[rule]]
name = "checkout_budget"
kind = "burn_rate"
service = "checkout"

[[rule]]
name = "regional_budget"
kind = "burn_rate"
service = "regional"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("collector.toml"),
        format!(
            "services = [\"services.toml\"]\nrules = [\"rules.toml\"]\n\n[alerting]\nhost_down_after = 0\n\n[[alerting.hook]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n[[alerting.route]]\nmatch = [\"alertname=~.*_budget.*\"]\nhooks = [\"hook\"]\n",
            receiver.url("/budget")
        ),
    )
    .unwrap();
    let collector = start_collector(dir.path(), free_port());
    let (up_file, _agent) = smoke_agent(dir.path(), &collector, "burn");
    poll("both services judged ok", || {
        let v = collector.cli_json(&["services"]);
        v.as_array()
            .unwrap()
            .iter()
            .all(|s| s["health"] == "ok")
            .then_some(())
    });
    std::fs::remove_file(&up_file).unwrap();
    let paged = poll_for(
        "checkout's budget page at the webhook",
        Duration::from_secs(60),
        || {
            receiver
                .accepted("/budget")
                .into_iter()
                .find(|m| m["rule"] == "checkout_budget" && m["event"] == "firing")
        },
    );
    assert_eq!(paged["alerts"][0]["severity"], "critical");
    assert_eq!(paged["alerts"][0]["labels"]["service"], "checkout");
    assert_eq!(paged["alerts"][0]["labels"]["condition"], "page_fast");
    // The outage goes on for as long again: regional's burn stays below
    // every threshold (10× < 14.4× fast; its slow windows barely fill).
    let fired_after = Instant::now();
    poll_for("as long again", Duration::from_secs(60), || {
        (fired_after.elapsed() > Duration::from_secs(10)).then_some(())
    });
    std::fs::write(&up_file, "").unwrap();
    let ratios = collector.cli_json(&[
        "query",
        "service_burn_rate_ratio",
        "--label",
        "service=regional",
        "--label",
        "condition=page_fast",
        "--since",
        "2m",
        "--step",
        "0",
    ]);
    assert!(
        ratios.as_array().is_some_and(|a| !a.is_empty()),
        "regional's burn series: {ratios}; all: {}",
        collector.cli_json(&["series", "service_burn_rate_ratio"])
    );
    let highest = ratios[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p[1].as_f64())
        .fold(0.0, f64::max);
    assert!(
        highest > 0.1 && highest < 1.0,
        "regional burned {highest} of the fast threshold"
    );
    let history = collector.cli_json(&["alerts", "--history", "--since", "10m"]);
    let regional: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("regional_budget"))
        })
        .collect();
    assert!(
        regional.is_empty(),
        "a slow burn below the threshold must not alert: {regional:?}"
    );
    assert!(
        receiver
            .accepted("/budget")
            .iter()
            .all(|m| m["rule"] != "regional_budget")
    );
}
