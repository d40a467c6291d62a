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
use tonic::transport::Endpoint;

use crate::backoff::Backoff;
use crate::queue::BatchQueue;
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

/// Runs sessions until `shutdown` turns true.
pub async fn run(
    endpoint: Endpoint,
    token: BearerToken,
    queue: Arc<dyn BatchQueue>,
    counters: Arc<AgentCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = endpoint.uri().to_string();
    let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX);
    loop {
        let mut acked_any = false;
        let result = tokio::select! {
            r = session(&endpoint, &token, &*queue, &counters, &mut acked_any) => r,
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
    endpoint: &Endpoint,
    token: &BearerToken,
    queue: &dyn BatchQueue,
    counters: &AgentCounters,
    acked_any: &mut bool,
) -> Result<(), SessionError> {
    let channel = endpoint.connect().await.map_err(SessionError::Connect)?;
    let mut client = IngestServiceClient::with_interceptor(channel, token.clone());
    let (tx, rx) = mpsc::channel::<pb::Batch>(SEND_BUFFER);
    let mut acks = client
        .stream(ReceiverStream::new(rx))
        .await
        .map_err(SessionError::Open)?
        .into_inner();
    tracing::info!(collector = %endpoint.uri(), "connected to collector");

    let mut pushed = queue.subscribe();
    let mut last_sent = 0u64;
    loop {
        // Mark pushes seen before looking, so a push after the look wakes us.
        pushed.borrow_and_update();
        let next = queue.next_after(last_sent);
        tokio::select! {
            ack = acks.message() => {
                let ack = ack.map_err(SessionError::Stream)?.ok_or(SessionError::Closed)?;
                let removed = queue.ack(ack.acked_through);
                counters.collector_high_water.fetch_max(ack.acked_through, Ordering::Relaxed);
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
                permit.send((*batch).clone());
                counters.batches_sent.fetch_add(1, Ordering::Relaxed);
            }
            _ = pushed.changed(), if next.is_none() => {}
        }
    }
}
