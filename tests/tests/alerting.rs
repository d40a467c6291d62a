//! Alerting end to end: the real collector evaluates rules on samples sent
//! over gRPC, pages a real HTTP receiver on loopback, and keeps its promises
//! across restarts and SIGKILL.
//!
//! Sends wait for the collector's ack, and the collector evaluates a batch
//! before acking it, so once `send` returns every transition and queued
//! notification of that sample is durable: tests count "queued" lines in
//! the history and wait until the receiver has that many, instead of
//! sleeping.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::*;
use serde_json::Value;

const SECRET: &str = "s3cret";

struct Setup {
    dir: tempfile::TempDir,
    collector: Collector,
    receiver: Receiver,
    port: u16,
}

/// Writes collector.toml (webhook hook "ops" → receiver /ops, plus
/// `alerting` extra lines) and rules.toml, starts both.
fn setup(alerting: &str, rules: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    write_config(dir.path(), &receiver, alerting, rules);
    let port = free_port();
    let collector = start(dir.path(), port);
    Setup {
        dir,
        collector,
        receiver,
        port,
    }
}

fn write_config(dir: &Path, receiver: &Receiver, alerting: &str, rules: &str) {
    let config = format!(
        r#"rules = ["rules.toml"]

[alerting]
{alerting}

[[alerting.hook]]
name = "ops"
kind = "webhook"
url = "{}"
secret = "{SECRET}"
"#,
        receiver.url("/ops")
    );
    std::fs::write(dir.join("collector.toml"), config).unwrap();
    std::fs::write(dir.join("rules.toml"), rules).unwrap();
}

fn start(dir: &Path, port: u16) -> Collector {
    let config = dir.join("collector.toml");
    Collector::start_with(
        port,
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
    )
}

fn history(c: &Collector) -> Vec<Value> {
    c.cli_json(&["alerts", "--history", "--since", "1h"])
        .as_array()
        .unwrap()
        .clone()
}

fn count_kind(c: &Collector, kind: &str) -> usize {
    history(c).iter().filter(|h| h["kind"] == kind).count()
}

/// Waits until every notification queued so far was accepted by the
/// receiver at `path`, and returns what it accepted.
/// (Delivery is at least once: a message resent after a lost response is
/// counted once, by its notifications' ids, and returned once.)
fn settled(s: &Setup, path: &str) -> Vec<Value> {
    poll("every queued notification to be delivered", || {
        let queued = count_kind(&s.collector, "queued");
        let mut seen = std::collections::HashSet::new();
        let got: Vec<Value> = s
            .receiver
            .accepted(path)
            .into_iter()
            .filter(|b| seen.insert(b["alerts"][0]["id"].as_str().unwrap_or("").to_owned()))
            .collect();
        let alerts: usize = got
            .iter()
            .map(|b| b["alerts"].as_array().map_or(1, Vec::len))
            .sum();
        (alerts >= queued && queued > 0).then_some(got)
    })
}

/// The notifications in `bodies` as "event severity", each notification
/// once: delivery is at least once, and receivers deduplicate by `id`.
fn events(bodies: &[Value]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().unwrap().clone())
        .filter(|a| seen.insert(a["id"].as_str().unwrap().to_owned()))
        .map(|a| {
            let sev = a["severity"].as_str().unwrap_or("-").to_owned();
            format!("{} {sev}", a["event"].as_str().unwrap())
        })
        .collect()
}

const CPU_RULE: &str = r#"
[[rule]]
name = "cpu_hot"
metric = "cpu_usage_percent"
match = { cpu = "total" }
warning = 80
critical = 95
recovery = 60
labels = { team = "ops" }
summary = "CPU on {{host}} at {{value}}%"
runbook = "https://runbooks.example/cpu"
"#;

