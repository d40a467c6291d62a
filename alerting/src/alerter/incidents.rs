//! Incidents in the alerter (docs/incidents.md): alerts join or open the
//! incident of their scope as they fire, in the same write as their
//! transition; the sweep sends "update due" reminders and closes what a
//! rule reload orphaned; operators acknowledge, annotate, resolve and
//! review incidents, track follow-ups and record changes.
//!
//! Invariant: an incident, its timeline lines and the alert states that
//! name it are written in one synced write (`commit.rs` persists them with
//! the transition), so a crash never leaves a firing alert outside the
//! incident it joined, and a restart, restoring both, opens no second
//! incident for alerts that already have one. Operators' commands change a
//! copy and take effect only once written (`OnFailure::Refuse`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::commit::OnFailure;
use super::{Alerter, history, is_silenced};
use crate::config::{Alerting, HookKind};
use crate::engine::{Ack, Alert, Engine, Event};
use crate::incident::format_minutes as minutes;
use crate::incident::{
    ChangeRecord, FollowUp, FollowUpKind, FollowUpState, Impact, Incident, IncidentAlert,
    IncidentEvent, IncidentState, Review, scope_of, title_for, with_dependencies,
};
use crate::notify::{Notification, NotifyEvent};
use crate::silence::Silence;
use crate::state::{Change, Level};
use crate::store::{Changes, OutboxEntry, StoreError};

/// The incidents and follow-ups, as stored; changed with their writes.
#[derive(Debug, Default)]
pub(super) struct Book {
    pub(super) incidents: BTreeMap<u64, Incident>,
    pub(super) follow_ups: BTreeMap<u64, FollowUp>,
}

impl Book {
    pub(super) fn load(incidents: Vec<Incident>, follow_ups: Vec<FollowUp>) -> Book {
        Book {
            incidents: incidents.into_iter().map(|i| (i.number, i)).collect(),
            follow_ups: follow_ups.into_iter().map(|f| (f.number, f)).collect(),
        }
    }

    fn next_incident(&self) -> u64 {
        self.incidents.keys().next_back().map_or(1, |n| n + 1)
    }

    fn next_follow_up(&self) -> u64 {
        self.follow_ups.keys().next_back().map_or(1, |n| n + 1)
    }

    /// The incident a firing alert of `scope` belongs to: an open one
    /// sharing a scope tag, else one resolved within the quiet period.
    fn find(&self, scope: &[String], now: i64, quiet_ms: i64) -> Option<u64> {
        let open = self
            .incidents
            .values()
            .rev()
            .find(|i| i.state == IncidentState::Open && i.shares_scope(scope));
        let recent = || {
            self.incidents.values().rev().find(|i| {
                i.state == IncidentState::Resolved
                    && i.shares_scope(scope)
                    && i.resolved_ms.is_some_and(|r| now - r <= quiet_ms)
            })
        };
        open.or_else(recent).map(|i| i.number)
    }
}

/// One incident and what is known around it, for `incident show`.
#[derive(Clone, Debug)]
pub struct IncidentView {
    pub incident: Incident,
    /// Its timeline, oldest first.
    pub timeline: Vec<IncidentEvent>,
    /// Changes to its services (and their dependencies) or hosts in the
    /// lookback before it opened, newest first: "what changed?".
    pub changes_before: Vec<ChangeRecord>,
    /// Changes made while it was open, oldest first.
    pub changes_during: Vec<ChangeRecord>,
    /// Its follow-ups.
    pub follow_ups: Vec<FollowUp>,
}

/// What `incident set` changes (None: leave as is).
#[derive(Clone, Debug, Default)]
pub struct IncidentPatch {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub root_cause: Option<String>,
    pub category: Option<crate::incident::Category>,
    pub trigger: Option<String>,
    pub resolution: Option<String>,
    pub detection: Option<String>,
    pub change_id: Option<String>,
    pub lessons: Option<String>,
    pub impact: Option<Impact>,
}

/// A new follow-up.
#[derive(Clone, Debug)]
pub struct NewFollowUp {
    pub title: String,
    pub owner: String,
    pub due_ms: i64,
    pub kind: FollowUpKind,
    pub incidents: Vec<u64>,
    pub note: String,
}

