//! The remote_write sender: every stored sample, forwarded to each
//! `[[remote_write]]` endpoint from the storage's durable forward queue.
//!
//! Per endpoint, `shards` tasks each own the series whose key hashes to
//! them (so each series' samples go out in timestamp order, by one task)
//! and keep a cursor in the storage. A task saves its cursor's in-flight
//! end (synced) before it sends a request, and after a crash sends the
//! same records again as the same request: a request the endpoint had
//! already taken is then refused whole as out of order (400) — dropped,
//! nothing lost — and one it had not is taken. Retries follow the spec:
//! 5xx and 429 (honouring `Retry-After`) and network errors with
//! exponential backoff; any other 4xx is dropped, counted and logged.
//!
//! The queue's bound: an endpoint whose unsent samples pass its
//! `queue_capacity` jumps past the oldest records (counted as dropped,
//! `queue_full`). Records every endpoint has passed are deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::model::SharedKey;
use nightjar_storage::forward::QUANTILES;
use nightjar_storage::{ForwardBatch, ForwardQueue};

use super::config::{Endpoint, EndpointAuth};
use super::wire;

/// One endpoint's figures, for the self-metrics (`collector_remote_write_*`).
#[derive(Debug, Default)]
pub struct EndpointCounters {
    /// Samples taken by the endpoint (2xx).
    pub sent: AtomicU64,
    /// Samples of attempts that failed and will be retried.
    pub failed: AtomicU64,
    /// Samples the endpoint refused for good (4xx other than 429).
    pub dropped_rejected: AtomicU64,
    /// Samples dropped by the queue's bound.
    pub dropped_queue_full: AtomicU64,
    /// Samples stored and not yet sent (set every second).
    pub pending: AtomicU64,
    /// Oldest timestamp (ms) of a sample each shard has yet to send, 0
    /// when it has nothing to send.
    oldest_unsent_ms: Vec<AtomicI64>,
    /// Records below this seq were dropped by the bound: shards jump.
    floor: AtomicU64,
    /// Each shard's cursor start, for the bound and the trim.
    cursors: Vec<AtomicU64>,
}

impl EndpointCounters {
    fn new(shards: usize) -> EndpointCounters {
        EndpointCounters {
            oldest_unsent_ms: (0..shards).map(|_| AtomicI64::new(0)).collect(),
            cursors: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            ..EndpointCounters::default()
        }
    }

    /// How far behind the endpoint is: now − the oldest sample not yet
    /// sent, in seconds (0 when it is caught up).
    pub fn lag_seconds(&self, now_ms: i64) -> f64 {
        self.oldest_unsent_ms
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .filter(|t| *t > 0)
            .min()
            .map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0)
    }
}

/// The senders' figures, by endpoint name.
pub type SenderFigures = Vec<(String, Arc<EndpointCounters>)>;

/// The shard a series belongs to: a stable hash of its key (stable across
/// restarts, so a resent request holds the same series).
fn shard_of(key: &SharedKey, shards: usize) -> usize {
    let mut h = crc32fast::Hasher::new();
    h.update(key.metric.as_bytes());
    for (n, v) in key.labels.iter() {
        h.update(&[0]);
        h.update(n.as_bytes());
        h.update(&[0]);
        h.update(v.as_bytes());
    }
    h.finalize() as usize % shards
}

