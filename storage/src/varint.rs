//! LEB128 varints and zigzag signed integers, as in protobuf. Pure.

/// Maps signed to unsigned so small magnitudes stay small.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as a varint.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put`] takes for `v`.
pub fn len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Reads a varint from the front of `bytes`; `None` if truncated or longer
/// than 10 bytes.
pub fn get(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn len_is_what_put_writes() {
        let mut rng = fastrand::Rng::with_seed(11);
        let edges = (0..64)
            .flat_map(|b| [(1u64 << b) - 1, 1u64 << b])
            .chain([u64::MAX, 0]);
        for v in edges.chain((0..1_000).map(|_| rng.u64(..) >> rng.u32(0..64))) {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(len(v), out.len(), "{v}");
        }
    }

    #[test]
    fn round_trips_edges() {
        for v in [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put(&mut out, zigzag(v));
            let mut slice = out.as_slice();
            assert_eq!(get(&mut slice).map(unzigzag), Some(v));
            assert!(slice.is_empty());
        }
        assert_eq!(get(&mut &[0x80u8][..]), None);
        assert_eq!(get(&mut &[0xffu8; 11][..]), None);
    }
}
