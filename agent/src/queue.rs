//! The queue of batches not yet acknowledged by the collector.
//!
//! Every batch is pushed here before it is sent and stays until the
//! collector acks its seq, so a batch in flight when the connection drops is
//! resent after reconnect. [`BatchQueue`] is the seam where the on-disk
//! spool replaces [`MemoryQueue`]: same operations, durable storage.
//!
//! Bounded: when a push would exceed `max_bytes`, the oldest batches are
//! dropped and counted (newest data is the most useful to an operator, and
//! sampling must never block on a slow collector).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use nightjar_proto::v1 as pb;
use prost::Message as _;
use tokio::sync::watch;

/// What a push did to the queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Oldest batches dropped to make room.
    pub dropped_batches: u64,
    /// Encoded bytes of those batches.
    pub dropped_bytes: u64,
}

/// Unacked batches, oldest first.
pub trait BatchQueue: Send + Sync + 'static {
    /// Appends a batch (its seq above every queued one), dropping the oldest
    /// batches if the queue is full.
    fn push(&self, batch: pb::Batch) -> PushOutcome;
    /// The oldest queued batch with seq > `after`.
    fn next_after(&self, after: u64) -> Option<Arc<pb::Batch>>;
    /// Removes every batch with seq <= `through`; returns how many.
    fn ack(&self, through: u64) -> usize;
    /// Number of queued batches and their encoded bytes.
    fn size(&self) -> (usize, u64);
    /// Changes whenever a batch is pushed (the value is its seq).
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// A [`BatchQueue`] in memory, bounded by encoded size.
pub struct MemoryQueue {
    max_bytes: u64,
    inner: Mutex<Inner>,
    pushed: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    batches: VecDeque<(Arc<pb::Batch>, u64)>,
    bytes: u64,
}

impl MemoryQueue {
    /// A queue holding at most `max_bytes` of encoded batches (the newest
    /// batch is always kept, even if alone it is larger).
    pub fn new(max_bytes: u64) -> MemoryQueue {
        MemoryQueue {
            max_bytes,
            inner: Mutex::default(),
            pushed: watch::channel(0).0,
        }
    }
}

impl BatchQueue for MemoryQueue {
    fn push(&self, batch: pb::Batch) -> PushOutcome {
        let size = batch.encoded_len() as u64;
        let seq = batch.seq;
        let mut outcome = PushOutcome::default();
        {
            let mut inner = self.inner.lock().expect("poisoned");
            while inner.bytes + size > self.max_bytes {
                let Some((_, old_size)) = inner.batches.pop_front() else {
                    break;
                };
                inner.bytes -= old_size;
                outcome.dropped_batches += 1;
                outcome.dropped_bytes += old_size;
            }
            inner.batches.push_back((Arc::new(batch), size));
            inner.bytes += size;
        }
        self.pushed.send_replace(seq);
        outcome
    }

    fn next_after(&self, after: u64) -> Option<Arc<pb::Batch>> {
        let inner = self.inner.lock().expect("poisoned");
        let idx = inner.batches.partition_point(|(b, _)| b.seq <= after);
        inner.batches.get(idx).map(|(b, _)| b.clone())
    }

    fn ack(&self, through: u64) -> usize {
        let mut inner = self.inner.lock().expect("poisoned");
        let mut removed = 0;
        while inner.batches.front().is_some_and(|(b, _)| b.seq <= through) {
            let (_, size) = inner.batches.pop_front().expect("checked");
            inner.bytes -= size;
            removed += 1;
        }
        removed
    }

    fn size(&self) -> (usize, u64) {
        let inner = self.inner.lock().expect("poisoned");
        (inner.batches.len(), inner.bytes)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.pushed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64) -> pb::Batch {
        pb::Batch {
            agent_id: "a".into(),
            host: "h".into(),
            seq,
            samples: vec![],
            interval_ms: 1_000,
        }
    }

    #[test]
    fn resends_from_oldest_unacked_and_acks_cumulatively() {
        let q = MemoryQueue::new(1 << 20);
        for seq in 1..=5 {
            q.push(batch(seq));
        }
        assert_eq!(q.next_after(0).unwrap().seq, 1);
        assert_eq!(q.next_after(3).unwrap().seq, 4);
        assert!(q.next_after(5).is_none());
        assert_eq!(q.ack(3), 3);
        assert_eq!(q.size().0, 2);
        // After a reconnect the sender starts over from 0: the oldest unacked.
        assert_eq!(q.next_after(0).unwrap().seq, 4);
        assert_eq!(q.ack(2), 0);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let one = batch(1).encoded_len() as u64;
        let q = MemoryQueue::new(one * 3);
        for seq in 1..=3 {
            assert_eq!(q.push(batch(seq)), PushOutcome::default());
        }
        let out = q.push(batch(4));
        assert_eq!(out.dropped_batches, 1);
        assert_eq!(out.dropped_bytes, one);
        assert_eq!(q.next_after(0).unwrap().seq, 2);
        assert_eq!(q.size(), (3, one * 3));
    }

    #[test]
    fn push_notifies_subscribers() {
        let q = MemoryQueue::new(1 << 20);
        let mut rx = q.subscribe();
        rx.borrow_and_update();
        q.push(batch(9));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 9);
    }
}
