//! [`Storage`] on an embedded RocksDB. The only module that names RocksDB.
//!
//! # Layout
//!
//! Column families (byte layouts in `docs/format/storage.md`):
//!
//! - `series`: series id (u64 BE) → encoded [`SeriesKey`]. Loaded into an
//!   in-memory index at open; ids are never reused.
//! - `ingest_log`: log seq (u64 BE) → the samples of one batch stored
//!   while forwarding ([`ingest_log`] format). Deleted once the chunks
//!   holding them are written.
//! - `raw`: series id (u64 BE) ++ first timestamp (i64, sign bit flipped, BE)
//!   → an XOR chunk ([`chunk`]) of up to 120 points inside one clock hour.
//!   A range read is one seek per series.
//! - `rollup_1m`, `rollup_1h`: series id ++ bucket start (as above) → a
//!   [`Summary`] of the bucket, built with a merge operator.
//! - `hist_raw`: series id ++ timestamp → one histogram sample
//!   ([`Histogram::encode`]: unit ++ HdrHistogram V2).
//! - `hist_1m`, `hist_1h`: series id ++ bucket start → the merge of the
//!   bucket's histograms, built with a merge operator.
//! - `meta`: `a/<agent id>` → the agent's high-water seq (u64 BE);
//!   `h/<host>` → last contact ms (i64 BE) ++ interval ms (u64 BE);
//!   `l/floor` → the ingest log's floor (u64 BE).
//!
//! Beside the column families, `ingest-log/` holds the ingest log's
//! segment files ([`crate::segment_log`]): one frame per batch stored
//! without forwarding (an [`ingest_log::BatchRecord`]).
//!
//! # Durability
//!
//! A batch's record (its samples, the histograms taken, its sender and seq,
//! the host record) is appended to the ingest log's segments and
//! `fdatasync`ed (concurrent batches share one sync) before `append`
//! returns; its histogram rows and rollup operands, the agent's new
//! high-water seq and the host record are then written to RocksDB
//! unsynced, and the samples applied to the in-memory heads ([`head`]).
//! A head that seals a chunk writes it, with its rollup merge operands, in
//! one `WriteBatch` (not synced). The log's floor is the oldest record an
//! open chunk or an in-flight batch still needs; truncating writes it to
//! `meta` with `sync = true` (RocksDB's WAL is ordered, so that sync makes
//! every earlier chunk, histogram row, mark and host record durable) and
//! only then deletes the segments below it. At open the records at or
//! above the floor are replayed: samples into the heads (which refuse
//! points they already hold, so replaying is idempotent), marks and host
//! records raised, histogram rows a crash lost written again. New series
//! are written with `sync = true`: records name series by id.
//!
//! While forwarding, a batch's samples (as one `ingest_log` record), its
//! forward record, histogram rows, mark and host record are one synced
//! `WriteBatch` instead, so the forward record is durable exactly when the
//! batch is. Replay merges both logs by seq.
//!
//! Histogram samples skip the heads: a raw row and its rollup operands are
//! one `WriteBatch`, so each is counted once per tier.
//!
//! # Concurrency
//!
//! Agents ingest in parallel: replays are detected under each agent's own
//! lock, RocksDB groups concurrent synced writes into one fsync, and heads
//! are split into [`head::SHARDS`] independently locked shards. Queries copy
//! a series' open chunk and take a RocksDB snapshot under its shard lock,
//! then read without holding any lock.
//!
//! # Retention
//!
//! Compaction filters drop raw chunks and rollup rows whose whole time span
//! is older than their tier's retention, and periodic compaction (daily)
//! makes sure every file is visited, so the data directory plateaus.

mod alerts;
mod forward;
mod keys;
mod read;
mod reopen;
#[cfg(test)]
mod tests;
mod timeline;
mod write;

pub use alerts::RocksAlertStore;
pub use reopen::{Recovery, ReopeningAlertStore, ReopeningStorage};
pub use write::RefBatch;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::statistics::{StatsLevel, Ticker};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    WriteBatch, WriteOptions,
};

use crate::head::{Head, Heads, SHARDS, SealedChunk};
use crate::index::SeriesIndex;
use crate::ingest_log::{self, BatchRecord};
use crate::rollup::{self, Tier};
use crate::segment_log::SegmentLog;
use crate::{
    AppendOutcome, HostSummary, Retention, SeriesHistograms, SeriesSummaries, Storage,
    StorageError, StorageStats,
};
use keys::{
    agent_key, decode_agent_key, decode_host, decode_series, encode_host, host_key, key_time,
    read_u64,
};
use nightjar_model::histogram::Histogram;
use nightjar_model::model::{Batch, HostInfo, Point, SeriesKey, SharedKey};
use nightjar_model::selector::Selector;
use read::decode_chunk;

