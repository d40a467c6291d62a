//! Streams queued batches to the collector and applies its acks.
//!
//! One session = one gRPC `IngestService.Stream`. A session starts by
//! sending every queued (unacked) batch, oldest first, then each new batch
//! as it is queued. Acks are cumulative: an ack for seq N removes every
//! queued batch up to N. When the session fails (collector gone, network
//! error, keepalive timeout) the transport waits with exponential backoff
//! and jitter, reconnects, and starts over from the oldest unacked batch;
//! the collector recognises batches it already stored by (agent id, seq).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nightjar_common::token::BearerToken;
use nightjar_proto::v1 as pb;
use pb::ingest_service_client::IngestServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::backoff::Backoff;
use crate::queue::BatchQueue;
use crate::state::Identity;
use crate::telemetry::{AgentCounters, SamplesRejected};

/// Batches written to the stream but not yet taken by the HTTP/2 layer.
const SEND_BUFFER: usize = 16;
/// First reconnect delay.
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error("stream refused: {0}")]
    Open(tonic::Status),
    #[error("stream failed: {0}")]
    Stream(tonic::Status),
    #[error("collector closed the stream")]
    Closed,
    #[error(
        "the collector acked seq {acked_through}, above any this agent sent ({highest}); took a new agent id"
    )]
    ForeignAck { acked_through: u64, highest: u64 },
    #[error("cannot take a new agent id: {0}")]
    Identity(#[source] crate::state::StateError),
}

/// An error and its sources, joined by ": " (tonic's transport error says
/// only "transport error"; the cause is in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// Builds the endpoint with timeouts and HTTP/2 keepalive, so a collector
/// that vanishes without closing the connection is noticed.
pub fn endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// A way to open a connection to the collector for one session.
pub type Connect =
    Box<dyn Fn() -> BoxFuture<Result<Channel, tonic::transport::Error>> + Send + Sync>;

/// A boxed future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Runs sessions to the collector at `endpoint` until `shutdown` turns true.
pub async fn run(
    endpoint: Endpoint,
    token: BearerToken,
    identity: Arc<Identity>,
    queue: Arc<dyn BatchQueue>,
    counters: Arc<AgentCounters>,
    shutdown: watch::Receiver<bool>,
) {
    let url = endpoint.uri().to_string();
    let connect: Connect = Box::new(move || {
        let endpoint = endpoint.clone();
        Box::pin(async move { endpoint.connect().await })
    });
    run_with(&url, connect, token, identity, queue, counters, shutdown).await;
}

