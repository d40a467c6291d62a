//! Step bucketing and aggregation for QueryRange. Pure functions.
//!
//! Points fall into buckets `[k*step, (k+1)*step)` aligned to the epoch; a
//! bucket's value combines every point in it (across all series of a group
//! when grouping). These are exactly the figures a min/max/sum/count/last
//! rollup can answer, so rollup tiers can serve the same queries later.

use std::collections::BTreeMap;

use crate::model::{Point, Summary};

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
