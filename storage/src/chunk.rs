//! The XOR chunk codec: a run of (timestamp, value) points of one series,
//! packed as in Facebook's Gorilla paper and Prometheus' XOR chunks.
//! Pure; the byte layout is drawn in `docs/format/storage.md`.
//!
//! - Header: the point count, u16 big-endian.
//! - Point 0: timestamp (64 bits) and value bits (64 bits) verbatim.
//! - Every later point: the delta-of-delta of its timestamp (the delta of
//!   point 1 is taken against a delta of 0) in the first bucket that fits:
//!   `0` → 0; `10` + 14 bits; `110` + 17 bits; `1110` + 20 bits;
//!   `1111` + 64 bits (two's complement). Then its value XORed with the
//!   previous value: `0` → equal; `10` + the meaningful bits inside the
//!   previous leading/trailing-zero window; `11` + 5 bits leading zeros +
//!   6 bits meaningful length (64 stored as 0) + the meaningful bits.
//!
//! Sealed chunks may instead take the columnar layout ([`columnar`]:
//! timestamps and values in columns, decimal values as packed integers)
//! when that is smaller; [`decode`] reads both.
//!
//! Arithmetic on timestamps wraps, so every i64 sequence round-trips; values
//! travel as raw bits, so NaN payloads, ±Inf and -0.0 round-trip exactly.
//! The codec itself accepts any order and repeats; the head (not the codec)
//! enforces strictly increasing timestamps.

mod columnar;

pub(crate) use columnar::{decimal_of, decimal_value, decode_value_column, encode_value_column};

/// Most points in one chunk (Prometheus' figure: good compression, and a
/// short decode for a partial range).
pub const MAX_POINTS: usize = 120;

/// Appends points to a chunk being built.
#[derive(Clone, Debug)]
pub struct ChunkEncoder {
    bits: BitWriter,
    count: u16,
    prev_ts: i64,
    prev_delta: i64,
    xor: XorState,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        ChunkEncoder::new()
    }
}

impl ChunkEncoder {
    /// An empty chunk.
    pub fn new() -> ChunkEncoder {
        let mut bits = BitWriter::default();
        bits.write(0, 16); // count, patched in `bytes`
        ChunkEncoder {
            bits,
            count: 0,
            prev_ts: 0,
            prev_delta: 0,
            xor: XorState::default(),
        }
    }

    /// Number of points appended.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no point was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the chunk holds [`MAX_POINTS`] points.
    pub fn is_full(&self) -> bool {
        self.len() >= MAX_POINTS
    }

    /// Appends a point. Panics past [`MAX_POINTS`] (the head cuts before).
    pub fn push(&mut self, ts: i64, value: f64) {
        assert!(!self.is_full(), "chunk is full");
        let value = value.to_bits();
        if self.count == 0 {
            self.bits.write(ts as u64, 64);
            self.bits.write(value, 64);
            self.xor.prev = value;
        } else {
            let delta = ts.wrapping_sub(self.prev_ts);
            write_dod(&mut self.bits, delta.wrapping_sub(self.prev_delta));
            self.xor.write(&mut self.bits, value);
            self.prev_delta = delta;
        }
        self.prev_ts = ts;
        self.count += 1;
    }

    /// The encoded chunk.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.bits.bytes.clone();
        out[..2].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// The encoded size so far, in bytes.
    pub fn size(&self) -> usize {
        self.bits.bytes.len()
    }

    /// Decodes the points appended so far.
    pub fn points(&self) -> ChunkIter<'_> {
        ChunkIter::with_count(&self.bits.bytes, self.count)
    }
}

/// The bytes to store for a sealed chunk of `points`: the columnar layout
/// ([`columnar`]) when it is smaller than `xor`, the XOR chunk the head
/// built as they arrived (which reads back as the same points).
pub fn seal(xor: Vec<u8>, points: impl Iterator<Item = (i64, f64)>) -> Vec<u8> {
    let points: Vec<(i64, u64)> = points.map(|(t, v)| (t, v.to_bits())).collect();
    if points.is_empty() {
        return xor;
    }
    let columnar = columnar::encode(&points);
    if columnar.len() < xor.len() {
        columnar
    } else {
        xor
    }
}

