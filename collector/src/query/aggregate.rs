//! Step bucketing and aggregation for QueryRange. Pure functions.
//!
//! Points fall into buckets `[k*step, (k+1)*step)` aligned to the epoch; a
//! bucket's value combines every point in it (across all series of a group
//! when grouping). These are exactly the figures a min/max/sum/count/last
//! rollup can answer, so rollup tiers can serve the same queries later.

use std::collections::BTreeMap;

use nightjar_model::model::{Point, Summary};

/// How the points of a bucket combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// Arithmetic mean of the points.
    Avg,
    /// Smallest point.
    Min,
    /// Largest point.
    Max,
    /// Sum of the points.
    Sum,
    /// Number of points.
    Count,
    /// The newest point's value.
    Last,
}

impl Aggregation {
    /// The figure of a bucket's summary this aggregation asks for.
    pub fn of(self, s: &Summary) -> f64 {
        match self {
            Aggregation::Avg => s.sum / s.count as f64,
            Aggregation::Min => s.min,
            Aggregation::Max => s.max,
            Aggregation::Sum => s.sum,
            Aggregation::Count => s.count as f64,
            Aggregation::Last => s.last,
        }
    }
}

/// Buckets the points of one or more series by `step_ms` (> 0) and combines
/// each bucket with `agg`. Output points carry the bucket's start time.
pub fn bucket<'a>(
    series: impl IntoIterator<Item = &'a [Point]>,
    step_ms: i64,
    agg: Aggregation,
) -> Vec<Point> {
    assert!(step_ms > 0, "step must be positive");
    let mut buckets: BTreeMap<i64, Summary> = BTreeMap::new();
    for points in series {
        for &p in points {
            let start = p.timestamp_ms.div_euclid(step_ms) * step_ms;
            buckets
                .entry(start)
                .and_modify(|s| s.add(p))
                .or_insert_with(|| Summary::of(p));
        }
    }
    finish(buckets, agg)
}

/// Re-buckets summaries (of rollup buckets that each lie inside one step
/// bucket: the step is a multiple of the rollup width) by `step_ms` and
/// combines each bucket with `agg`. Gives what [`bucket`] gives on the raw
/// points the summaries were built from.
pub fn rebucket<'a>(
    series: impl IntoIterator<Item = &'a [(i64, Summary)]>,
    step_ms: i64,
    agg: Aggregation,
) -> Vec<Point> {
    assert!(step_ms > 0, "step must be positive");
    let mut buckets: BTreeMap<i64, Summary> = BTreeMap::new();
    for summaries in series {
        for (ts, s) in summaries {
            let start = ts.div_euclid(step_ms) * step_ms;
            buckets
                .entry(start)
                .and_modify(|b| b.merge(s))
                .or_insert(*s);
        }
    }
    finish(buckets, agg)
}

