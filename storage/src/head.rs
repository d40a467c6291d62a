//! The head: per series, the newest point, the open chunk being filled,
//! and sealed chunks whose write failed (kept, and written before any newer
//! chunk of the series, so the newest chunk on disk never hides older
//! points from replay). In memory only; whatever they hold is also in the
//! ingest log, which they pin, and which is replayed into the heads at
//! open. Pure (no RocksDB).
//!
//! Ordering policy: a series takes points with strictly increasing
//! timestamps. A point at or before the series' newest timestamp is refused
//! (counted by ingest as `out_of_order`): the first value stored for a
//! timestamp wins, as in Prometheus. This is also what makes replaying the
//! ingest log idempotent: points already in written chunks are refused.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::chunk::{self, ChunkEncoder};
use super::rollup::Tier;
use nightjar_model::model::Point;

/// A chunk taken out of a head, to be written.
#[derive(Debug)]
pub struct SealedChunk {
    /// Timestamp of its first point (part of its key).
    pub first_ts: i64,
    /// The encoded chunk.
    pub bytes: Vec<u8>,
    /// Its points, for the rollups.
    pub points: Vec<Point>,
    /// Lowest ingest-log record holding one of its points.
    pub log_seq: u64,
}

#[derive(Debug)]
struct OpenChunk {
    enc: ChunkEncoder,
    first_ts: i64,
    /// Lowest ingest-log record holding one of its points.
    log_seq: u64,
    opened: Instant,
}

/// The head of one series.
#[derive(Debug, Default)]
pub struct Head {
    newest: Option<Point>,
    open: Option<OpenChunk>,
    /// Sealed chunks whose write failed, oldest first.
    unwritten: Vec<SealedChunk>,
}

/// The point was not newer than the series' newest point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotNewer;

impl Head {
    /// A head whose series' newest stored point is `newest`.
    pub fn new(newest: Option<Point>) -> Head {
        Head {
            newest,
            open: None,
            unwritten: Vec::new(),
        }
    }

    /// The newest point stored for the series.
    pub fn newest(&self) -> Option<Point> {
        self.newest
    }

    /// Appends a point from ingest-log record `log_seq`. Returns the chunk
    /// sealed: the open one when the point starts a new hour (chunks never
    /// straddle an hour, so retention can drop them by key), or the one the
    /// point filled.
    pub fn push(
        &mut self,
        point: Point,
        log_seq: u64,
        now: Instant,
    ) -> Result<Option<SealedChunk>, NotNewer> {
        if self
            .newest
            .is_some_and(|n| point.timestamp_ms <= n.timestamp_ms)
        {
            return Err(NotNewer);
        }
        let sealed = match &self.open {
            Some(open)
                if open.enc.is_full()
                    || Tier::Hour.bucket(open.first_ts)
                        != Tier::Hour.bucket(point.timestamp_ms) =>
            {
                self.seal()
            }
            _ => None,
        };
        let open = self.open.get_or_insert_with(|| OpenChunk {
            enc: ChunkEncoder::new(),
            first_ts: point.timestamp_ms,
            log_seq,
            opened: now,
        });
        open.enc.push(point.timestamp_ms, point.value);
        open.log_seq = open.log_seq.min(log_seq);
        self.newest = Some(point);
        // A full chunk is written now rather than at the next point, so it
        // does not pin the ingest log for a whole interval. (It cannot have
        // sealed above too: that starts a chunk of one point.)
        if sealed.is_none() && open.enc.is_full() {
            return Ok(self.seal());
        }
        Ok(sealed)
    }

    /// Takes the open chunk out, if any.
    pub fn seal(&mut self) -> Option<SealedChunk> {
        let open = self.open.take()?;
        let points = decode_points(&open.enc);
        Some(SealedChunk {
            first_ts: open.first_ts,
            bytes: chunk::seal(
                open.enc.bytes(),
                points.iter().map(|p| (p.timestamp_ms, p.value)),
            ),
            points,
            log_seq: open.log_seq,
        })
    }

    /// Seals the open chunk if it was opened at or before `deadline`.
    pub fn seal_if_opened_by(&mut self, deadline: Instant) -> Option<SealedChunk> {
        if self.open.as_ref().is_some_and(|o| o.opened <= deadline) {
            self.seal()
        } else {
            None
        }
    }

    /// Takes the chunks whose write failed, oldest first: they go into
    /// the same write as any chunk sealed after them.
    pub fn take_unwritten(&mut self) -> Vec<SealedChunk> {
        std::mem::take(&mut self.unwritten)
    }

    /// How many chunks wait to be written after a failed write.
    pub fn unwritten_chunks(&self) -> usize {
        self.unwritten.len()
    }

    /// Keeps a sealed chunk whose write failed (call in seal order).
    pub fn keep_unwritten(&mut self, chunk: SealedChunk) {
        self.unwritten.push(chunk);
    }