/// Runs sessions over connections from `connect` (`url` names the
/// collector in logs) until `shutdown` turns true.
pub async fn run_with(
    url: &str,
    connect: Connect,
    token: BearerToken,
    identity: Arc<Identity>,
    queue: Arc<dyn BatchQueue>,
    counters: Arc<AgentCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
    loop {
        let mut acked_any = false;
        let result = tokio::select! {
            r = session(url, &connect, &token, &identity, &*queue, &counters, &mut acked_any) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if acked_any {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        if let Err(error) = result {
            let error = error_chain(&error);
            tracing::warn!(collector = %url, %error, retry_in_ms = delay.as_millis() as u64, "collector unreachable; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        counters.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

async fn session(
    url: &str,
    connect: &Connect,
    token: &BearerToken,
    identity: &Identity,
    queue: &dyn BatchQueue,
    counters: &AgentCounters,
    acked_any: &mut bool,
) -> Result<(), SessionError> {
    let channel = connect().await.map_err(SessionError::Connect)?;
    let mut client = IngestServiceClient::with_interceptor(channel, token.clone());
    let (tx, rx) = mpsc::channel::<pb::Batch>(SEND_BUFFER);
    let mut acks = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(SessionError::Open)?
        .into_inner();
    tracing::info!(collector = %url, "connected to collector");

    let mut pushed = queue.subscribe();
    let mut last_sent = 0u64;
    loop {
        // Mark pushes seen before looking, so a push after the look wakes us.
        pushed.borrow_and_update();
        let next = queue.next_after(last_sent);
        tokio::select! {
            ack = acks.message() => {
                let ack = ack.map_err(SessionError::Stream)?.ok_or(SessionError::Closed)?;
                // The spool's newest seq: no ack of ours can name a higher one.
                let highest = *pushed.borrow();
                if ack.acked_through > highest {
                    // Someone else's mark under our id: trusting it would
                    // delete batches the collector did not store. Under a
                    // new id the mark starts afresh and the spool is sent
                    // again from its oldest batch.
                    counters.foreign_acks.fetch_add(1, Ordering::Relaxed);
                    identity
                        .renew(&format!(
                            "the collector acked seq {}, above any this agent sent ({highest}): \
                             another agent (a cloned state dir?) or a client sends under this id",
                            ack.acked_through
                        ))
                        .map_err(SessionError::Identity)?;
                    return Err(SessionError::ForeignAck { acked_through: ack.acked_through, highest });
                }
                let removed = queue.ack(ack.acked_through);
                counters.batches_acked.fetch_add(removed as u64, Ordering::Relaxed);
                *acked_any = true;
                tracing::debug!(acked_through = ack.acked_through, removed, "ack received");
                if ack.rejected_samples > 0 {
                    SamplesRejected { count: u64::from(ack.rejected_samples), first_reason: &ack.first_rejection }
                        .emit(counters);
                }
            }
            permit = tx.reserve(), if next.is_some() => {
                let permit = permit.map_err(|_| SessionError::Closed)?;
                let batch = next.expect("guarded by is_some");
                last_sent = batch.seq;
                let mut batch = (*batch).clone();
                // Spooled under an earlier id perhaps: sent under today's.
                batch.agent_id = identity.current();
                permit.send(batch);
                counters.batches_sent.fetch_add(1, Ordering::Relaxed);
            }
            _ = pushed.changed(), if next.is_none() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use nightjar_proto::v1::ingest_service_server::{IngestService, IngestServiceServer};
    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::spool::{FsyncPolicy, Spool};

    /// The collector's side of the ingest stream, as the agent relies on
    /// it: acks each batch cumulatively; `fail_after` ends the first
    /// stream with UNAVAILABLE after that many batches (as a collector
    /// whose disk failed does), later streams go on.
    #[derive(Clone, Default)]
    struct Collector {
        received: Arc<Mutex<Vec<u64>>>,
        /// The agent id of each received batch.
        received_ids: Arc<Mutex<Vec<String>>>,
        fail_after: Arc<Mutex<Option<usize>>>,
        /// Replay marks by agent id, as the collector keeps them: a batch
        /// at or below its id's mark is acked with the mark, not stored.
        marks: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    }

    #[tonic::async_trait]
    impl IngestService for Collector {
        type StreamStream = ReceiverStream<Result<pb::Ack, Status>>;

        async fn stream(
            &self,
            request: Request<Streaming<pb::Batch>>,
        ) -> Result<Response<Self::StreamStream>, Status> {
            let mut inbound = request.into_inner();
            let (tx, rx) = mpsc::channel(8);
            let me = self.clone();
            tokio::spawn(async move {
                let mut on_this_stream = 0;
                let mut high = 0;
                while let Ok(Some(batch)) = inbound.message().await {
                    let fail = me
                        .fail_after
                        .lock()
                        .unwrap()
                        .filter(|n| on_this_stream == *n);
                    if fail.is_some() {
                        *me.fail_after.lock().unwrap() = None;
                        let _ = tx.send(Err(Status::unavailable("disk failed"))).await;
                        return;
                    }
                    on_this_stream += 1;
                    let mark = me.marks.lock().unwrap().get(&batch.agent_id).copied();
                    if let Some(mark) = mark.filter(|m| batch.seq <= *m) {
                        let ack = pb::Ack {
                            acked_through: mark,
                            ..pb::Ack::default()
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    me.received.lock().unwrap().push(batch.seq);
                    me.received_ids.lock().unwrap().push(batch.agent_id.clone());
                    high = batch.seq.max(high);
                    let ack = pb::Ack {
                        acked_through: high,
                        ..pb::Ack::default()
                    };
                    if tx.send(Ok(ack)).await.is_err() {
                        return;
                    }
                }
            });
            Ok(Response::new(ReceiverStream::new(rx)))
        }
    }

    fn batch(seq: u64) -> pb::Batch {
        pb::Batch {
            agent_id: "agent".into(),
            host: "h".into(),
            seq,
            samples: Vec::new(),
            interval_ms: 1000,
        }
    }

    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the transport against `collector` over in-memory pipes (a new
    /// one per session) with a fresh spool holding seqs 1..=`n`.
    async fn start(
        collector: &Collector,
        n: u64,
    ) -> (
        Arc<Spool>,
        Arc<AgentCounters>,
        watch::Sender<bool>,
        tempfile::TempDir,
    ) {
        let (spool, counters, stop, dir, _) = start_as(collector, n).await;
        (spool, counters, stop, dir)
    }

    /// [`start`], also returning the agent's identity.
    async fn start_as(
        collector: &Collector,
        n: u64,
    ) -> (
        Arc<Spool>,
        Arc<AgentCounters>,
        watch::Sender<bool>,
        tempfile::TempDir,
        Arc<Identity>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(AgentCounters::default());
        let spool = Arc::new(
            Spool::open(
                dir.path(),
                1 << 20,
                FsyncPolicy::EveryBatch,
                counters.clone(),
            )
            .unwrap(),
        );
        for seq in 1..=n {
            spool.push(batch(seq));
        }
        let routes = tonic::service::Routes::new(IngestServiceServer::new(collector.clone()));
        let connect: Connect = Box::new(move || {
            let routes = routes.clone();
            Box::pin(async move { Ok(nightjar_common::in_process::channel(routes).await) })
        });
        let (stop, stopped) = watch::channel(false);
        let queue: Arc<dyn BatchQueue> = spool.clone();
        let state = crate::state::AgentState::open(&dir.path().join("state"), "m1 h").unwrap();
        let identity = state.identity();
        // Known to the collector before the agent connects.
        {
            let mut marks = collector.marks.lock().unwrap();
            if let Some(mark) = marks.remove("MINE") {
                marks.insert(identity.current(), mark);
            }
        }
        tokio::spawn(run_with(
            "in-process",
            connect,
            BearerToken::default(),
            identity.clone(),
            queue,
            counters.clone(),
            stopped,
        ));
        (spool, counters, stop, dir, identity)
    }

    #[tokio::test]
    async fn an_ack_above_anything_sent_is_ignored_and_the_agent_takes_a_new_id() {
        let collector = Collector::default();
        // Another sender under this agent's id left a huge mark.
        collector
            .marks
            .lock()
            .unwrap()
            .insert("MINE".into(), 1 << 62);
        let (spool, counters, stop, _dir, identity) = start_as(&collector, 3).await;
        eventually("an empty spool", || spool.size().0 == 0).await;
        assert_eq!(
            *collector.received.lock().unwrap(),
            vec![1, 2, 3],
            "every spooled batch is stored, none dropped by the foreign ack"
        );
        let ids = collector.received_ids.lock().unwrap().clone();
        assert!(
            ids.iter().all(|id| *id == identity.current()),
            "sent under the new id: {ids:?}"
        );
        assert!(
            !collector
                .marks
                .lock()
                .unwrap()
                .contains_key(&identity.current()),
            "the new id is not the one with the foreign mark"
        );
        assert_eq!(counters.foreign_acks.load(Ordering::Relaxed), 1);
        stop.send(true).unwrap();
    }

    #[tokio::test]
    async fn sends_every_spooled_batch_in_order_and_empties_the_spool_on_acks() {
        let collector = Collector::default();
        let (spool, counters, stop, _dir) = start(&collector, 5).await;
        eventually("an empty spool", || spool.size().0 == 0).await;
        assert_eq!(*collector.received.lock().unwrap(), vec![1, 2, 3, 4, 5]);
        spool.push(batch(6));
        eventually("the new batch", || {
            collector.received.lock().unwrap().len() == 6
        })
        .await;
        eventually("its ack", || spool.size().0 == 0).await;
        assert_eq!(counters.batches_acked.load(Ordering::Relaxed), 6);
        stop.send(true).unwrap();
    }

    #[tokio::test]
    async fn a_failed_stream_resends_from_the_oldest_unacked_batch() {
        let collector = Collector::default();
        *collector.fail_after.lock().unwrap() = Some(2);
        let (spool, counters, stop, _dir) = start(&collector, 4).await;
        eventually("an empty spool", || spool.size().0 == 0).await;
        // 1 and 2 were stored and acked before the failure; 3 (and
        // perhaps 4) were sent on the failed stream and not stored: the next
        // session starts again at 3. Acks precede the error on the stream,
        // so 1 and 2 are not sent twice.
        assert_eq!(*collector.received.lock().unwrap(), vec![1, 2, 3, 4]);
        assert!(counters.reconnects.load(Ordering::Relaxed) >= 1);
        stop.send(true).unwrap();
    }
}
