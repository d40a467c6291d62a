//! The durable spool: every batch is appended here before it is sent, and
//! stays until the collector acks it.
//!
//! # Design constraints
//!
//! - **Lose nothing the agent sampled**, across collector outages and agent
//!   crashes: a batch is on disk before it is offered to the transport, and
//!   removed only when an ack covers its seq.
//! - **Bounded**: at most `max_bytes` on disk. When full, whole oldest
//!   segments are dropped, counted and logged (rate-limited). Sampling never
//!   blocks on the collector.
//! - **Survive bad disks**: every record carries a CRC; a torn tail (power
//!   loss mid-write) is truncated, a corrupt record is skipped and counted,
//!   and the records after it are still delivered.
//! - **Small footprint**: payloads stay on disk; memory holds one small
//!   index entry per unacked batch.
//!
//! # On-disk layout (see `docs/format/spool.md`)
//!
//! `<state-dir>/spool/` holds segment files named `<first seq, 20 digits>.seg`
//! and a file `acked` with the highest acked seq (text). A segment is a
//! sequence of records:
//!
//! ```text
//! ┌────────────┬───────────┬───────────┬───────────┬──────────────────────┐
//! │ magic u32  │ len u32   │ crc32 u32 │ seq u64   │ payload (len bytes)  │
//! │ "NJSR"     │           │ seq+payld │           │ prost nightjar.v1.Batch
//! └────────────┴───────────┴───────────┴───────────┴──────────────────────┘
//! ```
//!
//! All integers little-endian. The magic lets recovery find the next record
//! after a corrupt one; the CRC (IEEE, over seq and payload) rejects
//! anything damaged, including a false magic inside a payload.
//!
//! `acked` is written (rename, no fsync) after acks. Losing it only means
//! re-sending batches the collector already has, which it recognises by
//! (agent id, seq) and does not store again.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nightjar_proto::v1 as pb;
use prost::Message as _;
use tokio::sync::watch;

use crate::queue::{BatchQueue, PushOutcome};
use crate::telemetry::{AgentCounters, SpoolRecordCorrupt};

const MAGIC: u32 = u32::from_le_bytes(*b"NJSR");
const HEADER_BYTES: usize = 20;
/// Largest payload accepted when reading back; anything larger is corrupt.
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
/// Largest segment file before a new one is started.
pub const MAX_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// When appended records are fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch: nothing acknowledged by the disk is lost on power
    /// failure; one fsync per interval.
    EveryBatch,
    /// At most once per period (checked on append): fewer fsyncs, but a power
    /// failure can lose the batches of the last period.
    Every(Duration),
}

