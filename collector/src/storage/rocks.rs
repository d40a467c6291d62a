//! [`Storage`] on an embedded RocksDB. The only module that names RocksDB.
//!
//! # Layout
//!
//! Three column families; the byte layouts are drawn in
//! `docs/format/storage-keys.md`.
//!
//! - `series`: series id (u64 BE) → encoded [`SeriesKey`]. Loaded into an
//!   in-memory index at open; ids are never reused.
//! - `samples`: series id (u64 BE) ++ timestamp (i64, sign bit flipped, BE)
//!   → value (f64 bits, LE). A range read is one seek per series. Because
//!   the timestamp is part of the key, writing the same sample twice stores
//!   it once.
//! - `meta`: `a/<agent id>` → the agent's high-water seq (u64 BE);
//!   `h/<host>` → last contact ms (i64 BE) ++ interval ms (u64 BE).
//!
//! # Durability
//!
//! A batch's samples, the agent's new high-water seq and the host record go
//! into one `WriteBatch` written with `sync = true`: after `append` returns,
//! all of it is in the fsynced WAL, or none of it is. A new series' record
//! is written just before (without sync); the WAL is ordered, so the sync
//! of the batch that first uses the series makes the record durable too.
//!
//! Replays are detected per agent under that agent's own lock, so agents
//! ingest in parallel while one agent's batches are applied in order.
//!
//! # Retention
//!
//! A compaction filter on `samples` drops points older than the raw
//! retention, and periodic compaction (daily) makes sure every file is
//! visited, so the data directory plateaus under constant load.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocksdb::compaction_filter::Decision as CompactionDecision;
use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteOptions,
};

use super::index::SeriesIndex;
use super::{AppendOutcome, HostSummary, Storage, StorageError, StorageStats};
use crate::model::{Batch, HostInfo, Labels, Point, SeriesKey};
use crate::selector::Selector;

const CF_SERIES: &str = "series";
const CF_SAMPLES: &str = "samples";
const CF_META: &str = "meta";

/// RocksDB-backed storage under one data directory.
pub struct RocksStorage {
    db: DB,
    path: PathBuf,
    index: RwLock<SeriesIndex>,
    /// Serializes series creation so one key never gets two ids.
    create_series: Mutex<u64>,
    /// Per-agent high-water seq, each behind its own lock.
    agents: Mutex<HashMap<String, Arc<Mutex<u64>>>>,
    hosts: RwLock<BTreeMap<String, HostInfo>>,
}

