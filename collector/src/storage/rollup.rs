//! Rollup tiers: per-series summaries (min, max, sum, count, last) of fixed,
//! epoch-aligned buckets. Pure: the tier arithmetic, the value codec and the
//! merge function RocksDB calls.
//!
//! A rollup row is written as a merge operand when a raw chunk is written:
//! the chunk's points are summarised per bucket and merged into whatever
//! the bucket already holds. Because a chunk is written exactly once (in
//! the same write batch as its merge operands), every raw point is counted
//! exactly once in every tier.

use crate::model::{Point, Summary};

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

/// Bytes of an encoded summary.
pub const SUMMARY_BYTES: usize = 48;

/// Encodes a summary: min, max, sum (f64 bits), count (u64), last_ts (i64),
/// last (f64 bits), each little-endian.
pub fn encode(s: &Summary) -> [u8; SUMMARY_BYTES] {
    let mut out = [0u8; SUMMARY_BYTES];
    let fields = [
        s.min.to_bits(),
        s.max.to_bits(),
        s.sum.to_bits(),
        s.count,
        s.last_ts as u64,
        s.last.to_bits(),
    ];
    for (i, f) in fields.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&f.to_le_bytes());
    }
    out
}

/// Decodes a summary; `None` if the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<Summary> {
    if bytes.len() != SUMMARY_BYTES {
        return None;
    }
    let f = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Some(Summary {
        min: f64::from_bits(f(0)),
        max: f64::from_bits(f(1)),
        sum: f64::from_bits(f(2)),
        count: f(3),
        last_ts: f(4) as i64,
        last: f64::from_bits(f(5)),
    })
}

/// Merges an existing value and operands into one summary. Malformed
/// operands (impossible unless the files are damaged) are skipped rather
/// than failing the compaction.
pub fn merge<'a>(existing: Option<&[u8]>, operands: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut acc: Option<Summary> = existing.and_then(decode);
    for op in operands {
        if let Some(s) = decode(op) {
            match acc.as_mut() {
                Some(a) => a.merge(&s),
                None => acc = Some(s),
            }
        }
    }
    acc.map_or_else(Vec::new, |s| encode(&s).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: i64, v: f64) -> Point {
        Point {
            timestamp_ms: t,
            value: v,
        }
    }

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
    fn summaries_round_trip_and_merge_in_any_split() {
        let points: Vec<Point> = (0..200)
            .map(|i| p(i * 7_000, (i % 13) as f64 - 3.5))
            .collect();
        let whole = summarise(Tier::Minute, points.iter().copied());
        // Split anywhere, summarise each part, merge as RocksDB would.
        for split in [1, 50, 117, 199] {
            let (a, b) = points.split_at(split);
            let mut rows: std::collections::BTreeMap<i64, Vec<u8>> = Default::default();
            for part in [a, b] {
                for (bucket, s) in summarise(Tier::Minute, part.iter().copied()) {
                    let existing = rows.get(&bucket).cloned();
                    rows.insert(bucket, merge(existing.as_deref(), [encode(&s).as_slice()]));
                }
            }
            let merged: Vec<(i64, Summary)> =
                rows.iter().map(|(b, v)| (*b, decode(v).unwrap())).collect();
            assert_eq!(merged, whole, "split at {split}");
        }
        assert_eq!(whole[0].1.count, 9); // 0..=56 s
        assert_eq!(decode(&[1, 2, 3]), None);
        assert_eq!(merge(None, [&[1u8, 2][..]]), Vec::<u8>::new());
    }
}
