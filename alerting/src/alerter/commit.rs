//! The transition committer: events of the engine (and the sweep's
//! repeats and escalations) become alert state, history and outbox
//! entries, written in one synced write; only then is the dispatcher woken
//! and are watchers told.

use std::time::Duration;

use nightjar_common::log_limit::RateLimitedLog;

use super::{Alerter, WatchEvent, history, is_silenced};
use crate::config::Alerting;
use crate::engine::{Alert, Engine, Event};
use crate::notify::{Notification, NotifyEvent};
use crate::silence::Silence;
use crate::state::Change;
use crate::store::{Changes, HistoryRecord, OutboxEntry, StoreError};

impl Alerter {
    pub(super) fn commit(
        &self,
        engine: &mut Engine,
        events: Vec<Event>,
        dropped: Vec<String>,
        now: i64,
    ) {
        self.commit_with(engine, events, dropped, now, Changes::default());
    }

    /// Turns events into state, history and outbox writes (one synced
    /// write), then wakes the dispatcher and tells watchers.
    pub(super) fn commit_with(
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
        let mut book = self.book.lock().expect("incidents lock");
        let mut touched = std::collections::BTreeSet::new();
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
            self.incident_step(
                &mut book,
                &config,
                &silences,
                alert,
                event,
                now,
                &mut touched,
                &mut changes,
            );
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
                    snapshot.incident = alert.incident;
                    snapshot.incident_of_services = alert.incident_of_services;
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
                alert.incident = None;
                alert.incident_of_services = false;
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
        self.settle_incidents(&mut book, &config, &touched, now, &mut changes);
        drop(book);
        let queued = !changes.outbox.is_empty();
        // A failure is logged and counted by `persist`; the changes are kept.
        let written = self.persist(changes, now, OnFailure::Keep).is_ok();
        if queued && written {
            self.wake.notify_one();
        }
        for w in watch {
            let _ = self.watchers.send(w);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue(
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
    pub(super) fn enqueue_snapshot(
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
            incident: alert.incident,
            grouped_by_incident: alert.incident.is_some() && alert.incident_of_services,
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

    /// Writes `changes` in one synced write, then applies their outbox
    /// part to the in-memory outbox; its lock is held across both so the
    /// two never differ. New entries beyond the outbox's capacity first
    /// make room by the full policy (`outbox.rs`), in the same write.
    ///
    /// Changes kept from a failed write go first, in the same write. If
    /// this write fails too, `on_failure` says what happens to `changes`:
    /// an engine step's are kept (the engine has moved on, so dropping
    /// them would lose the page: they are written, and their
    /// notifications sent, once the store takes writes again); an
    /// operator's command is refused, so it can be told and retry.
    pub(super) fn persist(
        &self,
        changes: Changes,
        now: i64,
        on_failure: OnFailure,
    ) -> Result<(), StoreError> {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        let mut unwritten = self.unwritten.lock().expect("unwritten lock");
        let earlier = std::mem::take(&mut *unwritten);
        let delayed = !earlier.is_empty();
        let mut all = earlier.clone();
        all.then(changes);
        let raw = all.clone();
        let overflow = outbox.overflow(&all);
        for entry in &overflow {
            if outbox.contains(entry.seq) {
                all.delivered.push(entry.seq);
            } else {
                all.outbox.retain(|e| e.seq != entry.seq);
            }
            let n = &entry.notification;
            all.history.push(HistoryRecord {
                at_ms: now,
                alert_id: n.alert_id.clone(),
                rule: n.rule.clone(),
                kind: "dropped".into(),
                severity: n.severity,
                value: n.value,
                detail: format!(
                    "{} via {}: the outbox is full, oldest dropped",
                    n.event.as_str(),
                    entry.hook
                ),
            });
        }
        if let Err(error) = self.store.write(&all) {
            self.counters
                .store_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *unwritten = match on_failure {
                OnFailure::Keep => raw,
                OnFailure::Refuse => earlier,
            };
            if let Some(lines_held_back) = STORE_FAILED_LOG.due() {
                tracing::error!(
                    %error,
                    lines_held_back,
                    "cannot write alert state; its notifications wait in memory until the store takes writes again"
                );
            }
            return Err(error);
        }
        outbox.apply(&all);
        drop(unwritten);
        drop(outbox);
        if delayed {
            tracing::info!("the alert store takes writes again; delayed alert changes written");
        }
        if !overflow.is_empty() {
            self.counters
                .outbox_full
                .fetch_add(overflow.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Some(lines_held_back) = OUTBOX_FULL_LOG.due() {
                tracing::warn!(
                    dropped = overflow.len(),
                    lines_held_back,
                    "the notification outbox is full (a hook is down?); dropped its oldest entries"
                );
            }
        }
        Ok(())
    }

    /// Writes changes kept from a failed write, if any (the sweep calls it
    /// every second). Returns whether none are left.
    pub(super) fn write_unwritten(&self, now: i64) -> bool {
        if self.unwritten.lock().expect("unwritten lock").is_empty() {
            return true;
        }
        let written = self
            .persist(Changes::default(), now, OnFailure::Keep)
            .is_ok();
        if written {
            self.wake.notify_one();
        }
        written
    }
}

/// What [`Alerter::persist`] does with changes whose write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnFailure {
    /// Keep them, to be written first by the next write.
    Keep,
    /// Drop them and return the error.
    Refuse,
}

/// At most one "cannot write alert state" line per minute (each failure
/// is counted).
static STORE_FAILED_LOG: RateLimitedLog<60> = RateLimitedLog::new();

/// At most one "outbox full" line per minute (each drop is counted and in
/// the history).
static OUTBOX_FULL_LOG: RateLimitedLog<60> = RateLimitedLog::new();
