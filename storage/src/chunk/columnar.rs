//! The columnar chunk layout: timestamps and values in columns of their
//! own, each in the cheapest of a few codes. Built once, when a chunk is
//! sealed, and stored only when it is smaller than the XOR chunk the head
//! built point by point; the byte layout is drawn in
//! `docs/format/storage.md`.
//!
//! Why: most host metrics carry few significant decimals (a percentage
//! to 0.01, a byte count as an integer), and XOR pays for every noisy low
//! digit with 2 bytes or more. Scaled by a power of ten those values are
//! small integers, and a run of small integers packs into a fixed width of
//! bits per point: the width of their range (frame of reference), or the
//! width of the range of their deltas, whichever is narrower.
//!
//! Exactness: a value is taken as the integer `n` at scale `e` only if
//! `n as f64 / 10^e` gives back its very bits, the expression the reader
//! computes; -0.0, NaN, ±Inf and values needing more than 53 bits of
//! integer fall back to the XOR code. So every chunk reads back bit for
//! bit.

use super::{BitReader, BitWriter, XorState, read_dod, write_dod};
use crate::varint;

/// Set in the count word of a columnar chunk (counts stay below it).
pub(super) const FLAG: u16 = 0x8000;

/// Timestamp codes.
const TIMES_REGULAR: u8 = 0;
const TIMES_DOD: u8 = 1;

/// Value codes.
const VALUES_XOR: u8 = 0;
const VALUES_OFFSETS: u8 = 1;
const VALUES_DELTAS: u8 = 2;

/// The largest decimal scale tried: 10^12 (every power of ten up to 10^22
/// is an exact f64).
const MAX_SCALE: usize = 12;
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];

/// Integers above this in magnitude are not all exact in an f64.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The value a reader makes of integer `n` at scale `e`.
fn scaled(n: i64, e: usize) -> f64 {
    // x / 1.0 is x exactly: most values are integers, and skip the divide.
    if e == 0 {
        n as f64
    } else {
        n as f64 / POW10[e]
    }
}

/// `v` as an integer at scale `e`, if that reads back as exactly `v`.
fn integer_at(v: f64, e: usize) -> Option<i64> {
    let x = v * POW10[e];
    if x.is_nan() || x.abs() > MAX_EXACT {
        return None;
    }
    // `x.round()` without its libm call (sealing a chunk rounds every
    // value at least once): truncate, then step away from zero on a
    // half or more. Exactness is checked on the result below anyway.
    let t = x as i64;
    let frac = x - t as f64;
    let n = if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    };
    (scaled(n, e).to_bits() == v.to_bits()).then_some(n)
}

/// `v` as the integer `n` at the smallest scale `e` up to `max_scale` at
/// which `n / 10^e` reads back as exactly `v`: (e, n).
pub(crate) fn decimal_of(v: f64, max_scale: usize) -> Option<(usize, i64)> {
    (0..=max_scale.min(MAX_SCALE)).find_map(|e| integer_at(v, e).map(|n| (e, n)))
}

/// The value integer `n` at scale `e` stands for (as [`decimal_of`]
/// found it); None past the largest scale.
pub(crate) fn decimal_value(n: i64, e: usize) -> Option<f64> {
    (e <= MAX_SCALE).then(|| scaled(n, e))
}

/// The values as integers at the smallest scale that holds them all
/// exactly, with that scale; None if none does.
pub(super) fn decimal(values: &[u64]) -> Option<(usize, Vec<i64>)> {
    let mut scale = 0;
    let mut ints = Vec::with_capacity(values.len());
    for (i, &bits) in values.iter().enumerate() {
        if let Some(n) = integer_at(f64::from_bits(bits), scale) {
            ints.push(n);
            continue;
        }
        // A larger scale, at which this value and all before it are exact
        // (a value exact at a smaller scale is not always exact at a
        // larger one: the product rounds).
        ints.clear();
        loop {
            scale += 1;
            if scale > MAX_SCALE {
                return None;
            }
            if integer_at(f64::from_bits(bits), scale).is_none() {
                continue;
            }
            let again: Option<Vec<i64>> = values[..=i]
                .iter()
                .map(|&bits| integer_at(f64::from_bits(bits), scale))
                .collect();
            if let Some(again) = again {
                ints = again;
                break;
            }
        }
    }
    Some((scale, ints))
}

/// Bits needed for `0..=range`.
fn width(range: u64) -> u32 {
    64 - range.leading_zeros()
}

/// The lowest of `ints` and the bits each needs above it (one pass).
fn frame(ints: impl Iterator<Item = i64>) -> (i64, u32) {
    let (min, max) = ints.fold((i64::MAX, i64::MIN), |(lo, hi), n| (lo.min(n), hi.max(n)));
    if min > max {
        return (0, 0);
    }
    (min, width(max.wrapping_sub(min) as u64))
}