/// Whether `v` fits in `bits` bits two's complement.
fn fits(v: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&v)
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Writes a timestamp's delta-of-delta in the first bucket that fits.
fn write_dod(b: &mut BitWriter, dod: i64) {
    if dod == 0 {
        b.write(0b0, 1);
    } else if fits(dod, 14) {
        b.write_pair(0b10, 2, dod as u64, 14);
    } else if fits(dod, 17) {
        b.write_pair(0b110, 3, dod as u64, 17);
    } else if fits(dod, 20) {
        b.write_pair(0b1110, 4, dod as u64, 20);
    } else {
        b.write(0b1111, 4);
        b.write(dod as u64, 64);
    }
}

/// Reads what [`write_dod`] wrote.
fn read_dod(b: &mut BitReader) -> Option<i64> {
    Some(if b.read(1)? == 0 {
        0
    } else if b.read(1)? == 0 {
        sign_extend(b.read(14)?, 14)
    } else if b.read(1)? == 0 {
        sign_extend(b.read(17)?, 17)
    } else if b.read(1)? == 0 {
        sign_extend(b.read(20)?, 20)
    } else {
        b.read(64)? as i64
    })
}

/// The XOR value code's state: the previous value's bits and the window
/// (leading and trailing zeros) of the last XOR written in full.
#[derive(Clone, Debug, Default)]
struct XorState {
    prev: u64,
    window: Option<(u32, u32)>,
}

impl XorState {
    /// Writes `value` (bits) XORed with the previous one.
    fn write(&mut self, b: &mut BitWriter, value: u64) {
        let xor = value ^ self.prev;
        self.prev = value;
        if xor == 0 {
            b.write(0b0, 1);
            return;
        }
        // 5 bits hold at most 31 leading zeros.
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        match self.window {
            Some((l, t)) if leading >= l && trailing >= t => {
                b.write_pair(0b10, 2, xor >> t, 64 - l - t);
            }
            _ => {
                let meaningful = 64 - leading - trailing;
                // `11`, 5 bits of leading zeros, 6 of meaningful length
                // (64 is stored as 0: 6 bits hold 0..=63).
                let header = (0b11 << 11) | (u64::from(leading) << 6) | u64::from(meaningful % 64);
                b.write_pair(header, 13, xor >> trailing, meaningful);
                self.window = Some((leading, trailing));
            }
        }
    }

    /// Reads the next value's bits.
    fn read(&mut self, b: &mut BitReader) -> Option<u64> {
        if b.read(1)? == 1 {
            if b.read(1)? == 1 {
                let leading = b.read(5)? as u32;
                let meaningful = match b.read(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                let trailing = 64u32.checked_sub(leading + meaningful)?;
                self.window = Some((leading, trailing));
            }
            let (leading, trailing) = self.window.unwrap_or((0, 0));
            let xor = b.read(64 - leading - trailing)?;
            self.prev ^= xor << trailing;
        }
        Some(self.prev)
    }
}

/// A decoding error: the bytes are not a chunk (truncated or corrupt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chunk is truncated or corrupt after {decoded} points")]
pub struct ChunkError {
    /// Points decoded before the error.
    pub decoded: u16,
}

/// Iterates the points of an encoded chunk.
pub struct ChunkIter<'a> {
    layout: Layout<'a>,
    remaining: u16,
    decoded: u16,
    failed: bool,
}

/// How the chunk being read is laid out.
enum Layout<'a> {
    /// Points one after another, timestamp and value interleaved.
    Xor(XorReader<'a>),
    /// Timestamps and values in columns of their own ([`columnar`]).
    Columnar(columnar::Reader<'a>),
}

struct XorReader<'a> {
    bits: BitReader<'a>,
    ts: i64,
    delta: i64,
    xor: XorState,
}

impl XorReader<'_> {
    fn next_point(&mut self, first: bool) -> Option<(i64, u64)> {
        let b = &mut self.bits;
        if first {
            self.ts = b.read(64)? as i64;
            self.xor.prev = b.read(64)?;
            return Some((self.ts, self.xor.prev));
        }
        self.delta = self.delta.wrapping_add(read_dod(b)?);
        self.ts = self.ts.wrapping_add(self.delta);
        Some((self.ts, self.xor.read(b)?))
    }
}

/// Decodes a chunk's points (either layout); stops with an error on
/// corrupt bytes.
pub fn decode(bytes: &[u8]) -> ChunkIter<'_> {
    let Some(&[hi, lo]) = bytes.first_chunk::<2>() else {
        return ChunkIter::broken();
    };
    let count = u16::from_be_bytes([hi, lo]);
    if count & columnar::FLAG == 0 {
        return ChunkIter::with_count(bytes, count);
    }
    let count = count & !columnar::FLAG;
    match columnar::Reader::open(&bytes[2..], count) {
        Some(reader) => ChunkIter {
            layout: Layout::Columnar(reader),
            remaining: count,
            decoded: 0,
            failed: false,
        },
        None => ChunkIter::broken(),
    }
}

