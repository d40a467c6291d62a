//! The ingest log's files: numbered segments of framed records, appended
//! with group commit. No RocksDB here; `rocks` decides what a record holds.
//!
//! `rocks` appends one frame per batch stored without forwarding (an
//! [`crate::ingest_log::BatchRecord`]) and acks it once `append` returns;
//! it deletes segments below the floor it wrote to RocksDB with a sync.
//!
//! Why a file of our own: a record lives seconds to minutes and is read
//! only after a crash. Through RocksDB it was written three times (WAL,
//! memtable, an L0 file) and checksummed twice, and RocksDB's write group
//! syncs one group at a time behind its own bookkeeping. Here a record is
//! written once, synced with whatever else is waiting, and dropped with its
//! whole segment.
//!
//! # Layout (`docs/format/storage.md`, "Ingest-log segments")
//!
//! `ingest-log/<segment number, 20 decimal digits>.seg`, each a run of
//! frames: payload length (u32 LE), CRC-32 (IEEE) of the seq and payload
//! (u32 LE), seq (u64 LE), payload; then zeros to the end of the file. A
//! reader stops at the first frame that is short, zero or fails its check:
//! a crash can tear only the last group written, and no group is acked
//! before its sync.
//!
//! # Durability and speed
//!
//! [`SegmentLog::append`] returns only after the frame is written and
//! `fdatasync`ed. One thread of the log's own writes and syncs whatever
//! has queued while it was syncing the group before: the appenders only
//! queue and wait, so no sync waits for an appender to be scheduled, and
//! each wakes only for its own group. A new segment's directory entry is
//! synced before any frame in it is acked.
//!
//! Once a segment holds an eighth of its size, a background thread writes
//! and syncs a file of zeros for the next (`prepare-*.tmp`, renamed into
//! place when used), and the next segment is written over them: an
//! `fdatasync` over blocks already allocated and written is one data
//! write and one cache flush, where an append to a growing file also
//! waits for the inode and the block bitmaps (measured here: 0.33 ms an
//! append sync, 0.22 ms an overwrite). Without a prepared file (none ready,
//! or the disk too full to reserve one) a segment simply grows.
//!
//! After a failed write or sync the segment is left (cut back to its last
//! good frame, best effort) and the next group opens a new one: after a
//! failed `fsync` the kernel may have dropped the pages it could not
//! write, and a retried `fsync` would report success for them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Frame header bytes: length, check, seq.
const HEADER: usize = 16;

/// A segment takes no new group once it holds this many bytes (and a
/// prepared segment is this long).
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Largest payload a frame may carry (a reader refuses longer lengths as
/// corrupt instead of allocating them).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// A segment holding this many bytes has the next one prepared (a log
/// that never gets there, a small site's, never writes zeros ahead).
const PREPARE_AFTER: u64 = SEGMENT_BYTES / 8;

const SUFFIX: &str = "seg";
const PREPARED_PREFIX: &str = "prepare-";

/// One frame read back: its seq and payload.
pub type Frame = (u64, Vec<u8>);

/// Where a segment's frames end and what they hold.
#[derive(Clone, Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    /// Highest seq of a frame in it (0: none yet).
    max_seq: u64,
    /// Bytes of good frames.
    len: u64,
}

/// The segment frames are appended to; the sync thread holds its lock
/// while writing and syncing.
struct Active {
    segment: Option<(Segment, Arc<File>)>,
    /// Set after a failed write: the next group starts a new segment.
    poisoned: bool,
    next_number: u64,
    /// The zeroed file being made ready for the next segment.
    prepared: Option<JoinHandle<io::Result<(PathBuf, File)>>>,
}

/// Frames waiting for the sync thread, and the groups' outcomes.
struct Queue {
    /// Framed records of the group being formed.
    pending: Vec<u8>,
    pending_frames: usize,
    pending_max_seq: u64,
    /// Id of the group being formed; groups finish in id order.
    group: u64,
    /// Id of the last group finished (written and synced, or failed).
    finished: u64,
    /// The sync thread waits for frames.
    idle: bool,
    stop: bool,
    /// Failed groups: their error and how many appenders have yet to see it.
    failures: HashMap<u64, (Arc<str>, usize)>,
    /// A buffer to queue into after the sync thread takes `pending`.
    spare: Vec<u8>,
}

