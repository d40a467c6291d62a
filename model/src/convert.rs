//! Conversions between wire types (`nightjar_proto::v1`) and domain types.
//! API boundary: nothing past `ingest` and `query` sees a prost type.

use nightjar_proto::v1 as pb;

use crate::histogram::Histogram;
use crate::limits::Limits;
use crate::model::{Batch, HistogramSample, Labels, Point, Sample, SeriesKey};
use crate::selector::{MatchOp, Matcher, MatcherError, Selector};
use crate::validate::{Rejection, is_label_name, is_metric_name};

/// The highest batch seq accepted: 2^63 − 1. An agent sending a batch a
/// millisecond would need 292 million years to reach it, so anything above
/// is a bug or an attack, and refusing it keeps `seq + 1` from overflowing
/// anywhere.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// The longest sampling interval accepted (one day): host_down waits a
/// few intervals, and an unchecked one would overflow that arithmetic.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// Checks the batch's own fields (not its samples): a batch that fails is
/// refused whole, with the reason naming the field.
pub fn check_batch_header(batch: &pb::Batch) -> Result<(), String> {
    if batch.agent_id.is_empty() || batch.host.is_empty() {
        return Err("batch: fields agent_id and host must not be empty".into());
    }
    if batch.seq == 0 || batch.seq > MAX_SEQ {
        return Err(format!("batch.seq: {} is outside 1..={MAX_SEQ}", batch.seq));
    }
    if batch.interval_ms > MAX_INTERVAL_MS {
        return Err(format!(
            "batch.interval_ms: {} is above the longest interval accepted ({MAX_INTERVAL_MS}, one day)",
            batch.interval_ms
        ));
    }
    Ok(())
}

/// A wire batch split into the samples that passed validation and the
/// rejections of those that did not.
/// `now_ms` is the collector's clock, for the timestamp limits.
pub fn batch_from_wire(batch: pb::Batch, limits: &Limits, now_ms: i64) -> (Batch, Vec<Rejection>) {
    let mut samples = Vec::with_capacity(batch.samples.len());
    let mut histograms = Vec::new();
    let mut rejections = Vec::new();
    for sample in batch.samples {
        match sample_from_wire(sample, &batch.host)
            .and_then(|s| limits.check_shape(&s.series).map(|()| s))
            .and_then(|s| {
                limits
                    .check_time(&s.series.metric, s.timestamp_ms, now_ms)
                    .map(|()| s)
            }) {
            Ok(WireSample {
                series,
                timestamp_ms,
                value: Value::Gauge(value),
            }) => samples.push(Sample {
                series,
                point: Point {
                    timestamp_ms,
                    value,
                },
            }),
            Ok(WireSample {
                series,
                timestamp_ms,
                value: Value::Histogram(histogram),
            }) => histograms.push(HistogramSample {
                series,
                timestamp_ms,
                histogram,
            }),
            Err(r) => rejections.push(r),
        }
    }
    let domain = Batch {
        agent_id: batch.agent_id,
        host: batch.host,
        seq: batch.seq,
        interval_ms: batch.interval_ms,
        samples,
        histograms,
    };
    (domain, rejections)
}

/// A validated wire sample of either kind.
struct WireSample {
    series: SeriesKey,
    timestamp_ms: i64,
    value: Value,
}

enum Value {
    Gauge(f64),
    Histogram(Histogram),
}

/// Validates one wire sample. A sample without a `host` label gets the
/// batch's host; one with a different host is rejected.
fn sample_from_wire(sample: pb::Sample, batch_host: &str) -> Result<WireSample, Rejection> {
    let metric = sample.metric;
    if !is_metric_name(&metric) {
        return Err(Rejection::BadMetricName(metric));
    }
    let value = match sample.value {
        Some(pb::sample::Value::Gauge(value)) if !value.is_finite() => {
            return Err(Rejection::NonFiniteValue { metric, value });
        }
        Some(pb::sample::Value::Gauge(value)) => Value::Gauge(value),
        Some(pb::sample::Value::Histogram(h)) => match Histogram::from_wire(&h.hdr_v2, h.unit) {
            Ok(h) => Value::Histogram(h),
            Err(e) => {
                return Err(Rejection::BadHistogram {
                    metric,
                    reason: e.to_string(),
                });
            }
        },
        None => return Err(Rejection::UnsupportedValue(metric)),
    };
    let mut pairs = Vec::with_capacity(sample.labels.len() + 1);
    let mut has_host = false;
    for label in sample.labels {
        if !is_label_name(&label.name) {
            return Err(Rejection::BadLabelName {
                metric,
                name: label.name,
            });
        }
        if label.name == "host" {
            if label.value != batch_host {
                return Err(Rejection::ForeignHost {
                    metric,
                    label: label.value,
                    batch: batch_host.to_owned(),
                });
            }
            has_host = true;
        }
        pairs.push((label.name, label.value));
    }
    if !has_host {
        pairs.push(("host".to_owned(), batch_host.to_owned()));
    }
    let labels = Labels::from_pairs(pairs).map_err(|name| Rejection::DuplicateLabel {
        metric: metric.clone(),
        name,
    })?;
    Ok(WireSample {
        series: SeriesKey { metric, labels },
        timestamp_ms: sample.timestamp_ms,
        value,
    })
}