#[test]
fn a_crossing_fires_one_signed_webhook_and_the_resolve_follows() {
    let s = setup("host_down_after = 0", CPU_RULE);
    let host = unique_host("cross");
    let mut feed = Feeder::new(&s.collector.url(), &host);
    let cpu = [("cpu", "total")];
    feed.send("cpu_usage_percent", &cpu, 50.0);
    feed.send("cpu_usage_percent", &cpu, 85.0);
    feed.send("cpu_usage_percent", &cpu, 88.0);
    let got = settled(&s, "/ops");
    assert_eq!(events(&got), ["firing warning"]);
    let alert = &got[0]["alerts"][0];
    assert_eq!(alert["summary"], format!("CPU on {host} at 85%"));
    assert_eq!(alert["labels"]["team"], "ops");
    assert_eq!(alert["runbook"], "https://runbooks.example/cpu");

    // The signature header is HMAC-SHA256 of "<timestamp>." and the exact
    // body; the timestamp is the attempt's, in seconds.
    let raw = &s.receiver.received("/ops")[0];
    let timestamp = raw.headers["x-nightjar-timestamp"].to_str().unwrap();
    let seconds: i64 = timestamp.parse().unwrap();
    assert!(
        (seconds - now_ms() / 1000).abs() < 600,
        "a current timestamp: {seconds}"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&raw.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        raw.headers["x-nightjar-signature"].to_str().unwrap(),
        format!("sha256={expected}")
    );

    feed.send("cpu_usage_percent", &cpu, 10.0);
    let got = settled(&s, "/ops");
    assert_eq!(events(&got), ["firing warning", "resolved -"]);
    assert_eq!(
        got[0]["alerts"][0]["dedup_key"],
        got[1]["alerts"][0]["dedup_key"]
    );
    assert_ne!(got[0]["alerts"][0]["id"], got[1]["alerts"][0]["id"]);
}

#[test]
fn for_delays_the_page_until_the_condition_held() {
    let rule = CPU_RULE.replace("recovery = 60", "recovery = 60\nfor = \"3s\"");
    let s = setup("host_down_after = 0", &rule);
    let mut feed = Feeder::new(&s.collector.url(), &unique_host("for"));
    let crossed = now_ms();
    feed.send_at("cpu_usage_percent", &[("cpu", "total")], crossed, 90.0);
    let alerts = s.collector.cli_json(&["alerts"]);
    assert_eq!(alerts[0]["state"], "pending", "{alerts}");
    assert!(
        s.receiver.accepted("/ops").is_empty(),
        "paged before `for` elapsed"
    );
    // No further sample: the sweep fires it.
    let got = settled(&s, "/ops");
    assert_eq!(events(&got), ["firing warning"]);
    let fired_at = got[0]["alerts"][0]["at"].as_str().unwrap().to_owned();
    let fired_ms = humantime::parse_rfc3339(&fired_at).unwrap();
    let fired_ms = fired_ms
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        fired_ms - crossed >= 3000,
        "fired {} ms after the crossing",
        fired_ms - crossed
    );
}

#[test]
fn hysteresis_and_flap_damping_stop_repeated_pages() {
    let rule = CPU_RULE.replace(
        "recovery = 60",
        "recovery = 60\nflap_changes = 2\nflap_window = \"10m\"",
    );
    let s = setup("host_down_after = 0", &rule);
    let mut feed = Feeder::new(&s.collector.url(), &unique_host("flap"));
    let cpu = [("cpu", "total")];
    // Hovering around the threshold: one page, kept firing by the recovery threshold.
    for v in [79.0, 81.0, 79.0, 81.0, 79.0, 81.0, 79.0, 81.0] {
        feed.send("cpu_usage_percent", &cpu, v);
    }
    assert_eq!(events(&settled(&s, "/ops")), ["firing warning"]);
    // Swinging across the recovery threshold: fired, resolved, then
    // "flapping" once, and quiet after that.
    for v in [50.0, 90.0, 50.0, 90.0, 50.0, 90.0, 50.0, 90.0] {
        feed.send("cpu_usage_percent", &cpu, v);
    }
    let got = settled(&s, "/ops");
    assert_eq!(
        events(&got),
        ["firing warning", "resolved -", "flapping warning"]
    );
    let alerts = s.collector.cli_json(&["alerts"]);
    assert_eq!(alerts[0]["state"], "flapping", "{alerts}");
}

