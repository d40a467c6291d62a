//! Tests of incidents in the alerter over the in-memory store: grouping,
//! acknowledgement, reminders, the restored notice, reopening, and the
//! operators' commands' refusals. Notifications are read from the outbox
//! (no dispatcher runs), so every queued notice is seen.

use std::sync::Arc;

use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
use nightjar_model::service::parse_services;

use super::{Alerter, FollowUpPatch, IncidentPatch, NewFollowUp, RuleSource};
use crate::config::{Alerting, RawAlerting};
use crate::incident::{ChangeRecord, FollowUpKind, FollowUpState, IncidentState, Risk};
use crate::rules::parse_rules;
use crate::store::{AlertStore, MemoryAlertStore};

const RULES: &str = "[[rule]]\nname = \"disk\"\nmetric = \"disk_used\"\nwarning = 80\ncritical = 95\nrecovery = 70\nsummary = \"disk at {{value}}%\"\n";

const SERVICES: &str = r#"
[[service]]
name = "shop"
[[service.component]]
name = "web hosts"
layer = "machine"
matchers = ["host=~web-.*"]
"#;

fn alerter(extra: &str) -> (Arc<MemoryAlertStore>, Alerter) {
    let raw: RawAlerting = toml::from_str(&format!(
        "repeat_interval = \"1m\"\n{extra}\n[[hook]]\nname = \"web\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n"
    ))
    .unwrap();
    let config = Alerting::from_raw(raw).unwrap();
    let store = Arc::new(MemoryAlertStore::new());
    let rules = RuleSource::Given(parse_rules("rules.toml", RULES).unwrap());
    let a = Alerter::open(store.clone(), rules, config).unwrap();
    let services = parse_services("s.toml", SERVICES).unwrap();
    a.set_services(services.into_iter().map(|(s, _)| s).collect());
    (store, a)
}

fn disk(host: &str, t: i64, value: f64) -> Batch {
    Batch {
        agent_id: format!("agent-{host}"),
        host: host.into(),
        seq: t as u64,
        interval_ms: 10_000,
        samples: vec![Sample {
            series: SeriesKey {
                metric: "disk_used".into(),
                labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
            },
            point: Point::new(t, value),
        }],
        histograms: Vec::new(),
    }
}

/// The events of the notifications queued so far, with their incident.
fn queued(store: &MemoryAlertStore) -> Vec<(String, Option<u64>)> {
    store
        .outbox()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.notification.event.as_str().to_owned(),
                e.notification.incident,
            )
        })
        .collect()
}

fn kinds(a: &Alerter, n: u64) -> Vec<String> {
    a.incident(n, 0)
        .unwrap()
        .timeline
        .iter()
        .map(|e| e.kind.clone())
        .collect()
}

const T0: i64 = 1_800_000_000_000;

#[test]
fn twelve_hosts_of_one_service_open_one_incident_that_resolves_with_the_last() {
    let (store, a) = alerter("update_interval = \"1h\"\n");
    let hosts: Vec<String> = (1..=12).map(|i| format!("web-{i}")).collect();
    for h in &hosts {
        a.observe(&disk(h, T0, 50.0), T0);
    }
    for h in &hosts {
        a.observe(&disk(h, T0 + 10_000, 90.0), T0 + 10_000);
    }
    let all = a.incidents(false, 0, 100);
    assert_eq!(all.len(), 1, "one incident: {all:?}");
    let i = &all[0];
    assert_eq!(i.alerts.len(), 12);
    assert_eq!(i.services, vec!["shop"]);
    assert_eq!(i.severity, crate::state::Level::Warning);
    let keys: std::collections::BTreeSet<_> = store
        .outbox()
        .unwrap()
        .iter()
        .map(|e| e.group_key())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one incident of services, one message: {keys:?}"
    );
    // One host gets worse: the incident's severity follows.
    a.observe(&disk("web-3", T0 + 20_000, 99.0), T0 + 20_000);
    let i = &a.incidents(false, 0, 10)[0];
    assert_eq!(i.severity, crate::state::Level::Critical);
    assert!(kinds(&a, 1).contains(&"severity".to_owned()));
    assert!(
        queued(&store).iter().all(|(_, inc)| *inc == Some(1)),
        "every notification names the incident"
    );
    for h in &hosts {
        a.observe(&disk(h, T0 + 30_000, 10.0), T0 + 30_000);
    }
    let i = &a.incidents(false, 0, 10)[0];
    assert_eq!(i.state, IncidentState::Resolved);
    assert_eq!(i.resolved_ms, Some(T0 + 30_000));
    assert_eq!(
        queued(&store)
            .iter()
            .filter(|(e, _)| e == "restored")
            .count(),
        1,
        "one restored notice"
    );
    let timeline = kinds(&a, 1);
    assert_eq!(timeline[0], "opened");
    assert_eq!(timeline.iter().filter(|k| *k == "alert_fired").count(), 12);
    assert_eq!(
        timeline.iter().filter(|k| *k == "alert_resolved").count(),
        12
    );
    assert!(timeline.ends_with(&["resolved".to_owned(), "restored".to_owned()]));
}

