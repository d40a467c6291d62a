//! The alerting system's persistence port: what it stores (alert states,
//! the notification outbox, history, silences), the [`AlertStore`] trait
//! it writes through, and [`MemoryAlertStore`], the in-memory
//! implementation unit tests use. The durable implementation is
//! `nightjar_storage::rocks::RocksAlertStore` (layout:
//! `docs/format/alerts.md`).
//!
//! Invariant: [`AlertStore::write`] applies all of a [`Changes`] or none of
//! it, and is durable (synced) when it returns `Ok`: an outbox entry is
//! written in the same write as the transition that caused it, before any
//! delivery is attempted.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::engine::Alert;
use crate::incident::{ChangeRecord, FollowUp, Incident, IncidentEvent};
use crate::notify::Notification;
use crate::silence::Silence;
use crate::state::Level;

/// A notification waiting for one hook to accept it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Key: queue order.
    pub seq: u64,
    /// The hook's name.
    pub hook: String,
    /// What to send.
    pub notification: Notification,
    /// Entries of one group (hook, rule, event) queued within this wait are
    /// sent as one message.
    pub group_wait_ms: i64,
    /// When it was queued.
    pub created_ms: i64,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// Not before this time (ms).
    pub next_attempt_ms: i64,
    /// The last delivery error.
    pub last_error: String,
}

impl OutboxEntry {
    /// Entries with the same group key may travel in one message: those
    /// of one incident of services, else of one rule (with the same hook
    /// and event).
    pub fn group_key(&self) -> (String, String, String) {
        let n = &self.notification;
        let group = match n.incident {
            Some(i) if n.grouped_by_incident => format!("incident I{i}"),
            _ => n.rule.clone(),
        };
        (self.hook.clone(), group, n.event.as_str().to_owned())
    }
}

/// One line of alert history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// When (ms).
    pub at_ms: i64,
    /// The alert (or silence) it concerns.
    pub alert_id: String,
    /// The rule, if any.
    pub rule: String,
    /// What happened: a transition (`fired`, `resolved`, ...), `notified`,
    /// `delivery_failed`, `dropped`, `suppressed`, `acknowledged`,
    /// `silence_added`, `silence_expired`.
    pub kind: String,
    /// Severity after it.
    pub severity: Option<Level>,
    /// The value involved.
    pub value: Option<f64>,
    /// Free text: hook, error, who acked, ...
    pub detail: String,
}

/// Everything one step writes, in one synced write batch.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Alert states to store.
    pub alerts: Vec<Alert>,
    /// Alert ids to delete.
    pub deleted_alerts: Vec<String>,
    /// New or updated outbox entries.
    pub outbox: Vec<OutboxEntry>,
    /// Delivered outbox entries.
    pub delivered: Vec<u64>,
    /// History lines.
    pub history: Vec<HistoryRecord>,
    /// Silences to store.
    pub silences: Vec<Silence>,
    /// Incidents to store (whole records, by number).
    pub incidents: Vec<Incident>,
    /// Lines of incidents' timelines.
    pub incident_events: Vec<IncidentEvent>,
    /// Follow-ups to store (whole records, by number).
    pub follow_ups: Vec<FollowUp>,
    /// Changes made in production, recorded.
    pub change_records: Vec<ChangeRecord>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.deleted_alerts.is_empty()
            && self.outbox.is_empty()
            && self.delivered.is_empty()
            && self.history.is_empty()
            && self.silences.is_empty()
            && self.incidents.is_empty()
            && self.incident_events.is_empty()
            && self.follow_ups.is_empty()
            && self.change_records.is_empty()
    }

    /// Folds `later` in after `self`, so that writing the result leaves
    /// the store as writing `self` and then `later` would: a later upsert
    /// wins over an earlier delete and the reverse, a later outbox entry
    /// replaces an earlier one with its seq, history is appended. Used to
    /// keep changes whose write failed ahead of newer ones.
    pub fn then(&mut self, later: Changes) {
        for alert in later.alerts {
            self.deleted_alerts.retain(|id| *id != alert.id);
            self.alerts.retain(|a| a.id != alert.id);
            self.alerts.push(alert);
        }
        for id in later.deleted_alerts {
            self.alerts.retain(|a| a.id != id);
            if !self.deleted_alerts.contains(&id) {
                self.deleted_alerts.push(id);
            }
        }
        for entry in later.outbox {
            self.outbox.retain(|e| e.seq != entry.seq);
            self.outbox.push(entry);
        }
        for seq in later.delivered {
            self.outbox.retain(|e| e.seq != seq);
            self.delivered.push(seq);
        }
        self.history.extend(later.history);
        for silence in later.silences {
            self.silences.retain(|s| s.id != silence.id);
            self.silences.push(silence);
        }
        for incident in later.incidents {
            self.incidents.retain(|i| i.number != incident.number);
            self.incidents.push(incident);
        }
        self.incident_events.extend(later.incident_events);
        for f in later.follow_ups {
            self.follow_ups.retain(|o| o.number != f.number);
            self.follow_ups.push(f);
        }
        for c in later.change_records {
            self.change_records.retain(|o| o.id != c.id);
            self.change_records.push(c);
        }
    }
}

/// A failure of the alert store (I/O, corruption); the message names the
/// store and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("alert store {path}: {operation}: {reason}")]
pub struct StoreError {
    /// Where the store lives.
    pub path: String,
    /// What was being done.
    pub operation: &'static str,
    /// The engine's message.
    pub reason: String,
}

