//! Incidents end to end (docs/incidents.md), with the real collector, the
//! real CLI, feeders playing agents and a real webhook receiver: twelve
//! disks filling at once open one incident; acknowledging it stops every
//! repeat; the update-due reminder and the restored notice arrive; a
//! relapse inside the quiet period reopens it; a change recorded shortly
//! before heads its timeline; the impact set on an incident is what the
//! availability report counts; a SIGKILL mid-incident loses nothing and
//! opens no second incident; bad input is named.

use std::path::Path;

use nightjar_e2e::feeder::{Feeder, now_ms};
use nightjar_e2e::receiver::Receiver;
use nightjar_e2e::*;

const RULES: &str = r#"
[[rule]]
name = "disk_filling"
metric = "fs_used_percent"
critical = 95
recovery = 80
summary = "disk {{value}}% full on {{host}}"
"#;

/// `storage` is every host whose name starts with `prefix`.
fn write_config(dir: &Path, prefix: &str, hook_url: &str, alerting: &str) {
    std::fs::write(
        dir.join("services.toml"),
        format!(
            r#"
[[service]]
name = "storage"
availability_target = 99.0
[[service.component]]
name = "file servers"
layer = "machine"
matchers = ["host=~{prefix}.*"]
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("rules.toml"), RULES).unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "services = [\"services.toml\"]\nrules = [\"rules.toml\"]\n\n[alerting]\nhost_down_after = 0\n{alerting}\n\n[[alerting.hook]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{hook_url}\"\n"
        ),
    )
    .unwrap();
}

fn start(dir: &Path, port: u16) -> Collector {
    Collector::start_with(
        port,
        &dir.join("data"),
        &["--config", dir.join("collector.toml").to_str().unwrap()],
    )
}

fn incidents(c: &Collector) -> Vec<serde_json::Value> {
    c.cli_json(&["incident", "list", "--since", "1d"])
        .as_array()
        .unwrap()
        .clone()
}

fn show(c: &Collector, id: &str) -> serde_json::Value {
    c.cli_json(&["incident", "show", id])
}

