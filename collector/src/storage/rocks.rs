//! [`Storage`] on an embedded RocksDB. The only module that names RocksDB.
//!
//! # Layout
//!
//! Column families (byte layouts in `docs/format/storage.md`):
//!
//! - `series`: series id (u64 BE) → encoded [`SeriesKey`]. Loaded into an
//!   in-memory index at open; ids are never reused.
//! - `ingest_log`: log seq (u64 BE) → the samples of one stored batch
//!   ([`ingest_log`] format). Deleted once the chunks holding them are written.
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
//!   `h/<host>` → last contact ms (i64 BE) ++ interval ms (u64 BE).
//!
//! # Durability
//!
//! A batch's samples (as one `ingest_log` record), the agent's new
//! high-water seq and the host record go into one `WriteBatch` written with
//! `sync = true`: after `append` returns, all of it is in the fsynced WAL,
//! or none of it is. Only then are the samples applied to the in-memory
//! heads ([`head`]). A head that seals a chunk writes it, with its rollup
//! merge operands, in one `WriteBatch` (not synced: RocksDB's WAL is
//! ordered, and the ingest-log records stay until a later write deletes
//! them). `ingest_log` is truncated below the oldest record that an open
//! chunk or an in-flight batch still needs; at open the remaining records
//! are replayed into the heads, and the heads refuse points they already
//! hold, so replaying is idempotent.
//!
//! Histogram samples skip the heads: their raw row and the merge operands
//! of their rollup rows go straight into the batch's synced `WriteBatch`,
//! so they are durable, and counted once per tier, exactly when the batch is.
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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::statistics::{StatsLevel, Ticker};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};

use super::head::{Head, HeadMap, Heads, SHARDS, SealedChunk};
use super::index::SeriesIndex;
use super::ingest_log::{self, LogSample};
use super::rollup::{self, Tier};
use super::{
    AppendOutcome, HostSummary, SeriesHistograms, SeriesSummaries, Storage, StorageError,
    StorageStats, chunk,
};
use crate::histogram::Histogram;
use crate::model::{Batch, HostInfo, Labels, Point, SeriesKey, SharedKey, Summary};
use crate::selector::Selector;

const CF_SERIES: &str = "series";
const CF_LOG: &str = "ingest_log";
const CF_RAW: &str = "raw";
const CF_1M: &str = "rollup_1m";
const CF_1H: &str = "rollup_1h";
const CF_META: &str = "meta";
const CF_HIST_RAW: &str = "hist_raw";
const CF_HIST_1M: &str = "hist_1m";
const CF_HIST_1H: &str = "hist_1h";

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

/// How long each tier keeps data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw points.
    pub raw: Duration,
    /// 1-minute rollups.
    pub minute: Duration,
    /// 1-hour rollups.
    pub hour: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            raw: Duration::from_secs(15 * DAY),
            minute: Duration::from_secs(90 * DAY),
            hour: Duration::from_secs(2 * 365 * DAY),
        }
    }
}

impl Retention {
    fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Raw => self.raw,
            Tier::Minute => self.minute,
            Tier::Hour => self.hour,
        }
    }
}

/// How long a chunk may stay open before it is written anyway, so the
/// ingest log (replayed at open) stays short for slow or stopped series.
pub const MAX_OPEN: Duration = Duration::from_secs(15 * 60);

/// A key and value read from RocksDB.
type KeyValue = (Box<[u8]>, Box<[u8]>);

/// Ingest-log bookkeeping: the next record seq and the records written but
/// not yet applied to the heads (which no open chunk pins yet).
#[derive(Default)]
struct LogState {
    next_seq: u64,
    in_flight: BTreeSet<u64>,
}

