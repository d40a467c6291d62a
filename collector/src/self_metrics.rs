//! The collector's own metrics, stored like any host's: every interval the
//! counters of `telemetry`, the series and host counts and the data
//! directory's size are appended as a batch of host = the collector's name
//! (config `name`, default the host name), so `nightjar query
//! collector_samples_stored_total --host NAME` works like any other query.
//!
//! The batch goes straight to storage (not through ingest) under the agent
//! id `nightjar-collector/NAME`. Its seq is the wall clock in ms, bumped to
//! stay above the previous one, so it keeps increasing across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::{AuthLog, Refusal};
use crate::telemetry::IngestCounters;
use nightjar_alerting::alerter::Alerter;
use nightjar_alerting::state::Level;
use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
use nightjar_model::validate::Rejection;
use nightjar_storage::Storage;

/// The next self-metrics seq: the clock, but always above `last`.
pub fn next_seq(now_ms: u64, last: u64) -> u64 {
    now_ms.max(last + 1)
}

/// Figures sampled for one self-metrics batch besides the counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    /// The storage's own figures.
    pub storage: nightjar_storage::StorageStats,
    /// Hosts known.
    pub hosts: usize,
    /// Samples stored per second since the previous batch (none at first).
    pub samples_per_second: Option<f64>,
    /// Alerting figures (none when alerting is not running).
    pub alerts: Option<AlertFigures>,
    /// Refused calls per reason (in `Refusal::ALL` order).
    pub auth_refused: [u64; 5],
}

/// Alerting's figures for the self-metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertFigures {
    /// Alerts pending (condition met, `for` not yet elapsed).
    pub pending: u64,
    /// Alerts firing at warning.
    pub warning: u64,
    /// Alerts firing at critical.
    pub critical: u64,
    /// Notifications waiting in the outbox.
    pub outbox: u64,
    /// Notifications accepted by hooks since start.
    pub delivered: u64,
    /// Failed delivery attempts since start (retried).
    pub failed: u64,
    /// Notifications refused for good by hooks since start.
    pub dropped: u64,
    /// Notifications the outbox's full policy dropped since start.
    pub outbox_full: u64,
    /// Alert-store writes that failed since start.
    pub store_failures: u64,
}

impl AlertFigures {
    /// Reads the figures of `alerter` at `now`.
    pub fn of(alerter: &Alerter, now: i64) -> AlertFigures {
        let mut f = AlertFigures::default();
        for (alert, _) in alerter.active(now) {
            match alert.state.level {
                None => f.pending += u64::from(alert.state.is_pending()),
                Some(Level::Warning) => f.warning += 1,
                Some(Level::Critical) => f.critical += 1,
            }
        }
        let c = &alerter.counters;
        f.outbox = alerter.outbox_len() as u64;
        f.delivered = c.delivered.load(Ordering::Relaxed);
        f.failed = c.failed.load(Ordering::Relaxed);
        f.dropped = c.dropped.load(Ordering::Relaxed);
        f.outbox_full = c.outbox_full.load(Ordering::Relaxed);
        f.store_failures = c.store_failures.load(Ordering::Relaxed);
        f
    }
}