/// Every alert notification (one entry per alert) of the messages received.
fn notices(receiver: &Receiver) -> Vec<serde_json::Value> {
    receiver
        .accepted("/ops")
        .iter()
        .flat_map(|m| m["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn at_ms(notice: &serde_json::Value) -> i64 {
    let at = notice["at"].as_str().unwrap();
    humantime::parse_rfc3339(at)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn twelve_disks_filling_open_one_incident_acked_reminded_restored_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let prefix = unique_host("inc-fs");
    // Group the firings into one page; repeat fast, so that an ack that
    // did not stop them would show; remind every 4 s without an update.
    write_config(
        dir.path(),
        &prefix,
        &receiver.url("/ops"),
        "repeat_interval = \"2s\"\nupdate_interval = \"4s\"\ngroup_wait = \"10s\"\n\n[alerting.incidents]\nquiet_period = \"10m\"\n",
    );
    let c = start(dir.path(), free_port());
    let hosts: Vec<String> = (1..=12).map(|i| format!("{prefix}-{i}")).collect();
    let mut feeders: Vec<Feeder> = hosts.iter().map(|h| Feeder::new(&c.url(), h)).collect();
    for f in &mut feeders {
        f.send("fs_used_percent", &[("mount", "/srv")], 40.0);
    }
    // A change shortly before: it must head the incident's timeline.
    let change = c.cli_json(&[
        "change",
        "add",
        "--what",
        "log level debug on the file servers",
        "--by",
        "ci",
        "--service",
        "storage",
        "--risk",
        "low",
    ]);
    let change_id = change["id"].as_str().unwrap().to_owned();

    for f in &mut feeders {
        f.send("fs_used_percent", &[("mount", "/srv")], 97.0);
    }
    let incident = poll("one incident with twelve alerts", || {
        let all = incidents(&c);
        (all.len() == 1 && all[0]["alerts"].as_array().unwrap().len() == 12).then(|| all[0].clone())
    });
    assert_eq!(incident["id"], "I1");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["services"], serde_json::json!(["storage"]));
    // One page, not twelve: the firings travel in one message.
    let page = poll("the page", || {
        receiver
            .accepted("/ops")
            .into_iter()
            .find(|m| m["event"] == "firing")
    });
    assert_eq!(page["incident"], "I1");
    assert_eq!(page["alerts"].as_array().unwrap().len(), 12, "{page}");
    let shown = show(&c, "I1");
    assert_eq!(
        shown["changes_before"][0]["id"], change_id,
        "what changed? {shown}"
    );

    // Unacknowledged, they repeat; acknowledged, none does.
    poll("a repeat before the ack", || {
        notices(&receiver)
            .iter()
            .any(|n| n["event"] == "repeat")
            .then_some(())
    });
    let acked = c.cli_json(&[
        "incident",
        "ack",
        "I1",
        "--by",
        "ann",
        "--note",
        "moving logs",
    ]);
    let acked_ms = acked["acked_ms"].as_i64().unwrap();
    assert_eq!(acked["acked_by"], "ann");
    let alerts = c.cli_json(&["alerts"]);
    let ours: Vec<&serde_json::Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "disk_filling")
        .collect();
    assert_eq!(ours.len(), 12);
    assert!(
        ours.iter().all(|a| a["acked_by"] == "ann"),
        "every alert acknowledged: {ours:?}"
    );
    // The reminder comes 4 s after the ack (a note): two repeat intervals
    // in which an unstopped repeat would have been queued.
    let reminder = poll("the update-due reminder after the ack", || {
        notices(&receiver)
            .into_iter()
            .find(|n| n["event"] == "update_due" && at_ms(n) > acked_ms)
    });
    assert!(
        reminder["summary"]
            .as_str()
            .unwrap()
            .starts_with("Update due: I1 storage: "),
        "{reminder}"
    );
    let late_repeats: Vec<serde_json::Value> = notices(&receiver)
        .into_iter()
        .filter(|n| n["event"] == "repeat" && at_ms(n) >= acked_ms)
        .collect();
    assert!(
        late_repeats.is_empty(),
        "repeats after the ack: {late_repeats:?}"
    );

    // A note, then the disks drain: the incident resolves, restored.
    ok(c.cli(&[
        "incident",
        "note",
        "I1",
        "logs moved to the archive volume",
        "--by",
        "ann",
    ]));
    for f in &mut feeders {
        f.send("fs_used_percent", &[("mount", "/srv")], 30.0);
    }
    let restored = poll("the restored notice", || {
        notices(&receiver)
            .into_iter()
            .find(|n| n["event"] == "restored")
    });
    assert!(
        restored["summary"]
            .as_str()
            .unwrap()
            .starts_with("Service restored: I1"),
        "{restored}"
    );
    let resolved = &incidents(&c)[0];
    assert_eq!(resolved["state"], "resolved");

    // A relapse inside the quiet period reopens I1.
    feeders[4].send("fs_used_percent", &[("mount", "/srv")], 98.0);
    let reopened = poll("I1 to reopen", || {
        let all = incidents(&c);
        (all.len() == 1 && all[0]["state"] == "open").then(|| all[0].clone())
    });
    assert_eq!(reopened["id"], "I1");
    assert_eq!(reopened["reopened"], 1);
    let kinds: Vec<String> = show(&c, "I1")["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "opened",
        "alert_fired",
        "notified",
        "acknowledged",
        "update_due",
        "note",
        "alert_resolved",
        "resolved",
        "restored",
        "reopened",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let md = ok(c.cli(&["incident", "show", "I1", "--markdown"]));
    assert!(
        md.starts_with("# Postmortem: I1") && md.contains("## Timeline") && md.contains(&change_id),
        "{md}"
    );
}

#[test]
fn a_sigkill_mid_incident_keeps_the_incident_its_timeline_and_notes_and_opens_no_second() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let prefix = unique_host("inc-kill");
    write_config(dir.path(), &prefix, &receiver.url("/ops"), "");
    let port = free_port();
    let mut c = start(dir.path(), port);
    let mut feeders: Vec<Feeder> = (1..=3)
        .map(|i| Feeder::new(&c.url(), &format!("{prefix}-{i}")))
        .collect();
    for f in &mut feeders {
        f.send("fs_used_percent", &[], 97.0);
    }
    poll("the incident with three alerts", || {
        let all = incidents(&c);
        (all.len() == 1 && all[0]["alerts"].as_array().unwrap().len() == 3).then_some(())
    });
    ok(c.cli(&[
        "incident",
        "note",
        "I1",
        "investigating the nightly job",
        "--by",
        "bob",
    ]));
    let before = show(&c, "I1");

    c.proc.kill();
    let c = start(dir.path(), port);
    let after = show(&c, "I1");
    assert_eq!(after["incident"], before["incident"], "the record intact");
    assert_eq!(after["timeline"], before["timeline"], "the timeline intact");
    assert!(
        after["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "note" && e["detail"] == "investigating the nightly job"),
        "{after}"
    );
    // The alerts still fire after the restart, and a fourth host joins:
    // still one incident.
    for f in &mut feeders {
        f.send("fs_used_percent", &[], 98.0);
    }
    let mut fourth = Feeder::new(&c.url(), &format!("{prefix}-4"));
    fourth.send("fs_used_percent", &[], 97.0);
    poll("the fourth alert in I1", || {
        let all = incidents(&c);
        (all[0]["alerts"].as_array().unwrap().len() == 4).then_some(())
    });
    let all = incidents(&c);
    assert_eq!(all.len(), 1, "no second incident: {all:?}");
}

#[test]
fn the_impact_set_on_an_incident_is_what_the_availability_report_counts() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let prefix = unique_host("inc-impact");
    write_config(dir.path(), &prefix, &receiver.url("/ops"), "");
    let c = start(dir.path(), free_port());
    let begin = now_ms();
    let mut f = Feeder::new(&c.url(), &format!("{prefix}-1"));
    f.send("fs_used_percent", &[], 40.0);
    poll("storage judged ok", || {
        (c.cli_json(&["service", "storage"])["health"] == "ok").then_some(())
    });
    f.send("fs_used_percent", &[], 99.0);
    poll("the incident", || (incidents(&c).len() == 1).then_some(()));
    poll("the outage recorded", || {
        let r = c.cli_json(&[
            "report",
            "availability",
            "--window",
            "1h",
            "--service",
            "storage",
        ]);
        (r["services"][0]["raw_outage_minutes"].as_f64().unwrap() > 0.0).then_some(())
    });
    f.send("fs_used_percent", &[], 10.0);
    poll("the incident resolved", || {
        (incidents(&c)[0]["state"] == "resolved").then_some(())
    });
    let window = format!("{begin}..{}", now_ms() + 1);
    let report = c.cli_json(&[
        "report",
        "availability",
        "--window",
        &window,
        "--service",
        "storage",
    ]);
    let s = &report["services"][0];
    let raw = s["raw_outage_minutes"].as_f64().unwrap();
    assert!(
        (s["weighted_outage_minutes"].as_f64().unwrap() - raw).abs() < 1e-9,
        "before review, everyone was hit: {s}"
    );
    ok(c.cli(&[
        "incident",
        "set",
        "I1",
        "--by",
        "ann",
        "--root-cause",
        "a log rotation job was disabled",
        "--category",
        "configuration",
        "--user-share",
        "0.5",
        "--functional-impact",
        "0.4",
    ]));
    let report = c.cli_json(&[
        "report",
        "availability",
        "--window",
        &window,
        "--service",
        "storage",
    ]);
    let s = &report["services"][0];
    let o = &s["outages"][0];
    assert_eq!(o["adjusted_by"], "ann", "{s}");
    assert!(
        o["adjusted_why"].as_str().unwrap().contains("incident I1"),
        "{o}"
    );
    let weighted = s["weighted_outage_minutes"].as_f64().unwrap();
    assert!(
        (weighted - raw * 0.5 * 0.4).abs() < 1e-9,
        "weighted {weighted} = raw {raw} × 0.5 × 0.4: {s}"
    );
    let shown = show(&c, "I1");
    assert_eq!(shown["incident"]["review"]["category"], "configuration");
    let report = c.cli_json(&["report", "incidents", "--window", "1h"]);
    assert_eq!(report["incidents"], 1, "{report}");
    assert_eq!(report["by_category"]["configuration"], 1, "{report}");
    assert!(
        (report["top_talkers"][0]["weighted_minutes"]
            .as_f64()
            .unwrap()
            - weighted)
            .abs()
            < 0.05,
        "the incident's weighted minutes come from the availability timeline: {report}"
    );
}

