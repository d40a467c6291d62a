//! Nightjar's storage layer: the [`Storage`] trait the collector's ingest,
//! query and status paths use, the engine-neutral codecs of series data
//! (XOR chunks, rollup summaries, the ingest log, the series index),
//! [`memory::MemoryStorage`] for tests, and [`rocks`], the RocksDB
//! implementation of [`Storage`] and of the alerting crate's `AlertStore`.
//!
//! Architecture invariant: only the [`rocks`] module names RocksDB.
//! Everything else talks to [`Storage`] or `AlertStore`.

pub mod chunk;
pub mod forward;
pub mod head;
pub mod index;
pub mod ingest_log;
pub mod memory;
pub mod rocks;
pub mod rollup;
pub mod segment_log;
pub mod series_cache;
pub mod varint;

pub use rollup::Tier;

use std::time::Duration;

use nightjar_model::histogram::Histogram;
use nightjar_model::model::{Batch, HostInfo, Point, SeriesKey, SharedKey, Summary};
use nightjar_model::selector::Selector;

/// A series with the summaries of its buckets (bucket start ms, summary).
pub type SeriesSummaries = (SharedKey, Vec<(i64, Summary)>);

/// A histogram series with its histograms (timestamp or bucket start ms).
pub type SeriesHistograms = (SharedKey, Vec<(i64, Histogram)>);

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
    /// How long `tier` keeps data.
    pub fn of(&self, tier: Tier) -> Duration {
        match tier {
            Tier::Raw => self.raw,
            Tier::Minute => self.minute,
            Tier::Hour => self.hour,
        }
    }
}

/// A failure of the storage layer (I/O, corruption). Messages name the data
/// directory or key involved.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be created or opened.
    #[error("data dir {path}: {reason}")]
    Open {
        /// The data directory.
        path: String,
        /// Why it could not be opened.
        reason: String,
    },
    /// A write or read failed.
    #[error("data dir {path}: {operation}: {reason}")]
    Io {
        /// The data directory.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// The engine's message.
        reason: String,
    },
    /// A batch named a series by a reference this storage never gave out.
    #[error("unknown series reference {reference}")]
    UnknownSeries {
        /// The reference.
        reference: u64,
    },
}

/// What became of an appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batch is durable now.
    Stored {
        /// The agent's new high-water mark (the batch's seq).
        acked_through: u64,
        /// Samples refused because their series already holds a point at
        /// or after their timestamp.
        out_of_order: u32,
    },
    /// The batch's seq is not above the agent's high-water mark: it was
    /// stored before, and nothing was written.
    Replay {
        /// The agent's high-water mark.
        acked_through: u64,
    },
}

impl AppendOutcome {
    /// The sequence number to acknowledge.
    pub fn acked_through(self) -> u64 {
        match self {
            AppendOutcome::Stored { acked_through, .. }
            | AppendOutcome::Replay { acked_through } => acked_through,
        }
    }
}

/// A host as the storage knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSummary {
    /// Last contact and interval.
    pub info: HostInfo,
    /// Number of series with this `host` label.
    pub series_count: u64,
}

/// Figures about the storage itself, for the collector's self-metrics.
/// Engine-neutral: any log-structured engine has files per tier, a log of
/// recent writes, background compaction and writes held back while it
/// catches up; an engine without one of these reports 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Series in the index.
    pub series: u64,
    /// Bytes of all files in the data directory.
    pub disk_bytes: u64,
    /// Bytes of the files of each tier: raw, 1m, 1h (histograms included).
    pub tier_disk_bytes: [u64; 3],
    /// Bytes of the ingest log (batches not yet in chunks).
    pub ingest_log_bytes: u64,
    /// Background compactions running now.
    pub compactions_running: u64,
    /// 1 if the engine has compaction work waiting.
    pub compaction_pending: u64,
    /// Time writes were held back so compaction could catch up, since
    /// open (µs).
    pub write_delay_micros: u64,
    /// Bytes written by compactions since open.
    pub compaction_bytes_written: u64,
    /// Writes that failed since open: batches refused (not acked) and
    /// chunk writes whose chunks were kept for a retry.
    pub write_failures: u64,
}

/// One record of the forward queue: the samples one stored batch hands to
/// the remote_write senders, by series id (a sender resolves each id's
/// series once, with [`ForwardQueue::forward_series`], and keeps it).
#[derive(Clone, Debug)]
pub struct ForwardBatch {
    /// The record's seq (the batch's ingest-log seq): records are read in
    /// seq order, which is store order for every series.
    pub seq: u64,
    /// Float samples: series id, timestamp (ms), value.
    pub floats: Vec<(u64, i64, f64)>,
    /// Histogram samples as their figures (`forward::HISTOGRAM_FIGURES`).
    pub histograms: Vec<(u64, i64, [f64; forward::HISTOGRAM_FIGURES])>,
}

/// The size of the forward queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardSize {
    /// The lowest seq still held (the next to be written when empty).
    pub first: u64,
    /// The seq the next record will get.
    pub next: u64,
    /// Samples held.
    pub samples: u64,
}

