//! Coming back from a database RocksDB will no longer write to.
//!
//! After a failed WAL write (a full disk: ENOSPC; a failing one: EIO)
//! RocksDB keeps a background error and refuses every later write until
//! `DB::Resume`, which its C API, and so the `rocksdb` crate, does not
//! offer; its own recovery does not cover a failed WAL write. Freeing
//! space is then not enough: the process had to be restarted.
//!
//! So the collector holds its two databases in these wrappers. While
//! writes fail, [`ReopeningStorage::recover`] (called every few seconds)
//! first probes with a synced write; if the probe fails too, it closes the
//! database and opens it again, which replays the WAL and the ingest log
//! (everything acked is in them). Calls wait while it does; if the open
//! fails (the disk is still full) the database stays closed, every call
//! fails with the reason, and the next `recover` tries again.
//!
//! Invariant kept: nothing is acked that was not synced, because a closed
//! or failing database only ever returns errors to `append`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

use nightjar_alerting::engine::Alert;
use nightjar_alerting::incident::{ChangeRecord, FollowUp, Incident, IncidentEvent};
use nightjar_alerting::silence::Silence;
use nightjar_alerting::store::{AlertStore, Changes, HistoryRecord, OutboxEntry, StoreError};
use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::model::{Batch, Point, SeriesKey, SharedKey};
use nightjar_model::selector::Selector;

use super::{RocksAlertStore, RocksStorage};
use crate::{
    AppendOutcome, HostSummary, SeriesHistograms, SeriesSummaries, Storage, StorageError,
    StorageStats, Tier,
};

/// What [`Reopener::recover`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Writes work; nothing done.
    Healthy,
    /// Writes had failed, a probe write succeeded: nothing else needed.
    Probed,
    /// The database was closed and opened again.
    Reopened,
    /// Still failing; the reason.
    Failing(String),
}

/// A database that can tell whether its writes fail and probe for it.
pub trait Probe {
    /// Whether the last write failed.
    fn writes_failing(&self) -> bool;
    /// A synced write: whether writes work now.
    fn probe(&self) -> Result<(), String>;
}

impl Probe for RocksStorage {
    fn writes_failing(&self) -> bool {
        RocksStorage::writes_failing(self)
    }
    fn probe(&self) -> Result<(), String> {
        RocksStorage::probe(self)
    }
}

impl Probe for RocksAlertStore {
    fn writes_failing(&self) -> bool {
        RocksAlertStore::writes_failing(self)
    }
    fn probe(&self) -> Result<(), String> {
        RocksAlertStore::probe(self)
    }
}

type Open<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A database behind a lock, closed and opened again by [`recover`].
///
/// [`recover`]: Reopener::recover
pub struct Reopener<T> {
    inner: RwLock<Option<T>>,
    open: Open<T>,
    /// Names the database in errors and logs (its directory).
    name: String,
    log: RateLimitedLog<60>,
}

impl<T: Probe> Reopener<T> {
    fn new(db: T, name: String, open: Open<T>) -> Reopener<T> {
        Reopener {
            inner: RwLock::new(Some(db)),
            open,
            name,
            log: RateLimitedLog::new(),
        }
    }

    /// The open database, or why there is none.
    fn get(&self) -> Result<RwLockReadGuard<'_, Option<T>>, String> {
        let guard = self.inner.read().expect("reopen lock");
        if guard.is_none() {
            return Err(format!(
                "{}: closed after failing writes; reopening when writes work again",
                self.name
            ));
        }
        Ok(guard)
    }

    /// Probes, and reopens if the probe fails; see the module docs.
    pub fn recover(&self) -> Recovery {
        {
            let guard = self.inner.read().expect("reopen lock");
            if let Some(db) = guard.as_ref() {
                if !db.writes_failing() {
                    return Recovery::Healthy;
                }
                if db.probe().is_ok() {
                    return Recovery::Probed;
                }
            }
        }
        let mut guard = self.inner.write().expect("reopen lock");
        // Closed first: RocksDB's lock file allows one opener.
        *guard = None;
        match (self.open)() {
            Ok(db) => {
                *guard = Some(db);
                tracing::info!(path = %self.name, "reopened the database; writes work again");
                Recovery::Reopened
            }
            Err(reason) => {
                if let Some(lines_held_back) = self.log.due() {
                    tracing::error!(path = %self.name, %reason, lines_held_back, "cannot reopen the database; retrying");
                }
                Recovery::Failing(reason)
            }
        }
    }
}

/// [`RocksStorage`] that reopens itself after failing writes.
pub struct ReopeningStorage {
    db: Reopener<RocksStorage>,
}