#[test]
fn bad_incident_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let prefix = unique_host("inc-bad");
    write_config(dir.path(), &prefix, &receiver.url("/ops"), "");
    let c = start(dir.path(), free_port());
    let mut f = Feeder::new(&c.url(), &format!("{prefix}-1"));
    f.send("fs_used_percent", &[], 99.0);
    poll("the incident", || (incidents(&c).len() == 1).then_some(()));
    let err = |args: &[&str]| {
        let out = c.cli(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unknown = err(&["incident", "show", "I42"]);
    assert!(unknown.contains("no incident I42"), "{unknown}");
    let malformed = err(&["incident", "ack", "X1", "--by", "ann"]);
    assert!(
        malformed.contains("\"X1\" is not an incident id"),
        "{malformed}"
    );
    let due = err(&[
        "problem",
        "add",
        "--title",
        "rotate logs",
        "--owner",
        "ann",
        "--due",
        "31/12/2026",
        "--incident",
        "I1",
    ]);
    assert!(
        due.contains("due: \"31/12/2026\" is not a date (YYYY-MM-DD)"),
        "{due}"
    );
    let added = c.cli_json(&[
        "problem",
        "add",
        "--title",
        "rotate logs",
        "--owner",
        "ann",
        "--due",
        "2026-12-31",
        "--incident",
        "I1",
        "--kind",
        "prevent",
    ]);
    assert_eq!(added["id"], "P1");
    ok(c.cli(&["problem", "update", "P1", "--state", "done"]));
    let transition = err(&["problem", "update", "P1", "--state", "in_progress"]);
    assert!(
        transition.contains("cannot go from done to in_progress"),
        "{transition}"
    );
    let state = err(&["problem", "update", "P1", "--state", "closed"]);
    assert!(state.contains("state: \"closed\" is not one of"), "{state}");
    let category = err(&[
        "incident",
        "set",
        "I1",
        "--by",
        "ann",
        "--category",
        "gremlins",
    ]);
    assert!(
        category.contains("category: \"gremlins\" is not one of"),
        "{category}"
    );
    let service = err(&[
        "change",
        "add",
        "--what",
        "x",
        "--by",
        "ci",
        "--service",
        "nope",
    ]);
    assert!(
        service.contains("no service is named \"nope\""),
        "{service}"
    );
    let link = err(&[
        "problem",
        "add",
        "--title",
        "t",
        "--owner",
        "o",
        "--incident",
        "I9",
    ]);
    assert!(link.contains("no incident I9"), "{link}");
}

#[test]
fn the_noise_report_ranks_an_ignored_flapping_rule_first_and_backtests_a_proposal() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(free_port());
    let prefix = unique_host("inc-noise");
    write_config(dir.path(), &prefix, &receiver.url("/ops"), "");
    // A second rule, far too eager: it fires at 60 % and nobody acts.
    let rules = format!(
        "{RULES}\n[[rule]]\nname = \"share_busy\"\nmetric = \"fs_used_percent\"\nwarning = 60\nrecovery = 55\n"
    );
    std::fs::write(dir.path().join("rules.toml"), rules).unwrap();
    let c = start(dir.path(), free_port());
    let mut f = Feeder::new(&c.url(), &format!("{prefix}-1"));
    // Five blips above 60 %, never above 95 %: share_busy fires and
    // resolves five times, within seconds each.
    for _ in 0..5 {
        f.send("fs_used_percent", &[], 70.0);
        f.send("fs_used_percent", &[], 40.0);
    }
    // The real trouble, acknowledged.
    f.send("fs_used_percent", &[], 97.0);
    let alert = poll("disk_filling", || {
        c.cli_json(&["alerts"])
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule"] == "disk_filling")
            .cloned()
    });
    ok(c.cli(&["ack", alert["id"].as_str().unwrap(), "--by", "ann"]));
    f.send("fs_used_percent", &[], 40.0);
    let proposal = dir.path().join("proposed.toml");
    std::fs::write(
        &proposal,
        "[[rule]]\nname = \"share_busy\"\nmetric = \"fs_used_percent\"\nwarning = 90\nrecovery = 80\n",
    )
    .unwrap();
    let report = poll("share_busy's five firings in the history", || {
        let r = c.cli_json(&[
            "report",
            "noise",
            "--window",
            "1h",
            "--propose",
            proposal.to_str().unwrap(),
        ]);
        (r["rules"][0]["rule"] == "share_busy" && r["rules"][0]["fired"] == 5).then_some(r)
    });
    let busy = &report["rules"][0];
    assert_eq!(busy["acknowledged"], 0, "{busy}");
    assert_eq!(busy["short_lived"], 5, "{busy}");
    // Five on-off changes in seconds also make it flap.
    let flapping = busy["flapping"].as_f64().unwrap();
    assert!(flapping >= 1.0, "{busy}");
    assert_eq!(
        busy["score"].as_f64().unwrap(),
        5.0 + 5.0 + flapping,
        "5 × (1 − 0) + 5 short-lived + flapping: {busy}"
    );
    assert_eq!(
        busy["proposed"]["fired"], 1,
        "at 90 % only the real trouble (97 %) would have fired: {busy}"
    );
    let filling = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "disk_filling")
        .unwrap()
        .clone();
    assert_eq!(filling["ack_ratio"], 1.0, "{filling}");
    assert!(filling["proposed"].is_null(), "{filling}");
}
