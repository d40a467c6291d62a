//! The running alerting system: the [`Engine`] behind a lock, the durable
//! [`AlertStore`], silences, routing, and the notification queue.
//!
//! Invariant: a notification is written to the outbox (synced) before any
//! delivery is attempted, in the same write as the transition that caused
//! it; it leaves the outbox only when its hook accepted it (or refused it
//! for good). So a crash between the two redelivers, with the same
//! notification id and dedup key.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, broadcast};

use super::config::{Alerting, Hook};
use super::engine::{Alert, Engine, Event};
use super::hooks::{Outcome, deliver};
use super::notify::{Notification, NotifyEvent};
use super::rules::{self, Rule, RuleError};
use super::silence::Silence;
use super::state::{Change, Level};
use super::store::{AlertStore, Changes, HistoryRecord, OutboxEntry};
use crate::model::Batch;
use crate::selector::Selector;
use crate::storage::Storage;

/// First retry delay of a failed delivery; doubles up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between delivery attempts.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Most notifications in one message.
const MAX_GROUP: usize = 100;
/// Hosts silent longer than this at start are not tracked for host_down.
const FORGET_HOSTS_AFTER_MS: i64 = 86_400_000;

/// Something a watcher of alerts is told.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// When.
    pub at_ms: i64,
    /// What happened (a transition's name or `acknowledged`).
    pub kind: String,
    /// The alert afterwards.
    pub alert: Alert,
}

/// Where the rules come from.
#[derive(Clone, Debug)]
pub enum RuleSource {
    /// The built-in defaults.
    Defaults,
    /// Files and directories.
    Paths(Vec<PathBuf>),
}

impl RuleSource {
    /// Loads the rules.
    pub fn load(&self) -> Result<Vec<Rule>, RuleError> {
        match self {
            RuleSource::Defaults => Ok(rules::defaults()),
            RuleSource::Paths(paths) => rules::load(paths),
        }
    }
}

/// Counters for the collector's self-metrics.
#[derive(Debug, Default)]
pub struct AlertCounters {
    /// Notifications a hook accepted.
    pub delivered: std::sync::atomic::AtomicU64,
    /// Delivery attempts that failed and will be retried.
    pub failed: std::sync::atomic::AtomicU64,
    /// Notifications a hook refused for good.
    pub dropped: std::sync::atomic::AtomicU64,
}