/// RocksDB-backed storage under one data directory.
pub struct RocksStorage {
    db: DB,
    /// Kept for its statistics (shared with the DB).
    db_opts: Options,
    path: PathBuf,
    index: RwLock<SeriesIndex>,
    /// Serializes series creation so one key never gets two ids.
    create_series: Mutex<u64>,
    /// Per-agent high-water seq, each behind its own lock.
    agents: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
    hosts: RwLock<BTreeMap<String, HostInfo>>,
    heads: Heads,
    log: Mutex<LogState>,
    /// Set when a sealed chunk could not be written: the ingest log is then
    /// kept whole until a restart replays it.
    keep_log: AtomicBool,
    /// Series that hold histograms, so histogram reads skip the others.
    histogram_series: RwLock<HashSet<u64>>,
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
        let cfs = [
            ColumnFamilyDescriptor::new(CF_SERIES, Options::default()),
            ColumnFamilyDescriptor::new(CF_LOG, log_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
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

        let storage = RocksStorage {
            db,
            db_opts,
            path: path.to_owned(),
            index: RwLock::default(),
            create_series: Mutex::new(0),
            agents: Mutex::default(),
            hosts: RwLock::default(),
            heads: Heads::default(),
            log: Mutex::default(),
            keep_log: AtomicBool::new(false),
            histogram_series: RwLock::default(),
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
        for item in self.db.iterator_cf(self.cf(CF_META), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("load metadata", e))?;
            if let Some(agent) = k.strip_prefix(b"a/") {
                let seq = read_u64(&v).ok_or_else(|| self.corrupt("agent record", &k))?;
                agents.insert(
                    String::from_utf8_lossy(agent).into_owned(),
                    Arc::new(Mutex::new(seq)),
                );
            } else if let Some(host) = k.strip_prefix(b"h/") {
                let info = decode_host(host, &v).ok_or_else(|| self.corrupt("host record", &k))?;
                hosts.insert(info.host.clone(), info);
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

    /// Applies the ingest-log records left by the last run to the heads.
    fn replay_log(&self) -> Result<(), StorageError> {
        let mut next_seq = 1;
        let mut records = 0u64;
        for item in self.db.iterator_cf(self.cf(CF_LOG), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("read ingest log", e))?;
            let seq = read_u64(&k).ok_or_else(|| self.corrupt("ingest log key", &k))?;
            match ingest_log::decode(&v) {
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
            next_seq = seq + 1;
            records += 1;
        }
        self.log.lock().expect("poisoned").next_seq = next_seq;
        if records > 0 {
            tracing::info!(records, "replayed the ingest log into the heads");
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn io(&self, operation: &'static str, e: rocksdb::Error) -> StorageError {
        StorageError::Io {
            path: self.path.display().to_string(),
            operation,
            reason: e.to_string(),
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
        for shard in 0..SHARDS {
            let mut heads = self.heads.lock(shard);
            if let Some(deadline) = deadline {
                let sealed: Vec<(u64, SealedChunk)> = heads
                    .iter_mut()
                    .filter_map(|(id, h)| Some((*id, h.seal_if_opened_by(deadline)?)))
                    .collect();
                if let Err(error) = self.write_sealed(&sealed) {
                    self.keep_log.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
            pinned = heads
                .values()
                .filter_map(Head::pinned_log_seq)
                .fold(pinned, u64::min);
        }
        self.truncate_log(pinned)
    }

    /// Deletes ingest-log records below `below` unless a failed chunk write
    /// asked to keep the log whole.
    fn truncate_log(&self, below: u64) -> Result<(), StorageError> {
        if self.keep_log.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.db
            .delete_range_cf(self.cf(CF_LOG), 0u64.to_be_bytes(), below.to_be_bytes())
            .map_err(|e| self.io("truncate ingest log", e))
    }

    /// Records in the ingest log (for tests and diagnostics).
    pub fn log_records(&self) -> usize {
        self.db
            .iterator_cf(self.cf(CF_LOG), IteratorMode::Start)
            .count()
    }

    fn agent_high_water(&self, agent_id: &str) -> Arc<Mutex<u64>> {
        let mut agents = self.agents.lock().expect("poisoned");
        agents.entry(agent_id.to_owned()).or_default().clone()
    }

    /// The ids of `keys`, creating series that are new.
    fn series_ids<'a>(
        &self,
        keys: impl Iterator<Item = &'a SeriesKey>,
    ) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        let mut missing = Vec::new();
        {
            let index = self.index.read().expect("poisoned");
            for (i, key) in keys.enumerate() {
                match index.id(key) {
                    Some(id) => ids.push(id),
                    None => {
                        ids.push(0);
                        missing.push((i, key));
                    }
                }
            }
        }
        for (i, key) in missing {
            ids[i] = self.create_series(key)?;
        }
        Ok(ids)
    }

    fn create_series(&self, key: &SeriesKey) -> Result<u64, StorageError> {
        let mut next_id = self.create_series.lock().expect("poisoned");
        if let Some(id) = self.index.read().expect("poisoned").id(key) {
            return Ok(id);
        }
        let id = *next_id;
        // Not synced on its own: the synced batch that uses it follows in the WAL.
        self.db
            .put_cf(self.cf(CF_SERIES), id.to_be_bytes(), encode_series(key))
            .map_err(|e| self.io("create series", e))?;
        *next_id += 1;
        self.index
            .write()
            .expect("poisoned")
            .insert(id, key.clone());
        Ok(id)
    }

    /// The newest stored point of series `id`, read from its last chunk.
    fn newest_on_disk(&self, id: u64) -> Result<Option<Point>, StorageError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_RAW));
        iter.seek_for_prev(time_key(id, i64::MAX));
        iter.status().map_err(|e| self.io("read newest chunk", e))?;
        let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
            return Ok(None);
        };
        if read_u64(k) != Some(id) {
            return Ok(None);
        }
        Ok(decode_chunk(v).last().copied())
    }

    fn head_for<'a>(&self, heads: &'a mut HeadMap, id: u64) -> &'a mut Head {
        heads.entry(id).or_insert_with(|| {
            // A read failure here leaves the head empty: points are then
            // checked against nothing older, and duplicates of the last
            // chunk would be stored again rather than anything lost.
            let newest = self.newest_on_disk(id).unwrap_or_else(|e| {
                tracing::error!(error = %e, series = id, "cannot read a series' newest point");
                None
            });
            Head::new(newest)
        })
    }

    /// Applies the samples of ingest-log record `log_seq` to the heads and
    /// writes the chunks they seal. Returns how many samples were refused
    /// as not newer than their series' newest point.
    fn apply(&self, log_seq: u64, samples: &[LogSample]) -> u32 {
        let now = Instant::now();
        let mut by_shard: Vec<Vec<&LogSample>> = vec![Vec::new(); SHARDS];
        for s in samples {
            by_shard[Heads::shard_of(s.0)].push(s);
        }
        let mut refused = 0;
        for (shard, samples) in by_shard.iter().enumerate() {
            if samples.is_empty() {
                continue;
            }
            let mut heads = self.heads.lock(shard);
            let mut sealed = Vec::new();
            for &&(id, timestamp_ms, value) in samples {
                let point = Point {
                    timestamp_ms,
                    value,
                };
                match self.head_for(&mut heads, id).push(point, log_seq, now) {
                    Ok(Some(chunk)) => sealed.push((id, chunk)),
                    Ok(None) => {}
                    Err(_not_newer) => refused += 1,
                }
            }
            // Written under the shard lock, so a query sees each point
            // either in a head or in a written chunk, never both or neither.
            if let Err(error) = self.write_sealed(&sealed) {
                tracing::error!(%error, "cannot write sealed chunks; keeping the ingest log for replay");
                self.keep_log.store(true, Ordering::Relaxed);
            }
        }
        refused
    }

    /// Adds the batch's histogram samples to `wb`: the raw row and a merge
    /// operand per rollup tier. Returns how many were refused because their
    /// series already holds a histogram at that timestamp (a second copy
    /// would be counted twice in the rollups).
    fn add_histograms(&self, wb: &mut WriteBatch, batch: &Batch) -> Result<u32, StorageError> {
        if batch.histograms.is_empty() {
            return Ok(0);
        }
        let ids = self.series_ids(batch.histograms.iter().map(|h| &h.series))?;
        let raw = self.cf(CF_HIST_RAW);
        let mut seen = BTreeSet::new();
        let mut new_series = Vec::new();
        let mut refused = 0;
        for (id, h) in ids.into_iter().zip(&batch.histograms) {
            let key = time_key(id, h.timestamp_ms);
            let stored = self
                .db
                .get_pinned_cf(raw, key)
                .map_err(|e| self.io("read histogram", e))?;
            if stored.is_some() || !seen.insert(key) {
                refused += 1;
                continue;
            }
            let encoded = h.histogram.encode();
            wb.put_cf(raw, key, &encoded);
            new_series.push(id);
            for tier in Tier::ROLLUPS {
                wb.merge_cf(
                    self.cf(hist_cf(tier)),
                    time_key(id, tier.bucket(h.timestamp_ms)),
                    &encoded,
                );
            }
        }
        // Marked before the write: a read may then look for a histogram not
        // yet there, never miss one that is.
        self.histogram_series
            .write()
            .expect("poisoned")
            .extend(new_series);
        Ok(refused)
    }

    /// Writes sealed chunks and their rollup operands in one batch.
    fn write_sealed(&self, sealed: &[(u64, SealedChunk)]) -> Result<(), StorageError> {
        if sealed.is_empty() {
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        for (id, chunk) in sealed {
            wb.put_cf(self.cf(CF_RAW), time_key(*id, chunk.first_ts), &chunk.bytes);
            for tier in Tier::ROLLUPS {
                let cf = self.cf(tier_cf(tier));
                let buckets = rollup::summarise(tier, chunk.points.iter().copied());
                for (block, list) in rollup::by_block(tier, &buckets) {
                    wb.merge_cf(
                        cf,
                        time_key(*id, block),
                        rollup::encode_block(tier, block, &list),
                    );
                }
            }
        }
        self.db
            .write(wb)
            .map_err(|e| self.io("write sealed chunks", e))
    }

    fn matching(&self, selector: &Selector) -> Vec<(u64, SharedKey)> {
        self.index.read().expect("poisoned").matching(selector)
    }

    /// Under the series' shard lock: its open points and a snapshot-pinned
    /// read of `cf` from `lower` (inclusive) to `upper` (exclusive).
    fn read_series(
        &self,
        id: u64,
        cf: &str,
        lower: Vec<u8>,
        upper: Vec<u8>,
    ) -> Result<(Vec<Point>, Vec<KeyValue>), StorageError> {
        let (open, snapshot) = {
            let heads = self.heads.lock(Heads::shard_of(id));
            let open = heads.get(&id).map(Head::open_points).unwrap_or_default();
            (open, self.db.snapshot())
        };
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snapshot);
        opts.set_iterate_lower_bound(lower);
        opts.set_iterate_upper_bound(upper);
        let rows = self
            .db
            .iterator_cf_opt(self.cf(cf), opts, IteratorMode::Start)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io("read series", e))?;
        Ok((open, rows))
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

/// Decodes a stored chunk; a corrupt tail is logged and left out.
fn decode_chunk(bytes: &[u8]) -> Vec<Point> {
    let mut out = Vec::with_capacity(chunk::MAX_POINTS);
    for p in chunk::decode(bytes) {
        match p {
            Ok((timestamp_ms, value)) => out.push(Point {
                timestamp_ms,
                value,
            }),
            Err(error) => {
                tracing::error!(%error, "skipping the corrupt rest of a stored chunk");
                break;
            }
        }
    }
    out
}

impl Storage for RocksStorage {
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let high_water = self.agent_high_water(&batch.agent_id);
        let mut high_water = high_water.lock().expect("poisoned");
        if batch.seq <= *high_water {
            return Ok(AppendOutcome::Replay {
                acked_through: *high_water,
            });
        }
        let ids = self.series_ids(batch.samples.iter().map(|s| &s.series))?;
        let samples: Vec<LogSample> = ids
            .into_iter()
            .zip(&batch.samples)
            .map(|(id, s)| (id, s.point.timestamp_ms, s.point.value))
            .collect();

        let log_seq = {
            let mut log = self.log.lock().expect("poisoned");
            let seq = log.next_seq;
            log.next_seq += 1;
            log.in_flight.insert(seq);
            seq
        };
        let mut wb = WriteBatch::default();
        wb.put_cf(
            self.cf(CF_LOG),
            log_seq.to_be_bytes(),
            ingest_log::encode(&samples),
        );
        let histograms_refused = self.add_histograms(&mut wb, batch)?;
        let meta_cf = self.cf(CF_META);
        wb.put_cf(meta_cf, agent_key(&batch.agent_id), batch.seq.to_be_bytes());
        let host = HostInfo {
            host: batch.host.clone(),
            last_seen_ms: now_ms,
            interval_ms: batch.interval_ms,
        };
        wb.put_cf(meta_cf, host_key(&host.host), encode_host(&host));
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let written = self.db.write_opt(wb, &sync);
        let refused = match written {
            // The batch is durable from here on; only now may it be acked.
            Ok(()) => Ok(self.apply(log_seq, &samples)),
            Err(e) => Err(self.io("write batch", e)),
        };
        self.log
            .lock()
            .expect("poisoned")
            .in_flight
            .remove(&log_seq);
        let out_of_order = refused? + histograms_refused;
        *high_water = batch.seq;
        self.hosts
            .write()
            .expect("poisoned")
            .insert(host.host.clone(), host);
        Ok(AppendOutcome::Stored {
            acked_through: batch.seq,
            out_of_order,
        })
    }

    fn series(&self, selector: &Selector) -> Vec<SeriesKey> {
        let mut keys: Vec<SeriesKey> = self
            .matching(selector)
            .into_iter()
            .map(|(_, k)| SeriesKey::clone(&k))
            .collect();
        keys.sort_unstable();
        keys
    }

    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let in_range = |p: &Point| (start_ms..=end_ms).contains(&p.timestamp_ms);
        for (id, key) in self.matching(selector) {
            // A chunk starting before the hour of `start_ms` ends before it.
            let lower = time_key(id, Tier::Hour.bucket(start_ms));
            let (open, rows) =
                self.read_series(id, CF_RAW, lower.to_vec(), upper_key(id, end_ms))?;
            let mut points: Vec<Point> = rows
                .iter()
                .flat_map(|(_, v)| decode_chunk(v))
                .filter(in_range)
                .collect();
            points.extend(open.into_iter().filter(in_range));
            if !points.is_empty() {
                out.push((key, points));
            }
        }
        Ok(out)
    }

