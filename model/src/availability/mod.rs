//! Availability against an agreed target (docs/availability.md): the time
//! a service is agreed for (its schedule), what of it was lost to outages,
//! raw and weighted by the users and functions they hit, what Nightjar
//! could not know, and the error budget and burn rates that follow. Pure:
//! the collector records the timelines, this module only computes.

pub mod schedule;
pub mod timeline;

pub use schedule::{Schedule, ScheduleError};
pub use timeline::{Judged, Outage, Report, ReportInput, judge, report};

/// Milliseconds in a minute.
pub const MINUTE_MS: i64 = 60_000;

/// Total length of `intervals` (half-open, ms; may be unsorted but must
/// not overlap).
pub fn total(intervals: &[(i64, i64)]) -> i64 {
    intervals.iter().map(|(a, b)| (b - a).max(0)).sum()
}

/// `a` minus `b`: the parts of `a`'s intervals not covered by any of `b`'s.
/// Both sorted by start and internally non-overlapping.
pub fn subtract(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(start, end) in a {
        let mut cursor = start;
        for &(bs, be) in b {
            if be <= cursor || bs >= end {
                continue;
            }
            if bs > cursor {
                out.push((cursor, bs));
            }
            cursor = cursor.max(be);
            if cursor >= end {
                break;
            }
        }
        if cursor < end {
            out.push((cursor, end));
        }
    }
    out
}

/// `a` ∩ `b`, both sorted and internally non-overlapping.
pub fn intersect(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Sorts and merges overlapping or touching intervals.
pub fn normalise(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.retain(|(a, b)| a < b);
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Availability in percent of `scheduled` minutes with `lost` of them lost.
pub fn percent(scheduled: f64, lost: f64) -> f64 {
    if scheduled <= 0.0 {
        return 100.0;
    }
    (scheduled - lost) / scheduled * 100.0
}

/// The combined availability of several services, three ways; each
/// answers another question (docs/availability.md, "Combining services").
pub mod combined {
    /// The plain mean of the percentages: "on average, how available were
    /// our services?" Equals the "availability points" total over the
    /// points possible.
    pub fn mean(percents: &[f64]) -> Option<f64> {
        (!percents.is_empty()).then(|| percents.iter().sum::<f64>() / percents.len() as f64)
    }

    /// The mean weighted by each service's declared weight: "how much of
    /// what matters was available?"
    pub fn weighted_mean(percents_and_weights: &[(f64, f64)]) -> Option<f64> {
        let w: f64 = percents_and_weights.iter().map(|(_, w)| w).sum();
        (w > 0.0).then(|| percents_and_weights.iter().map(|(p, w)| p * w).sum::<f64>() / w)
    }

    /// All of: the share (percent) of `scheduled` time in which no service
    /// of the group was in outage, from their outage intervals: "for how
    /// much of the time could a user do everything?" Not the product of
    /// the percentages, which would assume the outages independent.
    pub fn all_of(scheduled: &[(i64, i64)], outages_per_service: &[Vec<(i64, i64)>]) -> f64 {
        let any_outage = super::normalise(outages_per_service.iter().flatten().copied().collect());
        let scheduled_ms = super::total(scheduled) as f64;
        let lost = super::total(&super::intersect(scheduled, &any_outage)) as f64;
        super::percent(scheduled_ms, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_arithmetic() {
        assert_eq!(
            subtract(&[(0, 100)], &[(10, 20), (50, 60)]),
            [(0, 10), (20, 50), (60, 100)]
        );
        assert_eq!(subtract(&[(0, 100)], &[(-5, 200)]), []);
        assert_eq!(
            intersect(&[(0, 10), (20, 30)], &[(5, 25)]),
            [(5, 10), (20, 25)]
        );
        assert_eq!(
            normalise(vec![(5, 9), (0, 5), (20, 30), (8, 12)]),
            [(0, 12), (20, 30)]
        );
        assert_eq!(total(&[(0, 10), (20, 25)]), 15);
    }

    /// "Availability points": six services at 57, 63, 56, 49, 65 and 78 %
    /// give 368 of 600 points, which is the plain mean, 61.33 %.
    #[test]
    fn combined_availability_example() {
        let p = [57.0, 63.0, 56.0, 49.0, 65.0, 78.0];
        assert_eq!(p.iter().sum::<f64>(), 368.0);
        let mean = combined::mean(&p).unwrap();
        assert_eq!(format!("{mean:.2}"), "61.33");
        assert!((mean - 368.0 / 600.0 * 100.0).abs() < 1e-9);
        // Weighted by importance: the 78 % service counting three times.
        let w: Vec<(f64, f64)> = p
            .iter()
            .map(|&x| (x, if x == 78.0 { 3.0 } else { 1.0 }))
            .collect();
        assert_eq!(
            format!("{:.2}", combined::weighted_mean(&w).unwrap()),
            "65.50"
        );
        // All of, over a 100-minute schedule: A down 0–10, B down 5–20,
        // C down 50–60. Some service was down for 30 minutes: 70 % of the
        // time everything worked. Multiplying (90 % × 85 % × 90 % = 68.85
        // %) assumes the overlapping outages were independent.
        let m = MINUTE_MS;
        let all = combined::all_of(
            &[(0, 100 * m)],
            &[
                vec![(0, 10 * m)],
                vec![(5 * m, 20 * m)],
                vec![(50 * m, 60 * m)],
            ],
        );
        assert_eq!(format!("{all:.2}"), "70.00");
    }
}
