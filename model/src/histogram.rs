//! Mergeable latency histograms: an HdrHistogram of integer counts of a
//! `unit` (1 µs for timers, 0.001 for unit-less statsd histograms), the
//! codecs for the wire (V2 + DEFLATE) and for storage (unit ++ plain V2),
//! and the figures queries ask for.
//!
//! Precision: [`SIGNIFICANT_DIGITS`] = 2, so any recorded value is kept
//! within 1 % (bucket width ≤ 1/128 of the value), over any range (the
//! histogram resizes itself up to [`MAX_VALUE`] units). Merging two
//! histograms adds their counts, so a percentile of merged histograms is
//! the percentile of the union of their observations, to that precision.
//!
//! Untrusted input (a wire sample) is checked before anything is
//! allocated: the inflated size, the header's precision and range, and the
//! payload length against the bytes actually present.

use std::io::Read as _;

use hdrhistogram::serialization::{
    Deserializer, Serializer as _, V2DeflateSerializer, V2Serializer,
};

/// Significant decimal digits every histogram keeps.
pub const SIGNIFICANT_DIGITS: u8 = 2;

/// The largest value (in units) a histogram accepts: 2^50, i.e. 35 years
/// in microseconds.
pub const MAX_VALUE: u64 = 1 << 50;

/// Most bytes an inflated wire histogram may have (a full histogram at
/// the accepted precision and range needs under 64 KiB).
const MAX_INFLATED_BYTES: u64 = 1 << 20;

/// Most significant digits accepted from the wire (more would let one
/// sample allocate megabytes).
const MAX_WIRE_DIGITS: u32 = 3;

const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;
const V2_HEADER_BYTES: usize = 40;

/// A histogram of observations in multiples of `unit`.
#[derive(Clone, Debug)]
pub struct Histogram {
    unit: f64,
    counts: hdrhistogram::Histogram<u64>,
}

/// Why bytes are not a histogram. Messages name the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("histogram: {0}")]
pub struct HistogramError(pub String);

fn bad(reason: impl Into<String>) -> HistogramError {
    HistogramError(reason.into())
}

