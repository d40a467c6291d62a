//! Per-flush aggregation of statsd lines into series.
//!
//! A line finds its series through two 64-bit hashes of its raw key (name,
//! type, tags as sent): one keys a map of plain integers, the other is kept
//! beside the entry index to tell colliding keys apart, so the hot path touches no
//! key bytes on the heap. Names and tags are sanitized once, when a series
//! is first seen; two raw keys that sanitize to the same series (tags in
//! another order, `a.b` and `a_b`) share one entry. Timer and histogram
//! values are appended to a short buffer and folded into the HdrHistogram
//! in bulk, and a flush only moves figures out under the lock; it builds
//! the samples after letting go of it. All of this is about cache misses:
//! with thousands of series, each random memory touch costs more than the
//! parsing.
//!
//! What each kind reports at a flush (timestamp = the flush tick):
//! - counter `x`: `x_total`, the sum since the series appeared (sample
//!   rates applied), and `x_per_second`, this flush's sum over its length;
//! - gauge `x`: the last value (deltas applied);
//! - set `x`: distinct values seen in this flush;
//! - timer `x`: `x_seconds`, a histogram of this flush's durations;
//! - histogram `x`: a histogram of this flush's values.
//!
//! Counters, gauges and sets keep reporting (0 rate, last value, 0) until
//! idle for `expire_after`; timers and histograms report only flushes that
//! saw values.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher as _, BuildHasherDefault, Hasher};
use std::sync::Arc;

use nightjar_model::histogram::Histogram;

use super::parse::{self, Kind, Line};
use crate::sample::{AppSample, AppValue};

/// Timer histograms count microseconds of a `_seconds` metric.
pub const TIMER_UNIT: f64 = 1e-6;
/// Histogram (`h`, `d`) values are kept to a thousandth.
pub const HISTOGRAM_UNIT: f64 = 1e-3;

/// Values a timer or histogram buffers before folding them into its
/// HdrHistogram: appending to a short vector touches one cache line, where
/// recording touches a random slot of a 10–20 KiB counts array.
const FOLD_AT: usize = 512;

type Labels = Vec<(String, String)>;

/// A series' reported name and labels, shared with the flush output.
struct SeriesName {
    metric: String,
    labels: Labels,
}

/// Values not yet folded: (value in units, count).
type Pending = Vec<(u64, u64)>;

enum State {
    Counter {
        total: f64,
        interval: f64,
    },
    Gauge(f64),
    Set(HashSet<u64, foldhash::fast::FixedState>),
    Histogram {
        unit: f64,
        pending: Pending,
        folded: Option<Histogram>,
    },
}

struct Entry {
    name: Arc<SeriesName>,
    state: State,
    /// The flush number of the last update.
    touched: u64,
}

/// Where a raw key leads.
#[derive(Clone, Copy)]
struct RawKey {
    /// The entry.
    index: usize,
    /// A second hash of the raw key: together with the map's hash it tells
    /// two raw keys apart without keeping or comparing their bytes.
    check: u64,
}

/// Why a parsed line's value was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// A hasher for keys that already are hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The series of one agent, between flushes.
pub struct Aggregator {
    /// Hash of the raw key (name, type, tags as sent) → entry.
    by_raw_key: HashMap<u64, RawKey, BuildHasherDefault<Prehashed>>,
    /// Raw keys whose hash another raw key already has (practically never).
    collided: HashMap<Box<[u8]>, usize>,
    by_series: HashMap<(Kind, String, Labels), usize>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
    key_hasher: foldhash::quality::FixedState,
    check_hasher: foldhash::quality::FixedState,
    set_hasher: foldhash::fast::FixedState,
    flushes: u64,
    /// Flushes a series may stay idle before it is forgotten.
    expire_flushes: u64,
    /// Most series held; lines of further new series are refused.
    max_series: usize,
}

/// What one flush took out of the aggregator, turned into samples outside
/// its lock ([`Flushed::into_samples`]).
pub struct Flushed {
    values: Vec<(Arc<SeriesName>, Value)>,
}

