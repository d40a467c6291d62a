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

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::model::SharedKey;
use nightjar_storage::{ForwardBatch, ForwardQueue};
use rustc_hash::FxHashMap;

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

/// A forwarded series as a shard knows it.
struct Slot {
    /// The encoded `Label` fields, None if the endpoint does not take it.
    labels: Option<Box<[u8]>>,
    /// The points of the request being built.
    points: Vec<(i64, f64)>,
}

/// Builds one shard's requests. Every series' labels are encoded once, the
/// first time the shard sees it, and kept (or its exclusion by
/// `include`/`exclude`): a steady stream of the same series costs one
/// integer-keyed lookup per sample, and no label allocation, label hashing
/// or regex matching. Buffers are kept from request to request.
pub struct RequestBuilder {
    endpoint: Arc<Endpoint>,
    slots: FxHashMap<SeriesRef, u32>,
    series: Vec<Slot>,
    /// Slots with points in the request being built, first seen first.
    order: Vec<u32>,
    /// The encoded request, before compression.
    encoded: Vec<u8>,
    snappy: snap::raw::Encoder,
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

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, key: u8, bytes: &[u8]) {
    out.push(key);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The length of an encoded `Sample` with timestamp `ts`.
fn sample_len(ts: i64) -> usize {
    1 + 8 + 1 + varint_len(ts as u64)
}

/// A request, and what its shard needs to know of it.
pub struct BuiltRequest {
    /// The Snappy-compressed `WriteRequest`.
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
fn encode_labels(endpoint: &Endpoint, key: &SharedKey, variant: u8) -> Option<Box<[u8]>> {
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
    Some(out.into_boxed_slice())
}

impl RequestBuilder {
    /// A builder for `endpoint`'s requests.
    pub fn new(endpoint: Arc<Endpoint>) -> RequestBuilder {
        RequestBuilder {
            endpoint,
            slots: FxHashMap::default(),
            series: Vec::new(),
            order: Vec::new(),
            encoded: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// The request of `batches` (this shard's samples): one time series
    /// per series, samples in store order. Histograms go out as gauges of
    /// their interval: `{quantile="0.5"|"0.9"|"0.99"}`,
    /// `<name>_interval_count` and `<name>_interval_sum`. `resolve` gives
    /// the series of ids this shard has not seen yet.
    pub fn build(
        &mut self,
        batches: &[ForwardBatch],
        resolve: impl FnOnce(&[u64]) -> Vec<Option<SharedKey>>,
    ) -> BuiltRequest {
        self.learn_new_series(batches, resolve);
        for batch in batches {
            for &(id, ts, value) in &batch.floats {
                self.add((id, 0), ts, value);
            }
            for (id, ts, figures) in &batch.histograms {
                for (variant, value) in (1u8..).zip(figures) {
                    self.add((*id, variant), *ts, *value);
                }
            }
        }
        self.encode()
    }

    /// Gives every series of `batches` not seen before its slot.
    fn learn_new_series(
        &mut self,
        batches: &[ForwardBatch],
        resolve: impl FnOnce(&[u64]) -> Vec<Option<SharedKey>>,
    ) {
        let mut new: Vec<(u64, bool)> = Vec::new();
        for batch in batches {
            let floats = batch.floats.iter().map(|s| (s.0, false));
            let histograms = batch.histograms.iter().map(|s| (s.0, true));
            for (id, histogram) in floats.chain(histograms) {
                let variant = u8::from(histogram);
                if !self.slots.contains_key(&(id, variant)) {
                    new.push((id, histogram));
                }
            }
        }
        if new.is_empty() {
            return;
        }
        new.sort_unstable();
        new.dedup();
        let ids: Vec<u64> = new.iter().map(|s| s.0).collect();
        let keys = resolve(&ids);
        for ((id, histogram), key) in new.into_iter().zip(keys) {
            let variants = if histogram { 1..=5 } else { 0..=0 };
            for variant in variants {
                let labels = key
                    .as_ref()
                    .and_then(|k| encode_labels(&self.endpoint, k, variant));
                self.slots.insert((id, variant), self.series.len() as u32);
                self.series.push(Slot {
                    labels,
                    points: Vec::new(),
                });
            }
        }
    }

    fn add(&mut self, r: SeriesRef, ts: i64, value: f64) {
        let i = self.slots[&r];
        let slot = &mut self.series[i as usize];
        if slot.labels.is_none() {
            return;
        }
        if slot.points.is_empty() {
            self.order.push(i);
        }
        slot.points.push((ts, value));
    }

    /// Encodes the points added since the last request straight into the
    /// request buffer (each time series' length is known before its
    /// fields are written), compresses it, and empties the slots.
    fn encode(&mut self) -> BuiltRequest {
        let body = &mut self.encoded;
        body.clear();
        let mut samples = 0;
        let mut oldest_ms: Option<i64> = None;
        for &i in &self.order {
            let slot = &mut self.series[i as usize];
            let labels = slot
                .labels
                .as_deref()
                .expect("only wanted series get points");
            let points_len: usize = slot
                .points
                .iter()
                .map(|&(ts, _)| {
                    let n = sample_len(ts);
                    1 + varint_len(n as u64) + n
                })
                .sum();
            body.push(WRITE_REQUEST_TIMESERIES);
            put_varint(body, (labels.len() + points_len) as u64);
            body.extend_from_slice(labels);
            for &(ts, v) in &slot.points {
                body.push(TIMESERIES_SAMPLES);
                put_varint(body, sample_len(ts) as u64);
                body.push(SAMPLE_VALUE);
                body.extend_from_slice(&v.to_bits().to_le_bytes());
                body.push(SAMPLE_TIMESTAMP);
                put_varint(body, ts as u64);
                oldest_ms = Some(oldest_ms.map_or(ts, |o| o.min(ts)));
            }
            samples += slot.points.len() as u64;
            slot.points.clear();
        }
        self.order.clear();
        BuiltRequest {
            body: self
                .snappy
                .compress_vec(body)
                .expect("Snappy compresses any input below 4 GiB"),
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
    let body = &request.body;
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

/// How long an idle shard waits before it looks for new records.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Runs a storage call until it succeeds, once a second, logging what
/// failed (rate-limited): a shard never skips what it cannot read or save.
async fn until_ok<R>(
    what: &str,
    cursor: &str,
    mut call: impl FnMut() -> Result<R, nightjar_storage::StorageError>,
) -> R {
    loop {
        match call() {
            Ok(r) => return r,
            Err(error) => {
                if let Some(lines_held_back) = QUEUE_LOG.due() {
                    tracing::error!(%cursor, %error, lines_held_back, "remote_write cannot {what}; retrying");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Saves cursor `name` (not synced: see the invariant in [`run_shard`]).
async fn save<Q: ForwardQueue>(queue: &Q, name: &str, start: u64, end: u64) {
    until_ok("save its cursor", name, || {
        queue.set_forward_cursor(name, start, end, false)
    })
    .await;
}

/// One shard of one endpoint, forever, on its own thread: it calls the
/// storage directly (the thread is its own), and its requests never queue
/// behind the ingest's tasks on the main runtime — under a full ingest
/// load, a shard on the shared runtime waited so long between its steps
/// that the queue's bound dropped samples (docs/benchmarks.md).
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
    let (mut start, mut end) = until_ok("read its cursor", &name, || queue.forward_cursor(&name))
        .await
        .unwrap_or((first, first));
    counters.cursors[shard].store(start, Ordering::Relaxed);
    loop {
        let floor = counters.floor.load(Ordering::Relaxed);
        if start < floor {
            // The bound dropped records this shard had not sent.
            start = floor;
            end = end.max(floor);
        }
        let in_flight = end > start;
        let (until, max) = if in_flight {
            (Some(end), usize::MAX)
        } else {
            (None, endpoint.max_samples_per_send)
        };
        let batches = until_ok("read the forward queue", &name, || {
            queue.forward_read(start, until, max, of_shard)
        })
        .await;
        let Some(last) = batches.last().map(|b| b.seq) else {
            counters.oldest_unsent_ms[shard].store(0, Ordering::Relaxed);
            if in_flight {
                start = end;
            }
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let new_end = if in_flight { end } else { last + 1 };
        let request = builder.build(&batches, |ids| queue.forward_series(ids));
        if request.samples == 0 {
            // Nothing of this shard's: move on without waiting for a write.
            start = new_end;
            end = new_end;
            save(&*queue, &name, start, end).await;
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
            // request behind the ingest's fsyncs.
            save(&*queue, &name, start, end).await;
        }
        deliver(&client, &endpoint, &counters, &request).await;
        start = end;
        save(&*queue, &name, start, end).await;
        counters.cursors[shard].store(start, Ordering::Relaxed);
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

/// The HTTP client of `endpoint`'s requests.
fn http_client(endpoint: &Endpoint) -> Result<reqwest::Client, String> {
    // No Nagle: a request is headers then body, and a receiver that
    // delays its ACK would hold every request back ~40 ms.
    let mut client = reqwest::Client::builder().tcp_nodelay(true);
    if let Some(pem) = &endpoint.tls_ca {
        let ca = reqwest::Certificate::from_pem(pem)
            .map_err(|e| format!("remote_write {}: tls_ca: {e}", endpoint.name))?;
        client = client.add_root_certificate(ca);
    }
    client.build().map_err(|e| {
        format!(
            "remote_write {}: cannot build its HTTP client: {e}",
            endpoint.name
        )
    })
}

/// Starts the senders of `endpoints` over `queue`; their figures. Each
/// shard runs on a thread of its own (`nightjar-rw-<shard>`)
/// with a one-thread runtime, for as long as the process; the keeper runs
/// on the caller's runtime.
pub fn start<Q: ForwardQueue>(
    queue: Arc<Q>,
    endpoints: Vec<Endpoint>,
) -> Result<SenderFigures, String> {
    let mut figures = Vec::new();
    let mut kept = Vec::new();
    for endpoint in endpoints {
        // Checked here, so that a shard's own client cannot fail to build.
        http_client(&endpoint)?;
        let endpoint = Arc::new(endpoint);
        let counters = Arc::new(EndpointCounters::new(endpoint.shards));
        // Before the shards start: the trim must not pass a cursor not yet read.
        let first = queue.forward_size().first;
        for c in &counters.cursors {
            c.store(first, Ordering::Relaxed);
        }
        for shard in 0..endpoint.shards {
            let client = http_client(&endpoint)?;
            let failed = |e: std::io::Error| {
                format!("remote_write {}: cannot start a shard: {e}", endpoint.name)
            };
            let (queue, endpoint, counters) = (queue.clone(), endpoint.clone(), counters.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(failed)?;
            std::thread::Builder::new()
                .name(format!("nightjar-rw-{shard}"))
                // Its connections live on its runtime, as long as the thread.
                .spawn(move || {
                    runtime.block_on(run_shard(queue, endpoint, counters, client, shard));
                })
                .map_err(failed)?;
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
                floats: vec![(1, 1_000, 0.5), (2, 1_000, 9.0)],
                histograms: vec![(3, 1_000, [0.1, 0.2, 0.3, 4.0, 0.9])],
            },
            ForwardBatch {
                seq: 2,
                floats: vec![(1, 2_000, 0.75)],
                histograms: vec![],
            },
        ];
        let keys = [load, own, lat];
        let mut asked = Vec::new();
        let mut builder = RequestBuilder::new(e);
        let built = builder.build(&batches, |ids| {
            asked.extend_from_slice(ids);
            ids.iter()
                .map(|id| Some(keys[*id as usize - 1].clone()))
                .collect()
        });
        assert_eq!(asked, [1, 2, 3], "each new series resolved once");
        assert_eq!(built.samples, 2 + 5);
        assert_eq!(built.oldest_ms, Some(1_000));
        let decode = |body: &[u8]| -> super::super::wire::WriteRequest {
            let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
            prost::Message::decode(raw.as_slice()).unwrap()
        };
        let request = decode(&built.body);
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
        // The second time, from the cache alone, alike.
        let again = builder.build(&batches, |ids| panic!("{ids:?} resolved again"));
        assert_eq!(decode(&again.body), request);
        // A series the index no longer holds is skipped.
        let gone = vec![ForwardBatch {
            seq: 3,
            floats: vec![(9, 3_000, 1.0), (1, 3_000, 1.5)],
            histograms: vec![],
        }];
        let built = builder.build(&gone, |ids| vec![None; ids.len()]);
        assert_eq!(built.samples, 1);
    }
}
