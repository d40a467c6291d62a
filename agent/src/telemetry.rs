//! The agent's own counters, reported as samples through the same pipeline
//! as host metrics (metric names in docs/metrics.md), and the events that
//! bump them. Each event's `emit` both counts and logs, rate-limited where
//! it can repeat every interval.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nightjar_common::log_limit::RateLimitedLog;

use crate::sample::Sample;

/// Counters shared by the sampling loop and the transport.
#[derive(Default)]
pub struct AgentCounters {
    /// `agent_samples_total`: samples taken.
    pub samples: AtomicU64,
    /// `agent_batches_sent_total`: batches written to a collector stream
    /// (resends count again).
    pub batches_sent: AtomicU64,
    /// `agent_batches_acked_total`: batches removed from the queue by acks.
    pub batches_acked: AtomicU64,
    /// `agent_spool_dropped_batches_total`: batches dropped because the
    /// spool was full (or could not be written).
    pub spool_dropped_batches: AtomicU64,
    /// `agent_spool_write_failures_total`: batches that could not be
    /// written to the spool (full or failing disk); lost, and counted in
    /// the dropped batches too.
    pub spool_write_failures: AtomicU64,
    /// `agent_spool_corrupt_records_total`: damaged spool records skipped.
    pub spool_corrupt_records: AtomicU64,
    /// `agent_reconnects_total`: connection attempts after a failure.
    pub reconnects: AtomicU64,
    /// `agent_samples_rejected_total`: samples the collector refused.
    pub samples_rejected: AtomicU64,
    /// `agent_statsd_packets_total`: statsd datagrams received.
    pub statsd_packets: AtomicU64,
    /// `agent_statsd_metrics_total`: statsd values aggregated.
    pub statsd_metrics: AtomicU64,
    /// `agent_statsd_malformed_total`: statsd lines skipped as malformed.
    pub statsd_malformed: AtomicU64,
    /// `agent_statsd_series`: statsd series held at the last flush.
    pub statsd_series: AtomicU64,
    /// `agent_foreign_acks_total`: acks ignored because they named a seq
    /// above any this agent sent (its id is in use elsewhere: a cloned
    /// state dir, or a client sending under it); each renews the agent id.
    pub foreign_acks: AtomicU64,
    /// When the last batch was spooled (ms since the epoch; 0 = none yet),
    /// for the HTTP health check.
    pub last_sample_ms: std::sync::atomic::AtomicI64,
    drop_log: RateLimitedLog<60>,
    reject_log: RateLimitedLog<60>,
    corrupt_log: RateLimitedLog<60>,
}

impl AgentCounters {
    /// The counters as samples, plus the spool gauges and the duration of
    /// the last sampling pass.
    pub fn samples(
        &self,
        spool_batches: usize,
        spool_bytes: u64,
        sample_seconds: f64,
    ) -> Vec<Sample> {
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64;
        vec![
            Sample::new("agent_samples_total", c(&self.samples)),
            Sample::new("agent_batches_sent_total", c(&self.batches_sent)),
            Sample::new("agent_batches_acked_total", c(&self.batches_acked)),
            Sample::new("agent_foreign_acks_total", c(&self.foreign_acks)),
            Sample::new(
                "agent_spool_dropped_batches_total",
                c(&self.spool_dropped_batches),
            ),
            Sample::new(
                "agent_spool_write_failures_total",
                c(&self.spool_write_failures),
            ),
            Sample::new(
                "agent_spool_corrupt_records_total",
                c(&self.spool_corrupt_records),
            ),
            Sample::new("agent_reconnects_total", c(&self.reconnects)),
            Sample::new("agent_samples_rejected_total", c(&self.samples_rejected)),
            Sample::new("agent_statsd_packets_total", c(&self.statsd_packets)),
            Sample::new("agent_statsd_metrics_total", c(&self.statsd_metrics)),
            Sample::new("agent_statsd_malformed_total", c(&self.statsd_malformed)),
            Sample::new("agent_statsd_series", c(&self.statsd_series)),
            Sample::new("agent_spool_batches", spool_batches as f64),
            Sample::new("agent_spool_bytes", spool_bytes as f64),
            Sample::new("agent_sample_duration_seconds", sample_seconds),
        ]
    }
}

/// The spool was full and dropped its oldest batches.
pub struct SpoolDropped {
    /// Batches dropped.
    pub batches: u64,
    /// Their encoded bytes.
    pub bytes: u64,
}

impl SpoolDropped {
    /// Counts, and logs at most once a minute.
    pub fn emit(&self, counters: &AgentCounters) {
        let total = counters
            .spool_dropped_batches
            .fetch_add(self.batches, Ordering::Relaxed)
            + self.batches;
        if counters.drop_log.due().is_some() {
            tracing::warn!(
                dropped_batches = self.batches,
                dropped_bytes = self.bytes,
                dropped_total = total,
                "spool full: dropped the oldest unacked batches (logged at most once a minute)"
            );
        }
    }
}

/// The collector acked a batch but refused some of its samples.
pub struct SamplesRejected<'a> {
    /// How many.
    pub count: u64,
    /// The collector's reason for the first.
    pub first_reason: &'a str,
}

impl SamplesRejected<'_> {
    /// Counts, and logs at most once a minute.
    pub fn emit(&self, counters: &AgentCounters) {
        counters
            .samples_rejected
            .fetch_add(self.count, Ordering::Relaxed);
        if counters.reject_log.due().is_some() {
            tracing::warn!(
                rejected = self.count,
                reason = self.first_reason,
                "collector rejected samples (logged at most once a minute)"
            );
        }
    }
}

/// A damaged spool record was found and skipped.
pub struct SpoolRecordCorrupt<'a> {
    /// The segment file.
    pub path: &'a Path,
    /// Byte offset of the damage.
    pub offset: u64,
    /// What check failed.
    pub reason: &'a str,
}

impl SpoolRecordCorrupt<'_> {
    /// Counts, and logs at most once a minute.
    pub fn emit(&self, counters: &AgentCounters) {
        let total = counters
            .spool_corrupt_records
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if counters.corrupt_log.due().is_some() {
            tracing::warn!(
                path = %self.path.display(),
                offset = self.offset,
                reason = self.reason,
                corrupt_total = total,
                "skipped a corrupt spool record (logged at most once a minute)"
            );
        }
    }
}
