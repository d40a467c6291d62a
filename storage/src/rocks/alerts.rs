//! [`AlertStore`] on RocksDB: the alerting system's state in a database of
//! its own (`<data_dir>/alerts`, separate from the series so that its small
//! synced writes never queue behind ingest's): alert states, the
//! notification outbox, history, silences. Values are JSON (small, rare,
//! and readable with `ldb` when something goes wrong); every write is
//! synced, because an outbox entry must survive a crash before its
//! delivery starts. Layout: `docs/format/alerts.md`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use nightjar_alerting::engine::Alert;
use nightjar_alerting::incident::{ChangeRecord, FollowUp, Incident, IncidentEvent};
use nightjar_alerting::silence::Silence;
use nightjar_alerting::store::{AlertStore, Changes, HistoryRecord, OutboxEntry, StoreError};

use super::keys::{history_key, read_u64};

const CF_ALERTS: &str = "alerts";
const CF_OUTBOX: &str = "outbox";
const CF_HISTORY: &str = "history";
const CF_SILENCES: &str = "silences";
/// Service timelines, judging spans and adjustments (`timeline.rs`).
pub(super) const CF_TIMELINE: &str = "timeline";
/// Incidents by number (u64 BE).
const CF_INCIDENTS: &str = "incidents";
/// Incident timelines: number (u64 BE) ++ seq (u64 BE).
const CF_INCIDENT_EVENTS: &str = "incident_events";
/// Follow-ups by number (u64 BE).
const CF_FOLLOW_UPS: &str = "follow_ups";
/// Changes made in production: time ++ seq, as history keys.
const CF_CHANGES: &str = "changes";
/// The highest sequence number handed out by a write (default CF): some
/// keys (incident timelines, changes) do not end in the highest one.
const SEQ_KEY: &[u8] = b"nightjar-seq";

/// The alert database.
pub struct RocksAlertStore {
    pub(super) db: DB,
    path: String,
    next_seq: AtomicU64,
    /// Whether the last write failed.
    pub(super) write_failed: std::sync::atomic::AtomicBool,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("alert records serialize")
}

impl RocksAlertStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<RocksAlertStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [
            CF_ALERTS,
            CF_OUTBOX,
            CF_HISTORY,
            CF_SILENCES,
            CF_TIMELINE,
            CF_INCIDENTS,
            CF_INCIDENT_EVENTS,
            CF_FOLLOW_UPS,
            CF_CHANGES,
        ]
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let display = path.display().to_string();
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError {
            path: display.clone(),
            operation: "opening",
            reason: e.to_string(),
        })?;
        let store = RocksAlertStore {
            db,
            path: display,
            next_seq: AtomicU64::new(0),
            write_failed: std::sync::atomic::AtomicBool::new(false),
        };
        let last_outbox = store.last_key(CF_OUTBOX, 0)?;
        let last_history = store.last_key(CF_HISTORY, 8)?;
        let written = store
            .db
            .get(SEQ_KEY)
            .map_err(|e| store.error("reading the sequence number", e))?
            .and_then(|v| read_u64(&v))
            .unwrap_or(0);
        // `written` is the next unused number at the last write.
        store.next_seq.store(
            (last_outbox.max(last_history) + 1).max(written),
            Ordering::Relaxed,
        );
        Ok(store)
    }

    /// Whether the last write failed.
    pub fn writes_failing(&self) -> bool {
        self.write_failed.load(Ordering::Relaxed)
    }

    /// A synced write of a probe key (default column family): whether the
    /// database takes writes now.
    pub fn probe(&self) -> Result<(), String> {
        probe(&self.db)
    }

    /// Makes every later sequence number larger than `seq` (after a
    /// reopen, above those handed out before it but not yet stored).
    pub fn advance_seq_past(&self, seq: u64) {
        self.next_seq.fetch_max(seq + 1, Ordering::Relaxed);
    }

    pub(super) fn error(&self, operation: &'static str, reason: impl ToString) -> StoreError {
        StoreError {
            path: self.path.clone(),
            operation,
            reason: reason.to_string(),
        }
    }

    pub(super) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// The u64 at `offset` of the last key of a CF (0 if empty).
    fn last_key(&self, cf: &str, offset: usize) -> Result<u64, StoreError> {
        let mut it = self.db.iterator_cf(self.cf(cf), IteratorMode::End);
        match it.next() {
            Some(item) => {
                let (key, _) = item.map_err(|e| self.error("reading the last key", e))?;
                key.get(offset..).and_then(read_u64).ok_or_else(|| {
                    self.error("reading the last key", format!("{cf}: key too short"))
                })
            }
            None => Ok(0),
        }
    }

    fn all<T: DeserializeOwned>(&self, cf: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.error("reading", e))?;
            match serde_json::from_slice(&value) {
                Ok(v) => out.push(v),
                Err(error) => {
                    tracing::warn!(cf, key = ?key, %error, "skipping an unreadable alert-store record")
                }
            }
        }
        Ok(out)
    }
}

