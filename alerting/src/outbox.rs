//! The notification outbox in memory: the entries the store holds, which
//! of them are being delivered, what to send next, and the bound.
//!
//! The alerter changes it only together with a durable store write (under
//! its lock), so it always equals the stored outbox; the dispatcher plans
//! from it and never reads the store.
//!
//! Full policy: at most `capacity` entries. When a write would add more,
//! the oldest entries that are not being delivered are dropped to make
//! room, in the same write, each with a `dropped` history line and counted
//! (`collector_notifications_total{outcome="outbox_full"}`). Oldest first,
//! as Prometheus' notifier does: the outbox only fills while a hook is
//! down for long, and then the newest news of an alert (its repeat, its
//! resolve) matters more than what it said hours ago. Without a bound a
//! dead hook would grow the store and every start's read of it without
//! limit.

use std::collections::{BTreeMap, HashSet};

use crate::store::{Changes, OutboxEntry};

/// Default of `[alerting] outbox_capacity`.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The outbox.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    entries: BTreeMap<u64, OutboxEntry>,
    /// Entries handed to the dispatcher and not yet finished.
    in_flight: HashSet<u64>,
}

impl Outbox {
    /// The outbox holding `entries` (as read from the store at start).
    /// Entries beyond `capacity` stay until delivered; new ones make room.
    pub fn new(capacity: usize, entries: Vec<OutboxEntry>) -> Outbox {
        Outbox {
            capacity: capacity.max(1),
            entries: entries.into_iter().map(|e| (e.seq, e)).collect(),
            in_flight: HashSet::new(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether entry `seq` is still held.
    pub fn contains(&self, seq: u64) -> bool {
        self.entries.contains_key(&seq)
    }

    /// Applies the full policy to `changes` before they are written:
    /// returns the entries to drop so that the outbox stays within its
    /// capacity once `changes` are applied, oldest first. Held entries not
    /// in flight go first; if those are not enough, the oldest of the new
    /// entries themselves. The caller removes them (`changes.delivered`
    /// for held ones, out of `changes.outbox` for new ones).
    pub fn overflow(&self, changes: &Changes) -> Vec<OutboxEntry> {
        let added = changes
            .outbox
            .iter()
            .filter(|e| !self.entries.contains_key(&e.seq))
            .count();
        if added == 0 {
            // Only new entries make room; updates and deliveries never drop.
            return Vec::new();
        }
        let leaving: HashSet<u64> = changes
            .delivered
            .iter()
            .copied()
            .filter(|s| self.entries.contains_key(s))
            .collect();
        let after = self.entries.len() - leaving.len() + added;
        let mut excess = after.saturating_sub(self.capacity);
        if excess == 0 {
            return Vec::new();
        }
        let updated: HashSet<u64> = changes.outbox.iter().map(|e| e.seq).collect();
        let mut dropped = Vec::new();
        for entry in self.entries.values() {
            if excess == 0 {
                break;
            }
            if leaving.contains(&entry.seq)
                || updated.contains(&entry.seq)
                || self.in_flight.contains(&entry.seq)
            {
                continue;
            }
            dropped.push(entry.clone());
            excess -= 1;
        }
        let mut new: Vec<&OutboxEntry> = changes
            .outbox
            .iter()
            .filter(|e| !self.entries.contains_key(&e.seq))
            .collect();
        new.sort_by_key(|e| e.seq);
        dropped.extend(new.into_iter().take(excess).cloned());
        dropped
    }

    /// Applies the outbox part of `changes`, which the store has just
    /// made durable.
    pub fn apply(&mut self, changes: &Changes) {
        for entry in &changes.outbox {
            self.entries.insert(entry.seq, entry.clone());
        }
        for seq in &changes.delivered {
            self.entries.remove(seq);
        }
    }

    /// Chooses what to send now and marks it in flight; lowers `next_wake`
    /// to the time the next entry becomes due.
    pub fn take_due(&mut self, now: i64, next_wake: &mut i64) -> Vec<Vec<OutboxEntry>> {
        let messages = plan(self.entries.values(), &self.in_flight, now, next_wake);
        for message in &messages {
            self.in_flight.extend(message.iter().map(|e| e.seq));
        }
        messages
    }

    /// Entries whose delivery ended (whatever its outcome): they may be
    /// planned again if still held.
    pub fn finished(&mut self, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            self.in_flight.remove(&seq);
        }
    }
}

/// Chooses what to send now from the outbox (in queue order), skipping
/// entries in flight (`busy`), and lowers `next_wake` to the next entry
/// that becomes due.
///
/// Order: per (hook, alert) one entry at a time, oldest first, so a hook
/// never hears "resolved" before "firing". Grouping: entries of one
/// (hook, rule, event) go together; a fresh entry still inside its group
/// wait joins a group whose first entry is due.
fn plan<'a>(
    outbox: impl Iterator<Item = &'a OutboxEntry> + Clone,
    busy: &HashSet<u64>,
    now: i64,
    next_wake: &mut i64,
) -> Vec<Vec<OutboxEntry>> {
    let mut blocked: HashSet<(String, String)> = outbox
        .clone()
        .filter(|e| busy.contains(&e.seq))
        .map(|e| (e.hook.clone(), e.notification.alert_id.clone()))
        .collect();
    let fresh_due: HashSet<(String, String, String)> = outbox
        .clone()
        .filter(|e| !busy.contains(&e.seq) && e.attempts == 0 && e.next_attempt_ms <= now)
        .map(OutboxEntry::group_key)
        .collect();
    let mut groups: BTreeMap<(String, String, String), Vec<OutboxEntry>> = BTreeMap::new();
    for entry in outbox {
        if busy.contains(&entry.seq) {
            continue;
        }
        // Whether sent now or not yet due, this entry holds the line for
        // later entries of its (hook, alert).
        if !blocked.insert((entry.hook.clone(), entry.notification.order_key())) {
            continue;
        }
        let key = entry.group_key();
        if entry.next_attempt_ms <= now || (entry.attempts == 0 && fresh_due.contains(&key)) {
            groups.entry(key).or_default().push(entry.clone());
        } else {
            *next_wake = (*next_wake).min(entry.next_attempt_ms);
        }
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotifyEvent;
    use crate::notify::tests_support::sample;
    use crate::state::Level;

    fn entry(seq: u64, alert: &str, event: NotifyEvent, next_attempt_ms: i64) -> OutboxEntry {
        let mut notification = sample(event, Some(Level::Warning));
        notification.alert_id = alert.into();
        OutboxEntry {
            seq,
            hook: "web".into(),
            notification,
            group_wait_ms: 0,
            created_ms: 0,
            attempts: 0,
            next_attempt_ms,
            last_error: String::new(),
        }
    }

    fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn changes_folded_in_order_write_what_two_writes_would() {
        let mut kept = Changes {
            outbox: vec![entry(1, "a", NotifyEvent::Firing, 0)],
            deleted_alerts: vec!["x".into()],
            ..Changes::default()
        };
        let mut retry = entry(1, "a", NotifyEvent::Firing, 5_000);
        retry.attempts = 1;
        kept.then(Changes {
            outbox: vec![retry, entry(2, "b", NotifyEvent::Firing, 0)],
            ..Changes::default()
        });
        kept.then(Changes {
            delivered: vec![2],
            deleted_alerts: vec!["x".into(), "y".into()],
            ..Changes::default()
        });
        assert_eq!(seqs(&kept.outbox), vec![1], "2 was delivered after");
        assert_eq!(kept.outbox[0].attempts, 1, "the later update wins");
        assert_eq!(kept.delivered, vec![2]);
        assert_eq!(kept.deleted_alerts, vec!["x", "y"], "each delete once");
    }

    #[test]
    fn overflow_drops_the_oldest_held_entries_not_in_flight() {
        let mut outbox = Outbox::new(
            3,
            vec![
                entry(1, "a", NotifyEvent::Firing, 0),
                entry(2, "b", NotifyEvent::Firing, 0),
                entry(3, "c", NotifyEvent::Firing, 0),
            ],
        );
        let mut wake = i64::MAX;
        // Entries 1, 2, 3 are due; all go in flight. Finishing 2 and 3
        // leaves 1 in flight.
        assert_eq!(outbox.take_due(10, &mut wake).len(), 1, "one group");
        outbox.finished([2, 3]);
        let changes = Changes {
            outbox: vec![
                entry(4, "d", NotifyEvent::Firing, 0),
                entry(5, "e", NotifyEvent::Firing, 0),
            ],
            ..Changes::default()
        };
        assert_eq!(
            seqs(&outbox.overflow(&changes)),
            vec![2, 3],
            "1 is in flight"
        );
        let delivered = Changes {
            outbox: vec![entry(4, "d", NotifyEvent::Firing, 0)],
            delivered: vec![1],
            ..Changes::default()
        };
        assert!(
            outbox.overflow(&delivered).is_empty(),
            "a delivery makes room"
        );
        // Updates of held entries take no room.
        let retry = Changes {
            outbox: vec![entry(2, "b", NotifyEvent::Firing, 99)],
            ..Changes::default()
        };
        assert!(outbox.overflow(&retry).is_empty());
    }

    #[test]
    fn entries_over_a_lowered_bound_stay_until_new_ones_need_room() {
        // Read at start after `outbox_capacity` was lowered to 1.
        let outbox = Outbox::new(
            1,
            vec![
                entry(1, "a", NotifyEvent::Firing, 0),
                entry(2, "b", NotifyEvent::Firing, 0),
            ],
        );
        let retry = Changes {
            outbox: vec![entry(2, "b", NotifyEvent::Firing, 99)],
            ..Changes::default()
        };
        assert!(
            outbox.overflow(&retry).is_empty(),
            "an update drops nothing"
        );
        let new = Changes {
            outbox: vec![entry(3, "c", NotifyEvent::Firing, 0)],
            ..Changes::default()
        };
        assert_eq!(
            seqs(&outbox.overflow(&new)),
            vec![1, 2],
            "a new one makes room"
        );
    }

    #[test]
    fn overflow_falls_back_to_the_oldest_new_entries() {
        let outbox = Outbox::new(2, Vec::new());
        let changes = Changes {
            outbox: (1..=5)
                .map(|s| entry(s, "a", NotifyEvent::Firing, 0))
                .collect(),
            ..Changes::default()
        };
        assert_eq!(seqs(&outbox.overflow(&changes)), vec![1, 2, 3]);
    }

    #[test]
    fn one_entry_per_hook_and_alert_at_a_time_in_queue_order() {
        let mut outbox = Outbox::new(
            100,
            vec![
                entry(1, "a", NotifyEvent::Firing, 0),
                entry(2, "a", NotifyEvent::Resolved, 0),
                OutboxEntry {
                    attempts: 1,
                    ..entry(3, "b", NotifyEvent::Firing, 500)
                },
            ],
        );
        let mut wake = i64::MAX;
        let due = outbox.take_due(10, &mut wake);
        let sent: Vec<Vec<u64>> = due.iter().map(|m| seqs(m)).collect();
        assert_eq!(
            sent,
            vec![vec![1]],
            "a's resolve waits for its firing; b's retry is not due"
        );
        assert_eq!(wake, 500, "wakes when b becomes due");
        let mut wake = i64::MAX;
        assert!(
            outbox.take_due(10, &mut wake).is_empty(),
            "1 is in flight: 2 waits"
        );
        let mut done = Changes::default();
        done.delivered.push(1);
        outbox.apply(&done);
        outbox.finished([1]);
        let mut wake = i64::MAX;
        let sent: Vec<Vec<u64>> = outbox
            .take_due(600, &mut wake)
            .iter()
            .map(|m| seqs(m))
            .collect();
        assert_eq!(
            sent,
            vec![vec![3], vec![2]],
            "groups in (hook, rule, event) order"
        );
    }
}
