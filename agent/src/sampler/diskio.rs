//! Block-device I/O from `/proc/diskstats`, computed as `iostat -x` does:
//!
//! - `diskio_read_bytes_per_second` / `diskio_write_bytes_per_second`: Δsectors × 512 / Δt (rkB/s, wkB/s × 1024)
//! - `diskio_reads_per_second` / `diskio_writes_per_second`: Δcompleted / Δt (r/s, w/s)
//! - `diskio_await_seconds`: Δ(read ms + write ms) / Δ(reads + writes) / 1000
//!   (iostat's await in seconds; 0 when idle)
//! - `diskio_util_percent`: Δ(ms doing I/O) / Δt in ms × 100 (%util)
//!
//! Loop, RAM and device-mapper-less pseudo devices (`loop*`, `ram*`, `zram*`)
//! are skipped, as are devices that never did any I/O.

use crate::procfs::DiskStats;
use crate::sample::Sample;

use super::rates::Rates;

/// Whether a device is worth reporting.
pub fn is_reported(d: &DiskStats) -> bool {
    let pseudo = ["loop", "ram", "zram", "fd"]
        .iter()
        .any(|p| d.device.starts_with(p));
    !pseudo && (d.reads > 0 || d.writes > 0)
}

/// I/O samples for each reported device.
pub fn samples(devices: &[DiskStats], rates: &mut Rates) -> Vec<Sample> {
    let mut out = Vec::with_capacity(devices.len() * 6);
    for d in devices.iter().filter(|d| is_reported(d)) {
        let key = |what: &str| format!("diskio/{}/{what}", d.device);
        let labelled = |metric, value| Sample::labelled(metric, "device", d.device.clone(), value);
        let counters = [
            ("diskio_read_bytes_per_second", d.sectors_read * 512),
            ("diskio_write_bytes_per_second", d.sectors_written * 512),
            ("diskio_reads_per_second", d.reads),
            ("diskio_writes_per_second", d.writes),
        ];
        for (metric, value) in counters {
            if let Some(r) = rates.rate(&key(metric), value) {
                out.push(labelled(metric, r));
            }
        }
        let ops = rates.delta(&key("ops"), d.reads + d.writes);
        let wait_ms = rates.delta(&key("wait_ms"), d.read_ms + d.write_ms);
        if let (Some(ops), Some(wait_ms)) = (ops, wait_ms) {
            let await_seconds = if ops == 0 {
                0.0
            } else {
                wait_ms as f64 / ops as f64 / 1000.0
            };
            out.push(labelled("diskio_await_seconds", await_seconds));
        }
        let busy_ms = rates.delta(&key("io_ms"), d.io_ms);
        if let (Some(busy_ms), Some(secs)) = (busy_ms, rates.elapsed_secs()) {
            let util = busy_ms as f64 / (secs * 1000.0) * 100.0;
            out.push(labelled("diskio_util_percent", util.min(100.0)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::find;
    use std::time::{Duration, Instant};

    fn dev(
        name: &str,
        reads: u64,
        sectors_read: u64,
        read_ms: u64,
        writes: u64,
        io_ms: u64,
    ) -> DiskStats {
        DiskStats {
            device: name.into(),
            reads,
            sectors_read,
            read_ms,
            writes,
            sectors_written: 0,
            write_ms: 0,
            io_ms,
        }
    }

    #[test]
    fn iostat_figures() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.start(t0);
        let before = [
            dev("vda", 100, 1000, 50, 0, 400),
            dev("loop0", 5, 5, 5, 0, 5),
        ];
        assert!(samples(&before, &mut rates).is_empty());
        rates.start(t0 + Duration::from_secs(2));
        // 40 reads of 8 sectors each in 2 s, 200 ms waiting, busy 500 ms.
        let after = [
            dev("vda", 140, 1320, 250, 0, 900),
            dev("loop0", 9, 9, 9, 0, 9),
        ];
        let s = samples(&after, &mut rates);
        let get = |m: &str| find(&s, m, &[("device", "vda")]);
        assert_eq!(get("diskio_reads_per_second"), Some(20.0));
        assert_eq!(
            get("diskio_read_bytes_per_second"),
            Some(320.0 * 512.0 / 2.0)
        );
        assert_eq!(get("diskio_await_seconds"), Some(0.005));
        assert_eq!(get("diskio_util_percent"), Some(25.0));
        assert_eq!(get("diskio_writes_per_second"), Some(0.0));
        assert!(find(&s, "diskio_reads_per_second", &[("device", "loop0")]).is_none());
    }
}
