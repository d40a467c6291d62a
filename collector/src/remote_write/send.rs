//! The remote_write sender: every stored sample, forwarded to each
//! `[[remote_write]]` endpoint from the storage's durable forward queue.
//!
//! Per endpoint, `shards` tasks each own the series whose id falls to them
//! (ids are stable, so each series' samples go out in timestamp order, by
//! one task; the storage hands each shard only its series) and keep a
//! cursor in the storage. A task saves its cursor's in-flight
//! end before it sends a request, and after a crash sends the
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
use nightjar_storage::{ForwardBatch, ForwardQueue};

use super::config::{Endpoint, EndpointAuth};

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

/// Which forwarded series a sample belongs to: the stored series' id and
/// the variant (0: the float itself; 1..=5: a histogram's p50, p90, p99,
/// interval count, interval sum).
type SeriesRef = (u64, u8);

/// Builds one shard's requests. Every series' labels are encoded once, the
/// first time the shard sees it, and kept (or its exclusion by
/// `include`/`exclude`): a steady stream of the same series costs no
/// label allocation, label hashing or regex matching.
pub struct RequestBuilder {
    endpoint: Arc<Endpoint>,
    /// The encoded `Label` fields of each series, None if not forwarded.
    labels: HashMap<SeriesRef, Option<Vec<u8>>>,
}

/// Protobuf field keys of remote.proto / types.proto.
const WRITE_REQUEST_TIMESERIES: u8 = 0x0a; // 1, length-delimited
const TIMESERIES_LABELS: u8 = 0x0a; // 1, length-delimited
const TIMESERIES_SAMPLES: u8 = 0x12; // 2, length-delimited
const LABEL_NAME: u8 = 0x0a; // 1
const LABEL_VALUE: u8 = 0x12; // 2
const SAMPLE_VALUE: u8 = 0x09; // 1, fixed64
const SAMPLE_TIMESTAMP: u8 = 0x10; // 2, varint

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A request, and what its shard needs to know of it.
pub struct BuiltRequest {
    /// The encoded `WriteRequest` (not yet compressed).
    pub body: Vec<u8>,
    /// Samples in it.
    pub samples: u64,
    /// Its oldest sample's timestamp.
    pub oldest_ms: Option<i64>,
}

const QUANTILE_LABELS: [&str; 3] = ["0.5", "0.9", "0.99"];

/// The encoded labels of a forwarded series, None if the endpoint does
/// not take its metric: `__name__`, the stored labels, the variant's
/// `quantile`, the endpoint's extra labels where the series lacks them;
/// sorted by name, as the spec asks.
fn encode_labels(endpoint: &Endpoint, key: &SharedKey, variant: u8) -> Option<Vec<u8>> {
    if !endpoint.wants(&key.metric) {
        return None;
    }
    let metric = match variant {
        4 => format!("{}_interval_count", key.metric),
        5 => format!("{}_interval_sum", key.metric),
        _ => key.metric.clone(),
    };
    let quantile = (1..=3)
        .contains(&variant)
        .then(|| QUANTILE_LABELS[usize::from(variant) - 1]);
    let mut labels: Vec<(&str, &str)> = std::iter::once(("__name__", metric.as_str()))
        .chain(key.labels.iter())
        .chain(quantile.map(|q| ("quantile", q)))
        .collect();
    for (n, v) in &endpoint.labels {
        if labels.iter().all(|(have, _)| have != n) {
            labels.push((n, v));
        }
    }
    labels.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    let mut label = Vec::new();
    for (n, v) in labels {
        label.clear();
        put_bytes(&mut label, LABEL_NAME, n.as_bytes());
        put_bytes(&mut label, LABEL_VALUE, v.as_bytes());
        put_bytes(&mut out, TIMESERIES_LABELS, &label);
    }
    Some(out)
}

impl RequestBuilder {
    /// A builder for `endpoint`'s requests.
    pub fn new(endpoint: Arc<Endpoint>) -> RequestBuilder {
        RequestBuilder {
            endpoint,
            labels: HashMap::new(),
        }
    }