#[test]
fn warning_escalates_to_critical_and_back() {
    let s = setup("host_down_after = 0", CPU_RULE);
    let mut feed = Feeder::new(&s.collector.url(), &unique_host("esc"));
    let cpu = [("cpu", "total")];
    for v in [85.0, 97.0, 90.0] {
        feed.send("cpu_usage_percent", &cpu, v);
    }
    let got = settled(&s, "/ops");
    assert_eq!(
        events(&got),
        [
            "firing warning",
            "escalated critical",
            "deescalated warning"
        ]
    );
}

#[test]
fn killing_an_agent_fires_host_down_and_status_turns_red() {
    let s = setup("host_down_after = 3", "");
    let host = unique_host("down");
    let mut agent = start_agent(&s.collector.url(), &host, &s.dir.path().join("state"), &[]);
    poll("the agent's first batch", || {
        latest_value(&s.collector, "memory_total_bytes", &host)
    });
    agent.kill();
    let got = poll("a host_down page", || {
        let got = s.receiver.accepted("/ops");
        got.iter().any(|b| b["rule"] == "host_down").then_some(got)
    });
    let alert = got.iter().find(|b| b["rule"] == "host_down").unwrap()["alerts"][0].clone();
    assert_eq!(alert["labels"]["host"], host.as_str());
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["summary"], format!("{host} sends no data"));
    let row = s.collector.status_row(&host).unwrap();
    assert_eq!(row["health"], "red", "{row}");
}

#[test]
fn a_notification_queued_before_sigkill_is_delivered_after_restart_with_its_dedup_key() {
    let mut s = setup("host_down_after = 0", CPU_RULE);
    s.receiver.set_status(503);
    let mut feed = Feeder::new(&s.collector.url(), &unique_host("kill"));
    feed.send("cpu_usage_percent", &[("cpu", "total")], 99.0);
    let refused = poll("a refused delivery attempt", || {
        s.receiver.received("/ops").first().map(|r| r.json())
    });
    s.collector.proc.kill();
    s.receiver.set_status(200);
    s.collector = start(s.dir.path(), s.port);
    let got = poll("the redelivery", || {
        s.receiver.accepted("/ops").first().cloned()
    });
    let (before, after) = (&refused["alerts"][0], &got["alerts"][0]);
    assert_eq!(after["dedup_key"], before["dedup_key"]);
    assert_eq!(
        after["id"], before["id"],
        "the same notification, not a new one"
    );
    assert_eq!(after["event"], "firing");
    // The restarted collector remembers the alert: no second "firing".
    feed.send("cpu_usage_percent", &[("cpu", "total")], 99.5);
    assert_eq!(events(&settled(&s, "/ops")), ["firing critical"]);
}