const CF_SERIES: &str = "series";
const CF_LOG: &str = "ingest_log";
const CF_RAW: &str = "raw";
const CF_1M: &str = "rollup_1m";
const CF_1H: &str = "rollup_1h";
const CF_META: &str = "meta";
const CF_HIST_RAW: &str = "hist_raw";
const CF_HIST_1M: &str = "hist_1m";
const CF_HIST_1H: &str = "hist_1h";
const CF_FORWARD: &str = "forward_queue";

/// Column families of earlier layouts this version cannot read.
const RETIRED_CFS: [&str; 1] = ["samples"];

/// A clock giving epoch milliseconds; injectable so tests can age data.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// How long a chunk may stay open before it is written anyway, so the
/// ingest log (replayed at open) stays short for slow or stopped series.
pub const MAX_OPEN: Duration = Duration::from_secs(15 * 60);

/// A key and value read from RocksDB.
type KeyValue = (Box<[u8]>, Box<[u8]>);

/// Ingest-log bookkeeping: the next record seq, the records written but
/// not yet applied to the heads (which no open chunk pins yet), and the
/// floor below which no record is needed (durable in `meta` as
/// [`LOG_FLOOR_KEY`]).
#[derive(Default)]
struct LogState {
    next_seq: u64,
    in_flight: BTreeSet<u64>,
    floor: u64,
}

/// The ingest log's segment files, under the data directory
/// ([`crate::segment_log`]).
const SEGMENT_DIR: &str = "ingest-log";

/// `meta` key of the ingest log's floor (u64 BE): records below it are
/// in chunks on disk, and their marks and host records in `meta`.
const LOG_FLOOR_KEY: &[u8] = b"l/floor";

/// How long a segment takes new records before a truncation seals it (so
/// that a later one can delete it): long enough that a quiet collector
/// does not open a file every flush, short against [`MAX_OPEN`].
const SEGMENT_ROTATION: Duration = Duration::from_secs(60);

/// Whose replay mark: (host, agent id).
type AgentMark = (String, String);

/// RocksDB-backed storage under one data directory.
pub struct RocksStorage {
    db: DB,
    /// This open instance, among all opened by the process (from 1): the
    /// owner of the series ids a [`crate::series_cache::SeriesCache`] holds.
    instance: u64,
    /// Kept for its statistics (shared with the DB).
    db_opts: Options,
    path: PathBuf,
    index: RwLock<SeriesIndex>,
    /// Serializes series creation so one key never gets two ids.
    create_series: Mutex<u64>,
    /// Per-(host, agent id) high-water seq, each behind its own lock.
    agents: Mutex<HashMap<AgentMark, Arc<Mutex<u64>>>>,
    hosts: RwLock<BTreeMap<String, HostInfo>>,
    heads: Heads,
    log: Mutex<LogState>,
    /// The ingest log's records of batches stored without forwarding.
    segments: SegmentLog,
    /// When the active segment was last sealed by a truncation.
    last_rotation: Mutex<Instant>,
    /// Chunk writes that failed (their chunks kept in the heads).
    chunk_write_failures: AtomicU64,
    /// Batch writes that failed (not acked).
    batch_write_failures: AtomicU64,
    /// The error of the last batch write, if it failed; cleared by the
    /// next that succeeds.
    batch_write_error: Mutex<Option<String>>,
    /// Chunks kept in the heads after a failed write (exact after each
    /// flush, raised at once by a failure).
    kept_chunks: AtomicU64,
    /// The error of the last failed chunk write.
    chunk_write_error: Mutex<Option<String>>,
    /// Tests: every chunk write fails while set.
    #[cfg(test)]
    pub(crate) fail_chunk_writes: std::sync::atomic::AtomicBool,
    /// Tests: creating a series fails while set.
    #[cfg(test)]
    pub(crate) fail_series_creation: std::sync::atomic::AtomicBool,
    /// Tests: a batch's unsynced RocksDB write (histogram rows, mark, host
    /// record) is skipped while set, as if a crash had lost it.
    #[cfg(test)]
    pub(crate) lose_unsynced_batch_writes: std::sync::atomic::AtomicBool,
    /// Series that hold histograms, so histogram reads skip the others.
    histogram_series: RwLock<HashSet<u64>>,
    /// Whether stored batches write forward records ([`forward`]).
    forwarding: bool,
    /// The forward queue's records and sample count.
    forward: Mutex<forward::ForwardState>,
    /// The forward cursors' files, open ([`forward`]).
    forward_cursor_files: Mutex<HashMap<String, Arc<std::fs::File>>>,
}