/// What `problem update` changes (None: leave as is).
#[derive(Clone, Debug, Default)]
pub struct FollowUpPatch {
    pub title: Option<String>,
    pub owner: Option<String>,
    pub due_ms: Option<i64>,
    pub kind: Option<FollowUpKind>,
    pub state: Option<FollowUpState>,
    pub link: Vec<u64>,
    pub note: Option<String>,
}

fn level_name(level: Option<Level>) -> &'static str {
    level.map_or("resolved", Level::as_str)
}

fn describe(alert: &Alert) -> String {
    let what = if alert.summary.is_empty() {
        alert.series.clone()
    } else {
        alert.summary.clone()
    };
    format!("{}: {what}", alert.rule)
}

impl Alerter {
    /// Replaces the services alerts are scoped by (start and SIGHUP).
    pub fn set_services(&self, services: Vec<nightjar_model::service::Service>) {
        *self.services.write().expect("services lock") = std::sync::Arc::new(services);
    }

    /// The `[alerting.incidents]` settings in force.
    pub fn incident_config(&self) -> crate::incident::IncidentConfig {
        self.config().incidents.clone()
    }

    fn services(&self) -> std::sync::Arc<Vec<nightjar_model::service::Service>> {
        self.services.read().expect("services lock").clone()
    }

