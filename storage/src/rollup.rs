//! Rollup tiers: per-series summaries (min, max, sum, count, last) of fixed,
//! epoch-aligned buckets. Pure: the tier arithmetic, the value codec and the
//! merge function RocksDB calls.
//!
//! A rollup row is written as a merge operand when a raw chunk is written:
//! the chunk's points are summarised per bucket and merged into whatever
//! the bucket already holds. Because a chunk is written exactly once (in
//! the same write batch as its merge operands), every raw point is counted
//! exactly once in every tier.

use super::varint;
use nightjar_model::model::{Point, Summary};

/// A storage tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Every point as received.
    Raw,
    /// 1-minute summaries.
    Minute,
    /// 1-hour summaries.
    Hour,
}

impl Tier {
    /// The rollup tiers, finest first.
    pub const ROLLUPS: [Tier; 2] = [Tier::Minute, Tier::Hour];

    /// Bucket width in ms (0 for raw).
    pub fn width_ms(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 60_000,
            Tier::Hour => 3_600_000,
        }
    }

    /// Name used in self-metrics labels and docs.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Minute => "1m",
            Tier::Hour => "1h",
        }
    }

    /// The coarsest tier whose buckets tile a query step: the step must be a
    /// multiple of the tier's width. A step of 0 (raw points) needs raw.
    pub fn for_step(step_ms: i64) -> Tier {
        [Tier::Hour, Tier::Minute]
            .into_iter()
            .find(|t| step_ms > 0 && step_ms % t.width_ms() == 0)
            .unwrap_or(Tier::Raw)
    }

    /// Start of the bucket holding `ts`.
    pub fn bucket(self, ts: i64) -> i64 {
        let w = self.width_ms();
        // Saturates below i64::MIN's bucket rather than overflowing.
        ts.div_euclid(w).saturating_mul(w)
    }
}

/// Summaries per bucket of time-ordered points, in bucket order.
pub fn summarise(tier: Tier, points: impl IntoIterator<Item = Point>) -> Vec<(i64, Summary)> {
    let mut out: Vec<(i64, Summary)> = Vec::new();
    for p in points {
        let b = tier.bucket(p.timestamp_ms);
        match out.last_mut() {
            Some((start, s)) if *start == b => s.add(p),
            _ => out.push((b, Summary::of(p))),
        }
    }
    out
}

impl Tier {
    /// Span of one stored rollup row: a row holds the summaries of the
    /// buckets of one block (60 minutes of an hour, 24 hours of a day), so
    /// a written chunk adds one merge operand per tier, not one per bucket.
    pub fn block_ms(self) -> i64 {
        match self {
            Tier::Raw | Tier::Minute => Tier::Hour.width_ms(),
            Tier::Hour => 24 * Tier::Hour.width_ms(),
        }
    }

    /// Start of the block holding `ts`.
    pub fn block(self, ts: i64) -> i64 {
        let w = self.block_ms();
        ts.div_euclid(w).saturating_mul(w)
    }
}

/// Groups bucket summaries (in bucket order) by block: (block start, its
/// buckets).
pub fn by_block(tier: Tier, buckets: &[(i64, Summary)]) -> Vec<(i64, Vec<(i64, Summary)>)> {
    let mut out: Vec<(i64, Vec<(i64, Summary)>)> = Vec::new();
    for &(start, s) in buckets {
        let block = tier.block(start);
        match out.last_mut() {
            Some((b, list)) if *b == block => list.push((start, s)),
            _ => out.push((block, vec![(start, s)])),
        }
    }
    out
}

