//! The Prometheus remote_write 1.0 wire format: a protobuf `WriteRequest`
//! (`prometheus/prompb/remote.proto`, `types.proto`) in Snappy's block
//! format. Only the fields Nightjar reads or writes are declared; prost
//! skips the others (exemplars, metadata) on decode.
//!
//! Spec: <https://prometheus.io/docs/specs/remote_write_spec/>.

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, `__name__` among them, sorted by name (the spec's rule for
    /// senders; a receiver must not rely on it).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms, kept as undecoded bytes: counted and refused
    /// (Nightjar's histograms are HDR; see docs/prometheus.md).
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Epoch milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not Snappy block data, or larger than allowed once decompressed.
    #[error("body is not Snappy block-compressed data: {0}")]
    Snappy(String),
    /// Not a `WriteRequest`.
    #[error("body is not a prometheus.WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The largest decompressed request accepted: Prometheus sends at most
/// `max_samples_per_send` (default 500 in 2.42) samples a request, a few
/// hundred KB; the bound keeps a hostile body from taking the memory.
pub const MAX_DECODED_BYTES: usize = 64 << 20;

/// Decodes a request body.
pub fn decode(body: &[u8]) -> Result<WriteRequest, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > MAX_DECODED_BYTES {
        return Err(DecodeError::Snappy(format!(
            "decompresses to {len} bytes, above the limit of {MAX_DECODED_BYTES}"
        )));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    Ok(prost::Message::decode(raw.as_slice())?)
}

/// Encodes a request body (tests; the sender encodes its own requests,
/// `send::RequestBuilder`).
#[cfg(test)]
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("Snappy compresses any input below 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_bodies_say_why() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    Label {
                        name: "job".into(),
                        value: "node".into(),
                    },
                ],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_700_000_000_000,
                }],
                histograms: vec![],
            }],
        };
        assert_eq!(decode(&encode(&request)).unwrap(), request);
        let raw = prost::Message::encode_to_vec(&request);
        assert!(decode(&raw).unwrap_err().to_string().contains("Snappy"));
        let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 9]).unwrap();
        assert!(
            decode(&junk)
                .unwrap_err()
                .to_string()
                .contains("WriteRequest")
        );
    }
}
