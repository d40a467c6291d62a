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

/// First byte of a block row in the column layout. A row of the first
/// layout starts with a bucket index, below 64.
const COLUMNS: u8 = 0xff;

/// Flags of the column layout: which columns vary or are stored.
const COUNTS_VARY: u8 = 1;
const OFFSETS_VARY: u8 = 2;
const HAS_MIN: u8 = 4;
const HAS_MAX: u8 = 8;
const HAS_SUM: u8 = 16;

/// Encodes the buckets of one block (sorted, distinct, inside the block)
/// in columns, as a sealed chunk is: why and the byte layout are in
/// `docs/format/storage.md` ("Rollup rows"). In short: a bitmap of the
/// buckets present, their counts and `last_ts − bucket start` (each one
/// varint when all are equal), then the `last` values, and the `min`,
/// `max` and `sum` values only when some bucket's differ from its `last`,
/// each a chunk value column (decimal values packed as small integers,
/// else XOR). A counter's hour of 1-minute buckets takes some 30 bytes,
/// not 60 × 44.
pub fn encode_block(tier: Tier, block_start: i64, buckets: &[(i64, Summary)]) -> Vec<u8> {
    let Some(first) = buckets.first() else {
        return Vec::new();
    };
    let width = tier.width_ms();
    let mut bitmap = 0u64;
    for (start, _) in buckets {
        let index = (start - block_start) / width;
        if !(0..64).contains(&index) {
            return encode_block_v1(tier, block_start, buckets);
        }
        bitmap |= 1 << index;
    }
    let same = |f: fn(&Summary) -> u64| buckets.iter().all(|(_, s)| f(s) == f(&first.1));
    let differs = |f: fn(&Summary) -> u64| buckets.iter().any(|(_, s)| f(s) != s.last.to_bits());
    let offset = |(start, s): &(i64, Summary)| varint::zigzag(s.last_ts.wrapping_sub(*start));
    let mut flags = 0;
    if !same(|s| s.count) {
        flags |= COUNTS_VARY;
    }
    if buckets.iter().any(|b| offset(b) != offset(first)) {
        flags |= OFFSETS_VARY;
    }
    for (flag, f) in [
        (
            HAS_MIN,
            (|s: &Summary| s.min.to_bits()) as fn(&Summary) -> u64,
        ),
        (HAS_MAX, |s| s.max.to_bits()),
        (HAS_SUM, |s| s.sum.to_bits()),
    ] {
        if differs(f) {
            flags |= flag;
        }
    }
    let mut out = Vec::with_capacity(32);
    out.push(COLUMNS);
    varint::put(&mut out, bitmap);
    out.push(flags);
    if flags & COUNTS_VARY == 0 {
        varint::put(&mut out, first.1.count);
    } else {
        buckets
            .iter()
            .for_each(|(_, s)| varint::put(&mut out, s.count));
    }
    if flags & OFFSETS_VARY == 0 {
        varint::put(&mut out, offset(first));
    } else {
        buckets
            .iter()
            .for_each(|b| varint::put(&mut out, offset(b)));
    }
    let mut column = |f: fn(&Summary) -> f64| {
        let values: Vec<u64> = buckets.iter().map(|(_, s)| f(s).to_bits()).collect();
        let bytes = crate::chunk::encode_value_column(&values);
        varint::put(&mut out, bytes.len() as u64);
        out.extend_from_slice(&bytes);
    };
    column(|s| s.last);
    if flags & HAS_MIN != 0 {
        column(|s| s.min);
    }
    if flags & HAS_MAX != 0 {
        column(|s| s.max);
    }
    if flags & HAS_SUM != 0 {
        column(|s| s.sum);
    }
    out
}

/// Decodes a block row of either layout; `None` if the bytes are not one.
pub fn decode_block(tier: Tier, block_start: i64, bytes: &[u8]) -> Option<Vec<(i64, Summary)>> {
    match bytes.split_first() {
        Some((&COLUMNS, rest)) => decode_columns(tier, block_start, rest),
        _ => decode_block_v1(tier, block_start, bytes),
    }
}