/// How long data is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw points older than this are deleted at compaction.
    pub raw: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw: Duration::from_secs(15 * 24 * 3600),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl RocksStorage {
    /// Opens with the default retention; see [`RocksStorage::open_with`].
    pub fn open(path: &Path) -> Result<RocksStorage, StorageError> {
        RocksStorage::open_with(path, Retention::default())
    }

    /// Opens (creating if needed) the data directory and loads the series
    /// index, agent high-water marks and host records.
    pub fn open_with(path: &Path, retention: Retention) -> Result<RocksStorage, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(path).map_err(|e| open_err(format!("cannot create: {e}")))?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        let mut samples_opts = Options::default();
        samples_opts.set_compression_type(DBCompressionType::Lz4);
        samples_opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        let raw_ttl_ms = retention.raw.as_millis().min(i64::MAX as u128) as i64;
        samples_opts.set_compaction_filter(
            "nightjar-raw-retention",
            move |_level, key: &[u8], _value: &[u8]| {
                let cutoff = now_ms().saturating_sub(raw_ttl_ms);
                match read_u64(key.get(8..).unwrap_or_default()) {
                    Some(ts) if ((ts ^ (1 << 63)) as i64) < cutoff => CompactionDecision::Remove,
                    _ => CompactionDecision::Keep,
                }
            },
        );
        samples_opts.set_periodic_compaction_seconds(24 * 3600);
        let cfs = [
            ColumnFamilyDescriptor::new(CF_SERIES, Options::default()),
            ColumnFamilyDescriptor::new(CF_SAMPLES, samples_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ];
        let db =
            DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|e| open_err(e.to_string()))?;

        let storage = RocksStorage {
            db,
            path: path.to_owned(),
            index: RwLock::default(),
            create_series: Mutex::new(0),
            agents: Mutex::default(),
            hosts: RwLock::default(),
        };
        storage.load()?;
        Ok(storage)
    }

    fn load(&self) -> Result<(), StorageError> {
        let mut index = SeriesIndex::default();
        for item in self.db.iterator_cf(self.cf(CF_SERIES), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("load series index", e))?;
            let id = read_u64(&k).ok_or_else(|| self.corrupt("series id", &k))?;
            let key = decode_series(&v).ok_or_else(|| self.corrupt("series record", &k))?;
            index.insert(id, key);
        }
        *self.create_series.lock().expect("poisoned") = index.max_id().map_or(1, |id| id + 1);
        *self.index.write().expect("poisoned") = index;

        let mut agents = self.agents.lock().expect("poisoned");
        let mut hosts = self.hosts.write().expect("poisoned");
        for item in self.db.iterator_cf(self.cf(CF_META), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io("load metadata", e))?;
            if let Some(agent) = k.strip_prefix(b"a/") {
                let seq = read_u64(&v).ok_or_else(|| self.corrupt("agent record", &k))?;
                agents.insert(
                    String::from_utf8_lossy(agent).into_owned(),
                    Arc::new(Mutex::new(seq)),
                );
            } else if let Some(host) = k.strip_prefix(b"h/") {
                let info = decode_host(host, &v).ok_or_else(|| self.corrupt("host record", &k))?;
                hosts.insert(info.host.clone(), info);
            }
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn io(&self, operation: &'static str, e: rocksdb::Error) -> StorageError {
        StorageError::Io {
            path: self.path.display().to_string(),
            operation,
            reason: e.to_string(),
        }
    }

    fn corrupt(&self, what: &str, key: &[u8]) -> StorageError {
        StorageError::Open {
            path: self.path.display().to_string(),
            reason: format!("corrupt {what} at key {key:02x?}"),
        }
    }

    /// Compacts the samples column family now (retention applies at
    /// compaction; this is for tests and maintenance).
    pub fn compact_samples(&self) {
        self.db
            .compact_range_cf(self.cf(CF_SAMPLES), None::<&[u8]>, None::<&[u8]>);
    }

    fn agent_high_water(&self, agent_id: &str) -> Arc<Mutex<u64>> {
        let mut agents = self.agents.lock().expect("poisoned");
        agents.entry(agent_id.to_owned()).or_default().clone()
    }

    /// The id of `key`, creating the series if it is new.
    fn series_id(&self, key: &SeriesKey) -> Result<u64, StorageError> {
        if let Some(id) = self.index.read().expect("poisoned").id(key) {
            return Ok(id);
        }
        let mut next_id = self.create_series.lock().expect("poisoned");
        if let Some(id) = self.index.read().expect("poisoned").id(key) {
            return Ok(id);
        }
        let id = *next_id;
        // Not synced on its own: the synced batch that uses it follows in the WAL.
        self.db
            .put_cf(self.cf(CF_SERIES), id.to_be_bytes(), encode_series(key))
            .map_err(|e| self.io("create series", e))?;
        *next_id += 1;
        self.index
            .write()
            .expect("poisoned")
            .insert(id, key.clone());
        Ok(id)
    }

    fn matching(&self, selector: &Selector) -> Vec<(u64, SeriesKey)> {
        self.index.read().expect("poisoned").matching(selector)
    }
}