    /// The request of `batches` (this shard's samples): one time series
    /// per series, samples in store order. Histograms go out as gauges of
    /// their interval: `{quantile="0.5"|"0.9"|"0.99"}`,
    /// `<name>_interval_count` and `<name>_interval_sum`.
    pub fn build(&mut self, batches: &[ForwardBatch]) -> BuiltRequest {
        let mut order: Vec<SeriesRef> = Vec::new();
        let mut points: HashMap<SeriesRef, Vec<(i64, f64)>> = HashMap::new();
        let endpoint = &self.endpoint;
        let labels = &mut self.labels;
        let mut add = |r: SeriesRef, key: &SharedKey, ts: i64, v: f64| {
            let wanted = labels
                .entry(r)
                .or_insert_with(|| encode_labels(endpoint, key, r.1))
                .is_some();
            if wanted {
                points
                    .entry(r)
                    .or_insert_with(|| {
                        order.push(r);
                        Vec::new()
                    })
                    .push((ts, v));
            }
        };
        for batch in batches {
            for (id, key, ts, value) in &batch.floats {
                add((*id, 0), key, *ts, *value);
            }
            for (id, key, ts, figures) in &batch.histograms {
                for (variant, value) in (1u8..).zip(figures) {
                    add((*id, variant), key, *ts, *value);
                }
            }
        }
        let mut body = Vec::new();
        let mut series = Vec::new();
        let mut sample = Vec::with_capacity(24);
        let mut samples = 0;
        let mut oldest_ms: Option<i64> = None;
        for r in order {
            let Some(Some(labels)) = self.labels.get(&r) else {
                continue;
            };
            series.clear();
            series.extend_from_slice(labels);
            for &(ts, v) in &points[&r] {
                sample.clear();
                sample.push(SAMPLE_VALUE);
                sample.extend_from_slice(&v.to_bits().to_le_bytes());
                sample.push(SAMPLE_TIMESTAMP);
                put_varint(&mut sample, ts as u64);
                put_bytes(&mut series, TIMESERIES_SAMPLES, &sample);
                samples += 1;
                oldest_ms = Some(oldest_ms.map_or(ts, |o| o.min(ts)));
            }
            put_bytes(&mut body, WRITE_REQUEST_TIMESERIES, &series);
        }
        BuiltRequest {
            body,
            samples,
            oldest_ms,
        }
    }
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
    request: &BuiltRequest,
) {
    let n = request.samples;
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.body)
        .expect("Snappy compresses any input below 4 GiB");
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
    let mut builder = RequestBuilder::new(endpoint.clone());
    let of_shard = Some((shard as u64, endpoint.shards as u64));
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
            q.forward_read(
                from,
                until,
                if until.is_some() { usize::MAX } else { max },
                of_shard,
            )
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
        let request = builder.build(&batches);
        if request.samples == 0 {
            // Nothing of this shard's: move on without a synced write.
            start = new_end;
            end = new_end;
            save(&queue, &name, start, end, false).await;
            counters.cursors[shard].store(start, Ordering::Relaxed);
            continue;
        }
        counters.oldest_unsent_ms[shard].store(request.oldest_ms.unwrap_or(0), Ordering::Relaxed);
        if !in_flight {
            end = new_end;
            // Invariant: the in-flight end is saved before the request
            // leaves, so a crash resends exactly these records. Not fsynced:
            // RocksDB hands every write to the kernel at once, so it
            // survives the process dying (SIGKILL, OOM, panic); only an OS
            // crash can lose it. A synced write per request would put each
            // request behind the ingest's fsyncs (measured: forwarding
            // fell to a tenth of ingest, docs/benchmarks.md).
            save(&queue, &name, start, end, false).await;
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
        // No Nagle: a request is headers then body, and a receiver that
        // delays its ACK would hold every request back ~40 ms.
        let mut client = reqwest::Client::builder().tcp_nodelay(true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_model::model::SeriesKey;

    fn endpoint(text: &str) -> Arc<Endpoint> {
        #[derive(serde::Deserialize)]
        struct File {
            remote_write: Vec<super::super::config::RawRemoteWrite>,
        }
        let file: File = toml::from_str(text).unwrap();
        Arc::new(
            super::super::config::build(file.remote_write, std::path::Path::new("/"))
                .unwrap()
                .remove(0),
        )
    }

    #[test]
    fn requests_decode_as_the_spec_messages_with_sorted_labels() {
        let e = endpoint(
            "[[remote_write]]\nurl = \"http://x/\"\nexclude = [\"collector_.*\"]\nlabels = { cluster = \"eu\", host = \"ignored\" }\n",
        );
        let load: SharedKey = Arc::new(SeriesKey::of("load", &[("host", "web-1"), ("cpu", "0")]));
        let own: SharedKey = Arc::new(SeriesKey::of("collector_series", &[("host", "c")]));
        let lat: SharedKey = Arc::new(SeriesKey::of("lat_seconds", &[("host", "web-1")]));
        let batches = vec![
            ForwardBatch {
                seq: 1,
                floats: vec![(1, load.clone(), 1_000, 0.5), (2, own.clone(), 1_000, 9.0)],
                histograms: vec![(3, lat.clone(), 1_000, [0.1, 0.2, 0.3, 4.0, 0.9])],
            },
            ForwardBatch {
                seq: 2,
                floats: vec![(1, load.clone(), 2_000, 0.75)],
                histograms: vec![],
            },
        ];
        let mut builder = RequestBuilder::new(e);
        let built = builder.build(&batches);
        assert_eq!(built.samples, 2 + 5);
        assert_eq!(built.oldest_ms, Some(1_000));
        let request: super::super::wire::WriteRequest =
            prost::Message::decode(built.body.as_slice()).unwrap();
        let text: Vec<String> = request
            .timeseries
            .iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                let points: Vec<String> = s
                    .samples
                    .iter()
                    .map(|p| format!("{}@{}", p.value, p.timestamp))
                    .collect();
                format!("{} {}", labels.join(","), points.join(" "))
            })
            .collect();
        assert_eq!(
            text,
            [
                "__name__=load,cluster=eu,cpu=0,host=web-1 0.5@1000 0.75@2000",
                "__name__=lat_seconds,cluster=eu,host=web-1,quantile=0.5 0.1@1000",
                "__name__=lat_seconds,cluster=eu,host=web-1,quantile=0.9 0.2@1000",
                "__name__=lat_seconds,cluster=eu,host=web-1,quantile=0.99 0.3@1000",
                "__name__=lat_seconds_interval_count,cluster=eu,host=web-1 4@1000",
                "__name__=lat_seconds_interval_sum,cluster=eu,host=web-1 0.9@1000",
            ]
        );
        // The cache answers the second time alike.
        assert_eq!(builder.build(&batches).body, built.body);
    }
}