/// Builds one self-metrics batch.
pub fn batch(
    name: &str,
    seq: u64,
    now_ms: i64,
    interval: Duration,
    counters: &IngestCounters,
    figures: &Figures,
) -> Batch {
    let Figures {
        storage: storage_stats,
        hosts,
        samples_per_second,
        alerts,
        auth_refused,
    } = *figures;
    let sample = |metric: &str, extra: Option<(&str, &str)>, value: f64| {
        let mut pairs = vec![("host".to_owned(), name.to_owned())];
        if let Some((n, v)) = extra {
            pairs.push((n.to_owned(), v.to_owned()));
        }
        Sample {
            series: SeriesKey {
                metric: metric.to_owned(),
                labels: Labels::from_pairs(pairs).expect("distinct label names"),
            },
            point: Point {
                timestamp_ms: now_ms,
                value,
            },
        }
    };
    let c = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64;
    let mut samples = vec![
        sample(
            "collector_batches_stored_total",
            None,
            c(&counters.batches_stored),
        ),
        sample(
            "collector_batches_replayed_total",
            None,
            c(&counters.batches_replayed),
        ),
        sample(
            "collector_batches_refused_total",
            None,
            c(&counters.batches_refused),
        ),
        sample(
            "collector_samples_stored_total",
            None,
            c(&counters.samples_stored),
        ),
        sample(
            "collector_remote_write_requests_refused_total",
            None,
            c(&counters.remote_write_refused),
        ),
        sample("collector_series", None, storage_stats.series as f64),
        sample("collector_hosts", None, hosts as f64),
        sample(
            "collector_disk_bytes",
            None,
            storage_stats.disk_bytes as f64,
        ),
        sample(
            "collector_ingest_log_bytes",
            None,
            storage_stats.ingest_log_bytes as f64,
        ),
        sample(
            "collector_compactions_running",
            None,
            storage_stats.compactions_running as f64,
        ),
        sample(
            "collector_compaction_pending",
            None,
            storage_stats.compaction_pending as f64,
        ),
        sample(
            "collector_compaction_written_bytes_total",
            None,
            storage_stats.compaction_bytes_written as f64,
        ),
        sample(
            "collector_write_stall_seconds_total",
            None,
            storage_stats.write_delay_micros as f64 / 1e6,
        ),
        sample(
            "collector_storage_write_failures_total",
            None,
            storage_stats.write_failures as f64,
        ),
    ];
    if let Some(rate) = samples_per_second {
        samples.push(sample("collector_samples_stored_per_second", None, rate));
    }
    for (tier, bytes) in ["raw", "1m", "1h"]
        .iter()
        .zip(storage_stats.tier_disk_bytes)
    {
        samples.push(sample(
            "collector_tier_disk_bytes",
            Some(("tier", tier)),
            bytes as f64,
        ));
    }
    if let Some(a) = alerts {
        samples.push(sample("collector_alerts_pending", None, a.pending as f64));
        for (severity, n) in [("warning", a.warning), ("critical", a.critical)] {
            samples.push(sample(
                "collector_alerts_firing",
                Some(("severity", severity)),
                n as f64,
            ));
        }
        samples.push(sample(
            "collector_notifications_queued",
            None,
            a.outbox as f64,
        ));
        samples.push(sample(
            "collector_alert_store_write_failures_total",
            None,
            a.store_failures as f64,
        ));
        for (outcome, n) in [
            ("delivered", a.delivered),
            ("failed", a.failed),
            ("dropped", a.dropped),
            ("outbox_full", a.outbox_full),
        ] {
            samples.push(sample(
                "collector_notifications_total",
                Some(("outcome", outcome)),
                n as f64,
            ));
        }
    }
    for (why, n) in Refusal::ALL.iter().zip(auth_refused) {
        samples.push(sample(
            "collector_auth_refused_total",
            Some(("reason", why.as_str())),
            n as f64,
        ));
    }
    for (reason, count) in Rejection::REASONS
        .iter()
        .zip(&counters.samples_rejected_by_reason)
    {
        samples.push(sample(
            "collector_samples_rejected_total",
            Some(("reason", reason)),
            c(count),
        ));
    }
    for (endpoint, rw) in counters.remote_write.get().into_iter().flatten() {
        let at = Some(("endpoint", endpoint.as_str()));
        samples.push(sample(
            "collector_remote_write_samples_pending",
            at,
            c(&rw.pending),
        ));
        samples.push(sample(
            "collector_remote_write_samples_sent_total",
            at,
            c(&rw.sent),
        ));
        samples.push(sample(
            "collector_remote_write_samples_failed_total",
            at,
            c(&rw.failed),
        ));
        for (reason, n) in [
            ("rejected", &rw.dropped_rejected),
            ("queue_full", &rw.dropped_queue_full),
        ] {
            let mut s = sample("collector_remote_write_samples_dropped_total", at, c(n));
            s.series.labels = Labels::from_pairs(vec![
                ("host".to_owned(), name.to_owned()),
                ("endpoint".to_owned(), endpoint.clone()),
                ("reason".to_owned(), reason.to_owned()),
            ])
            .expect("distinct label names");
            samples.push(s);
        }
        samples.push(sample(
            "collector_remote_write_lag_seconds",
            at,
            rw.lag_seconds(now_ms),
        ));
    }
    Batch {
        agent_id: format!("nightjar-collector/{name}"),
        host: name.to_owned(),
        seq,
        interval_ms: interval.as_millis() as u64,
        samples,
        histograms: Vec::new(),
    }
}

