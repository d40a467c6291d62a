//! The forward queue over RocksDB: column family `forward_queue`, log seq
//! (u64 BE) → a [`forward`] record, written in the batch's synced write
//! when forwarding is on; reader cursors in files of their own,
//! `forward-cursors/<hex of the name>` (start, end and a check word,
//! u64 BE each), overwritten in place: a cursor is saved before and after
//! every remote_write request, and a write through RocksDB waits behind
//! the ingest's synced write groups (measured: the senders then fell to
//! half the ingest rate, docs/benchmarks.md), while a `pwrite` of 24
//! bytes does not. Versions before put them in `meta` under `f/<name>`
//! (start u64 BE ++ end u64 BE); those are still read.
//!
//! Invariant: a record holds exactly the samples its batch stored. The
//! heads would refuse a point not newer than its series' newest, so the
//! record is built after the same check, made before the write (one
//! writer per series: its host's agent), and histograms the batch refuses
//! are left out too. A remote store then never sees a point Nightjar
//! refused, which would make it refuse the whole request.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rocksdb::{IteratorMode, WriteBatch};

use super::keys::read_u64;
use super::{CF_FORWARD, CF_META, RocksStorage};
use crate::forward::{self, ForwardRecord};
use crate::head::Heads;
use crate::ingest_log::LogSample;
use crate::{ForwardBatch, ForwardQueue, ForwardSize, StorageError};
use nightjar_model::model::{HistogramSample, SharedKey};

/// The records held and their sample counts, for the queue's size.
#[derive(Default)]
pub(super) struct ForwardState {
    counts: BTreeMap<u64, u32>,
    samples: u64,
}

fn cursor_key(name: &str) -> Vec<u8> {
    [b"f/", name.as_bytes()].concat()
}

/// The data directory's folder of cursor files.
const CURSOR_DIR: &str = "forward-cursors";

/// Mixed into a cursor file's check word, so that zeroes do not check.
const CURSOR_CHECK: u64 = 0x6e6a_6375_7273_6f72; // "njcursor"

fn encode_cursor(start: u64, end: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&start.to_be_bytes());
    out[8..16].copy_from_slice(&end.to_be_bytes());
    out[16..].copy_from_slice(&(start ^ end.rotate_left(32) ^ CURSOR_CHECK).to_be_bytes());
    out
}

fn decode_cursor(bytes: &[u8]) -> Option<(u64, u64)> {
    let (start, end, check) = (
        read_u64(bytes.get(..8)?)?,
        read_u64(bytes.get(8..16)?)?,
        read_u64(bytes.get(16..24)?)?,
    );
    (check == start ^ end.rotate_left(32) ^ CURSOR_CHECK).then_some((start, end))
}

/// A failed file operation on a cursor file or their folder, naming it.
fn file_error(path: &std::path::Path, operation: &'static str, e: &std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        operation,
        reason: e.to_string(),
    }
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

impl RocksStorage {
    /// Turns forwarding on: every batch stored from now on also writes its
    /// forward record. Loads the queue's size, and keeps record seqs above
    /// every saved cursor (the ingest log alone may restart them lower).
    pub fn with_forwarding(mut self) -> Result<RocksStorage, StorageError> {
        let mut state = ForwardState::default();
        let mut last = 0;
        for item in self
            .db
            .iterator_cf(self.cf(CF_FORWARD), IteratorMode::Start)
        {
            let (k, v) = item.map_err(|e| self.io("read forward queue", e))?;
            let seq = read_u64(&k).ok_or_else(|| self.corrupt("forward queue key", &k))?;
            let n = forward::sample_count(&v).unwrap_or(0) as u32;
            state.counts.insert(seq, n);
            state.samples += u64::from(n);
            last = seq;
        }
        let highest_end = self
            .saved_cursors()?
            .into_iter()
            .map(|(start, end)| start.max(end))
            .max()
            .unwrap_or(0);
        {
            let mut log = self.log.lock().expect("poisoned");
            log.next_seq = log.next_seq.max(last + 1).max(highest_end);
        }
        *self.forward.lock().expect("poisoned") = state;
        self.forwarding = true;
        Ok(self)
    }

    fn cursor_path(&self, name: &str) -> PathBuf {
        self.path.join(CURSOR_DIR).join(hex(name))
    }

