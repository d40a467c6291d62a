//! [`Storage`] in memory: the same contract as the RocksDB implementation
//! (replays by high-water mark, points only newer than a series' newest,
//! a histogram timestamp taken once, tiers summarised with the same
//! [`rollup`] arithmetic, reads in series-creation order) without
//! durability. For unit tests of ingest, queries and alerting in process;
//! [`MemoryStorage::fail_appends`] makes appends fail as a broken disk would.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nightjar_model::histogram::Histogram;
use nightjar_model::model::{Batch, HostInfo, Point, SeriesKey, SharedKey};
use nightjar_model::selector::Selector;

use crate::rollup::{self, Tier};
use crate::{
    AppendOutcome, HostSummary, SeriesHistograms, SeriesSummaries, Storage, StorageError,
    StorageStats,
};

/// Storage in memory.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    data: Mutex<Data>,
    fail_appends: AtomicBool,
}

#[derive(Debug, Default)]
struct Data {
    /// Series in creation order (their id is the index).
    series: Vec<Series>,
    ids: HashMap<SeriesKey, usize>,
    high_water: HashMap<(String, String), u64>,
    hosts: BTreeMap<String, HostInfo>,
}

#[derive(Debug)]
struct Series {
    key: SharedKey,
    points: BTreeMap<i64, f64>,
    histograms: BTreeMap<i64, Histogram>,
}

impl Data {
    fn series_mut(&mut self, key: &SeriesKey) -> &mut Series {
        let next = self.series.len();
        let id = *self.ids.entry(key.clone()).or_insert(next);
        if id == next {
            self.series.push(Series {
                key: Arc::new(key.clone()),
                points: BTreeMap::new(),
                histograms: BTreeMap::new(),
            });
        }
        &mut self.series[id]
    }

    fn matching<'a>(&'a self, selector: &'a Selector) -> impl Iterator<Item = &'a Series> {
        self.series.iter().filter(|s| selector.matches(&s.key))
    }
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// From now on every append fails with an I/O error (or works again
    /// with `false`), as a full or broken disk would.
    pub fn fail_appends(&self, fail: bool) {
        self.fail_appends.store(fail, Ordering::Relaxed);
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().expect("memory storage lock")
    }
}