/// A synced write of a probe key in `db`'s default column family.
pub(super) fn probe(db: &DB) -> Result<(), String> {
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.put_opt(b"nightjar-probe", now_bytes(), &opts)
        .map_err(|e| e.to_string())
}

fn now_bytes() -> [u8; 8] {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.to_be_bytes()
}

impl AlertStore for RocksAlertStore {
    fn write(&self, changes: &Changes) -> Result<(), StoreError> {
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
            let key = history_key(record.at_ms, self.next_seq());
            batch.put_cf(self.cf(CF_HISTORY), key, json(record));
        }
        for silence in &changes.silences {
            batch.put_cf(self.cf(CF_SILENCES), silence.id.as_bytes(), json(silence));
        }
        for incident in &changes.incidents {
            batch.put_cf(
                self.cf(CF_INCIDENTS),
                incident.number.to_be_bytes(),
                json(incident),
            );
        }
        for event in &changes.incident_events {
            let mut key = event.incident.to_be_bytes().to_vec();
            key.extend_from_slice(&self.next_seq().to_be_bytes());
            batch.put_cf(self.cf(CF_INCIDENT_EVENTS), key, json(event));
        }
        for f in &changes.follow_ups {
            batch.put_cf(self.cf(CF_FOLLOW_UPS), f.number.to_be_bytes(), json(f));
        }
        for c in &changes.change_records {
            let seq =
                c.id.strip_prefix('C')
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| self.next_seq());
            batch.put_cf(self.cf(CF_CHANGES), history_key(c.at_ms, seq), json(c));
        }
        // Above every seq used so far, so none is handed out twice after a
        // restart.
        let high = self.next_seq.load(Ordering::Relaxed);
        batch.put(SEQ_KEY, high.to_be_bytes());
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let written = self.db.write_opt(batch, &opts);
        self.write_failed.store(written.is_err(), Ordering::Relaxed);
        written.map_err(|e| self.error("writing", e))
    }

    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.all(CF_ALERTS)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.all(CF_OUTBOX)
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.all(CF_SILENCES)
    }

    fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        let start = history_key(since_ms, 0);
        let mut out = Vec::new();
        // Newest first, so that only `limit` lines are ever held.
        for item in self.db.iterator_cf(self.cf(CF_HISTORY), IteratorMode::End) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(|e| self.error("reading history", e))?;
            if *key < start[..] {
                break;
            }
            if let Ok(record) = serde_json::from_slice::<HistoryRecord>(&value)
                && alert_id.is_none_or(|id| record.alert_id == id)
            {
                out.push(record);
            }
        }
        out.reverse();
        Ok(out)
    }

    fn prune_history(&self, before_ms: i64) -> Result<(), StoreError> {
        let end = history_key(before_ms, 0);
        self.db
            .delete_range_cf(self.cf(CF_HISTORY), history_key(0, 0), end)
            .map_err(|e| self.error("pruning history", e))
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.all(CF_INCIDENTS)
    }

    fn incident_events(&self, number: u64) -> Result<Vec<IncidentEvent>, StoreError> {
        let prefix = number.to_be_bytes();
        let mut out = Vec::new();
        let mode = IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_INCIDENT_EVENTS), mode) {
            let (key, value) = item.map_err(|e| self.error("reading an incident timeline", e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            match serde_json::from_slice(&value) {
                Ok(e) => out.push(e),
                Err(error) => {
                    tracing::warn!(incident = number, %error, "skipping an unreadable incident timeline line")
                }
            }
        }
        Ok(out)
    }

    fn follow_ups(&self) -> Result<Vec<FollowUp>, StoreError> {
        self.all(CF_FOLLOW_UPS)
    }

    fn change_records(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ChangeRecord>, StoreError> {
        let start = history_key(from_ms, 0);
        let end = history_key(to_ms, 0);
        let mut out = Vec::new();
        let mode = IteratorMode::From(&start, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_CHANGES), mode) {
            let (key, value) = item.map_err(|e| self.error("reading changes", e))?;
            if *key >= end[..] {
                break;
            }
            if let Ok(c) = serde_json::from_slice(&value) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use nightjar_alerting::state::Level;

    use super::*;

    #[test]
    fn sequence_numbers_continue_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksAlertStore::open(dir.path()).unwrap();
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
        let store = RocksAlertStore::open(dir.path()).unwrap();
        assert_eq!(
            store.next_seq(),
            used,
            "continues after the last stored seq"
        );
        assert_eq!(
            store.history(0, 10, None).unwrap(),
            vec![record.clone(), record]
        );
        assert_eq!(store.history(6, 10, None).unwrap(), vec![]);
        store.prune_history(6).unwrap();
        assert!(store.history(0, 10, None).unwrap().is_empty());
    }

    #[test]
    fn history_reads_the_newest_lines_of_one_alert_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksAlertStore::open(dir.path()).unwrap();
        let line = |at_ms: i64, alert_id: &str| HistoryRecord {
            at_ms,
            alert_id: alert_id.into(),
            rule: "r".into(),
            kind: "fired".into(),
            severity: None,
            value: None,
            detail: String::new(),
        };
        let history: Vec<HistoryRecord> = (1..=100)
            .map(|t| line(t * 10, if t % 2 == 0 { "even" } else { "odd" }))
            .collect();
        store
            .write(&Changes {
                history,
                ..Changes::default()
            })
            .unwrap();
        let times = |got: Vec<HistoryRecord>| got.iter().map(|h| h.at_ms).collect::<Vec<_>>();
        assert_eq!(
            times(store.history(0, 3, None).unwrap()),
            vec![980, 990, 1000]
        );
        assert_eq!(
            times(store.history(0, 3, Some("odd")).unwrap()),
            vec![950, 970, 990],
            "filtered before the limit, oldest first"
        );
        assert_eq!(
            times(store.history(975, 10, Some("odd")).unwrap()),
            vec![990]
        );
        assert_eq!(
            store.history(i64::MIN, usize::MAX, None).unwrap().len(),
            100
        );
    }

    #[test]
    fn incidents_timelines_follow_ups_and_changes_survive_a_reopen() {
        use nightjar_alerting::incident::*;
        let dir = tempfile::tempdir().unwrap();
        let store = RocksAlertStore::open(dir.path()).unwrap();
        let incident = Incident {
            number: 3,
            title: "shop: disk".into(),
            state: IncidentState::Open,
            severity: Level::Critical,
            scope: vec!["service:shop".into()],
            services: vec!["shop".into()],
            alerts: Vec::new(),
            opened_ms: 1_000,
            acked: None,
            resolved_ms: None,
            resolved_by: String::new(),
            last_note_ms: 1_000,
            last_reminder_ms: 0,
            reopened: 0,
            reopened_ms: 0,
            review: Review::default(),
        };
        let line = |n: u64, kind: &str| IncidentEvent::new(n, 1_000, kind, String::new());
        let change = |id: &str, at_ms: i64| ChangeRecord {
            id: id.into(),
            what: "deploy".into(),
            by: "ci".into(),
            services: vec!["shop".into()],
            hosts: Vec::new(),
            at_ms,
            risk: Risk::Medium,
            backout: String::new(),
            recorded_ms: at_ms,
        };
        let seq = store.next_seq();
        store
            .write(&Changes {
                incidents: vec![incident.clone()],
                incident_events: vec![line(3, "opened"), line(4, "x"), line(3, "note")],
                change_records: vec![change(&format!("C{seq}"), 500), change("C77", 5_000)],
                ..Changes::default()
            })
            .unwrap();
        drop(store);
        let store = RocksAlertStore::open(dir.path()).unwrap();
        assert!(store.next_seq() > seq, "seqs continue above those used");
        assert_eq!(store.incidents().unwrap(), vec![incident]);
        let kinds: Vec<String> = store
            .incident_events(3)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec!["opened", "note"], "its own lines, in order");
        let ids: Vec<String> = store
            .change_records(0, 1_000)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec![format!("C{seq}")]);
    }
}