fn tier_cf(tier: Tier) -> &'static str {
    match tier {
        Tier::Raw => CF_RAW,
        Tier::Minute => CF_1M,
        Tier::Hour => CF_1H,
    }
}

fn hist_cf(tier: Tier) -> &'static str {
    match tier {
        Tier::Raw => CF_HIST_RAW,
        Tier::Minute => CF_HIST_1M,
        Tier::Hour => CF_HIST_1H,
    }
}

/// What the rows of a time-keyed column family hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Raw chunks and rollup summaries.
    Points,
    /// Histograms.
    Histograms,
}

/// Merges encoded histograms (RocksDB's merge operator for the histogram
/// rollup tiers). An undecodable or differently-united operand is logged
/// and left out rather than losing the rest of the bucket.
fn merge_histograms(existing: Option<&[u8]>, operands: &rocksdb::MergeOperands) -> Vec<u8> {
    let mut merged: Option<Histogram> = None;
    for bytes in existing.into_iter().chain(operands) {
        let h = match Histogram::decode(bytes) {
            Ok(h) => h,
            Err(error) => {
                tracing::error!(%error, "skipping an undecodable histogram in a rollup merge");
                continue;
            }
        };
        match &mut merged {
            None => merged = Some(h),
            Some(m) => {
                if let Err(error) = m.merge(&h) {
                    tracing::error!(%error, "skipping a histogram in a rollup merge");
                }
            }
        }
    }
    merged.map(|h| h.encode()).unwrap_or_default()
}

/// Options of a time-keyed column family: LZ4, ZSTD at the bottom, and a
/// compaction filter dropping keys whose span ends before the tier's cutoff.
fn timed_cf_options(tier: Tier, rows: Rows, retention: Retention, clock: Clock) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    let ttl_ms = retention.of(tier).as_millis().min(i64::MAX as u128) as i64;
    // A key's time is the start of its span: a raw chunk's first point (it
    // never straddles an hour), a rollup row's block. The span is over an
    // hour (raw) or a block after that span began.
    let span_ms = tier.block_ms();
    let filter_name = match rows {
        Rows::Points => format!("nightjar-retention-{}", tier.name()),
        Rows::Histograms => format!("nightjar-retention-hist-{}", tier.name()),
    };
    opts.set_compaction_filter(&filter_name, move |_level, key: &[u8], _value: &[u8]| {
        let cutoff = clock().saturating_sub(ttl_ms);
        match key_time(key) {
            Some(ts) if tier.block(ts).saturating_add(span_ms) <= cutoff => {
                CompactionDecision::Remove
            }
            _ => CompactionDecision::Keep,
        }
    });
    opts.set_periodic_compaction_seconds(24 * 3600);
    if (tier, rows) == (Tier::Raw, Rows::Histograms) {
        // Every stored histogram is first looked up (is its timestamp
        // taken?); nearly always it is not, which a Bloom filter answers
        // without reading data blocks.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
    }
    match (tier, rows) {
        (Tier::Raw, _) => {}
        (_, Rows::Points) => opts.set_merge_operator_associative(
            &format!("nightjar-summary-{}", tier.name()),
            move |_key: &[u8], existing: Option<&[u8]>, operands: &rocksdb::MergeOperands| {
                Some(rollup::merge(tier, existing, operands))
            },
        ),
        (_, Rows::Histograms) => opts.set_merge_operator_associative(
            &format!("nightjar-histogram-{}", tier.name()),
            |_key: &[u8], existing: Option<&[u8]>, operands: &rocksdb::MergeOperands| {
                Some(merge_histograms(existing, operands))
            },
        ),
    }
    opts
}

impl RocksStorage {
    /// Opens with the default retention; see [`RocksStorage::open_with`].
    pub fn open(path: &Path) -> Result<RocksStorage, StorageError> {
        RocksStorage::open_with(path, Retention::default(), system_clock())
    }