enum Value {
    Counter {
        total: f64,
        interval: f64,
    },
    Gauge(f64),
    Set(usize),
    Histogram {
        unit: f64,
        pending: Pending,
        folded: Option<Histogram>,
    },
}

impl Aggregator {
    /// An aggregator forgetting series idle for `expire_flushes` flushes.
    pub fn new(expire_flushes: u64) -> Aggregator {
        Aggregator {
            by_raw_key: HashMap::default(),
            collided: HashMap::new(),
            by_series: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            scratch: Vec::with_capacity(256),
            key_hasher: foldhash::quality::FixedState::with_seed(0x6e69_6768_746a_6172),
            check_hasher: foldhash::quality::FixedState::with_seed(0x7374_6174_7364_0001),
            set_hasher: foldhash::fast::FixedState::default(),
            flushes: 0,
            expire_flushes: expire_flushes.max(1),
            max_series: usize::MAX,
        }
    }

    /// Holds at most `max_series` series: a line that would add one more is
    /// refused (an application sending unbounded names must not exhaust
    /// the agent's memory).
    pub fn with_max_series(mut self, max_series: usize) -> Aggregator {
        self.max_series = max_series;
        self
    }

    /// Series held now.
    pub fn series(&self) -> usize {
        self.by_series.len()
    }

    /// Adds a parsed line. Returns how many values were taken.
    pub fn add(&mut self, line: &Line<'_>) -> Result<u64, Refused> {
        self.scratch.clear();
        self.scratch.extend_from_slice(line.name);
        self.scratch.extend_from_slice(&[0, line.kind.code()]);
        self.scratch.extend_from_slice(line.tags);
        let key = self.key_hasher.hash_one(self.scratch.as_slice());
        let check = self.check_hasher.hash_one(self.scratch.as_slice());
        let index = match self.by_raw_key.get(&key) {
            Some(raw) if raw.check == check => raw.index,
            Some(_) => match self.collided.get(self.scratch.as_slice()) {
                Some(&i) => i,
                None => self.create(line, key, check, true)?,
            },
            None => self.create(line, key, check, false)?,
        };
        let touched = self.flushes;
        let set_hasher = self.set_hasher;
        let entry = self.entries[index].as_mut().expect("indexed entries exist");
        entry.touched = touched;
        let weight = 1.0 / line.rate;
        let mut taken = 0;
        let bad_value = Refused("value is not a finite number");
        let overflow = Refused("the sum would leave the range of a 64-bit float");
        match &mut entry.state {
            State::Counter { total, interval } => {
                for raw in values(line.values) {
                    let v = parse::parse_f64(raw).ok_or(bad_value)?;
                    // A sum past f64's range would be ±inf for good and
                    // poison the series: refuse the value instead.
                    let (t, i) = (*total + v * weight, *interval + v * weight);
                    if !(t.is_finite() && i.is_finite()) {
                        return Err(overflow);
                    }
                    (*total, *interval) = (t, i);
                    taken += 1;
                }
            }
            State::Gauge(value) => {
                for raw in values(line.values) {
                    let v = parse::parse_f64(raw).ok_or(bad_value)?;
                    if matches!(raw.first(), Some(b'+' | b'-')) {
                        if !(*value + v).is_finite() {
                            return Err(overflow);
                        }
                        *value += v;
                    } else {
                        *value = v;
                    }
                    taken += 1;
                }
            }
            State::Set(seen) => {
                for raw in values(line.values) {
                    seen.insert(set_hasher.hash_one(raw));
                    taken += 1;
                }
            }
            State::Histogram {
                unit,
                pending,
                folded,
            } => {
                let scale = if line.kind == Kind::Timer { 1e-3 } else { 1.0 } / *unit;
                let count = weight.round().max(1.0) as u64;
                for raw in values(line.values) {
                    let v = parse::parse_f64(raw).ok_or(bad_value)?;
                    let units = (v * scale).round();
                    if !(0.0..=nightjar_model::histogram::MAX_VALUE as f64).contains(&units) {
                        return Err(Refused(
                            "negative or too large value for a timer or histogram",
                        ));
                    }
                    pending.push((units as u64, count));
                    taken += 1;
                }
                if pending.len() >= FOLD_AT {
                    fold(*unit, pending, folded);
                }
            }
        }
        Ok(taken)
    }

