//! The gRPC `IngestService`: one task per agent stream, acking each batch
//! only after storage has made it durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::alert::service::Alerter;
use crate::auth::{AuthLog, Caller, Refusal, Role};
use crate::convert::batch_from_wire;
use crate::limits::Limits;
use crate::storage::{AppendOutcome, Storage};
use crate::telemetry::{IngestCounters, SamplesRejected};
use crate::validate::Rejection;

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
    } = api;
    let mut announced = false;
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
        if wire.agent_id.is_empty() || wire.host.is_empty() {
            let reason = "batch: fields agent_id and host must not be empty";
            tracing::warn!(%peer, seq = wire.seq, reason, "refusing stream");
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
        }
        // Fast path for replays after a reconnect: already stored, so neither
        // validated nor counted again. (`append` re-checks under the agent's lock.)
        let high_water = storage.high_water(&wire.agent_id);
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
        let (mut batch, mut rejections) = batch_from_wire(wire, &limits, now_ms());
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
        let alerter = alerter.clone();
        let appended = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let outcome = store.append(&batch, now)?;
            // Rules see a batch once it is durable, before its ack: the
            // crossing is judged when the sample arrives.
            if let (Some(alerter), AppendOutcome::Stored { .. }) = (&alerter, outcome) {
                alerter.observe(&batch, now);
            }
            Ok::<_, crate::storage::StorageError>(outcome)
        })
        .await;
        let outcome = match appended {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                tracing::error!(%peer, %error, "storing batch failed; closing stream so the agent resends");
                let _ = acks.send(Err(Status::unavailable(error.to_string()))).await;
                return;
            }
            Err(error) => {
                tracing::error!(%peer, %error, "storage task failed");
                let _ = acks
                    .send(Err(Status::internal("storage task failed")))
                    .await;
                return;
            }
        };
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
            .emit(&counters);
        }
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