/// The durable queue the remote_write senders read (implemented over
/// RocksDB, where the records are written in each batch's synced write).
///
/// Each reader keeps named cursors: (start, end) where `start` is the next
/// record to send and `end`, when above it, the end of the request in
/// flight — saved before that request is sent, so that after a crash the
/// same records go out again as the same request.
pub trait ForwardQueue: Send + Sync + 'static {
    /// Records from `from` on, below `until` if given, whole records until
    /// at least `max_samples` samples; only records no earlier batch is
    /// still being written before (so nothing appears behind a reader).
    /// With `shard = (i, n)`, only the samples of series whose id is `i`
    /// modulo `n` (ids are stable, so a series always falls to one shard),
    /// and `max_samples` counts those.
    fn forward_read(
        &self,
        from: u64,
        until: Option<u64>,
        max_samples: usize,
        shard: Option<(u64, u64)>,
    ) -> Result<Vec<ForwardBatch>, StorageError>;
    /// The series of each id (None for an id not indexed).
    fn forward_series(&self, ids: &[u64]) -> Vec<Option<SharedKey>>;
    /// The cursor `name`, if saved.
    fn forward_cursor(&self, name: &str) -> Result<Option<(u64, u64)>, StorageError>;
    /// Saves cursor `name`; with `sync`, durably before returning.
    fn set_forward_cursor(
        &self,
        name: &str,
        start: u64,
        end: u64,
        sync: bool,
    ) -> Result<(), StorageError>;
    /// Deletes the records below `seq` (every reader is past them, or the
    /// queue's bound dropped them).
    fn forward_trim(&self, below: u64) -> Result<(), StorageError>;
    /// The queue's size now.
    fn forward_size(&self) -> ForwardSize;
    /// Samples held in records from seq `from` on.
    fn forward_samples_from(&self, from: u64) -> u64;
    /// The lowest seq from which at most `keep` samples are held: where a
    /// reader holding more than its bound must jump to.
    fn forward_cut(&self, keep: u64) -> u64;
}

/// Durable time-series storage.
pub trait Storage: Send + Sync + 'static {
    /// Stores a batch durably, exactly once per (agent id, seq).
    ///
    /// Architecture invariant: when this returns `Ok`, the batch survives a
    /// crash (SIGKILL, power loss); callers ack only after it returns.
    /// `now_ms` is the collector's clock, recorded as the host's last contact.
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError>;

    /// [`Storage::append`] for a sender that keeps `cache` from one of its
    /// batches to the next (one per ingest stream): a storage that gives
    /// series ids finds those of the keys the last batch named in the same
    /// places there, and remembers this batch's. Same durability and
    /// outcome as `append`.
    fn append_cached(
        &self,
        batch: &Batch,
        now_ms: i64,
        cache: &mut series_cache::SeriesCache,
    ) -> Result<AppendOutcome, StorageError> {
        let _ = cache;
        self.append(batch, now_ms)
    }

    /// The series matching `selector`, sorted.
    fn series(&self, selector: &Selector) -> Vec<SeriesKey>;

    /// The points of each matching series with `start_ms <= t <= end_ms`,
    /// in time order. Series without points in the range are left out.
    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError>;

    /// Summaries of the `tier` buckets (not raw) of each matching series
    /// whose start lies in `[bucket(start_ms), bucket(end_ms)]`, in time
    /// order. Series without any are left out.
    fn query_summaries(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError>;

    /// The histograms of each matching series: for [`Tier::Raw`] each
    /// sample with `start_ms <= t <= end_ms`, for a rollup tier the merged
    /// histogram of each bucket whose start lies in
    /// `[bucket(start_ms), bucket(end_ms)]`; in time order. Series without
    /// any are left out.
    fn query_histograms(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError>;

    /// The newest point of each matching series, with the series' id (a
    /// server caches each series' encoded labels by it).
    fn latest(&self, selector: &Selector) -> Result<Vec<(u64, SharedKey, Point)>, StorageError>;

    /// Every host that has sent a batch, sorted by name.
    fn hosts(&self) -> Vec<HostSummary>;

    /// Whether writes succeed now: `Err` names the failure (the data
    /// directory and the engine's message) while the last batch write
    /// failed or chunks wait in memory for a write to succeed. `/healthz`
    /// answers 503 with it.
    fn write_health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The highest seq stored from agent `agent_id` on `host` (0 if none).
    /// A batch of theirs at or below it is a replay. The mark is per (host,
    /// agent id), so a client sending another host's agent id (or a VM
    /// cloned with its state dir) cannot mark that host's batches as
    /// replays.
    fn high_water(&self, host: &str, agent_id: &str) -> u64;

    /// Whether the series is stored.
    fn series_exists(&self, key: &SeriesKey) -> bool;

    /// Series of `host`, and series in total.
    fn series_counts(&self, host: &str) -> (u64, u64);

    /// Size figures (reads the data directory; call it seconds apart, not per batch).
    fn stats(&self) -> StorageStats;
}
