//! Step bucketing and aggregation for QueryRange. Pure functions.
//!
//! Points fall into buckets `[k*step, (k+1)*step)` aligned to the epoch; a
//! bucket's value combines every point in it (across all series of a group
//! when grouping). These are exactly the figures a min/max/sum/count/last
//! rollup can answer, so rollup tiers can serve the same queries later.

use std::collections::BTreeMap;

use crate::model::Point;

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

#[derive(Clone, Copy)]
struct Acc {
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
    last_ts: i64,
    last: f64,
}

impl Acc {
    fn new(p: Point) -> Acc {
        Acc {
            min: p.value,
            max: p.value,
            sum: p.value,
            count: 1,
            last_ts: p.timestamp_ms,
            last: p.value,
        }
    }

    fn add(&mut self, p: Point) {
        self.min = self.min.min(p.value);
        self.max = self.max.max(p.value);
        self.sum += p.value;
        self.count += 1;
        if p.timestamp_ms >= self.last_ts {
            self.last_ts = p.timestamp_ms;
            self.last = p.value;
        }
    }

    fn value(&self, agg: Aggregation) -> f64 {
        match agg {
            Aggregation::Avg => self.sum / self.count as f64,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Sum => self.sum,
            Aggregation::Count => self.count as f64,
            Aggregation::Last => self.last,
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
    let mut buckets: BTreeMap<i64, Acc> = BTreeMap::new();
    for points in series {
        for &p in points {
            let start = p.timestamp_ms.div_euclid(step_ms) * step_ms;
            buckets
                .entry(start)
                .and_modify(|acc| acc.add(p))
                .or_insert_with(|| Acc::new(p));
        }
    }
    buckets
        .into_iter()
        .map(|(timestamp_ms, acc)| Point {
            timestamp_ms,
            value: acc.value(agg),
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