impl Histogram {
    /// An empty histogram counting multiples of `unit` (> 0, finite).
    pub fn new(unit: f64) -> Histogram {
        assert!(unit.is_finite() && unit > 0.0, "unit must be positive");
        let mut counts = hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS)
            .expect("2 significant digits are valid");
        counts.auto(true);
        Histogram { unit, counts }
    }

    /// The value of one count unit.
    pub fn unit(&self) -> f64 {
        self.unit
    }

    /// Records `value` (in real units, e.g. seconds) `count` times. Values
    /// are rounded to the nearest unit; negative, non-finite or too large
    /// values are refused.
    pub fn record(&mut self, value: f64, count: u64) -> Result<(), HistogramError> {
        if !value.is_finite() || value < 0.0 {
            return Err(bad(format!("value {value} is negative or not finite")));
        }
        let units = (value / self.unit).round();
        if units > MAX_VALUE as f64 {
            return Err(bad(format!(
                "value {value} is above the largest recordable"
            )));
        }
        self.counts
            .record_n(units as u64, count)
            .map_err(|e| bad(format!("value {value}: {e:?}")))
    }

    /// Adds the counts of `other`. Histograms of different units do not merge.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), HistogramError> {
        if other.unit != self.unit {
            return Err(bad(format!(
                "cannot merge unit {} into unit {}",
                other.unit, self.unit
            )));
        }
        self.counts
            .add(&other.counts)
            .map_err(|e| bad(format!("merge: {e:?}")))
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Forgets every observation, keeping the allocation.
    pub fn reset(&mut self) {
        self.counts.reset();
    }

    /// The value at quantile `q` (0..=1): the highest value equivalent to
    /// the observation at that rank, in real units.
    pub fn quantile(&self, q: f64) -> f64 {
        self.counts.value_at_quantile(q) as f64 * self.unit
    }

    /// Largest observation (to precision), in real units.
    pub fn max(&self) -> f64 {
        self.counts.max() as f64 * self.unit
    }

    /// Smallest observation (to precision), in real units.
    pub fn min(&self) -> f64 {
        self.counts.min() as f64 * self.unit
    }

    /// Mean of the observations (to precision), in real units.
    pub fn mean(&self) -> f64 {
        self.counts.mean() * self.unit
    }

    /// Sum of the observations (mean × count), in real units.
    pub fn sum(&self) -> f64 {
        self.mean() * self.count() as f64
    }

    /// Bytes of the counts array (the histogram's memory, less a fixed header).
    pub fn memory_bytes(&self) -> usize {
        self.counts.distinct_values() * std::mem::size_of::<u64>()
    }

    /// The wire form: HdrHistogram V2 + DEFLATE.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.counts, &mut out)
            .expect("serializing to memory cannot fail");
        out
    }

    /// Reads a wire histogram (V2 or V2 + DEFLATE) of `unit`, checking it
    /// before allocating.
    pub fn from_wire(bytes: &[u8], unit: f64) -> Result<Histogram, HistogramError> {
        if !unit.is_finite() || unit <= 0.0 {
            return Err(bad(format!("unit {unit} is not a positive number")));
        }
        let cookie = be_u32(bytes, 0).ok_or_else(|| bad("shorter than its cookie"))?;
        let plain: std::borrow::Cow<[u8]> = match cookie {
            V2_COOKIE => bytes.into(),
            V2_COMPRESSED_COOKIE => inflate(bytes)?.into(),
            other => return Err(bad(format!("unknown cookie {other:#x}"))),
        };
        check_v2_header(&plain)?;
        let counts: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut &plain[..])
            .map_err(|e| bad(format!("undecodable: {e:?}")))?;
        let mut h = Histogram::new(unit);
        h.counts
            .add(&counts)
            .map_err(|e| bad(format!("values out of range: {e:?}")))?;
        Ok(h)
    }

    /// The storage form: unit (f64 LE) ++ plain V2 (the store compresses).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.unit.to_le_bytes().to_vec();
        V2Serializer::new()
            .serialize(&self.counts, &mut out)
            .expect("serializing to memory cannot fail");
        out
    }

    /// Reads the storage form.
    pub fn decode(bytes: &[u8]) -> Result<Histogram, HistogramError> {
        let unit = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(f64::from_le_bytes)
            .ok_or_else(|| bad("shorter than its unit"))?;
        Histogram::from_wire(&bytes[8..], unit)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Inflates a V2 + DEFLATE histogram to plain V2, at most
/// [`MAX_INFLATED_BYTES`].
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, HistogramError> {
    let len = be_u32(bytes, 4).ok_or_else(|| bad("shorter than its header"))? as usize;
    let payload = bytes
        .get(8..8 + len)
        .ok_or_else(|| bad(format!("compressed length {len} exceeds the bytes present")))?;
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(payload)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("cannot inflate: {e}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(bad(format!("inflates beyond {MAX_INFLATED_BYTES} bytes")));
    }
    Ok(out)
}

/// Checks a plain V2 header: cookie, payload length against the bytes
/// present, precision and range within what is accepted.
fn check_v2_header(plain: &[u8]) -> Result<(), HistogramError> {
    if plain.len() < V2_HEADER_BYTES || be_u32(plain, 0) != Some(V2_COOKIE) {
        return Err(bad("not an HdrHistogram V2 encoding"));
    }
    let payload = be_u32(plain, 4).unwrap_or(0) as usize;
    if payload > plain.len() - V2_HEADER_BYTES {
        return Err(bad(format!(
            "payload length {payload} exceeds the {} bytes present",
            plain.len() - V2_HEADER_BYTES
        )));
    }
    let digits = be_u32(plain, 12).unwrap_or(u32::MAX);
    if digits > MAX_WIRE_DIGITS {
        return Err(bad(format!(
            "{digits} significant digits; at most {MAX_WIRE_DIGITS} are accepted"
        )));
    }
    let (low, high) = (
        be_u64(plain, 16).unwrap_or(0),
        be_u64(plain, 24).unwrap_or(0),
    );
    if low == 0 || high > MAX_VALUE * 2 || high < low.saturating_mul(2) {
        return Err(bad(format!("range {low}..{high} is not accepted")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nearest-rank percentile of `values` (what a test computes by hand).
    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    }

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Histogram::new(1e-6);
        let mut values: Vec<f64> = (1..=10_000)
            .map(|i| (i as f64).powf(1.7) * 1e-6 + 1e-4)
            .collect();
        for v in &values {
            h.record(*v, 1).unwrap();
        }
        for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&mut values, q);
            let got = h.quantile(q);
            assert!(
                (got - want).abs() <= want * 0.01,
                "q{q}: got {got}, want {want}"
            );
        }
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merging_gives_the_percentiles_of_the_union() {
        let (mut a, mut b) = (Histogram::new(1e-3), Histogram::new(1e-3));
        let mut all = Vec::new();
        for i in 0..1000 {
            let v = 10.0 + i as f64;
            a.record(v, 1).unwrap();
            all.push(v);
            let w = 5000.0 + 3.0 * i as f64;
            b.record(w, 1).unwrap();
            all.push(w);
        }
        let mut merged = a.clone();
        merged.merge(&b).unwrap();
        for q in [0.5, 0.9, 0.99] {
            let want = exact(&mut all, q);
            assert!((merged.quantile(q) - want).abs() <= want * 0.01, "q{q}");
        }
        assert_eq!(merged.count(), 2000);
        assert!(merged.merge(&Histogram::new(1e-6)).is_err());
    }

    #[test]
    fn wire_and_storage_forms_round_trip() {
        let mut h = Histogram::new(1e-6);
        h.record(0.25, 3).unwrap();
        h.record(1.5, 1).unwrap();
        let back = Histogram::from_wire(&h.to_wire(), 1e-6).unwrap();
        assert_eq!(back.count(), 4);
        assert_eq!(back.quantile(1.0), h.quantile(1.0));
        let stored = Histogram::decode(&h.encode()).unwrap();
        assert_eq!(stored.count(), 4);
        assert_eq!(stored.unit(), 1e-6);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let reason = |bytes: &[u8], unit: f64| Histogram::from_wire(bytes, unit).unwrap_err().0;
        let good = Histogram::new(1.0).to_wire();
        assert!(reason(&good, 0.0).contains("unit"));
        assert!(reason(&good, f64::NAN).contains("unit"));
        assert!(reason(b"", 1.0).contains("cookie"));
        assert!(reason(&[1, 2, 3, 4, 5], 1.0).contains("unknown cookie"));
        assert!(reason(&good[..good.len() - 3], 1.0).contains("exceeds"));
        // A plain header that claims 4 GiB of payload.
        let mut plain = Vec::new();
        V2Serializer::new()
            .serialize(&Histogram::new(1.0).counts, &mut plain)
            .unwrap();
        plain[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(reason(&plain, 1.0).contains("payload length"));
        // Five significant digits would allocate megabytes.
        let five = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << 40, 5).unwrap();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&five, &mut bytes).unwrap();
        assert!(reason(&bytes, 1.0).contains("significant digits"));
        let mut h = Histogram::new(1.0);
        assert!(h.record(-1.0, 1).is_err());
        assert!(h.record(f64::INFINITY, 1).is_err());
    }

    #[test]
    fn memory_and_wire_size_per_histogram_are_small() {
        // Timers in µs: the counts array grows with the largest value; the
        // figures docs/metrics.md quotes.
        for (max_seconds, bytes) in [(0.1, 11_264), (1.0, 14_336), (10.0, 18_432)] {
            let mut h = Histogram::new(1e-6);
            h.record(max_seconds, 1).unwrap();
            assert_eq!(h.memory_bytes(), bytes, "up to {max_seconds} s");
        }
        // 1,000 latencies spread over 1 ms..1 s: what one interval ships.
        let mut h = Histogram::new(1e-6);
        for i in 0..1000 {
            h.record(0.001 * 1.0069f64.powi(i), 1).unwrap();
        }
        let wire = h.to_wire().len();
        let stored = h.encode().len();
        assert!(
            wire <= 1024 && stored <= 2048,
            "wire {wire} B, stored {stored} B"
        );
    }
}