    /// Cursor `name` from its file; None if it has none. A file that does
    /// not check (torn by an OS crash) reads as the start of the queue, with
    /// an error logged: its in-flight request is unknown, so the records
    /// held are sent again, and what the endpoint already has it refuses.
    fn read_cursor_file(&self, name: &str) -> Result<Option<(u64, u64)>, StorageError> {
        let path = self.cursor_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error(&path, "read a forward cursor", &e)),
        };
        Ok(Some(decode_cursor(&bytes).unwrap_or_else(|| {
            let first = self.forward_size().first;
            tracing::error!(path = %path.display(), "a remote_write cursor file does not check (torn by an OS crash?); sending the queue again from its start");
            (first, first)
        })))
    }

    /// Cursor `name` as versions before cursor files saved it.
    fn legacy_cursor(&self, name: &str) -> Result<Option<(u64, u64)>, StorageError> {
        let value = self
            .db
            .get_cf(self.cf(CF_META), cursor_key(name))
            .map_err(|e| self.io("read a forward cursor", e))?;
        Ok(value.and_then(|v| Some((read_u64(&v)?, read_u64(v.get(8..)?)?))))
    }

    /// Every saved cursor, files and legacy keys.
    fn saved_cursors(&self) -> Result<Vec<(u64, u64)>, StorageError> {
        let mut out = Vec::new();
        let prefix = b"f/";
        for item in self.db.prefix_iterator_cf(self.cf(CF_META), prefix) {
            let (k, v) = item.map_err(|e| self.io("read forward cursors", e))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((
                read_u64(&v).unwrap_or(0),
                v.get(8..).and_then(read_u64).unwrap_or(0),
            ));
        }
        let dir = self.path.join(CURSOR_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(file_error(&dir, "list forward cursors", &e)),
        };
        for entry in entries.flatten() {
            if let Some(cursor) = std::fs::read(entry.path())
                .ok()
                .as_deref()
                .and_then(decode_cursor)
            {
                out.push(cursor);
            }
        }
        Ok(out)
    }

    /// Deletes every forward record (forwarding is off: nobody reads them).
    pub fn clear_forward_queue(&self) -> Result<(), StorageError> {
        let cf = self.cf(CF_FORWARD);
        let mut iter = self.db.raw_iterator_cf(cf);
        iter.seek_to_first();
        if iter.key().is_none() {
            return Ok(());
        }
        self.db
            .delete_range_cf(cf, [0u8; 8], [0xffu8; 8])
            .and_then(|()| self.db.delete_cf(cf, [0xffu8; 8]))
            .map_err(|e| self.io("clear the forward queue", e))
    }

    /// The forward record of a batch about to be written: the float
    /// samples the heads will take (newer than their series' newest) and
    /// the histograms at `accepted` indices.
    pub(super) fn forward_record(
        &self,
        histograms: &[HistogramSample],
        samples: &[LogSample],
        accepted_histograms: &[usize],
        histogram_ids: &[u64],
    ) -> ForwardRecord {
        // Grouped by head shard as `apply` will take them, in order within
        // a shard; a series' samples all fall to one shard.
        let mut by_shard: Vec<Vec<&LogSample>> = vec![Vec::new(); crate::head::SHARDS];
        for s in samples {
            by_shard[Heads::shard_of(s.0)].push(s);
        }
        // The newest point each series will have taken, for a series met
        // twice in the batch.
        let mut taken: HashMap<u64, i64, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(samples.len(), Default::default());
        let mut floats = Vec::with_capacity(samples.len());
        for (shard, samples) in by_shard.iter().enumerate() {
            if samples.is_empty() {
                continue;
            }
            let mut heads = self.heads.lock(shard);
            for &&(id, ts, value) in samples {
                let last = match taken.get(&id) {
                    Some(&last) => Some(last),
                    None => self
                        .head_for(&mut heads, id)
                        .newest()
                        .map(|p| p.timestamp_ms),
                };
                if last.is_none_or(|last| ts > last) {
                    taken.insert(id, ts);
                    floats.push((id, ts, value));
                }
            }
        }
        let histograms = accepted_histograms
            .iter()
            .map(|&i| {
                let h = &histograms[i];
                (
                    histogram_ids[i],
                    h.timestamp_ms,
                    ForwardRecord::figures(&h.histogram),
                )
            })
            .collect();
        ForwardRecord { floats, histograms }
    }

    /// Adds a batch's forward record to its write.
    pub(super) fn put_forward(&self, wb: &mut WriteBatch, log_seq: u64, record: &ForwardRecord) {
        wb.put_cf(
            self.cf(CF_FORWARD),
            log_seq.to_be_bytes(),
            forward::encode(record),
        );
    }

    /// Counts a record once its write succeeded.
    pub(super) fn forward_written(&self, log_seq: u64, samples: usize) {
        let mut state = self.forward.lock().expect("poisoned");
        state.counts.insert(log_seq, samples as u32);
        state.samples += samples as u64;
    }

    /// The seq below which every record is written: no reader may pass an
    /// in-flight batch's seq, whose record would then appear behind it.
    fn forward_safe_end(&self) -> u64 {
        let log = self.log.lock().expect("poisoned");
        log.in_flight.first().copied().unwrap_or(log.next_seq)
    }
}

