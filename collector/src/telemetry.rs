//! The collector's own counters, and the events that bump them.
//!
//! Each notable event is a struct whose `emit` both counts and logs, so a
//! log line and its counter never disagree. Logs of events that can repeat
//! per sample are rate-limited. `self_metrics` stores these counters as
//! series of the collector's own host.

use std::sync::atomic::{AtomicU64, Ordering};

use nightjar_common::log_limit::RateLimitedLog;

use nightjar_model::validate::Rejection;

/// Counters of the collector's ingest path.
#[derive(Default)]
pub struct IngestCounters {
    /// Batches stored (`collector_batches_stored_total`).
    pub batches_stored: AtomicU64,
    /// Batches recognised as replays and not stored again
    /// (`collector_batches_replayed_total`).
    pub batches_replayed: AtomicU64,
    /// Batches refused whole for a bad header field (seq, interval, ids)
    /// (`collector_batches_refused_total`).
    pub batches_refused: AtomicU64,
    /// Samples stored (`collector_samples_stored_total`).
    pub samples_stored: AtomicU64,
    /// remote_write requests refused whole: undecodable bodies
    /// (`collector_remote_write_requests_refused_total`).
    pub remote_write_refused: AtomicU64,
    /// Samples rejected by validation (`collector_samples_rejected_total`).
    pub samples_rejected: AtomicU64,
    /// The same, by reason (indexed like [`Rejection::REASONS`]).
    pub samples_rejected_by_reason: [AtomicU64; Rejection::REASONS.len()],
    /// Rejections are logged at most every 10 s.
    rejection_log: RateLimitedLog<10>,
    /// The remote_write senders' figures, by endpoint (set at start).
    pub remote_write: std::sync::OnceLock<crate::remote_write::send::SenderFigures>,
}

/// Samples of one batch failed validation and were dropped.
pub struct SamplesRejected<'a> {
    /// The batch's host.
    pub host: &'a str,
    /// The batch's seq.
    pub seq: u64,
    /// The rejections, in sample order.
    pub rejections: &'a [Rejection],
}

impl SamplesRejected<'_> {
    /// Counts the rejections and logs them, at most once every 10 s.
    pub fn emit(&self, counters: &IngestCounters) {
        let n = self.rejections.len() as u64;
        let total = counters.samples_rejected.fetch_add(n, Ordering::Relaxed) + n;
        for r in self.rejections {
            counters.samples_rejected_by_reason[r.reason_index()].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(first) = self.rejections.first()
            && let Some(lines_held_back) = counters.rejection_log.due()
        {
            tracing::warn!(
                host = self.host,
                seq = self.seq,
                rejected = n,
                rejected_total = total,
                reason = %first,
                lines_held_back,
                "rejected samples (logged at most every 10s)"
            );
        }
    }
}
