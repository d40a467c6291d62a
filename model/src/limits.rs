//! Ingest limits: what one sample may look like (label count, name and value
//! lengths) and how many series a host and the whole collector may have.
//! A sample over a limit is rejected alone, with a reason naming the limit;
//! existing series keep flowing.

use std::collections::HashSet;

use crate::model::{Batch, Sample, SeriesKey};
use crate::validate::Rejection;

/// The limits, as configured under `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most series one host may have.
    pub max_series_per_host: u64,
    /// Most series in total.
    pub max_series_total: u64,
    /// Most labels on one series, `host` included.
    pub max_labels_per_series: usize,
    /// Longest metric name, in bytes.
    pub max_metric_name_bytes: usize,
    /// Longest label name, in bytes.
    pub max_label_name_bytes: usize,
    /// Longest label value, in bytes.
    pub max_label_value_bytes: usize,
    /// A sample stamped further ahead of the collector's clock is rejected.
    pub max_sample_future: std::time::Duration,
    /// A sample older than this is rejected (it would fall out of raw
    /// retention anyway).
    pub max_sample_age: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series_per_host: 10_000,
            max_series_total: 1_000_000,
            max_labels_per_series: 32,
            max_metric_name_bytes: 256,
            max_label_name_bytes: 128,
            max_label_value_bytes: 1024,
            max_sample_future: std::time::Duration::from_secs(600),
            max_sample_age: std::time::Duration::from_secs(15 * 86_400),
        }
    }
}

impl Limits {
    /// Checks one sample's shape.
    /// Checks a sample's timestamp against the collector's clock `now_ms`.
    pub fn check_time(
        &self,
        metric: &str,
        timestamp_ms: i64,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        let ahead = timestamp_ms.saturating_sub(now_ms);
        let behind = now_ms.saturating_sub(timestamp_ms);
        let what = if ahead > self.max_sample_future.as_millis() as i64 {
            format!(
                "{} ahead of the collector's clock (limit max_sample_future = {})",
                nightjar_common::duration::format(std::time::Duration::from_millis(ahead as u64)),
                nightjar_common::duration::format(self.max_sample_future)
            )
        } else if behind > self.max_sample_age.as_millis() as i64 {
            format!(
                "older than max_sample_age = {}",
                nightjar_common::duration::format(self.max_sample_age)
            )
        } else {
            return Ok(());
        };
        Err(Rejection::TimestampOutOfRange {
            metric: metric.to_owned(),
            timestamp_ms,
            what,
        })
    }

    pub fn check_shape(&self, series: &SeriesKey) -> Result<(), Rejection> {
        let metric = &series.metric;
        if metric.len() > self.max_metric_name_bytes {
            return Err(Rejection::OverLimit {
                metric: metric.clone(),
                what: format!(
                    "metric name is longer than {} bytes",
                    self.max_metric_name_bytes
                ),
                reason: 0,
            });
        }
        if series.labels.len() > self.max_labels_per_series {
            return Err(Rejection::OverLimit {
                metric: metric.clone(),
                what: format!(
                    "{} labels, more than {}",
                    series.labels.len(),
                    self.max_labels_per_series
                ),
                reason: 1,
            });
        }
        for (name, value) in series.labels.iter() {
            if name.len() > self.max_label_name_bytes || value.len() > self.max_label_value_bytes {
                return Err(Rejection::OverLimit {
                    metric: metric.clone(),
                    what: format!(
                        "label {name}: name or value longer than {} / {} bytes",
                        self.max_label_name_bytes, self.max_label_value_bytes
                    ),
                    reason: 2,
                });
            }
        }
        Ok(())
    }

    /// Splits a batch's samples into those admitted and the rejections of
    /// those that would create a series over a series limit. `exists` tells
    /// whether a series is already stored; `host_series` and `total_series`
    /// are the current counts. Checked before the write, so concurrent
    /// batches of one host may overshoot by the new series of one batch each.
    pub fn admit(
        &self,
        samples: Vec<Sample>,
        exists: impl Fn(&SeriesKey) -> bool,
        host_series: u64,
        total_series: u64,
    ) -> (Vec<Sample>, Vec<Rejection>) {
        let mut batch = Batch {
            agent_id: String::new(),
            host: String::new(),
            seq: 0,
            interval_ms: 0,
            samples,
            histograms: Vec::new(),
        };
        let rejected = self.admit_batch(&mut batch, exists, host_series, total_series);
        (batch.samples, rejected)
    }

    /// [`Limits::admit`] for a whole batch: its plain and its histogram
    /// samples count against the same limits. Refused samples are removed
    /// from `batch` and returned as rejections.
    pub fn admit_batch(
        &self,
        batch: &mut Batch,
        exists: impl Fn(&SeriesKey) -> bool,
        host_series: u64,
        total_series: u64,
    ) -> Vec<Rejection> {
        // Even if every sample were a new series, none would cross a limit:
        // skip the per-sample index lookups (the common, hot case).
        let n = (batch.samples.len() + batch.histograms.len()) as u64;
        if host_series + n <= self.max_series_per_host && total_series + n <= self.max_series_total
        {
            return Vec::new();
        }
        let mut admission = Admission {
            limits: self,
            host_series,
            total_series,
            new_series: HashSet::new(),
            rejected: Vec::new(),
        };
        let samples = std::mem::take(&mut batch.samples);
        batch.samples = admission.filter(samples, |s| &s.series, &exists);
        let histograms = std::mem::take(&mut batch.histograms);
        batch.histograms = admission.filter(histograms, |h| &h.series, &exists);
        admission.rejected
    }
}