/// Converts a wire selector, compiling regexes.
pub fn selector_from_wire(selector: Option<pb::Selector>) -> Result<Selector, MatcherError> {
    let selector = selector.unwrap_or_default();
    let mut matchers = Vec::with_capacity(selector.matchers.len());
    for m in selector.matchers {
        let op = pb::MatchOp::try_from(m.op).unwrap_or(pb::MatchOp::Equal);
        matchers.push(match op {
            pb::MatchOp::Equal => Matcher {
                name: m.name,
                op: MatchOp::Equal(m.value),
            },
            pb::MatchOp::NotEqual => Matcher {
                name: m.name,
                op: MatchOp::NotEqual(m.value),
            },
            pb::MatchOp::Regex => Matcher::regex(&m.name, &m.value, false)?,
            pb::MatchOp::NotRegex => Matcher::regex(&m.name, &m.value, true)?,
        });
    }
    Ok(Selector {
        metric: (!selector.metric.is_empty()).then_some(selector.metric),
        matchers,
    })
}

/// Converts a selector to its wire form (regexes as written, without the
/// anchors `Matcher::regex` adds).
pub fn selector_to_wire(selector: &Selector) -> pb::Selector {
    let pattern = |re: &regex::Regex| {
        let s = re.as_str();
        s.strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(s)
            .to_owned()
    };
    pb::Selector {
        metric: selector.metric.clone().unwrap_or_default(),
        matchers: selector
            .matchers
            .iter()
            .map(|m| {
                let (op, value) = match &m.op {
                    MatchOp::Equal(v) => (pb::MatchOp::Equal, v.clone()),
                    MatchOp::NotEqual(v) => (pb::MatchOp::NotEqual, v.clone()),
                    MatchOp::Regex(re) => (pb::MatchOp::Regex, pattern(re)),
                    MatchOp::NotRegex(re) => (pb::MatchOp::NotRegex, pattern(re)),
                };
                pb::LabelMatcher {
                    name: m.name.clone(),
                    op: op as i32,
                    value,
                }
            })
            .collect(),
    }
}