impl<'a> ChunkIter<'a> {
    /// An XOR chunk of `count` points.
    fn with_count(bytes: &'a [u8], count: u16) -> ChunkIter<'a> {
        let mut bits = BitReader::new(bytes);
        bits.read(16);
        ChunkIter {
            layout: Layout::Xor(XorReader {
                bits,
                ts: 0,
                delta: 0,
                xor: XorState::default(),
            }),
            remaining: count,
            decoded: 0,
            failed: false,
        }
    }

    /// Bytes whose header cannot be read: one error, no point.
    fn broken() -> ChunkIter<'a> {
        let mut iter = ChunkIter::with_count(&[], 0);
        iter.failed = true;
        iter
    }

    fn next_point(&mut self) -> Option<(i64, u64)> {
        let first = self.decoded == 0;
        match &mut self.layout {
            Layout::Xor(r) => r.next_point(first),
            Layout::Columnar(r) => r.next_point(first),
        }
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.failed {
            if self.failed {
                self.failed = false;
                self.remaining = 0;
                return Some(Err(ChunkError {
                    decoded: self.decoded,
                }));
            }
            return None;
        }
        match self.next_point() {
            Some((ts, bits)) => {
                self.remaining -= 1;
                self.decoded += 1;
                Some(Ok((ts, f64::from_bits(bits))))
            }
            None => {
                self.remaining = 0;
                Some(Err(ChunkError {
                    decoded: self.decoded,
                }))
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u32,
}

impl BitWriter {
    /// Writes the low `n` (≤ 64) bits of `v`, most significant first: the
    /// free bits of the last byte, then whole bytes at once (sealing and
    /// merging write every column bit by bit through here; a loop of a
    /// byte per turn was a fifth of the engine's CPU).
    fn write(&mut self, v: u64, mut n: u32) {
        if n == 0 {
            return;
        }
        let v = if n < 64 { v & ((1u64 << n) - 1) } else { v };
        if self.used != 0 {
            let free = 8 - self.used;
            let last = self.bytes.last_mut().expect("a partly used byte");
            if n <= free {
                *last |= (v as u8) << (free - n);
                self.used = (self.used + n) % 8;
                return;
            }
            *last |= (v >> (n - free)) as u8;
            n -= free;
        }
        // Byte-aligned now, 1 to 64 bits left (the low `n` of `v`).
        let aligned = (v << (64 - n)).to_be_bytes();
        self.bytes
            .extend_from_slice(&aligned[..n.div_ceil(8) as usize]);
        self.used = n % 8;
    }

    /// Writes the low `na` bits of `a`, then the low `nb` of `b`: one
    /// write when they fit in a word (a code's prefix and its payload).
    fn write_pair(&mut self, a: u64, na: u32, b: u64, nb: u32) {
        if na + nb <= 64 && nb < 64 {
            self.write((a << nb) | (b & ((1u64 << nb) - 1)), na + nb);
        } else {
            self.write(a, na);
            self.write(b, nb);
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> BitReader<'a> {
        BitReader { bytes, pos: 0 }
    }

    /// Reads `n` (≤ 64) bits, or `None` past the end: from one byte when
    /// they lie in it (most reads are of a bit or two), else from a
    /// 16-byte window.
    fn read(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let end = self.pos + n as usize;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let (start, offset) = (self.pos / 8, (self.pos % 8) as u32);
        self.pos = end;
        if offset + n <= 8 {
            let byte = self.bytes[start];
            return Some(u64::from(
                (byte >> (8 - offset - n)) & (0xffu16 >> (8 - n)) as u8,
            ));
        }
        let window = match self.bytes.get(start..start + 16) {
            Some(w) => u128::from_be_bytes(w.try_into().expect("16 bytes")),
            None => {
                let mut w = [0u8; 16];
                let rest = &self.bytes[start..];
                w[..rest.len()].copy_from_slice(rest);
                u128::from_be_bytes(w)
            }
        };
        Some(((window << offset) >> (128 - n)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
        let mut enc = ChunkEncoder::new();
        for &(t, v) in points {
            enc.push(t, v);
        }
        let bytes = enc.bytes();
        let decoded: Vec<(i64, f64)> = decode(&bytes).map(Result::unwrap).collect();
        let live: Vec<(i64, f64)> = enc.points().map(Result::unwrap).collect();
        assert_eq!(
            live.iter()
                .map(|p| (p.0, p.1.to_bits()))
                .collect::<Vec<_>>(),
            decoded
                .iter()
                .map(|p| (p.0, p.1.to_bits()))
                .collect::<Vec<_>>()
        );
        decoded
    }

    #[track_caller]
    fn assert_same_bits(points: &[(i64, f64)]) {
        let got = round_trip(points);
        let bits = |p: &[(i64, f64)]| p.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(points));
    }

    #[test]
    fn edge_values_round_trip_bit_for_bit() {
        let weird_nan = f64::from_bits(0x7ff8_0000_dead_beef);
        assert_same_bits(&[
            (0, 0.0),
            (1, -0.0),
            (2, f64::NAN),
            (3, weird_nan),
            (4, f64::INFINITY),
            (5, f64::NEG_INFINITY),
            (6, f64::MIN_POSITIVE),
            (7, f64::MAX),
            (8, f64::MIN),
            (9, 5e-324),
            (10, 1.0),
            (11, 1.0),
        ]);
    }

    #[test]
    fn edge_timestamps_round_trip() {
        assert_same_bits(&[
            (i64::MIN, 1.0),
            (i64::MAX, 2.0),
            (i64::MIN, 3.0),
            (0, 4.0),
            (0, 5.0),   // equal timestamps: the codec keeps them
            (-10, 6.0), // out of order: the codec keeps them too
            (1 << 13, 7.0),
            ((1 << 13) * 2, 8.0),
            ((1 << 16) * 5, 9.0),
            ((1 << 19) * 9, 10.0),
        ]);
    }

    #[test]
    fn random_points_round_trip() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let n = rng.usize(1..=MAX_POINTS);
            let mut t = rng.i64(..);
            let mut v = rng.f64() * 100.0;
            let mut points = Vec::new();
            for _ in 0..n {
                t = t.wrapping_add(match rng.u8(0..4) {
                    0 => 10_000,
                    1 => rng.i64(-1_000_000..1_000_000),
                    2 => rng.i64(..),
                    _ => 10_000 + rng.i64(-20..20),
                });
                v = match rng.u8(0..5) {
                    0 => v,
                    1 => v + rng.f64() - 0.5,
                    2 => f64::from_bits(rng.u64(..)),
                    3 => rng.u32(..) as f64,
                    _ => (v * 100.0).round() / 100.0,
                };
                points.push((t, v));
            }
            assert_same_bits(&points);
        }
    }

    #[test]
    fn regular_series_compress_well() {
        let mut enc = ChunkEncoder::new();
        for i in 0..MAX_POINTS as i64 {
            enc.push(1_700_000_000_000 + i * 10_000, 42.0);
        }
        // Count, the first point verbatim (16 bytes), the first delta
        // (20 bits), then 2 bits per point: 51 bytes for 120 points.
        assert_eq!(enc.size(), 51);
    }

    #[test]
    fn corrupt_and_truncated_chunks_are_errors_not_panics() {
        let mut enc = ChunkEncoder::new();
        for i in 0..50 {
            enc.push(i * 1000, i as f64 * 1.5);
        }
        let bytes = enc.bytes();
        for cut in 0..bytes.len() {
            let got: Vec<_> = decode(&bytes[..cut]).collect();
            assert!(got.last().is_some_and(Result::is_err), "cut at {cut}");
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            let mut b = bytes.clone();
            let i = rng.usize(..b.len());
            b[i] ^= 1 << rng.u8(0..8);
            // Any outcome but a panic or an endless iteration is fine.
            assert!(decode(&b).count() <= u16::MAX as usize + 1);
        }
    }

    /// The bit-at-a-time writer and reader the fast ones replaced, as the
    /// reference they must match.
    fn reference_write(bytes: &mut Vec<u8>, used: &mut u32, v: u64, mut n: u32) {
        while n > 0 {
            if *used == 0 {
                bytes.push(0);
            }
            let free = 8 - *used;
            let take = free.min(n);
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            *bytes.last_mut().unwrap() |= chunk << (free - take);
            *used = (*used + take) % 8;
            n -= take;
        }
    }

    #[test]
    fn bit_writer_and_reader_match_the_bit_at_a_time_reference() {
        let mut rng = fastrand::Rng::with_seed(41);
        for _ in 0..2_000 {
            let writes: Vec<(u64, u32)> = (0..rng.usize(1..80))
                .map(|_| (rng.u64(..), rng.u32(0..=64)))
                .collect();
            let mut fast = BitWriter::default();
            let (mut bytes, mut used) = (Vec::new(), 0);
            for (i, &(v, n)) in writes.iter().enumerate() {
                if i % 2 == 1 {
                    continue;
                }
                match writes.get(i + 1) {
                    // Pairs as one call, as a code's prefix and payload go.
                    Some(&(w, m)) => {
                        fast.write_pair(v, n, w, m);
                        reference_write(&mut bytes, &mut used, v, n);
                        reference_write(&mut bytes, &mut used, w, m);
                    }
                    None => {
                        fast.write(v, n);
                        reference_write(&mut bytes, &mut used, v, n);
                    }
                }
                assert_eq!((&fast.bytes, fast.used), (&bytes, used));
            }
            let mut r = BitReader::new(&fast.bytes);
            for &(v, n) in &writes {
                let want = if n == 64 { v } else { v & ((1u64 << n) - 1) };
                assert_eq!(r.read(n), Some(want), "{n} bits");
            }
            let left = (fast.bytes.len() * 8 - r.pos) as u32;
            assert!(left < 8);
            assert_eq!(r.read(left + 1), None, "reads past the end fail");
        }
    }

    fn bits_of(points: &[(i64, f64)]) -> Vec<(i64, u64)> {
        points.iter().map(|p| (p.0, p.1.to_bits())).collect()
    }

    /// The columnar layout of `points`, decoded.
    fn columnar_round_trip(points: &[(i64, f64)]) -> Vec<(i64, u64)> {
        let bytes = columnar::encode(&bits_of(points));
        decode(&bytes)
            .map(|p| p.map(|(t, v)| (t, v.to_bits())))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e} in {points:?}"))
    }

    /// XOR-built, then sealed: what is stored, decoded.
    fn sealed(points: &[(i64, f64)]) -> Vec<u8> {
        let mut enc = ChunkEncoder::new();
        for &(t, v) in points {
            enc.push(t, v);
        }
        seal(enc.bytes(), points.iter().copied())
    }

    /// A random value of one of the shapes metrics take, or any bits.
    fn random_value(rng: &mut fastrand::Rng) -> f64 {
        match rng.u8(0..6) {
            0 => f64::from_bits(rng.u64(..)),
            1 => rng.i64(-1_000_000_000..1_000_000_000) as f64 / 10f64.powi(rng.i32(0..=14)),
            2 => rng.u64(..) as f64,
            3 => (rng.f64() * 100.0 * 100.0).round() / 100.0,
            4 => [
                0.0,
                -0.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                5e-324,
                f64::MAX,
            ][rng.usize(..7)],
            _ => rng.f64() * 1e6,
        }
    }

    #[test]
    fn decimal_scaling_round_trips_every_value_it_accepts_and_refuses_the_rest() {
        let mut rng = fastrand::Rng::with_seed(19);
        let mut accepted = 0;
        for _ in 0..200_000 {
            let v = random_value(&mut rng);
            match columnar::decimal(&[v.to_bits()]) {
                Some((e, ints)) => {
                    accepted += 1;
                    let back = ints[0] as f64 / 10f64.powi(e as i32);
                    assert_eq!(back.to_bits(), v.to_bits(), "{v:?} at scale {e}");
                }
                None => assert!(
                    !v.is_finite()
                        || v.to_bits() == (-0.0f64).to_bits()
                        || (0..=12).all(|e| {
                            let n = (v * 10f64.powi(e)).round();
                            n.abs() > 9_007_199_254_740_992.0
                                || (n as i64 as f64 / 10f64.powi(e)).to_bits() != v.to_bits()
                        }),
                    "{v:?} refused, yet it is a decimal"
                ),
            }
        }
        assert!(accepted > 50_000, "only {accepted} accepted");
        for v in [
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            5e-324,
        ] {
            assert_eq!(columnar::decimal(&[v.to_bits()]), None, "{v:?}");
        }
    }

    #[test]
    fn columnar_chunks_round_trip_bit_for_bit() {
        let mut rng = fastrand::Rng::with_seed(23);
        for round in 0..3_000 {
            let n = rng.usize(1..=MAX_POINTS);
            let mut t = rng.i64(..);
            let regular = rng.bool();
            let shape = rng.u8(0..4);
            let mut v = random_value(&mut rng);
            let mut points = Vec::new();
            for _ in 0..n {
                t = t.wrapping_add(if regular {
                    10_000
                } else {
                    rng.i64(..) >> rng.u32(0..64)
                });
                v = match shape {
                    // One shape for the whole chunk, so that decimal codes
                    // get chosen, with an odd value of another now and then.
                    0 => ((v * 100.0).round() + rng.i32(-3..=3) as f64) / 100.0,
                    1 => rng.u64(1_800_000..2_200_000) as f64,
                    2 if rng.u8(..) > 0 => v,
                    _ => random_value(&mut rng),
                };
                points.push((t, v));
            }
            assert_eq!(
                columnar_round_trip(&points),
                bits_of(&points),
                "round {round}"
            );
            let stored: Vec<(i64, u64)> = decode(&sealed(&points))
                .map(|p| p.map(|(t, v)| (t, v.to_bits())).unwrap())
                .collect();
            assert_eq!(stored, bits_of(&points), "round {round}, as sealed");
        }
        assert_same_bits(&[(1, -0.0), (2, f64::NAN), (3, 1.5)]);
        assert_eq!(
            columnar_round_trip(&[(i64::MIN, -0.0)]),
            vec![(i64::MIN, (-0.0f64).to_bits())]
        );
    }

    #[test]
    fn sealing_picks_the_smaller_layout() {
        let ts = |i: i64| 1_700_000_000_000 + i * 10_000;
        // A percentage walking in steps of 0.01 (the bench's gauges): XOR
        // pays for the noisy low digits, packed deltas take 3 bits.
        let mut v = 35.0f64;
        let mut rng = fastrand::Rng::with_seed(5);
        let gauge: Vec<(i64, f64)> = (0..MAX_POINTS as i64)
            .map(|i| {
                v = ((v * 100.0).round() + rng.i32(-3..=3) as f64) / 100.0;
                (ts(i), v)
            })
            .collect();
        let mut enc = ChunkEncoder::new();
        gauge.iter().for_each(|&(t, v)| enc.push(t, v));
        let xor = enc.size();
        let stored = sealed(&gauge).len();
        // Header (2 + 7 + 1 + 2 + 1 + 3 + 1 + 1 + 1 = 19 bytes at most), then
        // 119 deltas × 3 bits = 45 bytes.
        assert!(stored <= 64, "{stored} bytes stored, XOR {xor}");
        assert!(xor > 2 * stored, "{stored} bytes stored, XOR {xor}");
        // A constant: nothing per point.
        let constant: Vec<(i64, f64)> = (0..MAX_POINTS as i64).map(|i| (ts(i), 1.0)).collect();
        assert!(sealed(&constant).len() <= 16, "{}", sealed(&constant).len());
        // Random bits: no decimal code applies, and whichever layout is
        // kept, sealing never makes a chunk larger than the XOR one.
        let noise: Vec<(i64, f64)> = (0..MAX_POINTS as i64)
            .map(|i| (ts(i), f64::from_bits(rng.u64(..))))
            .collect();
        let mut enc = ChunkEncoder::new();
        noise.iter().for_each(|&(t, v)| enc.push(t, v));
        let stored = sealed(&noise);
        assert!(stored.len() <= enc.size());
    }

    #[test]
    fn corrupt_and_truncated_columnar_chunks_are_errors_not_panics() {
        let mut rng = fastrand::Rng::with_seed(29);
        let chunks = [
            (0..50)
                .map(|i| (i * 1000, i as f64 * 1.5))
                .collect::<Vec<_>>(),
            (0..50)
                .map(|i| (i * i * 1000, (i % 7) as f64 / 100.0))
                .collect(),
            (0..50)
                .map(|i| (i * 10, f64::from_bits(rng.u64(..))))
                .collect(),
            (0..50).map(|i| (i * 10, 7.0)).collect(),
        ];
        for points in chunks {
            let bytes = columnar::encode(&bits_of(&points));
            for cut in 0..bytes.len() {
                let got: Vec<_> = decode(&bytes[..cut]).collect();
                assert!(
                    got.last().is_some_and(Result::is_err),
                    "cut at {cut} of {points:?}"
                );
            }
            for _ in 0..1000 {
                let mut b = bytes.clone();
                let i = rng.usize(..b.len());
                b[i] ^= 1 << rng.u8(0..8);
                assert!(decode(&b).count() <= u16::MAX as usize + 1);
            }
        }
    }
}