/// The series-limit check over one batch: the new series admitted so far.
struct Admission<'a> {
    limits: &'a Limits,
    host_series: u64,
    total_series: u64,
    new_series: HashSet<SeriesKey>,
    rejected: Vec<Rejection>,
}

impl Admission<'_> {
    fn filter<T>(
        &mut self,
        items: Vec<T>,
        key: impl Fn(&T) -> &SeriesKey,
        exists: &impl Fn(&SeriesKey) -> bool,
    ) -> Vec<T> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            let series = key(&item);
            if exists(series) || self.new_series.contains(series) {
                kept.push(item);
                continue;
            }
            let n_new = self.new_series.len() as u64;
            let over = if self.host_series + n_new >= self.limits.max_series_per_host {
                Some(format!(
                    "host has {} series, the limit",
                    self.limits.max_series_per_host
                ))
            } else if self.total_series + n_new >= self.limits.max_series_total {
                Some(format!(
                    "collector has {} series, the limit",
                    self.limits.max_series_total
                ))
            } else {
                None
            };
            match over {
                Some(what) => self.rejected.push(Rejection::OverLimit {
                    metric: series.metric.clone(),
                    what: format!("new series refused: {what}"),
                    reason: 3,
                }),
                None => {
                    self.new_series.insert(series.clone());
                    kept.push(item);
                }
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Point;

    fn sample(metric: &str) -> Sample {
        Sample {
            series: SeriesKey::of(metric, &[("host", "h")]),
            point: Point {
                timestamp_ms: 0,
                value: 1.0,
            },
        }
    }

    #[test]
    fn shapes() {
        let limits = Limits {
            max_labels_per_series: 2,
            max_metric_name_bytes: 5,
            max_label_name_bytes: 4,
            max_label_value_bytes: 3,
            ..Limits::default()
        };
        let check = |k: SeriesKey| limits.check_shape(&k).map_err(|r| r.to_string());
        assert!(check(SeriesKey::of("cpu", &[("host", "h"), ("a", "1")])).is_ok());
        assert!(
            check(SeriesKey::of("cpu_usage", &[]))
                .unwrap_err()
                .contains("metric name is longer than 5 bytes")
        );
        assert!(
            check(SeriesKey::of(
                "cpu",
                &[("host", "h"), ("a", "1"), ("b", "2")]
            ))
            .unwrap_err()
            .contains("3 labels, more than 2")
        );
        assert!(
            check(SeriesKey::of("cpu", &[("hostname", "h")]))
                .unwrap_err()
                .contains("label hostname")
        );
        assert!(
            check(SeriesKey::of("cpu", &[("host", "web-1")]))
                .unwrap_err()
                .contains("label host")
        );
    }

    #[test]
    fn histogram_samples_count_against_the_same_series_limits() {
        let limits = Limits {
            max_series_per_host: 3,
            max_series_total: 100,
            ..Limits::default()
        };
        let histogram = |metric: &str| crate::model::HistogramSample {
            series: SeriesKey::of(metric, &[("host", "h")]),
            timestamp_ms: 0,
            histogram: crate::histogram::Histogram::new(1e-6),
        };
        let mut batch = Batch {
            agent_id: "a".into(),
            host: "h".into(),
            seq: 1,
            interval_ms: 1_000,
            samples: vec![sample("plain")],
            histograms: vec![histogram("lat"), histogram("lat"), histogram("size")],
        };
        // One series exists; room for two new ones: the plain sample and
        // the first histogram series take them, the second is refused.
        let rejected = limits.admit_batch(&mut batch, |_| false, 1, 1);
        assert_eq!(batch.samples.len(), 1);
        let kept: Vec<&str> = batch
            .histograms
            .iter()
            .map(|h| h.series.metric.as_str())
            .collect();
        assert_eq!(kept, ["lat", "lat"]);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].reason_index(), 9);
    }

    #[test]
    fn new_series_over_a_limit_are_refused_existing_ones_flow() {
        let limits = Limits {
            max_series_per_host: 3,
            max_series_total: 100,
            ..Limits::default()
        };
        let existing = [
            SeriesKey::of("a", &[("host", "h")]),
            SeriesKey::of("b", &[("host", "h")]),
        ];
        let exists = |k: &SeriesKey| existing.contains(k);
        let batch = vec![
            sample("a"),
            sample("c"),
            sample("c"),
            sample("d"),
            sample("b"),
        ];
        let (kept, rejected) = limits.admit(batch, exists, 2, 2);
        let kept: Vec<&str> = kept.iter().map(|s| s.series.metric.as_str()).collect();
        assert_eq!(
            kept,
            ["a", "c", "c", "b"],
            "one new series fits; d does not; existing ones flow"
        );
        assert_eq!(rejected.len(), 1);
        assert!(
            rejected[0]
                .to_string()
                .contains("host has 3 series, the limit")
        );
        let (kept, rejected) = Limits {
            max_series_total: 2,
            ..limits
        }
        .admit(vec![sample("c")], exists, 0, 2);
        assert!(kept.is_empty());
        assert!(rejected[0].to_string().contains("collector has 2 series"));
    }
}
