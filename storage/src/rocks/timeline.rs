//! The availability timelines in the alert database's `timeline` column
//! family (`docs/format/alerts.md`): each service's changes, the
//! collector's judging spans and operators' adjustments, every write
//! synced.
//!
//! Keys (times are i64 with the sign bit flipped, big-endian, so byte order
//! is time order):
//! - `s` ++ service length (u16 BE) ++ service ++ time → JSON `Change`
//!   (`lost`, `unknown`, and the ids of the alerts behind, if any)
//! - `j` ++ span start → JSON span end (ms)
//! - `a` ++ service length ++ service ++ time of the adjustment → JSON `Adjustment`

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use nightjar_alerting::availability::{Change, TimelineStore};
use nightjar_alerting::store::StoreError;
use nightjar_model::availability::timeline::Adjustment;
#[cfg(test)]
use nightjar_model::availability::timeline::Judged;

use super::alerts::{CF_TIMELINE, RocksAlertStore};

fn time_bytes(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_of(bytes: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

fn service_prefix(kind: u8, service: &str) -> Vec<u8> {
    let len = u16::try_from(service.len()).unwrap_or(u16::MAX);
    let mut key = vec![kind];
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(service.as_bytes());
    key
}

fn service_key(kind: u8, service: &str, ms: i64) -> Vec<u8> {
    let mut key = service_prefix(kind, service);
    key.extend_from_slice(&time_bytes(ms));
    key
}

impl RocksAlertStore {
    fn synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let written = self.db.write_opt(batch, &opts);
        self.write_failed
            .store(written.is_err(), std::sync::atomic::Ordering::Relaxed);
        written.map_err(|e| self.error("writing the timeline", e))
    }

    /// Values of the keys from `start` while they begin with `prefix`.
    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        start: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StoreError> {
        let cf = self.cf(CF_TIMELINE);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(start, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| self.error("reading the timeline", e))?;
            if !key.starts_with(prefix) {
                break;
            }
            match serde_json::from_slice(&value) {
                Ok(v) => out.push((key.to_vec(), v)),
                Err(error) => {
                    tracing::warn!(key = ?key, %error, "skipping an unreadable timeline record")
                }
            }
        }
        Ok(out)
    }
}

impl TimelineStore for RocksAlertStore {
    fn record(&self, changes: &[(String, Change)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (service, change) in changes {
            let value = serde_json::to_vec(change).expect("changes serialize");
            batch.put_cf(
                self.cf(CF_TIMELINE),
                service_key(b's', service, change.at_ms),
                value,
            );
        }
        self.synced(batch)
    }

    fn judged_through(&self, span_start_ms: i64, through_ms: i64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut key = vec![b'j'];
        key.extend_from_slice(&time_bytes(span_start_ms));
        batch.put_cf(self.cf(CF_TIMELINE), key, through_ms.to_string());
        self.synced(batch)
    }

    fn timeline(&self, service: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Change>, StoreError> {
        let prefix = service_prefix(b's', service);
        let from = service_key(b's', service, from_ms);
        let cf = self.cf(CF_TIMELINE);
        // The key holds the time; a record read back takes it from there.
        let change = |key: &[u8], value: &[u8]| -> Option<Change> {
            let at_ms = time_of(key.get(prefix.len()..)?)?;
            let c: Change = serde_json::from_slice(value).ok()?;
            Some(Change { at_ms, ..c })
        };
        let mut out = Vec::new();
        // The state the window starts in: the last change before it.
        let mut back = self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Reverse));
        if let Some(item) = back.next() {
            let (key, value) = item.map_err(|e| self.error("reading the timeline", e))?;
            let before = if *key >= *from.as_slice() {
                back.next()
                    .transpose()
                    .map_err(|e| self.error("reading the timeline", e))?
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
            } else {
                Some((key.to_vec(), value.to_vec()))
            };
            if let Some((key, value)) = before
                && key.starts_with(&prefix)
                && let Some(c) = change(&key, &value)
            {
                out.push(c);
            }
        }
        for (key, c) in self.scan::<Change>(&prefix, &from)? {
            match time_of(&key[prefix.len()..]) {
                Some(at_ms) if at_ms < to_ms => out.push(Change { at_ms, ..c }),
                _ => break,
            }
        }
        Ok(out)
    }