    /// An engine transition's part in incidents: a firing alert joins (or
    /// opens, or reopens) the incident of its scope; the others are lines
    /// of its incident's timeline. Touched incidents are settled by
    /// [`Alerter::settle_incidents`] after the step.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn incident_step(
        &self,
        book: &mut Book,
        config: &Alerting,
        silences: &[Silence],
        alert: &mut Alert,
        event: &Event,
        now: i64,
        touched: &mut BTreeSet<u64>,
        changes: &mut Changes,
    ) {
        let t = &event.transition;
        let number = match t.change {
            Change::Fired => {
                if !config.incidents.enabled
                    || is_silenced(config, silences, &alert.labels, now).is_some()
                {
                    // Silenced trouble is known trouble: no incident.
                    return;
                }
                let n = self.join(book, config, alert, now, changes);
                alert.incident = Some(n);
                alert.incident_of_services = !book.incidents[&n].services.is_empty();
                // Joining an incident someone already works on: theirs
                // too, so it repeats to nobody.
                if let Some(ack) = book.incidents.get(&n).and_then(|i| i.acked.clone())
                    && book.incidents[&n].opened_ms < now
                    && book.incidents[&n].reopened_ms < ack.at_ms
                {
                    alert.ack = Some(Ack {
                        by: ack.by,
                        note: format!("joined I{n}, acknowledged: {}", ack.note),
                        at_ms: now,
                    });
                }
                n
            }
            _ => match alert.incident {
                Some(n) => n,
                None => return,
            },
        };
        let Some(incident) = book.incidents.get_mut(&number) else {
            return;
        };
        let line = |kind: &str, detail: String| IncidentEvent {
            incident: number,
            at_ms: t.at_ms,
            kind: kind.into(),
            by: String::new(),
            alert_id: alert.id.clone(),
            detail,
        };
        let entry = incident.alerts.iter_mut().find(|a| a.alert_id == alert.id);
        match (t.change, entry) {
            (Change::Fired, _) => {}
            (Change::Escalated | Change::Deescalated, Some(e)) => {
                e.severity = t.level;
                e.worst = e.worst.max(t.level.unwrap_or(e.worst));
                e.summary = alert.summary.clone();
                changes.incident_events.push(line(
                    t.change.as_str(),
                    format!("{} now {}", describe(alert), level_name(t.level)),
                ));
            }
            (Change::Flapping, Some(_)) => {
                changes.incident_events.push(line(
                    "flapping",
                    format!("{} changes state too often", describe(alert)),
                ));
            }
            (Change::Resolved, Some(e)) | (Change::Stable, Some(e)) if t.level.is_none() => {
                e.severity = None;
                e.resolved_ms = Some(t.at_ms);
                changes
                    .incident_events
                    .push(line("alert_resolved", describe(alert)));
            }
            _ => return,
        }
        touched.insert(number);
    }

    /// Puts firing `alert` into the incident of its scope, opening or
    /// reopening one as needed; returns its number.
    pub(super) fn join(
        &self,
        book: &mut Book,
        config: &Alerting,
        alert: &Alert,
        now: i64,
        changes: &mut Changes,
    ) -> u64 {
        let services = self.services();
        let (scope, names) = scope_of(alert, &services);
        let level = alert.state.level.unwrap_or(Level::Warning);
        let number = match book.find(&scope, now, config.incidents.quiet_period_ms) {
            Some(n) => n,
            None => {
                let n = book.next_incident();
                let title = title_for(alert, &names);
                changes.incident_events.push(IncidentEvent::new(
                    n,
                    now,
                    "opened",
                    format!("{title} ({})", level.as_str()),
                ));
                book.incidents.insert(
                    n,
                    Incident {
                        number: n,
                        title,
                        state: IncidentState::Open,
                        severity: level,
                        scope: Vec::new(),
                        services: Vec::new(),
                        alerts: Vec::new(),
                        opened_ms: now,
                        acked: None,
                        resolved_ms: None,
                        resolved_by: String::new(),
                        last_note_ms: now,
                        last_reminder_ms: 0,
                        reopened: 0,
                        reopened_ms: 0,
                        review: Review::default(),
                    },
                );
                n
            }
        };
        let incident = book.incidents.get_mut(&number).expect("just found");
        if incident.state == IncidentState::Resolved {
            incident.state = IncidentState::Open;
            incident.reopened += 1;
            changes.incident_events.push(IncidentEvent::new(
                number,
                now,
                "reopened",
                format!(
                    "{} fired {} after it resolved (quiet period {})",
                    alert.rule,
                    minutes(now - incident.resolved_ms.unwrap_or(now)),
                    minutes(config.incidents.quiet_period_ms)
                ),
            ));
            incident.resolved_ms = None;
            incident.resolved_by.clear();
            incident.reopened_ms = now;
            incident.last_note_ms = now;
            incident.last_reminder_ms = 0;
        }
        for tag in scope {
            if !incident.scope.contains(&tag) {
                incident.scope.push(tag);
            }
        }
        for name in names {
            if !incident.services.contains(&name) {
                incident.services.push(name);
            }
        }
        let entry = IncidentAlert {
            alert_id: alert.id.clone(),
            rule: alert.rule.clone(),
            host: alert.host().to_owned(),
            series: alert.series.clone(),
            summary: alert.summary.clone(),
            severity: Some(level),
            worst: level,
            fired_ms: now,
            resolved_ms: None,
            labels: alert.labels.clone(),
        };
        match incident.alerts.iter_mut().find(|a| a.alert_id == alert.id) {
            Some(existing) => {
                existing.worst = existing.worst.max(entry.worst);
                existing.severity = entry.severity;
                existing.fired_ms = now;
                existing.resolved_ms = None;
                existing.summary = entry.summary;
            }
            None => incident.alerts.push(entry),
        }
        changes.incident_events.push(IncidentEvent {
            incident: number,
            at_ms: now,
            kind: "alert_fired".into(),
            by: String::new(),
            alert_id: alert.id.clone(),
            detail: format!("{} ({})", describe(alert), level.as_str()),
        });
        number
    }

    /// After a step: each touched incident's severity follows its worst
    /// firing alert, and an incident with none firing resolves and tells
    /// its hooks the service is restored. Writes the incidents into
    /// `changes`.
    pub(super) fn settle_incidents(
        &self,
        book: &mut Book,
        config: &Alerting,
        touched: &BTreeSet<u64>,
        now: i64,
        changes: &mut Changes,
    ) {
        for n in touched {
            let Some(incident) = book.incidents.get_mut(n) else {
                continue;
            };
            match incident.current_severity() {
                Some(level) if level != incident.severity => {
                    changes.incident_events.push(IncidentEvent::new(
                        *n,
                        now,
                        "severity",
                        format!("{} → {}", incident.severity.as_str(), level.as_str()),
                    ));
                    incident.severity = level;
                }
                Some(_) => {}
                None if incident.state == IncidentState::Open => {
                    incident.state = IncidentState::Resolved;
                    incident.resolved_ms = Some(now);
                    changes.incident_events.push(IncidentEvent::new(
                        *n,
                        now,
                        "resolved",
                        format!(
                            "all {} alerts resolved after {}",
                            incident.alerts.len(),
                            minutes(incident.duration_ms(now))
                        ),
                    ));
                    let incident = incident.clone();
                    self.incident_notice(config, &incident, NotifyEvent::Restored, now, changes);
                }
                None => {}
            }
            changes.incidents.push(book.incidents[n].clone());
        }
    }

    /// Queues an incident-wide notice (update due, restored) for the hooks
    /// of its alerts' routes that keep stakeholders informed: those with
    /// an update interval (the others hear each alert's own resolve, and
    /// one message more per incident would be noise to them). PagerDuty
    /// hooks are left out: PagerDuty keeps its own incident, resolved with
    /// the alerts. Returns whether any was queued.
    fn incident_notice(
        &self,
        config: &Alerting,
        incident: &Incident,
        event: NotifyEvent,
        now: i64,
        changes: &mut Changes,
    ) -> bool {
        let mut hooks: Vec<String> = Vec::new();
        for a in &incident.alerts {
            let severity = if event == NotifyEvent::Restored {
                None
            } else {
                a.severity
            };
            if event == NotifyEvent::UpdateDue && a.severity.is_none() {
                continue;
            }
            for route in config.router.routes(&a.labels, severity) {
                if route.update_interval.is_zero() {
                    continue;
                }
                for h in &route.hooks {
                    let pagerduty = config
                        .hooks
                        .iter()
                        .any(|k| k.name == *h && matches!(k.kind, HookKind::PagerDuty { .. }));
                    if !pagerduty && !hooks.contains(h) {
                        hooks.push(h.clone());
                    }
                }
            }
        }
        if hooks.is_empty() {
            return false;
        }
        let firing = incident.firing().count();
        let summary = match event {
            NotifyEvent::Restored => format!(
                "Service restored: {} {} — lasted {}, {} alert{}{}",
                incident.id(),
                incident.title,
                minutes(incident.duration_ms(now)),
                incident.alerts.len(),
                if incident.alerts.len() == 1 { "" } else { "s" },
                if incident.resolved_by.is_empty() {
                    String::new()
                } else {
                    format!(", resolved by {}", incident.resolved_by)
                }
            ),
            _ => format!(
                "Update due: {} {} — open {}, {firing} alert{} firing, no update for {}. \
                 Post one: nightjar incident note {} \"...\"",
                incident.id(),
                incident.title,
                minutes(incident.duration_ms(now)),
                if firing == 1 { "" } else { "s" },
                minutes(now - incident.last_note_ms.max(incident.last_reminder_ms)),
                incident.id()
            ),
        };
        let mut labels = BTreeMap::from([("incident".to_owned(), incident.id())]);
        if !incident.services.is_empty() {
            labels.insert("service".into(), incident.services.join(","));
        }
        if let [host] = incident.hosts().as_slice() {
            labels.insert("host".into(), host.clone());
        }
        let notification = Notification {
            id: format!("{}-{}", incident.id(), self.store.next_seq()),
            dedup_key: format!("nightjar-incident-{}", incident.id()),
            event,
            alert_id: String::new(),
            rule: "incident".into(),
            severity: (event != NotifyEvent::Restored).then_some(incident.severity),
            labels,
            value: None,
            summary: summary.clone(),
            runbook: String::new(),
            started_ms: incident.opened_ms,
            at_ms: now,
            acked_by: incident.acked.as_ref().map(|a| a.by.clone()),
            ack_note: incident.acked.as_ref().map(|a| a.note.clone()),
            incident: Some(incident.number),
            grouped_by_incident: true,
        };
        for hook in &hooks {
            changes.outbox.push(OutboxEntry {
                seq: self.store.next_seq(),
                hook: hook.clone(),
                notification: notification.clone(),
                group_wait_ms: 0,
                created_ms: now,
                attempts: 0,
                next_attempt_ms: now,
                last_error: String::new(),
            });
        }
        changes.incident_events.push(IncidentEvent::new(
            incident.number,
            now,
            event.as_str(),
            format!("{summary} (to {})", hooks.join(", ")),
        ));
        true
    }

    /// The sweep's part: reminders for open incidents whose routes want
    /// updates, and incidents whose alerts vanished (their rule was
    /// removed) are settled.
    pub(super) fn sweep_incidents(
        &self,
        engine: &Engine,
        config: &Alerting,
        now: i64,
        changes: &mut Changes,
    ) {
        let mut book = self.book.lock().expect("incidents lock");
        let mut touched = BTreeSet::new();
        let numbers: Vec<u64> = book
            .incidents
            .values()
            .filter(|i| i.state == IncidentState::Open)
            .map(|i| i.number)
            .collect();
        for n in numbers {
            let incident = book.incidents.get_mut(&n).expect("listed");
            for a in incident
                .alerts
                .iter_mut()
                .filter(|a| a.resolved_ms.is_none())
            {
                let alive = engine
                    .get(&a.alert_id)
                    .is_some_and(|e| e.state.level.is_some() || e.state.flapping);
                if !alive {
                    a.severity = None;
                    a.resolved_ms = Some(now);
                    changes.incident_events.push(IncidentEvent {
                        incident: n,
                        at_ms: now,
                        kind: "alert_resolved".into(),
                        by: String::new(),
                        alert_id: a.alert_id.clone(),
                        detail: format!("{}: no longer firing (its rule changed)", a.rule),
                    });
                    touched.insert(n);
                }
            }
            let interval = incident
                .alerts
                .iter()
                .filter(|a| a.resolved_ms.is_none())
                .flat_map(|a| config.router.routes(&a.labels, a.severity))
                .map(|r| r.update_interval)
                .filter(|d| !d.is_zero())
                .min()
                .unwrap_or(Duration::ZERO);
            let last = incident.last_note_ms.max(incident.last_reminder_ms);
            if !interval.is_zero() && now - last >= interval.as_millis() as i64 {
                incident.last_reminder_ms = now;
                let snapshot = incident.clone();
                if self.incident_notice(config, &snapshot, NotifyEvent::UpdateDue, now, changes) {
                    touched.insert(n);
                }
            }
        }
        self.settle_incidents(&mut book, config, &touched, now, changes);
    }

    /// The incidents, newest first: open ones (with `open_only`) or those
    /// opened since `since_ms`, at most `limit`.
    pub fn incidents(&self, open_only: bool, since_ms: i64, limit: usize) -> Vec<Incident> {
        let book = self.book.lock().expect("incidents lock");
        book.incidents
            .values()
            .rev()
            .filter(|i| {
                if open_only {
                    i.state == IncidentState::Open
                } else {
                    i.opened_ms >= since_ms || i.state == IncidentState::Open
                }
            })
            .take(limit)
            .cloned()
            .collect()
    }

    /// Every incident opened in `[from_ms, to_ms)`, oldest first.
    pub fn incidents_between(&self, from_ms: i64, to_ms: i64) -> Vec<Incident> {
        let book = self.book.lock().expect("incidents lock");
        book.incidents
            .values()
            .filter(|i| i.opened_ms >= from_ms && i.opened_ms < to_ms)
            .cloned()
            .collect()
    }

    /// Incident `number` with its timeline, the changes around it and its
    /// follow-ups.
    pub fn incident(&self, number: u64, now: i64) -> Result<IncidentView, String> {
        let (incident, follow_ups) = {
            let book = self.book.lock().expect("incidents lock");
            let incident = book
                .incidents
                .get(&number)
                .cloned()
                .ok_or_else(|| format!("incident: no incident I{number}"))?;
            let follow_ups: Vec<FollowUp> = book
                .follow_ups
                .values()
                .filter(|f| f.incidents.contains(&number))
                .cloned()
                .collect();
            (incident, follow_ups)
        };
        let timeline = self
            .store
            .incident_events(number)
            .map_err(|e| e.to_string())?;
        let lookback = self.config().incidents.changes_lookback_ms;
        let services = with_dependencies(&incident.services, &self.services());
        let hosts = incident.hosts();
        let end = incident.resolved_ms.unwrap_or(now);
        let around = self
            .store
            .change_records(incident.opened_ms - lookback, end + 1)
            .map_err(|e| e.to_string())?;
        let (mut changes_before, changes_during): (Vec<ChangeRecord>, Vec<ChangeRecord>) = around
            .into_iter()
            .filter(|c| c.touches(&services, &hosts))
            .partition(|c| c.at_ms <= incident.opened_ms);
        changes_before.reverse();
        Ok(IncidentView {
            incident,
            timeline,
            changes_before,
            changes_during,
            follow_ups,
        })
    }

    /// Acknowledges incident `number`: every firing alert of it not yet
    /// acknowledged is (no more repeats or escalation of any), in one
    /// write.
    pub fn ack_incident(
        &self,
        number: u64,
        by: &str,
        note: &str,
        now: i64,
    ) -> Result<Incident, String> {
        let mut engine = self.engine.lock().expect("engine lock");
        let config = self.config();
        let silences = self.silences.read().expect("silences lock").clone();
        let book = self.book.lock().expect("incidents lock");
        let mut incident = book
            .incidents
            .get(&number)
            .cloned()
            .ok_or_else(|| format!("incident: no incident I{number}"))?;
        if incident.state != IncidentState::Open {
            return Err(format!("incident I{number} is resolved"));
        }
        let mut changes = Changes::default();
        let mut acked: Vec<Alert> = Vec::new();
        for a in incident.firing() {
            let Some(current) = engine.get_mut(&a.alert_id) else {
                continue;
            };
            if current.state.level.is_none() || current.ack.is_some() {
                continue;
            }
            let mut alert = current.clone();
            self.ack_changes(&config, &silences, &mut alert, by, note, now, &mut changes);
            acked.push(alert);
        }
        let ack = Ack {
            by: by.to_owned(),
            note: note.to_owned(),
            at_ms: now,
        };
        if incident.acked.is_none() {
            incident.acked = Some(ack);
        }
        incident.last_note_ms = now;
        changes.incident_events.push(IncidentEvent {
            incident: number,
            at_ms: now,
            kind: "acknowledged".into(),
            by: by.to_owned(),
            alert_id: String::new(),
            detail: format!("{note} ({} alerts acknowledged)", acked.len()),
        });
        changes.incidents.push(incident.clone());
        drop(book);
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        for alert in &acked {
            if let Some(current) = engine.get_mut(&alert.id) {
                current.ack = alert.ack.clone();
            }
        }
        self.book
            .lock()
            .expect("incidents lock")
            .incidents
            .insert(number, incident.clone());
        self.wake.notify_one();
        for alert in acked {
            let _ = self.watchers.send(super::WatchEvent {
                at_ms: now,
                kind: "acknowledged".into(),
                alert,
            });
        }
        Ok(incident)
    }

    /// An operator's change of incident `number`: `apply` edits a copy
    /// and returns the timeline line; written before it takes effect.
    fn change_incident(
        &self,
        number: u64,
        now: i64,
        apply: impl FnOnce(&mut Incident, &mut Changes) -> Result<IncidentEvent, String>,
    ) -> Result<Incident, String> {
        let mut book = self.book.lock().expect("incidents lock");
        let mut incident = book
            .incidents
            .get(&number)
            .cloned()
            .ok_or_else(|| format!("incident: no incident I{number}"))?;
        let mut changes = Changes::default();
        let line = apply(&mut incident, &mut changes)?;
        changes.incident_events.push(line);
        changes.incidents.push(incident.clone());
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        book.incidents.insert(number, incident.clone());
        self.wake.notify_one();
        Ok(incident)
    }

    /// Adds an operator's note to the timeline (resets the update clock).
    pub fn note_incident(
        &self,
        number: u64,
        by: &str,
        text: &str,
        now: i64,
    ) -> Result<Incident, String> {
        if text.trim().is_empty() {
            return Err("note: empty; say what is happening".into());
        }
        self.change_incident(number, now, |incident, _| {
            incident.last_note_ms = now;
            Ok(IncidentEvent {
                incident: number,
                at_ms: now,
                kind: "note".into(),
                by: by.to_owned(),
                alert_id: String::new(),
                detail: text.to_owned(),
            })
        })
    }

    /// Resolves incident `number` by hand (its hooks hear the service is
    /// restored).
    pub fn resolve_incident(
        &self,
        number: u64,
        by: &str,
        note: &str,
        now: i64,
    ) -> Result<Incident, String> {
        let config = self.config();
        self.change_incident(number, now, |incident, changes| {
            if incident.state == IncidentState::Resolved {
                return Err(format!("incident I{number} is resolved already"));
            }
            incident.state = IncidentState::Resolved;
            incident.resolved_ms = Some(now);
            incident.resolved_by = by.to_owned();
            self.incident_notice(&config, incident, NotifyEvent::Restored, now, changes);
            Ok(IncidentEvent {
                incident: number,
                at_ms: now,
                kind: "resolved".into(),
                by: by.to_owned(),
                alert_id: String::new(),
                detail: format!(
                    "resolved by hand with {} alerts firing{}",
                    incident.firing().count(),
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(": {note}")
                    }
                ),
            })
        })
    }

    /// Sets review fields of incident `number`.
    pub fn set_incident(
        &self,
        number: u64,
        by: &str,
        patch: IncidentPatch,
        now: i64,
    ) -> Result<Incident, String> {
        if let Some(i) = &patch.impact {
            for (name, v) in [("user_share", i.user_share), ("functional", i.functional)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("impact.{name}: {v} is not between 0 and 1"));
                }
            }
        }
        self.change_incident(number, now, |incident, _| {
            let r = &mut incident.review;
            let mut set: Vec<String> = Vec::new();
            let mut text = |name: &str, field: &mut String, value: Option<String>| {
                if let Some(v) = value {
                    set.push(format!("{name}: {v}"));
                    *field = v;
                }
            };
            text("title", &mut incident.title, patch.title);
            text("summary", &mut r.summary, patch.summary);
            text("root cause", &mut r.root_cause, patch.root_cause);
            text("trigger", &mut r.trigger, patch.trigger);
            text("resolution", &mut r.resolution, patch.resolution);
            text("detection", &mut r.detection, patch.detection);
            text("change", &mut r.change_id, patch.change_id);
            text("lessons", &mut r.lessons, patch.lessons);
            if let Some(c) = patch.category {
                set.push(format!("category: {}", c.as_str()));
                r.category = Some(c);
            }
            if let Some(i) = patch.impact {
                set.push(format!(
                    "impact: {}% of users, {}% of their work",
                    i.user_share * 100.0,
                    i.functional * 100.0
                ));
                r.impact = Some(i);
            }
            if set.is_empty() {
                return Err("set: name at least one field to set".into());
            }
            Ok(IncidentEvent {
                incident: number,
                at_ms: now,
                kind: "set".into(),
                by: by.to_owned(),
                alert_id: String::new(),
                detail: set.join("; "),
            })
        })
    }

    /// Every follow-up, by number.
    pub fn follow_ups(&self) -> Vec<FollowUp> {
        let book = self.book.lock().expect("incidents lock");
        book.follow_ups.values().cloned().collect()
    }

    fn check_incidents(book: &Book, numbers: &[u64]) -> Result<(), String> {
        match numbers.iter().find(|n| !book.incidents.contains_key(n)) {
            Some(n) => Err(format!("incident: no incident I{n}")),
            None => Ok(()),
        }
    }

    /// Adds a follow-up action (its incidents must exist).
    pub fn add_follow_up(&self, new: NewFollowUp, now: i64) -> Result<FollowUp, String> {
        if new.title.trim().is_empty() {
            return Err("title: empty; say what is to be done".into());
        }
        if new.owner.trim().is_empty() {
            return Err("owner: empty; every follow-up has an owner".into());
        }
        let mut book = self.book.lock().expect("incidents lock");
        Self::check_incidents(&book, &new.incidents)?;
        let f = FollowUp {
            number: book.next_follow_up(),
            title: new.title,
            owner: new.owner,
            due_ms: new.due_ms,
            kind: new.kind,
            state: FollowUpState::Open,
            incidents: new.incidents,
            note: new.note,
            created_ms: now,
            updated_ms: now,
            closed_ms: 0,
        };
        let changes = Changes {
            follow_ups: vec![f.clone()],
            incident_events: f
                .incidents
                .iter()
                .map(|n| IncidentEvent {
                    incident: *n,
                    at_ms: now,
                    kind: "follow_up".into(),
                    by: f.owner.clone(),
                    alert_id: String::new(),
                    detail: format!("{} ({}): {}", f.id(), f.kind.as_str(), f.title),
                })
                .collect(),
            ..Changes::default()
        };
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        book.follow_ups.insert(f.number, f.clone());
        Ok(f)
    }

    /// Updates follow-up `number`; a state change must be one that exists.
    pub fn update_follow_up(
        &self,
        number: u64,
        patch: FollowUpPatch,
        now: i64,
    ) -> Result<FollowUp, String> {
        let mut book = self.book.lock().expect("incidents lock");
        let mut f = book
            .follow_ups
            .get(&number)
            .cloned()
            .ok_or_else(|| format!("follow-up: no follow-up P{number}"))?;
        Self::check_incidents(&book, &patch.link)?;
        if let Some(to) = patch.state {
            f.state.check_transition(to)?;
            f.state = to;
            f.closed_ms = if to.is_open() { 0 } else { now };
        }
        if let Some(t) = patch.title {
            f.title = t;
        }
        if let Some(o) = patch.owner {
            f.owner = o;
        }
        if let Some(d) = patch.due_ms {
            f.due_ms = d;
        }
        if let Some(k) = patch.kind {
            f.kind = k;
        }
        if let Some(n) = patch.note {
            f.note = n;
        }
        for n in patch.link {
            if !f.incidents.contains(&n) {
                f.incidents.push(n);
            }
        }
        f.updated_ms = now;
        let changes = Changes {
            follow_ups: vec![f.clone()],
            ..Changes::default()
        };
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        book.follow_ups.insert(number, f.clone());
        Ok(f)
    }

    /// Records a change made in production; returns it with its id.
    pub fn record_change(
        &self,
        mut change: ChangeRecord,
        now: i64,
    ) -> Result<ChangeRecord, String> {
        if change.what.trim().is_empty() {
            return Err("what: empty; say what was changed".into());
        }
        if change.by.trim().is_empty() {
            return Err("by: empty; say who changed it".into());
        }
        if change.services.is_empty() && change.hosts.is_empty() {
            return Err("service, host: name the services or hosts the change touched".into());
        }
        let services = self.services();
        if let Some(s) = change
            .services
            .iter()
            .find(|s| !services.iter().any(|k| &k.name == *s))
        {
            return Err(format!("service: no service is named {s:?}"));
        }
        change.id = format!("C{}", self.store.next_seq());
        change.recorded_ms = now;
        if change.at_ms == 0 {
            change.at_ms = now;
        }
        let changes = Changes {
            change_records: vec![change.clone()],
            ..Changes::default()
        };
        self.persist(changes, now, OnFailure::Refuse)
            .map_err(|e| e.to_string())?;
        Ok(change)
    }

    /// The changes made in `[from_ms, to_ms)`, oldest first.
    pub fn change_records(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.store.change_records(from_ms, to_ms)
    }

    /// The acknowledgement of one alert as changes: its state, history,
    /// the hooks' notice, and its incident's timeline line.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ack_changes(
        &self,
        config: &Alerting,
        silences: &[Silence],
        alert: &mut Alert,
        by: &str,
        note: &str,
        now: i64,
        changes: &mut Changes,
    ) {
        alert.ack = Some(Ack {
            by: by.to_owned(),
            note: note.to_owned(),
            at_ms: now,
        });
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
                config,
                silences,
                &snapshot,
                NotifyEvent::Acknowledged,
                started,
                snapshot.state.value,
                now,
                None,
                changes,
            );
        }
        changes.alerts.push(alert.clone());
    }

    /// Records one alert's acknowledgement in its incident (the first ack
    /// of any of its alerts counts as the incident's).
    pub(super) fn ack_in_incident(
        &self,
        book: &Book,
        alert: &Alert,
        by: &str,
        note: &str,
        now: i64,
        changes: &mut Changes,
    ) -> Option<Incident> {
        let mut incident = book.incidents.get(&alert.incident?)?.clone();
        if incident.acked.is_none() {
            incident.acked = alert.ack.clone();
        }
        changes.incident_events.push(IncidentEvent {
            incident: incident.number,
            at_ms: now,
            kind: "acknowledged".into(),
            by: by.to_owned(),
            alert_id: alert.id.clone(),
            detail: format!("{}: {note}", describe(alert)),
        });
        changes.incidents.push(incident.clone());
        Some(incident)
    }

    /// Timeline lines for a new silence: each open incident with a firing
    /// alert it covers.
    pub(super) fn silence_in_incidents(&self, silence: &Silence, now: i64, changes: &mut Changes) {
        let book = self.book.lock().expect("incidents lock");
        for i in book
            .incidents
            .values()
            .filter(|i| i.state == IncidentState::Open)
        {
            let covered = i
                .firing()
                .filter(|a| silence.silences(&a.labels, silence.starts_ms.max(now)))
                .count();
            if covered > 0 {
                changes.incident_events.push(IncidentEvent {
                    incident: i.number,
                    at_ms: now,
                    kind: "silenced".into(),
                    by: silence.author.clone(),
                    alert_id: String::new(),
                    detail: format!(
                        "silence {} ({}) covers {covered} of its alerts: {}",
                        silence.id,
                        silence.matchers.join(","),
                        silence.comment
                    ),
                });
            }
        }
    }
}
