//! The running alerting system: the [`Engine`] behind a lock, the durable
//! [`AlertStore`], silences, routing, and the bounded notification outbox.
//! One type, [`Alerter`], with its jobs in files of their own: this one
//! drives evaluation (batches, the sweep) and answers reads; `commit.rs`
//! turns transitions into one durable write; `commands.rs` holds the
//! operators' commands (ack, silences, rule reload); `dispatch.rs` delivers
//! the outbox.
//!
//! Invariant: a notification is written to the outbox (synced) before any
//! delivery is attempted, in the same write as the transition that caused
//! it; it leaves the outbox only when its hook accepted it (or refused it
//! for good), or when the full policy drops it (`outbox.rs`). So a crash
//! between the two redelivers, with the same notification id and dedup key.
//! The in-memory outbox is the stored one plus the kept changes of failed
//! writes that recorded deliveries (never new notifications).

mod commands;
mod commit;
mod dispatch;
#[cfg(test)]
mod incident_tests;
mod incidents;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, broadcast};

pub use incidents::{FollowUpPatch, IncidentPatch, IncidentView, NewFollowUp};

use crate::config::Alerting;
use crate::engine::{Alert, Engine};
use crate::notify::NotifyEvent;
use crate::outbox::Outbox;
use crate::rules::{self, Rule, RuleError};
use crate::silence::Silence;
use crate::state::Level;
use crate::store::{AlertStore, Changes, HistoryRecord, StoreError};
use nightjar_model::model::{Batch, SeriesKey};
use nightjar_model::selector::Selector;

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
    /// Rules already parsed (tests, embedding).
    Given(Vec<Rule>),
}