    /// The lowest ingest-log record the chunks in memory still need.
    pub fn pinned_log_seq(&self) -> Option<u64> {
        self.unwritten
            .iter()
            .map(|c| c.log_seq)
            .chain(self.open.as_ref().map(|o| o.log_seq))
            .min()
    }

    /// The points not yet written to RocksDB, in time order: those of
    /// chunks whose write failed, then the open chunk's.
    pub fn points_in_memory(&self) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .unwritten
            .iter()
            .flat_map(|c| c.points.iter().copied())
            .collect();
        if let Some(open) = &self.open {
            points.extend(decode_points(&open.enc));
        }
        points
    }
}

fn decode_points(enc: &ChunkEncoder) -> Vec<Point> {
    // Sized up front: the decoder cannot tell its length, and growing the
    // vector point by point was a cost of every seal.
    let mut points = Vec::with_capacity(enc.len());
    points.extend(enc.points().map(|p| {
        let (timestamp_ms, value) = p.expect("a chunk being built decodes");
        Point {
            timestamp_ms,
            value,
        }
    }));
    points
}

/// Number of independently locked shards of the heads: streams writing
/// different series rarely wait for each other.
pub const SHARDS: usize = 64;

/// Consecutive ids that share a shard. A sender's series are created
/// together, so their ids are mostly consecutive: a batch of 1,000 series
/// takes 8 shard locks, not all 64, and concurrent senders mostly take
/// different ones. (With one id per shard, every batch locked every shard
/// in the same order, and ten appending threads queued behind each other
/// on each lock: a sixth of the engine bench's CPU went to switching
/// threads.)
pub const SHARD_RUN: u64 = 128;

/// The heads of one shard, by series id. Ids are ours and dense (handed out
/// one after another), so a shard keeps a slot per id of its own (its
/// runs of [`SHARD_RUN`] ids one after another): finding a head is an
/// index, not a hash probe (twice per sample with forwarding on), and a
/// series without a head costs one pointer.
#[derive(Default)]
pub struct HeadMap {
    slots: Vec<Option<Box<Head>>>,
}

impl HeadMap {
    fn slot(id: u64) -> usize {
        let run = id / (SHARD_RUN * SHARDS as u64);
        (run * SHARD_RUN + id % SHARD_RUN) as usize
    }

    /// The id in `slot` of shard `shard` (the inverse of [`HeadMap::slot`]).
    fn id_of(slot: usize, shard: usize) -> u64 {
        let (run, offset) = (slot as u64 / SHARD_RUN, slot as u64 % SHARD_RUN);
        (run * SHARDS as u64 + shard as u64) * SHARD_RUN + offset
    }

    /// The head of series `id`, if it has one.
    pub fn get(&self, id: u64) -> Option<&Head> {
        self.slots.get(Self::slot(id))?.as_deref()
    }

    /// The head of series `id`, if it has one.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Head> {
        self.slots.get_mut(Self::slot(id))?.as_deref_mut()
    }

    /// The head of series `id`, made by `new` if it has none.
    pub fn get_or_insert_with(&mut self, id: u64, new: impl FnOnce() -> Head) -> &mut Head {
        let slot = Self::slot(id);
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot].get_or_insert_with(|| Box::new(new()))
    }

    /// Every head with its series id (`shard` is this map's shard).
    pub fn iter_mut(&mut self, shard: usize) -> impl Iterator<Item = (u64, &mut Head)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(move |(slot, head)| {
                head.as_deref_mut().map(|h| (Self::id_of(slot, shard), h))
            })
    }

    /// Every head.
    pub fn values(&self) -> impl Iterator<Item = &Head> {
        self.slots.iter().filter_map(Option::as_deref)
    }
}

/// The heads of all series, sharded by series id.
pub struct Heads {
    shards: Vec<Mutex<HeadMap>>,
}