    /// Opens (creating if needed) the data directory, loads the series
    /// index, agent high-water marks and host records, and replays the
    /// ingest log into the heads. `clock` drives retention.
    pub fn open_with(
        path: &Path,
        retention: Retention,
        clock: Clock,
    ) -> Result<RocksStorage, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(path).map_err(|e| open_err(format!("cannot create: {e}")))?;
        if let Ok(existing) = DB::list_cf(&Options::default(), path)
            && let Some(old) = existing
                .iter()
                .find(|cf| RETIRED_CFS.contains(&cf.as_str()))
        {
            return Err(open_err(format!(
                "written by an older Nightjar storage layout (column family {old:?}); \
                 move it away and start with an empty data dir"
            )));
        }

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.enable_statistics();
        db_opts.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
        db_opts.increase_parallelism(2);
        let mut log_opts = Options::default();
        // Records live minutes: keep them in memory, rarely in files.
        log_opts.set_write_buffer_size(128 << 20);
        log_opts.set_compression_type(DBCompressionType::None);
        // Records live seconds while the remote stores keep up (a 128 MiB
        // buffer, like the log's, lets most die in the memtable); in an
        // outage they pile up, and are read back once, oldest first.
        let mut forward_opts = Options::default();
        forward_opts.set_write_buffer_size(128 << 20);
        forward_opts.set_compression_type(DBCompressionType::Lz4);
        let cfs = [
            ColumnFamilyDescriptor::new(CF_SERIES, Options::default()),
            ColumnFamilyDescriptor::new(CF_LOG, log_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
            ColumnFamilyDescriptor::new(CF_FORWARD, forward_opts),
        ]
        .into_iter()
        .chain(
            [Rows::Points, Rows::Histograms]
                .into_iter()
                .flat_map(|rows| {
                    let clock = clock.clone();
                    [Tier::Raw, Tier::Minute, Tier::Hour].map(move |tier| {
                        let name = match rows {
                            Rows::Points => tier_cf(tier),
                            Rows::Histograms => hist_cf(tier),
                        };
                        ColumnFamilyDescriptor::new(
                            name,
                            timed_cf_options(tier, rows, retention, clock.clone()),
                        )
                    })
                }),
        );
        let db =
            DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| open_err(e.to_string()))?;
        let segment_dir = path.join(SEGMENT_DIR);
        let segments = SegmentLog::open(&segment_dir).map_err(|e| {
            open_err(format!(
                "cannot open the ingest log {}: {e}",
                segment_dir.display()
            ))
        })?;