struct Shared {
    dir: PathBuf,
    queue: Mutex<Queue>,
    /// The sync thread waits here for frames.
    work: Condvar,
    /// Appenders wait here for their group, by its parity: only the group
    /// being synced and the one forming have waiters.
    done: [Condvar; 2],
    active: Mutex<Active>,
    /// Segments no longer appended to, oldest first.
    sealed: Mutex<Vec<Segment>>,
}

/// The ingest log's segments under one directory.
pub struct SegmentLog {
    shared: Arc<Shared>,
    syncer: Option<JoinHandle<()>>,
}

/// A queued frame's place: the group it will be synced with. Every ticket
/// must be waited for (a failed group counts its waiters).
#[must_use]
struct Ticket(u64);

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AppendError(pub Arc<str>);

impl SegmentLog {
    /// Opens (creating) `dir` and starts its sync thread. The segments
    /// found there are sealed: new frames go to a new segment;
    /// [`SegmentLog::replay`] reads them back. Files a preparation left
    /// are deleted.
    pub fn open(dir: &Path) -> io::Result<SegmentLog> {
        std::fs::create_dir_all(dir)?;
        let mut sealed = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(PREPARED_PREFIX) {
                std::fs::remove_file(&path)?;
                continue;
            }
            let number = name
                .strip_suffix(SUFFIX)
                .and_then(|n| n.strip_suffix('.'))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(number) = number {
                // Not known until replayed: nothing deletes it before.
                let max_seq = u64::MAX;
                sealed.push(Segment {
                    number,
                    path,
                    max_seq,
                    len: 0,
                });
            }
        }
        sealed.sort_by_key(|s| s.number);
        let next_number = sealed.last().map_or(1, |s| s.number + 1);
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                pending_frames: 0,
                pending_max_seq: 0,
                group: 1,
                finished: 0,
                idle: false,
                stop: false,
                failures: HashMap::new(),
                spare: Vec::new(),
            }),
            work: Condvar::new(),
            done: [Condvar::new(), Condvar::new()],
            active: Mutex::new(Active {
                segment: None,
                poisoned: false,
                next_number,
                prepared: None,
            }),
            sealed: Mutex::new(sealed),
        });
        let syncer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ingest-log-sync".into())
                .spawn(move || shared.sync_loop())?
        };
        Ok(SegmentLog {
            shared,
            syncer: Some(syncer),
        })
    }

    /// Hands the frames of the segments found at open to `visit`, oldest
    /// segment first, each segment's in file order (one segment in memory
    /// at a time). A segment's frames end at its first torn or corrupt
    /// frame; each such end is returned, naming the file and offset.
    pub fn replay(&self, mut visit: impl FnMut(u64, &[u8])) -> io::Result<Vec<String>> {
        let segments = self.shared.sealed.lock().expect("poisoned").clone();
        let mut torn = Vec::new();
        let mut found = Vec::with_capacity(segments.len());
        for segment in segments {
            let bytes = std::fs::read(&segment.path)?;
            let (read, good_len) = parse_frames(&bytes);
            if good_len < bytes.len() && bytes[good_len..].iter().any(|&b| b != 0) {
                torn.push(format!(
                    "{}: frames end at byte {good_len} of {}",
                    segment.path.display(),
                    bytes.len()
                ));
            }
            let max_seq = read.iter().map(|f| f.0).max().unwrap_or(0);
            for (seq, payload) in read {
                visit(seq, payload);
            }
            found.push((segment.number, max_seq, good_len as u64));
        }
        let mut sealed = self.shared.sealed.lock().expect("poisoned");
        for segment in sealed.iter_mut() {
            if let Some(&(_, max_seq, len)) = found.iter().find(|f| f.0 == segment.number) {
                (segment.max_seq, segment.len) = (max_seq, len);
            }
        }
        Ok(torn)
    }

    /// Appends a frame and returns once it is synced (or its group failed).
    pub fn append(&self, seq: u64, payload: &[u8]) -> Result<(), AppendError> {
        let ticket = self.queue(seq, payload);
        self.wait(ticket)
    }

    /// Queues a frame for the next group; [`SegmentLog::wait`] then returns
    /// once it is synced.
    fn queue(&self, seq: u64, payload: &[u8]) -> Ticket {
        assert!(payload.len() <= MAX_PAYLOAD, "ingest log payload too long");
        let mut queue = self.shared.queue.lock().expect("poisoned");
        put_frame(&mut queue.pending, seq, payload);
        queue.pending_frames += 1;
        queue.pending_max_seq = queue.pending_max_seq.max(seq);
        if queue.idle {
            queue.idle = false;
            self.shared.work.notify_one();
        }
        Ticket(queue.group)
    }

    /// Returns once the ticket's frame is synced, or its group failed.
    fn wait(&self, ticket: Ticket) -> Result<(), AppendError> {
        let group = ticket.0;
        let done = &self.shared.done[(group % 2) as usize];
        let mut queue = self.shared.queue.lock().expect("poisoned");
        while queue.finished < group {
            queue = done.wait(queue).expect("poisoned");
        }
        let Some((error, waiting)) = queue.failures.get_mut(&group) else {
            return Ok(());
        };
        let error = error.clone();
        *waiting -= 1;
        if *waiting == 0 {
            queue.failures.remove(&group);
        }
        Err(AppendError(error))
    }

    /// Seals the active segment if it holds frames, so that a later
    /// [`SegmentLog::remove_below`] can delete it; the next group opens a
    /// new one.
    pub fn rotate(&self) {
        let mut active = self.shared.active.lock().expect("poisoned");
        if active.segment.as_ref().is_some_and(|(s, _)| s.len > 0) {
            let (old, _) = active.segment.take().expect("checked");
            self.shared.sealed.lock().expect("poisoned").push(old);
        }
    }

    /// Deletes the sealed segments whose frames all have seqs below
    /// `floor`. Returns how many it deleted.
    pub fn remove_below(&self, floor: u64) -> io::Result<usize> {
        let sealed = &self.shared.sealed;
        let doomed: Vec<Segment> = {
            let mut sealed = sealed.lock().expect("poisoned");
            let (doomed, kept) = sealed.drain(..).partition(|s| s.max_seq < floor);
            *sealed = kept;
            doomed
        };
        let mut removed = 0;
        for (i, segment) in doomed.iter().enumerate() {
            if let Err(e) = std::fs::remove_file(&segment.path)
                && e.kind() != io::ErrorKind::NotFound
            {
                // Keep the ones not deleted: they are tried again next time.
                sealed
                    .lock()
                    .expect("poisoned")
                    .splice(0..0, doomed[i..].iter().cloned());
                return Err(e);
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Bytes of frames in the segments now on disk.
    pub fn bytes(&self) -> u64 {
        let active = self
            .shared
            .active
            .lock()
            .expect("poisoned")
            .segment
            .as_ref()
            .map_or(0, |(s, _)| s.len);
        active
            + self
                .shared
                .sealed
                .lock()
                .expect("poisoned")
                .iter()
                .map(|s| s.len)
                .sum::<u64>()
    }

    /// Reads every frame now on disk back (diagnostics and tests).
    pub fn read_all(&self) -> io::Result<Vec<Frame>> {
        let mut paths: Vec<PathBuf> = self
            .shared
            .sealed
            .lock()
            .expect("poisoned")
            .iter()
            .map(|s| s.path.clone())
            .collect();
        if let Some((s, _)) = &self.shared.active.lock().expect("poisoned").segment {
            paths.push(s.path.clone());
        }
        let mut frames = Vec::new();
        for path in paths {
            let bytes = std::fs::read(&path)?;
            frames.extend(
                parse_frames(&bytes)
                    .0
                    .into_iter()
                    .map(|(seq, p)| (seq, p.to_vec())),
            );
        }
        Ok(frames)
    }
}

impl Drop for SegmentLog {
    /// Stops the sync thread once the frames queued are written.
    fn drop(&mut self) {
        self.shared.queue.lock().expect("poisoned").stop = true;
        self.shared.work.notify_one();
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
        let prepared = self.shared.active.lock().expect("poisoned").prepared.take();
        if let Some(Ok(Ok((path, _)))) = prepared.map(JoinHandle::join) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Shared {
    /// The sync thread: takes every frame queued, writes and syncs them as
    /// one group, wakes that group's appenders, and goes again.
    fn sync_loop(&self) {
        let mut queue = self.queue.lock().expect("poisoned");
        loop {
            while queue.pending_frames == 0 {
                if queue.stop {
                    return;
                }
                queue.idle = true;
                queue = self.work.wait(queue).expect("poisoned");
            }
            let group = queue.group;
            let spare = std::mem::take(&mut queue.spare);
            let mut bytes = std::mem::replace(&mut queue.pending, spare);
            let frames = std::mem::take(&mut queue.pending_frames);
            let max_seq = std::mem::take(&mut queue.pending_max_seq);
            queue.group += 1;
            drop(queue);

            let written = self.write_group(&bytes, max_seq);

            queue = self.queue.lock().expect("poisoned");
            queue.finished = group;
            if let Err(e) = written {
                queue.failures.insert(group, (e.into(), frames));
            }
            bytes.clear();
            if queue.spare.capacity() < bytes.capacity() {
                queue.spare = bytes;
            }
            self.done[(group % 2) as usize].notify_all();
        }
    }

    /// Writes and syncs one group's frames at the end of the active
    /// segment, starting a new segment first where needed.
    fn write_group(&self, bytes: &[u8], max_seq: u64) -> Result<(), String> {
        let mut active = self.active.lock().expect("poisoned");
        let full = match &active.segment {
            Some((segment, _)) => {
                segment.len > 0 && segment.len + bytes.len() as u64 > SEGMENT_BYTES
            }
            None => true,
        };
        if full || active.poisoned {
            self.start_segment(&mut active)?;
        }
        let (segment, file) = active.segment.as_mut().expect("started above");
        let written = file
            .write_all_at(bytes, segment.len)
            .and_then(|()| file.sync_data());
        match written {
            Ok(()) => {
                segment.len += bytes.len() as u64;
                segment.max_seq = segment.max_seq.max(max_seq);
                // Busy enough to fill segments: have the next one ready.
                if segment.len >= PREPARE_AFTER && active.prepared.is_none() {
                    self.prepare_next(&mut active);
                }
                Ok(())
            }
            Err(e) => {
                // Best effort: the torn frames are cut off, so a reader
                // finds the good ones end where they do.
                let _ = file.set_len(segment.len);
                let error = format!("cannot write ingest log {}: {e}", segment.path.display());
                active.poisoned = true;
                Err(error)
            }
        }
    }

    /// Seals the active segment (if any) and opens the next: the prepared
    /// file if it is ready, else a new empty one. Its directory entry is
    /// synced before it is used.
    fn start_segment(&self, active: &mut Active) -> Result<(), String> {
        let number = active.next_number;
        let path = self.dir.join(format!("{number:020}.{SUFFIX}"));
        let prepared = match active.prepared.take() {
            Some(handle) if handle.is_finished() => match handle.join() {
                Ok(Ok((from, file))) => match std::fs::rename(&from, &path) {
                    Ok(()) => Some(file),
                    Err(e) => {
                        tracing::warn!(error = %e, file = %from.display(), "cannot use a prepared ingest log segment");
                        let _ = std::fs::remove_file(&from);
                        None
                    }
                },
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, dir = %self.dir.display(), "no ingest log segment prepared");
                    None
                }
                Err(_) => None,
            },
            // Not ready yet: the one after this may take it.
            still_running => {
                active.prepared = still_running;
                None
            }
        };
        let file = match prepared {
            Some(file) => Ok(file),
            None => OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&path),
        };
        let file =
            file.map_err(|e| format!("cannot create ingest log segment {}: {e}", path.display()))?;
        // The name is taken from here on, even if the sync below fails: a
        // retry under it would fail for good (`create_new`), and a segment
        // left with no frames reads back as empty.
        active.next_number += 1;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| format!("cannot sync the directory of {}: {e}", path.display()))?;
        active.poisoned = false;
        let new = Segment {
            number,
            path,
            max_seq: 0,
            len: 0,
        };
        if let Some((old, _)) = active.segment.replace((new, Arc::new(file))) {
            self.sealed.lock().expect("poisoned").push(old);
        }
        Ok(())
    }

    /// Starts preparing a zeroed file for the next segment, unless one is
    /// being prepared.
    fn prepare_next(&self, active: &mut Active) {
        if active.prepared.is_some() {
            return;
        }
        // Unique in the process: a storage reopened on the same directory
        // never meets a name its predecessor's preparation still uses.
        static PREPARED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = PREPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir.join(format!("{PREPARED_PREFIX}{n}.tmp"));
        let spawned = std::thread::Builder::new()
            .name("ingest-log-prepare".into())
            .spawn(move || {
                let prepared = prepare(&path);
                if prepared.is_err() {
                    let _ = std::fs::remove_file(&path);
                }
                prepared.map(|file| (path, file))
            });
        active.prepared = spawned.ok();
    }
}

