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
//! Arithmetic on timestamps wraps, so every i64 sequence round-trips; values
//! travel as raw bits, so NaN payloads, ±Inf and -0.0 round-trip exactly.
//! The codec itself accepts any order and repeats; the head (not the codec)
//! enforces strictly increasing timestamps.

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
    prev_value: u64,
    /// Leading and trailing zeros of the previous XOR window.
    window: Option<(u32, u32)>,
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
            prev_value: 0,
            window: None,
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
        } else {
            let delta = ts.wrapping_sub(self.prev_ts);
            self.write_dod(delta.wrapping_sub(self.prev_delta));
            self.write_xor(value ^ self.prev_value);
            self.prev_delta = delta;
        }
        self.prev_ts = ts;
        self.prev_value = value;
        self.count += 1;
    }

    fn write_dod(&mut self, dod: i64) {
        let b = &mut self.bits;
        if dod == 0 {
            b.write(0b0, 1);
        } else if fits(dod, 14) {
            b.write(0b10, 2);
            b.write(dod as u64, 14);
        } else if fits(dod, 17) {
            b.write(0b110, 3);
            b.write(dod as u64, 17);
        } else if fits(dod, 20) {
            b.write(0b1110, 4);
            b.write(dod as u64, 20);
        } else {
            b.write(0b1111, 4);
            b.write(dod as u64, 64);
        }
    }

    fn write_xor(&mut self, xor: u64) {
        let b = &mut self.bits;
        if xor == 0 {
            b.write(0b0, 1);
            return;
        }
        // 5 bits hold at most 31 leading zeros.
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        match self.window {
            Some((l, t)) if leading >= l && trailing >= t => {
                b.write(0b10, 2);
                b.write(xor >> t, 64 - l - t);
            }
            _ => {
                let meaningful = 64 - leading - trailing;
                b.write(0b11, 2);
                b.write(u64::from(leading), 5);
                // 64 meaningful bits are stored as 0 (6 bits hold 0..=63).
                b.write(u64::from(meaningful % 64), 6);
                b.write(xor >> trailing, meaningful);
                self.window = Some((leading, trailing));
            }
        }
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

/// A decoding error: the bytes are not a chunk (truncated or corrupt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chunk is truncated or corrupt after {decoded} points")]
pub struct ChunkError {
    /// Points decoded before the error.
    pub decoded: u16,
}

/// Iterates the points of an encoded chunk.
pub struct ChunkIter<'a> {
    bits: BitReader<'a>,
    remaining: u16,
    decoded: u16,
    ts: i64,
    delta: i64,
    value: u64,
    window: (u32, u32),
    failed: bool,
}

/// Decodes a chunk's points; stops with an error on corrupt bytes.
pub fn decode(bytes: &[u8]) -> ChunkIter<'_> {
    let count = bytes
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut iter = ChunkIter::with_count(bytes, count);
    iter.failed = bytes.len() < 2;
    iter
}

impl<'a> ChunkIter<'a> {
    fn with_count(bytes: &'a [u8], count: u16) -> ChunkIter<'a> {
        let mut bits = BitReader::new(bytes);
        bits.read(16);
        ChunkIter {
            bits,
            remaining: count,
            decoded: 0,
            ts: 0,
            delta: 0,
            value: 0,
            window: (0, 0),
            failed: false,
        }
    }

    fn next_point(&mut self) -> Option<(i64, u64)> {
        let b = &mut self.bits;
        if self.decoded == 0 {
            self.ts = b.read(64)? as i64;
            self.value = b.read(64)?;
            return Some((self.ts, self.value));
        }
        let dod = if b.read(1)? == 0 {
            0
        } else if b.read(1)? == 0 {
            sign_extend(b.read(14)?, 14)
        } else if b.read(1)? == 0 {
            sign_extend(b.read(17)?, 17)
        } else if b.read(1)? == 0 {
            sign_extend(b.read(20)?, 20)
        } else {
            b.read(64)? as i64
        };
        self.delta = self.delta.wrapping_add(dod);
        self.ts = self.ts.wrapping_add(self.delta);
        if b.read(1)? == 1 {
            if b.read(1)? == 1 {
                let leading = b.read(5)? as u32;
                let meaningful = match b.read(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                let trailing = 64u32.checked_sub(leading + meaningful)?;
                self.window = (leading, trailing);
            }
            let (leading, trailing) = self.window;
            let xor = b.read(64 - leading - trailing)?;
            self.value ^= xor << trailing;
        }
        Some((self.ts, self.value))
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
    /// Writes the low `n` (≤ 64) bits of `v`, most significant first.
    fn write(&mut self, v: u64, mut n: u32) {
        while n > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - self.used;
            let take = free.min(n);
            let chunk = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.last_mut().expect("pushed above");
            *last |= chunk << (free - take);
            self.used = (self.used + take) % 8;
            n -= take;
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

    /// Reads `n` (≤ 64) bits, or `None` past the end.
    fn read(&mut self, mut n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let mut v = 0u64;
        while n > 0 {
            let byte = *self.bytes.get(self.pos / 8)?;
            let offset = (self.pos % 8) as u32;
            let avail = 8 - offset;
            let take = avail.min(n);
            let bits = (byte >> (avail - take)) & (((1u16 << take) - 1) as u8);
            v = (v << take) | u64::from(bits);
            self.pos += take as usize;
            n -= take;
        }
        Some(v)
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
}
