//! `LatestResponse` by hand instead of generated (`build.rs` maps the
//! message here with `extern_path`), so a server can answer with series it
//! encoded once and cached: a dashboard's Latest over 10,000 series would
//! otherwise build and encode 10,000 label sets on every refresh.
//!
//! The wire format is the generated one's exactly (`repeated Series series =
//! 1`); clients decode into `series` as before.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, message, skip_field};

use crate::v1::Series;

/// The newest point of each matching series.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct LatestResponse {
    /// One series per match, each with exactly one point: its newest.
    pub series: Vec<Series>,
    /// More series, already encoded as `series` entries (field 1, length
    /// delimited: key, length, `Series` bytes), written after `series`.
    /// Decoding never fills it: a decoded response has every series in
    /// `series`.
    pub encoded_series: Bytes,
}

impl prost::Message for LatestResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for s in &self.series {
            message::encode(1, s, buf);
        }
        buf.put_slice(&self.encoded_series);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => message::merge_repeated(wire_type, &mut self.series, buf, ctx).map_err(|mut e| {
                e.push("LatestResponse", "series");
                e
            }),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.series) + self.encoded_series.len()
    }

    fn clear(&mut self) {
        self.series.clear();
        self.encoded_series = Bytes::new();
    }
}

/// Appends one `series` entry of a `LatestResponse` to `out`: `labels` is
/// the series' `metric` and `labels` fields as encoded by
/// [`encode_series_labels`], `point` its newest point. The bytes equal
/// prost's encoding of the same `Series`.
pub fn encode_latest_entry(out: &mut Vec<u8>, labels: &[u8], point: &crate::v1::Point) {
    use prost::Message;
    let point_len = point.encoded_len();
    let series_len =
        labels.len() + 1 + prost::encoding::encoded_len_varint(point_len as u64) + point_len;
    prost::encoding::encode_key(1, WireType::LengthDelimited, out);
    prost::encoding::encode_varint(series_len as u64, out);
    out.extend_from_slice(labels);
    message::encode(3, point, out);
}

/// A series' `metric` and `labels` fields (a `Series` without points),
/// the part of a Latest entry worth caching.
pub fn encode_series_labels(metric: &str, labels: &[crate::v1::Label]) -> Vec<u8> {
    use prost::Message;
    Series {
        metric: metric.to_owned(),
        labels: labels.to_vec(),
        points: Vec::new(),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::v1::{Label, Point};

    fn series(metric: &str, labels: &[(&str, &str)], point: Point) -> Series {
        Series {
            metric: metric.into(),
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect(),
            points: vec![point],
        }
    }

    #[test]
    fn pre_encoded_entries_are_byte_for_byte_the_generated_encoding() {
        let all = vec![
            series(
                "cpu",
                &[("host", "a"), ("mode", "user")],
                Point {
                    timestamp_ms: 1_700_000_000_000,
                    value: 12.5,
                },
            ),
            // Defaults prost leaves out: a zero timestamp and value, no labels.
            series(
                "up",
                &[],
                Point {
                    timestamp_ms: 0,
                    value: 0.0,
                },
            ),
            series(
                &"m".repeat(300),
                &[("k", &"v".repeat(200))],
                Point {
                    timestamp_ms: -5,
                    value: f64::NAN,
                },
            ),
        ];
        let generated = LatestResponse {
            series: all.clone(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut encoded = Vec::new();
        for s in &all {
            encode_latest_entry(
                &mut encoded,
                &encode_series_labels(&s.metric, &s.labels),
                &s.points[0],
            );
        }
        assert_eq!(encoded, generated);

        // Mixed: some decoded series, some pre-encoded; a client reads them all.
        let first = LatestResponse {
            series: all[..1].to_vec(),
            ..Default::default()
        };
        let mixed = LatestResponse {
            encoded_series: Bytes::copy_from_slice(&encoded[first.encoded_len()..]),
            ..first
        };
        let bytes = mixed.encode_to_vec();
        assert_eq!(bytes.len(), mixed.encoded_len());
        let decoded = LatestResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.series.len(), 3);
        assert_eq!(decoded.series[0], all[0]);
        assert_eq!(decoded.series[1], all[1]);
        assert_eq!(decoded.series[2].metric, all[2].metric);
        assert!(decoded.series[2].points[0].value.is_nan());
        assert!(decoded.encoded_series.is_empty());
    }
}