        static INSTANCES: AtomicU64 = AtomicU64::new(1);
        let storage = RocksStorage {
            db,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            db_opts,
            path: path.to_owned(),
            index: RwLock::default(),
            create_series: Mutex::new(0),
            agents: Mutex::default(),
            hosts: RwLock::default(),
            heads: Heads::default(),
            log: Mutex::default(),
            segments,
            last_rotation: Mutex::new(Instant::now()),
            chunk_write_failures: AtomicU64::new(0),
            batch_write_failures: AtomicU64::new(0),
            batch_write_error: Mutex::new(None),
            kept_chunks: AtomicU64::new(0),
            chunk_write_error: Mutex::new(None),
            #[cfg(test)]
            fail_chunk_writes: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            fail_series_creation: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            lose_unsynced_batch_writes: std::sync::atomic::AtomicBool::new(false),
            histogram_series: RwLock::default(),
            forwarding: false,
            forward: Mutex::default(),
            forward_cursor_files: Mutex::default(),
        };
        storage.load()?;
        storage.load_histogram_series()?;
        storage.replay_log()?;
        Ok(storage)
    }

    fn load(&self) -> Result<(), StorageError> {
        let mut index = SeriesIndex::default();
        for item in self.db.iterator_cf(self.cf(CF_SERIES), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("load series index", e))?;
            let id = read_u64(&k).ok_or_else(|| self.corrupt("series id", &k))?;
            let key = decode_series(&v).ok_or_else(|| self.corrupt("series record", &k))?;
            index.insert(id, key);
        }
        *self.create_series.lock().expect("poisoned") = index.max_id().map_or(1, |id| id + 1);
        *self.index.write().expect("poisoned") = index;

        let mut agents = self.agents.lock().expect("poisoned");
        let mut hosts = self.hosts.write().expect("poisoned");
        let mut retired_marks = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_META), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("load metadata", e))?;
            if let Some(rest) = k.strip_prefix(b"m/") {
                let seq = read_u64(&v).ok_or_else(|| self.corrupt("replay mark", &k))?;
                let mark = decode_agent_key(rest).ok_or_else(|| self.corrupt("replay mark", &k))?;
                agents.insert(mark, Arc::new(Mutex::new(seq)));
            } else if k.starts_with(b"a/") {
                // Keyed by agent id alone (before 0.6): not trusted. A
                // batch they would have called a replay is stored, and its
                // points already stored are refused one by one.
                retired_marks.push(k);
            } else if let Some(host) = k.strip_prefix(b"h/") {
                let info = decode_host(host, &v).ok_or_else(|| self.corrupt("host record", &k))?;
                hosts.insert(info.host.clone(), info);
            }
        }
        if !retired_marks.is_empty() {
            tracing::info!(
                marks = retired_marks.len(),
                "dropping replay marks keyed by agent id alone (an earlier version's)"
            );
            for k in retired_marks {
                self.db
                    .delete_cf(self.cf(CF_META), &k)
                    .map_err(|e| self.io("drop retired replay marks", e))?;
            }
        }
        Ok(())
    }

    /// Finds the series with histograms: one seek per such series over the
    /// 1-hour histogram tier (the longest kept; every histogram adds to it).
    fn load_histogram_series(&self) -> Result<(), StorageError> {
        let mut found = HashSet::new();
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_HIST_1H));
        iter.seek_to_first();
        while let Some(id) = iter.key().and_then(read_u64) {
            found.insert(id);
            match id.checked_add(1) {
                Some(next) => iter.seek(next.to_be_bytes()),
                None => break,
            }
        }
        iter.status()
            .map_err(|e| self.io("load histogram series", e))?;
        *self.histogram_series.write().expect("poisoned") = found;
        Ok(())
    }

    /// Applies the ingest-log records left by the last run to the heads:
    /// the `ingest_log` column family's (batches stored while forwarding,
    /// and an older build's) merged by seq with the segments' at or above
    /// the floor. A sender's batches are stored one at a time, so its
    /// records' seqs follow its order; records of different senders touch
    /// different series, so their order does not matter.
    fn replay_log(&self) -> Result<(), StorageError> {
        let floor = match self
            .db
            .get_cf(self.cf(CF_META), LOG_FLOOR_KEY)
            .map_err(|e| self.io("read the ingest log's floor", e))?
        {
            Some(v) => {
                read_u64(&v).ok_or_else(|| self.corrupt("ingest log floor", LOG_FLOOR_KEY))?
            }
            None => 0,
        };
        let mut next_seq = floor.max(1);
        let mut records = 0u64;
        // The column family's records and the segments' are merged by log
        // seq: both exist after forwarding was switched on or off between
        // runs, and a sender's older batch applied after its newer one
        // would be refused by the heads as not newer, and lost.
        let mut column = self.db.raw_iterator_cf(self.cf(CF_LOG));
        column.seek_to_first();
        let mut failed = None;
        let mut pending = ReplayWrites::default();
        let torn = self
            .segments
            .replay(|seq, payload| {
                next_seq = next_seq.max(seq + 1);
                if seq < floor || failed.is_some() {
                    return;
                }
                if let Err(e) = self.replay_column_below(&mut column, seq, &mut records) {
                    failed = Some(e);
                    return;
                }
                match ingest_log::decode_batch(payload) {
                    Some(record) => {
                        if let Err(e) = self.replay_batch(seq, &record, &mut pending) {
                            failed = Some(e);
                        }
                        records += 1;
                    }
                    // Each frame passed its CRC: a bug, not a bad disk.
                    None => tracing::error!(
                        data_dir = %self.path.display(),
                        seq,
                        "skipping an undecodable ingest log segment record"
                    ),
                }
            })
            .map_err(|e| StorageError::Open {
                path: self.path.display().to_string(),
                reason: format!("cannot read the ingest log {SEGMENT_DIR}: {e}"),
            })?;
        if failed.is_none() {
            next_seq =
                next_seq.max(self.replay_column_below(&mut column, u64::MAX, &mut records)?);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        self.write_replayed(&mut pending)?;
        for tear in torn {
            // A crash mid-write leaves its group torn; no record of it was
            // acked, so nothing acked is lost.
            tracing::warn!(data_dir = %self.path.display(), "ingest log ends early (a write the last run did not finish): {tear}");
        }
        {
            let mut log = self.log.lock().expect("poisoned");
            log.next_seq = next_seq;
            log.floor = floor;
        }
        if records > 0 {
            tracing::info!(records, "replayed the ingest log into the heads");
        }
        Ok(())
    }

    /// Applies the `ingest_log` column family's records from `column`'s
    /// position up to (not including) seq `bound`. Returns the seq after
    /// the last one applied (0 if none).
    fn replay_column_below(
        &self,
        column: &mut rocksdb::DBRawIteratorWithThreadMode<'_, DB>,
        bound: u64,
        records: &mut u64,
    ) -> Result<u64, StorageError> {
        let mut after = 0;
        while let (Some(k), Some(v)) = (column.key(), column.value()) {
            let seq = read_u64(k).ok_or_else(|| self.corrupt("ingest log key", k))?;
            if seq >= bound {
                break;
            }
            match ingest_log::decode(v) {
                Some(samples) => {
                    self.apply(seq, &samples);
                }
                // RocksDB checksums its files, so this means a bug, not a
                // bad disk; keep going with everything else.
                None => tracing::error!(
                    data_dir = %self.path.display(),
                    seq,
                    "skipping an undecodable ingest log record"
                ),
            }
            after = seq + 1;
            *records += 1;
            column.next();
        }
        column.status().map_err(|e| self.io("read ingest log", e))?;
        Ok(after)
    }

    /// Replays one segment record: its samples into the heads, its
    /// sender's mark and host record raised to it (in memory and, unsynced,
    /// in `meta`: the synced write of a later floor makes them durable
    /// before the record is deleted), and its histogram rows written
    /// again if the crash lost them (a raw row and its rollup operands are
    /// one write, so a raw row present means the operands are too).
    fn replay_batch(
        &self,
        seq: u64,
        record: &BatchRecord,
        pending: &mut ReplayWrites,
    ) -> Result<(), StorageError> {
        self.apply(seq, &record.samples);
        let wb = &mut pending.batch;
        {
            let mark = self.agent_high_water(&record.host, &record.agent_id);
            let mut mark = mark.lock().expect("poisoned");
            if record.seq > *mark {
                *mark = record.seq;
                wb.put_cf(
                    self.cf(CF_META),
                    agent_key(&record.host, &record.agent_id),
                    record.seq.to_be_bytes(),
                );
            }
        }
        {
            let mut hosts = self.hosts.write().expect("poisoned");
            if hosts
                .get(&record.host)
                .is_none_or(|h| h.last_seen_ms < record.stored_ms)
            {
                let host = HostInfo {
                    host: record.host.clone(),
                    last_seen_ms: record.stored_ms,
                    interval_ms: record.interval_ms,
                };
                wb.put_cf(self.cf(CF_META), host_key(&host.host), encode_host(&host));
                hosts.insert(host.host.clone(), host);
            }
        }
        let raw = self.cf(CF_HIST_RAW);
        let mut rewritten = Vec::new();
        for (id, ts, encoded) in &record.histograms {
            let key = keys::time_key(*id, *ts);
            let stored = self
                .db
                .get_pinned_cf(raw, key)
                .map_err(|e| self.io("read histogram", e))?;
            // A row rewritten by an earlier record of this replay is still
            // in `pending`, not in RocksDB: written twice, its operands
            // would count it twice in the rollups.
            if stored.is_none() && pending.histograms.insert((*id, *ts)) {
                self.put_histogram(wb, *id, *ts, encoded);
                rewritten.push(*id);
            }
        }
        self.histogram_series
            .write()
            .expect("poisoned")
            .extend(rewritten);
        pending.records += 1;
        if pending.records >= ReplayWrites::RECORDS_PER_WRITE {
            self.write_replayed(pending)?;
        }
        Ok(())
    }

    /// Writes what the replay of the records since the last such write
    /// rebuilt (unsynced, as their first write was).
    fn write_replayed(&self, pending: &mut ReplayWrites) -> Result<(), StorageError> {
        let batch = std::mem::take(&mut pending.batch);
        pending.histograms.clear();
        pending.records = 0;
        if batch.is_empty() {
            return Ok(());
        }
        self.db
            .write(batch)
            .map_err(|e| self.io("replay the ingest log", e))
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// An I/O error of this data dir: `operation` failed for `reason`
    /// (a RocksDB error, an ingest-log segment's, a test hook's).
    fn io(&self, operation: &'static str, reason: impl std::fmt::Display) -> StorageError {
        StorageError::Io {
            path: self.path.display().to_string(),
            operation,
            reason: reason.to_string(),
        }
    }

    fn corrupt(&self, what: &str, key: &[u8]) -> StorageError {
        StorageError::Open {
            path: self.path.display().to_string(),
            reason: format!("corrupt {what} at key {key:02x?}"),
        }
    }

    /// Compacts every time-keyed column family now (retention applies at
    /// compaction; this is for tests and maintenance).
    pub fn compact(&self) {
        for name in [CF_RAW, CF_1M, CF_1H, CF_HIST_RAW, CF_HIST_1M, CF_HIST_1H] {
            self.db
                .compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }

    /// Writes every open chunk opened at least `max_open` ago (all of them
    /// with `Duration::ZERO`) and deletes the ingest-log records no longer
    /// needed. Call it periodically (the collector does every 10 s with
    /// [`MAX_OPEN`]) and at shutdown.
    pub fn flush_heads(&self, max_open: Duration) -> Result<(), StorageError> {
        // Taken first: every record below it was applied before the scan
        // below starts, so the scan sees its points (in a head or written);
        // a record applied during the scan is at or above it.
        let floor = {
            let log = self.log.lock().expect("poisoned");
            log.in_flight.first().copied().unwrap_or(log.next_seq)
        };
        // None: the clock (since boot) is younger than `max_open`, so no
        // chunk can be that old.
        let deadline = Instant::now().checked_sub(max_open);
        let mut pinned = floor;
        let mut failed = None;
        let mut kept = 0;
        for shard in 0..SHARDS {
            let mut heads = self.heads.lock(shard);
            // Chunks whose write failed are retried here, oldest first.
            let mut sealed: Vec<(u64, SealedChunk)> = Vec::new();
            for (id, head) in heads.iter_mut(shard) {
                sealed.extend(head.take_unwritten().into_iter().map(|c| (id, c)));
                if let Some(chunk) = deadline.and_then(|d| head.seal_if_opened_by(d)) {
                    sealed.push((id, chunk));
                }
            }
            if let Err(error) = self.write_or_keep(&mut heads, sealed) {
                failed.get_or_insert(error);
            }
            pinned = heads
                .values()
                .filter_map(Head::pinned_log_seq)
                .fold(pinned, u64::min);
            kept += heads.values().map(Head::unwritten_chunks).sum::<usize>();
        }
        self.kept_chunks
            .store(kept as u64, std::sync::atomic::Ordering::Relaxed);
        // The chunks kept after a failure pin their records: the log stays
        // exactly as long as what is not yet in chunks on disk.
        self.truncate_log(pinned)?;
        failed.map_or(Ok(()), Err)
    }

    /// Deletes ingest-log records below `below`. The floor goes into
    /// `meta` in a synced write first: RocksDB's WAL is ordered, so that
    /// sync makes durable every chunk, mark and host record written for
    /// the records below it, and only then are their segments deleted.
    fn truncate_log(&self, below: u64) -> Result<(), StorageError> {
        if below <= self.log.lock().expect("poisoned").floor {
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(CF_META), LOG_FLOOR_KEY, below.to_be_bytes());
        wb.delete_range_cf(self.cf(CF_LOG), 0u64.to_be_bytes(), below.to_be_bytes());
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(wb, &sync)
            .map_err(|e| self.io("truncate ingest log", e))?;
        {
            let mut log = self.log.lock().expect("poisoned");
            log.floor = log.floor.max(below);
        }
        {
            let mut last = self.last_rotation.lock().expect("poisoned");
            if last.elapsed() >= SEGMENT_ROTATION {
                self.segments.rotate();
                *last = Instant::now();
            }
        }
        self.segments
            .remove_below(below)
            .map_err(|e| self.io("delete ingest log segments", e))?;
        Ok(())
    }

    /// Whether writes are failing now (see [`Storage::write_health`]).
    pub fn writes_failing(&self) -> bool {
        self.write_health().is_err()
    }

    /// A synced write of a probe key (default column family): whether the
    /// database takes writes now.
    pub fn probe(&self) -> Result<(), String> {
        alerts::probe(&self.db)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records in the ingest log (for tests and diagnostics).
    pub fn log_records(&self) -> usize {
        let floor = self.log.lock().expect("poisoned").floor;
        let in_segments = self
            .segments
            .read_all()
            .map_or(0, |frames| frames.iter().filter(|f| f.0 >= floor).count());
        self.db
            .iterator_cf(self.cf(CF_LOG), IteratorMode::Start)
            .count()
            + in_segments
    }

    /// Sizes of a column family's files.
    fn cf_bytes(&self, name: &str) -> u64 {
        self.db
            .property_int_value_cf(self.cf(name), "rocksdb.total-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn db_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

impl Storage for RocksStorage {
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        self.append_impl(batch, now_ms, None)
    }

    fn append_cached(
        &self,
        batch: &Batch,
        now_ms: i64,
        cache: &mut crate::series_cache::SeriesCache,
    ) -> Result<AppendOutcome, StorageError> {
        self.append_impl(batch, now_ms, Some(cache))
    }

    fn series(&self, selector: &Selector) -> Vec<SeriesKey> {
        self.series_impl(selector)
    }

    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError> {
        self.query_range_impl(selector, start_ms, end_ms)
    }

    fn query_summaries(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError> {
        self.query_summaries_impl(selector, tier, start_ms, end_ms)
    }

    fn query_histograms(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError> {
        self.query_histograms_impl(selector, tier, start_ms, end_ms)
    }

    fn latest(&self, selector: &Selector) -> Result<Vec<(u64, SharedKey, Point)>, StorageError> {
        self.latest_impl(selector)
    }

    fn hosts(&self) -> Vec<HostSummary> {
        let counts = self.index.read().expect("poisoned").per_host().clone();
        self.hosts
            .read()
            .expect("poisoned")
            .values()
            .map(|info| HostSummary {
                series_count: counts.get(&info.host).copied().unwrap_or(0),
                info: info.clone(),
            })
            .collect()
    }

    fn high_water(&self, host: &str, agent_id: &str) -> u64 {
        let agents = self.agents.lock().expect("poisoned");
        agents
            .get(&(host.to_owned(), agent_id.to_owned()))
            .map_or(0, |seq| *seq.lock().expect("poisoned"))
    }

    fn series_exists(&self, key: &SeriesKey) -> bool {
        self.index.read().expect("poisoned").id(key).is_some()
    }

    fn series_counts(&self, host: &str) -> (u64, u64) {
        let index = self.index.read().expect("poisoned");
        (
            index.per_host().get(host).copied().unwrap_or(0),
            index.len() as u64,
        )
    }

    fn stats(&self) -> StorageStats {
        use std::sync::atomic::Ordering::Relaxed;
        StorageStats {
            series: self.index.read().expect("poisoned").len() as u64,
            disk_bytes: dir_bytes(&self.path) + dir_bytes(&self.path.join(SEGMENT_DIR)),
            tier_disk_bytes: [Tier::Raw, Tier::Minute, Tier::Hour]
                .map(|tier| self.cf_bytes(tier_cf(tier)) + self.cf_bytes(hist_cf(tier))),
            ingest_log_bytes: self.cf_bytes(CF_LOG) + self.segments.bytes(),
            compactions_running: self.db_property("rocksdb.num-running-compactions"),
            compaction_pending: self.db_property("rocksdb.compaction-pending"),
            write_delay_micros: self.db_opts.get_ticker_count(Ticker::StallMicros),
            compaction_bytes_written: self.db_opts.get_ticker_count(Ticker::CompactWriteBytes),
            write_failures: self.batch_write_failures.load(Relaxed)
                + self.chunk_write_failures.load(Relaxed),
        }
    }

    fn write_health(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(error) = self.batch_write_error.lock().expect("poisoned").as_ref() {
            return Err(format!("batch writes fail: {error}"));
        }
        let kept = self.kept_chunks.load(Relaxed);
        if kept > 0 {
            let error = self.chunk_write_error.lock().expect("poisoned").clone();
            return Err(format!(
                "{kept} sealed chunks wait in memory to be written: {}",
                error.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// Total size of the regular files under `dir` (RocksDB keeps a flat directory).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What replaying segment records rebuilt (raised marks and host records,
/// histogram rows a crash lost), written to RocksDB every
/// [`ReplayWrites::RECORDS_PER_WRITE`] records rather than once per record.
#[derive(Default)]
struct ReplayWrites {
    batch: WriteBatch,
    /// The histogram rows in `batch`, by (series id, timestamp).
    histograms: std::collections::HashSet<(u64, i64)>,
    /// Records replayed into `batch`.
    records: usize,
}

impl ReplayWrites {
    const RECORDS_PER_WRITE: usize = 1024;
}