    /// Finds or makes the entry of a raw key not seen yet.
    fn create(
        &mut self,
        line: &Line<'_>,
        key: u64,
        check: u64,
        collided: bool,
    ) -> Result<usize, Refused> {
        let base = parse::sanitize(line.name, true);
        let metric = match line.kind {
            Kind::Counter if base.ends_with("_total") => base,
            Kind::Counter => format!("{base}_total"),
            Kind::Timer if base.ends_with("_seconds") => base,
            Kind::Timer => format!("{base}_seconds"),
            _ => base,
        };
        let labels = parse::tags(line.tags);
        let series = (line.kind, metric, labels);
        let index = match self.by_series.get(&series) {
            Some(&i) => i,
            None if self.by_series.len() >= self.max_series => {
                return Err(Refused("new series over [statsd] max_series"));
            }
            None => {
                let (kind, metric, labels) = series.clone();
                let histogram = |unit| State::Histogram {
                    unit,
                    pending: Vec::new(),
                    folded: None,
                };
                let state = match kind {
                    Kind::Counter => State::Counter {
                        total: 0.0,
                        interval: 0.0,
                    },
                    Kind::Gauge => State::Gauge(0.0),
                    Kind::Set => State::Set(HashSet::with_hasher(self.set_hasher)),
                    Kind::Timer => histogram(TIMER_UNIT),
                    Kind::Histogram => histogram(HISTOGRAM_UNIT),
                };
                let entry = Some(Entry {
                    name: Arc::new(SeriesName { metric, labels }),
                    state,
                    touched: self.flushes,
                });
                let i = match self.free.pop() {
                    Some(i) => {
                        self.entries[i] = entry;
                        i
                    }
                    None => {
                        self.entries.push(entry);
                        self.entries.len() - 1
                    }
                };
                self.by_series.insert(series, i);
                i
            }
        };
        if collided {
            self.collided
                .insert(self.scratch.clone().into_boxed_slice(), index);
        } else {
            self.by_raw_key.insert(key, RawKey { index, check });
        }
        Ok(index)
    }

    /// Takes every series' figures for the flush that just ended, resets
    /// per-flush state and forgets idle series. Cheap: histograms are
    /// moved out, not built; call [`Flushed::into_samples`] after letting
    /// go of the lock.
    pub fn flush(&mut self) -> Flushed {
        let mut values = Vec::with_capacity(self.by_series.len());
        let mut expired = Vec::new();
        for (i, slot) in self.entries.iter_mut().enumerate() {
            let Some(entry) = slot else { continue };
            if self.flushes.saturating_sub(entry.touched) >= self.expire_flushes {
                expired.push(i);
                *slot = None;
                continue;
            }
            let value = match &mut entry.state {
                State::Counter { total, interval } => Value::Counter {
                    total: *total,
                    interval: std::mem::take(interval),
                },
                State::Gauge(v) => Value::Gauge(*v),
                State::Set(seen) => {
                    let n = seen.len();
                    seen.clear();
                    Value::Set(n)
                }
                State::Histogram {
                    unit,
                    pending,
                    folded,
                } => {
                    if pending.is_empty() && folded.is_none() {
                        continue;
                    }
                    // Folded after the lock is let go (`into_samples`).
                    Value::Histogram {
                        unit: *unit,
                        pending: std::mem::take(pending),
                        folded: folded.take(),
                    }
                }
            };
            values.push((entry.name.clone(), value));
        }
        if !expired.is_empty() {
            let gone: HashSet<usize> = expired.iter().copied().collect();
            self.by_raw_key.retain(|_, raw| !gone.contains(&raw.index));
            self.collided.retain(|_, i| !gone.contains(i));
            self.by_series.retain(|_, i| !gone.contains(i));
            self.free.extend(expired);
        }
        self.flushes += 1;
        Flushed { values }
    }
}