/// The remote_write request of one shard's share of `batches`: one time
/// series per series, samples in store order, labels sorted by name with
/// the endpoint's extra labels where a series lacks them. Histograms go
/// out as gauges of their interval: `{quantile="0.5"|"0.9"|"0.99"}`,
/// `<name>_interval_count` and `<name>_interval_sum`.
pub fn build_request(
    batches: &[ForwardBatch],
    endpoint: &Endpoint,
    shard: usize,
) -> wire::WriteRequest {
    let mut series: Vec<wire::TimeSeries> = Vec::new();
    let mut at: HashMap<(String, Option<&'static str>, *const ()), usize> = HashMap::new();
    let labels_of = |key: &SharedKey, metric: &str, quantile: Option<&str>| {
        let mut labels: Vec<wire::Label> = std::iter::once(("__name__", metric))
            .chain(key.labels.iter())
            .chain(quantile.map(|q| ("quantile", q)))
            .map(|(n, v)| wire::Label {
                name: n.to_owned(),
                value: v.to_owned(),
            })
            .collect();
        for (n, v) in &endpoint.labels {
            if key.labels.get(n).is_none() && (n != "quantile" || quantile.is_none()) {
                labels.push(wire::Label {
                    name: n.clone(),
                    value: v.clone(),
                });
            }
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels
    };
    let mut push =
        |key: &SharedKey, metric: String, quantile: Option<&'static str>, ts: i64, value: f64| {
            let slot = (metric, quantile, Arc::as_ptr(key).cast::<()>());
            let i = *at.entry(slot.clone()).or_insert_with(|| {
                series.push(wire::TimeSeries {
                    labels: labels_of(key, &slot.0, quantile),
                    samples: Vec::new(),
                    histograms: Vec::new(),
                });
                series.len() - 1
            });
            series[i].samples.push(wire::Sample {
                value,
                timestamp: ts,
            });
        };
    const QUANTILE_LABELS: [&str; 3] = ["0.5", "0.9", "0.99"];
    debug_assert_eq!(QUANTILES.len(), QUANTILE_LABELS.len());
    for batch in batches {
        for (key, ts, value) in &batch.floats {
            if shard_of(key, endpoint.shards) == shard && endpoint.wants(&key.metric) {
                push(key, key.metric.clone(), None, *ts, *value);
            }
        }
        for (key, ts, figures) in &batch.histograms {
            if shard_of(key, endpoint.shards) != shard || !endpoint.wants(&key.metric) {
                continue;
            }
            for (q, label) in QUANTILE_LABELS.iter().enumerate() {
                push(key, key.metric.clone(), Some(label), *ts, figures[q]);
            }
            push(
                key,
                format!("{}_interval_count", key.metric),
                None,
                *ts,
                figures[3],
            );
            push(
                key,
                format!("{}_interval_sum", key.metric),
                None,
                *ts,
                figures[4],
            );
        }
    }
    wire::WriteRequest { timeseries: series }
}

/// Samples in a request.
fn sample_count(request: &wire::WriteRequest) -> u64 {
    request
        .timeseries
        .iter()
        .map(|s| s.samples.len() as u64)
        .sum()
}

/// The oldest sample timestamp in a request.
fn oldest_ms(request: &wire::WriteRequest) -> Option<i64> {
    request
        .timeseries
        .iter()
        .filter_map(|s| s.samples.first().map(|p| p.timestamp))
        .min()
}

/// How one attempt went.
enum Attempt {
    Sent,
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Refused(String),
}

/// `Retry-After` in seconds (the HTTP-date form is not used by
/// remote-write receivers in practice, and is treated as absent).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    text.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

async fn attempt(client: &reqwest::Client, endpoint: &Endpoint, body: Vec<u8>) -> Attempt {
    let mut request = client
        .post(&endpoint.url)
        .timeout(endpoint.timeout)
        .header("content-encoding", "snappy")
        .header("content-type", "application/x-protobuf")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .header(
            "user-agent",
            concat!("nightjar/", env!("CARGO_PKG_VERSION")),
        );
    request = match &endpoint.auth {
        EndpointAuth::None => request,
        EndpointAuth::Bearer(token) => request.bearer_auth(token),
        EndpointAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
    };
    match request.body(body).send().await {
        Err(e) => Attempt::Retry {
            why: format!("request failed: {e}"),
            after: None,
        },
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Attempt::Sent;
            }
            let after = retry_after(response.headers());
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let why = format!("{status}: {}", text.trim());
            if status.is_server_error() || status.as_u16() == 429 {
                Attempt::Retry { why, after }
            } else {
                Attempt::Refused(why)
            }
        }
    }
}

/// At most one line per endpoint problem kind every 10 s.
static RETRY_LOG: RateLimitedLog<10> = RateLimitedLog::new();
static REFUSED_LOG: RateLimitedLog<10> = RateLimitedLog::new();
static QUEUE_LOG: RateLimitedLog<10> = RateLimitedLog::new();

