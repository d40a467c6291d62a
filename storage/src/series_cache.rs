//! A sender's series references: per ingest stream, the series ids of the
//! keys its last batch named, in the order it named them, so that a steady
//! stream (an agent names the same series in the same order every
//! interval) finds each sample's id by comparing its key with a copy kept
//! next to the previous one, not by hashing it into the shared series
//! index and comparing it there with a key that is all cache misses
//! (pointer, metric, label vector, each label: the index lookup was a
//! sixth of the collector's CPU under the end-to-end bench). Prometheus'
//! scrape loops keep a cache of series references for the same reason.
//!
//! Pure. A reference is trusted only from the storage instance that gave
//! it ([`SeriesCache::owner`]): ids never change while a storage is open,
//! and a reopened one (after a full disk) starts the cache afresh.

use nightjar_model::model::SeriesKey;

/// Ends each name and value in [`SeriesCache::keys`]: not a byte of UTF-8.
const END: u8 = 0xff;

/// The series ids of the keys of a stream's last batch, by position.
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// The storage instance whose ids these are (0: none yet).
    owner: u64,
    /// Each key flattened (metric, then label names and values, each
    /// followed by [`END`]), one after another.
    keys: Vec<u8>,
    /// Per position: where its key ends in `keys`, and its id.
    entries: Vec<(usize, u64)>,
}

impl SeriesCache {
    /// The id of `key` if it is what position `i` of the last batch named,
    /// with the ids of storage instance `owner`.
    pub fn get(&self, owner: u64, i: usize, key: &SeriesKey) -> Option<u64> {
        if owner != self.owner {
            return None;
        }
        let &(end, id) = self.entries.get(i)?;
        let start = i.checked_sub(1).map_or(0, |p| self.entries[p].0);
        flat_equals(&self.keys[start..end], key).then_some(id)
    }

    /// Remembers a batch's keys and their ids (from storage `owner`), in
    /// batch order, for the next batch.
    pub fn remember<'a>(
        &mut self,
        owner: u64,
        keys: impl IntoIterator<Item = &'a SeriesKey>,
        ids: &[u64],
    ) {
        self.owner = owner;
        self.keys.clear();
        self.entries.clear();
        for (key, &id) in keys.into_iter().zip(ids) {
            flatten(&mut self.keys, key);
            self.entries.push((self.keys.len(), id));
        }
    }

    /// Positions remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn flatten(out: &mut Vec<u8>, key: &SeriesKey) {
    out.extend_from_slice(key.metric.as_bytes());
    out.push(END);
    for (name, value) in key.labels.iter() {
        out.extend_from_slice(name.as_bytes());
        out.push(END);
        out.extend_from_slice(value.as_bytes());
        out.push(END);
    }
}

/// Whether `flat` is `key` flattened, without flattening it.
fn flat_equals(mut flat: &[u8], key: &SeriesKey) -> bool {
    let mut take = |part: &str| {
        let n = part.len();
        if flat.len() > n && &flat[..n] == part.as_bytes() && flat[n] == END {
            flat = &flat[n + 1..];
            true
        } else {
            false
        }
    };
    take(&key.metric)
        && key
            .labels
            .iter()
            .all(|(name, value)| take(name) && take(value))
        && flat.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ids_of_the_same_keys_in_the_same_places_only() {
        let a = SeriesKey::of("cpu", &[("host", "web-1"), ("core", "0")]);
        let b = SeriesKey::of("cpu", &[("host", "web-1"), ("core", "1")]);
        let c = SeriesKey::of("mem", &[("host", "web-1")]);
        let mut cache = SeriesCache::default();
        assert_eq!(cache.get(0, 0, &a), None, "an empty cache knows nothing");
        cache.remember(7, [&a, &b, &c], &[10, 11, 12]);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(7, 0, &a), Some(10));
        assert_eq!(cache.get(7, 1, &b), Some(11));
        assert_eq!(cache.get(7, 2, &c), Some(12));
        // Another key in a place, a place past the end, another storage.
        assert_eq!(cache.get(7, 1, &a), None);
        assert_eq!(cache.get(7, 3, &a), None);
        assert_eq!(cache.get(8, 0, &a), None);
    }

    #[test]
    fn keys_that_flatten_alike_under_a_naive_join_stay_apart() {
        // Without an end marker "ab"+"c" and "a"+"bc" would be one key.
        let cases = [
            (
                SeriesKey::of("m", &[("ab", "c")]),
                SeriesKey::of("m", &[("a", "bc")]),
            ),
            (SeriesKey::of("m", &[("a", "")]), SeriesKey::of("m", &[])),
            (SeriesKey::of("ma", &[]), SeriesKey::of("m", &[("a", "")])),
            (
                SeriesKey::of("m", &[("a", "1")]),
                SeriesKey::of("m", &[("a", "1"), ("b", "2")]),
            ),
        ];
        for (x, y) in cases {
            let mut cache = SeriesCache::default();
            cache.remember(1, [&x], &[5]);
            assert_eq!(cache.get(1, 0, &x), Some(5), "{x}");
            assert_eq!(cache.get(1, 0, &y), None, "{y} taken for {x}");
            cache.remember(1, [&y], &[6]);
            assert_eq!(cache.get(1, 0, &x), None, "{x} taken for {y}");
        }
    }
}
