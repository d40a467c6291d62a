//! Memory detail beyond sysinfo: page cache, buffers and free memory
//! (`/proc/meminfo`, as `free -b` shows them: "buff/cache" = buffers +
//! cached + SReclaimable), swap paging and OOM kills (`/proc/vmstat`).

use std::collections::HashMap;

use crate::sample::Sample;

use super::rates::Rates;

/// Samples from parsed meminfo (bytes by key) and vmstat (by key).
pub fn samples(
    meminfo: &HashMap<String, u64>,
    vmstat: &HashMap<String, u64>,
    rates: &mut Rates,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(6);
    let mem = |key: &str| meminfo.get(key).copied();
    if let Some(v) = mem("MemFree") {
        out.push(Sample::new("memory_free_bytes", v as f64));
    }
    if let Some(v) = mem("Buffers") {
        out.push(Sample::new("memory_buffers_bytes", v as f64));
    }
    if let (Some(cached), reclaimable) = (mem("Cached"), mem("SReclaimable").unwrap_or(0)) {
        // free(1) counts reclaimable slab as cache.
        out.push(Sample::new(
            "memory_cached_bytes",
            (cached + reclaimable) as f64,
        ));
    }
    for (metric, key) in [
        ("swap_in_pages_per_second", "pswpin"),
        ("swap_out_pages_per_second", "pswpout"),
    ] {
        if let Some(r) = vmstat.get(key).and_then(|v| rates.rate(metric, *v)) {
            out.push(Sample::new(metric, r));
        }
    }
    if let Some(v) = vmstat.get("oom_kill") {
        out.push(Sample::new("oom_kills_total", *v as f64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::{parse_key_values, parse_meminfo};
    use std::time::{Duration, Instant};

    #[test]
    fn cache_buffers_paging_and_oom() {
        let meminfo =
            parse_meminfo("MemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\nSReclaimable: 50 kB\n");
        let mut rates = Rates::default();
        let t0 = Instant::now();
        rates.start(t0);
        samples(
            &meminfo,
            &parse_key_values("pswpin 10\npswpout 0\noom_kill 1\n"),
            &mut rates,
        );
        rates.start(t0 + Duration::from_secs(5));
        let s = samples(
            &meminfo,
            &parse_key_values("pswpin 60\npswpout 5\noom_kill 2\n"),
            &mut rates,
        );
        let get = |m: &str| s.iter().find(|x| x.metric == m).map(|x| x.value);
        assert_eq!(get("memory_cached_bytes"), Some(250.0 * 1024.0));
        assert_eq!(get("memory_buffers_bytes"), Some(10.0 * 1024.0));
        assert_eq!(get("memory_free_bytes"), Some(100.0 * 1024.0));
        assert_eq!(get("swap_in_pages_per_second"), Some(10.0));
        assert_eq!(get("swap_out_pages_per_second"), Some(1.0));
        assert_eq!(get("oom_kills_total"), Some(2.0));
    }
}