/// A spool I/O failure, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {reason}")]
pub struct SpoolError {
    /// The file or directory.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> SpoolError {
    SpoolError {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The on-disk spool. Implements [`BatchQueue`].
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    counters: Arc<AgentCounters>,
    inner: Mutex<Inner>,
    pushed: watch::Sender<u64>,
}

struct Segment {
    first_seq: u64,
    last_seq: u64,
    path: PathBuf,
    bytes: u64,
}

struct RecordRef {
    seq: u64,
    /// Index key: the `first_seq` of the segment holding the record.
    segment: u64,
    offset: u64,
    len: u32,
}

struct Inner {
    segments: VecDeque<Segment>,
    /// Append handle of the newest segment.
    active: Option<File>,
    /// Unacked records in seq order.
    records: VecDeque<RecordRef>,
    acked_through: u64,
    bytes: u64,
    last_sync: Instant,
}

impl Inner {
    fn segment(&self, first_seq: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.first_seq == first_seq)
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The `acked` file's text: the seq and the CRC-32 of its digits, so a
/// damaged mark (which, trusted, would drop unacked batches) is noticed.
fn format_ack_mark(seq: u64) -> String {
    let digits = seq.to_string();
    format!("{digits} {:08x}\n", crc32fast::hash(digits.as_bytes()))
}

/// The seq of an `acked` file, or None if it is damaged. A bare number
/// (an older agent's, without the checksum) is not trusted either: the
/// cost is one resend of what is spooled, which the collector stores once.
fn parse_ack_mark(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let (digits, sum) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let seq = digits.parse::<u64>().ok()?;
    (u32::from_str_radix(sum, 16).ok()? == crc32fast::hash(digits.as_bytes())).then_some(seq)
}

fn crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn encode_record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(HEADER_BYTES + payload.len());
    rec.extend_from_slice(&MAGIC.to_le_bytes());
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc(seq, payload).to_le_bytes());
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(payload);
    rec
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

/// One record found by [`scan`].
#[derive(Debug, PartialEq, Eq)]
struct Scanned {
    seq: u64,
    offset: u64,
    len: u32,
}

/// What scanning one segment found.
#[derive(Debug, Default, PartialEq, Eq)]
struct ScanReport {
    records: Vec<Scanned>,
    /// Damaged regions skipped (offset, why).
    corrupt: Vec<(u64, &'static str)>,
    /// Where the valid data ends if the file ends in a torn record.
    torn_at: Option<u64>,
}

/// Finds the valid records of a segment. A record that runs past the end of
/// the file is a torn tail; anything else that fails a check is corrupt, and
/// scanning resumes at the next magic that starts a valid record.
fn scan(buf: &[u8]) -> ScanReport {
    let mut report = ScanReport::default();
    let mut pos = 0usize;
    while pos < buf.len() {
        match check_at(buf, pos) {
            Ok((seq, len, end)) => {
                report.records.push(Scanned {
                    seq,
                    offset: pos as u64,
                    len,
                });
                pos = end;
            }
            Err(reason) => {
                // Look for the next record that checks out.
                let next = (pos + 1..buf.len().saturating_sub(HEADER_BYTES - 1))
                    .find(|&p| u32_at(buf, p) == MAGIC && check_at(buf, p).is_ok());
                match (next, reason) {
                    (Some(p), reason) => {
                        report
                            .corrupt
                            .push((pos as u64, reason.unwrap_or("truncated record")));
                        pos = p;
                    }
                    (None, None) => {
                        report.torn_at = Some(pos as u64);
                        break;
                    }
                    (None, Some(reason)) => {
                        report.corrupt.push((pos as u64, reason));
                        report.torn_at = Some(pos as u64);
                        break;
                    }
                }
            }
        }
    }
    report
}

/// The fuzz target's entry (`fuzz/fuzz_targets/spool_scan.rs`): scans
/// arbitrary bytes as a segment and checks what recovery relies on: no
/// panic, records in order and inside the buffer, and any payload written
/// by `encode_record` read back whole, even with the bytes appended after it.
#[doc(hidden)]
pub fn fuzz_scan(buf: &[u8]) {
    let report = scan(buf);
    let mut last: Option<u64> = None;
    for r in &report.records {
        assert!(last.is_none_or(|l| r.offset > l), "records out of order");
        assert!(r.offset < buf.len() as u64, "record outside the buffer");
        last = Some(r.offset);
    }
    assert!(report.torn_at.is_none_or(|t| t <= buf.len() as u64));
    if buf.len() as u64 <= u64::from(MAX_RECORD_BYTES) {
        let mut segment = encode_record(42, buf);
        segment.extend_from_slice(buf);
        let again = scan(&segment);
        let first = again.records.first().expect("an encoded record is found");
        assert_eq!(
            (first.seq, first.offset, first.len),
            (42, 0, buf.len() as u32)
        );
    }
}

/// Checks the record starting at `pos`: `Ok((seq, payload len, end))`, or
/// `Err(None)` for a record cut short by the end of `buf`, or
/// `Err(Some(reason))` for a damaged one.
fn check_at(buf: &[u8], pos: usize) -> Result<(u64, u32, usize), Option<&'static str>> {
    if buf.len() - pos < HEADER_BYTES {
        return Err(None);
    }
    if u32_at(buf, pos) != MAGIC {
        return Err(Some("bad magic"));
    }
    let len = u32_at(buf, pos + 4);
    if len > MAX_RECORD_BYTES {
        return Err(Some("implausible length"));
    }
    let end = pos + HEADER_BYTES + len as usize;
    if end > buf.len() {
        return Err(None);
    }
    let seq = u64::from_le_bytes(buf[pos + 12..pos + 20].try_into().expect("8 bytes"));
    if crc(seq, &buf[pos + HEADER_BYTES..end]) != u32_at(buf, pos + 8) {
        return Err(Some("checksum mismatch"));
    }
    Ok((seq, len, end))
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovering every
    /// unacked record. Torn tails are truncated; corrupt records are counted
    /// and skipped.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: FsyncPolicy,
        counters: Arc<AgentCounters>,
    ) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create: {e}")))?;
        let acked_path = dir.join("acked");
        let acked_through = match std::fs::read_to_string(&acked_path) {
            Ok(text) => parse_ack_mark(&text).unwrap_or_else(|| {
                tracing::warn!(path = %acked_path.display(), text = %text.trim(), "damaged ack mark; resending everything spooled (the collector drops what it has)");
                0
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(err(&acked_path, e)),
        };

        let mut firsts = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
            let name = entry.map_err(|e| err(dir, e))?.file_name();
            let name = name.to_string_lossy();
            if let Some(first) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut inner = Inner {
            segments: VecDeque::new(),
            active: None,
            records: VecDeque::new(),
            acked_through,
            bytes: 0,
            last_sync: Instant::now(),
        };
        let n_segments = firsts.len();
        let mut last_segment_damaged = false;
        for (i, first_seq) in firsts.into_iter().enumerate() {
            let path = dir.join(segment_name(first_seq));
            let buf = std::fs::read(&path).map_err(|e| err(&path, e))?;
            let report = scan(&buf);
            last_segment_damaged = !report.corrupt.is_empty();
            for (offset, reason) in &report.corrupt {
                SpoolRecordCorrupt {
                    path: &path,
                    offset: *offset,
                    reason,
                }
                .emit(&counters);
            }
            let mut bytes = buf.len() as u64;
            if let Some(torn) = report.torn_at {
                // Drop the partial record so appends (or the next scan) start clean.
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| err(&path, e))?;
                f.set_len(torn).map_err(|e| err(&path, e))?;
                f.sync_all().map_err(|e| err(&path, e))?;
                bytes = torn;
                tracing::info!(path = %path.display(), offset = torn, "truncated a torn spool record");
            }
            let last_seq = report.records.last().map_or(first_seq, |r| r.seq);
            let is_last = i + 1 == n_segments;
            if last_seq <= acked_through && !is_last {
                std::fs::remove_file(&path).map_err(|e| err(&path, e))?;
                continue;
            }
            for r in report.records.into_iter().filter(|r| r.seq > acked_through) {
                inner.records.push_back(RecordRef {
                    seq: r.seq,
                    segment: first_seq,
                    offset: r.offset,
                    len: r.len,
                });
            }
            inner.bytes += bytes;
            inner.segments.push_back(Segment {
                first_seq,
                last_seq,
                path,
                bytes,
            });
        }
        // Appends go to the newest segment, unless it holds damage: then the
        // next push starts a fresh one, so the damaged segment is deleted once
        // acked instead of being rescanned (and recounted) at every start.
        if let Some(last) = inner.segments.back().filter(|_| !last_segment_damaged) {
            let f = OpenOptions::new()
                .append(true)
                .open(&last.path)
                .map_err(|e| err(&last.path, e))?;
            inner.active = Some(f);
        }
        if !inner.records.is_empty() {
            tracing::info!(
                batches = inner.records.len(),
                bytes = inner.bytes,
                "spool holds unacked batches from before; they are sent first"
            );
        }
        let newest = inner.records.back().map_or(0, |r| r.seq);
        Ok(Spool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: MAX_SEGMENT_BYTES.min(max_bytes / 4).max(64 * 1024),
            fsync,
            counters,
            inner: Mutex::new(inner),
            pushed: watch::channel(newest).0,
        })
    }

    fn append(
        &self,
        inner: &mut Inner,
        seq: u64,
        record: &[u8],
    ) -> Result<PushOutcome, SpoolError> {
        let mut outcome = PushOutcome::default();
        let needs_new = inner.active.is_none()
            || inner
                .segments
                .back()
                .is_none_or(|s| s.bytes > 0 && s.bytes + record.len() as u64 > self.segment_bytes);
        if needs_new {
            if let Some(f) = inner.active.take() {
                let _ = f.sync_data();
            }
            let path = self.dir.join(segment_name(seq));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| err(&path, e))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| err(&self.dir, e))?;
            inner.active = Some(f);
            inner.segments.push_back(Segment {
                first_seq: seq,
                last_seq: seq,
                path,
                bytes: 0,
            });
        }
        // Full: drop whole oldest segments (never the one being written).
        while inner.bytes + record.len() as u64 > self.max_bytes && inner.segments.len() > 1 {
            let old = inner.segments.pop_front().expect("len > 1");
            let mut dropped = 0;
            while inner
                .records
                .front()
                .is_some_and(|r| r.segment == old.first_seq)
            {
                inner.records.pop_front();
                dropped += 1;
            }
            inner.bytes -= old.bytes;
            outcome.dropped_batches += dropped;
            outcome.dropped_bytes += old.bytes;
            if let Err(e) = std::fs::remove_file(&old.path) {
                tracing::warn!(path = %old.path.display(), error = %e, "cannot delete dropped spool segment");
            }
        }

        let seg = inner.segments.back_mut().expect("a segment exists");
        let offset = seg.bytes;
        let f = inner.active.as_mut().expect("active segment open");
        let sync_due = match self.fsync {
            FsyncPolicy::EveryBatch => true,
            FsyncPolicy::Every(period) => inner.last_sync.elapsed() >= period,
        };
        let written = f
            .write_all(record)
            .and_then(|()| if sync_due { f.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // The segment must stay exactly the records the index knows:
            // cut the partial bytes off, or, if even that fails, close the
            // segment (its tail is then a torn record, skipped at open) so
            // the next append starts a new file at a known offset.
            if let Err(cut) = f.set_len(offset) {
                tracing::warn!(path = %seg.path.display(), error = %cut, "cannot cut a failed append off; starting a new segment");
                inner.active = None;
            }
            return Err(err(&seg.path, e));
        }
        if sync_due {
            inner.last_sync = Instant::now();
        }
        seg.bytes += record.len() as u64;
        seg.last_seq = seq;
        let segment = seg.first_seq;
        inner.bytes += record.len() as u64;
        inner.records.push_back(RecordRef {
            seq,
            segment,
            offset,
            len: (record.len() - HEADER_BYTES) as u32,
        });
        Ok(outcome)
    }

    fn read(&self, inner: &Inner, r: &RecordRef) -> Result<pb::Batch, (PathBuf, &'static str)> {
        let seg = inner
            .segment(r.segment)
            .ok_or_else(|| (self.dir.clone(), "segment vanished"))?;
        let mut buf = vec![0u8; HEADER_BYTES + r.len as usize];
        File::open(&seg.path)
            .and_then(|f| f.read_exact_at(&mut buf, r.offset))
            .map_err(|_| (seg.path.clone(), "unreadable record"))?;
        if let Err(reason) = check_at(&buf, 0) {
            return Err((seg.path.clone(), reason.unwrap_or("truncated record")));
        }
        pb::Batch::decode(&buf[HEADER_BYTES..]).map_err(|_| (seg.path.clone(), "undecodable batch"))
    }

    fn persist_ack(&self, acked_through: u64) {
        let path = self.dir.join("acked");
        let tmp = self.dir.join("acked.tmp");
        let result = std::fs::write(&tmp, format_ack_mark(acked_through))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot record the ack mark; acked batches may be resent after a restart");
        }
    }
}