impl Storage for RocksStorage {
    fn append(&self, batch: &Batch, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let high_water = self.agent_high_water(&batch.agent_id);
        let mut high_water = high_water.lock().expect("poisoned");
        if batch.seq <= *high_water {
            return Ok(AppendOutcome::Replay {
                acked_through: *high_water,
            });
        }

        let mut wb = WriteBatch::default();
        let samples_cf = self.cf(CF_SAMPLES);
        for sample in &batch.samples {
            let id = self.series_id(&sample.series)?;
            wb.put_cf(
                samples_cf,
                sample_key(id, sample.point.timestamp_ms),
                sample.point.value.to_le_bytes(),
            );
        }
        let meta_cf = self.cf(CF_META);
        wb.put_cf(meta_cf, agent_key(&batch.agent_id), batch.seq.to_be_bytes());
        let host = HostInfo {
            host: batch.host.clone(),
            last_seen_ms: now_ms,
            interval_ms: batch.interval_ms,
        };
        wb.put_cf(meta_cf, host_key(&host.host), encode_host(&host));

        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db
            .write_opt(wb, &sync)
            .map_err(|e| self.io("write batch", e))?;
        // The batch is durable from here on; only now may it be acked.
        *high_water = batch.seq;
        self.hosts
            .write()
            .expect("poisoned")
            .insert(host.host.clone(), host);
        Ok(AppendOutcome::Stored {
            acked_through: batch.seq,
        })
    }

    fn series(&self, selector: &Selector) -> Vec<SeriesKey> {
        self.matching(selector)
            .into_iter()
            .map(|(_, k)| k)
            .collect()
    }

    fn query_range(
        &self,
        selector: &Selector,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(SeriesKey, Vec<Point>)>, StorageError> {
        let mut out = Vec::new();
        if end_ms < start_ms {
            return Ok(out);
        }
        for (id, key) in self.matching(selector) {
            let mut opts = ReadOptions::default();
            opts.set_iterate_lower_bound(sample_key(id, start_ms));
            // Exclusive bound: the first key after end_ms of this series.
            let upper = match end_ms.checked_add(1) {
                Some(t) => sample_key(id, t).to_vec(),
                None => (id + 1).to_be_bytes().to_vec(),
            };
            opts.set_iterate_upper_bound(upper);
            let mut points = Vec::new();
            for item in self
                .db
                .iterator_cf_opt(self.cf(CF_SAMPLES), opts, IteratorMode::Start)
            {
                let (k, v) = item.map_err(|e| self.io("read samples", e))?;
                if let Some(point) = decode_point(&k, &v) {
                    points.push(point);
                }
            }
            if !points.is_empty() {
                out.push((key, points));
            }
        }
        Ok(out)
    }

    fn latest(&self, selector: &Selector) -> Result<Vec<(SeriesKey, Point)>, StorageError> {
        let mut out = Vec::new();
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_SAMPLES));
        for (id, key) in self.matching(selector) {
            iter.seek_for_prev(sample_key(id, i64::MAX));
            iter.status()
                .map_err(|e| self.io("read latest sample", e))?;
            if let (Some(k), Some(v)) = (iter.key(), iter.value())
                && read_u64(k) == Some(id)
                && let Some(point) = decode_point(k, v)
            {
                out.push((key, point));
            }
        }
        Ok(out)
    }

    fn hosts(&self) -> Vec<HostSummary> {
        let counts = self.index.read().expect("poisoned").per_host().clone();
        self.hosts
            .read()
            .expect("poisoned")
            .values()
            .map(|info| HostSummary {
                series_count: counts.get(&info.host).copied().unwrap_or(0),
                info: info.clone(),
            })
            .collect()
    }

    fn high_water(&self, agent_id: &str) -> u64 {
        let agents = self.agents.lock().expect("poisoned");
        agents
            .get(agent_id)
            .map_or(0, |seq| *seq.lock().expect("poisoned"))
    }

    fn series_exists(&self, key: &SeriesKey) -> bool {
        self.index.read().expect("poisoned").id(key).is_some()
    }

    fn series_counts(&self, host: &str) -> (u64, u64) {
        let index = self.index.read().expect("poisoned");
        (
            index.per_host().get(host).copied().unwrap_or(0),
            index.len() as u64,
        )
    }

    fn stats(&self) -> StorageStats {
        StorageStats {
            series: self.index.read().expect("poisoned").len() as u64,
            disk_bytes: dir_bytes(&self.path),
        }
    }
}

