//! The collector's domain types. Wire types (`nightjar_proto`) are converted
//! to these in `convert.rs` and never travel further inside.

use std::fmt;

/// Labels of a series, sorted by name, names unique. The metric name is kept
/// apart, in [`SeriesKey::metric`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds labels from pairs in any order. Returns the duplicated name if
    /// a name occurs twice.
    pub fn from_pairs(mut pairs: Vec<(String, String)>) -> Result<Self, String> {
        pairs.sort();
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.clone());
        }
        Ok(Labels(pairs))
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The identity of a series: metric name plus labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Metric name, e.g. `cpu_usage_percent`.
    pub metric: String,
    /// Labels, including `host`.
    pub labels: Labels,
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.metric)?;
        for (i, (n, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl SeriesKey {
    /// A series key from a metric and label pairs, for tests and tools
    /// (panics on duplicate names; wire input goes through `convert`).
    pub fn of(metric: &str, labels: &[(&str, &str)]) -> SeriesKey {
        SeriesKey {
            metric: metric.into(),
            labels: Labels::from_pairs(
                labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
            .expect("distinct label names"),
        }
    }
}

/// A series key shared between the index and query results: handing out
/// thousands of keys per query costs reference counts, not string copies.
pub type SharedKey = std::sync::Arc<SeriesKey>;

/// One stored observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

impl Point {
    /// A point at `timestamp_ms` with `value`.
    pub const fn new(timestamp_ms: i64, value: f64) -> Point {
        Point {
            timestamp_ms,
            value,
        }
    }
}

/// One validated sample of an incoming batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series it belongs to.
    pub series: SeriesKey,
    /// The observation.
    pub point: Point,
}

/// A validated batch from one agent.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The agent's stable identity.
    pub agent_id: String,
    /// The host the agent runs on.
    pub host: String,
    /// The agent's sequence number for this batch.
    pub seq: u64,
    /// The agent's sampling interval in ms (0 if the agent did not say).
    pub interval_ms: u64,
    /// The samples that passed validation.
    pub samples: Vec<Sample>,
    /// The histogram samples that passed validation.
    pub histograms: Vec<HistogramSample>,
}

/// One validated histogram sample of an incoming batch.
#[derive(Clone, Debug)]
pub struct HistogramSample {
    /// The series it belongs to.
    pub series: SeriesKey,
    /// The end of the interval the histogram covers, epoch ms.
    pub timestamp_ms: i64,
    /// The observations.
    pub histogram: crate::histogram::Histogram,
}

/// What a host has told the collector about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// Host name (the `host` label).
    pub host: String,
    /// When the collector last stored a batch from it (collector clock, ms).
    pub last_seen_ms: i64,
    /// The agent's sampling interval in ms.
    pub interval_ms: u64,
}

/// What a rollup keeps of the points of one time bucket: enough to answer
/// avg, min, max, sum, count and last exactly, and to merge buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Number of points.
    pub count: u64,
    /// Timestamp of the newest point.
    pub last_ts: i64,
    /// Value of the newest point.
    pub last: f64,
}

impl Summary {
    /// The summary of one point.
    pub fn of(p: Point) -> Summary {
        Summary {
            min: p.value,
            max: p.value,
            sum: p.value,
            count: 1,
            last_ts: p.timestamp_ms,
            last: p.value,
        }
    }

    /// Adds one point.
    pub fn add(&mut self, p: Point) {
        self.merge(&Summary::of(p));
    }

    /// Folds in another summary (associative and commutative, up to float
    /// rounding of `sum`; a tie on `last_ts` keeps the larger value so the
    /// result does not depend on order).
    pub fn merge(&mut self, other: &Summary) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
        if other.last_ts > self.last_ts || (other.last_ts == self.last_ts && other.last > self.last)
        {
            self.last_ts = other.last_ts;
            self.last = other.last;
        }
    }
}
