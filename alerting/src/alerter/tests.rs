//! Tests of the alerter over the in-memory store, with deliveries to a
//! real HTTP receiver on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};

use super::{Alerter, RuleSource};
use crate::config::{Alerting, RawAlerting};
use crate::engine::Alert;
use crate::rules::parse_rules;
use crate::silence::Silence;
use crate::store::{AlertStore, Changes, HistoryRecord, MemoryAlertStore, OutboxEntry, StoreError};

const RULES: &str =
    "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\nrecovery = 40\nsummary = \"hot\"\n";

/// A store that counts how often the outbox is read.
#[derive(Default)]
struct CountingStore {
    inner: MemoryAlertStore,
    outbox_reads: AtomicUsize,
}

impl AlertStore for CountingStore {
    fn write(&self, changes: &Changes) -> Result<(), StoreError> {
        self.inner.write(changes)
    }
    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.inner.alerts()
    }
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.outbox()
    }
    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.inner.silences()
    }
    fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        self.inner.history(since_ms, limit, alert_id)
    }
    fn prune_history(&self, before_ms: i64) -> Result<(), StoreError> {
        self.inner.prune_history(before_ms)
    }
    fn next_seq(&self) -> u64 {
        self.inner.next_seq()
    }
    fn incidents(&self) -> Result<Vec<crate::incident::Incident>, StoreError> {
        self.inner.incidents()
    }
    fn incident_events(&self, n: u64) -> Result<Vec<crate::incident::IncidentEvent>, StoreError> {
        self.inner.incident_events(n)
    }
    fn follow_ups(&self) -> Result<Vec<crate::incident::FollowUp>, StoreError> {
        self.inner.follow_ups()
    }
    fn change_records(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::incident::ChangeRecord>, StoreError> {
        self.inner.change_records(from, to)
    }
}

/// A webhook receiver on loopback that keeps every body it is sent.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn receiver() -> Receiver {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, bodies }
}

fn alerting(toml_text: &str) -> Alerting {
    let raw: RawAlerting = toml::from_str(toml_text).expect("alerting TOML");
    Alerting::from_raw(raw).expect("valid [alerting]")
}

fn webhook(url: &str, extra: &str) -> Alerting {
    alerting(&format!(
        "{extra}\n[[hook]]\nname = \"web\"\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"2s\"\n"
    ))
}

fn alerter(store: Arc<dyn AlertStore>, config: Alerting) -> Arc<Alerter> {
    let rules = RuleSource::Given(parse_rules("rules.toml", RULES).unwrap());
    Arc::new(Alerter::open(store, rules, config).unwrap())
}

/// A batch with `temp` = `value` for each of `disks`.
fn batch(seq: u64, t: i64, value: f64, disks: &[&str]) -> Batch {
    Batch {
        agent_id: "a1".into(),
        host: "web-1".into(),
        seq,
        interval_ms: 10_000,
        samples: disks
            .iter()
            .map(|d| Sample {
                series: SeriesKey {
                    metric: "temp".into(),
                    labels: Labels::from_pairs(vec![
                        ("disk".into(), (*d).into()),
                        ("host".into(), "web-1".into()),
                    ])
                    .unwrap(),
                },
                point: Point::new(t, value),
            })
            .collect(),
        histograms: Vec::new(),
    }
}

/// Polls `done` until it holds or 10 s pass; `what` says what was awaited
/// (and what was seen) when it does not.
async fn eventually<W: std::fmt::Display>(what: impl Fn() -> W, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_dispatcher_delivers_from_memory_and_reads_the_store_once() {
    let hook = receiver().await;
    let store = Arc::new(CountingStore::default());
    let a = alerter(store.clone(), webhook(&hook.url, ""));
    tokio::spawn(a.clone().run_dispatcher());
    // Samples of the last 30 s, received now.
    let t = super::now_ms() - 30_000;
    a.observe(&batch(1, t, 70.0, &["sda"]), super::now_ms());
    a.observe(&batch(2, t + 10_000, 20.0, &["sda"]), super::now_ms());
    a.observe(&batch(3, t + 20_000, 80.0, &["sda"]), super::now_ms());
    eventually(
        || {
            let history = store.inner.history(0, usize::MAX, None).unwrap();
            let kinds: Vec<String> = history
                .iter()
                .map(|h| format!("{} {}", h.kind, h.detail))
                .collect();
            format!("three deliveries; history: {kinds:?}")
        },
        || hook.bodies.lock().unwrap().len() == 3,
    )
    .await;
    let events: Vec<String> = hook
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["alerts"][0]["event"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        events,
        vec!["firing", "resolved", "firing"],
        "in order per alert"
    );
    eventually(|| "an empty outbox", || a.outbox_len() == 0).await;
    assert!(
        store.inner.outbox().unwrap().is_empty(),
        "delivered entries leave the store"
    );
    assert_eq!(
        store.outbox_reads.load(Ordering::Relaxed),
        1,
        "read once, at open; never by the dispatcher"
    );
    let notified = store
        .inner
        .history(0, usize::MAX, None)
        .unwrap()
        .into_iter()
        .filter(|h| h.kind == "notified")
        .count();
    assert_eq!(notified, 3);
}

#[tokio::test]
async fn a_full_outbox_drops_its_oldest_entries_and_counts_them() {
    // A hook whose receiver is gone: nothing is ever delivered, and with
    // no dispatcher running nothing is in flight.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let store = Arc::new(MemoryAlertStore::new());
    let a = alerter(store.clone(), webhook(&url, "outbox_capacity = 3"));
    let t = super::now_ms();
    a.observe(&batch(1, t, 70.0, &["a", "b", "c"]), t);
    let first: Vec<u64> = store.outbox().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(first.len(), 3);
    a.observe(&batch(2, t + 1_000, 70.0, &["d", "e"]), t + 1_000);
    let held = store.outbox().unwrap();
    assert_eq!(held.len(), 3, "the bound holds");
    assert_eq!(a.outbox_len(), 3, "memory and store agree");
    assert_eq!(held[0].seq, first[2], "the two oldest went");
    let series: Vec<&str> = held
        .iter()
        .map(|e| e.notification.labels["disk"].as_str())
        .collect();
    assert_eq!(series, vec!["c", "d", "e"]);
    assert_eq!(a.counters.outbox_full.load(Ordering::Relaxed), 2);
    let dropped: Vec<String> = store
        .history(0, usize::MAX, None)
        .unwrap()
        .into_iter()
        .filter(|h| h.kind == "dropped")
        .map(|h| h.detail)
        .collect();
    assert_eq!(dropped.len(), 2);
    assert!(dropped[0].contains("outbox is full"), "{}", dropped[0]);
}

#[tokio::test]
async fn a_restart_resumes_the_stored_outbox() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let store = Arc::new(MemoryAlertStore::new());
    let t = super::now_ms();
    {
        let a = alerter(store.clone(), webhook(&url, ""));
        a.observe(&batch(1, t, 70.0, &["sda"]), t);
        assert_eq!(a.outbox_len(), 1);
    }
    // The hook is back, at a new address; the queued page goes out.
    let hook = receiver().await;
    let a = alerter(store.clone(), webhook(&hook.url, ""));
    assert_eq!(a.outbox_len(), 1, "loaded from the store");
    tokio::spawn(a.clone().run_dispatcher());
    eventually(
        || "the queued page",
        || hook.bodies.lock().unwrap().len() == 1,
    )
    .await;
    eventually(|| "an empty outbox", || a.outbox_len() == 0).await;
}