    fn query_summaries(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError> {
        assert!(tier != Tier::Raw, "raw points are read with query_range");
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let (first, last) = (tier.bucket(start_ms), tier.bucket(end_ms));
        for (id, key) in self.matching(selector) {
            let (open, rows) = self.read_series(
                id,
                tier_cf(tier),
                time_key(id, tier.block(first)).to_vec(),
                upper_key(id, last),
            )?;
            let mut buckets: BTreeMap<i64, Summary> = BTreeMap::new();
            for (k, v) in &rows {
                let Some(block) = key_time(k) else { continue };
                match rollup::decode_block(tier, block, v) {
                    Some(list) => buckets.extend(
                        list.into_iter()
                            .filter(|(start, _)| (first..=last).contains(start)),
                    ),
                    None => {
                        tracing::error!(series = id, block, "skipping an undecodable rollup row")
                    }
                }
            }
            let open = open
                .into_iter()
                .filter(|p| (first..=last).contains(&tier.bucket(p.timestamp_ms)));
            for (ts, s) in rollup::summarise(tier, open) {
                buckets.entry(ts).and_modify(|b| b.merge(&s)).or_insert(s);
            }
            if !buckets.is_empty() {
                out.push((key, buckets.into_iter().collect()));
            }
        }
        Ok(out)
    }

    fn query_histograms(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let (first, last) = match tier {
            Tier::Raw => (start_ms, end_ms),
            _ => (tier.bucket(start_ms), tier.bucket(end_ms)),
        };
        let cf = self.cf(hist_cf(tier));
        let matching: Vec<(u64, SharedKey)> = {
            let with_histograms = self.histogram_series.read().expect("poisoned");
            if with_histograms.is_empty() {
                return Ok(out);
            }
            self.matching(selector)
                .into_iter()
                .filter(|(id, _)| with_histograms.contains(id))
                .collect()
        };
        for (id, key) in matching {
            let mut opts = ReadOptions::default();
            opts.set_iterate_lower_bound(time_key(id, first).to_vec());
            opts.set_iterate_upper_bound(upper_key(id, last));
            let mut found = Vec::new();
            for item in self.db.iterator_cf_opt(cf, opts, IteratorMode::Start) {
                let (k, v) = item.map_err(|e| self.io("read histograms", e))?;
                let Some(ts) = key_time(&k) else { continue };
                match Histogram::decode(&v) {
                    Ok(h) => found.push((ts, h)),
                    Err(error) => {
                        tracing::error!(%error, series = id, ts, "skipping an undecodable stored histogram")
                    }
                }
            }
            if !found.is_empty() {
                out.push((key, found));
            }
        }
        Ok(out)
    }

    fn latest(&self, selector: &Selector) -> Result<Vec<(SharedKey, Point)>, StorageError> {
        // One lock per shard, not per series: Latest over thousands of
        // series is a dashboard's first query.
        let mut by_shard: Vec<Vec<(u64, SharedKey)>> = vec![Vec::new(); SHARDS];
        for (id, key) in self.matching(selector) {
            by_shard[Heads::shard_of(id)].push((id, key));
        }
        let mut out = Vec::new();
        for (shard, series) in by_shard.into_iter().enumerate() {
            if series.is_empty() {
                continue;
            }
            let mut heads = self.heads.lock(shard);
            for (id, key) in series {
                if let Some(point) = self.head_for(&mut heads, id).newest() {
                    out.push((id, key, point));
                }
            }
        }
        // Back to id order, as every other read answers.
        out.sort_unstable_by_key(|(id, _, _)| *id);
        Ok(out
            .into_iter()
            .map(|(_, key, point)| (key, point))
            .collect())
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

    fn high_water(&self, agent_id: &str) -> u64 {
        let agents = self.agents.lock().expect("poisoned");
        agents
            .get(agent_id)
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
        StorageStats {
            series: self.index.read().expect("poisoned").len() as u64,
            disk_bytes: dir_bytes(&self.path),
            tier_disk_bytes: [Tier::Raw, Tier::Minute, Tier::Hour]
                .map(|tier| self.cf_bytes(tier_cf(tier)) + self.cf_bytes(hist_cf(tier))),
            ingest_log_bytes: self.cf_bytes(CF_LOG),
            compactions_running: self.db_property("rocksdb.num-running-compactions"),
            compaction_pending: self.db_property("rocksdb.compaction-pending"),
            write_stall_micros: self.db_opts.get_ticker_count(Ticker::StallMicros),
            compaction_bytes_written: self.db_opts.get_ticker_count(Ticker::CompactWriteBytes),
        }
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

/// Series id (u64 BE) ++ time (i64 with the sign bit flipped, BE): byte
/// order matches (id, time) order.
fn time_key(id: u64, ts: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The first key after time `end_ms` of series `id`.
fn upper_key(id: u64, end_ms: i64) -> Vec<u8> {
    match end_ms.checked_add(1) {
        Some(t) => time_key(id, t).to_vec(),
        None => (id + 1).to_be_bytes().to_vec(),
    }
}

/// The time part of a [`time_key`].
fn key_time(key: &[u8]) -> Option<i64> {
    Some((read_u64(key.get(8..16)?)? ^ (1 << 63)) as i64)
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn agent_key(agent_id: &str) -> Vec<u8> {
    [b"a/", agent_id.as_bytes()].concat()
}

fn host_key(host: &str) -> Vec<u8> {
    [b"h/", host.as_bytes()].concat()
}

fn encode_host(info: &HostInfo) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&info.last_seen_ms.to_be_bytes());
    v[8..].copy_from_slice(&info.interval_ms.to_be_bytes());
    v
}

fn decode_host(host: &[u8], value: &[u8]) -> Option<HostInfo> {
    Some(HostInfo {
        host: String::from_utf8(host.to_vec()).ok()?,
        last_seen_ms: read_u64(value)? as i64,
        interval_ms: read_u64(value.get(8..)?)?,
    })
}

/// Series record: strings as u32 LE length + UTF-8 bytes: the metric, then
/// name and value of each label in name order.
fn encode_series(key: &SeriesKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put(&key.metric);
    for (name, value) in key.labels.iter() {
        put(name);
        put(value);
    }
    out
}

fn decode_series(mut bytes: &[u8]) -> Option<SeriesKey> {
    let mut take = || -> Option<String> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?.to_owned();
        bytes = &bytes[4 + len..];
        Some(s)
    };
    let metric = take()?;
    let mut pairs = Vec::new();
    while let Some(name) = take() {
        pairs.push((name, take()?));
    }
    Some(SeriesKey {
        metric,
        labels: Labels::from_pairs(pairs).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;
    use crate::selector::{MatchOp, Matcher};

    fn key(metric: &str, host: &str) -> SeriesKey {
        SeriesKey {
            metric: metric.into(),
            labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
        }
    }

    fn batch(agent: &str, host: &str, seq: u64, points: &[(&str, i64, f64)]) -> Batch {
        Batch {
            agent_id: agent.into(),
            host: host.into(),
            seq,
            interval_ms: 1_000,
            samples: points
                .iter()
                .map(|(m, t, v)| Sample {
                    series: key(m, host),
                    point: Point {
                        timestamp_ms: *t,
                        value: *v,
                    },
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    fn host_selector(host: &str) -> Selector {
        Selector {
            metric: None,
            matchers: vec![Matcher {
                name: "host".into(),
                op: MatchOp::Equal(host.into()),
            }],
        }
    }

    /// A batch of histogram samples: (metric, timestamp, observations).
    fn histogram_batch(agent: &str, host: &str, seq: u64, rows: &[(&str, i64, &[f64])]) -> Batch {
        let mut b = batch(agent, host, seq, &[]);
        b.histograms = rows
            .iter()
            .map(|(m, t, values)| {
                let mut h = Histogram::new(1e-3);
                for v in values.iter() {
                    h.record(*v, 1).unwrap();
                }
                crate::model::HistogramSample {
                    series: key(m, host),
                    timestamp_ms: *t,
                    histogram: h,
                }
            })
            .collect();
        b
    }

    fn counts(found: &[SeriesHistograms]) -> Vec<(String, Vec<(i64, u64)>)> {
        found
            .iter()
            .map(|(k, hs)| {
                (
                    k.labels.get("host").unwrap().to_owned(),
                    hs.iter().map(|(t, h)| (*t, h.count())).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn histograms_are_stored_once_in_every_tier_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let any = Selector {
            metric: Some("lat".into()),
            matchers: vec![],
        };
        {
            let s = RocksStorage::open(dir.path()).unwrap();
            s.append(
                &histogram_batch("ag", "a", 1, &[("lat", 10_000, &[1.0, 2.0])]),
                1,
            )
            .unwrap();
            s.append(
                &histogram_batch("ag", "a", 2, &[("lat", 20_000, &[3.0])]),
                1,
            )
            .unwrap();
            // A replayed batch changes nothing; a second histogram at a
            // stored timestamp is refused as out of order.
            let replay = s
                .append(
                    &histogram_batch("ag", "a", 2, &[("lat", 20_000, &[3.0])]),
                    1,
                )
                .unwrap();
            assert_eq!(replay, AppendOutcome::Replay { acked_through: 2 });
            let again = s
                .append(
                    &histogram_batch("ag", "a", 3, &[("lat", 20_000, &[9.0])]),
                    1,
                )
                .unwrap();
            assert_eq!(
                again,
                AppendOutcome::Stored {
                    acked_through: 3,
                    out_of_order: 1
                }
            );
            s.append(
                &histogram_batch("bg", "b", 1, &[("lat", 70_000, &[5.0])]),
                1,
            )
            .unwrap();
            // Plain series are not read for histograms.
            s.append(&batch("ag", "a", 4, &[("cpu", 1_000, 1.0)]), 1)
                .unwrap();
        }
        let s = RocksStorage::open(dir.path()).unwrap();
        let raw = s.query_histograms(&any, Tier::Raw, 0, 100_000).unwrap();
        assert_eq!(
            counts(&raw),
            [
                ("a".to_owned(), vec![(10_000, 2), (20_000, 1)]),
                ("b".to_owned(), vec![(70_000, 1)])
            ]
        );
        let minute = s.query_histograms(&any, Tier::Minute, 0, 100_000).unwrap();
        assert_eq!(
            counts(&minute),
            [
                ("a".to_owned(), vec![(0, 3)]),
                ("b".to_owned(), vec![(60_000, 1)])
            ]
        );
        let hour = s.query_histograms(&any, Tier::Hour, 0, 100_000).unwrap();
        assert_eq!(hour[0].1[0].1.count(), 3);
        assert!((hour[0].1[0].1.max() - 3.0).abs() < 0.03);
        let bounded = s.query_histograms(&any, Tier::Raw, 15_000, 20_000).unwrap();
        assert_eq!(counts(&bounded), [("a".to_owned(), vec![(20_000, 1)])]);
        assert!(
            s.query_histograms(&host_selector("a"), Tier::Raw, 0, 1)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn stores_queries_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStorage::open(dir.path()).unwrap();
            let out = s
                .append(
                    &batch("ag", "a", 1, &[("cpu", 1_000, 1.0), ("mem", 1_000, 5.0)]),
                    10,
                )
                .unwrap();
            assert_eq!(
                out,
                AppendOutcome::Stored {
                    acked_through: 1,
                    out_of_order: 0
                }
            );
            s.append(&batch("ag", "a", 2, &[("cpu", 2_000, 2.0)]), 20)
                .unwrap();
            s.append(&batch("bg", "b", 1, &[("cpu", 1_500, 9.0)]), 30)
                .unwrap();
        }
        let s = RocksStorage::open(dir.path()).unwrap();
        let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(*got[0].0, key("cpu", "a"));
        assert_eq!(
            got[0].1,
            vec![
                Point {
                    timestamp_ms: 1_000,
                    value: 1.0
                },
                Point {
                    timestamp_ms: 2_000,
                    value: 2.0
                }
            ]
        );
        let latest = s.latest(&host_selector("a")).unwrap();
        assert_eq!(
            latest[0].1,
            Point {
                timestamp_ms: 2_000,
                value: 2.0
            }
        );
        let hosts = s.hosts();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].info.last_seen_ms, 20);
        assert_eq!(hosts[0].series_count, 2);
        // A new series after reopen gets a fresh id, not one in use.
        s.append(&batch("ag", "a", 3, &[("disk", 3_000, 7.0)]), 40)
            .unwrap();
        assert_eq!(s.series(&host_selector("a")).len(), 3);
        assert_eq!(
            s.query_range(&host_selector("a"), 0, 5_000).unwrap()[0]
                .1
                .len(),
            2
        );
    }

    #[test]
    fn replayed_batch_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        s.append(&batch("ag", "a", 5, &[("cpu", 1_000, 1.0)]), 0)
            .unwrap();
        let again = s
            .append(&batch("ag", "a", 5, &[("cpu", 1_000, 99.0)]), 0)
            .unwrap();
        assert_eq!(again, AppendOutcome::Replay { acked_through: 5 });
        let older = s
            .append(&batch("ag", "a", 3, &[("cpu", 500, 3.0)]), 0)
            .unwrap();
        assert_eq!(older, AppendOutcome::Replay { acked_through: 5 });
        let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
        assert_eq!(
            got[0].1,
            vec![Point {
                timestamp_ms: 1_000,
                value: 1.0
            }]
        );
        drop(s);
        let s = RocksStorage::open(dir.path()).unwrap();
        let after_reopen = s.append(&batch("ag", "a", 5, &[]), 0).unwrap();
        assert_eq!(after_reopen, AppendOutcome::Replay { acked_through: 5 });
    }

    #[test]
    fn range_bounds_are_inclusive_and_negative_times_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        let pts = [
            ("m", -5, 0.0),
            ("m", 0, 1.0),
            ("m", 10, 2.0),
            ("m", 20, 3.0),
        ];
        s.append(&batch("ag", "a", 1, &pts), 0).unwrap();
        let got = s.query_range(&host_selector("a"), 0, 10).unwrap();
        let ts: Vec<i64> = got[0].1.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(ts, vec![0, 10]);
        let all = s
            .query_range(&host_selector("a"), i64::MIN, i64::MAX)
            .unwrap();
        let ts: Vec<i64> = all[0].1.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(ts, vec![-5, 0, 10, 20]);
    }

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    /// A clock the test moves by hand.
    fn manual_clock(start: i64) -> (Arc<std::sync::atomic::AtomicI64>, Clock) {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(start));
        let read = now.clone();
        (now, Arc::new(move || read.load(Ordering::SeqCst)))
    }

    /// Points (raw) and buckets (rollups) of host "a" per tier after
    /// moving the clock to `now` and compacting.
    fn tier_counts_at(
        s: &RocksStorage,
        clock: &std::sync::atomic::AtomicI64,
        now: i64,
    ) -> (usize, usize, usize) {
        clock.store(now, Ordering::SeqCst);
        s.compact();
        (
            count(s, Tier::Raw),
            count(s, Tier::Minute),
            count(s, Tier::Hour),
        )
    }

    fn count(s: &RocksStorage, tier: Tier) -> usize {
        let sel = host_selector("a");
        match tier {
            Tier::Raw => s
                .query_range(&sel, i64::MIN, i64::MAX)
                .unwrap()
                .iter()
                .map(|(_, p)| p.len())
                .sum(),
            t => s
                .query_summaries(&sel, t, i64::MIN / 2, i64::MAX / 2)
                .unwrap()
                .iter()
                .map(|(_, b)| b.len())
                .sum(),
        }
    }

    #[test]
    fn each_tier_drops_data_older_than_its_retention_at_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_000 * DAY;
        let (clock, read_clock) = manual_clock(t0);
        let retention = Retention {
            raw: Duration::from_secs(15 * 86_400),
            minute: Duration::from_secs(90 * 86_400),
            hour: Duration::from_secs(730 * 86_400),
        };
        let s = RocksStorage::open_with(dir.path(), retention, read_clock).unwrap();
        // Two hours of one point a minute, then everything written out.
        let pts: Vec<(&str, i64, f64)> =
            (0..120).map(|i| ("m", t0 + i * 60_000, i as f64)).collect();
        s.append(&batch("ag", "a", 1, &pts), t0).unwrap();
        s.flush_heads(Duration::ZERO).unwrap();
        let all = (
            count(&s, Tier::Raw),
            count(&s, Tier::Minute),
            count(&s, Tier::Hour),
        );
        assert_eq!(all, (120, 120, 2));

        assert_eq!(tier_counts_at(&s, &clock, t0 + 14 * DAY), all);
        assert_eq!(tier_counts_at(&s, &clock, t0 + 16 * DAY), (0, 120, 2));
        assert_eq!(tier_counts_at(&s, &clock, t0 + 91 * DAY), (0, 0, 2));
        assert_eq!(tier_counts_at(&s, &clock, t0 + 731 * DAY), (0, 0, 0));
    }

    #[test]
    fn data_dir_plateaus_under_constant_load() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_000 * DAY;
        let (clock, read_clock) = manual_clock(t0);
        let retention = Retention {
            raw: Duration::from_secs(2 * 3600),
            minute: Duration::from_secs(4 * 3600),
            hour: Duration::from_secs(8 * 3600),
        };
        let s = RocksStorage::open_with(dir.path(), retention, read_clock).unwrap();
        let metrics: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let mut seq = 0;
        let mut sizes = Vec::new();
        // 24 simulated hours of 50 series at one point per 10 s, with the
        // clock following the data and a compaction every simulated hour.
        for hour in 0..24 {
            for step in 0..360 {
                let t = t0 + hour * HOUR + step * 10_000;
                let pts: Vec<(&str, i64, f64)> = metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.as_str(), t, ((step + i as i64) % 17) as f64))
                    .collect();
                seq += 1;
                s.append(&batch("ag", "a", seq, &pts), t).unwrap();
            }
            clock.store(t0 + (hour + 1) * HOUR, Ordering::SeqCst);
            s.flush_heads(Duration::ZERO).unwrap();
            s.compact();
            sizes.push(s.stats().tier_disk_bytes.iter().sum::<u64>());
        }
        // Everything is kept for 8 h at most: from then on the size is flat
        // (within compaction noise), not growing with the hours written.
        let (at_12h, at_24h) = (sizes[11], sizes[23]);
        assert!(at_12h > 0);
        assert!(
            (at_24h as f64) < at_12h as f64 * 1.3,
            "sizes per hour: {sizes:?}"
        );
    }

    #[test]
    fn tiered_queries_equal_raw_aggregates() {
        use crate::query::aggregate::{self, Aggregation};
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        let mut rng = fastrand::Rng::with_seed(11);
        let t0 = 1_000 * DAY + 1_234;
        let mut seq = 0;
        // Three series, irregular 1-20 s spacing over ~5 hours; part of it
        // written out (rollups), the tail still in the heads.
        for m in ["a", "b", "c"] {
            let mut t = t0;
            let mut v = 50.0;
            let mut pts = Vec::new();
            while t < t0 + 5 * HOUR {
                t += rng.i64(1_000..20_000);
                v += rng.f64() - 0.5;
                pts.push((m, t, if rng.u8(0..10) == 0 { -v } else { v }));
            }
            for part in pts.chunks(300) {
                seq += 1;
                s.append(&batch("ag", "a", seq, part), 0).unwrap();
            }
        }
        let sel = host_selector("a");
        for (tier, step) in [
            (Tier::Minute, 60_000),
            (Tier::Minute, 300_000),
            (Tier::Hour, HOUR),
            (Tier::Hour, 2 * HOUR),
        ] {
            let (start, end) = (t0 - t0 % step, t0 + 6 * HOUR - 1);
            let raw = s.query_range(&sel, start, end).unwrap();
            let rolled = s.query_summaries(&sel, tier, start, end).unwrap();
            assert_eq!(raw.len(), 3);
            assert_eq!(rolled.len(), 3);
            for agg in [
                Aggregation::Avg,
                Aggregation::Min,
                Aggregation::Max,
                Aggregation::Sum,
                Aggregation::Count,
                Aggregation::Last,
            ] {
                let from_raw = aggregate::bucket(raw.iter().map(|(_, p)| p.as_slice()), step, agg);
                let from_tier =
                    aggregate::rebucket(rolled.iter().map(|(_, b)| b.as_slice()), step, agg);
                assert_eq!(from_raw.len(), from_tier.len(), "{tier:?} {step} {agg:?}");
                for (r, t) in from_raw.iter().zip(&from_tier) {
                    assert_eq!(r.timestamp_ms, t.timestamp_ms);
                    let tolerance = 1e-9 * r.value.abs().max(1.0);
                    assert!(
                        (r.value - t.value).abs() <= tolerance,
                        "{tier:?} step {step} {agg:?} at {}: raw {} tier {}",
                        r.timestamp_ms,
                        r.value,
                        t.value
                    );
                }
            }
            s.flush_heads(Duration::ZERO).unwrap();
        }
    }

    #[test]
    fn points_not_newer_than_the_series_newest_are_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        s.append(
            &batch("ag", "a", 1, &[("m", 1_000, 1.0), ("m", 2_000, 2.0)]),
            0,
        )
        .unwrap();
        let out = s
            .append(
                &batch(
                    "ag",
                    "a",
                    2,
                    &[("m", 2_000, 9.0), ("m", 1_500, 9.0), ("m", 3_000, 3.0)],
                ),
                0,
            )
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome::Stored {
                acked_through: 2,
                out_of_order: 2
            }
        );
        // Also against points already written out, and after a reopen.
        s.flush_heads(Duration::ZERO).unwrap();
        drop(s);
        let s = RocksStorage::open(dir.path()).unwrap();
        let out = s
            .append(&batch("ag", "a", 3, &[("m", 3_000, 7.0)]), 0)
            .unwrap();
        assert_eq!(
            out,
            AppendOutcome::Stored {
                acked_through: 3,
                out_of_order: 1
            }
        );
        let values: Vec<f64> = s.query_range(&host_selector("a"), 0, 10_000).unwrap()[0]
            .1
            .iter()
            .map(|p| p.value)
            .collect();
        assert_eq!(values, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn ingest_log_is_replayed_at_open_and_truncated_once_written() {
        let dir = tempfile::tempdir().unwrap();
        let pts: Vec<(&str, i64, f64)> = (0..500).map(|i| ("m", i * 1_000, i as f64)).collect();
        {
            let s = RocksStorage::open(dir.path()).unwrap();
            s.append(&batch("ag", "a", 1, &pts[..250]), 0).unwrap();
            s.append(&batch("ag", "a", 2, &pts[250..]), 0).unwrap();
            // Dropped without flushing: the open chunk lives only in the log.
        }
        let s = RocksStorage::open(dir.path()).unwrap();
        let stored = |s: &RocksStorage| -> Vec<i64> {
            s.query_range(&host_selector("a"), i64::MIN, i64::MAX)
                .unwrap()[0]
                .1
                .iter()
                .map(|p| p.timestamp_ms)
                .collect()
        };
        let expected: Vec<i64> = pts.iter().map(|p| p.1).collect();
        assert_eq!(stored(&s), expected);
        assert!(s.log_records() > 0);
        // Chunks younger than the age limit stay open (also when the limit
        // is longer than the time since boot) and keep their record: the
        // open chunk holds points 480..500, all from the second batch; the
        // first batch's points are all in written chunks.
        s.flush_heads(Duration::from_secs(100 * 365 * 86_400))
            .unwrap();
        assert_eq!(s.log_records(), 1);
        assert_eq!(stored(&s), expected);
        s.flush_heads(Duration::ZERO).unwrap();
        assert_eq!(s.log_records(), 0);
        drop(s);
        let s = RocksStorage::open(dir.path()).unwrap();
        assert_eq!(stored(&s), expected);
        assert_eq!(
            s.latest(&host_selector("a")).unwrap()[0].1,
            Point {
                timestamp_ms: 499_000,
                value: 499.0
            }
        );
    }

    #[test]
    fn parallel_agents_and_readers_see_every_point_exactly_once() {
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(RocksStorage::open(dir.path()).unwrap());
        let metrics: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let done = Arc::new(AtomicBool::new(false));
        // Readers: a series' point count never goes down while chunks are
        // sealed and written under them (a point is in the head or in a
        // written chunk, never in neither), and never exceeds what was sent.
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, done) = (s.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut seen: HashMap<String, usize> = HashMap::new();
                    let mut reads = 0;
                    while !done.load(Ordering::SeqCst) {
                        let all = Selector {
                            metric: Some("m7".into()),
                            matchers: vec![],
                        };
                        for (key, points) in s.query_range(&all, i64::MIN, i64::MAX).unwrap() {
                            let host = key.labels.get("host").unwrap().to_owned();
                            let before = seen.insert(host.clone(), points.len()).unwrap_or(0);
                            assert!(
                                points.len() >= before,
                                "{host}: {before} then {}",
                                points.len()
                            );
                            assert!(points.len() <= 300);
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let writers: Vec<_> = (0..8)
            .map(|agent| {
                let (s, metrics) = (s.clone(), metrics.clone());
                std::thread::spawn(move || {
                    let host = format!("h{agent}");
                    for seq in 1..=300u64 {
                        let pts: Vec<(&str, i64, f64)> = metrics
                            .iter()
                            .map(|m| (m.as_str(), seq as i64 * 1_000, seq as f64))
                            .collect();
                        let b = batch(&format!("a{agent}"), &host, seq, &pts);
                        let out = s.append(&b, 0).unwrap();
                        assert_eq!(out.acked_through(), seq);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        for agent in 0..8 {
            let got = s
                .query_range(&host_selector(&format!("h{agent}")), i64::MIN, i64::MAX)
                .unwrap();
            assert_eq!(got.len(), 50);
            assert!(got.iter().all(|(_, p)| p.len() == 300));
        }
    }

    #[test]
    fn a_data_dir_of_an_older_layout_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            DB::open_cf(&opts, dir.path(), ["samples"]).unwrap();
        }
        let err = RocksStorage::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("older Nightjar storage layout"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn series_record_round_trips() {
        let k = SeriesKey {
            metric: "disk_used_percent".into(),
            labels: Labels::from_pairs(vec![
                ("mountpoint".into(), "/".into()),
                ("device".into(), "/dev/vda".into()),
                ("empty".into(), "".into()),
            ])
            .unwrap(),
        };
        assert_eq!(decode_series(&encode_series(&k)), Some(k));
    }

    #[test]
    fn unwritable_data_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad = file.join("data");
        let err = RocksStorage::open(&bad).err().unwrap().to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
}
