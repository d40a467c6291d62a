//! The storage interface the collector's ingest, query and status paths use.
//!
//! Architecture invariant: only `storage/rocks.rs` names RocksDB. Everything
//! else talks to [`Storage`].

pub mod chunk;
pub mod head;
pub mod index;
pub mod ingest_log;
pub mod rocks;
pub mod rollup;
pub mod varint;

pub use rollup::Tier;

use crate::histogram::Histogram;
use crate::model::{Batch, HostInfo, Point, SeriesKey, SharedKey, Summary};
use crate::selector::Selector;

/// A series with the summaries of its buckets (bucket start ms, summary).
pub type SeriesSummaries = (SharedKey, Vec<(i64, Summary)>);

/// A histogram series with its histograms (timestamp or bucket start ms).
pub type SeriesHistograms = (SharedKey, Vec<(i64, Histogram)>);

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Series in the index.
    pub series: u64,
    /// Bytes of all files in the data directory.
    pub disk_bytes: u64,
    /// Bytes of the table files of each tier: raw, 1m, 1h (histograms included).
    pub tier_disk_bytes: [u64; 3],
    /// Bytes of the ingest log's table files.
    pub ingest_log_bytes: u64,
    /// Compactions running now.
    pub compactions_running: u64,
    /// 1 if RocksDB estimates that compaction is needed.
    pub compaction_pending: u64,
    /// Time writes were delayed or stopped by RocksDB since open (µs).
    pub write_stall_micros: u64,
    /// Bytes written by compactions since open.
    pub compaction_bytes_written: u64,
}

/// Durable time-series storage.
pub trait Storage: Send + Sync + 'static {
    /// Stores a batch durably, exactly once per (agent id, seq).
    ///
    /// Architecture invariant: when this returns `Ok`, the batch survives a
    /// crash (SIGKILL, power loss); callers ack only after it returns.
    /// `now_ms` is the collector's clock, recorded as the host's last contact.
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError>;

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

    /// The newest point of each matching series.
    fn latest(&self, selector: &Selector) -> Result<Vec<(SharedKey, Point)>, StorageError>;

    /// Every host that has sent a batch, sorted by name.
    fn hosts(&self) -> Vec<HostSummary>;

    /// The highest seq stored for `agent_id` (0 if none). A batch at or
    /// below it is a replay.
    fn high_water(&self, agent_id: &str) -> u64;

    /// Whether the series is stored.
    fn series_exists(&self, key: &SeriesKey) -> bool;

    /// Series of `host`, and series in total.
    fn series_counts(&self, host: &str) -> (u64, u64);

    /// Size figures (reads the data directory; call it seconds apart, not per batch).
    fn stats(&self) -> StorageStats;
}
