//! Latest answers from cached label encodings. A dashboard's first query is
//! Latest over thousands of series, repeated on every refresh; building and
//! encoding each series' labels again every time was most of its cost. Each
//! series' `metric` and `labels` fields are encoded once and kept by series
//! id; an answer copies them beside the newest point.

use std::sync::{Arc, Mutex};

use nightjar_model::convert::labels_to_wire;
use nightjar_model::model::{Point, SharedKey};
use nightjar_proto::latest::{encode_latest_entry, encode_series_labels};
use nightjar_proto::v1 as pb;
use rustc_hash::FxHashMap;

/// Series id → (its key, its encoded `metric` and `labels` fields).
///
/// The key is kept to check the entry is for the same series: an id names
/// another series after a storage is replaced (restore), and holding the
/// key keeps its address from being reused, so `Arc::ptr_eq` is exact.
/// Entries are only made for series a Latest has answered.
#[derive(Default)]
pub struct EncodedLabels {
    by_id: Mutex<FxHashMap<u64, Entry>>,
}

/// A series' key and its encoded `metric` and `labels` fields.
type Entry = (SharedKey, Box<[u8]>);

impl EncodedLabels {
    /// The `LatestResponse` for `found` (id, key, newest point; in the
    /// order given), every label set encoded at most once per series.
    pub fn response(&self, found: &[(u64, SharedKey, Point)]) -> pb::LatestResponse {
        let mut by_id = self.by_id.lock().expect("poisoned");
        // About 100 bytes per host-metric series.
        let mut out = Vec::with_capacity(found.len() * 100);
        for (id, key, point) in found {
            let entry = by_id
                .entry(*id)
                .and_modify(|(cached, labels)| {
                    if !Arc::ptr_eq(cached, key) {
                        *cached = key.clone();
                        *labels = encode(key);
                    }
                })
                .or_insert_with(|| (key.clone(), encode(key)));
            let point = pb::Point {
                timestamp_ms: point.timestamp_ms,
                value: point.value,
            };
            encode_latest_entry(&mut out, &entry.1, &point);
        }
        pb::LatestResponse {
            series: Vec::new(),
            encoded_series: out.into(),
        }
    }
}

fn encode(key: &SharedKey) -> Box<[u8]> {
    encode_series_labels(&key.metric, &labels_to_wire(&key.labels)).into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use nightjar_model::convert::series_to_wire;
    use nightjar_model::model::SeriesKey;
    use prost::Message;

    use super::*;

    fn key(metric: &str, host: &str) -> SharedKey {
        Arc::new(SeriesKey::of(metric, &[("host", host)]))
    }

    #[test]
    fn answers_equal_the_generated_encoding_and_follow_a_replaced_series() {
        let cache = EncodedLabels::default();
        let a = key("cpu", "a");
        let b = key("mem", "b");
        let p = |t: i64, v: f64| Point {
            timestamp_ms: t,
            value: v,
        };
        let found = vec![
            (0, a.clone(), p(1_000, 1.5)),
            (7, b.clone(), p(2_000, -3.0)),
        ];
        let expected = |found: &[(u64, SharedKey, Point)]| pb::LatestResponse {
            series: found
                .iter()
                .map(|(_, k, pt)| series_to_wire(k, &[*pt]))
                .collect(),
            ..Default::default()
        };
        // Twice: the second answer comes from the cache.
        for _ in 0..2 {
            let answer = cache.response(&found).encode_to_vec();
            assert_eq!(answer, expected(&found).encode_to_vec());
            let decoded = pb::LatestResponse::decode(answer.as_slice()).unwrap();
            assert_eq!(decoded.series[1].metric, "mem");
            assert_eq!(decoded.series[1].points[0].value, -3.0);
        }
        // Id 7 now names another series (a replaced storage): its labels
        // are encoded anew, not served from the old entry.
        let c = key("disk", "c");
        let replaced = vec![(7, c.clone(), p(3_000, 9.0))];
        let answer = cache.response(&replaced).encode_to_vec();
        assert_eq!(answer, expected(&replaced).encode_to_vec());
        let decoded = pb::LatestResponse::decode(answer.as_slice()).unwrap();
        assert_eq!(decoded.series[0].metric, "disk");
    }
}