/// The `:`-separated values of a line.
fn values(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    raw.split(|&b| b == b':')
}

/// Records the pending values into the histogram (made on first use).
fn fold(unit: f64, pending: &mut Pending, folded: &mut Option<Histogram>) {
    let h = folded.get_or_insert_with(|| Histogram::new(unit));
    for &(units, count) in pending.iter() {
        // In range: checked when the value was taken.
        let _ = h.record(units as f64 * unit, count);
    }
    pending.clear();
}

impl Flushed {
    /// The samples of the flush, for a flush `seconds` long.
    pub fn into_samples(self, seconds: f64) -> Vec<AppSample> {
        let mut out = Vec::with_capacity(self.values.len() + self.values.len() / 2);
        for (name, value) in self.values {
            let sample = |metric: String, value: AppValue| AppSample {
                metric,
                labels: name.labels.clone(),
                value,
            };
            match value {
                Value::Counter { total, interval } => {
                    let base = name.metric.trim_end_matches("_total");
                    out.push(sample(
                        format!("{base}_per_second"),
                        AppValue::Gauge(interval / seconds),
                    ));
                    out.push(sample(name.metric.clone(), AppValue::Gauge(total)));
                }
                Value::Gauge(v) => out.push(sample(name.metric.clone(), AppValue::Gauge(v))),
                Value::Set(n) => {
                    out.push(sample(name.metric.clone(), AppValue::Gauge(n as f64)));
                }
                Value::Histogram {
                    unit,
                    mut pending,
                    mut folded,
                } => {
                    fold(unit, &mut pending, &mut folded);
                    if let Some(h) = folded {
                        out.push(sample(name.metric.clone(), AppValue::Histogram(h)));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(agg: &mut Aggregator, lines: &[&str]) {
        for l in lines {
            agg.add(&parse::parse_line(l.as_bytes()).unwrap()).unwrap();
        }
    }

    fn gauge(samples: &[AppSample], metric: &str) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.metric == metric)
            .map(|s| match &s.value {
                AppValue::Gauge(v) => *v,
                AppValue::Histogram(_) => panic!("{metric} is a histogram"),
            })
    }

    #[test]
    fn counters_report_totals_and_rates_with_sample_rates_applied() {
        let mut agg = Aggregator::new(10);
        feed(&mut agg, &["req:1|c", "req:2|c|@0.5", "req:1:1|c"]);
        let out = agg.flush().into_samples(10.0);
        assert_eq!(gauge(&out, "req_total"), Some(7.0));
        assert_eq!(gauge(&out, "req_per_second"), Some(0.7));
        feed(&mut agg, &["req:3|c"]);
        let out = agg.flush().into_samples(10.0);
        assert_eq!(gauge(&out, "req_total"), Some(10.0));
        assert_eq!(gauge(&out, "req_per_second"), Some(0.3));
        let out = agg.flush().into_samples(10.0);
        assert_eq!(gauge(&out, "req_per_second"), Some(0.0));
    }

    #[test]
    fn gauges_take_deltas_and_sets_count_distinct_values() {
        let mut agg = Aggregator::new(10);
        feed(
            &mut agg,
            &[
                "temp:10|g",
                "temp:+5|g",
                "temp:-3|g",
                "users:a|s",
                "users:b|s",
                "users:a|s",
            ],
        );
        let out = agg.flush().into_samples(1.0);
        assert_eq!(gauge(&out, "temp"), Some(12.0));
        assert_eq!(gauge(&out, "users"), Some(2.0));
        let out = agg.flush().into_samples(1.0);
        assert_eq!(gauge(&out, "temp"), Some(12.0), "gauges keep their value");
        assert_eq!(gauge(&out, "users"), Some(0.0), "sets count per flush");
    }

    #[test]
    fn sums_that_would_overflow_are_refused_and_the_series_stays_finite() {
        let mut agg = Aggregator::new(10);
        feed(&mut agg, &["big:1e308|c", "level:1e308|g"]);
        for line in ["big:1e308|c", "level:+1e308|g"] {
            let refused = agg.add(&parse::parse_line(line.as_bytes()).unwrap());
            assert!(refused.is_err(), "{line} must be refused");
        }
        let out = agg.flush().into_samples(10.0);
        assert_eq!(gauge(&out, "big_total"), Some(1e308));
        assert_eq!(gauge(&out, "level"), Some(1e308));
        assert!(
            out.iter().all(|s| match &s.value {
                AppValue::Gauge(v) => v.is_finite(),
                AppValue::Histogram(_) => true,
            }),
            "no infinite value leaves the agent"
        );
    }

    #[test]
    fn timers_become_histograms_of_seconds() {
        let mut agg = Aggregator::new(10);
        feed(
            &mut agg,
            &["lat:100|ms", "lat:200:300|ms", "lat:50|ms|@0.25"],
        );
        let out = agg.flush().into_samples(1.0);
        let h = match &out
            .iter()
            .find(|s| s.metric == "lat_seconds")
            .unwrap()
            .value
        {
            AppValue::Histogram(h) => h.clone(),
            AppValue::Gauge(_) => panic!("not a histogram"),
        };
        assert_eq!(h.count(), 3 + 4);
        assert!((h.max() - 0.3).abs() < 0.003);
        assert!((h.min() - 0.05).abs() < 0.0005);
        // Nothing recorded: no histogram sample.
        assert!(
            agg.flush()
                .into_samples(1.0)
                .iter()
                .all(|s| s.metric != "lat_seconds")
        );
    }

    #[test]
    fn tag_order_and_name_spelling_share_a_series() {
        let mut agg = Aggregator::new(10);
        feed(
            &mut agg,
            &[
                "a.b:1|c|#x:1,y:2",
                "a.b:1|c|#y:2,x:1",
                "a_b:1|c|#x:1,y:2",
                "a.b:1|c",
            ],
        );
        assert_eq!(agg.series(), 2);
        let out = agg.flush().into_samples(1.0);
        let tagged = out
            .iter()
            .find(|s| s.metric == "a_b_total" && !s.labels.is_empty())
            .unwrap();
        assert!(matches!(tagged.value, AppValue::Gauge(v) if v == 3.0));
        assert_eq!(
            tagged.labels,
            [
                ("x".to_owned(), "1".to_owned()),
                ("y".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn series_beyond_max_series_are_refused_existing_ones_flow() {
        let mut agg = Aggregator::new(10).with_max_series(2);
        feed(&mut agg, &["a:1|c", "b:1|g"]);
        let line = parse::parse_line(b"c:1|c").unwrap();
        assert_eq!(
            agg.add(&line),
            Err(Refused("new series over [statsd] max_series"))
        );
        feed(&mut agg, &["a:1|c", "b:2|g"]);
        assert_eq!(agg.series(), 2);
        assert_eq!(gauge(&agg.flush().into_samples(1.0), "a_total"), Some(2.0));
    }

    #[test]
    fn idle_series_expire_and_negative_timers_are_refused() {
        let mut agg = Aggregator::new(2);
        feed(&mut agg, &["g:1|g"]);
        assert_eq!(agg.flush().into_samples(1.0).len(), 1);
        assert_eq!(agg.flush().into_samples(1.0).len(), 1);
        assert_eq!(agg.flush().into_samples(1.0).len(), 0);
        assert_eq!(agg.series(), 0);
        feed(&mut agg, &["g:5|g"]);
        assert_eq!(gauge(&agg.flush().into_samples(1.0), "g"), Some(5.0));
        for bad in ["t:-1|ms", "c:abc|c", "g:nan|g", "h:1e300|h"] {
            let line = parse::parse_line(bad.as_bytes()).unwrap();
            assert!(agg.add(&line).is_err(), "{bad}");
        }
    }
}