impl RuleSource {
    /// Loads the rules.
    pub fn load(&self) -> Result<Vec<Rule>, RuleError> {
        match self {
            RuleSource::Defaults => Ok(rules::defaults()),
            RuleSource::Paths(paths) => rules::load(paths),
            RuleSource::Given(rules) => Ok(rules.clone()),
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
    /// Notifications the outbox's full policy dropped (oldest first).
    pub outbox_full: std::sync::atomic::AtomicU64,
    /// Alert-store writes that failed (their changes kept or refused).
    pub store_failures: std::sync::atomic::AtomicU64,
}

/// The alerting system.
pub struct Alerter {
    engine: Mutex<Engine>,
    store: Arc<dyn AlertStore>,
    /// The outbox as stored, kept in memory so the dispatcher never reads
    /// the store. Changed only together with a durable store write, under
    /// this lock.
    outbox: Mutex<Outbox>,
    /// Changes whose write failed, oldest first; written ahead of the next
    /// write (or by the sweep). An engine step's notifications reach the
    /// outbox only once written; a delivery's outcome is in memory at
    /// once (the delivery happened). Locked after `outbox`.
    unwritten: Mutex<Changes>,
    /// Incidents and follow-ups as stored (`incidents.rs`). Locked after
    /// `engine`, before `outbox`.
    book: Mutex<incidents::Book>,
    /// The services alerts are scoped by.
    services: RwLock<Arc<Vec<nightjar_model::service::Service>>>,
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
    /// Loads the rules and restores alert state, silences and the outbox
    /// from `store`.
    pub fn open(
        store: Arc<dyn AlertStore>,
        source: RuleSource,
        config: Alerting,
    ) -> anyhow::Result<Alerter> {
        let rules = source.load().map_err(|e| anyhow::anyhow!("{e}"))?;
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
        let book = incidents::Book::load(store.incidents()?, store.follow_ups()?);
        let outbox = Outbox::new(config.outbox_capacity, store.outbox()?);
        let (watchers, _) = broadcast::channel(1024);
        Ok(Alerter {
            engine: Mutex::new(engine),
            store,
            outbox: Mutex::new(outbox),
            unwritten: Mutex::default(),
            book: Mutex::new(book),
            services: RwLock::default(),
            config: RwLock::new(Arc::new(config)),
            silences: RwLock::new(silences),
            source: RwLock::new(source),
            wake: Notify::new(),
            watchers,
            counters: AlertCounters::default(),
        })
    }

    /// Makes a host that has sent before known, so that one that never
    /// reports again still fires host_down. Hosts silent for over a day
    /// are left out.
    pub fn seed_host(&self, host: &str, last_seen_ms: i64, interval_ms: u64, now: i64) {
        if now - last_seen_ms < FORGET_HOSTS_AFTER_MS {
            let mut engine = self.engine.lock().expect("engine lock");
            engine.seed_host(host, last_seen_ms, interval_ms);
        }
    }

    /// The selectors of the absence rules: the series they watch should be
    /// made known with [`Alerter::seed_series`] at start.
    pub fn absence_selectors(&self) -> Vec<Selector> {
        let engine = self.engine.lock().expect("engine lock");
        engine
            .rules()
            .iter()
            .filter(|r| matches!(r.kind, rules::RuleKind::Absence { .. }))
            .map(|r| r.selector.clone())
            .collect()
    }

    /// The selectors and window lengths (ms) of the windowed threshold
    /// rules: their windows should be refilled from storage with
    /// [`Alerter::prime`] at start, so that the first minutes after a
    /// restart are judged over a full window, not a partial one.
    pub fn windowed_selectors(&self) -> Vec<(Selector, i64)> {
        let engine = self.engine.lock().expect("engine lock");
        engine
            .rules()
            .iter()
            .filter_map(|r| match r.kind {
                rules::RuleKind::Threshold { window_ms, .. } if window_ms > 0 => {
                    Some((r.selector.clone(), window_ms))
                }
                _ => None,
            })
            .collect()
    }

    /// Fills the windows of the rules selecting `series` with its stored
    /// `points`, without judging them.
    pub fn prime(&self, series: &SeriesKey, points: &[nightjar_model::model::Point]) {
        self.engine
            .lock()
            .expect("engine lock")
            .prime(series, points);
    }

    /// Makes stored series known to the absence rules, so that one that
    /// never reports again still fires.
    pub fn seed_series(&self, keys: &[SeriesKey], now: i64) {
        let mut engine = self.engine.lock().expect("engine lock");
        for key in keys {
            // The receive time is not stored; count from now so a restart
            // gives every series its full `after`.
            engine.seed_series(key, now);
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
        self.write_unwritten(now);
        let events = engine.sweep(now);
        if !events.is_empty() {
            // First the transitions, so what they queue counts as notified below.
            self.commit(&mut engine, events, Vec::new(), now);
        }
        let mut changes = Changes::default();
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        let mut book = self.book.lock().expect("incidents lock");
        let mut joined = std::collections::BTreeSet::new();
        for alert in engine.firing_mut() {
            if alert.incident.is_none()
                && config.incidents.enabled
                && is_silenced(&config, &silences, &alert.labels, now).is_none()
            {
                // Fired while silenced (or before incidents): it joins now.
                let n = self.join(&mut book, &config, alert, now, &mut changes);
                alert.incident = Some(n);
                alert.incident_of_services = !book.incidents[&n].services.is_empty();
                joined.insert(n);
                changes.alerts.push(alert.clone());
            }
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
                changes.alerts.retain(|a| a.id != alert.id);
                changes.alerts.push(alert.clone());
            }
        }
        self.settle_incidents(&mut book, &config, &joined, now, &mut changes);
        drop(book);
        self.sweep_incidents(&engine, &config, now, &mut changes);
        if !changes.is_empty() {
            self.commit_with(&mut engine, Vec::new(), Vec::new(), now, changes);
        }
    }

    fn config(&self) -> Arc<Alerting> {
        self.config.read().expect("config lock").clone()
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

    /// History from `since_ms` (of `alert_id` only, if given), at most
    /// `limit` newest lines.
    pub fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        self.store.history(since_ms, limit, alert_id)
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

    /// Deletes history past its retention.
    pub fn prune(&self, now: i64) {
        let keep = self.config().history_retention.as_millis() as i64;
        if let Err(error) = self.store.prune_history(now - keep) {
            tracing::warn!(%error, "cannot prune alert history");
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

    /// Whether every alert change so far is durable: false while changes
    /// of a failed write wait in memory (health reports it).
    pub fn store_writable(&self) -> bool {
        self.unwritten.lock().expect("unwritten lock").is_empty()
    }

    /// The maintenance windows now configured.
    pub fn maintenance(&self) -> Vec<crate::silence::Maintenance> {
        self.config.read().expect("config lock").maintenance.clone()
    }

    /// Notifications waiting for delivery.
    pub fn outbox_len(&self) -> usize {
        self.outbox.lock().expect("outbox lock").len()
    }
}

pub(crate) fn history(alert: &Alert, now: i64, kind: &str, detail: String) -> HistoryRecord {
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
pub(crate) fn is_silenced(
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