#[test]
fn a_relapse_in_the_quiet_period_reopens_and_after_it_opens_a_new_one() {
    let (_store, a) = alerter("[incidents]\nquiet_period = \"10m\"\n");
    a.observe(&disk("web-1", T0, 90.0), T0);
    a.observe(&disk("web-1", T0 + 10_000, 10.0), T0 + 10_000);
    assert_eq!(a.incidents(false, 0, 10)[0].state, IncidentState::Resolved);
    // Five minutes later: the same incident.
    let t = T0 + 5 * 60_000;
    a.observe(&disk("web-2", t, 90.0), t);
    let all = a.incidents(false, 0, 10);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].state, all[0].reopened), (IncidentState::Open, 1));
    assert!(kinds(&a, 1).contains(&"reopened".to_owned()));
    a.observe(&disk("web-2", t + 10_000, 10.0), t + 10_000);
    // An hour later: a new one.
    let t = t + 3_600_000;
    a.observe(&disk("web-1", t, 90.0), t);
    let all = a.incidents(false, 0, 10);
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].number, all[0].state), (2, IncidentState::Open));
}

#[test]
fn hosts_outside_services_get_an_incident_each() {
    let (store, a) = alerter("");
    a.observe(&disk("db-1", T0, 90.0), T0);
    a.observe(&disk("db-2", T0, 90.0), T0);
    let all = a.incidents(false, 0, 10);
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|i| i.services.is_empty() && i.alerts.len() == 1)
    );
    let keys: std::collections::BTreeSet<_> = store
        .outbox()
        .unwrap()
        .iter()
        .map(|e| e.group_key())
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "one rule on two hosts is still one message: {keys:?}"
    );
}

#[test]
fn acking_the_incident_acks_every_alert_and_stops_their_repeats() {
    let (store, a) = alerter("");
    for h in ["web-1", "web-2", "web-3"] {
        a.observe(&disk(h, T0, 90.0), T0);
    }
    let repeats =
        |store: &MemoryAlertStore| queued(store).iter().filter(|(e, _)| e == "repeat").count();
    a.sweep(T0 + 61_000);
    assert_eq!(repeats(&store), 3, "unacked alerts repeat after a minute");
    let i = a.ack_incident(1, "ann", "looking", T0 + 62_000).unwrap();
    assert_eq!(i.acked.as_ref().unwrap().by, "ann");
    assert!(
        a.active(T0 + 62_000)
            .iter()
            .all(|(al, _)| al.ack.as_ref().is_some_and(|k| k.by == "ann"))
    );
    // A fourth host joins the acknowledged incident: acknowledged too.
    a.observe(&disk("web-4", T0 + 63_000, 90.0), T0 + 63_000);
    let joined = a
        .active(T0 + 63_000)
        .into_iter()
        .find(|(al, _)| al.host() == "web-4")
        .unwrap()
        .0;
    assert_eq!(joined.ack.as_ref().map(|k| k.by.as_str()), Some("ann"));
    a.sweep(T0 + 200_000);
    assert_eq!(repeats(&store), 3, "no repeats once acked");
    assert!(
        a.ack_incident(9, "ann", "", T0)
            .unwrap_err()
            .contains("no incident I9")
    );
}

#[test]
fn an_update_falls_due_without_a_note_and_a_note_resets_the_clock() {
    let (store, a) = alerter("update_interval = \"15m\"\n");
    a.observe(&disk("web-1", T0, 90.0), T0);
    let due = |store: &MemoryAlertStore| {
        queued(store)
            .iter()
            .filter(|(e, _)| e == "update_due")
            .count()
    };
    a.sweep(T0 + 14 * 60_000);
    assert_eq!(due(&store), 0);
    a.sweep(T0 + 15 * 60_000);
    assert_eq!(due(&store), 1, "due after 15 minutes without a note");
    a.sweep(T0 + 16 * 60_000);
    assert_eq!(due(&store), 1, "one reminder per interval");
    a.note_incident(1, "ann", "restarting the cleaner", T0 + 20 * 60_000)
        .unwrap();
    a.sweep(T0 + 31 * 60_000);
    assert_eq!(due(&store), 1, "the note reset the clock");
    a.sweep(T0 + 35 * 60_000);
    assert_eq!(due(&store), 2);
    let body = store
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.notification.event.as_str() == "update_due")
        .unwrap();
    assert!(
        body.notification
            .summary
            .starts_with("Update due: I1 shop: "),
        "{}",
        body.notification.summary
    );
}