/// Bytes of `n`'s zigzag varint.
fn varint_len(n: i64) -> usize {
    varint::len(varint::zigzag(n))
}

fn get_u8(bytes: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = bytes.split_first()?;
    *bytes = rest;
    Some(b)
}

/// Encodes `points` (timestamp, value bits; 1 to `MAX_POINTS`) columnar,
/// each column in its smallest code.
pub(super) fn encode(points: &[(i64, u64)]) -> Vec<u8> {
    debug_assert!(!points.is_empty() && points.len() < usize::from(FLAG));
    let mut out = Vec::with_capacity(16 + points.len() * 2);
    out.extend_from_slice(&(points.len() as u16 | FLAG).to_be_bytes());
    varint::put(&mut out, varint::zigzag(points[0].0));
    let deltas = points.windows(2).map(|w| w[1].0.wrapping_sub(w[0].0));
    let first_delta = deltas.clone().next().unwrap_or(0);
    if deltas.clone().all(|d| d == first_delta) {
        out.push(TIMES_REGULAR);
        varint::put(&mut out, varint::zigzag(first_delta));
    } else {
        out.push(TIMES_DOD);
        let mut bits = BitWriter::default();
        let mut prev = 0i64;
        for d in deltas {
            write_dod(&mut bits, d.wrapping_sub(prev));
            prev = d;
        }
        varint::put(&mut out, bits.bytes.len() as u64);
        out.extend_from_slice(&bits.bytes);
    }
    let values: Vec<u64> = points.iter().map(|p| p.1).collect();
    out.extend_from_slice(&encode_values(&values));
    out
}

/// The value column in its smallest code (XOR on a tie). The packed
/// codes' sizes follow from their frames, so only the one kept is built,
/// and the XOR one only when a packed column could lose to it.
fn encode_values(values: &[u64]) -> Vec<u8> {
    let xor = || {
        let mut bits = BitWriter::default();
        bits.bytes.reserve(9 + values.len() * 2);
        bits.bytes.push(VALUES_XOR);
        bits.bytes.extend_from_slice(&values[0].to_be_bytes());
        let mut state = XorState {
            prev: values[0],
            window: None,
        };
        for &v in &values[1..] {
            state.write(&mut bits, v);
        }
        bits.bytes
    };
    let Some((scale, ints)) = decimal(values) else {
        return xor();
    };
    let steps = || ints.windows(2).map(|w| w[1].wrapping_sub(w[0]));
    let (offsets_min, offsets_width) = frame(ints.iter().copied());
    let (steps_min, steps_width) = frame(steps());
    let bit_bytes = |count: usize, width: u32| (count * width as usize).div_ceil(8);
    let offsets_len = 2 + varint_len(offsets_min) + 1 + bit_bytes(ints.len(), offsets_width);
    let deltas_len = 2
        + varint_len(ints[0])
        + varint_len(steps_min)
        + 1
        + bit_bytes(ints.len() - 1, steps_width);
    let packed_len = offsets_len.min(deltas_len);
    let packed = || {
        let mut bits = BitWriter::default();
        bits.bytes.reserve(packed_len);
        // Headers go straight into the writer's bytes: it is byte-aligned
        // until the packed bits.
        let out = &mut bits.bytes;
        if deltas_len < offsets_len {
            out.extend_from_slice(&[VALUES_DELTAS, scale as u8]);
            varint::put(out, varint::zigzag(ints[0]));
            varint::put(out, varint::zigzag(steps_min));
            out.push(steps_width as u8);
            for d in steps() {
                bits.write(d.wrapping_sub(steps_min) as u64, steps_width);
            }
        } else {
            out.extend_from_slice(&[VALUES_OFFSETS, scale as u8]);
            varint::put(out, varint::zigzag(offsets_min));
            out.push(offsets_width as u8);
            for &n in &ints {
                bits.write(n.wrapping_sub(offsets_min) as u64, offsets_width);
            }
        }
        debug_assert_eq!(bits.bytes.len(), packed_len);
        bits.bytes
    };
    // The XOR column takes its code byte, the first value's 8 bytes and at
    // least a bit for every later value: a packed column below that wins
    // without building the XOR one (most columns, and most of the cost of
    // sealing a chunk was that XOR pass).
    let xor_at_least = 1 + 8 + (values.len() - 1).div_ceil(8);
    if packed_len < xor_at_least {
        return packed();
    }
    let xor = xor();
    if xor.len() <= packed_len {
        xor
    } else {
        packed()
    }
}

/// Reads a columnar chunk's points.
pub(super) struct Reader<'a> {
    times: Times<'a>,
    values: Values<'a>,
}

enum Times<'a> {
    Regular {
        next: i64,
        delta: i64,
    },
    Dod {
        next: i64,
        delta: i64,
        bits: BitReader<'a>,
    },
}

