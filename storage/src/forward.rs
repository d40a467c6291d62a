//! The record format of the `forward_queue` column family: what one stored
//! batch hands to the remote_write senders. Written in the batch's synced
//! write, under the batch's ingest-log seq, so a record exists exactly when
//! its batch does. Pure.
//!
//! Layout: varint sample count (floats + histograms, for the queue's
//! bound), varint length of the float part, the float part in the
//! [`ingest_log`] format (series id, timestamp, value), then per histogram
//! sample: varint series id, zigzag varint timestamp, and
//! [`HISTOGRAM_FIGURES`] f64 values little-endian.
//!
//! Histograms are forwarded as gauges of the interval, the figures computed
//! here once (docs/prometheus.md names them).

use crate::ingest_log::{self, LogSample};
use crate::varint;

/// The figures a histogram sample is forwarded as: p50, p90, p99, the
/// observation count and their sum, of the interval it covers.
pub const HISTOGRAM_FIGURES: usize = 5;

/// The quantiles among [`HISTOGRAM_FIGURES`], in order.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// One histogram sample's figures: series id, timestamp, figures.
pub type HistogramFigures = (u64, i64, [f64; HISTOGRAM_FIGURES]);

/// One queue record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ForwardRecord {
    /// Float samples, in batch order.
    pub floats: Vec<LogSample>,
    /// Histogram samples as their figures.
    pub histograms: Vec<HistogramFigures>,
}

impl ForwardRecord {
    /// Samples in the record (each histogram counts once).
    pub fn len(&self) -> usize {
        self.floats.len() + self.histograms.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The figures of a histogram.
    pub fn figures(h: &nightjar_model::histogram::Histogram) -> [f64; HISTOGRAM_FIGURES] {
        [
            h.quantile(QUANTILES[0]),
            h.quantile(QUANTILES[1]),
            h.quantile(QUANTILES[2]),
            h.count() as f64,
            h.sum(),
        ]
    }
}

/// Encodes a record.
pub fn encode(record: &ForwardRecord) -> Vec<u8> {
    let floats = ingest_log::encode(&record.floats);
    let mut out = Vec::with_capacity(12 + floats.len() + record.histograms.len() * 52);
    varint::put(&mut out, record.len() as u64);
    varint::put(&mut out, floats.len() as u64);
    out.extend_from_slice(&floats);
    for (id, ts, figures) in &record.histograms {
        varint::put(&mut out, *id);
        varint::put(&mut out, varint::zigzag(*ts));
        for f in figures {
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
    }
    out
}

/// The sample count of a record, read from its head alone.
pub fn sample_count(mut bytes: &[u8]) -> Option<u64> {
    varint::get(&mut bytes)
}

/// Decodes a record; `None` if it is truncated or malformed.
pub fn decode(mut bytes: &[u8]) -> Option<ForwardRecord> {
    let count = varint::get(&mut bytes)?;
    let floats_len = usize::try_from(varint::get(&mut bytes)?).ok()?;
    if floats_len > bytes.len() {
        return None;
    }
    let (floats, mut rest) = bytes.split_at(floats_len);
    let floats = ingest_log::decode(floats)?;
    let mut histograms = Vec::new();
    while !rest.is_empty() {
        let id = varint::get(&mut rest)?;
        let ts = varint::unzigzag(varint::get(&mut rest)?);
        let mut figures = [0.0; HISTOGRAM_FIGURES];
        for f in &mut figures {
            let (bits, tail) = rest.split_first_chunk::<8>()?;
            rest = tail;
            *f = f64::from_bits(u64::from_le_bytes(*bits));
        }
        histograms.push((id, ts, figures));
    }
    let record = ForwardRecord { floats, histograms };
    (record.len() as u64 == count).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let record = ForwardRecord {
            floats: vec![(1, 1_700_000_000_000, 1.5), (7, 1_700_000_000_000, -2.0)],
            histograms: vec![(9, 1_700_000_000_000, [0.1, 0.5, 0.9, 12.0, 3.25])],
        };
        let bytes = encode(&record);
        assert_eq!(decode(&bytes), Some(record.clone()));
        assert_eq!(sample_count(&bytes), Some(3));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            decode(&encode(&ForwardRecord::default())),
            Some(ForwardRecord::default())
        );
    }
}
