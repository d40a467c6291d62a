//! Key and value codecs of the series database (`docs/format/storage.md`)
//! and the alert database (`docs/format/alerts.md`): pure functions over
//! bytes.

use nightjar_model::model::{HostInfo, Labels, SeriesKey};

/// Series id (u64 BE) ++ time (i64 with the sign bit flipped, BE): byte
/// order matches (id, time) order.
pub(super) fn time_key(id: u64, ts: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// The first key after time `end_ms` of series `id`.
pub(super) fn upper_key(id: u64, end_ms: i64) -> Vec<u8> {
    match end_ms.checked_add(1) {
        Some(t) => time_key(id, t).to_vec(),
        None => (id + 1).to_be_bytes().to_vec(),
    }
}

/// The time part of a [`time_key`].
pub(super) fn key_time(key: &[u8]) -> Option<i64> {
    Some((read_u64(key.get(8..16)?)? ^ (1 << 63)) as i64)
}

pub(super) fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// The replay mark's key: `m/`, the host's length (u16, big-endian), the
/// host, the agent id. (Marks of earlier versions, `a/<agent id>`, are
/// dropped at open.)
pub(super) fn agent_key(host: &str, agent_id: &str) -> Vec<u8> {
    let len = u16::try_from(host.len()).unwrap_or(u16::MAX);
    [
        b"m/".as_slice(),
        &len.to_be_bytes(),
        host.as_bytes(),
        agent_id.as_bytes(),
    ]
    .concat()
}

/// The (host, agent id) of a replay mark's key without its `m/`.
pub(super) fn decode_agent_key(rest: &[u8]) -> Option<(String, String)> {
    let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let host = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    let agent = std::str::from_utf8(rest.get(2 + len..)?).ok()?;
    Some((host.to_owned(), agent.to_owned()))
}

pub(super) fn host_key(host: &str) -> Vec<u8> {
    [b"h/", host.as_bytes()].concat()
}

pub(super) fn encode_host(info: &HostInfo) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&info.last_seen_ms.to_be_bytes());
    v[8..].copy_from_slice(&info.interval_ms.to_be_bytes());
    v
}

pub(super) fn decode_host(host: &[u8], value: &[u8]) -> Option<HostInfo> {
    Some(HostInfo {
        host: String::from_utf8(host.to_vec()).ok()?,
        last_seen_ms: read_u64(value)? as i64,
        interval_ms: read_u64(value.get(8..)?)?,
    })
}

/// Series record: strings as u32 LE length + UTF-8 bytes: the metric, then
/// name and value of each label in name order.
pub(super) fn encode_series(key: &SeriesKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut put = |s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put(&key.metric);
    for (name, value) in key.labels.iter() {
        put(name);
        put(value);
    }
    out
}

pub(super) fn decode_series(mut bytes: &[u8]) -> Option<SeriesKey> {
    let mut take = || -> Option<String> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?.to_owned();
        bytes = &bytes[4 + len..];
        Some(s)
    };
    let metric = take()?;
    let mut pairs = Vec::new();
    while let Some(name) = take() {
        pairs.push((name, take()?));
    }
    Some(SeriesKey {
        metric,
        labels: Labels::from_pairs(pairs).ok()?,
    })
}

/// A history key: time (u64 BE, negative times as 0) ++ a sequence number
/// (u64 BE), so lines sort by time and two lines of one instant both stay.
pub(super) fn history_key(at_ms: i64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&(at_ms.max(0) as u64).to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}
