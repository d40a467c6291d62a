//! QueryRange over histogram series: the histograms of a step bucket (and,
//! when grouping, of every series in the group) are merged, and the figure
//! asked for is read off the merged histogram. Pure functions.
//!
//! Merging before reading is what makes a p99 over many hosts the p99 of
//! all their observations, not an average of per-host p99s.

use std::collections::BTreeMap;

use super::aggregate::Aggregation;
use nightjar_model::histogram::Histogram;
use nightjar_model::model::Point;

/// What is read off a (merged) histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Figure {
    /// The value at a quantile (0..=1).
    Quantile(f64),
    /// Smallest observation.
    Min,
    /// Largest observation.
    Max,
    /// Number of observations.
    Count,
    /// Mean of the observations.
    Mean,
    /// Sum of the observations.
    Sum,
}

impl Figure {
    /// The figure a plain-series aggregation asks of a histogram series
    /// (none for `last`, which has no meaning for a distribution).
    pub fn for_aggregation(agg: Aggregation) -> Option<Figure> {
        match agg {
            Aggregation::Avg => Some(Figure::Mean),
            Aggregation::Min => Some(Figure::Min),
            Aggregation::Max => Some(Figure::Max),
            Aggregation::Sum => Some(Figure::Sum),
            Aggregation::Count => Some(Figure::Count),
            Aggregation::Last => None,
        }
    }

    /// This figure of `h`.
    pub fn of(self, h: &Histogram) -> f64 {
        match self {
            Figure::Quantile(q) => h.quantile(q),
            Figure::Min => h.min(),
            Figure::Max => h.max(),
            Figure::Count => h.count() as f64,
            Figure::Mean => h.mean(),
            Figure::Sum => h.sum(),
        }
    }
}

/// Merges the histograms of one or more series per step bucket
/// (`step_ms` > 0; buckets `[k*step, (k+1)*step)`) and reads `figure` off
/// each. With `step_ms` 0 every histogram is its own point. Histograms of
/// a unit different from the bucket's first are left out (logged).
pub fn bucket<'a>(
    series: impl IntoIterator<Item = &'a [(i64, Histogram)]>,
    step_ms: i64,
    figure: Figure,
) -> Vec<Point> {
    let mut buckets: BTreeMap<i64, Histogram> = BTreeMap::new();
    for histograms in series {
        for (ts, h) in histograms {
            let start = if step_ms > 0 {
                ts.div_euclid(step_ms) * step_ms
            } else {
                *ts
            };
            match buckets.get_mut(&start) {
                Some(merged) => {
                    if let Err(error) = merged.merge(h) {
                        tracing::warn!(%error, "query: leaving a histogram out of its bucket");
                    }
                }
                None => {
                    buckets.insert(start, h.clone());
                }
            }
        }
    }
    buckets
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(timestamp_ms, h)| Point::new(timestamp_ms, figure.of(&h)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[f64]) -> Histogram {
        let mut h = Histogram::new(1e-3);
        for v in values {
            h.record(*v, 1).unwrap();
        }
        h
    }

    #[test]
    fn buckets_merge_before_the_figure_is_read() {
        let a = vec![(0, hist(&[1.0, 2.0])), (10, hist(&[100.0]))];
        let b = vec![(5, hist(&[3.0, 4.0, 50.0]))];
        let got = bucket([a.as_slice(), b.as_slice()], 10, Figure::Count);
        assert_eq!(got, vec![Point::new(0, 5.0), Point::new(10, 1.0)]);
        let max = bucket([a.as_slice(), b.as_slice()], 10, Figure::Max);
        assert!((max[0].value - 50.0).abs() < 0.5, "{max:?}");
        // The median of {1,2,3,4,50} is 3, which no per-series median (1.5 or 4) gives.
        let p50 = bucket([a.as_slice(), b.as_slice()], 10, Figure::Quantile(0.5));
        assert!((p50[0].value - 3.0).abs() < 0.03, "{p50:?}");
    }

    #[test]
    fn step_zero_keeps_every_histogram() {
        let a = vec![(1, hist(&[1.0])), (2, hist(&[2.0, 4.0]))];
        let got = bucket([a.as_slice()], 0, Figure::Mean);
        assert_eq!(got.len(), 2);
        assert!((got[1].value - 3.0).abs() < 0.03);
    }

    #[test]
    fn different_units_do_not_merge() {
        let a = vec![(0, hist(&[1.0]))];
        let mut other = Histogram::new(1e-6);
        other.record(5.0, 1).unwrap();
        let b = vec![(0, other)];
        let got = bucket([a.as_slice(), b.as_slice()], 10, Figure::Count);
        assert_eq!(got, vec![Point::new(0, 1.0)]);
    }
}