fn decode_columns(tier: Tier, block_start: i64, mut bytes: &[u8]) -> Option<Vec<(i64, Summary)>> {
    let bitmap = varint::get(&mut bytes)?;
    let n = bitmap.count_ones() as usize;
    let (&flags, rest) = bytes.split_first()?;
    bytes = rest;
    if n == 0 || flags >= 32 {
        return None;
    }
    let mut ints = |vary: bool| -> Option<Vec<u64>> {
        if vary {
            (0..n).map(|_| varint::get(&mut bytes)).collect()
        } else {
            Some(vec![varint::get(&mut bytes)?; n])
        }
    };
    let counts = ints(flags & COUNTS_VARY != 0)?;
    let offsets = ints(flags & OFFSETS_VARY != 0)?;
    let mut column = || -> Option<Vec<u64>> {
        let len = usize::try_from(varint::get(&mut bytes)?).ok()?;
        let col = bytes.get(..len)?;
        bytes = &bytes[len..];
        crate::chunk::decode_value_column(col, n)
    };
    let last = column()?;
    let mut optional = |flag: u8| -> Option<Option<Vec<u64>>> {
        if flags & flag == 0 {
            Some(None)
        } else {
            column().map(Some)
        }
    };
    let (min, max, sum) = (optional(HAS_MIN)?, optional(HAS_MAX)?, optional(HAS_SUM)?);
    if !bytes.is_empty() || counts.contains(&0) {
        return None;
    }
    let indices = (0..64).filter(|i| bitmap & (1 << i) != 0);
    let value =
        |col: &Option<Vec<u64>>, i: usize| f64::from_bits(col.as_ref().map_or(last[i], |c| c[i]));
    Some(
        indices
            .enumerate()
            .map(|(i, index)| {
                let start = block_start.wrapping_add(index * tier.width_ms());
                (
                    start,
                    Summary {
                        min: value(&min, i),
                        max: value(&max, i),
                        sum: value(&sum, i),
                        count: counts[i],
                        last_ts: start.wrapping_add(varint::unzigzag(offsets[i])),
                        last: f64::from_bits(last[i]),
                    },
                )
            })
            .collect(),
    )
}

