//! The record format of the `ingest_log` column family: the samples of one
//! acknowledged batch, written (synced) before the ack and replayed into the
//! heads at open until the chunks holding them are written. Pure.
//!
//! Layout: varint sample count, then per sample: varint series id, zigzag
//! varint timestamp delta from the previous sample's (the first from 0), and
//! the value's f64 bits little-endian. Batches carry one timestamp for most
//! samples, so a sample costs ~11 bytes.

use super::varint;

/// One sample of a record: series id, timestamp (ms), value.
pub type LogSample = (u64, i64, f64);

/// Encodes samples into a record.
pub fn encode(samples: &[LogSample]) -> Vec<u8> {
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

/// Decodes a record; `None` if it is truncated or malformed.
pub fn decode(mut bytes: &[u8]) -> Option<Vec<LogSample>> {
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
    fn truncated_or_padded_records_are_refused() {
        let bytes = encode(&[(1, 10, 1.0), (2, 10, 2.0)]);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[bytes.as_slice(), &[0]].concat()), None);
        assert_eq!(decode(&[0xff; 20]), None);
    }

    #[test]
    fn a_batch_with_one_timestamp_costs_about_eleven_bytes_a_sample() {
        let samples: Vec<LogSample> = (0..1000)
            .map(|i| (5000 + i, 1_700_000_000_000, i as f64))
            .collect();
        let len = encode(&samples).len();
        assert!(len < 1000 * 12, "{len}");
    }
}
