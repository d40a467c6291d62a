//! The record format of the `ingest_log` column family: the samples of one
//! acknowledged batch, written (synced) before the ack and replayed into the
//! heads at open until the chunks holding them are written. Pure.
//!
//! Layout (`docs/format/storage.md`, "Ingest log"): the mark `0x80 0x00`,
//! a varint sample count, then per sample: the zigzag varint of its series
//! id's delta from the previous sample's, the zigzag varint of its
//! timestamp's delta (the first of each from 0), and its value as one
//! varint `h`: `h` even is the integer `n = unzigzag(h >> 5)` at decimal
//! scale `e = (h >> 1) & 15` (the value `n / 10^e`, exactly), `h = 1` is
//! followed by the value's f64 bits little-endian. Batches carry their
//! series in id order and one timestamp for most samples, and host metrics
//! few decimals, so a sample costs some 4–7 bytes, not 11: each batch's
//! synced write, the one every ack waits for, is that much shorter.
//!
//! Records of the first layout (a varint count, then per sample a varint
//! id, the zigzag timestamp delta and the f64 bits; 11 bytes a sample) are
//! still read: a data dir written by an older build replays them at open.
//! The mark tells them apart: `0x80 0x00` is a varint the first layout
//! never wrote (it writes 0 as `0x00`).

use super::chunk::{decimal_of, decimal_value};
use super::varint;

/// One sample of a record: series id, timestamp (ms), value.
pub type LogSample = (u64, i64, f64);

/// The first two bytes of a record of the current layout.
const MARK: [u8; 2] = [0x80, 0x00];

/// Decimal scales tried for a value (more cost CPU per sample for values
/// that have none; the chunks try them all when sealing).
const MAX_SCALE: usize = 6;

/// The value's varint head for a raw f64 (the bits follow).
const RAW: u64 = 1;

/// Encodes samples into a record.
pub fn encode(samples: &[LogSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + samples.len() * 7);
    out.extend_from_slice(&MARK);
    varint::put(&mut out, samples.len() as u64);
    let (mut prev_id, mut prev_ts) = (0u64, 0i64);
    for &(id, ts, value) in samples {
        varint::put(&mut out, varint::zigzag(id.wrapping_sub(prev_id) as i64));
        varint::put(&mut out, varint::zigzag(ts.wrapping_sub(prev_ts)));
        match decimal_of(value, MAX_SCALE) {
            // Bounded: n fits 54 bits, so zigzag(n) << 5 fits 64.
            Some((e, n)) => varint::put(&mut out, varint::zigzag(n) << 5 | (e as u64) << 1),
            None => {
                varint::put(&mut out, RAW);
                out.extend_from_slice(&value.to_bits().to_le_bytes());
            }
        }
        (prev_id, prev_ts) = (id, ts);
    }
    out
}

/// Decodes a record of either layout; `None` if it is truncated or
/// malformed.
pub fn decode(bytes: &[u8]) -> Option<Vec<LogSample>> {
    match bytes.strip_prefix(&MARK) {
        Some(rest) => decode_current(rest),
        None => decode_first_layout(bytes),
    }
}

fn decode_current(mut bytes: &[u8]) -> Option<Vec<LogSample>> {
    let count = varint::get(&mut bytes)?;
    // Each sample takes at least 3 bytes: refuse absurd counts up front.
    if count > bytes.len() as u64 / 3 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    let (mut id, mut ts) = (0u64, 0i64);
    for _ in 0..count {
        id = id.wrapping_add(varint::unzigzag(varint::get(&mut bytes)?) as u64);
        ts = ts.wrapping_add(varint::unzigzag(varint::get(&mut bytes)?));
        let head = varint::get(&mut bytes)?;
        let value = if head == RAW {
            let (value, rest) = bytes.split_first_chunk::<8>()?;
            bytes = rest;
            f64::from_bits(u64::from_le_bytes(*value))
        } else if head & 1 == 0 {
            decimal_value(varint::unzigzag(head >> 5), ((head >> 1) & 15) as usize)?
        } else {
            return None;
        };
        out.push((id, ts, value));
    }
    bytes.is_empty().then_some(out)
}

