//! The sampling loop: on every interval boundary, sample the host, label
//! the samples, give the batch a durable sequence number and queue it.
//!
//! It runs on its own thread so that nothing on the network side (a slow or
//! absent collector) can delay a sample: a spool push never waits for the network.
//! Ticks are aligned to multiples of the interval on the wall clock (as
//! Telegraf's `round_interval`), so the series of all hosts line up, and
//! the batch's timestamp is the boundary itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::convert::{BatchHeader, batch_to_wire};
use crate::exposition::LatestHostSamples;
use crate::queue::BatchQueue;
use crate::sample::{AppSample, AppSource};
use crate::sampler::HostSampler;
use crate::state::AgentState;
use crate::systemd_units::SystemdUnits;
use crate::telemetry::{AgentCounters, SpoolDropped};

/// Everything the sampling loop needs.
pub struct SamplingLoop {
    /// The host sampler.
    pub sampler: HostSampler,
    /// Sequence numbers.
    pub state: AgentState,
    /// Identity and static labels for every batch.
    pub header: BatchHeader,
    /// Sampling interval.
    pub interval: Duration,
    /// Where batches go.
    pub queue: Arc<dyn BatchQueue>,
    /// Self-metrics.
    pub counters: Arc<AgentCounters>,
    /// systemd unit states, polled on their own thread.
    pub systemd: SystemdUnits,
    /// systemd's watchdog timeout (`WatchdogSec=`), if any: the loop pings
    /// at least twice per timeout while it waits, and after every sample.
    pub watchdog: Option<Duration>,
    /// Reloaded settings (SIGHUP), applied before the next sample.
    pub reloads: Receiver<Reload>,
    /// Application metrics (statsd, synthetic checks), collected on every tick.
    pub app_sources: Vec<Arc<dyn AppSource>>,
    /// Where the host samples of each pass are kept for `/metrics`.
    pub latest: Arc<LatestHostSamples>,
}

/// What a SIGHUP can change without a restart.
pub struct Reload {
    /// Static labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Disks, interfaces and watched processes.
    pub selection: crate::sampler::Selection,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The next multiple of `interval_ms` strictly after `now_ms`.
pub fn next_boundary(now_ms: u64, interval_ms: u64) -> u64 {
    (now_ms / interval_ms + 1) * interval_ms
}

impl SamplingLoop {
    /// Samples on every boundary until `stop` receives or disconnects.
    pub fn run(mut self, stop: Receiver<()>) {
        let interval_ms = self.interval.as_millis() as u64;
        let mut last_duration = 0.0;
        let mut announced = false;
        loop {
            let tick = next_boundary(wall_ms(), interval_ms);
            // Wait for the boundary, in slices short enough for the watchdog:
            // waiting is not being stuck, sampling for too long is.
            loop {
                let now = wall_ms();
                if now >= tick {
                    break;
                }
                let mut wait = Duration::from_millis(tick - now);
                if let Some(watchdog) = self.watchdog {
                    wait = wait.min(watchdog / 2);
                }
                match stop.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                if self.watchdog.is_some() {
                    nightjar_common::systemd::watchdog();
                }
            }
            while let Ok(reload) = self.reloads.try_recv() {
                self.header.labels = reload.labels;
                self.sampler.set_selection(reload.selection);
                tracing::info!("reloaded labels, disks, interfaces and watched processes");
            }
            let started = Instant::now();
            let mut samples = self.sampler.sample();
            samples.extend(self.systemd.samples());
            self.latest.set(&samples);
            let app: Vec<AppSample> = self
                .app_sources
                .iter()
                .flat_map(|source| source.collect(self.interval))
                .collect();
            self.counters
                .samples
                .fetch_add((samples.len() + app.len()) as u64, Ordering::Relaxed);
            let (queued, queued_bytes) = self.queue.size();
            samples.extend(self.counters.samples(queued, queued_bytes, last_duration));
            last_duration = started.elapsed().as_secs_f64();

            let seq = match self.state.next_seq() {
                Ok(seq) => seq,
                Err(error) => {
                    // Without a durable seq the batch could be mistaken for a replay.
                    tracing::error!(%error, "cannot reserve a sequence number; skipping this interval");
                    continue;
                }
            };
            let n_samples = samples.len() + app.len();
            let batch = batch_to_wire(&self.header, seq, tick as i64, samples, app);
            let outcome = self.queue.push(batch);
            // Logged after the push: a logged batch is in the spool.
            if !outcome.unspooled {
                tracing::debug!(seq, timestamp_ms = tick, n_samples, "batch queued");
            }
            self.counters
                .last_sample_ms
                .store(tick as i64, Ordering::Relaxed);
            if !announced {
                announced = true;
                let interval = nightjar_common::duration::format(self.interval);
                nightjar_common::systemd::ready(&format!("sampling every {interval}"));
                tracing::info!("first sample spooled; ready");
            }
            if outcome.dropped_batches > 0 {
                SpoolDropped {
                    batches: outcome.dropped_batches,
                    bytes: outcome.dropped_bytes,
                }
                .emit(&self.counters);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundaries_are_strictly_ahead_and_aligned() {
        assert_eq!(super::next_boundary(0, 1_000), 1_000);
        assert_eq!(super::next_boundary(999, 1_000), 1_000);
        assert_eq!(super::next_boundary(1_000, 1_000), 2_000);
        assert_eq!(super::next_boundary(12_345, 10_000), 20_000);
    }
}
