//! Pressure stall information (PSI), from `/proc/pressure/{cpu,memory,io}`
//! (Linux 4.20+, when enabled). `pressure_some_percent{resource}` is the
//! share of the interval in which at least one task was stalled on the
//! resource; `pressure_full_percent` the share in which all non-idle tasks
//! were. Computed from the cumulative `total=` microseconds, so the figure
//! covers exactly the sampling interval (the kernel's avg10 would smooth it).

use crate::sample::Sample;

use super::rates::Rates;

/// Samples for one resource from its `(some, full)` totals in µs.
pub fn samples(
    resource: &'static str,
    totals: (Option<u64>, Option<u64>),
    rates: &mut Rates,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(2);
    let kinds = [
        ("pressure_some_percent", totals.0),
        ("pressure_full_percent", totals.1),
    ];
    for (metric, total) in kinds {
        let Some(total_us) = total else { continue };
        // µs stalled per second / 1e6 * 100 = percent of wall time.
        if let Some(us_per_second) = rates.rate(&format!("{metric}/{resource}"), total_us) {
            out.push(Sample::labelled(
                metric,
                "resource",
                resource,
                (us_per_second / 10_000.0).min(100.0),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn stall_share_of_the_interval() {
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.start(t0);
        assert!(samples("io", (Some(1_000_000), None), &mut rates).is_empty());
        rates.start(t0 + Duration::from_secs(10));
        // 2.5 s stalled in 10 s = 25 %.
        let s = samples("io", (Some(3_500_000), None), &mut rates);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].metric, "pressure_some_percent");
        assert_eq!(s[0].labels, vec![("resource", "io".to_string())]);
        assert!((s[0].value - 25.0).abs() < 1e-9);
    }
}