#[test]
fn review_fields_follow_ups_and_changes_refuse_bad_input_by_name() {
    let (_store, a) = alerter("");
    a.observe(&disk("web-1", T0, 90.0), T0);
    let e = a
        .set_incident(1, "ann", IncidentPatch::default(), T0)
        .unwrap_err();
    assert!(e.contains("name at least one field"), "{e}");
    let e = a
        .set_incident(
            1,
            "ann",
            IncidentPatch {
                impact: Some(crate::incident::Impact {
                    user_share: 1.5,
                    functional: 1.0,
                }),
                ..IncidentPatch::default()
            },
            T0,
        )
        .unwrap_err();
    assert!(
        e.contains("impact.user_share: 1.5 is not between 0 and 1"),
        "{e}"
    );
    let e = a
        .add_follow_up(
            NewFollowUp {
                title: "clean logs".into(),
                owner: "ann".into(),
                due_ms: 0,
                kind: FollowUpKind::Prevent,
                incidents: vec![7],
                note: String::new(),
            },
            T0,
        )
        .unwrap_err();
    assert_eq!(e, "incident: no incident I7");
    let f = a
        .add_follow_up(
            NewFollowUp {
                title: "clean logs".into(),
                owner: "ann".into(),
                due_ms: T0 + 86_400_000,
                kind: FollowUpKind::Prevent,
                incidents: vec![1],
                note: String::new(),
            },
            T0,
        )
        .unwrap();
    assert_eq!(f.id(), "P1");
    let done = FollowUpPatch {
        state: Some(FollowUpState::Done),
        ..FollowUpPatch::default()
    };
    a.update_follow_up(1, done.clone(), T0).unwrap();
    let e = a
        .update_follow_up(
            1,
            FollowUpPatch {
                state: Some(FollowUpState::InProgress),
                ..FollowUpPatch::default()
            },
            T0,
        )
        .unwrap_err();
    assert!(e.contains("cannot go from done to in_progress"), "{e}");
    assert!(
        a.update_follow_up(4, done, T0)
            .unwrap_err()
            .contains("no follow-up P4")
    );
    let change = |services: Vec<String>| ChangeRecord {
        id: String::new(),
        what: "deploy 1.2".into(),
        by: "ci".into(),
        services,
        hosts: Vec::new(),
        at_ms: T0 - 60_000,
        risk: Risk::Low,
        backout: String::new(),
        recorded_ms: 0,
    };
    let e = a
        .record_change(change(vec!["nope".into()]), T0)
        .unwrap_err();
    assert_eq!(e, "service: no service is named \"nope\"");
    let c = a.record_change(change(vec!["shop".into()]), T0).unwrap();
    let view = a.incident(1, T0).unwrap();
    assert_eq!(
        view.changes_before
            .iter()
            .map(|c| &c.id)
            .collect::<Vec<_>>(),
        vec![&c.id],
        "what changed before it opened"
    );
    assert_eq!(view.follow_ups.len(), 1);
}

#[test]
fn resolving_by_hand_tells_the_update_routes_and_cannot_be_done_twice() {
    let (store, a) = alerter("update_interval = \"15m\"\n");
    a.observe(&disk("web-1", T0, 90.0), T0);
    let i = a
        .resolve_incident(1, "ann", "false alarm", T0 + 60_000)
        .unwrap();
    assert_eq!(
        (i.state, i.resolved_by.as_str()),
        (IncidentState::Resolved, "ann")
    );
    let restored: Vec<_> = store
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|e| e.notification.event.as_str() == "restored")
        .collect();
    assert_eq!(restored.len(), 1);
    assert!(
        restored[0]
            .notification
            .summary
            .ends_with("resolved by ann"),
        "{}",
        restored[0].notification.summary
    );
    let e = a.resolve_incident(1, "ann", "", T0 + 61_000).unwrap_err();
    assert_eq!(e, "incident I1 is resolved already");
    let e = a.note_incident(1, "ann", "  ", T0).unwrap_err();
    assert!(e.starts_with("note: empty"), "{e}");
}

#[test]
fn incidents_survive_a_reopen_of_the_store_and_number_on() {
    let (store, a) = alerter("");
    a.observe(&disk("web-1", T0, 90.0), T0);
    a.note_incident(1, "ann", "looking", T0 + 1_000).unwrap();
    drop(a);
    let raw: RawAlerting = toml::from_str("").unwrap();
    let rules = RuleSource::Given(parse_rules("rules.toml", RULES).unwrap());
    let b = Alerter::open(store.clone(), rules, Alerting::from_raw(raw).unwrap()).unwrap();
    let services = parse_services("s.toml", SERVICES).unwrap();
    b.set_services(services.into_iter().map(|(s, _)| s).collect());
    assert_eq!(b.incidents(false, 0, 10).len(), 1);
    assert!(kinds(&b, 1).contains(&"note".to_owned()));
    // Its alert still fires and still belongs to it: a second host joins.
    b.observe(&disk("web-2", T0 + 2_000, 90.0), T0 + 2_000);
    assert_eq!(b.incidents(false, 0, 10).len(), 1);
    b.observe(&disk("db-1", T0 + 3_000, 90.0), T0 + 3_000);
    assert_eq!(b.incidents(false, 0, 10)[0].number, 2, "numbers go on");
}