impl ReopeningStorage {
    /// Wraps `storage`; `open` opens it again (same directory and options).
    pub fn new(
        storage: RocksStorage,
        open: impl Fn() -> Result<RocksStorage, StorageError> + Send + Sync + 'static,
    ) -> ReopeningStorage {
        let name = storage.path().display().to_string();
        ReopeningStorage {
            db: Reopener::new(
                storage,
                name,
                Box::new(move || open().map_err(|e| e.to_string())),
            ),
        }
    }

    /// See [`Reopener::recover`].
    pub fn recover(&self) -> Recovery {
        self.db.recover()
    }

    /// [`RocksStorage::flush_heads`].
    pub fn flush_heads(&self, max_open: std::time::Duration) -> Result<(), StorageError> {
        self.with(|s| s.flush_heads(max_open))?
    }

    fn with<R>(&self, f: impl FnOnce(&RocksStorage) -> R) -> Result<R, StorageError> {
        let guard = self.db.get().map_err(|reason| StorageError::Io {
            path: self.db.name.clone(),
            operation: "use the database",
            reason,
        })?;
        Ok(f(guard.as_ref().expect("checked by get")))
    }

    /// `f` on the open database, or `fallback` while it is closed.
    fn or<R>(&self, fallback: R, f: impl FnOnce(&RocksStorage) -> R) -> R {
        self.with(f).unwrap_or(fallback)
    }
}

impl crate::ForwardQueue for ReopeningStorage {
    fn forward_read(
        &self,
        from: u64,
        until: Option<u64>,
        max_samples: usize,
        shard: Option<(u64, u64)>,
    ) -> Result<Vec<crate::ForwardBatch>, StorageError> {
        self.with(|s| s.forward_read(from, until, max_samples, shard))?
    }

    fn forward_series(&self, ids: &[u64]) -> Vec<Option<nightjar_model::model::SharedKey>> {
        self.or(vec![None; ids.len()], |s| s.forward_series(ids))
    }

    fn forward_cursor(&self, name: &str) -> Result<Option<(u64, u64)>, StorageError> {
        self.with(|s| s.forward_cursor(name))?
    }

    fn set_forward_cursor(
        &self,
        name: &str,
        start: u64,
        end: u64,
        sync: bool,
    ) -> Result<(), StorageError> {
        self.with(|s| s.set_forward_cursor(name, start, end, sync))?
    }

    fn forward_trim(&self, below: u64) -> Result<(), StorageError> {
        self.with(|s| s.forward_trim(below))?
    }

    fn forward_size(&self) -> crate::ForwardSize {
        self.or(crate::ForwardSize::default(), |s| s.forward_size())
    }

    fn forward_samples_from(&self, from: u64) -> u64 {
        self.or(0, |s| s.forward_samples_from(from))
    }

    fn forward_cut(&self, keep: u64) -> u64 {
        self.or(0, |s| s.forward_cut(keep))
    }
}

impl Storage for ReopeningStorage {
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        self.with(|s| s.append(batch, now_ms))?
    }

    fn append_cached(
        &self,
        batch: &Batch,
        now_ms: i64,
        cache: &mut crate::series_cache::SeriesCache,
    ) -> Result<AppendOutcome, StorageError> {
        // A reopened storage has an instance of its own: the cache starts
        // afresh there.
        self.with(|s| s.append_cached(batch, now_ms, cache))?
    }

    fn series(&self, selector: &Selector) -> Vec<SeriesKey> {
        self.or(Vec::new(), |s| s.series(selector))
    }

    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError> {
        self.with(|s| s.query_range(selector, start_ms, end_ms))?
    }

    fn query_summaries(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError> {
        self.with(|s| s.query_summaries(selector, tier, start_ms, end_ms))?
    }

    fn query_histograms(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError> {
        self.with(|s| s.query_histograms(selector, tier, start_ms, end_ms))?
    }

    fn latest(&self, selector: &Selector) -> Result<Vec<(u64, SharedKey, Point)>, StorageError> {
        self.with(|s| s.latest(selector))?
    }

    fn hosts(&self) -> Vec<HostSummary> {
        self.or(Vec::new(), Storage::hosts)
    }

    fn write_health(&self) -> Result<(), String> {
        self.db.get()?.as_ref().expect("checked").write_health()
    }

    fn high_water(&self, host: &str, agent_id: &str) -> u64 {
        // 0 while closed: the batch then goes to `append`, which fails.
        self.or(0, |s| s.high_water(host, agent_id))
    }

    fn series_exists(&self, key: &SeriesKey) -> bool {
        self.or(false, |s| s.series_exists(key))
    }

    fn series_counts(&self, host: &str) -> (u64, u64) {
        self.or((0, 0), |s| s.series_counts(host))
    }

    fn stats(&self) -> StorageStats {
        self.or(StorageStats::default(), Storage::stats)
    }
}

/// [`RocksAlertStore`] that reopens itself after failing writes. Sequence
/// numbers stay above every one handed out, across reopens.
pub struct ReopeningAlertStore {
    db: Reopener<RocksAlertStore>,
    /// The highest sequence number handed out.
    handed_out: AtomicU64,
}

impl ReopeningAlertStore {
    /// Wraps `store`; `open` opens it again.
    pub fn new(
        store: RocksAlertStore,
        name: String,
        open: impl Fn() -> Result<RocksAlertStore, StoreError> + Send + Sync + 'static,
    ) -> ReopeningAlertStore {
        // Above everything stored, even if the store closes before the
        // first call.
        let handed_out = AtomicU64::new(store.next_seq());
        ReopeningAlertStore {
            db: Reopener::new(
                store,
                name,
                Box::new(move || open().map_err(|e| e.to_string())),
            ),
            handed_out,
        }
    }

    /// See [`Reopener::recover`].
    pub fn recover(&self) -> Recovery {
        let recovery = self.db.recover();
        if recovery == Recovery::Reopened
            && let Ok(guard) = self.db.get()
        {
            guard
                .as_ref()
                .expect("checked")
                .advance_seq_past(self.handed_out.load(Ordering::Relaxed));
        }
        recovery
    }

    fn with<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&RocksAlertStore) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let guard = self.db.get().map_err(|reason| StoreError {
            path: self.db.name.clone(),
            operation,
            reason,
        })?;
        f(guard.as_ref().expect("checked by get"))
    }
}