/// Converts labels to wire labels.
pub fn labels_to_wire(labels: &Labels) -> Vec<pb::Label> {
    labels
        .iter()
        .map(|(name, value)| pb::Label {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .collect()
}

/// Converts a series and its points to a wire series.
pub fn series_to_wire(key: &SeriesKey, points: &[Point]) -> pb::Series {
    pb::Series {
        metric: key.metric.clone(),
        labels: labels_to_wire(&key.labels),
        points: points
            .iter()
            .map(|p| pb::Point {
                timestamp_ms: p.timestamp_ms,
                value: p.value,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(metric: &str, labels: &[(&str, &str)], value: Option<f64>) -> pb::Sample {
        pb::Sample {
            metric: metric.into(),
            labels: labels
                .iter()
                .map(|(n, v)| pb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            timestamp_ms: 1_000,
            value: value.map(pb::sample::Value::Gauge),
        }
    }

    #[test]
    fn selectors_go_to_the_wire_as_written() {
        let written = ["host=~web-.*", "process!=nginx", "dc=lon", "role!~db|cache"];
        let selector = Selector {
            metric: Some("process_up".into()),
            matchers: written.iter().map(|m| Matcher::parse(m).unwrap()).collect(),
        };
        let wire = selector_to_wire(&selector);
        assert_eq!(wire.metric, "process_up");
        let ops: Vec<(i32, &str)> = wire
            .matchers
            .iter()
            .map(|m| (m.op, m.value.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                (pb::MatchOp::Regex as i32, "web-.*"),
                (pb::MatchOp::NotEqual as i32, "nginx"),
                (pb::MatchOp::Equal as i32, "lon"),
                (pb::MatchOp::NotRegex as i32, "db|cache"),
            ]
        );
        // And back: the same series match.
        let back = selector_from_wire(Some(wire)).unwrap();
        let key = |host: &str| SeriesKey {
            metric: "process_up".into(),
            labels: crate::model::Labels::from_pairs(
                [
                    ("host", host),
                    ("process", "java"),
                    ("dc", "lon"),
                    ("role", "web"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            )
            .unwrap(),
        };
        assert!(back.matches(&key("web-1")) && selector.matches(&key("web-1")));
        assert!(!back.matches(&key("db-1")));
    }

    #[track_caller]
    fn check(sample: pb::Sample, expected: Result<&str, &str>) {
        let got = sample_from_wire(sample, "web-1")
            .map(|s| s.series.to_string())
            .map_err(|r| r.to_string());
        match (&got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e),
            (Err(g), Err(e)) => assert!(g.contains(e), "{g:?} lacks {e:?}"),
            _ => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn samples_are_validated() {
        check(
            wire("load_average", &[("period", "1m")], Some(0.5)),
            Ok(r#"load_average{host="web-1",period="1m"}"#),
        );
        check(
            wire("x", &[("host", "web-1")], Some(1.0)),
            Ok(r#"x{host="web-1"}"#),
        );
        check(
            wire("bad-name", &[], Some(1.0)),
            Err("metric name \"bad-name\""),
        );
        check(
            wire("x", &[("1a", "v")], Some(1.0)),
            Err("label name \"1a\""),
        );
        check(
            wire("x", &[("a", "1"), ("a", "2")], Some(1.0)),
            Err("label a occurs more than once"),
        );
        check(
            wire("x", &[("host", "db-1")], Some(1.0)),
            Err("differs from the batch host"),
        );
        check(wire("x", &[], Some(f64::NAN)), Err("not finite"));
        check(wire("x", &[], None), Err("no value"));
        let mut h = wire("lat", &[], None);
        h.value = Some(pb::sample::Value::Histogram(pb::Histogram {
            hdr_v2: vec![0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 9],
            unit: 1e-6,
        }));
        check(h.clone(), Err("metric lat: histogram: compressed length 9"));
        let mut good = crate::histogram::Histogram::new(1e-6);
        good.record(0.5, 1).unwrap();
        h.value = Some(pb::sample::Value::Histogram(pb::Histogram {
            hdr_v2: good.to_wire(),
            unit: 1e-6,
        }));
        check(h, Ok(r#"lat{host="web-1"}"#));
    }

    #[test]
    fn batch_keeps_good_samples_and_reports_bad_ones() {
        let batch = pb::Batch {
            agent_id: "a".into(),
            host: "web-1".into(),
            seq: 7,
            interval_ms: 1_000,
            samples: vec![wire("ok", &[], Some(1.0)), wire("not ok", &[], Some(1.0))],
        };
        let (batch, rejections) = batch_from_wire(batch, &Limits::default(), 1_000);
        assert_eq!(batch.samples.len(), 1);
        assert_eq!(rejections.len(), 1);
        assert_eq!(batch.seq, 7);
    }

    #[test]
    fn timestamps_far_ahead_or_behind_the_clock_are_rejected_alone() {
        let at = |ts: i64| {
            let mut s = wire("m", &[], Some(1.0));
            s.timestamp_ms = ts;
            s
        };
        let now = 100 * 86_400_000;
        let batch = pb::Batch {
            agent_id: "a".into(),
            host: "web-1".into(),
            seq: 1,
            interval_ms: 1_000,
            samples: vec![
                at(now),
                at(now + 600_000),
                at(now + 600_001),
                at(now - 15 * 86_400_000),
                at(now - 15 * 86_400_000 - 1),
            ],
        };
        let (batch, rejections) = batch_from_wire(batch, &Limits::default(), now);
        assert_eq!(batch.samples.len(), 3);
        let reasons: Vec<String> = rejections.iter().map(ToString::to_string).collect();
        assert_eq!(reasons.len(), 2);
        assert!(
            reasons[0].contains("ahead of the collector's clock"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("older than max_sample_age = 15days"),
            "{reasons:?}"
        );
        assert!(rejections.iter().all(|r| r.reason_index() == 11));
    }
}
