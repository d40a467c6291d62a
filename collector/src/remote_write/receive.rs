//! The remote_write receiver, `POST /api/v1/write` on the HTTP port:
//! Prometheus, vmagent, Telegraf or an OpenTelemetry collector push
//! samples into Nightjar through the same store step as the agents'
//! streams (`ingest::store_batch`: validation, `[limits]`, synced write,
//! rules), and get their 2xx only after that write.
//!
//! Each request becomes one batch per host. A series' host is its `host`
//! label, else its `instance` label (kept as well), else `remote_write`.
//! A request's batches are stored one at a time under one lock, each with
//! the next seq of its (host, `remote_write`) pair: parallel senders
//! (Prometheus' shards) never take one seq twice, so no batch is mistaken
//! for a replay. A retried request's samples are already stored and are
//! refused as `out_of_order`, which keeps them stored once.

use nightjar_storage::series_cache::SeriesCache;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nightjar_alerting::alerter::Alerter;
use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::convert::check_batch_header;
use nightjar_model::limits::Limits;
use nightjar_proto::v1 as pb;
use nightjar_storage::Storage;

use super::wire;
use crate::auth::Authenticate;
use crate::ingest::{StoreError, store_batch};
use crate::telemetry::IngestCounters;

/// The agent id of batches pushed through remote_write.
pub const REMOTE_WRITE_AGENT: &str = "remote_write";

/// The interval recorded for a remote-write host: the longest common
/// scrape interval, so that `host_down` waits long enough for a sender
/// scraping once a minute (the protocol does not say its interval).
pub const REMOTE_WRITE_INTERVAL_MS: u64 = 60_000;

/// The largest request body accepted (Snappy-compressed).
const MAX_BODY_BYTES: usize = 16 << 20;

/// What the receiver needs.
pub struct Receiver<S> {
    /// Where samples are stored.
    pub storage: Arc<S>,
    /// Ingest counters (stored, rejected), shared with the gRPC ingest.
    pub counters: Arc<IngestCounters>,
    /// `[limits]`.
    pub limits: Arc<Limits>,
    /// The rules, shown every stored batch.
    pub alerter: Option<Arc<Alerter>>,
    /// The `write` token check.
    pub auth: Authenticate,
    /// Serialises the seq assignment and store of pushed batches.
    pub store_lock: tokio::sync::Mutex<()>,
}

/// The route, to merge into the HTTP port's router.
pub fn router<S: Storage>(receiver: Arc<Receiver<S>>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/write", axum::routing::post(write::<S>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver)
}

/// A plain-text answer (the spec leaves the body free; Prometheus logs it).
fn answer(code: StatusCode, text: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text + "\n",
    )
        .into_response()
}

/// At most one line per 10 s about bodies refused whole.
static BAD_REQUEST_LOG: RateLimitedLog<10> = RateLimitedLog::new();

async fn write<S: Storage>(
    State(receiver): State<Arc<Receiver<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let peer = peer.to_string();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(status) = receiver.auth.check_bearer(&peer, authorization) {
        let code = match status.code() {
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return answer(code, status.message().to_owned());
    }
    let request = match wire::decode(&body) {
        Ok(request) => request,
        Err(error) => {
            receiver
                .counters
                .remote_write_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(lines_held_back) = BAD_REQUEST_LOG.due() {
                tracing::warn!(%peer, %error, lines_held_back, "refusing a remote_write request");
            }
            // 400: the spec's "do not retry" for a body that cannot be read.
            return answer(StatusCode::BAD_REQUEST, error.to_string());
        }
    };
    let batches = by_host(request);
    let _serial = receiver.store_lock.lock().await;
    for (host, samples) in batches {
        let seq = receiver.storage.high_water(&host, REMOTE_WRITE_AGENT) + 1;
        let batch = pb::Batch {
            agent_id: REMOTE_WRITE_AGENT.to_owned(),
            host,
            seq,
            interval_ms: REMOTE_WRITE_INTERVAL_MS,
            samples,
        };
        if let Err(reason) = check_batch_header(&batch) {
            return answer(StatusCode::BAD_REQUEST, reason);
        }
        match store_batch(
            &receiver.storage,
            &receiver.counters,
            &receiver.limits,
            receiver.alerter.as_ref(),
            batch,
            // A request's hosts come and go: nothing worth keeping.
            &mut SeriesCache::default(),
        )
        .await
        {
            Ok(_) => {}
            // 503: retried by the sender; what was stored before stays
            // stored and is refused as a duplicate on the retry.
            Err(error @ StoreError::Storage(_)) | Err(error @ StoreError::Task(_)) => {
                tracing::error!(%peer, %error, "storing a remote_write request failed; the sender will retry");
                return answer(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
            }
        }
    }
    // Every batch is durable: only now the 2xx.
    StatusCode::NO_CONTENT.into_response()
}

/// The request's samples as wire samples, grouped by host. Samples the
/// store step must refuse (no `__name__`, a native histogram) are passed
/// on in a form it refuses and counts.
fn by_host(request: wire::WriteRequest) -> BTreeMap<String, Vec<pb::Sample>> {
    let mut out: BTreeMap<String, Vec<pb::Sample>> = BTreeMap::new();
    for series in request.timeseries {
        let mut metric = String::new();
        let mut host = None;
        let mut instance = None;
        let mut labels = Vec::with_capacity(series.labels.len() + 1);
        for label in series.labels {
            match label.name.as_str() {
                "__name__" => metric = label.value,
                name => {
                    if name == "host" {
                        host = Some(label.value.clone());
                    } else if name == "instance" {
                        instance = Some(label.value.clone());
                    }
                    labels.push(pb::Label {
                        name: label.name,
                        value: label.value,
                    });
                }
            }
        }
        let host = host
            .or(instance)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| REMOTE_WRITE_AGENT.to_owned());
        let samples = out.entry(host).or_default();
        for s in series.samples {
            samples.push(pb::Sample {
                metric: metric.clone(),
                labels: labels.clone(),
                timestamp_ms: s.timestamp,
                value: Some(pb::sample::Value::Gauge(s.value)),
            });
        }
        // No value kind Nightjar stores: refused as `unsupported_value`.
        for _ in series.histograms {
            samples.push(pb::Sample {
                metric: metric.clone(),
                labels: labels.clone(),
                timestamp_ms: 0,
                value: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, value: &str) -> wire::Label {
        wire::Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn series_go_to_their_host_then_instance_then_remote_write() {
        let series = |labels: Vec<wire::Label>| wire::TimeSeries {
            labels,
            samples: vec![wire::Sample {
                value: 2.5,
                timestamp: 1_000,
            }],
            histograms: vec![],
        };
        let request = wire::WriteRequest {
            timeseries: vec![
                series(vec![
                    label("__name__", "up"),
                    label("instance", "10.0.0.1:9100"),
                    label("host", "web-1"),
                ]),
                series(vec![
                    label("__name__", "up"),
                    label("instance", "10.0.0.2:9100"),
                ]),
                series(vec![label("__name__", "queue_depth")]),
            ],
        };
        let got = by_host(request);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["10.0.0.2:9100", "remote_write", "web-1"]
        );
        let web = &got["web-1"][0];
        assert_eq!(web.metric, "up");
        assert_eq!(web.timestamp_ms, 1_000);
        assert_eq!(web.value, Some(pb::sample::Value::Gauge(2.5)));
        assert!(web.labels.iter().all(|l| l.name != "__name__"));
        assert_eq!(web.labels.len(), 2, "instance and host kept");
    }
}