    fn judging(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut out = Vec::new();
        for (key, end) in self.scan::<i64>(b"j", b"j")? {
            let Some(start) = time_of(&key[1..]) else {
                continue;
            };
            if start < to_ms && end > from_ms {
                out.push((start, end));
            }
        }
        Ok(out)
    }

    fn adjust(&self, service: &str, adjustment: &Adjustment) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let value = serde_json::to_vec(adjustment).expect("adjustment serializes");
        batch.put_cf(
            self.cf(CF_TIMELINE),
            service_key(b'a', service, adjustment.at_ms),
            value,
        );
        self.synced(batch)
    }

    fn adjustments(&self, service: &str) -> Result<Vec<Adjustment>, StoreError> {
        let prefix = service_prefix(b'a', service);
        Ok(self
            .scan::<Adjustment>(&prefix, &prefix)?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(lost: f64) -> Judged {
        Judged {
            lost,
            unknown: false,
        }
    }

    fn c(at_ms: i64, lost: f64) -> Change {
        let alerts = if lost > 0.0 {
            vec![format!("alert-{at_ms}")]
        } else {
            vec![]
        };
        Change {
            at_ms,
            judged: j(lost),
            alerts,
        }
    }

    fn times(v: Vec<Change>) -> Vec<(i64, Judged)> {
        v.into_iter().map(|c| (c.at_ms, c.judged)).collect()
    }

    #[test]
    fn timelines_spans_and_adjustments_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksAlertStore::open(dir.path()).unwrap();
            s.record(&[
                ("shop".into(), c(1_000, 0.0)),
                ("shop-eu".into(), c(1_500, 1.0)),
            ])
            .unwrap();
            s.record(&[
                ("shop".into(), c(2_000, 0.5)),
                ("shop".into(), c(3_000, 0.0)),
            ])
            .unwrap();
            s.judged_through(500, 2_500).unwrap();
            s.judged_through(500, 3_500).unwrap();
            s.judged_through(10_000, 12_000).unwrap();
            s.adjust(
                "shop",
                &Adjustment {
                    outage_start_ms: 2_000,
                    share: 0.1,
                    impact: 1.0,
                    by: "ada".into(),
                    why: "one region".into(),
                    at_ms: 5_000,
                },
            )
            .unwrap();
        }
        let s = RocksAlertStore::open(dir.path()).unwrap();
        // The window 2500..4000 starts in the state recorded at 2000.
        assert_eq!(
            times(s.timeline("shop", 2_500, 4_000).unwrap()),
            [(2_000, j(0.5)), (3_000, j(0.0))]
        );
        assert_eq!(
            times(s.timeline("shop", 0, 2_000).unwrap()),
            [(1_000, j(0.0))]
        );
        assert_eq!(
            s.timeline("shop", 2_000, 2_001).unwrap()[1].alerts,
            ["alert-2000"],
            "the alerts behind come back"
        );
        assert_eq!(
            times(s.timeline("shop", 2_000, 2_001).unwrap()),
            [(1_000, j(0.0)), (2_000, j(0.5))]
        );
        assert_eq!(
            times(s.timeline("shop-eu", 0, 10_000).unwrap()),
            [(1_500, j(1.0))],
            "a prefix of another name is another service"
        );
        assert!(s.timeline("nope", 0, 10_000).unwrap().is_empty());
        assert_eq!(
            s.judging(0, 20_000).unwrap(),
            [(500, 3_500), (10_000, 12_000)]
        );
        assert_eq!(s.judging(4_000, 9_000).unwrap(), []);
        assert_eq!(s.adjustments("shop").unwrap()[0].why, "one region");
        assert!(s.adjustments("shop-eu").unwrap().is_empty());
    }
}