impl Storage for MemoryStorage {
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let mut data = self.data();
        let mark = (batch.host.clone(), batch.agent_id.clone());
        let high_water = data.high_water.get(&mark).copied().unwrap_or(0);
        if batch.seq <= high_water {
            return Ok(AppendOutcome::Replay {
                acked_through: high_water,
            });
        }
        if self.fail_appends.load(Ordering::Relaxed) {
            return Err(StorageError::Io {
                path: "memory".into(),
                operation: "write batch",
                reason: "appends fail (MemoryStorage::fail_appends)".into(),
            });
        }
        let mut out_of_order = 0u32;
        for sample in &batch.samples {
            let series = data.series_mut(&sample.series);
            let newest = series.points.last_key_value().map(|(t, _)| *t);
            if newest.is_some_and(|t| sample.point.timestamp_ms <= t) {
                out_of_order += 1;
                continue;
            }
            series
                .points
                .insert(sample.point.timestamp_ms, sample.point.value);
        }
        for sample in &batch.histograms {
            let series = data.series_mut(&sample.series);
            if series.histograms.contains_key(&sample.timestamp_ms) {
                out_of_order += 1;
                continue;
            }
            series
                .histograms
                .insert(sample.timestamp_ms, sample.histogram.clone());
        }
        data.high_water.insert(mark, batch.seq);
        data.hosts.insert(
            batch.host.clone(),
            HostInfo {
                host: batch.host.clone(),
                last_seen_ms: now_ms,
                interval_ms: batch.interval_ms,
            },
        );
        Ok(AppendOutcome::Stored {
            acked_through: batch.seq,
            out_of_order,
        })
    }

    fn series(&self, selector: &Selector) -> Vec<SeriesKey> {
        let data = self.data();
        let mut keys: Vec<SeriesKey> = data
            .matching(selector)
            .map(|s| SeriesKey::clone(&s.key))
            .collect();
        keys.sort_unstable();
        keys
    }

    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError> {
        if end_ms < start_ms {
            return Ok(Vec::new());
        }
        let data = self.data();
        Ok(data
            .matching(selector)
            .map(|s| {
                let points: Vec<Point> = s
                    .points
                    .range(start_ms..=end_ms)
                    .map(|(t, v)| Point::new(*t, *v))
                    .collect();
                (s.key.clone(), points)
            })
            .filter(|(_, points)| !points.is_empty())
            .collect())
    }

    fn query_summaries(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError> {
        assert!(tier != Tier::Raw, "raw points are read with query_range");
        if end_ms < start_ms {
            return Ok(Vec::new());
        }
        let (first, last) = (tier.bucket(start_ms), tier.bucket(end_ms));
        let end = last.saturating_add(tier.width_ms() - 1);
        let data = self.data();
        Ok(data
            .matching(selector)
            .map(|s| {
                let points = s.points.range(first..=end).map(|(t, v)| Point::new(*t, *v));
                (s.key.clone(), rollup::summarise(tier, points))
            })
            .filter(|(_, buckets)| !buckets.is_empty())
            .collect())
    }

    fn query_histograms(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError> {
        if end_ms < start_ms {
            return Ok(Vec::new());
        }
        let data = self.data();
        let mut out = Vec::new();
        for s in data.matching(selector) {
            let found: Vec<(i64, Histogram)> = match tier {
                Tier::Raw => s
                    .histograms
                    .range(start_ms..=end_ms)
                    .map(|(t, h)| (*t, h.clone()))
                    .collect(),
                _ => {
                    let (first, last) = (tier.bucket(start_ms), tier.bucket(end_ms));
                    let end = last.saturating_add(tier.width_ms() - 1);
                    let mut buckets: BTreeMap<i64, Histogram> = BTreeMap::new();
                    for (t, h) in s.histograms.range(first..=end) {
                        match buckets.entry(tier.bucket(*t)) {
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(h.clone());
                            }
                            std::collections::btree_map::Entry::Occupied(mut o) => {
                                // Units differ only if a series changed its
                                // unit; the RocksDB merge skips those too.
                                let _ = o.get_mut().merge(h);
                            }
                        }
                    }
                    buckets.into_iter().collect()
                }
            };
            if !found.is_empty() {
                out.push((s.key.clone(), found));
            }
        }
        Ok(out)
    }

    fn latest(&self, selector: &Selector) -> Result<Vec<(u64, SharedKey, Point)>, StorageError> {
        let data = self.data();
        Ok(data
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| selector.matches(&s.key))
            .filter_map(|(id, s)| {
                let (t, v) = s.points.last_key_value()?;
                Some((id as u64, s.key.clone(), Point::new(*t, *v)))
            })
            .collect())
    }

    fn hosts(&self) -> Vec<HostSummary> {
        let data = self.data();
        data.hosts
            .values()
            .map(|info| HostSummary {
                info: info.clone(),
                series_count: data
                    .series
                    .iter()
                    .filter(|s| s.key.labels.get("host") == Some(info.host.as_str()))
                    .count() as u64,
            })
            .collect()
    }

    fn high_water(&self, host: &str, agent_id: &str) -> u64 {
        self.data()
            .high_water
            .get(&(host.to_owned(), agent_id.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn series_exists(&self, key: &SeriesKey) -> bool {
        self.data().ids.contains_key(key)
    }

    fn series_counts(&self, host: &str) -> (u64, u64) {
        let data = self.data();
        let of_host = data
            .series
            .iter()
            .filter(|s| s.key.labels.get("host") == Some(host))
            .count();
        (of_host as u64, data.series.len() as u64)
    }

    fn stats(&self) -> StorageStats {
        StorageStats {
            series: self.data().series.len() as u64,
            ..StorageStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use nightjar_model::model::{Labels, Sample};

    use super::*;

    fn batch(seq: u64, points: &[(&str, i64, f64)]) -> Batch {
        Batch {
            agent_id: "agent-1".into(),
            host: "web-1".into(),
            seq,
            interval_ms: 10_000,
            samples: points
                .iter()
                .map(|(metric, t, v)| Sample {
                    series: SeriesKey {
                        metric: (*metric).into(),
                        labels: Labels::from_pairs(vec![("host".into(), "web-1".into())]).unwrap(),
                    },
                    point: Point::new(*t, *v),
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    #[test]
    fn follows_the_storage_contract() {
        let s = MemoryStorage::new();
        let all = Selector::default();
        let first = s
            .append(&batch(1, &[("cpu", 1_000, 1.0), ("mem", 1_000, 5.0)]), 7)
            .unwrap();
        assert_eq!(
            first,
            AppendOutcome::Stored {
                acked_through: 1,
                out_of_order: 0
            }
        );
        assert_eq!(
            s.append(&batch(1, &[("cpu", 2_000, 9.0)]), 8).unwrap(),
            AppendOutcome::Replay { acked_through: 1 },
            "a seq at or below the high-water mark is a replay"
        );
        let refused = s
            .append(&batch(2, &[("cpu", 1_000, 2.0), ("cpu", 61_000, 3.0)]), 9)
            .unwrap();
        assert_eq!(
            refused,
            AppendOutcome::Stored {
                acked_through: 2,
                out_of_order: 1
            },
            "a point not newer than the series' newest is refused"
        );
        let range = s.query_range(&all, 0, 100_000).unwrap();
        assert_eq!(range.len(), 2);
        assert_eq!(range[0].0.metric, "cpu", "creation order");
        assert_eq!(
            range[0].1,
            vec![Point::new(1_000, 1.0), Point::new(61_000, 3.0)]
        );
        let minutes = s.query_summaries(&all, Tier::Minute, 0, 100_000).unwrap();
        let cpu: Vec<(i64, f64)> = minutes[0].1.iter().map(|(t, b)| (*t, b.sum)).collect();
        assert_eq!(cpu, vec![(0, 1.0), (60_000, 3.0)]);
        assert_eq!(s.high_water("web-1", "agent-1"), 2);
        assert_eq!(s.series_counts("web-1"), (2, 2));
        assert_eq!(s.hosts()[0].info.last_seen_ms, 9);
        s.fail_appends(true);
        assert!(s.append(&batch(3, &[("cpu", 70_000, 1.0)]), 10).is_err());
        assert_eq!(
            s.high_water("web-1", "agent-1"),
            2,
            "a failed append stores nothing"
        );
    }
}