enum Values<'a> {
    Xor {
        first: u64,
        state: XorState,
        bits: BitReader<'a>,
    },
    Offsets {
        scale: usize,
        min: i64,
        width: u32,
        bits: BitReader<'a>,
    },
    Deltas {
        scale: usize,
        current: i64,
        min: i64,
        width: u32,
        bits: BitReader<'a>,
    },
}

impl<'a> Reader<'a> {
    /// Parses the column headers of a chunk of `count` points (`bytes`
    /// follow the count word); None if they are malformed.
    pub(super) fn open(mut bytes: &'a [u8], count: u16) -> Option<Reader<'a>> {
        if count == 0 {
            return None;
        }
        let first_ts = varint::unzigzag(varint::get(&mut bytes)?);
        let times = match get_u8(&mut bytes)? {
            TIMES_REGULAR => Times::Regular {
                next: first_ts,
                delta: varint::unzigzag(varint::get(&mut bytes)?),
            },
            TIMES_DOD => {
                let len = usize::try_from(varint::get(&mut bytes)?).ok()?;
                let column = bytes.get(..len)?;
                bytes = &bytes[len..];
                Times::Dod {
                    next: first_ts,
                    delta: 0,
                    bits: BitReader::new(column),
                }
            }
            _ => return None,
        };
        let values = Values::open(bytes)?;
        Some(Reader { times, values })
    }

    /// The next point (timestamp, value bits); None past the end of a
    /// column (the chunk is truncated or corrupt).
    pub(super) fn next_point(&mut self, first: bool) -> Option<(i64, u64)> {
        let ts = match &mut self.times {
            Times::Regular { next, delta } => {
                let ts = *next;
                *next = next.wrapping_add(*delta);
                ts
            }
            Times::Dod { next, delta, bits } => {
                if !first {
                    *delta = delta.wrapping_add(read_dod(bits)?);
                    *next = next.wrapping_add(*delta);
                }
                *next
            }
        };
        let value = self.values.next(first)?;
        Some((ts, value))
    }
}

impl<'a> Values<'a> {
    /// Parses a value column (its code byte first).
    fn open(mut bytes: &'a [u8]) -> Option<Values<'a>> {
        let scale_of = |bytes: &mut &[u8]| {
            let e = usize::from(get_u8(bytes)?);
            (e <= MAX_SCALE).then_some(e)
        };
        let width_of = |bytes: &mut &[u8]| {
            let w = u32::from(get_u8(bytes)?);
            (w <= 64).then_some(w)
        };
        let values = match get_u8(&mut bytes)? {
            VALUES_XOR => {
                let (first, rest) = bytes.split_first_chunk::<8>()?;
                Values::Xor {
                    first: u64::from_be_bytes(*first),
                    state: XorState::default(),
                    bits: BitReader::new(rest),
                }
            }
            VALUES_OFFSETS => {
                let scale = scale_of(&mut bytes)?;
                let min = varint::unzigzag(varint::get(&mut bytes)?);
                let width = width_of(&mut bytes)?;
                Values::Offsets {
                    scale,
                    min,
                    width,
                    bits: BitReader::new(bytes),
                }
            }
            VALUES_DELTAS => {
                let scale = scale_of(&mut bytes)?;
                let current = varint::unzigzag(varint::get(&mut bytes)?);
                let min = varint::unzigzag(varint::get(&mut bytes)?);
                let width = width_of(&mut bytes)?;
                Values::Deltas {
                    scale,
                    current,
                    min,
                    width,
                    bits: BitReader::new(bytes),
                }
            }
            _ => return None,
        };
        Some(values)
    }

    /// The next value's bits; `first` for the column's first value.
    fn next(&mut self, first: bool) -> Option<u64> {
        Some(match self {
            Values::Xor {
                first: v,
                state,
                bits,
            } => {
                if first {
                    state.prev = *v;
                    *v
                } else {
                    state.read(bits)?
                }
            }
            Values::Offsets {
                scale,
                min,
                width,
                bits,
            } => scaled(min.wrapping_add(bits.read(*width)? as i64), *scale).to_bits(),
            Values::Deltas {
                scale,
                current,
                min,
                width,
                bits,
            } => {
                if !first {
                    let step = min.wrapping_add(bits.read(*width)? as i64);
                    *current = current.wrapping_add(step);
                }
                scaled(*current, *scale).to_bits()
            }
        })
    }
}

/// Encodes a column of values (f64 bits, at least one) in its smallest
/// code, as a chunk's value column: for columns other than a chunk's own
/// (the rollup rows').
pub(crate) fn encode_value_column(values: &[u64]) -> Vec<u8> {
    encode_values(values)
}

/// Decodes `n` values of a column [`encode_value_column`] wrote; None if
/// it is malformed or too short.
pub(crate) fn decode_value_column(bytes: &[u8], n: usize) -> Option<Vec<u64>> {
    let mut values = Values::open(bytes)?;
    (0..n).map(|i| values.next(i == 0)).collect()
}
