//! Batches encoded by hand from pre-encoded series, so the load generator
//! spends its CPU share on the wire, not on building and cloning label
//! strings (it shares the machine with the collector it measures).

use nightjar_proto::v1 as pb;
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, encode_varint, encoded_len_varint};

/// A message whose protobuf encoding is already done.
#[derive(Clone, Debug, Default)]
pub struct Encoded(pub Vec<u8>);

impl Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The metric and labels of one series, encoded as `Sample` fields 1 and 2.
pub fn series_head(metric: &str, labels: &[(&str, String)]) -> Vec<u8> {
    pb::Sample {
        metric: metric.to_owned(),
        labels: labels
            .iter()
            .map(|(n, v)| pb::Label {
                name: (*n).to_owned(),
                value: v.clone(),
            })
            .collect(),
        timestamp_ms: 0,
        value: None,
    }
    .encode_to_vec()
}

/// Encodes a `Batch` whose samples are (series head, timestamp, gauge).
pub fn batch<'a>(
    agent_id: &str,
    host: &str,
    seq: u64,
    interval_ms: u64,
    samples: impl Iterator<Item = (&'a [u8], i64, f64)>,
    out: &mut Vec<u8>,
) {
    out.clear();
    let string = |out: &mut Vec<u8>, key: u8, s: &str| {
        out.push(key);
        encode_varint(s.len() as u64, out);
        out.extend_from_slice(s.as_bytes());
    };
    string(out, 0x0a, agent_id); // 1: agent_id
    string(out, 0x12, host); // 2: host
    out.push(0x18); // 3: seq
    encode_varint(seq, out);
    for (head, ts, value) in samples {
        let inner = head.len() + 1 + encoded_len_varint(ts as u64) + 1 + 8;
        out.push(0x22); // 4: samples
        encode_varint(inner as u64, out);
        out.extend_from_slice(head);
        out.push(0x18); // Sample 3: timestamp_ms
        encode_varint(ts as u64, out);
        out.push(0x21); // Sample 4: gauge (fixed64)
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.push(0x28); // 5: interval_ms
    encode_varint(interval_ms, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_encoded_batch_decodes_as_the_proto_batch() {
        let head = series_head("m", &[("host", "h".to_owned())]);
        let mut out = Vec::new();
        batch(
            "a",
            "h",
            7,
            1000,
            [(head.as_slice(), 1_700_000_000_000, 2.5)].into_iter(),
            &mut out,
        );
        let b = pb::Batch::decode(out.as_slice()).unwrap();
        assert_eq!(
            (b.agent_id.as_str(), b.host.as_str(), b.seq, b.interval_ms),
            ("a", "h", 7, 1000)
        );
        assert_eq!(b.samples[0].metric, "m");
        assert_eq!(b.samples[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(b.samples[0].value, Some(pb::sample::Value::Gauge(2.5)));
    }
}