/// A file of [`SEGMENT_BYTES`] zeros, written and synced. Its space is
/// reserved first, so a full disk fails here at once instead of being
/// filled with zeros.
fn prepare(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, SEGMENT_BYTES)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < SEGMENT_BYTES {
        file.write_all_at(&zeros, at)?;
        at += zeros.len() as u64;
    }
    file.sync_all()?;
    Ok(file)
}

fn check(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn put_frame(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&check(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The good frames at the start of `bytes` and where they end.
fn parse_frames(bytes: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        if len > MAX_PAYLOAD || (len == 0 && sum == 0 && seq == 0) {
            break;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if check(seq, payload) != sum {
            break;
        }
        frames.push((seq, payload));
        at += HEADER + len;
    }
    (frames, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens, collecting the frames read back.
    fn open(dir: &Path) -> (SegmentLog, Vec<Frame>, Vec<String>) {
        let mut frames = Vec::new();
        let log = SegmentLog::open(dir).unwrap();
        let torn = log
            .replay(|seq, payload| frames.push((seq, payload.to_vec())))
            .unwrap();
        (log, frames, torn)
    }

    fn payload(seq: u64) -> Vec<u8> {
        (0..(seq % 37) as u8).map(|b| b ^ seq as u8).collect()
    }

    #[test]
    fn frames_appended_from_many_threads_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (log, frames, torn) = open(dir.path());
        assert!(frames.is_empty() && torn.is_empty());
        let next = std::sync::atomic::AtomicU64::new(1);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        log.append(seq, &payload(seq)).unwrap();
                    }
                });
            }
        });
        drop(log);
        let (_log, mut frames, torn) = open(dir.path());
        assert!(torn.is_empty(), "{torn:?}");
        frames.sort();
        let expected: Vec<Frame> = (1..=1600).map(|s| (s, payload(s))).collect();
        assert_eq!(frames, expected);
    }

    #[test]
    fn a_torn_tail_ends_the_segment_at_its_last_good_frame() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = open(dir.path());
        for seq in 1..=3 {
            log.append(seq, b"sample bytes").unwrap();
        }
        drop(log);
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&file).unwrap();
        let third = bytes.len() - (HEADER + 12);
        // The last frame's payload changes on disk: its check fails.
        bytes[third + HEADER + 3] ^= 0x40;
        std::fs::write(&file, &bytes).unwrap();
        let (log, frames, torn) = open(dir.path());
        assert_eq!(
            frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![1, 2],
            "frames after the bad one are not trusted"
        );
        assert_eq!(torn.len(), 1);
        assert!(torn[0].contains(&format!("byte {third}")), "{torn:?}");
        // New frames go to a new segment, after the old one's.
        log.append(4, b"after").unwrap();
        drop(log);
        let (_log, frames, _) = open(dir.path());
        assert_eq!(
            frames.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
    }

    #[test]
    fn a_truncated_frame_or_zeroed_tail_reads_as_the_end() {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, 7, b"abc");
        put_frame(&mut bytes, 8, b"defgh");
        let whole = bytes.len();
        assert_eq!(parse_frames(&bytes).0.len(), 2);
        assert_eq!(parse_frames(&bytes[..whole - 1]).0.len(), 1);
        assert_eq!(parse_frames(&bytes[..HEADER - 1]).0.len(), 0);
        bytes.extend_from_slice(&[0; 64]);
        let (frames, end) = parse_frames(&bytes);
        assert_eq!((frames.len(), end), (2, whole));
    }

    #[test]
    fn removing_below_a_floor_deletes_only_sealed_segments_entirely_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = open(dir.path());
        log.append(1, b"one").unwrap();
        log.append(2, b"two").unwrap();
        log.rotate();
        log.append(3, b"three").unwrap();
        log.rotate();
        log.append(4, b"four").unwrap();
        // Segment {1, 2} is below 3; {3} is not; {4} is still active.
        assert_eq!(log.remove_below(3).unwrap(), 1);
        let seqs = |log: &SegmentLog| -> Vec<u64> {
            let mut s: Vec<u64> = log.read_all().unwrap().iter().map(|f| f.0).collect();
            s.sort();
            s
        };
        assert_eq!(seqs(&log), vec![3, 4]);
        assert_eq!(log.remove_below(100).unwrap(), 1, "the active one stays");
        assert_eq!(seqs(&log), vec![4]);
        assert_eq!(log.bytes(), (HEADER + 4) as u64);
    }

    #[test]
    fn a_busy_log_writes_its_next_segment_over_prepared_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = open(dir.path());
        let big = vec![0x5a; 1 << 20];
        // Past an eighth of a segment: the next one is being prepared.
        let first = PREPARE_AFTER / (1 << 20) + 1;
        for seq in 1..=first {
            log.append(seq, &big).unwrap();
        }
        let prepared = log.shared.active.lock().unwrap().prepared.take().unwrap();
        let (path, file) = prepared.join().unwrap().unwrap();
        assert_eq!(
            file.metadata().unwrap().len(),
            SEGMENT_BYTES,
            "{}",
            path.display()
        );
        log.shared.active.lock().unwrap().prepared =
            Some(std::thread::spawn(move || Ok((path, file))));
        while !log
            .shared
            .active
            .lock()
            .unwrap()
            .prepared
            .as_ref()
            .unwrap()
            .is_finished()
        {
            std::thread::yield_now();
        }
        log.rotate();
        log.append(first + 1, b"over the zeros").unwrap();
        log.append(first + 2, b"and the next").unwrap();
        let segments = |dir: &Path| -> Vec<(String, u64)> {
            let mut names: Vec<(String, u64)> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().into_string().unwrap(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect();
            names.sort();
            names
        };
        let on_disk = segments(dir.path());
        assert_eq!(on_disk.len(), 2, "{on_disk:?}");
        assert!(on_disk[1].0.ends_with("2.seg"), "{on_disk:?}");
        assert_eq!(on_disk[1].1, SEGMENT_BYTES, "the prepared file, renamed in");
        assert_eq!(
            log.bytes(),
            first * (HEADER as u64 + (1 << 20)) + 2 * HEADER as u64 + 26
        );
        drop(log);
        let (_log, frames, torn) = open(dir.path());
        assert!(
            torn.is_empty(),
            "zeros after the frames are not a tear: {torn:?}"
        );
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, (1..=first + 2).collect::<Vec<_>>());
        assert_eq!(frames.last().unwrap().1, b"and the next");
    }

    #[test]
    fn a_failed_write_fails_its_group_and_the_next_group_starts_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = open(dir.path());
        log.append(1, b"kept").unwrap();
        // The segment's file handle now refuses writes: swap in a
        // read-only handle to the same file.
        {
            let mut active = log.shared.active.lock().unwrap();
            let (segment, file) = active.segment.as_mut().unwrap();
            *file = Arc::new(File::open(&segment.path).unwrap());
        }
        let err = log.append(2, b"lost").unwrap_err().to_string();
        assert!(err.contains("cannot write ingest log"), "{err}");
        assert!(err.contains(".seg"), "names the file: {err}");
        log.append(3, b"after").unwrap();
        drop(log);
        let (_log, mut frames, torn) = open(dir.path());
        assert!(torn.is_empty(), "{torn:?}");
        frames.sort();
        assert_eq!(
            frames,
            vec![(1, b"kept".to_vec()), (3, b"after".to_vec())],
            "the failed frame is not there, the ones around it are"
        );
    }
}
