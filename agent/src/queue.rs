//! The seam between the sampling loop and the transport: a queue of batches
//! not yet acknowledged by the collector.
//!
//! Every batch is pushed before it is sent and stays until the collector
//! acks its seq, so a batch in flight when the connection drops is resent
//! after reconnect. The implementation is the on-disk [`crate::spool::Spool`].

use std::sync::Arc;

use nightjar_proto::v1 as pb;
use tokio::sync::watch;

/// What a push did to the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Batches dropped to make room (or this batch, if it could not be stored).
    pub dropped_batches: u64,
    /// Encoded bytes of those batches.
    pub dropped_bytes: u64,
    /// This batch itself could not be written (the disk is full or
    /// failing); it is among the dropped.
    pub unspooled: bool,
}

/// Unacked batches, oldest first.
pub trait BatchQueue: Send + Sync + 'static {
    /// Appends a batch (its seq above every queued one), dropping the oldest
    /// batches if the queue is full. Never blocks on the network.
    fn push(&self, batch: pb::Batch) -> PushOutcome;
    /// The oldest queued batch with seq > `after`.
    fn next_after(&self, after: u64) -> Option<Arc<pb::Batch>>;
    /// Removes every batch with seq <= `through`; returns how many.
    fn ack(&self, through: u64) -> usize;
    /// Number of queued batches and the bytes they occupy.
    fn size(&self) -> (usize, u64);
    /// Changes whenever a batch is pushed (the value is its seq).
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Makes everything pushed and acked so far durable (at shutdown).
    fn flush(&self) {}
}
