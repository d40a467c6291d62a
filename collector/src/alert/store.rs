//! Durable alerting state in its own RocksDB (`<data_dir>/alerts`): alert
//! states, the notification outbox, history, silences. Values are JSON
//! (small, rare, and readable with `ldb` when something goes wrong); every
//! write is synced, because an outbox entry must survive a crash before its
//! delivery starts.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::engine::Alert;
use super::notify::Notification;
use super::silence::Silence;
use super::state::Level;

const CF_ALERTS: &str = "alerts";
const CF_OUTBOX: &str = "outbox";
const CF_HISTORY: &str = "history";
const CF_SILENCES: &str = "silences";

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
    /// Entries with the same group key may travel in one message.
    pub fn group_key(&self) -> (String, String, String) {
        (
            self.hook.clone(),
            self.notification.rule.clone(),
            self.notification.event.as_str().to_owned(),
        )
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
#[derive(Default)]
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
    }
}

/// The alert database.
pub struct AlertStore {
    db: DB,
    next_seq: AtomicU64,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("alert records serialize")
}

impl AlertStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<AlertStore> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_ALERTS, CF_OUTBOX, CF_HISTORY, CF_SILENCES]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .with_context(|| format!("opening the alert store {}", path.display()))?;
        let store = AlertStore {
            db,
            next_seq: AtomicU64::new(0),
        };
        let last_outbox = store.last_key(CF_OUTBOX, 0)?;
        let last_history = store.last_key(CF_HISTORY, 8)?;
        store
            .next_seq
            .store(last_outbox.max(last_history) + 1, Ordering::Relaxed);
        Ok(store)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// The u64 at `offset` of the last key of a CF (0 if empty).
    fn last_key(&self, cf: &str, offset: usize) -> anyhow::Result<u64> {
        let mut it = self.db.iterator_cf(self.cf(cf), IteratorMode::End);
        match it.next() {
            Some(item) => {
                let (key, _) = item?;
                let bytes: [u8; 8] = key
                    .get(offset..offset + 8)
                    .and_then(|b| b.try_into().ok())
                    .context("alert store key too short")?;
                Ok(u64::from_be_bytes(bytes))
            }
            None => Ok(0),
        }
    }

    /// A new sequence number (outbox order, history tie-breaker).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes `changes` durably.
    pub fn write(&self, changes: &Changes) -> anyhow::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for alert in &changes.alerts {
            batch.put_cf(self.cf(CF_ALERTS), alert.id.as_bytes(), json(alert));
        }
        for id in &changes.deleted_alerts {
            batch.delete_cf(self.cf(CF_ALERTS), id.as_bytes());
        }
        for entry in &changes.outbox {
            batch.put_cf(self.cf(CF_OUTBOX), entry.seq.to_be_bytes(), json(entry));
        }
        for seq in &changes.delivered {
            batch.delete_cf(self.cf(CF_OUTBOX), seq.to_be_bytes());
        }
        for record in &changes.history {
            let mut key = Vec::with_capacity(16);
            key.extend_from_slice(&(record.at_ms.max(0) as u64).to_be_bytes());
            key.extend_from_slice(&self.next_seq().to_be_bytes());
            batch.put_cf(self.cf(CF_HISTORY), key, json(record));
        }
        for silence in &changes.silences {
            batch.put_cf(self.cf(CF_SILENCES), silence.id.as_bytes(), json(silence));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .context("writing the alert store")
    }

    fn all<T: DeserializeOwned>(&self, cf: &str) -> anyhow::Result<Vec<T>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            let (key, value) = item?;
            match serde_json::from_slice(&value) {
                Ok(v) => out.push(v),
                Err(error) => {
                    tracing::warn!(cf, key = ?key, %error, "skipping an unreadable alert-store record")
                }
            }
        }
        Ok(out)
    }

    /// Every stored alert state.
    pub fn alerts(&self) -> anyhow::Result<Vec<Alert>> {
        self.all(CF_ALERTS)
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> anyhow::Result<Vec<OutboxEntry>> {
        self.all(CF_OUTBOX)
    }

    /// Every silence, expired ones included.
    pub fn silences(&self) -> anyhow::Result<Vec<Silence>> {
        self.all(CF_SILENCES)
    }

    /// History from `since_ms` on, oldest first, at most `limit` lines
    /// (the newest ones).
    pub fn history(&self, since_ms: i64, limit: usize) -> anyhow::Result<Vec<HistoryRecord>> {
        let start = (since_ms.max(0) as u64).to_be_bytes();
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_HISTORY),
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (_, value) = item?;
            if let Ok(record) = serde_json::from_slice::<HistoryRecord>(&value) {
                out.push(record);
            }
        }
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }

    /// Deletes history older than `before_ms`.
    pub fn prune_history(&self, before_ms: i64) -> anyhow::Result<()> {
        let end = (before_ms.max(0) as u64).to_be_bytes();
        self.db
            .delete_range_cf(self.cf(CF_HISTORY), [0u8; 8], end)
            .context("pruning alert history")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_continue_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(dir.path()).unwrap();
        let record = HistoryRecord {
            at_ms: 5,
            alert_id: "x".into(),
            rule: "r".into(),
            kind: "fired".into(),
            severity: Some(Level::Warning),
            value: Some(1.0),
            detail: String::new(),
        };
        store
            .write(&Changes {
                history: vec![record.clone(), record.clone()],
                ..Changes::default()
            })
            .unwrap();
        let used = store.next_seq();
        drop(store);
        let store = AlertStore::open(dir.path()).unwrap();
        assert_eq!(
            store.next_seq(),
            used,
            "continues after the last stored seq"
        );
        assert_eq!(store.history(0, 10).unwrap(), vec![record.clone(), record]);
        assert_eq!(store.history(6, 10).unwrap(), vec![]);
        store.prune_history(6).unwrap();
        assert!(store.history(0, 10).unwrap().is_empty());
    }
}
