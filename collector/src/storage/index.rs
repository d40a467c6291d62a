//! The in-memory series index: series key ↔ id, per-host counts, and label
//! postings (label name → value → sorted series ids, the metric name under
//! `__name__`), so a selector touches only the series its equality matchers
//! allow instead of every series. Pure; rebuilt from the `series` column
//! family at open.

use std::collections::{BTreeMap, HashMap};

use crate::model::SeriesKey;
use crate::selector::{MatchOp, Selector};

/// The postings key of the metric name.
const METRIC: &str = "__name__";

/// Series key ↔ id, with postings.
#[derive(Default)]
pub struct SeriesIndex {
    /// Looked up for every ingested sample: a fast (seeded) hasher, not SipHash.
    by_key: HashMap<SeriesKey, u64, foldhash::fast::RandomState>,
    by_id: BTreeMap<u64, SeriesKey>,
    per_host: HashMap<String, u64>,
    postings: HashMap<String, HashMap<String, Vec<u64>>>,
}

impl SeriesIndex {
    /// Adds a series. Ids must be inserted in increasing order (they are
    /// allocated that way), which keeps every postings list sorted.
    pub fn insert(&mut self, id: u64, key: SeriesKey) {
        if let Some(host) = key.labels.get("host") {
            *self.per_host.entry(host.to_owned()).or_default() += 1;
        }
        let mut post = |name: &str, value: &str| {
            let ids = self
                .postings
                .entry(name.to_owned())
                .or_default()
                .entry(value.to_owned())
                .or_default();
            if ids.last().is_none_or(|last| *last < id) {
                ids.push(id);
            } else if let Err(pos) = ids.binary_search(&id) {
                ids.insert(pos, id);
            }
        };
        post(METRIC, &key.metric);
        for (name, value) in key.labels.iter() {
            post(name, value);
        }
        self.by_key.insert(key.clone(), id);
        self.by_id.insert(id, key);
    }

    /// The id of a series.
    pub fn id(&self, key: &SeriesKey) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no series.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The highest id in use.
    pub fn max_id(&self) -> Option<u64> {
        self.by_id.keys().next_back().copied()
    }

    /// Series per `host` label value.
    pub fn per_host(&self) -> &HashMap<String, u64> {
        &self.per_host
    }

    /// The series the selector matches, sorted by key.
    pub fn matching(&self, selector: &Selector) -> Vec<(u64, SeriesKey)> {
        // Postings lists that every match must be in: the metric name and
        // each equality matcher with a non-empty value ("" also matches a
        // missing label, which has no postings).
        let mut lists: Vec<&[u64]> = Vec::new();
        let empty: &[u64] = &[];
        let mut require = |name: &str, value: &str| {
            let ids = self
                .postings
                .get(name)
                .and_then(|values| values.get(value))
                .map_or(empty, Vec::as_slice);
            lists.push(ids);
        };
        if let Some(metric) = &selector.metric {
            require(METRIC, metric);
        }
        for m in &selector.matchers {
            if let MatchOp::Equal(value) = &m.op
                && !value.is_empty()
            {
                require(&m.name, value);
            }
        }
        let candidates: Box<dyn Iterator<Item = u64>> = match lists.iter().min_by_key(|l| l.len()) {
            None => Box::new(self.by_id.keys().copied()),
            Some(shortest) => {
                let others: Vec<&[u64]> = lists
                    .iter()
                    .copied()
                    .filter(|l| !std::ptr::eq(*l, *shortest))
                    .collect();
                Box::new(
                    shortest
                        .iter()
                        .copied()
                        .filter(move |id| others.iter().all(|l| l.binary_search(id).is_ok())),
                )
            }
        };
        let mut found: Vec<(u64, SeriesKey)> = candidates
            .filter_map(|id| self.by_id.get(&id).map(|key| (id, key)))
            .filter(|(_, key)| selector.matches(key))
            .map(|(id, key)| (id, key.clone()))
            .collect();
        found.sort_by(|a, b| a.1.cmp(&b.1));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::Matcher;

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal(value.into()),
        }
    }

    #[test]
    fn postings_agree_with_a_full_scan() {
        let mut index = SeriesIndex::default();
        let mut all = Vec::new();
        let mut id = 1;
        for host in ["a", "b", "c"] {
            for metric in ["cpu", "mem", "disk"] {
                for dev in ["", "sda", "sdb"] {
                    let mut labels = vec![("host", host)];
                    if !dev.is_empty() {
                        labels.push(("device", dev));
                    }
                    let k = SeriesKey::of(metric, &labels);
                    index.insert(id, k.clone());
                    all.push((id, k));
                    id += 1;
                }
            }
        }
        let selectors = vec![
            Selector {
                metric: Some("cpu".into()),
                matchers: vec![],
            },
            Selector {
                metric: Some("cpu".into()),
                matchers: vec![eq("host", "b")],
            },
            Selector {
                metric: None,
                matchers: vec![eq("host", "c"), eq("device", "sda")],
            },
            Selector {
                metric: None,
                matchers: vec![eq("device", "")],
            },
            Selector {
                metric: Some("disk".into()),
                matchers: vec![Matcher::regex("device", "sd.", false).unwrap()],
            },
            Selector {
                metric: Some("nope".into()),
                matchers: vec![],
            },
            Selector {
                metric: None,
                matchers: vec![eq("host", "zzz")],
            },
            Selector {
                metric: None,
                matchers: vec![Matcher {
                    name: "host".into(),
                    op: MatchOp::NotEqual("a".into()),
                }],
            },
            Selector::default(),
        ];
        for sel in selectors {
            let mut expected: Vec<(u64, SeriesKey)> = all
                .iter()
                .filter(|(_, k)| sel.matches(k))
                .cloned()
                .collect();
            expected.sort_by(|a, b| a.1.cmp(&b.1));
            assert_eq!(index.matching(&sel), expected, "{sel:?}");
        }
        assert_eq!(index.per_host().get("a"), Some(&9));
        assert_eq!(index.len(), 27);
        assert_eq!(index.max_id(), Some(27));
    }
}