/// Total size of the regular files under `dir` (RocksDB keeps a flat directory).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn sample_key(id: u64, timestamp_ms: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    // Flipping the sign bit makes byte order match numeric order.
    key[8..].copy_from_slice(&((timestamp_ms as u64) ^ (1 << 63)).to_be_bytes());
    key
}

fn decode_point(key: &[u8], value: &[u8]) -> Option<Point> {
    let ts = read_u64(key.get(8..16)?)? ^ (1 << 63);
    let value = f64::from_le_bytes(value.try_into().ok()?);
    Some(Point {
        timestamp_ms: ts as i64,
        value,
    })
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn agent_key(agent_id: &str) -> Vec<u8> {
    [b"a/", agent_id.as_bytes()].concat()
}

fn host_key(host: &str) -> Vec<u8> {
    [b"h/", host.as_bytes()].concat()
}

fn encode_host(info: &HostInfo) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&info.last_seen_ms.to_be_bytes());
    v[8..].copy_from_slice(&info.interval_ms.to_be_bytes());
    v
}

fn decode_host(host: &[u8], value: &[u8]) -> Option<HostInfo> {
    Some(HostInfo {
        host: String::from_utf8(host.to_vec()).ok()?,
        last_seen_ms: read_u64(value)? as i64,
        interval_ms: read_u64(value.get(8..)?)?,
    })
}

/// Series record: strings as u32 LE length + UTF-8 bytes: the metric, then
/// name and value of each label in name order.
fn encode_series(key: &SeriesKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put(&key.metric);
    for (name, value) in key.labels.iter() {
        put(name);
        put(value);
    }
    out
}