fn finish(buckets: BTreeMap<i64, Summary>, agg: Aggregation) -> Vec<Point> {
    buckets
        .into_iter()
        .map(|(timestamp_ms, s)| Point {
            timestamp_ms,
            value: agg.of(&s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses "t:v t:v ..." into points.
    fn pts(text: &str) -> Vec<Point> {
        text.split_whitespace()
            .map(|tv| {
                let (t, v) = tv.split_once(':').unwrap();
                Point {
                    timestamp_ms: t.parse().unwrap(),
                    value: v.parse().unwrap(),
                }
            })
            .collect()
    }

    fn show(points: &[Point]) -> String {
        points
            .iter()
            .map(|p| format!("{}:{}", p.timestamp_ms, p.value))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[track_caller]
    fn check(series: &[&str], step: i64, agg: Aggregation, expected: &str) {
        let parsed: Vec<Vec<Point>> = series.iter().map(|s| pts(s)).collect();
        let got = bucket(parsed.iter().map(|v| v.as_slice()), step, agg);
        assert_eq!(show(&got), expected);
    }

    #[test]
    fn buckets_one_series() {
        use Aggregation::*;
        let s = "0:1 5:3 10:10 19:20 25:5";
        check(&[s], 10, Avg, "0:2 10:15 20:5");
        check(&[s], 10, Min, "0:1 10:10 20:5");
        check(&[s], 10, Max, "0:3 10:20 20:5");
        check(&[s], 10, Sum, "0:4 10:30 20:5");
        check(&[s], 10, Count, "0:2 10:2 20:1");
        check(&[s], 10, Last, "0:3 10:20 20:5");
        check(&[s], 1, Last, "0:1 5:3 10:10 19:20 25:5");
        check(&[""], 10, Avg, "");
    }

    #[test]
    fn buckets_across_series_of_a_group() {
        use Aggregation::*;
        let a = "0:10 10:20";
        let b = "1:30 11:40";
        check(&[a, b], 10, Avg, "0:20 10:30");
        check(&[a, b], 10, Sum, "0:40 10:60");
        check(&[a, b], 10, Max, "0:30 10:40");
        check(&[a, b], 10, Last, "0:30 10:40");
        check(&[a, b], 10, Count, "0:2 10:2");
    }

    #[test]
    fn negative_times_align_down() {
        check(&["-1:1 -10:2 -11:4"], 10, Aggregation::Sum, "-20:4 -10:3");
    }
}

/// The rollup tiers of the real storage against the raw points, through
/// the aggregation the query service uses.
#[cfg(test)]
mod tiers {
    use std::time::Duration;

    use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
    use nightjar_model::selector::{MatchOp, Matcher, Selector};
    use nightjar_storage::Storage as _;
    use nightjar_storage::Tier;
    use nightjar_storage::rocks::RocksStorage;

    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn batch(agent: &str, host: &str, seq: u64, points: &[(&str, i64, f64)]) -> Batch {
        Batch {
            agent_id: agent.into(),
            host: host.into(),
            seq,
            interval_ms: 1_000,
            samples: points
                .iter()
                .map(|(m, t, v)| Sample {
                    series: SeriesKey {
                        metric: (*m).into(),
                        labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
                    },
                    point: Point::new(*t, *v),
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    fn host_selector(host: &str) -> Selector {
        Selector {
            metric: None,
            matchers: vec![Matcher {
                name: "host".into(),
                op: MatchOp::Equal(host.into()),
            }],
        }
    }

    #[test]
    fn tiered_queries_equal_raw_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        let mut rng = fastrand::Rng::with_seed(11);
        let t0 = 1_000 * DAY + 1_234;
        let mut seq = 0;
        // Three series, irregular 1-20 s spacing over ~5 hours; part of it
        // written out (rollups), the tail still in the heads.
        for m in ["a", "b", "c"] {
            let mut t = t0;
            let mut v = 50.0;
            let mut pts = Vec::new();
            while t < t0 + 5 * HOUR {
                t += rng.i64(1_000..20_000);
                v += rng.f64() - 0.5;
                pts.push((m, t, if rng.u8(0..10) == 0 { -v } else { v }));
            }
            for part in pts.chunks(300) {
                seq += 1;
                s.append(&batch("ag", "a", seq, part), 0).unwrap();
            }
        }
        let sel = host_selector("a");
        for (tier, step) in [
            (Tier::Minute, 60_000),
            (Tier::Minute, 300_000),
            (Tier::Hour, HOUR),
            (Tier::Hour, 2 * HOUR),
        ] {
            let (start, end) = (t0 - t0 % step, t0 + 6 * HOUR - 1);
            let raw = s.query_range(&sel, start, end).unwrap();
            let rolled = s.query_summaries(&sel, tier, start, end).unwrap();
            assert_eq!(raw.len(), 3);
            assert_eq!(rolled.len(), 3);
            for agg in [
                Aggregation::Avg,
                Aggregation::Min,
                Aggregation::Max,
                Aggregation::Sum,
                Aggregation::Count,
                Aggregation::Last,
            ] {
                let from_raw = bucket(raw.iter().map(|(_, p)| p.as_slice()), step, agg);
                let from_tier = rebucket(rolled.iter().map(|(_, b)| b.as_slice()), step, agg);
                assert_eq!(from_raw.len(), from_tier.len(), "{tier:?} {step} {agg:?}");
                for (r, t) in from_raw.iter().zip(&from_tier) {
                    assert_eq!(r.timestamp_ms, t.timestamp_ms);
                    let tolerance = 1e-9 * r.value.abs().max(1.0);
                    assert!(
                        (r.value - t.value).abs() <= tolerance,
                        "{tier:?} step {step} {agg:?} at {}: raw {} tier {}",
                        r.timestamp_ms,
                        r.value,
                        t.value
                    );
                }
            }
            s.flush_heads(Duration::ZERO).unwrap();
        }
    }
}