impl ForwardQueue for RocksStorage {
    fn forward_read(
        &self,
        from: u64,
        until: Option<u64>,
        max_samples: usize,
        shard: Option<(u64, u64)>,
    ) -> Result<Vec<ForwardBatch>, StorageError> {
        let safe = self.forward_safe_end();
        let end = until.map_or(safe, |u| u.min(safe));
        let mut out = Vec::new();
        if from >= end {
            return Ok(out);
        }
        let mut iter = self.db.raw_iterator_cf(self.cf(CF_FORWARD));
        iter.seek(from.to_be_bytes());
        let mut taken = 0;
        let mine = |id: u64| shard.is_none_or(|(i, n)| id % n == i);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            let Some(seq) = read_u64(k).filter(|s| *s < end) else {
                break;
            };
            let Some(record) = forward::decode(v) else {
                tracing::error!(data_dir = %self.path.display(), seq, "skipping an undecodable forward-queue record");
                iter.next();
                continue;
            };
            let batch = ForwardBatch {
                seq,
                floats: if shard.is_none() {
                    record.floats
                } else {
                    record.floats.into_iter().filter(|s| mine(s.0)).collect()
                },
                histograms: record
                    .histograms
                    .into_iter()
                    .filter(|s| mine(s.0))
                    .collect(),
            };
            taken += batch.floats.len() + batch.histograms.len();
            out.push(batch);
            if taken >= max_samples {
                break;
            }
            iter.next();
        }
        iter.status()
            .map_err(|e| self.io("read forward queue", e))?;
        Ok(out)
    }

    fn forward_series(&self, ids: &[u64]) -> Vec<Option<SharedKey>> {
        let index = self.index.read().expect("poisoned");
        ids.iter().map(|id| index.key(*id).cloned()).collect()
    }

    fn forward_cursor(&self, name: &str) -> Result<Option<(u64, u64)>, StorageError> {
        match self.read_cursor_file(name)? {
            Some(cursor) => Ok(Some(cursor)),
            None => self.legacy_cursor(name),
        }
    }

    fn set_forward_cursor(
        &self,
        name: &str,
        start: u64,
        end: u64,
        sync: bool,
    ) -> Result<(), StorageError> {
        let failed = |e: std::io::Error| {
            self.batch_write_failures.fetch_add(1, Ordering::Relaxed);
            file_error(&self.cursor_path(name), "save a forward cursor", &e)
        };
        let file = {
            let mut files = self.forward_cursor_files.lock().expect("poisoned");
            match files.get(name) {
                Some(f) => f.clone(),
                None => {
                    let dir = self.path.join(CURSOR_DIR);
                    std::fs::create_dir_all(&dir).map_err(failed)?;
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(self.cursor_path(name))
                        .map_err(failed)?;
                    files.entry(name.to_owned()).or_insert(Arc::new(f)).clone()
                }
            }
        };
        // One write of 24 bytes in place: whole in the kernel's page cache
        // once it returns, so a SIGKILL cannot tear it; the check word
        // catches an OS crash that did.
        file.write_all_at(&encode_cursor(start, end), 0)
            .map_err(failed)?;
        if sync {
            file.sync_data().map_err(failed)?;
        }
        Ok(())
    }

    fn forward_trim(&self, below: u64) -> Result<(), StorageError> {
        let mut state = self.forward.lock().expect("poisoned");
        let Some(&first) = state.counts.keys().next() else {
            return Ok(());
        };
        if first >= below {
            return Ok(());
        }
        self.db
            .delete_range_cf(
                self.cf(CF_FORWARD),
                first.to_be_bytes(),
                below.to_be_bytes(),
            )
            .map_err(|e| self.io("trim the forward queue", e))?;
        let kept = state.counts.split_off(&below);
        let dropped: u64 = state.counts.values().map(|n| u64::from(*n)).sum();
        state.counts = kept;
        state.samples -= dropped;
        Ok(())
    }

    fn forward_samples_from(&self, from: u64) -> u64 {
        let state = self.forward.lock().expect("poisoned");
        state.counts.range(from..).map(|(_, n)| u64::from(*n)).sum()
    }

    fn forward_cut(&self, keep: u64) -> u64 {
        let state = self.forward.lock().expect("poisoned");
        let mut held = 0;
        let mut cut = self.log.lock().expect("poisoned").next_seq;
        for (&seq, &n) in state.counts.iter().rev() {
            held += u64::from(n);
            if held > keep {
                break;
            }
            cut = seq;
        }
        cut
    }

    fn forward_size(&self) -> ForwardSize {
        let next = self.log.lock().expect("poisoned").next_seq;
        let state = self.forward.lock().expect("poisoned");
        ForwardSize {
            first: state.counts.keys().next().copied().unwrap_or(next),
            next,
            samples: state.samples,
        }
    }
}
