//! The in-memory series index: series key ↔ id, per-host counts, and label
//! postings (label name → value → sorted series ids, the metric name under
//! `__name__`), so a selector touches only the series its equality matchers
//! allow instead of every series. Pure; rebuilt from the `series` column
//! family at open.

use std::collections::HashMap;

use nightjar_model::model::{SeriesKey, SharedKey};
use nightjar_model::selector::{MatchOp, Selector};

/// The postings key of the metric name.
const METRIC: &str = "__name__";

/// Series key ↔ id, with postings.
#[derive(Default)]
pub struct SeriesIndex {
    /// Looked up for every ingested sample: a fast (seeded) hasher, not SipHash.
    by_key: HashMap<SharedKey, u64, foldhash::fast::RandomState>,
    /// Indexed by id: ids are dense (allocated 1, 2, 3, …), so a selector
    /// resolving thousands of ids does direct lookups, not tree walks.
    by_id: Vec<Option<SharedKey>>,
    len: usize,
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
        let key = SharedKey::new(key);
        self.by_key.insert(key.clone(), id);
        let slot = usize::try_from(id).expect("series ids fit in memory");
        if self.by_id.len() <= slot {
            self.by_id.resize(slot + 1, None);
        }
        if self.by_id[slot].replace(key).is_none() {
            self.len += 1;
        }
    }

    /// The id of a series.
    pub fn id(&self, key: &SeriesKey) -> Option<u64> {
        self.by_key.get(key).copied()
    }

    /// The series of an id.
    pub fn key(&self, id: u64) -> Option<&SharedKey> {
        self.by_id.get(usize::try_from(id).ok()?)?.as_ref()
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no series.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The highest id in use.
    pub fn max_id(&self) -> Option<u64> {
        self.by_id
            .iter()
            .rposition(Option::is_some)
            .map(|i| i as u64)
    }

    /// Series per `host` label value.
    pub fn per_host(&self) -> &HashMap<String, u64> {
        &self.per_host
    }

    /// The series the selector matches, in id order.
    pub fn matching(&self, selector: &Selector) -> Vec<(u64, SharedKey)> {
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
            None => Box::new(
                self.by_id
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| k.is_some())
                    .map(|(id, _)| id as u64),
            ),
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
        // In id (creation) order: sorting thousands of keys by their strings
        // would cost more than the rest of a Latest; callers that show a
        // list sort it.
        candidates
            .filter_map(|id| Some((id, self.by_id.get(id as usize)?.as_ref()?)))
            .filter(|(_, key)| selector.matches(key))
            .map(|(id, key)| (id, key.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_model::selector::Matcher;

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
            expected.sort_by_key(|(id, _)| *id);
            let got: Vec<(u64, SeriesKey)> = index
                .matching(&sel)
                .into_iter()
                .map(|(id, k)| (id, SeriesKey::clone(&k)))
                .collect();
            assert_eq!(got, expected, "{sel:?}");
        }
        assert_eq!(index.per_host().get("a"), Some(&9));
        assert_eq!(index.len(), 27);
        assert_eq!(index.max_id(), Some(27));
    }
}