fn decode_series(mut bytes: &[u8]) -> Option<SeriesKey> {
    let mut take = || -> Option<String> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?.to_owned();
        bytes = &bytes[4 + len..];
        Some(s)
    };
    let metric = take()?;
    let mut pairs = Vec::new();
    while let Some(name) = take() {
        pairs.push((name, take()?));
    }
    Some(SeriesKey {
        metric,
        labels: Labels::from_pairs(pairs).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Sample;
    use crate::selector::{MatchOp, Matcher};

    fn key(metric: &str, host: &str) -> SeriesKey {
        SeriesKey {
            metric: metric.into(),
            labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
        }
    }

    fn batch(agent: &str, host: &str, seq: u64, points: &[(&str, i64, f64)]) -> Batch {
        Batch {
            agent_id: agent.into(),
            host: host.into(),
            seq,
            interval_ms: 1_000,
            samples: points
                .iter()
                .map(|(m, t, v)| Sample {
                    series: key(m, host),
                    point: Point {
                        timestamp_ms: *t,
                        value: *v,
                    },
                })
                .collect(),
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
    fn stores_queries_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStorage::open(dir.path()).unwrap();
            let out = s
                .append(
                    &batch("ag", "a", 1, &[("cpu", 1_000, 1.0), ("mem", 1_000, 5.0)]),
                    10,
                )
                .unwrap();
            assert_eq!(out, AppendOutcome::Stored { acked_through: 1 });
            s.append(&batch("ag", "a", 2, &[("cpu", 2_000, 2.0)]), 20)
                .unwrap();
            s.append(&batch("bg", "b", 1, &[("cpu", 1_500, 9.0)]), 30)
                .unwrap();
        }
        let s = RocksStorage::open(dir.path()).unwrap();
        let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, key("cpu", "a"));
        assert_eq!(
            got[0].1,
            vec![
                Point {
                    timestamp_ms: 1_000,
                    value: 1.0
                },
                Point {
                    timestamp_ms: 2_000,
                    value: 2.0
                }
            ]
        );
        let latest = s.latest(&host_selector("a")).unwrap();
        assert_eq!(
            latest[0].1,
            Point {
                timestamp_ms: 2_000,
                value: 2.0
            }
        );
        let hosts = s.hosts();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].info.last_seen_ms, 20);
        assert_eq!(hosts[0].series_count, 2);
        // A new series after reopen gets a fresh id, not one in use.
        s.append(&batch("ag", "a", 3, &[("disk", 3_000, 7.0)]), 40)
            .unwrap();
        assert_eq!(s.series(&host_selector("a")).len(), 3);
        assert_eq!(
            s.query_range(&host_selector("a"), 0, 5_000).unwrap()[0]
                .1
                .len(),
            2
        );
    }

    #[test]
    fn replayed_batch_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        s.append(&batch("ag", "a", 5, &[("cpu", 1_000, 1.0)]), 0)
            .unwrap();
        let again = s
            .append(&batch("ag", "a", 5, &[("cpu", 1_000, 99.0)]), 0)
            .unwrap();
        assert_eq!(again, AppendOutcome::Replay { acked_through: 5 });
        let older = s
            .append(&batch("ag", "a", 3, &[("cpu", 500, 3.0)]), 0)
            .unwrap();
        assert_eq!(older, AppendOutcome::Replay { acked_through: 5 });
        let got = s.query_range(&host_selector("a"), 0, 5_000).unwrap();
        assert_eq!(
            got[0].1,
            vec![Point {
                timestamp_ms: 1_000,
                value: 1.0
            }]
        );
        drop(s);
        let s = RocksStorage::open(dir.path()).unwrap();
        let after_reopen = s.append(&batch("ag", "a", 5, &[]), 0).unwrap();
        assert_eq!(after_reopen, AppendOutcome::Replay { acked_through: 5 });
    }

    #[test]
    fn range_bounds_are_inclusive_and_negative_times_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open(dir.path()).unwrap();
        let pts = [
            ("m", -5, 0.0),
            ("m", 0, 1.0),
            ("m", 10, 2.0),
            ("m", 20, 3.0),
        ];
        s.append(&batch("ag", "a", 1, &pts), 0).unwrap();
        let got = s.query_range(&host_selector("a"), 0, 10).unwrap();
        let ts: Vec<i64> = got[0].1.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(ts, vec![0, 10]);
        let all = s
            .query_range(&host_selector("a"), i64::MIN, i64::MAX)
            .unwrap();
        let ts: Vec<i64> = all[0].1.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(ts, vec![-5, 0, 10, 20]);
    }

    #[test]
    fn points_older_than_the_raw_retention_are_dropped_at_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStorage::open_with(
            dir.path(),
            Retention {
                raw: Duration::from_secs(3600),
            },
        )
        .unwrap();
        let now = now_ms();
        let pts = [("m", now - 2 * 3600 * 1000, 1.0), ("m", now - 60_000, 2.0)];
        s.append(&batch("ag", "a", 1, &pts), now).unwrap();
        assert_eq!(
            s.query_range(&host_selector("a"), 0, i64::MAX).unwrap()[0]
                .1
                .len(),
            2
        );
        s.compact_samples();
        let left = s.query_range(&host_selector("a"), 0, i64::MAX).unwrap();
        assert_eq!(
            left[0].1,
            vec![Point {
                timestamp_ms: now - 60_000,
                value: 2.0
            }]
        );
    }

    #[test]
    fn series_record_round_trips() {
        let k = SeriesKey {
            metric: "disk_used_percent".into(),
            labels: Labels::from_pairs(vec![
                ("mountpoint".into(), "/".into()),
                ("device".into(), "/dev/vda".into()),
                ("empty".into(), "".into()),
            ])
            .unwrap(),
        };
        assert_eq!(decode_series(&encode_series(&k)), Some(k));
    }

    #[test]
    fn unwritable_data_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad = file.join("data");
        let err = RocksStorage::open(&bad).err().unwrap().to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
}