/// A batch as the ingest log's segments hold it ([`crate::segment_log`]):
/// whose batch it is (so a replay restores the sender's high-water mark
/// and host record, which are written to RocksDB only later), its samples,
/// and its histograms by series id (raw rows a replay writes again if a
/// crash lost them).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRecord {
    pub host: String,
    pub agent_id: String,
    pub seq: u64,
    pub interval_ms: u64,
    /// When the collector stored it (the host record's last contact).
    pub stored_ms: i64,
    pub samples: Vec<LogSample>,
    /// (series id, timestamp ms, `Histogram::encode` bytes).
    pub histograms: Vec<(u64, i64, Vec<u8>)>,
}

/// The first two bytes of a batch record.
const BATCH_MARK: [u8; 2] = [0x80, 0x01];

/// Encodes a batch record: the mark `0x80 0x01`; host and agent id, each a
/// varint length and UTF-8; varint seq and interval; zigzag varint stored
/// ms; varint histogram count, then per histogram varint id, zigzag varint
/// timestamp, varint length and bytes; then the samples as one record of
/// [`encode`]'s layout.
pub fn encode_batch(
    header: (&str, &str, u64, u64, i64),
    samples: &[LogSample],
    histograms: &[(u64, i64, &[u8])],
) -> Vec<u8> {
    let (host, agent_id, seq, interval_ms, stored_ms) = header;
    let samples = encode(samples);
    let mut out = Vec::with_capacity(32 + host.len() + agent_id.len() + samples.len());
    out.extend_from_slice(&BATCH_MARK);
    for text in [host, agent_id] {
        varint::put(&mut out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    varint::put(&mut out, seq);
    varint::put(&mut out, interval_ms);
    varint::put(&mut out, varint::zigzag(stored_ms));
    varint::put(&mut out, histograms.len() as u64);
    for &(id, ts, bytes) in histograms {
        varint::put(&mut out, id);
        varint::put(&mut out, varint::zigzag(ts));
        varint::put(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&samples);
    out
}

/// Decodes a batch record; `None` if it is truncated or malformed.
pub fn decode_batch(bytes: &[u8]) -> Option<BatchRecord> {
    let mut bytes = bytes.strip_prefix(&BATCH_MARK)?;
    let text = |bytes: &mut &[u8]| -> Option<String> {
        let len = usize::try_from(varint::get(bytes)?).ok()?;
        let (head, rest) = bytes.split_at_checked(len)?;
        *bytes = rest;
        String::from_utf8(head.to_vec()).ok()
    };
    let host = text(&mut bytes)?;
    let agent_id = text(&mut bytes)?;
    let seq = varint::get(&mut bytes)?;
    let interval_ms = varint::get(&mut bytes)?;
    let stored_ms = varint::unzigzag(varint::get(&mut bytes)?);
    let count = varint::get(&mut bytes)?;
    // Each histogram takes at least 3 bytes: refuse absurd counts up front.
    if count > bytes.len() as u64 / 3 {
        return None;
    }
    let mut histograms = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = varint::get(&mut bytes)?;
        let ts = varint::unzigzag(varint::get(&mut bytes)?);
        let len = usize::try_from(varint::get(&mut bytes)?).ok()?;
        let (head, rest) = bytes.split_at_checked(len)?;
        bytes = rest;
        histograms.push((id, ts, head.to_vec()));
    }
    // The samples' record must be of the current layout (the first one
    // never reached a segment).
    if !bytes.starts_with(&MARK) {
        return None;
    }
    let samples = decode(bytes)?;
    Some(BatchRecord {
        host,
        agent_id,
        seq,
        interval_ms,
        stored_ms,
        samples,
        histograms,
    })
}

/// Encodes samples in the first layout (tests of reading older data dirs).
#[cfg(test)]
fn encode_first_layout(samples: &[LogSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + samples.len() * 12);
    varint::put(&mut out, samples.len() as u64);
    let mut prev = 0i64;
    for &(id, ts, value) in samples {
        varint::put(&mut out, id);
        varint::put(&mut out, varint::zigzag(ts.wrapping_sub(prev)));
        out.extend_from_slice(&value.to_bits().to_le_bytes());
        prev = ts;
    }
    out
}

fn decode_first_layout(mut bytes: &[u8]) -> Option<Vec<LogSample>> {
    let count = varint::get(&mut bytes)?;
    // Each sample takes at least 10 bytes: refuse absurd counts up front.
    if count > bytes.len() as u64 / 10 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut prev = 0i64;
    for _ in 0..count {
        let id = varint::get(&mut bytes)?;
        let ts = prev.wrapping_add(varint::unzigzag(varint::get(&mut bytes)?));
        let (value, rest) = bytes.split_first_chunk::<8>()?;
        bytes = rest;
        out.push((id, ts, f64::from_bits(u64::from_le_bytes(*value))));
        prev = ts;
    }
    bytes.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let samples = vec![
            (1, 1_700_000_000_000, 1.5),
            (u64::MAX, 1_700_000_000_000, f64::NAN),
            (300, i64::MIN, -0.0),
            (0, i64::MAX, f64::INFINITY),
        ];
        let got = decode(&encode(&samples)).unwrap();
        let bits = |s: &[LogSample]| {
            s.iter()
                .map(|x| (x.0, x.1, x.2.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&got), bits(&samples));
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn batch_records_round_trip_and_refuse_every_cut() {
        let record = BatchRecord {
            host: "web-01".into(),
            agent_id: "agent-é".into(),
            seq: 77,
            interval_ms: 10_000,
            stored_ms: -5,
            samples: vec![(9, 1_000, 0.25), (10, 1_000, f64::MAX)],
            histograms: vec![(11, 1_000, vec![1, 2, 3]), (12, -4, vec![])],
        };
        let hist: Vec<(u64, i64, &[u8])> = record
            .histograms
            .iter()
            .map(|(id, ts, b)| (*id, *ts, b.as_slice()))
            .collect();
        let bytes = encode_batch(
            (&record.host, &record.agent_id, 77, 10_000, -5),
            &record.samples,
            &hist,
        );
        assert_eq!(decode_batch(&bytes), Some(record));
        for cut in 0..bytes.len() {
            assert_eq!(decode_batch(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_batch(&[bytes.as_slice(), &[0]].concat()), None);
        // A samples-only record is not a batch record.
        assert_eq!(decode_batch(&encode(&[(1, 2, 3.0)])), None);
    }

    #[test]
    fn truncated_or_padded_records_are_refused() {
        for bytes in [
            encode(&[(1, 10, 1.0), (2, 10, 2.5)]),
            encode(&[(1, 10, f64::NAN)]),
            encode_first_layout(&[(1, 10, 1.0), (2, 10, 2.0)]),
        ] {
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), None, "cut at {cut} of {bytes:?}");
            }
            assert_eq!(decode(&[bytes.as_slice(), &[0]].concat()), None);
        }
        assert_eq!(decode(&[0xff; 20]), None);
    }

    #[test]
    fn a_batch_of_host_metrics_costs_a_few_bytes_a_sample() {
        // Consecutive series, one timestamp, percentages to 0.01 and byte
        // counts: 1 + 1 + 2–5 bytes.
        let samples: Vec<LogSample> = (0..1000)
            .map(|i| {
                let value = if i % 2 == 0 {
                    (i % 10_000) as f64 / 100.0
                } else {
                    3_000_000.0 + i as f64
                };
                (5000 + i, 1_700_000_000_000, value)
            })
            .collect();
        let len = encode(&samples).len();
        assert!(len < 1000 * 6, "{len}");
        assert_eq!(decode(&encode(&samples)), Some(samples.clone()));
        // Noise in every digit costs a byte more than the first layout.
        let noisy: Vec<LogSample> = (0..1000).map(|i| (i, 5, 1.0 / (i + 3) as f64)).collect();
        assert!(encode(&noisy).len() <= encode_first_layout(&noisy).len() + 1000);
    }

    #[test]
    fn any_value_and_id_round_trips_bit_for_bit_and_first_layout_records_still_read() {
        let mut rng = fastrand::Rng::with_seed(41);
        for _ in 0..2_000 {
            let samples: Vec<LogSample> = (0..rng.usize(0..50))
                .map(|_| {
                    let value = match rng.u8(0..4) {
                        0 => f64::from_bits(rng.u64(..)),
                        1 => rng.i64(-1_000_000..1_000_000) as f64 / 10f64.powi(rng.i32(0..=8)),
                        2 => {
                            [0.0, -0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE][rng.usize(..5)]
                        }
                        _ => rng.i64(-(1 << 53)..=1 << 53) as f64,
                    };
                    (rng.u64(..), rng.i64(..), value)
                })
                .collect();
            let bits = |s: &[LogSample]| {
                s.iter()
                    .map(|x| (x.0, x.1, x.2.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&decode(&encode(&samples)).unwrap()), bits(&samples));
            assert_eq!(
                bits(&decode(&encode_first_layout(&samples)).unwrap()),
                bits(&samples)
            );
        }
    }
}