/// Encodes the buckets of one block (sorted, distinct, inside the block):
/// per bucket its index in the block (u8), a varint count, then for a
/// single point its value (f64 LE), else min, max, sum, last (f64 LE each),
/// then the zigzag varint of `last_ts − bucket start`.
pub fn encode_block(tier: Tier, block_start: i64, buckets: &[(i64, Summary)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buckets.len() * 14);
    for (start, s) in buckets {
        out.push(((start - block_start) / tier.width_ms()) as u8);
        varint::put(&mut out, s.count);
        if s.count == 1 {
            out.extend_from_slice(&s.last.to_le_bytes());
        } else {
            for v in [s.min, s.max, s.sum, s.last] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        varint::put(&mut out, varint::zigzag(s.last_ts.wrapping_sub(*start)));
    }
    out
}

/// Decodes a block row; `None` if the bytes are not one.
pub fn decode_block(tier: Tier, block_start: i64, mut bytes: &[u8]) -> Option<Vec<(i64, Summary)>> {
    let mut out = Vec::new();
    while let Some((&index, rest)) = bytes.split_first() {
        bytes = rest;
        let start = block_start.wrapping_add(i64::from(index) * tier.width_ms());
        let count = varint::get(&mut bytes)?;
        let mut f64s = [0f64; 4];
        let n = if count == 1 { 1 } else { 4 };
        for v in f64s.iter_mut().take(n) {
            let (b, rest) = bytes.split_first_chunk::<8>()?;
            bytes = rest;
            *v = f64::from_le_bytes(*b);
        }
        let [min, max, sum, last] = if count == 1 { [f64s[0]; 4] } else { f64s };
        let last_ts = start.wrapping_add(varint::unzigzag(varint::get(&mut bytes)?));
        if count == 0 {
            return None;
        }
        out.push((
            start,
            Summary {
                min,
                max,
                sum,
                count,
                last_ts,
                last,
            },
        ));
    }
    Some(out)
}

/// Merges an existing block row and operands into one row, bucket by
/// bucket. Times are kept relative to the block (merging does not need the
/// key). Malformed operands (impossible unless files are damaged) are
/// skipped rather than failing the compaction.
pub fn merge<'a>(
    tier: Tier,
    existing: Option<&'a [u8]>,
    operands: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut buckets: std::collections::BTreeMap<i64, Summary> = Default::default();
    for bytes in existing.into_iter().chain(operands) {
        for (start, s) in decode_block(tier, 0, bytes).unwrap_or_default() {
            buckets
                .entry(start)
                .and_modify(|b| b.merge(&s))
                .or_insert(s);
        }
    }
    let list: Vec<(i64, Summary)> = buckets.into_iter().collect();
    encode_block(tier, 0, &list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_for_step_is_the_coarsest_that_tiles_it() {
        assert_eq!(Tier::for_step(0), Tier::Raw);
        assert_eq!(Tier::for_step(10_000), Tier::Raw);
        assert_eq!(Tier::for_step(90_000), Tier::Raw);
        assert_eq!(Tier::for_step(60_000), Tier::Minute);
        assert_eq!(Tier::for_step(300_000), Tier::Minute);
        assert_eq!(Tier::for_step(3_600_000), Tier::Hour);
        assert_eq!(Tier::for_step(86_400_000), Tier::Hour);
        assert_eq!(Tier::Minute.bucket(-1), -60_000);
    }

    #[test]
    fn blocks_round_trip_and_merge_in_any_split() {
        let points: Vec<Point> = (0..2000)
            .map(|i| Point::new(3_600_000 * 5 + i * 7_000, (i % 13) as f64 - 3.5))
            .collect();
        for tier in Tier::ROLLUPS {
            let whole = summarise(tier, points.iter().copied());
            // Split anywhere, summarise each part by block, merge as
            // RocksDB would, decode.
            for split in [1, 50, 117, 1999] {
                let (a, b) = points.split_at(split);
                let mut rows: std::collections::BTreeMap<i64, Vec<u8>> = Default::default();
                for part in [a, b] {
                    let buckets = summarise(tier, part.iter().copied());
                    for (block, list) in by_block(tier, &buckets) {
                        let op = encode_block(tier, block, &list);
                        let existing = rows.get(&block).cloned();
                        rows.insert(block, merge(tier, existing.as_deref(), [op.as_slice()]));
                    }
                }
                let merged: Vec<(i64, Summary)> = rows
                    .iter()
                    .flat_map(|(block, v)| decode_block(tier, *block, v).unwrap())
                    .collect();
                assert_eq!(merged, whole, "{tier:?} split at {split}");
            }
        }
        assert_eq!(
            summarise(Tier::Minute, points.iter().copied())[0].1.count,
            9
        );
    }

    #[test]
    fn single_point_buckets_cost_about_a_dozen_bytes() {
        let s = Summary::of(Point::new(3_600_000 + 61_000, 42.5));
        let row = encode_block(Tier::Minute, 3_600_000, &[(3_660_000, s)]);
        assert_eq!(row.len(), 1 + 1 + 8 + 2);
        assert_eq!(
            decode_block(Tier::Minute, 3_600_000, &row),
            Some(vec![(3_660_000, s)])
        );
        assert_eq!(decode_block(Tier::Minute, 0, &[1, 2, 3]), None);
        // A malformed operand is skipped, the rest kept.
        assert_eq!(merge(Tier::Minute, Some(&row), [&[7u8, 200][..]]), row);
    }
}
