//! The write path: a batch's synced write (ingest-log record, histogram
//! rows and their rollup operands, the agent's high-water mark, the host
//! record), then its samples applied to the heads and the chunks they seal
//! written with their rollup operands.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rocksdb::{WriteBatch, WriteOptions};

use super::keys::{agent_key, encode_host, encode_series, host_key, read_u64, time_key};
use super::{
    CF_HIST_RAW, CF_LOG, CF_META, CF_RAW, CF_SERIES, RocksStorage, decode_chunk, hist_cf, tier_cf,
};
use crate::head::{Head, HeadMap, Heads, SHARDS, SealedChunk};
use crate::ingest_log::{self, LogSample};
use crate::rollup::{self, Tier};
use crate::series_cache::SeriesCache;
use crate::{AppendOutcome, StorageError};
use nightjar_model::model::{Batch, HistogramSample, HostInfo, Point, Sample, SeriesKey};

impl RocksStorage {
    pub(super) fn agent_high_water(&self, host: &str, agent_id: &str) -> Arc<Mutex<u64>> {
        let mut agents = self.agents.lock().expect("poisoned");
        agents
            .entry((host.to_owned(), agent_id.to_owned()))
            .or_default()
            .clone()
    }

    /// The ids of `keys`, creating series that are new.
    fn series_ids<'a>(
        &self,
        keys: impl Iterator<Item = &'a SeriesKey>,
    ) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        let mut missing = Vec::new();
        {
            let index = self.index.read().expect("poisoned");
            for (i, key) in keys.enumerate() {
                match index.id(key) {
                    Some(id) => ids.push(id),
                    None => {
                        ids.push(0);
                        missing.push((i, key));
                    }
                }
            }
        }
        if !missing.is_empty() {
            let keys: Vec<&SeriesKey> = missing.iter().map(|(_, key)| *key).collect();
            for ((i, _), id) in missing.iter().zip(self.create_series(&keys)?) {
                ids[*i] = id;
            }
        }
        Ok(ids)
    }

    /// The ids of the samples' series: from `cache` where the sender's last
    /// batch named the same key in the same place, else from the index
    /// (creating those that are new); `cache` then remembers this batch's
    /// if any was not there.
    fn series_ids_cached(
        &self,
        samples: &[Sample],
        cache: &mut SeriesCache,
    ) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::with_capacity(samples.len());
        let mut missing = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            match cache.get(self.instance, i, &s.series) {
                Some(id) => ids.push(id),
                None => {
                    ids.push(0);
                    missing.push(i);
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        let found = self.series_ids(missing.iter().map(|&i| &samples[i].series))?;
        for (&i, id) in missing.iter().zip(found) {
            ids[i] = id;
        }
        cache.remember(self.instance, samples.iter().map(|s| &s.series), &ids);
        Ok(ids)
    }

    /// The ids of `keys`, creating those still missing under one lock and
    /// in one write, so a sender's new series get consecutive ids (and so
    /// share few head shards; [`crate::head::SHARD_RUN`]).
    fn create_series(&self, keys: &[&SeriesKey]) -> Result<Vec<u64>, StorageError> {
        let mut next_id = self.create_series.lock().expect("poisoned");
        #[cfg(test)]
        if self.fail_series_creation.load(Ordering::Relaxed) {
            return Err(self.io("create series", "fails (fail_series_creation)"));
        }
        let mut ids = Vec::with_capacity(keys.len());
        let mut new: HashMap<&SeriesKey, u64> = HashMap::new();
        let mut wb = WriteBatch::default();
        {
            let index = self.index.read().expect("poisoned");
            for &key in keys {
                let id = match index.id(key).or_else(|| new.get(key).copied()) {
                    Some(id) => id,
                    None => {
                        let id = *next_id + new.len() as u64;
                        wb.put_cf(self.cf(CF_SERIES), id.to_be_bytes(), encode_series(key));
                        new.insert(key, id);
                        id
                    }
                };
                ids.push(id);
            }
        }
        if new.is_empty() {
            return Ok(ids);
        }
        // Synced: a batch's record in the ingest log's segments names its
        // series by id, and after a crash the replay must find every id it
        // meets in the index (an id lost here would be given again to
        // another series). New series are rare after a sender's first batch.
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(wb, &sync)
            .map_err(|e| self.io("create series", e))?;
        *next_id += new.len() as u64;
        let mut new: Vec<(&SeriesKey, u64)> = new.into_iter().collect();
        // The index takes ids in increasing order (its postings stay sorted).
        new.sort_unstable_by_key(|&(_, id)| id);
        let mut index = self.index.write().expect("poisoned");
        for (key, id) in new {
            index.insert(id, key.clone());
        }
        Ok(ids)
    }

    /// The newest stored point of series `id`, read from its last chunk.
    fn newest_on_disk(&self, id: u64) -> Result<Option<Point>, StorageError> {
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_RAW));
        iter.seek_for_prev(time_key(id, i64::MAX));
        iter.status().map_err(|e| self.io("read newest chunk", e))?;
        let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
            return Ok(None);
        };
        if read_u64(k) != Some(id) {
            return Ok(None);
        }
        Ok(decode_chunk(v).last().copied())
    }

    pub(super) fn head_for<'a>(&self, heads: &'a mut HeadMap, id: u64) -> &'a mut Head {
        heads.get_or_insert_with(id, || {
            // A read failure here leaves the head empty: points are then
            // checked against nothing older, and duplicates of the last
            // chunk would be stored again rather than anything lost.
            let newest = self.newest_on_disk(id).unwrap_or_else(|e| {
                tracing::error!(error = %e, series = id, "cannot read a series' newest point");
                None
            });
            Head::new(newest)
        })
    }

    /// Applies the samples of ingest-log record `log_seq` to the heads and
    /// writes the chunks they seal. Returns how many samples were refused
    /// as not newer than their series' newest point.
    pub(super) fn apply(&self, log_seq: u64, samples: &[LogSample]) -> u32 {
        let now = Instant::now();
        let mut by_shard: Vec<Vec<&LogSample>> = vec![Vec::new(); SHARDS];
        for s in samples {
            by_shard[Heads::shard_of(s.0)].push(s);
        }
        let mut refused = 0;
        for (shard, samples) in by_shard.iter().enumerate() {
            if samples.is_empty() {
                continue;
            }
            let mut heads = self.heads.lock(shard);
            let mut sealed = Vec::new();
            for &&(id, timestamp_ms, value) in samples {
                let point = Point {
                    timestamp_ms,
                    value,
                };
                let head = self.head_for(&mut heads, id);
                match head.push(point, log_seq, now) {
                    Ok(Some(chunk)) => {
                        // Older chunks whose write failed go first, in the
                        // same write: never a newer chunk on disk alone.
                        sealed.extend(head.take_unwritten().into_iter().map(|c| (id, c)));
                        sealed.push((id, chunk));
                    }
                    Ok(None) => {}
                    Err(_not_newer) => refused += 1,
                }
            }
            // Written under the shard lock, so a query sees each point
            // either in a head or in a written chunk, never both or neither.
            // A failure is not the batch's: it is durable in the ingest log,
            // and its chunks are kept (logged and counted there).
            let _ = self.write_or_keep(&mut heads, sealed);
        }
        refused
    }

    /// Writes `sealed`; if that fails, gives the chunks back to their heads
    /// (which keep them, pinning the ingest log, until a later write or
    /// the periodic flush succeeds). Returns the write's error.
    pub(super) fn write_or_keep(
        &self,
        heads: &mut HeadMap,
        sealed: Vec<(u64, SealedChunk)>,
    ) -> Result<(), StorageError> {
        let Err(error) = self.write_sealed(&sealed) else {
            return Ok(());
        };
        *self.chunk_write_error.lock().expect("poisoned") = Some(error.to_string());
        self.kept_chunks
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        if let Some(lines_held_back) = CHUNK_WRITE_FAILED_LOG.due() {
            tracing::error!(%error, chunks = sealed.len(), lines_held_back, "cannot write sealed chunks; keeping them in memory and in the ingest log until a write succeeds");
        }
        self.chunk_write_failures.fetch_add(1, Ordering::Relaxed);
        for (id, chunk) in sealed {
            if let Some(head) = heads.get_mut(id) {
                head.keep_unwritten(chunk);
            }
        }
        Err(error)
    }

    /// Adds the batch's histogram samples to `wb`: the raw row and a merge
    /// operand per rollup tier. Refuses those whose series already holds a
    /// histogram at that timestamp (a second copy would be counted twice in
    /// the rollups).
    fn add_histograms(
        &self,
        wb: &mut WriteBatch,
        histograms: &[HistogramSample],
    ) -> Result<HistogramsAdded, StorageError> {
        let mut added = HistogramsAdded::default();
        if histograms.is_empty() {
            return Ok(added);
        }
        added.ids = self.series_ids(histograms.iter().map(|h| &h.series))?;
        let raw = self.cf(CF_HIST_RAW);
        let mut seen = BTreeSet::new();
        let mut new_series = Vec::new();
        for (i, (&id, h)) in added.ids.iter().zip(histograms).enumerate() {
            let key = time_key(id, h.timestamp_ms);
            let stored = self
                .db
                .get_pinned_cf(raw, key)
                .map_err(|e| self.io("read histogram", e))?;
            if stored.is_some() || !seen.insert(key) {
                added.refused += 1;
                continue;
            }
            let encoded = h.histogram.encode();
            self.put_histogram(wb, id, h.timestamp_ms, &encoded);
            new_series.push(id);
            added.taken.push(i);
            added.rows.push((id, h.timestamp_ms, encoded));
        }
        // Marked before the write: a read may then look for a histogram not
        // yet there, never miss one that is.
        self.histogram_series
            .write()
            .expect("poisoned")
            .extend(new_series);
        Ok(added)
    }

    /// Adds one histogram's raw row and its rollup operands to `wb` (one
    /// write: a raw row present means its operands are too).
    pub(super) fn put_histogram(&self, wb: &mut WriteBatch, id: u64, ts: i64, encoded: &[u8]) {
        wb.put_cf(self.cf(CF_HIST_RAW), time_key(id, ts), encoded);
        for tier in Tier::ROLLUPS {
            wb.merge_cf(
                self.cf(hist_cf(tier)),
                time_key(id, tier.bucket(ts)),
                encoded,
            );
        }
    }

    /// Writes sealed chunks and their rollup operands in one batch.
    pub(super) fn write_sealed(&self, sealed: &[(u64, SealedChunk)]) -> Result<(), StorageError> {
        if sealed.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if self.fail_chunk_writes.load(Ordering::Relaxed) {
            return Err(self.io("write sealed chunks", "writes fail (fail_chunk_writes)"));
        }
        let mut wb = WriteBatch::default();
        for (id, chunk) in sealed {
            wb.put_cf(self.cf(CF_RAW), time_key(*id, chunk.first_ts), &chunk.bytes);
            for tier in Tier::ROLLUPS {
                let cf = self.cf(tier_cf(tier));
                let buckets = rollup::summarise(tier, chunk.points.iter().copied());
                for (block, list) in rollup::by_block(tier, &buckets) {
                    wb.merge_cf(
                        cf,
                        time_key(*id, block),
                        rollup::encode_block(tier, block, &list),
                    );
                }
            }
        }
        self.db
            .write(wb)
            .map_err(|e| self.io("write sealed chunks", e))
    }

    pub(super) fn append_impl(
        &self,
        batch: &Batch,
        now_ms: i64,
        cache: Option<&mut SeriesCache>,
    ) -> Result<AppendOutcome, StorageError> {
        let header = Header {
            host: &batch.host,
            agent_id: &batch.agent_id,
            seq: batch.seq,
            interval_ms: batch.interval_ms,
        };
        self.append_samples(header, &batch.histograms, now_ms, || {
            let ids = match cache {
                Some(cache) => self.series_ids_cached(&batch.samples, cache)?,
                None => self.series_ids(batch.samples.iter().map(|s| &s.series))?,
            };
            Ok(ids
                .into_iter()
                .zip(&batch.samples)
                .map(|(id, s)| (id, s.point.timestamp_ms, s.point.value))
                .collect())
        })
    }

    /// The ids of `keys` as series references for [`RocksStorage::append_refs`],
    /// creating the series that are new.
    pub fn series_refs(&self, keys: &[SeriesKey]) -> Result<Vec<u64>, StorageError> {
        self.series_ids(keys.iter())
    }

    /// Appends a batch whose samples name their series by reference (from
    /// [`RocksStorage::series_refs`]), with the durability of
    /// [`crate::Storage::append`]: a sender that keeps its series' references, as
    /// Prometheus' appenders do, skips hashing and comparing every sample's
    /// key. A reference this storage never gave out fails the whole batch,
    /// before anything is written.
    pub fn append_refs(
        &self,
        batch: &RefBatch,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let header = Header {
            host: &batch.host,
            agent_id: &batch.agent_id,
            seq: batch.seq,
            interval_ms: batch.interval_ms,
        };
        self.append_samples(header, &[], now_ms, || {
            let index = self.index.read().expect("poisoned");
            // A loop, not a fallible collect: that one cannot size its
            // vector up front and grew it a dozen times a batch.
            let mut samples = Vec::with_capacity(batch.samples.len());
            for &(id, point) in &batch.samples {
                if index.key(id).is_none() {
                    return Err(StorageError::UnknownSeries { reference: id });
                }
                samples.push((id, point.timestamp_ms, point.value));
            }
            Ok(samples)
        })
    }

    /// The write path shared by both appends: the replay check, then
    /// `samples()` (the batch's samples by series id), the durable write,
    /// the heads.
    fn append_samples(
        &self,
        batch: Header<'_>,
        histograms: &[HistogramSample],
        now_ms: i64,
        samples: impl FnOnce() -> Result<Vec<LogSample>, StorageError>,
    ) -> Result<AppendOutcome, StorageError> {
        let high_water = self.agent_high_water(batch.host, batch.agent_id);
        let mut high_water = high_water.lock().expect("poisoned");
        if batch.seq <= *high_water {
            return Ok(AppendOutcome::Replay {
                acked_through: *high_water,
            });
        }
        let samples = samples()?;

        let mut wb = WriteBatch::default();
        // Before the log seq is taken: an error here must not leave a seq
        // in flight, which would pin the ingest log's floor for good.
        let histograms_added = self.add_histograms(&mut wb, histograms)?;
        // Built before the write, as the heads will judge the points.
        let forward = self
            .forwarding
            .then(|| {
                self.forward_record(
                    histograms,
                    &samples,
                    &histograms_added.taken,
                    &histograms_added.ids,
                )
            })
            .filter(|r| !r.is_empty());
        let log_seq = {
            let mut log = self.log.lock().expect("poisoned");
            let seq = log.next_seq;
            log.next_seq += 1;
            log.in_flight.insert(seq);
            seq
        };
        let host = HostInfo {
            host: batch.host.to_owned(),
            last_seen_ms: now_ms,
            interval_ms: batch.interval_ms,
        };
        let meta_cf = self.cf(CF_META);
        wb.put_cf(
            meta_cf,
            agent_key(batch.host, batch.agent_id),
            batch.seq.to_be_bytes(),
        );
        wb.put_cf(meta_cf, host_key(&host.host), encode_host(&host));
        let written = if self.forwarding {
            self.write_batch_to_rocksdb(wb, log_seq, &samples, forward.as_ref())
        } else {
            self.write_batch_to_segments(
                wb,
                log_seq,
                &batch,
                now_ms,
                &samples,
                histograms_added.rows,
            )
        };
        let refused = match written {
            // The batch is durable from here on; only now may it be acked.
            Ok(()) => {
                *self.batch_write_error.lock().expect("poisoned") = None;
                if let Some(record) = &forward {
                    self.forward_written(log_seq, record.len());
                }
                Ok(self.apply(log_seq, &samples))
            }
            Err(error) => {
                self.batch_write_failures.fetch_add(1, Ordering::Relaxed);
                *self.batch_write_error.lock().expect("poisoned") = Some(error.to_string());
                Err(error)
            }
        };
        // The mark and host record are raised before the record leaves
        // `in_flight`: a truncation that passes it finds them written.
        if refused.is_ok() {
            *high_water = batch.seq;
            self.hosts
                .write()
                .expect("poisoned")
                .insert(host.host.clone(), host);
        }
        self.log
            .lock()
            .expect("poisoned")
            .in_flight
            .remove(&log_seq);
        let out_of_order = refused? + histograms_added.refused;
        Ok(AppendOutcome::Stored {
            acked_through: batch.seq,
            out_of_order,
        })
    }

    /// A batch stored while forwarding: its ingest-log record, forward
    /// record, histogram rows, mark and host record in one synced RocksDB
    /// write (the forward record is durable exactly when its batch is).
    fn write_batch_to_rocksdb(
        &self,
        mut wb: WriteBatch,
        log_seq: u64,
        samples: &[LogSample],
        forward: Option<&crate::forward::ForwardRecord>,
    ) -> Result<(), StorageError> {
        wb.put_cf(
            self.cf(CF_LOG),
            log_seq.to_be_bytes(),
            ingest_log::encode(samples),
        );
        if let Some(record) = forward {
            self.put_forward(&mut wb, log_seq, record);
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(wb, &sync)
            .map_err(|e| self.io("write batch", e))
    }

    /// A batch stored without forwarding: its record (samples, histograms,
    /// sender, mark, host) synced in the ingest log's segments, then
    /// `wb` (histogram rows, mark, host record) written to RocksDB
    /// unsynced. Invariant: the record is synced before the batch is
    /// acked; what `wb` holds is rebuilt from the record by the replay at
    /// open if a crash loses it, and is synced by the floor's write
    /// ([`RocksStorage::truncate_log`]) before the record is deleted.
    fn write_batch_to_segments(
        &self,
        wb: WriteBatch,
        log_seq: u64,
        batch: &Header<'_>,
        now_ms: i64,
        samples: &[LogSample],
        histograms: Vec<(u64, i64, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let histograms: Vec<(u64, i64, &[u8])> = histograms
            .iter()
            .map(|(id, ts, bytes)| (*id, *ts, bytes.as_slice()))
            .collect();
        let record = ingest_log::encode_batch(
            (
                batch.host,
                batch.agent_id,
                batch.seq,
                batch.interval_ms,
                now_ms,
            ),
            samples,
            &histograms,
        );
        self.segments
            .append(log_seq, &record)
            .map_err(|e| self.io("write batch", e))?;
        // Tests: as if a crash lost this write, which the replay rebuilds.
        #[cfg(test)]
        if self.lose_unsynced_batch_writes.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Not synced: see above. If it fails (a full disk, say) the batch
        // is not acked; its record is replayed at the next open, and the
        // sender's resend stores what the heads do not hold yet.
        self.db.write(wb).map_err(|e| self.io("write batch", e))
    }
}

/// Whose batch, and its place in the sender's sequence.
struct Header<'a> {
    host: &'a str,
    agent_id: &'a str,
    seq: u64,
    interval_ms: u64,
}

/// The histograms of a batch taken into a write.
#[derive(Default)]
struct HistogramsAdded {
    /// How many were refused (their series holds one at that timestamp).
    refused: u32,
    /// Indices of those taken.
    taken: Vec<usize>,
    /// Every histogram's series id.
    ids: Vec<u64>,
    /// Those taken, as rows: (series id, timestamp ms, encoded).
    rows: Vec<(u64, i64, Vec<u8>)>,
}

/// A batch whose samples name their series by reference (series id, from
/// [`RocksStorage::series_refs`]) instead of by key.
#[derive(Clone, Debug, Default)]
pub struct RefBatch {
    /// The sender's stable identity.
    pub agent_id: String,
    /// The host the samples are from.
    pub host: String,
    /// The sender's sequence number for this batch.
    pub seq: u64,
    /// The sender's sampling interval in ms (0 if unknown).
    pub interval_ms: u64,
    /// (series reference, point).
    pub samples: Vec<(u64, Point)>,
}

/// At most one "cannot write sealed chunks" line a minute (each failure is
/// counted).
static CHUNK_WRITE_FAILED_LOG: nightjar_common::log_limit::RateLimitedLog<60> =
    nightjar_common::log_limit::RateLimitedLog::new();