/// At most one "cannot spool" line every 10 s (each failure is counted).
static APPEND_FAILED_LOG: nightjar_common::log_limit::RateLimitedLog<10> =
    nightjar_common::log_limit::RateLimitedLog::new();

impl BatchQueue for Spool {
    fn push(&self, batch: pb::Batch) -> PushOutcome {
        let seq = batch.seq;
        let record = encode_record(seq, &batch.encode_to_vec());
        let outcome = {
            let mut inner = self.inner.lock().expect("poisoned");
            match self.append(&mut inner, seq, &record) {
                Ok(outcome) => outcome,
                Err(error) => {
                    let total = self
                        .counters
                        .spool_write_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1;
                    if let Some(lines_held_back) = APPEND_FAILED_LOG.due() {
                        tracing::error!(%error, seq, failures_total = total, lines_held_back, "cannot spool a batch; it is lost (is the state dir's disk full?)");
                    }
                    return PushOutcome {
                        dropped_batches: 1,
                        dropped_bytes: record.len() as u64,
                        unspooled: true,
                    };
                }
            }
        };
        self.pushed.send_replace(seq);
        outcome
    }

    fn next_after(&self, after: u64) -> Option<Arc<pb::Batch>> {
        let mut inner = self.inner.lock().expect("poisoned");
        loop {
            let idx = inner.records.partition_point(|r| r.seq <= after);
            let r = inner.records.get(idx)?;
            match self.read(&inner, r) {
                Ok(batch) => return Some(Arc::new(batch)),
                Err((path, reason)) => {
                    SpoolRecordCorrupt {
                        path: &path,
                        offset: r.offset,
                        reason,
                    }
                    .emit(&self.counters);
                    inner.records.remove(idx);
                }
            }
        }
    }

