//! Memory and swap.
//!
//! `memory_used_bytes` is total - available, which is what `free` (procps-ng
//! 4, Debian 12) prints as "used"; sysinfo's `used_memory` is that figure.

use crate::sample::Sample;

/// One reading of memory and swap, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryReading {
    /// MemTotal.
    pub total: u64,
    /// MemAvailable.
    pub available: u64,
    /// total - available.
    pub used: u64,
    /// SwapTotal.
    pub swap_total: u64,
    /// SwapTotal - SwapFree.
    pub swap_used: u64,
}

/// Memory and swap samples.
pub fn samples(r: MemoryReading) -> Vec<Sample> {
    vec![
        Sample::new("memory_total_bytes", r.total as f64),
        Sample::new("memory_used_bytes", r.used as f64),
        Sample::new("memory_available_bytes", r.available as f64),
        Sample::new("memory_used_percent", percent(r.used, r.total)),
        Sample::new("swap_total_bytes", r.swap_total as f64),
        Sample::new("swap_used_bytes", r.swap_used as f64),
        Sample::new("swap_used_percent", percent(r.swap_used, r.swap_total)),
    ]
}

/// `part / whole * 100`, 0 when `whole` is 0 (no swap configured).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64 * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        let s = samples(MemoryReading {
            total: 1000,
            available: 250,
            used: 750,
            swap_total: 0,
            swap_used: 0,
        });
        let get = |m: &str| s.iter().find(|x| x.metric == m).unwrap().value;
        assert_eq!(get("memory_used_percent"), 75.0);
        assert_eq!(get("swap_used_percent"), 0.0);
        assert_eq!(get("memory_total_bytes"), 1000.0);
    }
}
