//! The dispatcher: delivers the outbox oldest first, grouped, each group
//! retried with exponential backoff until its hook accepts or refuses for
//! good. It works from the alerter's in-memory outbox and writes each
//! outcome durably before the entry leaves it.

use std::sync::Arc;
use std::time::Duration;

use super::{Alerter, now_ms};
use crate::config::Hook;
use crate::hooks::{Outcome, deliver};
use crate::incident::IncidentEvent;
use crate::notify::Notification;
use crate::store::{Changes, HistoryRecord, OutboxEntry};

/// First retry delay of a failed delivery; doubles up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between delivery attempts.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Most notifications in one message.
const MAX_GROUP: usize = 100;

impl Alerter {
    /// Delivers the outbox until the process ends: oldest first, grouped,
    /// each group retried with exponential backoff until its hook accepts.
    pub async fn run_dispatcher(self: Arc<Self>) {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A redirect would carry the signed body elsewhere (`hooks.rs`
            // refuses a 3xx instead).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds");
        loop {
            let now = now_ms();
            let mut next_wake = now + 60_000;
            let messages = self
                .outbox
                .lock()
                .expect("outbox lock")
                .take_due(now, &mut next_wake);
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
                    let me = self.clone();
                    let client = client.clone();
                    tokio::spawn(async move {
                        let outcome = send(&client, &hook, &message).await;
                        let recorded = tokio::task::spawn_blocking({
                            let me = me.clone();
                            move || me.finish(message, outcome, now_ms())
                        })
                        .await;
                        if let Err(error) = recorded {
                            tracing::error!(%error, "recording a delivery failed");
                        }
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
        let seqs: Vec<u64> = message.iter().map(|e| e.seq).collect();
        let mut changes = Changes::default();
        let hook = message[0].hook.clone();
        let mut per_incident: std::collections::BTreeMap<(u64, String), usize> =
            std::collections::BTreeMap::new();
        for mut entry in message {
            let n = &entry.notification;
            let attempts = entry.attempts + 1;
            let mut record = |kind: &str, detail: String| {
                if let Some(incident) = n.incident {
                    // One line per incident and outcome, however many of
                    // its alerts travelled in this message.
                    let count = per_incident.entry((incident, kind.to_owned())).or_insert(0);
                    *count += 1;
                    if *count == 1 {
                        changes.incident_events.push(IncidentEvent {
                            incident,
                            at_ms: now,
                            kind: kind.into(),
                            by: String::new(),
                            alert_id: String::new(),
                            detail: format!("{detail}, attempt {attempts}"),
                        });
                    }
                }
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
        for e in &mut changes.incident_events {
            let n = per_incident[&(e.incident, e.kind.clone())];
            if n > 1 {
                e.detail = format!("{} notifications: {}", n, e.detail);
            }
        }
        let mut outbox = self.outbox.lock().expect("outbox lock");
        // An entry the full policy dropped while it was being delivered
        // stays dropped: its retry is not written back.
        changes.outbox.retain(|e| outbox.contains(e.seq));
        // Changes kept from a failed write go first.
        let mut unwritten = self.unwritten.lock().expect("unwritten lock");
        let mut all = std::mem::take(&mut *unwritten);
        all.then(changes.clone());
        if let Err(error) = self.store.write(&all) {
            // The delivery happened (or its retry is scheduled): memory
            // takes it now, or the entry would be sent again and again
            // while the store fails. The record waits with the other kept
            // changes; a crash before it is written redelivers, under the
            // same notification id.
            self.counters.store_failures.fetch_add(1, Relaxed);
            tracing::error!(%error, "cannot record a delivery; kept in memory until the store takes writes");
            *unwritten = all;
        }
        outbox.apply(&changes);
        drop(unwritten);
        outbox.finished(seqs);
    }
}

async fn send(client: &reqwest::Client, hook: &Hook, message: &[OutboxEntry]) -> Outcome {
    let group: Vec<&Notification> = message.iter().map(|e| &e.notification).collect();
    deliver(client, hook, &group, now_ms()).await
}