    fn ack(&self, through: u64) -> usize {
        let mut inner = self.inner.lock().expect("poisoned");
        if through <= inner.acked_through {
            return 0;
        }
        inner.acked_through = through;
        let mut removed = 0;
        while inner.records.front().is_some_and(|r| r.seq <= through) {
            inner.records.pop_front();
            removed += 1;
        }
        // Delete fully acked segments, except the one being appended to.
        while inner.segments.len() > 1
            && inner
                .segments
                .front()
                .is_some_and(|s| s.last_seq <= through)
        {
            let old = inner.segments.pop_front().expect("checked");
            inner.bytes -= old.bytes;
            if let Err(e) = std::fs::remove_file(&old.path) {
                tracing::warn!(path = %old.path.display(), error = %e, "cannot delete acked spool segment");
            }
        }
        drop(inner);
        self.persist_ack(through);
        removed
    }

    fn size(&self) -> (usize, u64) {
        let inner = self.inner.lock().expect("poisoned");
        (inner.records.len(), inner.bytes)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.pushed.subscribe()
    }

    fn flush(&self) {
        let inner = self.inner.lock().expect("poisoned");
        if let Some(Err(e)) = inner.active.as_ref().map(File::sync_data) {
            tracing::warn!(error = %e, "cannot fsync the spool at shutdown");
        }
        let acked = inner.acked_through;
        drop(inner);
        self.persist_ack(acked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_marks_carry_a_checksum_and_a_damaged_one_is_not_trusted() {
        assert_eq!(parse_ack_mark(&format_ack_mark(42)), Some(42));
        assert_eq!(parse_ack_mark("42\n"), None, "a bare number is not trusted");
        let flipped = format_ack_mark(42).replace("42", "92");
        assert_eq!(parse_ack_mark(&flipped), None, "a flipped digit");
        assert_eq!(parse_ack_mark("18446744073709551615 00000000"), None);
        assert_eq!(parse_ack_mark("banana"), None);
        assert_eq!(parse_ack_mark(""), None);
    }

    fn batch(seq: u64, n_samples: usize) -> pb::Batch {
        pb::Batch {
            agent_id: "agent".into(),
            host: "h".into(),
            seq,
            samples: (0..n_samples)
                .map(|i| pb::Sample {
                    metric: format!("m{i}"),
                    labels: vec![],
                    timestamp_ms: seq as i64 * 1000,
                    value: Some(pb::sample::Value::Gauge(i as f64)),
                })
                .collect(),
            interval_ms: 1000,
        }
    }

    fn open(dir: &Path, max_bytes: u64) -> (Spool, Arc<AgentCounters>) {
        let counters = Arc::new(AgentCounters::default());
        let spool = Spool::open(dir, max_bytes, FsyncPolicy::EveryBatch, counters.clone()).unwrap();
        (spool, counters)
    }

    fn unacked(spool: &Spool) -> Vec<u64> {
        let mut seqs = Vec::new();
        let mut after = 0;
        while let Some(b) = spool.next_after(after) {
            seqs.push(b.seq);
            after = b.seq;
        }
        seqs
    }

    fn corrupt_count(c: &AgentCounters) -> u64 {
        c.spool_corrupt_records
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn unacked_batches_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = open(dir.path(), 1 << 20);
            for seq in 1..=5 {
                s.push(batch(seq, 3));
            }
            assert_eq!(s.ack(2), 2);
            assert_eq!(*s.next_after(0).unwrap(), batch(3, 3));
        }
        let (s, _) = open(dir.path(), 1 << 20);
        assert_eq!(unacked(&s), vec![3, 4, 5]);
        s.push(batch(1001, 1));
        assert_eq!(unacked(&s), vec![3, 4, 5, 1001]);
    }

    #[test]
    fn acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), 1 << 20); // 256 KiB segments
        for seq in 1..=1000 {
            s.push(batch(seq, 40));
        }
        let segments = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "seg")
                })
                .count()
        };
        assert!(
            segments() > 2,
            "test needs several segments, got {}",
            segments()
        );
        let (_, bytes_before) = s.size();
        s.ack(1000);
        assert_eq!(segments(), 1, "only the active segment stays");
        assert!(s.size().1 < bytes_before);
        assert_eq!(s.size().0, 0);
        drop(s);
        let (s, _) = open(dir.path(), 1 << 20);
        assert!(unacked(&s).is_empty());
    }

    #[test]
    fn full_spool_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = open(dir.path(), 1 << 20);
        let mut dropped = 0;
        for seq in 1..=2000 {
            dropped += s.push(batch(seq, 40)).dropped_batches;
        }
        let (n, bytes) = s.size();
        assert!(dropped > 0, "nothing dropped");
        assert!(bytes <= 1 << 20, "spool grew to {bytes}");
        let seqs = unacked(&s);
        assert_eq!(seqs.len(), n);
        assert_eq!(
            seqs.len() as u64 + dropped,
            2000,
            "every batch is kept or counted as dropped"
        );
        assert_eq!(*seqs.last().unwrap(), 2000, "newest kept");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "what is kept is contiguous"
        );
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = open(dir.path(), 1 << 20);
            s.push(batch(1, 3));
            s.push(batch(2, 3));
        }
        let seg = dir.path().join(segment_name(1));
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 5).unwrap();
        let (s, c) = open(dir.path(), 1 << 20);
        assert_eq!(unacked(&s), vec![1]);
        assert_eq!(
            corrupt_count(&c),
            0,
            "a torn tail is expected after power loss, not corruption"
        );
        s.push(batch(3, 3));
        drop(s);
        let (s, _) = open(dir.path(), 1 << 20);
        assert_eq!(unacked(&s), vec![1, 3]);
    }

    #[test]
    fn corrupt_record_is_skipped_and_counted_later_records_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (s, _) = open(dir.path(), 1 << 20);
            for seq in 1..=3 {
                s.push(batch(seq, 3));
            }
        }
        let seg = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&seg).unwrap();
        let one = bytes.len() / 3;
        bytes[one + HEADER_BYTES + 2] ^= 0xff; // a payload byte of record 2
        std::fs::write(&seg, &bytes).unwrap();
        let (s, c) = open(dir.path(), 1 << 20);
        assert_eq!(unacked(&s), vec![1, 3]);
        assert_eq!(corrupt_count(&c), 1);
        // New batches go to a fresh segment; once the old one is acked it is
        // deleted, so the damage is not met again at the next start.
        s.push(batch(4, 3));
        s.ack(3);
        assert!(
            !seg.exists(),
            "the damaged segment was not deleted after its records were acked"
        );
        drop(s);
        let (s, c) = open(dir.path(), 1 << 20);
        assert_eq!(unacked(&s), vec![4]);
        assert_eq!(corrupt_count(&c), 0);
    }

    #[test]
    fn fuzz_entry_holds_on_the_corpus_shapes() {
        super::fuzz_scan(b"");
        super::fuzz_scan(&[0xff; 100]);
        let mut two = encode_record(1, b"abc");
        two.extend(encode_record(2, b"defg"));
        two.truncate(two.len() - 2);
        super::fuzz_scan(&two);
    }

    #[test]
    fn scan_cases() {
        let rec = |seq| encode_record(seq, &[seq as u8; 10]);
        let seqs = |buf: &[u8]| scan(buf).records.iter().map(|r| r.seq).collect::<Vec<_>>();
        let two = [rec(1), rec(2)].concat();
        assert_eq!(seqs(&two), vec![1, 2]);
        assert_eq!(scan(&two[..two.len() - 1]).torn_at, Some(30));
        assert_eq!(scan(&two[..3]).torn_at, Some(0));
        let mut garbage_between = rec(1);
        garbage_between.extend_from_slice(b"garbage!");
        garbage_between.extend(rec(2));
        let report = scan(&garbage_between);
        assert_eq!(report.records.len(), 2);
        assert_eq!(report.corrupt, vec![(30, "bad magic")]);
        assert_eq!(scan(&[]), ScanReport::default());
    }
}