#[tokio::test]
async fn a_failed_store_write_delays_the_page_and_never_loses_it() {
    let hook = receiver().await;
    let store = Arc::new(MemoryAlertStore::new());
    let a = alerter(store.clone(), webhook(&hook.url, ""));
    tokio::spawn(a.clone().run_dispatcher());
    store.fail_writes(true);
    let t = super::now_ms();
    a.observe(&batch(1, t, 70.0, &["sda"]), t);
    // The engine has fired; nothing is durable, so nothing may be sent.
    assert_eq!(a.active(t).len(), 1, "the engine moved on");
    assert!(!a.store_writable(), "health sees the unwritten changes");
    assert_eq!(a.outbox_len(), 0, "not sendable before it is durable");
    assert_eq!(a.counters.store_failures.load(Ordering::Relaxed), 1);
    // Still failing: the sweep's retry fails and keeps everything.
    a.sweep(t + 1_000);
    assert!(!a.store_writable());
    // An operator's command is refused, not kept, and changes nothing.
    let id = a.active(t)[0].0.id.clone();
    let refused = a.ack(&id, "ann", "looking", t + 1_500);
    assert!(refused.is_err(), "the ack cannot be made durable");
    assert!(
        a.active(t)[0].0.ack.is_none(),
        "the refused ack left no trace"
    );
    store.fail_writes(false);
    a.sweep(t + 2_000);
    assert!(a.store_writable(), "written once the store takes writes");
    eventually(
        || format!("the delayed page; got {:?}", hook.bodies.lock().unwrap()),
        || hook.bodies.lock().unwrap().len() == 1,
    )
    .await;
    let body = hook.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["alerts"][0]["event"], "firing");
    let kinds: Vec<String> = store
        .history(0, usize::MAX, None)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(
        kinds.starts_with(&["fired".to_string(), "queued".to_string()]),
        "the step's history is kept, in order: {kinds:?}"
    );
    assert!(
        !kinds.contains(&"acknowledged".to_string()),
        "the refused ack is not in the history: {kinds:?}"
    );
    assert_eq!(
        store.alerts().unwrap().len(),
        1,
        "the alert state is stored"
    );
}

#[tokio::test]
async fn a_delivery_whose_record_cannot_be_written_is_not_sent_again() {
    let hook = receiver().await;
    let store = Arc::new(MemoryAlertStore::new());
    let a = alerter(store.clone(), webhook(&hook.url, ""));
    let t = super::now_ms();
    a.observe(&batch(1, t, 70.0, &["sda"]), t);
    assert_eq!(a.outbox_len(), 1, "queued while the store works");
    store.fail_writes(true);
    tokio::spawn(a.clone().run_dispatcher());
    eventually(
        || "the delivery and its failed record",
        || !hook.bodies.lock().unwrap().is_empty() && !a.store_writable(),
    )
    .await;
    assert_eq!(a.outbox_len(), 0, "delivered: it left memory at once");
    store.fail_writes(false);
    a.sweep(t + 1_000);
    assert!(
        a.store_writable(),
        "the record is written once the store recovers"
    );
    assert!(
        store.outbox().unwrap().is_empty(),
        "and the stored outbox agrees"
    );
    assert_eq!(
        hook.bodies.lock().unwrap().len(),
        1,
        "sent once, not in a loop"
    );
}