impl AlertStore for ReopeningAlertStore {
    fn write(&self, changes: &Changes) -> Result<(), StoreError> {
        self.with("writing", |s| s.write(changes))
    }

    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.with("reading alerts", AlertStore::alerts)
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with("reading the outbox", AlertStore::outbox)
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.with("reading silences", AlertStore::silences)
    }

    fn history(
        &self,
        since_ms: i64,
        limit: usize,
        alert_id: Option<&str>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        self.with("reading history", |s| s.history(since_ms, limit, alert_id))
    }

    fn prune_history(&self, before_ms: i64) -> Result<(), StoreError> {
        self.with("pruning history", |s| s.prune_history(before_ms))
    }

    fn next_seq(&self) -> u64 {
        let seq = match self.db.get() {
            Ok(guard) => {
                let store = guard.as_ref().expect("checked");
                store.advance_seq_past(self.handed_out.load(Ordering::Relaxed));
                store.next_seq()
            }
            // Closed: count on; the reopened store continues above.
            Err(_) => self.handed_out.fetch_add(1, Ordering::Relaxed) + 1,
        };
        self.handed_out.fetch_max(seq, Ordering::Relaxed);
        seq
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.with("reading incidents", AlertStore::incidents)
    }

    fn incident_events(&self, number: u64) -> Result<Vec<IncidentEvent>, StoreError> {
        self.with("reading an incident timeline", |s| {
            s.incident_events(number)
        })
    }

    fn follow_ups(&self) -> Result<Vec<FollowUp>, StoreError> {
        self.with("reading follow-ups", AlertStore::follow_ups)
    }

    fn change_records(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ChangeRecord>, StoreError> {
        self.with("reading changes", |s| s.change_records(from_ms, to_ms))
    }
}

impl nightjar_alerting::availability::TimelineStore for ReopeningAlertStore {
    fn record(
        &self,
        changes: &[(String, nightjar_alerting::availability::Change)],
    ) -> Result<(), StoreError> {
        self.with("writing the timeline", |s| s.record(changes))
    }

    fn judged_through(&self, span_start_ms: i64, through_ms: i64) -> Result<(), StoreError> {
        self.with("writing the timeline", |s| {
            s.judged_through(span_start_ms, through_ms)
        })
    }

    fn timeline(
        &self,
        service: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<nightjar_alerting::availability::Change>, StoreError> {
        self.with("reading the timeline", |s| {
            s.timeline(service, from_ms, to_ms)
        })
    }

    fn judging(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        self.with("reading the timeline", |s| s.judging(from_ms, to_ms))
    }

    fn adjust(
        &self,
        service: &str,
        adjustment: &nightjar_model::availability::timeline::Adjustment,
    ) -> Result<(), StoreError> {
        self.with("writing an adjustment", |s| s.adjust(service, adjustment))
    }

    fn adjustments(
        &self,
        service: &str,
    ) -> Result<Vec<nightjar_model::availability::timeline::Adjustment>, StoreError> {
        self.with("reading adjustments", |s| s.adjustments(service))
    }
}
