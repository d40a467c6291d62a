//! A remote_write receiver for the forwarding benchmark: a real HTTP
//! server (axum, in this process) that decodes each request (Snappy, then
//! the protobuf `WriteRequest`) and counts its samples, answering 204.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `prometheus.WriteRequest`, the fields counted.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// Samples and requests received.
#[derive(Default)]
pub struct Counts {
    /// Samples decoded.
    pub samples: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
}

async fn write(
    axum::extract::State(counts): axum::extract::State<Arc<Counts>>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let Ok(request) = <WriteRequest as prost::Message>::decode(raw.as_slice()) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    let n: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
    counts.samples.fetch_add(n as u64, Ordering::Relaxed);
    counts.requests.fetch_add(1, Ordering::Relaxed);
    axum::http::StatusCode::NO_CONTENT
}

/// Starts the sink on a loopback port: its address and counts.
pub async fn start() -> anyhow::Result<(SocketAddr, Arc<Counts>)> {
    let counts = Arc::new(Counts::default());
    let app = axum::Router::new()
        .route("/api/v1/write", axum::routing::post(write))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(counts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        // As a real receiver (Go's net package) does: no Nagle.
        use axum::serve::ListenerExt as _;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, counts))
}