#[test]
fn a_silence_suppresses_pages() {
    let s = setup("host_down_after = 0", CPU_RULE);
    let host = unique_host("silence");
    let out = s.collector.cli(&[
        "silence",
        "add",
        "--match",
        "alertname=cpu_hot",
        "--match",
        &format!("host={host}"),
        "--for",
        "1h",
        "--author",
        "ann",
        "--comment",
        "load test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut feed = Feeder::new(&s.collector.url(), &host);
    feed.send("cpu_usage_percent", &[("cpu", "total")], 99.0);
    let h = history(&s.collector);
    let suppressed: Vec<&Value> = h.iter().filter(|r| r["kind"] == "suppressed").collect();
    assert_eq!(suppressed.len(), 1, "{h:?}");
    assert_eq!(count_kind(&s.collector, "queued"), 0);
    let alerts = s.collector.cli_json(&["alerts"]);
    assert!(
        alerts[0]["silenced_by"]
            .as_str()
            .unwrap()
            .starts_with("silence "),
        "{alerts}"
    );
    // Expiring the silence pages for the still-firing alert.
    let silences = s.collector.cli_json(&["silence", "list"]);
    let id = silences[0]["id"].as_str().unwrap();
    s.collector.cli_json(&["silence", "expire", id]);
    assert_eq!(events(&settled(&s, "/ops")), ["firing critical"]);
}

#[test]
fn an_ack_stops_repeats_and_escalation_and_reaches_pagerduty() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let config = format!(
        r#"rules = ["rules.toml"]

[alerting]
host_down_after = 0

[[alerting.hook]]
name = "pd"
kind = "pagerduty"
url = "{}"
routing_key = "R0UT1NG"

[[alerting.hook]]
name = "managers"
kind = "slack"
url = "{}"

[[alerting.route]]
hooks = ["pd"]
repeat_interval = "1s"
escalate_to = "managers"
escalate_after = "5s"
"#,
        receiver.url("/pd"),
        receiver.url("/slack")
    );
    std::fs::write(dir.path().join("collector.toml"), config).unwrap();
    std::fs::write(dir.path().join("rules.toml"), CPU_RULE).unwrap();
    let collector = start(dir.path(), free_port());
    // Two hosts cross together; only `acked` is acknowledged.
    let (acked, ignored) = (unique_host("acked"), unique_host("ignored"));
    let mut feed_acked = Feeder::new(&collector.url(), &acked);
    let mut feed_ignored = Feeder::new(&collector.url(), &ignored);
    feed_acked.send("cpu_usage_percent", &[("cpu", "total")], 99.0);
    feed_ignored.send("cpu_usage_percent", &[("cpu", "total")], 99.0);
    let pages_of = |host: &str| -> Vec<Value> {
        receiver
            .accepted("/pd")
            .into_iter()
            .filter(|e| e["payload"]["source"] == host || e["event_action"] != "trigger")
            .collect()
    };
    let first = poll("the acked host's first page", || {
        pages_of(&acked).first().cloned()
    });
    assert_eq!(first["event_action"], "trigger");
    assert_eq!(first["routing_key"], "R0UT1NG");
    assert_eq!(first["payload"]["severity"], "critical");
    assert_eq!(first["payload"]["source"], acked.as_str());
    let dedup = first["dedup_key"].clone();

    let alerts = collector.cli_json(&["alerts"]);
    let id = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["host"] == acked.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = collector.cli_json(&["ack", &id, "--by", "ann", "--note", "looking"]);
    assert_eq!(done["acked_by"], "ann");
    let ack = poll("the acknowledge event", || {
        receiver
            .accepted("/pd")
            .into_iter()
            .find(|e| e["event_action"] == "acknowledge")
    });
    assert_eq!(ack["dedup_key"], dedup);
    let acked_pages = receiver
        .accepted("/pd")
        .iter()
        .filter(|e| e["payload"]["source"] == acked.as_str())
        .count();

    // The unacknowledged host repeats every second and escalates after 5 s.
    // Waiting for three more of its repeats after the ack also lets three
    // sweeps pass for the acked one.
    let pages_of_host = |host: &str| {
        receiver
            .accepted("/pd")
            .iter()
            .filter(|e| e["payload"]["source"] == host)
            .count()
    };
    let ignored_at_ack = pages_of_host(&ignored);
    poll("three more repeats for the ignored host", || {
        (pages_of_host(&ignored) >= ignored_at_ack + 3).then_some(())
    });
    let escalation = poll("the escalation of the ignored host", || {
        receiver.accepted("/slack").into_iter().next()
    });
    assert!(
        escalation["text"]
            .as_str()
            .unwrap()
            .starts_with("🔴 [ESCALATION:critical] cpu_hot"),
        "{escalation}"
    );
    // Every host any escalation message names (delivery is at least once,
    // so a message may come twice): the ignored host only.
    let mut escalated: Vec<String> = receiver
        .accepted("/slack")
        .iter()
        .flat_map(|m| m["attachments"].as_array().unwrap().clone())
        .map(|a| a["fields"][0]["value"].as_str().unwrap().to_owned())
        .collect();
    escalated.dedup();
    assert_eq!(
        escalated,
        std::slice::from_ref(&ignored),
        "only the ignored host escalates"
    );
    // The acked host, past the same delays: no repeat.
    assert_eq!(pages_of_host(&acked), acked_pages, "repeats after the ack");

    // The resolve reaches PagerDuty with the incident's dedup key.
    feed_acked.send("cpu_usage_percent", &[("cpu", "total")], 5.0);
    let resolve = poll("the resolve event", || {
        receiver
            .accepted("/pd")
            .into_iter()
            .find(|e| e["event_action"] == "resolve" && e["dedup_key"] == dedup)
    });
    assert_eq!(resolve.as_object().unwrap().len(), 3, "{resolve}");
}

#[test]
fn an_absence_rule_fires_when_a_series_stops() {
    let rule = r#"
[[rule]]
name = "heartbeat_gone"
kind = "absence"
metric = "app_heartbeat"
after = "2s"
severity = "warning"
summary = "no heartbeat from {{host}}"
"#;
    let s = setup("host_down_after = 0", rule);
    let host = unique_host("absent");
    let mut feed = Feeder::new(&s.collector.url(), &host);
    feed.send("app_heartbeat", &[], 1.0);
    let got = settled(&s, "/ops");
    assert_eq!(events(&got), ["firing warning"]);
    assert_eq!(
        got[0]["alerts"][0]["summary"],
        format!("no heartbeat from {host}")
    );
    feed.send("app_heartbeat", &[], 1.0);
    assert_eq!(
        events(&settled(&s, "/ops")),
        ["firing warning", "resolved -"]
    );
}

#[test]
fn watch_streams_alert_changes_and_status_turns_amber() {
    let rule = CPU_RULE.replace("recovery = 60", "recovery = 60\nflap_changes = 1000");
    let s = setup("host_down_after = 0", &rule);
    let mut watch = std::process::Command::new(bin("nightjar"))
        .args([
            "--collector",
            &s.collector.url(),
            "alerts",
            "--watch",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    let host = unique_host("watch");
    let mut feed = Feeder::new(&s.collector.url(), &host);
    // The watch subscribes a moment after it starts: cross and recover
    // until it shows a "fired", ending on the crossing.
    let mut high = false;
    let event = poll("a watched change", || {
        high = !high;
        let v = if high { 85.0 } else { 10.0 };
        feed.send("cpu_usage_percent", &[("cpu", "total")], v);
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|e| e["kind"] == "fired")
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(event["kind"], "fired", "{event}");
    assert_eq!(event["alert"]["severity"], "warning");
    assert_eq!(event["alert"]["labels"]["host"], host.as_str());
    let row = s.collector.status_row(&host).unwrap();
    assert_eq!(row["health"], "amber", "{row}");
    assert_eq!(row["reasons"][0], format!("cpu_hot: CPU on {host} at 85%"));
}

#[test]
fn backtest_prints_when_rules_would_have_fired_and_resolved() {
    let s = setup("host_down_after = 0", "");
    let mut feed = Feeder::new(&s.collector.url(), "bt-host");
    // An hour ago: 10 s samples for 10 minutes, hot from minute 2 to 5.
    let start = (now_ms() - 3_600_000) / 10_000 * 10_000;
    for i in 0..60 {
        let t = start + i * 10_000;
        let v = if (12..30).contains(&i) { 92.0 } else { 40.0 };
        feed.send_at("cpu_usage_percent", &[("cpu", "total")], t, v);
    }
    let rules = s.dir.path().join("tune.toml");
    std::fs::write(
        &rules,
        CPU_RULE.replace("recovery = 60", "recovery = 60\nfor = \"30s\""),
    )
    .unwrap();
    let out = s.collector.cli_json(&[
        "rules",
        "backtest",
        rules.to_str().unwrap(),
        "--since",
        "2h",
    ]);
    let got: Vec<(i64, String)> = out["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["notify"] == true)
        .map(|e| {
            (
                e["at_ms"].as_i64().unwrap() - start,
                e["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (150_000, "fired".to_owned()),
            (300_000, "resolved".to_owned())
        ]
    );
    assert_eq!(out["rules"]["cpu_hot"]["fired"], 1);
    assert_eq!(out["rules"]["cpu_hot"]["notifications"], 2);
    // Backtests page no one.
    assert_eq!(count_kind(&s.collector, "queued"), 0);
}

#[test]
fn bad_rule_files_are_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 90\ncritical = 80\n",
    )
    .unwrap();
    let out = run_to_exit(std::process::Command::new(bin("nightjar")).args([
        "rules",
        "check",
        rules.to_str().unwrap(),
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:1: rule \"x\": field `critical`",
            rules.display()
        )),
        "{err}"
    );
    // The collector refuses to start with it.
    std::fs::write(
        dir.path().join("collector.toml"),
        "rules = [\"rules.toml\"]\n",
    )
    .unwrap();
    let out =
        collector_refusing_to_start(&dir.path().join("collector.toml"), &dir.path().join("data"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("field `critical`"));
    // A good file checks out.
    std::fs::write(&rules, CPU_RULE).unwrap();
    let out = run_to_exit(std::process::Command::new(bin("nightjar")).args([
        "rules",
        "check",
        rules.to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reload_keeps_unchanged_rules_and_applies_changed_thresholds() {
    let s = setup("host_down_after = 0", CPU_RULE);
    let mut feed = Feeder::new(&s.collector.url(), &unique_host("reload"));
    feed.send("cpu_usage_percent", &[("cpu", "total")], 85.0);
    assert_eq!(events(&settled(&s, "/ops")), ["firing warning"]);
    // Add a rule: the firing alert of the unchanged rule stays, no re-page.
    let more = format!(
        "{CPU_RULE}\n[[rule]]\nname = \"mem\"\nmetric = \"memory_used_percent\"\nwarning = 50\n"
    );
    std::fs::write(s.dir.path().join("rules.toml"), &more).unwrap();
    let out = s.collector.cli(&["rules", "reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reloaded: 2 rules in force\n"
    );
    feed.send("cpu_usage_percent", &[("cpu", "total")], 86.0);
    assert_eq!(
        s.collector.cli_json(&["alerts"]).as_array().unwrap().len(),
        1
    );
    assert_eq!(events(&settled(&s, "/ops")), ["firing warning"]);
    // SIGHUP reloads too.
    s.collector.proc.signal("HUP");
    poll("the SIGHUP reload", || {
        s.collector
            .proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("SIGHUP: alert rules reloaded"))
            .then_some(())
    });
    // A broken file changes nothing.
    std::fs::write(s.dir.path().join("rules.toml"), "[[rule]]\nname = 1\n").unwrap();
    let out = s.collector.cli(&["rules", "reload"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rules.toml"));
}

#[test]
fn one_rule_crossing_on_several_hosts_inside_group_wait_is_one_message() {
    let s = setup("host_down_after = 0\ngroup_wait = \"2s\"", CPU_RULE);
    let hosts = [
        unique_host("group-a"),
        unique_host("group-b"),
        unique_host("group-c"),
    ];
    for host in &hosts {
        Feeder::new(&s.collector.url(), host).send("cpu_usage_percent", &[("cpu", "total")], 99.0);
    }
    let got = settled(&s, "/ops");
    assert_eq!(got.len(), 1, "{got:?}");
    let mut grouped: Vec<&str> = got[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["host"].as_str().unwrap())
        .collect();
    grouped.sort_unstable();
    let mut expected: Vec<&str> = hosts.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(grouped, expected);
    assert_eq!(got[0]["rule"], "cpu_hot");
}
