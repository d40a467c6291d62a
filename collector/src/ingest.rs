//! The gRPC `IngestService`: one task per agent stream, acking each batch
//! only after storage has made it durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthLog, Caller, Refusal, Role};
use crate::telemetry::{IngestCounters, SamplesRejected};
use nightjar_alerting::alerter::Alerter;
use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::convert::{batch_from_wire, check_batch_header};
use nightjar_model::limits::Limits;
use nightjar_model::validate::Rejection;
use nightjar_storage::series_cache::SeriesCache;
use nightjar_storage::{AppendOutcome, Storage};

/// Agent ids whose first host is remembered (bounds the memory a client
/// inventing ids can take).
const MAX_AGENT_IDS_WATCHED: usize = 100_000;

/// Acks buffered per stream before the stream task waits for the agent to
/// read them.
const ACK_BUFFER: usize = 32;

/// The ingest service over a storage.
pub struct IngestApi<S> {
    storage: Arc<S>,
    counters: Arc<IngestCounters>,
    limits: Arc<Limits>,
    alerter: Option<Arc<Alerter>>,
    auth_log: Arc<AuthLog>,
    /// The host each agent id was first seen on, to notice one id used by
    /// two hosts (a VM cloned with its state dir): their replay marks are
    /// apart, so nothing is lost, but the operator should know.
    agent_hosts: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl<S: Storage> IngestApi<S> {
    /// An ingest service writing to `storage` and counting into `counters`.
    pub fn new(storage: Arc<S>, counters: Arc<IngestCounters>, limits: Limits) -> Self {
        IngestApi {
            storage,
            counters,
            limits: Arc::new(limits),
            alerter: None,
            auth_log: Arc::default(),
            agent_hosts: Arc::default(),
        }
    }

    /// Where impersonation attempts are counted and logged.
    pub fn with_auth_log(mut self, log: Arc<AuthLog>) -> Self {
        self.auth_log = log;
        self
    }

    /// Evaluates alert rules on every stored batch.
    pub fn with_alerter(mut self, alerter: Arc<Alerter>) -> Self {
        self.alerter = Some(alerter);
        self
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<S> Clone for IngestApi<S> {
    fn clone(&self) -> Self {
        IngestApi {
            storage: self.storage.clone(),
            counters: self.counters.clone(),
            limits: self.limits.clone(),
            alerter: self.alerter.clone(),
            auth_log: self.auth_log.clone(),
            agent_hosts: self.agent_hosts.clone(),
        }
    }
}

/// Handles one agent stream until it ends or fails. `caller`: who the
/// token says is calling (None without tokens).
async fn serve_stream<S: Storage>(
    api: IngestApi<S>,
    caller: Option<Caller>,
    peer: String,
    mut inbound: Streaming<pb::Batch>,
    acks: mpsc::Sender<Result<pb::Ack, Status>>,
) {
    let IngestApi {
        storage,
        counters,
        limits,
        alerter,
        auth_log,
        agent_hosts,
    } = api;
    let mut announced = false;
    // This stream's series references: its batches name the same series
    // in the same order, interval after interval.
    let mut series_cache = SeriesCache::default();
    loop {
        let wire = match inbound.message().await {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                tracing::info!(%peer, "agent stream closed");
                return;
            }
            Err(status) => {
                // An oversized or undecodable message ends the stream; tell
                // the agent why (it may also simply be gone).
                if matches!(
                    status.code(),
                    tonic::Code::OutOfRange | tonic::Code::Internal
                ) {
                    tracing::warn!(%peer, error = %status, "refusing an undecodable or oversized batch");
                } else {
                    tracing::info!(%peer, error = %status, "agent stream ended");
                }
                let _ = acks.send(Err(status)).await;
                return;
            }
        };
        if let Err(reason) = check_batch_header(&wire) {
            counters.batches_refused.fetch_add(1, Ordering::Relaxed);
            if let Some(lines_held_back) = REFUSED_BATCH_LOG.due() {
                tracing::warn!(%peer, host = %wire.host, agent_id = %wire.agent_id, %reason, lines_held_back, "refusing a batch; ending its stream");
            }
            let _ = acks.send(Err(Status::invalid_argument(reason))).await;
            return;
        }
        // An agent token writes for its own host only.
        if let Some(caller) = caller.as_ref().filter(|c| c.role == Role::Agent)
            && caller.name != wire.host
        {
            let detail = format!(
                "token of host {:?} sent a batch for host {:?}",
                caller.name, wire.host
            );
            auth_log.refuse(Refusal::Impersonation, &peer, &detail);
            let status = Status::permission_denied(format!(
                "this token may only send batches for host {:?}, not {:?}",
                caller.name, wire.host
            ));
            let _ = acks.send(Err(status)).await;
            return;
        }
        if !announced {
            tracing::info!(%peer, agent_id = %wire.agent_id, host = %wire.host, "agent connected");
            announced = true;
            let mut seen = agent_hosts.lock().expect("agent hosts lock");
            if !seen.contains_key(&wire.agent_id) && seen.len() < MAX_AGENT_IDS_WATCHED {
                seen.insert(wire.agent_id.clone(), wire.host.clone());
            }
            if let Some(first) = seen.get(&wire.agent_id).filter(|h| **h != wire.host) {
                tracing::warn!(
                    %peer,
                    agent_id = %wire.agent_id,
                    host = %wire.host,
                    also_host = %first,
                    "one agent id sends for two hosts (a VM cloned with its state dir?); \
                     their data and replay marks are kept apart; give each its own state dir"
                );
            }
        }
        // Fast path for replays after a reconnect: already stored, so neither
        // validated nor counted again. (`append` re-checks under the agent's lock.)
        let high_water = storage.high_water(&wire.host, &wire.agent_id);
        if wire.seq <= high_water {
            counters.batches_replayed.fetch_add(1, Ordering::Relaxed);
            let ack = pb::Ack {
                acked_through: high_water,
                ..pb::Ack::default()
            };
            if acks.send(Ok(ack)).await.is_err() {
                return;
            }
            continue;
        }
        let stored = match store_batch(
            &storage,
            &counters,
            &limits,
            alerter.as_ref(),
            wire,
            &mut series_cache,
        )
        .await
        {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%peer, %error, "storing batch failed; closing stream so the agent resends");
                let _ = acks.send(Err(Status::unavailable(error.to_string()))).await;
                return;
            }
        };
        let (outcome, rejections) = (stored.outcome, stored.rejections);
        // Invariant: this ack is sent only after `append` made the batch durable.
        let ack = pb::Ack {
            acked_through: outcome.acked_through(),
            rejected_samples: rejections.len() as u32,
            first_rejection: rejections
                .first()
                .map(|r| r.to_string())
                .unwrap_or_default(),
        };
        if acks.send(Ok(ack)).await.is_err() {
            return;
        }
    }
}

