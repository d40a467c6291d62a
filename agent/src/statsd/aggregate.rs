//! Per-flush aggregation of statsd lines into series.
//!
//! A line finds its series through its raw key (name, type, tags as sent),
//! so the hot path copies a few bytes and does one hash lookup; names and
//! tags are sanitized once, when a series is first seen. Two raw keys that
//! sanitize to the same series (tags in another order, `a.b` and `a_b`)
//! share one entry.
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
use std::hash::BuildHasher as _;

use nightjar_model::histogram::Histogram;

use super::parse::{self, Kind, Line};
use crate::sample::{AppSample, AppValue};

/// Timer histograms count microseconds of a `_seconds` metric.
pub const TIMER_UNIT: f64 = 1e-6;
/// Histogram (`h`, `d`) values are kept to a thousandth.
pub const HISTOGRAM_UNIT: f64 = 1e-3;

type Labels = Vec<(String, String)>;

enum State {
    Counter { total: f64, interval: f64 },
    Gauge(f64),
    Set(HashSet<u64, foldhash::fast::FixedState>),
    Histogram(Histogram),
}

struct Entry {
    /// The reported name (for counters, the `_total` one).
    metric: String,
    labels: Labels,
    state: State,
    /// The flush number of the last update.
    touched: u64,
}

/// Why a parsed line's value was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// The series of one agent, between flushes.
pub struct Aggregator {
    by_raw_key: HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
    by_series: HashMap<(Kind, String, Labels), usize>,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
    set_hasher: foldhash::fast::FixedState,
    flushes: u64,
    /// Flushes a series may stay idle before it is forgotten.
    expire_flushes: u64,
}

impl Aggregator {
    /// An aggregator forgetting series idle for `expire_flushes` flushes.
    pub fn new(expire_flushes: u64) -> Aggregator {
        Aggregator {
            by_raw_key: HashMap::default(),
            by_series: HashMap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            scratch: Vec::with_capacity(256),
            set_hasher: foldhash::fast::FixedState::default(),
            flushes: 0,
            expire_flushes: expire_flushes.max(1),
        }
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
        let index = match self.by_raw_key.get(self.scratch.as_slice()) {
            Some(&i) => i,
            None => self.create(line),
        };
        let touched = self.flushes;
        let set_hasher = self.set_hasher;
        let entry = self.entries[index].as_mut().expect("indexed entries exist");
        entry.touched = touched;
        let weight = 1.0 / line.rate;
        let mut taken = 0;
        match &mut entry.state {
            State::Counter { total, interval } => {
                for v in parse::numbers(line.values) {
                    *total += v * weight;
                    *interval += v * weight;
                    taken += 1;
                }
            }
            State::Gauge(value) => {
                for raw in line.values.split(|&b| b == b':') {
                    let Some(v) = parse::parse_f64(raw) else {
                        continue;
                    };
                    if matches!(raw.first(), Some(b'+' | b'-')) {
                        *value += v;
                    } else {
                        *value = v;
                    }
                    taken += 1;
                }
            }
            State::Set(seen) => {
                for raw in line.values.split(|&b| b == b':') {
                    seen.insert(set_hasher.hash_one(raw));
                    taken += 1;
                }
            }
            State::Histogram(h) => {
                let scale = if line.kind == Kind::Timer { 1e-3 } else { 1.0 };
                let count = weight.round().max(1.0) as u64;
                for v in parse::numbers(line.values) {
                    h.record(v * scale, count).map_err(|_| {
                        Refused("negative or too large value for a timer or histogram")
                    })?;
                    taken += 1;
                }
            }
        }
        Ok(taken)
    }

