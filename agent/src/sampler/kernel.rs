//! CPU time by mode and kernel activity, from `/proc/stat`.
//!
//! `cpu_mode_percent{cpu,mode}` is each mode's share of all CPU time between
//! two readings: the `%us %ni %sy %id %wa %hi %si %st` figures of `top`
//! (per core with `1`) and of `mpstat -P ALL`. The modes of one CPU add up
//! to 100.

use crate::procfs::{CpuTimes, Stat};
use crate::sample::Sample;

use super::rates::Rates;

/// The modes reported, in /proc/stat order.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

fn mode_values(t: &CpuTimes) -> [u64; 8] {
    [
        t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal,
    ]
}

fn cpu_modes(cpu: &str, times: &CpuTimes, rates: &mut Rates, out: &mut Vec<Sample>) {
    let total = rates.delta(&format!("cpu/{cpu}/total"), times.total());
    let deltas: Vec<Option<u64>> = MODES
        .iter()
        .zip(mode_values(times))
        .map(|(mode, v)| rates.delta(&format!("cpu/{cpu}/{mode}"), v))
        .collect();
    let Some(total) = total.filter(|t| *t > 0) else {
        return;
    };
    for (mode, delta) in MODES.iter().zip(deltas) {
        if let Some(d) = delta {
            let pct = d as f64 / total as f64 * 100.0;
            out.push(Sample::labelled("cpu_mode_percent", "cpu", cpu, pct).with("mode", *mode));
        }
    }
}

/// CPU mode shares (total and per core), context switches, interrupts and
/// forks per second, and runnable / blocked task counts.
pub fn samples(stat: &Stat, rates: &mut Rates) -> Vec<Sample> {
    let mut out = Vec::with_capacity(8 * (stat.cpus.len() + 1) + 5);
    cpu_modes("total", &stat.total, rates, &mut out);
    for (n, times) in &stat.cpus {
        cpu_modes(&n.to_string(), times, rates, &mut out);
    }
    let per_sec = [
        ("context_switches_per_second", stat.context_switches),
        ("interrupts_per_second", stat.interrupts),
        ("forks_per_second", stat.forks),
    ];
    for (metric, value) in per_sec {
        if let Some(r) = rates.rate(metric, value) {
            out.push(Sample::new(metric, r));
        }
    }
    out.push(Sample::new("procs_running", stat.procs_running as f64));
    out.push(Sample::new("procs_blocked", stat.procs_blocked as f64));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::parse_stat;
    use crate::sample::find;
    use std::time::{Duration, Instant};

    #[test]
    fn mode_shares_add_up_and_rates_follow_counters() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.start(t0);
        let first = parse_stat(
            "cpu 100 0 100 800 0 0 0 0\ncpu0 100 0 100 800 0 0 0 0\nctxt 1000\nintr 50 1 2\nprocesses 10\n",
        );
        let s = samples(&first, &mut rates);
        assert!(
            s.iter().all(|x| x.metric.starts_with("procs_")),
            "first pass has no shares or rates"
        );
        rates.start(t0 + Duration::from_secs(2));
        let second = parse_stat(
            "cpu 130 0 120 840 10 0 0 0\ncpu0 130 0 120 840 10 0 0 0\nctxt 3000\nintr 250 1 2\nprocesses 14\nprocs_running 3\n",
        );
        let s = samples(&second, &mut rates);
        let get = |metric: &str, mode: Option<&str>| match mode {
            Some(m) => find(&s, metric, &[("cpu", "total"), ("mode", m)]),
            None => find(&s, metric, &[]),
        };
        // Δtotal = 100: user 30, system 20, idle 40, iowait 10.
        assert_eq!(get("cpu_mode_percent", Some("user")), Some(30.0));
        assert_eq!(get("cpu_mode_percent", Some("iowait")), Some(10.0));
        assert_eq!(get("cpu_mode_percent", Some("steal")), Some(0.0));
        let total_share: f64 = s
            .iter()
            .filter(|x| x.metric == "cpu_mode_percent" && x.labels[0].1 == "0")
            .map(|x| x.value)
            .sum();
        assert!((total_share - 100.0).abs() < 1e-9);
        assert_eq!(get("context_switches_per_second", None), Some(1000.0));
        assert_eq!(get("interrupts_per_second", None), Some(100.0));
        assert_eq!(get("forks_per_second", None), Some(2.0));
        assert_eq!(get("procs_running", None), Some(3.0));
    }
}