/// The first layout of a block row (still read; written only for a block
/// of more than 64 buckets, which the tiers never make): per bucket its
/// index in the block (u8), a varint count, then for a single point its
/// value (f64 LE), else min, max, sum, last (f64 LE each), then the zigzag
/// varint of `last_ts − bucket start`. 12 bytes a bucket of one point, 44
/// of several.
fn encode_block_v1(tier: Tier, block_start: i64, buckets: &[(i64, Summary)]) -> Vec<u8> {
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

fn decode_block_v1(tier: Tier, block_start: i64, mut bytes: &[u8]) -> Option<Vec<(i64, Summary)>> {
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
    let mut rows = existing.into_iter().chain(operands).peekable();
    let first = rows.next();
    // One row in the column layout merges into itself: returned as it is
    // (every minute row of a chunk that fills its hour, and each row's
    // last compaction), not decoded and encoded again. A malformed one
    // is still dropped.
    if let Some(row) = first
        && rows.peek().is_none()
        && row.first() == Some(&COLUMNS)
        && decode_columns(tier, 0, &row[1..]).is_some()
    {
        return row.to_vec();
    }
    let mut buckets: std::collections::BTreeMap<i64, Summary> = Default::default();
    for bytes in first.into_iter().chain(rows) {
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
    fn a_lone_row_merges_into_itself_and_a_malformed_one_is_dropped() {
        let points: Vec<Point> = (0..120)
            .map(|i| Point::new(i * 30_000, 1e6 + i as f64 * 1000.0))
            .collect();
        let buckets = summarise(Tier::Minute, points);
        let row = encode_block(Tier::Minute, 0, &buckets);
        assert_eq!(merge(Tier::Minute, None, [row.as_slice()]), row);
        assert_eq!(merge(Tier::Minute, Some(row.as_slice()), []), row);
        assert_eq!(
            decode_block(
                Tier::Minute,
                0,
                &merge(Tier::Minute, None, [row.as_slice()])
            ),
            Some(buckets)
        );
        let broken = &row[..row.len() - 1];
        assert!(merge(Tier::Minute, None, [broken]).is_empty());
    }

    /// A summary as bits, so NaN and -0.0 compare exactly.
    fn bits(list: &[(i64, Summary)]) -> Vec<(i64, [u64; 4], u64, i64)> {
        list.iter()
            .map(|(start, s)| {
                let f = [s.min, s.max, s.sum, s.last].map(f64::to_bits);
                (*start, f, s.count, s.last_ts)
            })
            .collect()
    }

    /// Any value: decimals, integers, noise, or any bits at all.
    fn random_value(rng: &mut fastrand::Rng) -> f64 {
        match rng.u8(0..5) {
            0 => f64::from_bits(rng.u64(..)),
            1 => rng.i64(-1_000_000..1_000_000) as f64 / 100.0,
            2 => [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.usize(..5)],
            3 => rng.u32(..) as f64,
            _ => rng.f64() * 1e6,
        }
    }

    #[test]
    fn column_blocks_round_trip_any_summaries_bit_for_bit() {
        let mut rng = fastrand::Rng::with_seed(31);
        for round in 0..5_000 {
            let tier = Tier::ROLLUPS[round % 2];
            let block = tier.block(rng.i64(-1 << 40..1 << 40));
            let per_block = tier.block_ms() / tier.width_ms();
            let mut list = Vec::new();
            for index in 0..per_block {
                if rng.u8(..4) == 0 {
                    continue;
                }
                let start = block + index * tier.width_ms();
                // Some blocks keep every bucket's min/max/sum at its last,
                // or their counts and offsets equal, as real rows do.
                let plain = round % 3 == 0;
                let last = random_value(&mut rng);
                list.push((
                    start,
                    Summary {
                        min: if plain { last } else { random_value(&mut rng) },
                        max: if plain { last } else { random_value(&mut rng) },
                        sum: if plain { last } else { random_value(&mut rng) },
                        count: if plain { 2 } else { rng.u64(1..u64::MAX) },
                        last_ts: start + if plain { 30_000 } else { rng.i64(..) },
                        last,
                    },
                ));
            }
            let row = encode_block(tier, block, &list);
            assert_eq!(row.first() == Some(&COLUMNS), !list.is_empty());
            let back = decode_block(tier, block, &row).expect("decodes");
            assert_eq!(bits(&back), bits(&list), "{tier:?} round {round}");
        }
    }

    #[test]
    fn a_counters_hour_of_minutes_takes_a_few_dozen_bytes() {
        // Scrapes every 30 s of a counter growing by 1000 a scrape.
        let points: Vec<Point> = (0..120)
            .map(|i| Point::new(7_200_000 + i * 30_000, 123_456_789.0 + 1000.0 * i as f64))
            .collect();
        let buckets = summarise(Tier::Minute, points.iter().copied());
        let row = encode_block(Tier::Minute, 7_200_000, &buckets);
        assert!(row.len() < 64, "{} bytes", row.len());
        eprintln!("column layout: {} bytes", row.len());
        assert_eq!(
            encode_block_v1(Tier::Minute, 7_200_000, &buckets).len(),
            60 * 37
        );
        assert_eq!(decode_block(Tier::Minute, 7_200_000, &row), Some(buckets));
    }

    #[test]
    fn rows_of_the_first_layout_still_read_and_merge() {
        let points: Vec<Point> = (0..50)
            .map(|i| Point::new(3_600_000 + i * 50_000, (i % 7) as f64 * 1.5))
            .collect();
        let (a, b) = points.split_at(20);
        let whole = summarise(Tier::Minute, points.iter().copied());
        let old = encode_block_v1(
            Tier::Minute,
            0,
            &summarise(
                Tier::Minute,
                a.iter()
                    .map(|p| Point::new(p.timestamp_ms - 3_600_000, p.value)),
            ),
        );
        let new = encode_block(
            Tier::Minute,
            0,
            &summarise(
                Tier::Minute,
                b.iter()
                    .map(|p| Point::new(p.timestamp_ms - 3_600_000, p.value)),
            ),
        );
        assert_ne!(old.first(), Some(&COLUMNS));
        let merged = merge(Tier::Minute, Some(&old), [new.as_slice()]);
        assert_eq!(merged.first(), Some(&COLUMNS));
        assert_eq!(decode_block(Tier::Minute, 3_600_000, &merged), Some(whole));
    }

    #[test]
    fn single_point_buckets_cost_about_a_dozen_bytes() {
        let s = Summary::of(Point::new(3_600_000 + 61_000, 42.5));
        let row = encode_block(Tier::Minute, 3_600_000, &[(3_660_000, s)]);
        // Marker, bitmap, flags, count, offset (2), column length, column
        // (code, scale, 425 as a 2-byte varint, width 0).
        assert_eq!(row.len(), 1 + 1 + 1 + 1 + 2 + 1 + 5);
        assert_eq!(
            decode_block(Tier::Minute, 3_600_000, &row),
            Some(vec![(3_660_000, s)])
        );
        assert_eq!(decode_block(Tier::Minute, 0, &[1, 2, 3]), None);
        // A malformed operand is skipped, the rest kept.
        assert_eq!(merge(Tier::Minute, Some(&row), [&[7u8, 200][..]]), row);
    }
}