impl Default for Heads {
    fn default() -> Self {
        Heads {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Heads {
    /// The shard holding series `id`: each run of [`SHARD_RUN`]
    /// consecutive ids falls to one shard, the next run to the next.
    pub fn shard_of(id: u64) -> usize {
        (id / SHARD_RUN % SHARDS as u64) as usize
    }

    /// Locks shard `i`.
    pub fn lock(&self, i: usize) -> MutexGuard<'_, HeadMap> {
        self.shards[i].lock().expect("poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{self, MAX_POINTS};

    #[test]
    fn ids_map_to_one_slot_of_one_shard_and_back() {
        let mut seen = std::collections::HashSet::new();
        for id in (0..40_000).chain([u64::MAX / 2, 1 << 40]) {
            let (shard, slot) = (Heads::shard_of(id), HeadMap::slot(id));
            assert_eq!(HeadMap::id_of(slot, shard), id);
            assert!(seen.insert((shard, slot)), "{id} shares a slot");
        }
        // A sender's 1,000 consecutive series take 8 or 9 shards.
        let shards: std::collections::HashSet<usize> =
            (5_000..6_000).map(Heads::shard_of).collect();
        assert!(shards.len() <= 9, "{}", shards.len());
        // Slots stay dense: 64 runs of ids fill a shard's first run.
        let top = (0..SHARD_RUN * SHARDS as u64).map(HeadMap::slot).max();
        assert_eq!(top, Some(SHARD_RUN as usize - 1));
    }

    #[test]
    fn refuses_points_not_newer_than_the_newest() {
        let now = Instant::now();
        let mut h = Head::new(Some(Point::new(1_000, 1.0)));
        assert_eq!(
            h.push(Point::new(1_000, 2.0), 1, now).unwrap_err(),
            NotNewer
        );
        assert_eq!(h.push(Point::new(999, 2.0), 1, now).unwrap_err(), NotNewer);
        assert!(h.push(Point::new(1_001, 3.0), 1, now).unwrap().is_none());
        assert_eq!(
            h.push(Point::new(1_001, 4.0), 2, now).unwrap_err(),
            NotNewer
        );
        assert_eq!(h.newest(), Some(Point::new(1_001, 3.0)));
        assert_eq!(h.points_in_memory(), vec![Point::new(1_001, 3.0)]);
    }

    #[test]
    fn seals_full_chunks_and_at_hour_boundaries() {
        let now = Instant::now();
        let mut h = Head::default();
        let mut sealed = Vec::new();
        // 1 s points from 00:58:00 for 5 minutes: the first chunk is full
        // (and sealed) at 00:59:59, the hour's end; the second 120 points
        // later.
        let start = 3_600_000 - 120_000;
        for i in 0..300 {
            if let Some(c) = h
                .push(
                    Point::new(start + i * 1_000, i as f64),
                    1 + i as u64 / 10,
                    now,
                )
                .unwrap()
            {
                sealed.push(c);
            }
        }
        assert_eq!(sealed.len(), 2);
        assert_eq!(sealed[0].first_ts, start);
        assert_eq!(sealed[0].points.len(), MAX_POINTS);
        assert_eq!(sealed[1].first_ts, 3_600_000);
        let decoded: Vec<_> = chunk::decode(&sealed[1].bytes)
            .map(Result::unwrap)
            .collect();
        assert_eq!(decoded.len(), 120);
        assert_eq!(h.points_in_memory().len(), 60);
        // The open chunk pins the log record of its first point.
        assert_eq!(h.pinned_log_seq(), Some(1 + 240 / 10));

        // A point after a gap across an hour boundary cuts a short chunk.
        let mut h = Head::default();
        h.push(Point::new(3_599_000, 1.0), 1, now).unwrap();
        let c = h.push(Point::new(3_600_000, 2.0), 2, now).unwrap().unwrap();
        assert_eq!(c.points, vec![Point::new(3_599_000, 1.0)]);
    }

    #[test]
    fn idle_chunks_are_sealed_by_deadline() {
        let t0 = Instant::now();
        let mut h = Head::default();
        h.push(Point::new(1, 1.0), 7, t0).unwrap();
        assert!(
            h.seal_if_opened_by(t0 - std::time::Duration::from_secs(1))
                .is_none()
        );
        let c = h.seal_if_opened_by(t0).unwrap();
        assert_eq!(c.points, vec![Point::new(1, 1.0)]);
        assert_eq!(h.pinned_log_seq(), None);
        assert_eq!(h.newest(), Some(Point::new(1, 1.0)));
    }

    #[test]
    fn shard_maps_find_each_head_by_id() {
        let mut shard = HeadMap::default();
        // Ids of shard 3: runs of SHARD_RUN, one every SHARDS runs.
        let of_shard_3 = |run: u64, offset: u64| (run * SHARDS as u64 + 3) * SHARD_RUN + offset;
        let (a, b, c) = (of_shard_3(0, 5), of_shard_3(2, 0), of_shard_3(7, 127));
        for id in [b, a, c] {
            assert_eq!(Heads::shard_of(id), 3);
            shard
                .get_or_insert_with(id, || Head::new(Some(Point::new(id as i64, 0.0))))
                .push(Point::new(id as i64 + 1, 1.0), 1, Instant::now())
                .unwrap();
        }
        assert!(shard.get(of_shard_3(0, 6)).is_none());
        assert!(shard.get(of_shard_3(100, 5)).is_none());
        let ids: Vec<u64> = shard.iter_mut(3).map(|(id, _)| id).collect();
        assert_eq!(ids, vec![a, b, c]);
        for id in ids {
            let newest = shard.get(id).and_then(Head::newest);
            assert_eq!(newest, Some(Point::new(id as i64 + 1, 1.0)));
        }
        assert_eq!(shard.values().count(), 3);
    }

    #[test]
    fn shards_spread_dense_ids() {
        let mut seen = [0u32; SHARDS];
        for id in 1..=100_000u64 {
            seen[Heads::shard_of(id)] += 1;
        }
        assert!(
            seen.iter().all(|&n| (1_400..=1_720).contains(&n)),
            "{seen:?}"
        );
    }
}