    /// Finds or makes the entry of a line not seen in this raw form yet.
    fn create(&mut self, line: &Line<'_>) -> usize {
        let base = parse::sanitize(line.name, true);
        let metric = match line.kind {
            Kind::Counter if base.ends_with("_total") => base,
            Kind::Counter => format!("{base}_total"),
            Kind::Timer if base.ends_with("_seconds") => base,
            Kind::Timer => format!("{base}_seconds"),
            _ => base,
        };
        let labels = parse::tags(line.tags);
        let key = (line.kind, metric, labels);
        let index = match self.by_series.get(&key) {
            Some(&i) => i,
            None => {
                let (kind, metric, labels) = key.clone();
                let state = match kind {
                    Kind::Counter => State::Counter {
                        total: 0.0,
                        interval: 0.0,
                    },
                    Kind::Gauge => State::Gauge(0.0),
                    Kind::Set => State::Set(HashSet::with_hasher(self.set_hasher)),
                    Kind::Timer => State::Histogram(Histogram::new(TIMER_UNIT)),
                    Kind::Histogram => State::Histogram(Histogram::new(HISTOGRAM_UNIT)),
                };
                let entry = Some(Entry {
                    metric,
                    labels,
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
                self.by_series.insert(key, i);
                i
            }
        };
        self.by_raw_key
            .insert(self.scratch.clone().into_boxed_slice(), index);
        index
    }

    /// Reports every series for the flush that just ended (`seconds` long),
    /// resets per-flush state and forgets idle series.
    pub fn flush(&mut self, seconds: f64) -> Vec<AppSample> {
        let mut out = Vec::with_capacity(self.by_series.len() + 8);
        let mut expired = Vec::new();
        for (i, slot) in self.entries.iter_mut().enumerate() {
            let Some(entry) = slot else { continue };
            if self.flushes.saturating_sub(entry.touched) >= self.expire_flushes {
                expired.push(i);
                *slot = None;
                continue;
            }
            let sample = |metric: String, value: AppValue| AppSample {
                metric,
                labels: entry.labels.clone(),
                value,
            };
            match &mut entry.state {
                State::Counter { total, interval } => {
                    let base = entry.metric.trim_end_matches("_total");
                    out.push(sample(
                        format!("{base}_per_second"),
                        AppValue::Gauge(*interval / seconds),
                    ));
                    out.push(sample(entry.metric.clone(), AppValue::Gauge(*total)));
                    *interval = 0.0;
                }
                State::Gauge(v) => out.push(sample(entry.metric.clone(), AppValue::Gauge(*v))),
                State::Set(seen) => {
                    out.push(sample(
                        entry.metric.clone(),
                        AppValue::Gauge(seen.len() as f64),
                    ));
                    seen.clear();
                }
                State::Histogram(h) => {
                    if !h.is_empty() {
                        out.push(sample(entry.metric.clone(), AppValue::Histogram(h.clone())));
                        h.reset();
                    }
                }
            }
        }
        if !expired.is_empty() {
            let gone: HashSet<usize> = expired.iter().copied().collect();
            self.by_raw_key.retain(|_, i| !gone.contains(i));
            self.by_series.retain(|_, i| !gone.contains(i));
            self.free.extend(expired);
        }
        self.flushes += 1;
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
        let out = agg.flush(10.0);
        assert_eq!(gauge(&out, "req_total"), Some(7.0));
        assert_eq!(gauge(&out, "req_per_second"), Some(0.7));
        feed(&mut agg, &["req:3|c"]);
        let out = agg.flush(10.0);
        assert_eq!(gauge(&out, "req_total"), Some(10.0));
        assert_eq!(gauge(&out, "req_per_second"), Some(0.3));
        let out = agg.flush(10.0);
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
        let out = agg.flush(1.0);
        assert_eq!(gauge(&out, "temp"), Some(12.0));
        assert_eq!(gauge(&out, "users"), Some(2.0));
        let out = agg.flush(1.0);
        assert_eq!(gauge(&out, "temp"), Some(12.0), "gauges keep their value");
        assert_eq!(gauge(&out, "users"), Some(0.0), "sets count per flush");
    }

    #[test]
    fn timers_become_histograms_of_seconds() {
        let mut agg = Aggregator::new(10);
        feed(
            &mut agg,
            &["lat:100|ms", "lat:200:300|ms", "lat:50|ms|@0.25"],
        );
        let out = agg.flush(1.0);
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
        assert!(agg.flush(1.0).iter().all(|s| s.metric != "lat_seconds"));
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
        let out = agg.flush(1.0);
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
    fn idle_series_expire_and_negative_timers_are_refused() {
        let mut agg = Aggregator::new(2);
        feed(&mut agg, &["g:1|g"]);
        assert_eq!(agg.flush(1.0).len(), 1);
        assert_eq!(agg.flush(1.0).len(), 1);
        assert_eq!(agg.flush(1.0).len(), 0);
        assert_eq!(agg.series(), 0);
        feed(&mut agg, &["g:5|g"]);
        assert_eq!(gauge(&agg.flush(1.0), "g"), Some(5.0));
        let line = parse::parse_line(b"t:-1|ms").unwrap();
        assert!(agg.add(&line).is_err());
    }
}