/// The alerting system.
pub struct Alerter {
    engine: Mutex<Engine>,
    store: AlertStore,
    config: RwLock<Arc<Alerting>>,
    silences: RwLock<Vec<Silence>>,
    source: RwLock<RuleSource>,
    wake: Notify,
    watchers: broadcast::Sender<WatchEvent>,
    /// Delivery counters.
    pub counters: AlertCounters,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Alerter {
    /// Opens the store in `dir`, loads the rules and restores alert state.
    pub fn open(
        dir: &std::path::Path,
        source: RuleSource,
        config: Alerting,
    ) -> anyhow::Result<Alerter> {
        let rules = source.load().map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = AlertStore::open(dir)?;
        let mut engine = Engine::new(rules, config.host_down_after);
        let orphans = engine.restore(store.alerts()?);
        if !orphans.is_empty() {
            let now = now_ms();
            tracing::info!(
                alerts = orphans.len(),
                "dropping alerts of rules that no longer exist"
            );
            store.write(&Changes {
                deleted_alerts: orphans.iter().map(|a| a.id.clone()).collect(),
                history: orphans
                    .iter()
                    .map(|a| history(a, now, "removed", "its rule no longer exists".into()))
                    .collect(),
                ..Changes::default()
            })?;
        }
        let silences = store.silences()?;
        let (watchers, _) = broadcast::channel(1024);
        Ok(Alerter {
            engine: Mutex::new(engine),
            store,
            config: RwLock::new(Arc::new(config)),
            silences: RwLock::new(silences),
            source: RwLock::new(source),
            wake: Notify::new(),
            watchers,
            counters: AlertCounters::default(),
        })
    }

    /// Makes the hosts and absence-watched series in `storage` known, so
    /// that one that never reports again still fires. `own_host` (the
    /// collector's name) is left out.
    pub fn seed<S: Storage>(&self, storage: &S, own_host: &str, now: i64) {
        let mut engine = self.engine.lock().expect("engine lock");
        for host in storage.hosts() {
            if host.info.host != own_host && now - host.info.last_seen_ms < FORGET_HOSTS_AFTER_MS {
                engine.seed_host(
                    &host.info.host,
                    host.info.last_seen_ms,
                    host.info.interval_ms,
                );
            }
        }
        let selectors: Vec<Selector> = engine
            .rules()
            .iter()
            .filter(|r| matches!(r.kind, rules::RuleKind::Absence { .. }))
            .map(|r| r.selector.clone())
            .collect();
        for selector in selectors {
            match storage.latest(&selector) {
                Ok(latest) => {
                    for (key, _) in latest {
                        // The receive time is not stored; count from now so a
                        // restart gives every series its full `after`.
                        engine.seed_series(&key, now);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read series for absence rules"),
            }
        }
    }

    /// Subscribes to alert events.
    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.watchers.subscribe()
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.engine.lock().expect("engine lock").rules().to_vec()
    }

    /// Evaluates an agent's batch that storage has made durable.
    pub fn observe(&self, batch: &Batch, now: i64) {
        self.observe_batch(batch, now, true);
    }

    /// Evaluates the collector's own metrics (no host_down for itself).
    pub fn observe_own(&self, batch: &Batch, now: i64) {
        self.observe_batch(batch, now, false);
    }

    fn observe_batch(&self, batch: &Batch, now: i64, track_host: bool) {
        let mut engine = self.engine.lock().expect("engine lock");
        let events = engine.observe(batch, now, track_host);
        if !events.is_empty() {
            self.commit(&mut engine, events, Vec::new(), now);
        }
    }

    /// The periodic sweep: `for` timers, absence, host_down, flapping,
    /// repeats, escalations.
    pub fn sweep(&self, now: i64) {
        let mut engine = self.engine.lock().expect("engine lock");
        let events = engine.sweep(now);
        if !events.is_empty() {
            // First the transitions, so what they queue counts as notified below.
            self.commit(&mut engine, events, Vec::new(), now);
        }
        let mut changes = Changes::default();
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        for alert in engine.firing_mut() {
            if alert.state.flapping || alert.ack.is_some() {
                continue;
            }
            let routes = config.router.routes(&alert.labels, alert.state.level);
            let Some(repeat) = routes.iter().map(|r| r.repeat_interval).min() else {
                continue;
            };
            let mut touched = false;
            let started = alert.state.started_ms;
            if is_silenced(&config, &silences, &alert.labels, now).is_none() {
                if alert.notified_ms == 0 {
                    // Fired while silenced (or before a hook existed): tell now.
                    touched |= self.enqueue(
                        &config,
                        &silences,
                        alert,
                        NotifyEvent::Firing,
                        started,
                        now,
                        None,
                        &mut changes,
                    );
                } else if !repeat.is_zero() && now - alert.notified_ms >= repeat.as_millis() as i64
                {
                    touched |= self.enqueue(
                        &config,
                        &silences,
                        alert,
                        NotifyEvent::Repeat,
                        started,
                        now,
                        None,
                        &mut changes,
                    );
                }
            }
            if alert.state.level == Some(Level::Critical) && !alert.escalated {
                for route in &routes {
                    if let Some(target) = &route.escalate_to
                        && now - started >= route.escalate_after.as_millis() as i64
                    {
                        alert.escalated = true;
                        touched = true;
                        self.enqueue(
                            &config,
                            &silences,
                            alert,
                            NotifyEvent::Escalation,
                            started,
                            now,
                            Some(target),
                            &mut changes,
                        );
                    }
                }
            }
            if touched {
                changes.alerts.push(alert.clone());
            }
        }
        if !changes.is_empty() {
            self.commit_with(&mut engine, Vec::new(), Vec::new(), now, changes);
        }
    }

    fn config(&self) -> Arc<Alerting> {
        self.config.read().expect("config lock").clone()
    }

    fn commit(&self, engine: &mut Engine, events: Vec<Event>, dropped: Vec<String>, now: i64) {
        self.commit_with(engine, events, dropped, now, Changes::default());
    }

    /// Turns events into state, history and outbox writes (one synced
    /// write), then wakes the dispatcher and tells watchers.
    fn commit_with(
        &self,
        engine: &mut Engine,
        events: Vec<Event>,
        dropped: Vec<String>,
        now: i64,
        mut changes: Changes,
    ) {
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        changes.deleted_alerts.extend(dropped);
        let mut watch = Vec::new();
        for event in &events {
            let t = &event.transition;
            changes.history.push(HistoryRecord {
                at_ms: t.at_ms,
                alert_id: event.alert.id.clone(),
                rule: event.alert.rule.clone(),
                kind: t.change.as_str().into(),
                severity: t.level,
                value: Some(t.value).filter(|v| v.is_finite()),
                detail: event.alert.summary.clone(),
            });
            let Some(alert) = engine.get_mut(&event.alert.id) else {
                continue;
            };
            if t.notify {
                let kind = match t.change {
                    Change::Fired => Some(NotifyEvent::Firing),
                    Change::Escalated => Some(NotifyEvent::Escalated),
                    Change::Deescalated => Some(NotifyEvent::Deescalated),
                    Change::Flapping => Some(NotifyEvent::Flapping),
                    Change::Stable if t.level.is_some() || alert.notified_ms > 0 => {
                        Some(NotifyEvent::Stable)
                    }
                    // Only an incident someone was told about needs a resolve.
                    Change::Resolved if alert.notified_ms > 0 => Some(NotifyEvent::Resolved),
                    _ => None,
                };
                if let Some(kind) = kind {
                    let mut snapshot = event.alert.clone();
                    snapshot.ack = alert.ack.clone();
                    snapshot.notified_ms = alert.notified_ms;
                    if self.enqueue_snapshot(
                        &config,
                        &silences,
                        &snapshot,
                        kind,
                        event.started_ms,
                        t.value,
                        now,
                        None,
                        &mut changes,
                    ) {
                        alert.notified_ms = now;
                        alert.notified_level = alert.notified_level.max(t.level);
                    }
                }
            }
            if matches!(t.change, Change::Resolved)
                || (t.change == Change::Stable && t.level.is_none())
            {
                alert.ack = None;
                alert.notified_ms = 0;
                alert.notified_level = None;
                alert.escalated = false;
            }
            if alert.state.is_active() {
                changes.alerts.push(alert.clone());
            } else {
                changes.deleted_alerts.push(alert.id.clone());
            }
            watch.push(WatchEvent {
                at_ms: t.at_ms,
                kind: t.change.as_str().into(),
                alert: alert.clone(),
            });
        }
        if let Err(error) = self.store.write(&changes) {
            tracing::error!(%error, "cannot write alert state; notifications of this step may be lost");
        }
        if !changes.outbox.is_empty() {
            self.wake.notify_one();
        }
        for w in watch {
            let _ = self.watchers.send(w);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        config: &Alerting,
        silences: &[Silence],
        alert: &mut Alert,
        event: NotifyEvent,
        started_ms: i64,
        now: i64,
        only_hook: Option<&str>,
        changes: &mut Changes,
    ) -> bool {
        let value = alert.state.value;
        let queued = self.enqueue_snapshot(
            config, silences, alert, event, started_ms, value, now, only_hook, changes,
        );
        if queued {
            alert.notified_ms = now;
            alert.notified_level = alert.notified_level.max(alert.state.level);
        }
        queued
    }

    /// Queues `event` about `alert` for every hook its routes name (or only
    /// `only_hook`), unless silenced. Returns whether anything was queued.
    #[allow(clippy::too_many_arguments)]
    fn enqueue_snapshot(
        &self,
        config: &Alerting,
        silences: &[Silence],
        alert: &Alert,
        event: NotifyEvent,
        started_ms: i64,
        value: f64,
        now: i64,
        only_hook: Option<&str>,
        changes: &mut Changes,
    ) -> bool {
        let severity = if event == NotifyEvent::Resolved {
            None
        } else {
            alert.state.level
        };
        if event != NotifyEvent::Acknowledged
            && let Some(by) = is_silenced(config, silences, &alert.labels, now)
        {
            changes.history.push(history(
                alert,
                now,
                "suppressed",
                format!("{} suppressed by {by}", event.as_str()),
            ));
            return false;
        }
        // A resolve goes where the incident's notifications went.
        let routes = config
            .router
            .routes(&alert.labels, severity.or(alert.notified_level));
        let mut hooks: Vec<(&str, Duration)> = Vec::new();
        match only_hook {
            Some(h) => hooks.push((h, Duration::ZERO)),
            None => {
                for route in &routes {
                    for h in &route.hooks {
                        if !hooks.iter().any(|(name, _)| name == h) {
                            hooks.push((h, route.group_wait));
                        }
                    }
                }
            }
        }
        if hooks.is_empty() {
            return false;
        }
        let id_seq = self.store.next_seq();
        let notification = Notification {
            id: format!("{}-{id_seq}", alert.id),
            dedup_key: alert.dedup_key(started_ms),
            event,
            alert_id: alert.id.clone(),
            rule: alert.rule.clone(),
            severity,
            labels: alert.labels.clone(),
            value: Some(value).filter(|v| v.is_finite()),
            summary: alert.summary.clone(),
            runbook: alert.runbook.clone(),
            started_ms,
            at_ms: now,
            acked_by: alert.ack.as_ref().map(|a| a.by.clone()),
            ack_note: alert.ack.as_ref().map(|a| a.note.clone()),
        };
        for (hook, wait) in &hooks {
            changes.outbox.push(OutboxEntry {
                seq: self.store.next_seq(),
                hook: (*hook).to_owned(),
                notification: notification.clone(),
                group_wait_ms: wait.as_millis() as i64,
                created_ms: now,
                attempts: 0,
                next_attempt_ms: now + wait.as_millis() as i64,
                last_error: String::new(),
            });
        }
        let names: Vec<&str> = hooks.iter().map(|(h, _)| *h).collect();
        changes.history.push(history(
            alert,
            now,
            "queued",
            format!("{} to {}", event.as_str(), names.join(", ")),
        ));
        true
    }

    /// Acknowledges firing alert `id`: no more repeats or escalation, and
    /// the hooks (PagerDuty: acknowledge) are told.
    pub fn ack(&self, id: &str, by: &str, note: &str, now: i64) -> Result<Alert, String> {
        let mut engine = self.engine.lock().expect("engine lock");
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        let alert = engine
            .get_mut(id)
            .ok_or_else(|| format!("no alert has id {id:?}"))?;
        if alert.state.level.is_none() {
            return Err(format!("alert {id} is not firing"));
        }
        alert.ack = Some(super::engine::Ack {
            by: by.to_owned(),
            note: note.to_owned(),
            at_ms: now,
        });
        let mut changes = Changes::default();
        changes.history.push(history(
            alert,
            now,
            "acknowledged",
            format!("by {by}: {note}"),
        ));
        let started = alert.state.started_ms;
        if alert.notified_ms > 0 {
            let snapshot = alert.clone();
            self.enqueue_snapshot(
                &config,
                &silences,
                &snapshot,
                NotifyEvent::Acknowledged,
                started,
                snapshot.state.value,
                now,
                None,
                &mut changes,
            );
        }
        changes.alerts.push(alert.clone());
        let alert = alert.clone();
        self.store.write(&changes).map_err(|e| e.to_string())?;
        self.wake.notify_one();
        let _ = self.watchers.send(WatchEvent {
            at_ms: now,
            kind: "acknowledged".into(),
            alert: alert.clone(),
        });
        Ok(alert)
    }

    /// Pending, firing and flapping alerts, with whether each is silenced now.
    pub fn active(&self, now: i64) -> Vec<(Alert, Option<String>)> {
        let engine = self.engine.lock().expect("engine lock");
        let config = self.config();
        let silences = self.silences.read().expect("silences lock");
        let mut out: Vec<(Alert, Option<String>)> = engine
            .active()
            .map(|a| (a.clone(), is_silenced(&config, &silences, &a.labels, now)))
            .collect();
        out.sort_by(|a, b| (&a.0.rule, &a.0.series).cmp(&(&b.0.rule, &b.0.series)));
        out
    }

    /// History from `since_ms`, at most `limit` newest lines.
    pub fn history(&self, since_ms: i64, limit: usize) -> anyhow::Result<Vec<HistoryRecord>> {
        self.store.history(since_ms, limit)
    }

    /// Adds a silence; its matchers must compile.
    pub fn add_silence(&self, mut silence: Silence, now: i64) -> Result<Silence, String> {
        super::silence::compile(&silence.matchers)?;
        if silence.matchers.is_empty() {
            return Err("matchers: a silence needs at least one matcher".into());
        }
        if silence.ends_ms <= silence.starts_ms {
            return Err("ends before it starts".into());
        }
        silence.id = format!("s{}", self.store.next_seq());
        silence.created_ms = now;
        let changes = Changes {
            silences: vec![silence.clone()],
            history: vec![HistoryRecord {
                at_ms: now,
                alert_id: silence.id.clone(),
                rule: String::new(),
                kind: "silence_added".into(),
                severity: None,
                value: None,
                detail: format!(
                    "{} by {}: {}",
                    silence.matchers.join(","),
                    silence.author,
                    silence.comment
                ),
            }],
            ..Changes::default()
        };
        self.store.write(&changes).map_err(|e| e.to_string())?;
        self.silences
            .write()
            .expect("silences lock")
            .push(silence.clone());
        Ok(silence)
    }

    /// Ends silence `id` now.
    pub fn expire_silence(&self, id: &str, now: i64) -> Result<Silence, String> {
        let mut silences = self.silences.write().expect("silences lock");
        let silence = silences
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("no silence has id {id:?}"))?;
        silence.ends_ms = silence.ends_ms.min(now);
        let changes = Changes {
            silences: vec![silence.clone()],
            history: vec![HistoryRecord {
                at_ms: now,
                alert_id: id.to_owned(),
                rule: String::new(),
                kind: "silence_expired".into(),
                severity: None,
                value: None,
                detail: String::new(),
            }],
            ..Changes::default()
        };
        self.store.write(&changes).map_err(|e| e.to_string())?;
        Ok(silence.clone())
    }

    /// Every silence not yet ended (or all with `include_expired`).
    pub fn silences(&self, now: i64, include_expired: bool) -> Vec<Silence> {
        self.silences
            .read()
            .expect("silences lock")
            .iter()
            .filter(|s| include_expired || s.ends_ms > now)
            .cloned()
            .collect()
    }

    /// Reloads the rules from their source, keeping the state of unchanged
    /// rules. On error nothing changes.
    pub fn reload_rules(&self, now: i64) -> Result<usize, RuleError> {
        let rules = self.source.read().expect("rule source lock").load()?;
        let count = rules.len();
        let mut engine = self.engine.lock().expect("engine lock");
        let (events, dropped) = engine.replace_rules(rules, now);
        self.commit(&mut engine, events, dropped, now);
        tracing::info!(rules = count, "alert rules loaded");
        Ok(count)
    }

    /// Deletes history past its retention.
    pub fn prune(&self, now: i64) {
        let keep = self.config().history_retention.as_millis() as i64;
        if let Err(error) = self.store.prune_history(now - keep) {
            tracing::warn!(%error, "cannot prune alert history");
        }
    }

    /// Delivers the outbox until the process ends: oldest first, grouped,
    /// each group retried with exponential backoff until its hook accepts.
    pub async fn run_dispatcher(self: Arc<Self>) {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client builds");
        let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::default();
        loop {
            let now = now_ms();
            let mut next_wake = now + 60_000;
            let outbox = match self.store.outbox() {
                Ok(o) => o,
                Err(error) => {
                    tracing::error!(%error, "cannot read the outbox");
                    Vec::new()
                }
            };
            let busy = in_flight.lock().expect("in-flight lock").clone();
            let messages = plan(outbox, &busy, now, &mut next_wake);
            let config = self.config();
            for due in messages {
                for message in due.chunks(MAX_GROUP) {
                    let message = message.to_vec();
                    let Some(hook) = config
                        .hooks
                        .iter()
                        .find(|h| h.name == message[0].hook)
                        .cloned()
                    else {
                        self.finish(
                            message,
                            Outcome::Rejected("the hook is no longer configured".into()),
                            now,
                        );
                        continue;
                    };
                    in_flight
                        .lock()
                        .expect("in-flight lock")
                        .extend(message.iter().map(|e| e.seq));
                    let me = self.clone();
                    let client = client.clone();
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move {
                        let outcome = send(&client, &hook, &message).await;
                        let seqs: Vec<u64> = message.iter().map(|e| e.seq).collect();
                        let store_result = tokio::task::spawn_blocking({
                            let me = me.clone();
                            move || me.finish(message, outcome, now_ms())
                        })
                        .await;
                        if let Err(error) = store_result {
                            tracing::error!(%error, "recording a delivery failed");
                        }
                        let mut busy = in_flight.lock().expect("in-flight lock");
                        for s in seqs {
                            busy.remove(&s);
                        }
                        drop(busy);
                        me.wake.notify_one();
                    });
                }
            }
            let sleep = Duration::from_millis((next_wake - now).clamp(1, 60_000) as u64);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Records a delivery's outcome: delivered or dropped entries leave the
    /// outbox; failed ones get their next attempt.
    fn finish(&self, message: Vec<OutboxEntry>, outcome: Outcome, now: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut changes = Changes::default();
        let hook = message[0].hook.clone();
        for mut entry in message {
            let n = &entry.notification;
            let mut record = |kind: &str, detail: String| {
                changes.history.push(HistoryRecord {
                    at_ms: now,
                    alert_id: n.alert_id.clone(),
                    rule: n.rule.clone(),
                    kind: kind.into(),
                    severity: n.severity,
                    value: n.value,
                    detail,
                });
            };
            match &outcome {
                Outcome::Accepted => {
                    self.counters.delivered.fetch_add(1, Relaxed);
                    record(
                        "notified",
                        format!("{} via {hook} ({})", n.event.as_str(), n.id),
                    );
                    changes.delivered.push(entry.seq);
                }
                Outcome::Rejected(error) => {
                    self.counters.dropped.fetch_add(1, Relaxed);
                    tracing::error!(hook, notification = %n.id, %error, "hook refused a notification; dropping it");
                    record(
                        "dropped",
                        format!("{} via {hook}: {error}", n.event.as_str()),
                    );
                    changes.delivered.push(entry.seq);
                }
                Outcome::Retry(error) => {
                    self.counters.failed.fetch_add(1, Relaxed);
                    let delay = RETRY_BASE
                        .saturating_mul(1 << entry.attempts.min(16))
                        .min(RETRY_MAX);
                    if entry.attempts == 0 || entry.attempts.is_power_of_two() {
                        tracing::warn!(hook, notification = %n.id, attempts = entry.attempts + 1, %error, retry_in = ?delay, "delivery failed");
                    }
                    record(
                        "delivery_failed",
                        format!("{} via {hook}: {error}", n.event.as_str()),
                    );
                    entry.attempts += 1;
                    entry.next_attempt_ms = now + delay.as_millis() as i64;
                    entry.last_error = error.clone();
                    changes.outbox.push(entry);
                }
            }
        }
        if let Err(error) = self.store.write(&changes) {
            tracing::error!(%error, "cannot record a delivery; it may be sent again");
        }
    }

    /// Where rules are loaded from on the next reload (SIGHUP).
    pub fn set_rule_source(&self, source: RuleSource) {
        *self.source.write().expect("rule source lock") = source;
    }

    /// Replaces hooks, routes and maintenance windows (SIGHUP).
    pub fn set_config(&self, config: Alerting) {
        *self.config.write().expect("config lock") = Arc::new(config);
        self.wake.notify_one();
    }

    /// Notifications waiting for delivery.
    pub fn outbox_len(&self) -> usize {
        self.store.outbox().map_or(0, |o| o.len())
    }
}

/// Chooses what to send now from the outbox (in queue order), skipping
/// entries in flight (`busy`), and lowers `next_wake` to the next entry
/// that becomes due.
///
/// Order: per (hook, alert) one entry at a time, oldest first, so a hook
/// never hears "resolved" before "firing". Grouping: entries of one
/// (hook, rule, event) go together; a fresh entry still inside its group
/// wait joins a group whose first entry is due.
fn plan(
    outbox: Vec<OutboxEntry>,
    busy: &HashSet<u64>,
    now: i64,
    next_wake: &mut i64,
) -> Vec<Vec<OutboxEntry>> {
    let mut blocked: HashSet<(String, String)> = outbox
        .iter()
        .filter(|e| busy.contains(&e.seq))
        .map(|e| (e.hook.clone(), e.notification.alert_id.clone()))
        .collect();
    let fresh_due: HashSet<(String, String, String)> = outbox
        .iter()
        .filter(|e| !busy.contains(&e.seq) && e.attempts == 0 && e.next_attempt_ms <= now)
        .map(OutboxEntry::group_key)
        .collect();
    let mut groups: BTreeMap<(String, String, String), Vec<OutboxEntry>> = BTreeMap::new();
    for entry in outbox {
        if busy.contains(&entry.seq) {
            continue;
        }
        // Whether sent now or not yet due, this entry holds the line for
        // later entries of its (hook, alert).
        if !blocked.insert((entry.hook.clone(), entry.notification.alert_id.clone())) {
            continue;
        }
        let key = entry.group_key();
        if entry.next_attempt_ms <= now || (entry.attempts == 0 && fresh_due.contains(&key)) {
            groups.entry(key).or_default().push(entry);
        } else {
            *next_wake = (*next_wake).min(entry.next_attempt_ms);
        }
    }
    groups.into_values().collect()
}

async fn send(client: &reqwest::Client, hook: &Hook, message: &[OutboxEntry]) -> Outcome {
    let group: Vec<&Notification> = message.iter().map(|e| &e.notification).collect();
    deliver(client, hook, &group, now_ms()).await
}

fn history(alert: &Alert, now: i64, kind: &str, detail: String) -> HistoryRecord {
    HistoryRecord {
        at_ms: now,
        alert_id: alert.id.clone(),
        rule: alert.rule.clone(),
        kind: kind.into(),
        severity: alert.state.level,
        value: Some(alert.state.value).filter(|v| v.is_finite()),
        detail,
    }
}

/// The silence or maintenance window covering `labels` at `now`, by id/name.
fn is_silenced(
    config: &Alerting,
    silences: &[Silence],
    labels: &BTreeMap<String, String>,
    now: i64,
) -> Option<String> {
    if let Some(s) = silences.iter().find(|s| s.silences(labels, now)) {
        return Some(format!("silence {}", s.id));
    }
    config
        .maintenance
        .iter()
        .find(|m| m.covers(labels, now))
        .map(|m| format!("maintenance window {}", m.name))
}
