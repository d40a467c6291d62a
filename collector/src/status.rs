//! What the collector's HTTP status port reports: healthy while the alert
//! sweep keeps completing (the same liveness the systemd watchdog sees),
//! storage takes writes and every alert change is durable; and the
//! collector's own metrics, the figures of `self_metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use nightjar_common::status_http::{MetricLine, StatusSource};

use crate::auth::AuthLog;
use crate::self_metrics::{AlertFigures, Figures, batch};
use crate::telemetry::IngestCounters;
use nightjar_alerting::alerter::{Alerter, now_ms};
use nightjar_storage::Storage;

/// A sweep older than this makes the collector unhealthy.
pub const SWEEP_STALE_MS: i64 = 10_000;

/// The collector's status.
pub struct CollectorStatus<S> {
    /// The collector's name (`host` label of its metrics).
    pub name: String,
    /// Storage, for its figures.
    pub storage: Arc<S>,
    /// Ingest counters.
    pub counters: Arc<IngestCounters>,
    /// Alerting.
    pub alerter: Arc<Alerter>,
    /// Refusal counters.
    pub auth_log: Arc<AuthLog>,
    /// When the alert sweep last completed (ms; 0 = not yet).
    pub last_sweep_ms: Arc<AtomicI64>,
}

impl<S: Storage> StatusSource for CollectorStatus<S> {
    fn health(&self) -> Result<(), String> {
        judge(self.last_sweep_ms.load(Ordering::Relaxed), now_ms())?;
        // Writes failing (a full or broken disk): agents keep their data
        // in their spools, pages wait in memory; an operator must act.
        self.storage
            .write_health()
            .map_err(|e| format!("storage: {e}"))?;
        if !self.alerter.store_writable() {
            return Err(
                "alert store: writes fail; alert changes and their notifications wait in memory"
                    .into(),
            );
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<MetricLine> {
        let now = now_ms();
        let figures = Figures {
            storage: self.storage.stats(),
            hosts: self.storage.hosts().len(),
            samples_per_second: None,
            alerts: Some(AlertFigures::of(&self.alerter, now)),
            auth_refused: self.auth_log.counts(),
        };
        let b = batch(&self.name, 0, now, Duration::ZERO, &self.counters, &figures);
        b.samples
            .into_iter()
            .map(|s| {
                let labels = s
                    .series
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (s.series.metric, labels, s.point.value)
            })
            .collect()
    }
}

/// Healthy while the last sweep is recent.
fn judge(last_sweep_ms: i64, now: i64) -> Result<(), String> {
    if last_sweep_ms == 0 {
        return Err("starting: no alert sweep has completed yet".into());
    }
    let age = now - last_sweep_ms;
    if age > SWEEP_STALE_MS {
        return Err(format!(
            "the alert sweep last completed {} s ago",
            age / 1000
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn healthy_while_the_sweep_is_recent() {
        assert!(super::judge(0, 5).unwrap_err().starts_with("starting"));
        assert_eq!(super::judge(1_000, 11_000), Ok(()));
        assert_eq!(
            super::judge(1_000, 11_001),
            Err("the alert sweep last completed 10 s ago".into())
        );
    }
}