/// What [`store_batch`] did with a batch.
pub struct Stored {
    /// Stored (durably) or recognised as a replay.
    pub outcome: AppendOutcome,
    /// The samples refused, in sample order (already counted and logged).
    pub rejections: Vec<Rejection>,
}

/// The store step every ingest path shares (the agents' gRPC streams, the
/// remote_write receiver): validates the batch's samples, admits them
/// under `[limits]`, appends them with a synced write, shows them to the
/// rules, and counts. On `Ok` the batch is durable (or was already): only
/// then may the sender be told so. The header (`check_batch_header`) and
/// the caller's right to the host are the caller's to check first.
/// `series_cache` is the sender's, kept from one of its batches to the
/// next ([`Storage::append_cached`]).
pub async fn store_batch<S: Storage>(
    storage: &Arc<S>,
    counters: &IngestCounters,
    limits: &Limits,
    alerter: Option<&Arc<Alerter>>,
    wire: pb::Batch,
    series_cache: &mut SeriesCache,
) -> Result<Stored, StoreError> {
    let (mut batch, mut rejections) = batch_from_wire(wire, limits, now_ms());
    let (host_series, total_series) = storage.series_counts(&batch.host);
    rejections.extend(limits.admit_batch(
        &mut batch,
        |key| storage.series_exists(key),
        host_series,
        total_series,
    ));
    let n_samples = (batch.samples.len() + batch.histograms.len()) as u64;
    let (host, seq) = (batch.host.clone(), batch.seq);
    let store = storage.clone();
    let alerter = alerter.cloned();
    let mut cache = std::mem::take(series_cache);
    let (outcome, cache) = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let outcome = store.append_cached(&batch, now, &mut cache);
        // Rules see a batch once it is durable, before its ack: the
        // crossing is judged when the sample arrives.
        if let (Some(alerter), Ok(AppendOutcome::Stored { .. })) = (&alerter, &outcome) {
            alerter.observe(&batch, now);
        }
        (outcome, cache)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?;
    *series_cache = cache;
    let outcome = outcome?;
    match outcome {
        AppendOutcome::Stored { out_of_order, .. } => {
            counters.batches_stored.fetch_add(1, Ordering::Relaxed);
            counters
                .samples_stored
                .fetch_add(n_samples - u64::from(out_of_order), Ordering::Relaxed);
            rejections.extend((0..out_of_order).map(|_| Rejection::OutOfOrder));
        }
        AppendOutcome::Replay { .. } => {
            counters.batches_replayed.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !rejections.is_empty() {
        SamplesRejected {
            host: &host,
            seq,
            rejections: &rejections,
        }
        .emit(counters);
    }
    Ok(Stored {
        outcome,
        rejections,
    })
}

/// Why [`store_batch`] stored nothing: the sender must send again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The synced write failed (full or failing disk).
    #[error(transparent)]
    Storage(#[from] nightjar_storage::StorageError),
    /// The blocking task that writes panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// At most one "refusing a batch" line every 10 s (each is counted).
static REFUSED_BATCH_LOG: RateLimitedLog<10> = RateLimitedLog::new();

#[tonic::async_trait]
impl<S: Storage> pb::ingest_service_server::IngestService for IngestApi<S> {
    type StreamStream = ReceiverStream<Result<pb::Ack, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let caller = request.extensions().get::<Caller>().cloned();
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        tokio::spawn(serve_stream(
            self.clone(),
            caller,
            peer,
            request.into_inner(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use nightjar_model::selector::Selector;
    use nightjar_storage::Storage as _;

    use super::now_ms;
    use crate::auth::{Refusal, hash_token};
    use crate::testing::{Options, TestCollector, send, wire_batch};
    use nightjar_model::limits::Limits;

    fn stored_values(collector: &TestCollector, metric: &str) -> Vec<f64> {
        let selector = Selector {
            metric: Some(metric.into()),
            ..Selector::default()
        };
        collector
            .storage
            .query_range(&selector, 0, i64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|(_, points)| points.into_iter().map(|p| p.value))
            .collect()
    }

    #[tokio::test]
    async fn another_hosts_agent_id_with_a_huge_seq_does_not_silence_that_host() {
        let c = TestCollector::start().await;
        let t = now_ms();
        let ok = |answers: &[Result<nightjar_proto::v1::Ack, tonic::Status>]| {
            answers.iter().all(|a| a.is_ok())
        };
        assert!(ok(&send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("load1", t, 1.0)])]
        )
        .await));
        // A client claiming agent a1's id from another host, far ahead.
        let hostile = send(
            &c,
            None,
            vec![wire_batch("a1", "evil", 1 << 62, &[("load1", t, 6.0)])],
        )
        .await;
        assert!(
            ok(&hostile),
            "stored under its own host's mark: {hostile:?}"
        );
        let next = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 2, &[("load1", t + 1_000, 2.0)])],
        )
        .await;
        assert_eq!(next[0].as_ref().unwrap().acked_through, 2);
        let selector = Selector {
            metric: Some("load1".into()),
            matchers: vec![nightjar_model::selector::Matcher::parse("host=web-1").unwrap()],
        };
        let points = c.storage.query_range(&selector, 0, i64::MAX).unwrap();
        let values: Vec<f64> = points[0].1.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![1.0, 2.0], "the victim's batch landed");
    }

    #[tokio::test]
    async fn batches_with_impossible_header_values_are_refused_naming_the_field() {
        let c = TestCollector::start().await;
        let t = now_ms();
        let mut long_interval = wire_batch("a1", "web-1", 1, &[("load1", t, 1.0)]);
        long_interval.interval_ms = 1 << 62;
        for (batch, field) in [
            (
                wire_batch("a1", "web-1", u64::MAX, &[("load1", t, 1.0)]),
                "batch.seq",
            ),
            (
                wire_batch("a1", "web-1", 0, &[("load1", t, 1.0)]),
                "batch.seq",
            ),
            (long_interval, "batch.interval_ms"),
        ] {
            let answer = send(&c, None, vec![batch]).await;
            let status = answer[0].as_ref().unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains(field), "{}", status.message());
        }
        assert_eq!(c.counters.batches_refused.load(Relaxed), 3);
        assert_eq!(c.storage.high_water("web-1", "a1"), 0, "no mark moved");
        let after = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("load1", t, 1.0)])],
        )
        .await;
        assert_eq!(
            after[0].as_ref().unwrap().acked_through,
            1,
            "the host still lands"
        );
    }

    #[tokio::test]
    async fn a_replayed_batch_is_acked_without_being_stored_again() {
        let c = TestCollector::start().await;
        let t = now_ms();
        let first = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("load1", t, 1.0)])],
        )
        .await;
        assert_eq!(first[0].as_ref().unwrap().acked_through, 1);
        // The agent reconnects and resends seq 1 (with other bytes, as a
        // buggy or restarted agent might), then sends seq 2.
        let again = send(
            &c,
            None,
            vec![
                wire_batch("a1", "web-1", 1, &[("load1", t + 1_000, 9.0)]),
                wire_batch("a1", "web-1", 2, &[("load1", t + 2_000, 2.0)]),
            ],
        )
        .await;
        let acks: Vec<u64> = again
            .iter()
            .map(|a| a.as_ref().unwrap().acked_through)
            .collect();
        assert_eq!(acks, vec![1, 2]);
        assert_eq!(stored_values(&c, "load1"), vec![1.0, 2.0]);
        assert_eq!(c.counters.batches_replayed.load(Relaxed), 1);
        assert_eq!(c.counters.batches_stored.load(Relaxed), 2);
        assert_eq!(c.counters.samples_stored.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn series_over_the_host_limit_are_rejected_alone_and_counted() {
        let c = TestCollector::with(Options {
            limits: Limits {
                max_series_per_host: 2,
                ..Limits::default()
            },
            ..Options::default()
        })
        .await;
        let t = now_ms();
        let acks = send(
            &c,
            None,
            vec![
                wire_batch(
                    "a1",
                    "web-1",
                    1,
                    &[("m1", t, 1.0), ("m2", t, 2.0), ("m3", t, 3.0)],
                ),
                wire_batch("a1", "web-1", 2, &[("m1", t + 1_000, 4.0)]),
            ],
        )
        .await;
        let first = acks[0].as_ref().unwrap();
        assert_eq!((first.acked_through, first.rejected_samples), (1, 1));
        assert!(
            first.first_rejection.contains("m3"),
            "names the refused series: {}",
            first.first_rejection
        );
        assert_eq!(
            acks[1].as_ref().unwrap().rejected_samples,
            0,
            "existing series keep flowing"
        );
        assert_eq!(stored_values(&c, "m1"), vec![1.0, 4.0]);
        assert!(stored_values(&c, "m3").is_empty());
        assert_eq!(c.counters.samples_rejected.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn an_agent_token_writes_only_its_own_host() {
        let tokens = format!(
            "agent web-1 {}\nread grafana {}\n",
            hash_token("web-1-secret"),
            hash_token("read-secret")
        );
        let c = TestCollector::with(Options {
            tokens: Some(tokens),
            ..Options::default()
        })
        .await;
        let t = now_ms();
        let own = send(
            &c,
            Some("web-1-secret"),
            vec![wire_batch("a1", "web-1", 1, &[("up", t, 1.0)])],
        )
        .await;
        assert_eq!(own[0].as_ref().unwrap().acked_through, 1);

        let foreign = send(
            &c,
            Some("web-1-secret"),
            vec![wire_batch("a2", "db-1", 1, &[("up", t, 0.0)])],
        )
        .await;
        let status = foreign[0].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("db-1"), "{}", status.message());

        let without = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 2, &[("up", t, 1.0)])],
        )
        .await;
        assert_eq!(
            without[0].as_ref().unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let read_token = send(
            &c,
            Some("read-secret"),
            vec![wire_batch("a1", "web-1", 2, &[("up", t, 1.0)])],
        )
        .await;
        assert_eq!(
            read_token[0].as_ref().unwrap_err().code(),
            tonic::Code::PermissionDenied
        );

        assert_eq!(
            c.storage.high_water("db-1", "a2"),
            0,
            "nothing of the foreign batch is stored"
        );
        assert_eq!(c.storage.high_water("web-1", "a1"), 1);
        let counts = c.auth_log.counts();
        let count = |r: Refusal| counts[Refusal::ALL.iter().position(|x| *x == r).unwrap()];
        assert_eq!(count(Refusal::Impersonation), 1);
        assert_eq!(count(Refusal::Missing), 1);
        assert_eq!(count(Refusal::WrongRole), 1);
    }

    #[tokio::test]
    async fn a_failed_write_is_not_acked_and_the_resent_batch_is_stored() {
        let c = TestCollector::start().await;
        let t = now_ms();
        c.storage.fail_appends(true);
        let failed = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("up", t, 1.0)])],
        )
        .await;
        assert_eq!(failed.len(), 1, "no ack before the error");
        assert_eq!(
            failed[0].as_ref().unwrap_err().code(),
            tonic::Code::Unavailable
        );
        c.storage.fail_appends(false);
        let resent = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("up", t, 1.0)])],
        )
        .await;
        assert_eq!(resent[0].as_ref().unwrap().acked_through, 1);
        assert_eq!(stored_values(&c, "up"), vec![1.0]);
    }

    #[tokio::test]
    async fn a_batch_without_agent_id_or_host_ends_the_stream() {
        let c = TestCollector::start().await;
        let mut batch = wire_batch("", "web-1", 1, &[("up", now_ms(), 1.0)]);
        let answer = send(&c, None, vec![batch.clone()]).await;
        let status = answer[0].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("agent_id"),
            "{}",
            status.message()
        );
        batch.agent_id = "a1".into();
        batch.host.clear();
        let answer = send(&c, None, vec![batch]).await;
        assert_eq!(
            answer[0].as_ref().unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[tokio::test]
    async fn a_stored_batch_is_evaluated_by_the_rules_before_its_ack() {
        let c = TestCollector::with(Options {
            rules: Some(
                "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\nsummary = \"hot\"\n",
            ),
            ..Options::default()
        })
        .await;
        let acks = send(
            &c,
            None,
            vec![wire_batch("a1", "web-1", 1, &[("temp", now_ms(), 70.0)])],
        )
        .await;
        assert_eq!(acks[0].as_ref().unwrap().acked_through, 1);
        // No waiting: the ack comes after the evaluation.
        let firing: Vec<String> = c
            .alerter
            .active(now_ms())
            .into_iter()
            .filter(|(a, _)| a.state.level.is_some())
            .map(|(a, _)| a.rule)
            .collect();
        assert_eq!(firing, vec!["hot".to_owned()]);
    }
}