/// Sends `request` until the endpoint takes or refuses it.
async fn deliver(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    counters: &EndpointCounters,
    request: &wire::WriteRequest,
) {
    let n = sample_count(request);
    let body = wire::encode(request);
    let mut backoff = Duration::from_millis(250);
    loop {
        match attempt(client, endpoint, body.clone()).await {
            Attempt::Sent => {
                counters.sent.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Attempt::Refused(why) => {
                counters.dropped_rejected.fetch_add(n, Ordering::Relaxed);
                if let Some(lines_held_back) = REFUSED_LOG.due() {
                    tracing::warn!(endpoint = %endpoint.name, samples = n, reason = %why, lines_held_back, "remote_write endpoint refused a request; dropped (4xx is not retried)");
                }
                return;
            }
            Attempt::Retry { why, after } => {
                counters.failed.fetch_add(n, Ordering::Relaxed);
                let wait = after.unwrap_or(backoff);
                if let Some(lines_held_back) = RETRY_LOG.due() {
                    tracing::warn!(endpoint = %endpoint.name, samples = n, reason = %why, retry_in = ?wait, lines_held_back, "remote_write request failed; retrying");
                }
                // Jitter, so that shards do not retry in step.
                let jitter = Duration::from_millis(fastrand::u64(0..=wait.as_millis() as u64 / 4));
                tokio::time::sleep(wait + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs a blocking storage call off the async threads.
async fn blocking<Q: ForwardQueue, R: Send + 'static>(
    queue: &Arc<Q>,
    f: impl FnOnce(&Q) -> Result<R, nightjar_storage::StorageError> + Send + 'static,
) -> Result<R, String> {
    let queue = queue.clone();
    tokio::task::spawn_blocking(move || f(&queue).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}

/// How long an idle shard waits before it looks for new records.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// One shard of one endpoint, forever.
async fn run_shard<Q: ForwardQueue>(
    queue: Arc<Q>,
    endpoint: Arc<Endpoint>,
    counters: Arc<EndpointCounters>,
    client: reqwest::Client,
    shard: usize,
) {
    let name = format!("{}/{}/{shard}", endpoint.name, endpoint.shards);
    let first = queue.forward_size().first;
    let cursor_name = name.clone();
    let (mut start, mut end) = loop {
        let n = cursor_name.clone();
        match blocking(&queue, move |q| q.forward_cursor(&n)).await {
            Ok(saved) => break saved.unwrap_or((first, first)),
            Err(error) => {
                if let Some(lines_held_back) = QUEUE_LOG.due() {
                    tracing::error!(cursor = %name, %error, lines_held_back, "cannot read a remote_write cursor; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    counters.cursors[shard].store(start, Ordering::Relaxed);
    loop {
        let floor = counters.floor.load(Ordering::Relaxed);
        if start < floor {
            // The bound dropped records this shard had not sent.
            start = floor;
            end = end.max(floor);
        }
        let in_flight = end > start;
        let max = endpoint.max_samples_per_send;
        let (from, until) = (start, in_flight.then_some(end));
        let batches = match blocking(&queue, move |q| {
            q.forward_read(from, until, if until.is_some() { usize::MAX } else { max })
        })
        .await
        {
            Ok(b) => b,
            Err(error) => {
                if let Some(lines_held_back) = QUEUE_LOG.due() {
                    tracing::error!(cursor = %name, %error, lines_held_back, "cannot read the forward queue; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(last) = batches.last().map(|b| b.seq) else {
            counters.oldest_unsent_ms[shard].store(0, Ordering::Relaxed);
            if in_flight {
                start = end;
            }
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let new_end = if in_flight { end } else { last + 1 };
        let request = build_request(&batches, &endpoint, shard);
        if request.timeseries.is_empty() {
            // Nothing of this shard's: move on without a synced write.
            start = new_end;
            end = new_end;
            save(&queue, &name, start, end, false).await;
            counters.cursors[shard].store(start, Ordering::Relaxed);
            continue;
        }
        counters.oldest_unsent_ms[shard].store(oldest_ms(&request).unwrap_or(0), Ordering::Relaxed);
        if !in_flight {
            end = new_end;
            // Invariant: the in-flight end is durable before the request
            // leaves, so a crash resends exactly these records.
            save(&queue, &name, start, end, true).await;
        }
        deliver(&client, &endpoint, &counters, &request).await;
        start = end;
        save(&queue, &name, start, end, false).await;
        counters.cursors[shard].store(start, Ordering::Relaxed);
    }
}

/// Saves a cursor, retrying until the storage takes it.
async fn save<Q: ForwardQueue>(queue: &Arc<Q>, name: &str, start: u64, end: u64, sync: bool) {
    loop {
        let n = name.to_owned();
        match blocking(queue, move |q| q.set_forward_cursor(&n, start, end, sync)).await {
            Ok(()) => return,
            Err(error) => {
                if let Some(lines_held_back) = QUEUE_LOG.due() {
                    tracing::error!(cursor = %name, %error, lines_held_back, "cannot save a remote_write cursor; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Every second: each endpoint's pending samples and its bound, then the
/// trim of the records every endpoint has passed.
async fn keep_queue<Q: ForwardQueue>(
    queue: Arc<Q>,
    endpoints: Vec<(Arc<Endpoint>, Arc<EndpointCounters>)>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let q = queue.clone();
        let endpoints = endpoints.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut lowest = u64::MAX;
            for (endpoint, counters) in &endpoints {
                let floor = counters.floor.load(Ordering::Relaxed);
                let slowest = counters
                    .cursors
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0)
                    .max(floor);
                let pending = q.forward_samples_from(slowest);
                if pending > endpoint.queue_capacity {
                    let cut = q.forward_cut(endpoint.queue_capacity);
                    let dropped = pending - q.forward_samples_from(cut);
                    counters.floor.fetch_max(cut, Ordering::Relaxed);
                    counters
                        .dropped_queue_full
                        .fetch_add(dropped, Ordering::Relaxed);
                    if let Some(lines_held_back) = QUEUE_LOG.due() {
                        tracing::warn!(endpoint = %endpoint.name, dropped, capacity = endpoint.queue_capacity, lines_held_back, "remote_write queue full; dropped the oldest samples for this endpoint");
                    }
                    counters.pending.store(pending - dropped, Ordering::Relaxed);
                    lowest = lowest.min(cut);
                } else {
                    counters.pending.store(pending, Ordering::Relaxed);
                    lowest = lowest.min(slowest);
                }
            }
            if lowest != u64::MAX {
                q.forward_trim(lowest)?;
            }
            Ok::<_, nightjar_storage::StorageError>(())
        })
        .await;
        if let Ok(Err(error)) = result
            && let Some(lines_held_back) = QUEUE_LOG.due()
        {
            tracing::error!(%error, lines_held_back, "cannot trim the forward queue; retrying");
        }
    }
}

/// Starts the senders of `endpoints` over `queue`; their figures.
pub fn start<Q: ForwardQueue>(
    queue: Arc<Q>,
    endpoints: Vec<Endpoint>,
) -> Result<SenderFigures, String> {
    let mut figures = Vec::new();
    let mut kept = Vec::new();
    for endpoint in endpoints {
        let mut client = reqwest::Client::builder();
        if let Some(pem) = &endpoint.tls_ca {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| format!("remote_write {}: tls_ca: {e}", endpoint.name))?;
            client = client.add_root_certificate(ca);
        }
        let client = client.build().map_err(|e| {
            format!(
                "remote_write {}: cannot build its HTTP client: {e}",
                endpoint.name
            )
        })?;
        let endpoint = Arc::new(endpoint);
        let counters = Arc::new(EndpointCounters::new(endpoint.shards));
        // Before the shards start: the trim must not pass a cursor not yet read.
        let first = queue.forward_size().first;
        for c in &counters.cursors {
            c.store(first, Ordering::Relaxed);
        }
        for shard in 0..endpoint.shards {
            tokio::spawn(run_shard(
                queue.clone(),
                endpoint.clone(),
                counters.clone(),
                client.clone(),
                shard,
            ));
        }
        tracing::info!(endpoint = %endpoint.name, url = %endpoint.url, shards = endpoint.shards, "forwarding stored samples with remote_write");
        figures.push((endpoint.name.clone(), counters.clone()));
        kept.push((endpoint, counters));
    }
    if !kept.is_empty() {
        tokio::spawn(keep_queue(queue, kept));
    }
    Ok(figures)
}
