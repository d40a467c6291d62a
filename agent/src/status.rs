//! What the agent's HTTP status port reports: healthy while samples keep
//! being spooled (within three intervals), and on `/metrics` the agent's
//! own metrics and the host metrics of the last pass (`exposition`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nightjar_common::status_http::{MetricLine, StatusSource};

use crate::exposition::LatestHostSamples;
use crate::queue::BatchQueue;
use crate::telemetry::AgentCounters;

/// The agent's status.
pub struct AgentStatus {
    /// Self-metric counters (and the last sample time).
    pub counters: Arc<AgentCounters>,
    /// The spool, for its size.
    pub queue: Arc<dyn BatchQueue>,
    /// The sampling interval.
    pub interval: Duration,
    /// The host metrics of the last sampling pass.
    pub latest: Arc<LatestHostSamples>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Healthy when a sample was spooled within three intervals.
fn judge(last_sample_ms: i64, now: i64, interval: Duration) -> Result<(), String> {
    if last_sample_ms == 0 {
        return Err("starting: no sample taken yet".into());
    }
    let age = now - last_sample_ms;
    if age > 3 * interval.as_millis() as i64 {
        return Err(format!("the last sample was spooled {} s ago", age / 1000));
    }
    Ok(())
}

impl StatusSource for AgentStatus {
    fn health(&self) -> Result<(), String> {
        judge(
            self.counters.last_sample_ms.load(Ordering::Relaxed),
            now_ms(),
            self.interval,
        )
    }

    fn metrics(&self) -> Vec<MetricLine> {
        let (batches, bytes) = self.queue.size();
        let mut samples = self.counters.samples(batches, bytes, f64::NAN);
        samples.extend(self.latest.get());
        samples
            .into_iter()
            .filter(|s| !s.value.is_nan())
            .map(|s| {
                let labels = s
                    .labels
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                (s.metric.to_owned(), labels, s.value)
            })
            .collect()
    }

    fn help(&self, name: &str) -> Option<&'static str> {
        crate::exposition::help(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_while_samples_keep_coming() {
        let i = Duration::from_secs(10);
        assert!(judge(0, 1, i).unwrap_err().starts_with("starting"));
        assert_eq!(judge(1_000, 31_000, i), Ok(()));
        assert_eq!(
            judge(1_000, 31_001, i),
            Err("the last sample was spooled 30 s ago".into())
        );
    }
}
