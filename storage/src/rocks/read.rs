//! The read path: selectors resolved through the index, then one
//! snapshot-pinned range read per series (raw chunks, rollup rows,
//! histograms) merged with the series' open points.

use std::collections::BTreeMap;

use rocksdb::{IteratorMode, ReadOptions};

use super::keys::{key_time, time_key, upper_key};
use super::{CF_RAW, KeyValue, RocksStorage, hist_cf, tier_cf};
use crate::chunk;
use crate::head::{Head, Heads, SHARDS};
use crate::rollup::{self, Tier};
use crate::{SeriesHistograms, SeriesSummaries, StorageError};
use nightjar_model::histogram::Histogram;
use nightjar_model::model::{Point, SeriesKey, SharedKey, Summary};
use nightjar_model::selector::Selector;

impl RocksStorage {
    fn matching(&self, selector: &Selector) -> Vec<(u64, SharedKey)> {
        self.index.read().expect("poisoned").matching(selector)
    }

    /// Under the series' shard lock: its open points and a snapshot-pinned
    /// read of `cf` from `lower` (inclusive) to `upper` (exclusive).
    fn read_series(
        &self,
        id: u64,
        cf: &str,
        lower: Vec<u8>,
        upper: Vec<u8>,
    ) -> Result<(Vec<Point>, Vec<KeyValue>), StorageError> {
        let (open, snapshot) = {
            let heads = self.heads.lock(Heads::shard_of(id));
            let open = heads
                .get(id)
                .map(Head::points_in_memory)
                .unwrap_or_default();
            (open, self.db.snapshot())
        };
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snapshot);
        opts.set_iterate_lower_bound(lower);
        opts.set_iterate_upper_bound(upper);
        let rows = self
            .db
            .iterator_cf_opt(self.cf(cf), opts, IteratorMode::Start)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.io("read series", e))?;
        Ok((open, rows))
    }

    pub(super) fn series_impl(&self, selector: &Selector) -> Vec<SeriesKey> {
        let mut keys: Vec<SeriesKey> = self
            .matching(selector)
            .into_iter()
            .map(|(_, k)| SeriesKey::clone(&k))
            .collect();
        keys.sort_unstable();
        keys
    }

    pub(super) fn query_range_impl(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SharedKey, Vec<Point>)>, StorageError> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let in_range = |p: &Point| (start_ms..=end_ms).contains(&p.timestamp_ms);
        for (id, key) in self.matching(selector) {
            // A chunk starting before the hour of `start_ms` ends before it.
            let lower = time_key(id, Tier::Hour.bucket(start_ms));
            let (open, rows) =
                self.read_series(id, CF_RAW, lower.to_vec(), upper_key(id, end_ms))?;
            let mut points: Vec<Point> = rows
                .iter()
                .flat_map(|(_, v)| decode_chunk(v))
                .filter(in_range)
                .collect();
            points.extend(open.into_iter().filter(in_range));
            if !points.is_empty() {
                out.push((key, points));
            }
        }
        Ok(out)
    }

    pub(super) fn query_summaries_impl(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesSummaries>, StorageError> {
        assert!(tier != Tier::Raw, "raw points are read with query_range");
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let (first, last) = (tier.bucket(start_ms), tier.bucket(end_ms));
        for (id, key) in self.matching(selector) {
            let (open, rows) = self.read_series(
                id,
                tier_cf(tier),
                time_key(id, tier.block(first)).to_vec(),
                upper_key(id, last),
            )?;
            let mut buckets: BTreeMap<i64, Summary> = BTreeMap::new();
            for (k, v) in &rows {
                let Some(block) = key_time(k) else { continue };
                match rollup::decode_block(tier, block, v) {
                    Some(list) => buckets.extend(
                        list.into_iter()
                            .filter(|(start, _)| (first..=last).contains(start)),
                    ),
                    None => {
                        tracing::error!(series = id, block, "skipping an undecodable rollup row")
                    }
                }
            }
            let open = open
                .into_iter()
                .filter(|p| (first..=last).contains(&tier.bucket(p.timestamp_ms)));
            for (ts, s) in rollup::summarise(tier, open) {
                buckets.entry(ts).and_modify(|b| b.merge(&s)).or_insert(s);
            }
            if !buckets.is_empty() {
                out.push((key, buckets.into_iter().collect()));
            }
        }
        Ok(out)
    }

    pub(super) fn query_histograms_impl(
        &self,
        selector: &Selector,
        tier: Tier,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesHistograms>, StorageError> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        let (first, last) = match tier {
            Tier::Raw => (start_ms, end_ms),
            _ => (tier.bucket(start_ms), tier.bucket(end_ms)),
        };
        let cf = self.cf(hist_cf(tier));
        let matching: Vec<(u64, SharedKey)> = {
            let with_histograms = self.histogram_series.read().expect("poisoned");
            if with_histograms.is_empty() {
                return Ok(out);
            }
            self.matching(selector)
                .into_iter()
                .filter(|(id, _)| with_histograms.contains(id))
                .collect()
        };
        for (id, key) in matching {
            let mut opts = ReadOptions::default();
            opts.set_iterate_lower_bound(time_key(id, first).to_vec());
            opts.set_iterate_upper_bound(upper_key(id, last));
            let mut found = Vec::new();
            for item in self.db.iterator_cf_opt(cf, opts, IteratorMode::Start) {
                let (k, v) = item.map_err(|e| self.io("read histograms", e))?;
                let Some(ts) = key_time(&k) else { continue };
                match Histogram::decode(&v) {
                    Ok(h) => found.push((ts, h)),
                    Err(error) => {
                        tracing::error!(%error, series = id, ts, "skipping an undecodable stored histogram")
                    }
                }
            }
            if !found.is_empty() {
                out.push((key, found));
            }
        }
        Ok(out)
    }

    pub(super) fn latest_impl(
        &self,
        selector: &Selector,
    ) -> Result<Vec<(u64, SharedKey, Point)>, StorageError> {
        // One lock per shard, not per series: Latest over thousands of
        // series is a dashboard's first query.
        let mut by_shard: Vec<Vec<(u64, SharedKey)>> = vec![Vec::new(); SHARDS];
        for (id, key) in self.matching(selector) {
            by_shard[Heads::shard_of(id)].push((id, key));
        }
        let mut out = Vec::new();
        for (shard, series) in by_shard.into_iter().enumerate() {
            if series.is_empty() {
                continue;
            }
            let mut heads = self.heads.lock(shard);
            for (id, key) in series {
                if let Some(point) = self.head_for(&mut heads, id).newest() {
                    out.push((id, key, point));
                }
            }
        }
        // Back to id order, as every other read answers.
        out.sort_unstable_by_key(|(id, _, _)| *id);
        Ok(out)
    }
}

/// Decodes a stored chunk; a corrupt tail is logged and left out.
pub(super) fn decode_chunk(bytes: &[u8]) -> Vec<Point> {
    let mut out = Vec::with_capacity(chunk::MAX_POINTS);
    for p in chunk::decode(bytes) {
        match p {
            Ok((timestamp_ms, value)) => out.push(Point {
                timestamp_ms,
                value,
            }),
            Err(error) => {
                tracing::error!(%error, "skipping the corrupt rest of a stored chunk");
                break;
            }
        }
    }
    out
}
