//! A remote_write 1.0 client of the tests' own (the spec's messages,
//! declared here apart from the collector's), to push hand-made requests
//! at a receiver: Snappy block format over a protobuf `WriteRequest`.

use std::net::SocketAddr;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Epoch ms.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One series with `labels` (name first) and `points` (ms, value).
pub fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: points
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
    }
}

/// POSTs `request` to `addr`'s `/api/v1/write` with the spec's headers
/// (and a bearer token if given); the status line.
pub fn push(addr: SocketAddr, request: &WriteRequest, token: Option<&str>) -> String {
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(request))
        .expect("snappy");
    push_raw(addr, &body, token)
}

/// POSTs a raw body (for malformed ones); the status line.
pub fn push_raw(addr: SocketAddr, body: &[u8], token: Option<&str>) -> String {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Encoding", "snappy"),
        ("Content-Type", "application/x-protobuf"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    crate::http_post(addr, "/api/v1/write", &headers, body).0
}