/// Appends a self-metrics batch every `interval`, forever.
pub async fn run<S: Storage>(
    name: String,
    interval: Duration,
    storage: Arc<S>,
    counters: Arc<IngestCounters>,
    alerter: Option<Arc<Alerter>>,
    auth_log: Arc<AuthLog>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seq = 0;
    // (samples stored, when) at the previous tick, for the rate.
    let mut previous: Option<(u64, std::time::Instant)> = None;
    loop {
        ticker.tick().await;
        let stored = counters.samples_stored.load(Ordering::Relaxed);
        let now = std::time::Instant::now();
        let samples_per_second = previous.and_then(|(count, at)| {
            let secs = now.duration_since(at).as_secs_f64();
            (secs > 0.0).then(|| stored.saturating_sub(count) as f64 / secs)
        });
        previous = Some((stored, now));
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        last_seq = next_seq(now_ms, last_seq);
        let (store, counters, name) = (storage.clone(), counters.clone(), name.clone());
        let alerter = alerter.clone();
        let auth_refused = auth_log.counts();
        let seq = last_seq;
        let result = tokio::task::spawn_blocking(move || {
            let b = batch(
                &name,
                seq,
                now_ms as i64,
                interval,
                &counters,
                &Figures {
                    storage: store.stats(),
                    hosts: store.hosts().len(),
                    samples_per_second,
                    alerts: alerter
                        .as_deref()
                        .map(|a| AlertFigures::of(a, now_ms as i64)),
                    auth_refused,
                },
            );
            let stored = store.append(&b, now_ms as i64);
            // Rules may watch the collector's own metrics (e.g. a growing outbox).
            if let (Some(alerter), Ok(_)) = (&alerter, &stored) {
                alerter.observe_own(&b, now_ms as i64);
            }
            stored
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot store the collector's own metrics"),
            Err(error) => tracing::warn!(%error, "self-metrics task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_follows_the_clock_but_never_repeats() {
        assert_eq!(next_seq(1_000, 0), 1_000);
        assert_eq!(next_seq(1_000, 1_000), 1_001, "same millisecond");
        assert_eq!(next_seq(900, 1_000), 1_001, "clock stepped back");
    }

    #[test]
    fn batch_carries_counters_and_reasons() {
        let counters = IngestCounters::default();
        counters.samples_stored.store(42, Ordering::Relaxed);
        counters.samples_rejected_by_reason[3].store(2, Ordering::Relaxed);
        let stats = nightjar_storage::StorageStats {
            series: 7,
            disk_bytes: 4096,
            tier_disk_bytes: [100, 20, 3],
            ..Default::default()
        };
        let b = batch(
            "col-1",
            5,
            1_000,
            Duration::from_secs(10),
            &counters,
            &Figures {
                storage: stats,
                hosts: 3,
                samples_per_second: Some(12.5),
                alerts: Some(AlertFigures {
                    store_failures: 0,
                    pending: 1,
                    warning: 2,
                    critical: 3,
                    outbox: 4,
                    delivered: 5,
                    failed: 6,
                    dropped: 7,
                    outbox_full: 8,
                }),
                auth_refused: [0, 1, 0, 3, 0],
            },
        );
        let get = |metric: &str, reason: Option<&str>| {
            b.samples
                .iter()
                .find(|s| s.series.metric == metric && s.series.labels.get("reason") == reason)
                .map(|s| s.point.value)
        };
        assert_eq!(get("collector_samples_stored_total", None), Some(42.0));
        assert_eq!(
            get("collector_samples_rejected_total", Some("foreign_host")),
            Some(2.0)
        );
        assert_eq!(
            get("collector_samples_rejected_total", Some("bad_metric_name")),
            Some(0.0)
        );
        assert_eq!(get("collector_series", None), Some(7.0));
        assert_eq!(get("collector_hosts", None), Some(3.0));
        assert_eq!(get("collector_samples_stored_per_second", None), Some(12.5));
        assert_eq!(get("collector_alerts_pending", None), Some(1.0));
        assert_eq!(get("collector_notifications_queued", None), Some(4.0));
        let labelled = |metric: &str, name: &str, value: &str| {
            b.samples
                .iter()
                .find(|s| s.series.metric == metric && s.series.labels.get(name) == Some(value))
                .map(|s| s.point.value)
        };
        assert_eq!(
            labelled("collector_alerts_firing", "severity", "critical"),
            Some(3.0)
        );
        assert_eq!(
            labelled("collector_notifications_total", "outcome", "failed"),
            Some(6.0)
        );
        let tier = |t: &str| {
            b.samples
                .iter()
                .find(|s| {
                    s.series.metric == "collector_tier_disk_bytes"
                        && s.series.labels.get("tier") == Some(t)
                })
                .map(|s| s.point.value)
        };
        assert_eq!(
            (tier("raw"), tier("1m"), tier("1h")),
            (Some(100.0), Some(20.0), Some(3.0))
        );
        assert!(
            b.samples
                .iter()
                .all(|s| s.series.labels.get("host") == Some("col-1"))
        );
        assert_eq!(b.host, "col-1");
    }
}
