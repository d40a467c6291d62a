//! CPU usage: `cpu_usage_percent{cpu="total"|"0"|"1"|...}`.
//!
//! sysinfo computes usage from `/proc/stat` jiffies between two refreshes:
//! busy / total over the interval, with idle and iowait counted as not busy;
//! `top` shows the same figure as 100 - id - wa (per core with `1`).

use crate::sample::Sample;

/// Samples for the whole machine and each core, values in 0..=100.
pub fn samples(total: f32, per_core: impl IntoIterator<Item = f32>) -> Vec<Sample> {
    let mut out = vec![Sample::labelled(
        "cpu_usage_percent",
        "cpu",
        "total",
        clamp(total),
    )];
    for (i, usage) in per_core.into_iter().enumerate() {
        out.push(Sample::labelled(
            "cpu_usage_percent",
            "cpu",
            i.to_string(),
            clamp(usage),
        ));
    }
    out
}

fn clamp(v: f32) -> f64 {
    if v.is_finite() {
        f64::from(v).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn total_then_cores_clamped() {
        let got = super::samples(12.5, [0.0, 100.5, f32::NAN]);
        let shown: Vec<String> = got
            .iter()
            .map(|s| format!("{}={}", s.labels[0].1, s.value))
            .collect();
        assert_eq!(shown, ["total=12.5", "0=0", "1=100", "2=0"]);
    }
}