/// Durable storage of the alerting system's state.
pub trait AlertStore: Send + Sync + 'static {
    /// Writes all of `changes` or none, durably: when this returns `Ok`
    /// the write survives a crash. History lines are keyed by their time
    /// and a fresh [`AlertStore::next_seq`].
    fn write(&self, changes: &Changes) -> Result<(), StoreError>;

    /// Every stored alert state.
    fn alerts(&self) -> Result<Vec<Alert>, StoreError>;

    /// The outbox, oldest (lowest seq) first. Read once at start; the
    /// alerter keeps its own copy after that.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Every silence, expired ones included.
    fn silences(&self) -> Result<Vec<Silence>, StoreError>;

    /// History from `since_ms` on (of `alert_id` only, if given), oldest
    /// first, at most `limit` lines: the newest ones. Reads newest first
    /// and stops at `limit`, so a long history costs only what is asked.
    fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError>;

    /// Deletes history older than `before_ms`.
    fn prune_history(&self, before_ms: i64) -> Result<(), StoreError>;

    /// A new sequence number (outbox order, silence ids, history
    /// tie-breaker), above every one stored.
    fn next_seq(&self) -> u64;

    /// Every incident, oldest first. Read once at start.
    fn incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// The timeline of incident `number`, oldest first.
    fn incident_events(&self, number: u64) -> Result<Vec<IncidentEvent>, StoreError>;

    /// Every follow-up. Read once at start.
    fn follow_ups(&self) -> Result<Vec<FollowUp>, StoreError>;

    /// The changes made in `[from_ms, to_ms)`, oldest first.
    fn change_records(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ChangeRecord>, StoreError>;
}

/// An [`AlertStore`] in memory: the same semantics as the durable one
/// (atomic writes, ordered history, sequence numbers above everything
/// stored), without durability. For tests of the alerter, its API and
/// its dispatcher; [`MemoryAlertStore::fail_writes`] makes writes fail.
#[derive(Debug)]
pub struct MemoryAlertStore {
    tables: Mutex<Tables>,
    next_seq: AtomicU64,
    fail_writes: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Tables {
    alerts: BTreeMap<String, Alert>,
    outbox: BTreeMap<u64, OutboxEntry>,
    history: BTreeMap<(i64, u64), HistoryRecord>,
    silences: BTreeMap<String, Silence>,
    incidents: BTreeMap<u64, Incident>,
    incident_events: BTreeMap<(u64, u64), IncidentEvent>,
    follow_ups: BTreeMap<u64, FollowUp>,
    change_records: BTreeMap<(i64, String), ChangeRecord>,
}

impl Default for MemoryAlertStore {
    fn default() -> Self {
        MemoryAlertStore::new()
    }
}

impl MemoryAlertStore {
    /// An empty store; sequence numbers start at 1, as in a new RocksDB one.
    pub fn new() -> MemoryAlertStore {
        MemoryAlertStore {
            tables: Mutex::default(),
            next_seq: AtomicU64::new(1),
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// From now on every write fails (or succeeds again with `false`).
    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }
}

impl AlertStore for MemoryAlertStore {
    fn write(&self, changes: &Changes) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(StoreError {
                path: "memory".into(),
                operation: "writing",
                reason: "writes fail (MemoryAlertStore::fail_writes)".into(),
            });
        }
        let mut t = self.tables.lock().expect("memory alert store lock");
        for alert in &changes.alerts {
            t.alerts.insert(alert.id.clone(), alert.clone());
        }
        for id in &changes.deleted_alerts {
            t.alerts.remove(id);
        }
        for entry in &changes.outbox {
            t.outbox.insert(entry.seq, entry.clone());
        }
        for seq in &changes.delivered {
            t.outbox.remove(seq);
        }
        for record in &changes.history {
            let key = (record.at_ms.max(0), self.next_seq());
            t.history.insert(key, record.clone());
        }
        for silence in &changes.silences {
            t.silences.insert(silence.id.clone(), silence.clone());
        }
        for incident in &changes.incidents {
            t.incidents.insert(incident.number, incident.clone());
        }
        for event in &changes.incident_events {
            t.incident_events
                .insert((event.incident, self.next_seq()), event.clone());
        }
        for f in &changes.follow_ups {
            t.follow_ups.insert(f.number, f.clone());
        }
        for c in &changes.change_records {
            t.change_records.insert((c.at_ms, c.id.clone()), c.clone());
        }
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.alerts.values().cloned().collect())
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.outbox.values().cloned().collect())
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.silences.values().cloned().collect())
    }

    fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        let mut out: Vec<HistoryRecord> = t
            .history
            .range((since_ms.max(0), 0)..)
            .rev()
            .map(|(_, r)| r)
            .filter(|r| alert_id.is_none_or(|id| r.alert_id == id))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        Ok(out)
    }

    fn prune_history(&self, before_ms: i64) -> Result<(), StoreError> {
        let mut t = self.tables.lock().expect("memory alert store lock");
        t.history = t.history.split_off(&(before_ms.max(0), 0));
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.incidents.values().cloned().collect())
    }

    fn incident_events(&self, number: u64) -> Result<Vec<IncidentEvent>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.incident_events
            .range((number, 0)..=(number, u64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn follow_ups(&self) -> Result<Vec<FollowUp>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.follow_ups.values().cloned().collect())
    }

    fn change_records(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ChangeRecord>, StoreError> {
        let t = self.tables.lock().expect("memory alert store lock");
        Ok(t.change_records
            .values()
            .filter(|c| c.at_ms >= from_ms && c.at_ms < to_ms)
            .cloned()
            .collect())
    }
}
