//! From a service's state timeline to its availability report: outage
//! minutes raw and weighted, unknown minutes, the error budget.

use std::collections::BTreeMap;

use super::{Schedule, intersect, normalise, percent, subtract, total};

/// What a service was like from one moment on.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Judged {
    /// The share of the service lost, 0–1: the users hit times how much of
    /// their work they could not do. 0 when fully available.
    pub lost: f64,
    /// Nightjar could not tell (a component without data and nothing
    /// failing): counted neither up nor down.
    pub unknown: bool,
}

impl Judged {
    /// Fully available.
    pub const UP: Judged = Judged {
        lost: 0.0,
        unknown: false,
    };
    /// Not known.
    pub const UNKNOWN: Judged = Judged {
        lost: 0.0,
        unknown: true,
    };
}

/// Who the users are: shares of the user base by the value of one label
/// of the alerts (region, customer tier, site). Shares sum to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Users {
    /// The alert label that says which users an outage hits.
    pub label: String,
    /// Share of the users per label value.
    pub shares: BTreeMap<String, f64>,
}

/// One component at one moment.
#[derive(Clone, Debug)]
pub struct ComponentNow {
    /// How much of the users' work it takes away now (its declared impact
    /// for its state: critical 1 unless declared, warning 0 unless
    /// declared, ok 0).
    pub impact: f64,
    /// It has no data (and so cannot be judged).
    pub unknown: bool,
    /// The values of the users label on the alerts behind it: the user
    /// segments hit. Empty (or a value with no share) means all users.
    pub segments: Vec<String>,
}

/// A service's state now from its components': per user segment the worst
/// impact of any component hitting it, summed by share.
pub fn judge(users: Option<&Users>, components: &[ComponentNow]) -> Judged {
    let failing: Vec<&ComponentNow> = components.iter().filter(|c| c.impact > 0.0).collect();
    let lost = match users {
        None => failing.iter().map(|c| c.impact).fold(0.0, f64::max),
        Some(u) => u
            .shares
            .iter()
            .map(|(segment, share)| {
                let hits = |c: &&&ComponentNow| {
                    c.segments.is_empty()
                        || c.segments.iter().all(|s| !u.shares.contains_key(s))
                        || c.segments.contains(segment)
                };
                share
                    * failing
                        .iter()
                        .filter(hits)
                        .map(|c| c.impact)
                        .fold(0.0, f64::max)
            })
            .sum(),
    };
    let lost = lost.clamp(0.0, 1.0);
    Judged {
        lost,
        unknown: lost == 0.0 && components.iter().any(|c| c.unknown),
    }
}

/// An operator's correction of one outage after review: the share of users
/// it really hit and how much of their work they could not do.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adjustment {
    /// The outage, by its start (epoch ms), as the report lists it.
    pub outage_start_ms: i64,
    /// Share of users hit, 0–1.
    pub share: f64,
    /// Impact on their work, 0–1.
    pub impact: f64,
    /// Who adjusted it.
    pub by: String,
    /// Why.
    pub why: String,
    /// When.
    pub at_ms: i64,
}

/// One outage: a run of time with something lost.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// When it began and ended (epoch ms; `end` is the window's end while
    /// it lasts).
    pub start_ms: i64,
    pub end_ms: i64,
    /// Scheduled, known time inside it (ms).
    pub raw_ms: i64,
    /// That time weighted by what was lost (ms).
    pub weighted_ms: f64,
    /// The largest share lost at any moment of it.
    pub worst: f64,
    /// The operator's correction, if any (then `weighted_ms` is
    /// `raw_ms × share × impact`).
    pub adjustment: Option<Adjustment>,
}

/// What a report is computed from.
pub struct ReportInput<'a> {
    /// The window, epoch ms, half-open.
    pub from_ms: i64,
    pub to_ms: i64,
    /// When the service is agreed to be available.
    pub schedule: &'a Schedule,
    /// Maintenance windows, taken out of the schedule.
    pub excluded: &'a [(i64, i64)],
    /// When the collector was judging (its heartbeats); other time is
    /// unknown.
    pub judging: &'a [(i64, i64)],
    /// The state changes, sorted by time; before the first: unknown.
    pub timeline: &'a [(i64, Judged)],
    /// The agreed availability, percent.
    pub target_percent: f64,
    /// Operators' corrections.
    pub adjustments: &'a [Adjustment],
}

/// A service's availability over a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Scheduled time minus maintenance (ms): what the target applies to.
    pub scheduled_ms: i64,
    /// Scheduled time inside maintenance windows (ms).
    pub excluded_ms: i64,
    /// Scheduled time Nightjar could not judge (ms).
    pub unknown_ms: i64,
    /// Scheduled time it could (ms).
    pub known_ms: i64,
    /// Known time in an outage of any size (ms).
    pub raw_outage_ms: i64,
    /// Outage time weighted by users and impact (ms).
    pub weighted_outage_ms: f64,
    /// Weighted availability of the known time, percent.
    pub availability_percent: f64,
    /// Unweighted: as if every outage hit everyone fully.
    pub raw_availability_percent: f64,
    /// The target, percent.
    pub target_percent: f64,
    /// Whether the availability meets it.
    pub met: bool,
    /// The error budget of the window: (100 − target) % of the scheduled
    /// time (ms).
    pub budget_ms: f64,
    /// Used: the weighted outage time (ms).
    pub budget_used_ms: f64,
    /// Left (negative when overspent) (ms).
    pub budget_left_ms: f64,
    /// The outages, in time order.
    pub outages: Vec<Outage>,
}

impl Report {
    /// The outages with the most weighted time first.
    pub fn top_talkers(&self, n: usize) -> Vec<&Outage> {
        let mut v: Vec<&Outage> = self.outages.iter().collect();
        v.sort_by(|a, b| {
            b.weighted_ms
                .total_cmp(&a.weighted_ms)
                .then(a.start_ms.cmp(&b.start_ms))
        });
        v.truncate(n);
        v
    }
}

/// Computes a report.
pub fn report(input: &ReportInput) -> Report {
    let (from, to) = (input.from_ms, input.to_ms);
    let scheduled = input.schedule.intervals(from, to);
    let excluded = normalise(input.excluded.to_vec());
    let judging = normalise(input.judging.to_vec());
    let counted = subtract(&scheduled, &excluded);
    let excluded_ms = total(&intersect(&scheduled, &excluded));

    let mut unknown_ms = 0i64;
    let mut raw = 0i64;
    let mut weighted = 0.0f64;
    let mut outages: Vec<Outage> = Vec::new();
    let mut in_outage = false;
    // The states as segments of the window; unknown before the first.
    let mut segments: Vec<(i64, i64, Judged)> = Vec::new();
    let first = input
        .timeline
        .first()
        .map_or(to, |(t, _)| (*t).clamp(from, to));
    if first > from {
        segments.push((from, first, Judged::UNKNOWN));
    }
    for (i, &(t, judged)) in input.timeline.iter().enumerate() {
        let end = input.timeline.get(i + 1).map_or(to, |(n, _)| *n).min(to);
        let start = t.max(from);
        if start < end {
            segments.push((start, end, judged));
        }
    }
    for (start, end, judged) in segments {
        let here = intersect(&counted, &[(start, end)]);
        let known = total(&intersect(&here, &judging));
        unknown_ms += total(&here) - known;
        if judged.unknown {
            unknown_ms += known;
            in_outage = false;
            continue;
        }
        if judged.lost <= 0.0 {
            in_outage = false;
            continue;
        }
        raw += known;
        weighted += known as f64 * judged.lost;
        match outages.last_mut() {
            Some(o) if in_outage => {
                o.end_ms = end;
                o.raw_ms += known;
                o.weighted_ms += known as f64 * judged.lost;
                o.worst = o.worst.max(judged.lost);
            }
            _ => outages.push(Outage {
                start_ms: start,
                end_ms: end,
                raw_ms: known,
                weighted_ms: known as f64 * judged.lost,
                worst: judged.lost,
                adjustment: None,
            }),
        }
        in_outage = true;
    }
    // Operators' corrections replace the computed weighting of their outage.
    outages.retain(|o| o.raw_ms > 0);
    for o in &mut outages {
        if let Some(adj) = input
            .adjustments
            .iter()
            .rev()
            .find(|a| a.outage_start_ms == o.start_ms)
        {
            let corrected = o.raw_ms as f64 * adj.share * adj.impact;
            weighted += corrected - o.weighted_ms;
            o.weighted_ms = corrected;
            o.adjustment = Some(adj.clone());
        }
    }
    let scheduled_ms = total(&counted);
    let known_ms = scheduled_ms - unknown_ms;
    let availability = percent(known_ms as f64, weighted);
    let budget = (100.0 - input.target_percent) / 100.0 * scheduled_ms as f64;
    Report {
        scheduled_ms,
        excluded_ms,
        unknown_ms,
        known_ms,
        raw_outage_ms: raw,
        weighted_outage_ms: weighted,
        availability_percent: availability,
        raw_availability_percent: percent(known_ms as f64, raw as f64),
        target_percent: input.target_percent,
        met: availability >= input.target_percent,
        budget_ms: budget,
        budget_used_ms: weighted,
        budget_left_ms: budget - weighted,
        outages,
    }
}

/// How fast the budget burns: the share lost over a window against the
/// share the target allows (1 = the budget lasts exactly the SLO window).
pub fn burn_rate(weighted_outage_ms: f64, over_ms: i64, target_percent: f64) -> f64 {
    let allowed = (100.0 - target_percent) / 100.0;
    if over_ms <= 0 || allowed <= 0.0 {
        return 0.0;
    }
    weighted_outage_ms / over_ms as f64 / allowed
}

/// One multi-window burn-rate condition (SRE Workbook, ch. 5): it holds
/// when both the long and the short window burn at `rate` or faster.
#[derive(Clone, Debug, PartialEq)]
pub struct BurnWindow {
    /// Its name: the `condition` label of `service_burn_rate_ratio`.
    pub name: &'static str,
    pub long_ms: i64,
    pub short_ms: i64,
    pub rate: f64,
    /// "critical" pages, "warning" is a ticket.
    pub severity: &'static str,
}

/// The Workbook's three conditions. For a 30-day SLO window: 2 % of the
/// budget in 1 h (14.4×, checked over 5 min too) and 5 % in 6 h (6×, and
/// 30 min) page; 10 % in 3 days (1×, and 6 h) is a ticket. For another SLO
/// window the windows scale with it, so the same share of its budget
/// triggers the same condition at the same rate.
pub fn burn_windows(slo_window_ms: i64) -> [BurnWindow; 3] {
    const H: i64 = 3_600_000;
    const MONTH: i64 = 30 * 24 * H;
    let scale = |ms: i64| ((ms as i128 * slo_window_ms as i128) / MONTH as i128) as i64;
    [
        BurnWindow {
            name: "page_fast",
            long_ms: scale(H),
            short_ms: scale(5 * 60_000),
            rate: 14.4,
            severity: "critical",
        },
        BurnWindow {
            name: "page_slow",
            long_ms: scale(6 * H),
            short_ms: scale(30 * 60_000),
            rate: 6.0,
            severity: "critical",
        },
        BurnWindow {
            name: "ticket",
            long_ms: scale(72 * H),
            short_ms: scale(6 * H),
            rate: 1.0,
            severity: "warning",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::MINUTE_MS;

    const WEEK_START: i64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z, a Monday
    const WEEK: i64 = 7 * 24 * 60 * MINUTE_MS;

    fn week_report(timeline: &[(i64, Judged)]) -> Report {
        report(&ReportInput {
            from_ms: WEEK_START,
            to_ms: WEEK_START + WEEK,
            schedule: &Schedule::Always,
            excluded: &[],
            judging: &[(WEEK_START, WEEK_START + WEEK)],
            timeline,
            target_percent: 99.9,
            adjustments: &[],
        })
    }

    /// An outage of 60 minutes on Tuesday at 10:00, losing `lost`.
    fn hour_outage(lost: f64) -> Vec<(i64, Judged)> {
        let at = WEEK_START + (24 + 10) * 60 * MINUTE_MS;
        vec![
            (WEEK_START, Judged::UP),
            (
                at,
                Judged {
                    lost,
                    unknown: false,
                },
            ),
            (at + 60 * MINUTE_MS, Judged::UP),
        ]
    }

    fn users() -> Users {
        Users {
            label: "region".into(),
            shares: [("AMRS", 0.5), ("EMEA", 0.4), ("APAC", 0.1)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }

    /// The three worked examples of docs/availability.md.
    #[test]
    fn a_full_outage_of_an_hour_in_a_24x7_week_leaves_99_40_percent() {
        let down = judge(
            None,
            &[ComponentNow {
                impact: 1.0,
                unknown: false,
                segments: vec![],
            }],
        );
        assert_eq!(
            down,
            Judged {
                lost: 1.0,
                unknown: false
            }
        );
        let r = week_report(&hour_outage(down.lost));
        assert_eq!(r.scheduled_ms / MINUTE_MS, 10_080);
        assert_eq!(r.raw_outage_ms / MINUTE_MS, 60);
        assert_eq!(r.weighted_outage_ms / MINUTE_MS as f64, 60.0);
        assert_eq!(r.availability_percent, 10_020.0 / 10_080.0 * 100.0);
        assert_eq!(format!("{:.2}", r.availability_percent), "99.40");
        assert!(!r.met, "99.40 % misses 99.9 %");
        assert_eq!(r.outages.len(), 1);
        assert_eq!(format!("{:.2}", r.budget_ms / MINUTE_MS as f64), "10.08");
        assert_eq!(
            format!("{:.2}", r.budget_left_ms / MINUTE_MS as f64),
            "-49.92"
        );
    }

    #[test]
    fn an_outage_of_one_region_with_10_percent_of_users_counts_6_minutes() {
        let apac = judge(
            Some(&users()),
            &[ComponentNow {
                impact: 1.0,
                unknown: false,
                segments: vec!["APAC".into()],
            }],
        );
        assert_eq!(apac.lost, 0.1);
        let r = week_report(&hour_outage(apac.lost));
        assert_eq!(r.raw_outage_ms / MINUTE_MS, 60);
        assert!((r.weighted_outage_ms / MINUTE_MS as f64 - 6.0).abs() < 1e-9);
        assert_eq!(format!("{:.2}", r.availability_percent), "99.94");
        assert!((r.availability_percent - 10_074.0 / 10_080.0 * 100.0).abs() < 1e-9);
        assert_eq!(format!("{:.2}", r.raw_availability_percent), "99.40");
    }

    #[test]
    fn users_who_can_still_do_80_percent_of_their_work_count_a_fifth() {
        let feed = judge(
            Some(&users()),
            &[ComponentNow {
                impact: 0.2,
                unknown: false,
                segments: vec!["APAC".into()],
            }],
        );
        assert!((feed.lost - 0.02).abs() < 1e-12);
        let r = week_report(&hour_outage(feed.lost));
        assert!((r.weighted_outage_ms / MINUTE_MS as f64 - 1.2).abs() < 1e-9);
        assert!((r.availability_percent - 10_078.8 / 10_080.0 * 100.0).abs() < 1e-9);
        assert_eq!(format!("{:.2}", r.availability_percent), "99.99");
        assert!(r.met);
    }

    #[test]
    fn segments_combine_per_user_share_and_unknown_is_neither_up_nor_down() {
        let u = users();
        let c = |impact: f64, seg: &[&str]| ComponentNow {
            impact,
            unknown: false,
            segments: seg.iter().map(|s| s.to_string()).collect(),
        };
        // EMEA fully down and APAC at a fifth: 0.4 + 0.1 × 0.2.
        assert!(
            (judge(Some(&u), &[c(1.0, &["EMEA"]), c(0.2, &["APAC"])]).lost - 0.42).abs() < 1e-12
        );
        // One region hit twice counts once, at the worse impact.
        assert!(
            (judge(Some(&u), &[c(1.0, &["APAC"]), c(0.5, &["APAC"])]).lost - 0.1).abs() < 1e-12
        );
        // An alert without the label, or naming no known segment, hits everyone.
        assert_eq!(judge(Some(&u), &[c(1.0, &[])]).lost, 1.0);
        assert_eq!(judge(Some(&u), &[c(1.0, &["LATAM"])]).lost, 1.0);
        // No data and nothing failing: unknown; a failure outranks no data.
        let grey = ComponentNow {
            impact: 0.0,
            unknown: true,
            segments: vec![],
        };
        assert_eq!(judge(None, std::slice::from_ref(&grey)), Judged::UNKNOWN);
        assert_eq!(
            judge(None, &[grey, c(1.0, &[])]),
            Judged {
                lost: 1.0,
                unknown: false
            }
        );
    }

    #[test]
    fn maintenance_is_taken_out_and_collector_downtime_is_unknown() {
        let m = MINUTE_MS;
        let (from, to) = (0, 600 * m);
        // Down 100–160; maintenance 130–145; the collector away 300–330.
        let timeline = [
            (0, Judged::UP),
            (
                100 * m,
                Judged {
                    lost: 1.0,
                    unknown: false,
                },
            ),
            (160 * m, Judged::UP),
        ];
        let r = report(&ReportInput {
            from_ms: from,
            to_ms: to,
            schedule: &Schedule::Always,
            excluded: &[(130 * m, 145 * m)],
            judging: &[(0, 300 * m), (330 * m, 600 * m)],
            timeline: &timeline,
            target_percent: 99.0,
            adjustments: &[],
        });
        assert_eq!(r.excluded_ms, 15 * m);
        assert_eq!(r.scheduled_ms, 585 * m);
        assert_eq!(r.unknown_ms, 30 * m);
        assert_eq!(r.known_ms, 555 * m);
        assert_eq!(r.raw_outage_ms, 45 * m);
        assert_eq!(r.availability_percent, (555.0 - 45.0) / 555.0 * 100.0);
        assert_eq!(
            r.outages.len(),
            1,
            "one outage, though maintenance cut through it"
        );
        assert_eq!(
            (r.outages[0].start_ms, r.outages[0].end_ms),
            (100 * m, 160 * m)
        );
        // Before the first state change nothing is known.
        let late = report(&ReportInput {
            timeline: &timeline[1..],
            ..ReportInput {
                from_ms: from,
                to_ms: to,
                schedule: &Schedule::Always,
                excluded: &[],
                judging: &[(0, to)],
                timeline: &[],
                target_percent: 99.0,
                adjustments: &[],
            }
        });
        assert_eq!(late.unknown_ms, 100 * m);
    }

    #[test]
    fn an_adjustment_reweights_its_outage_and_says_who_and_why() {
        let adj = Adjustment {
            outage_start_ms: WEEK_START + (24 + 10) * 60 * MINUTE_MS,
            share: 0.1,
            impact: 0.2,
            by: "Ada".into(),
            why: "only APAC's report feed".into(),
            at_ms: 0,
        };
        let timeline = hour_outage(1.0);
        let r = report(&ReportInput {
            from_ms: WEEK_START,
            to_ms: WEEK_START + WEEK,
            schedule: &Schedule::Always,
            excluded: &[],
            judging: &[(WEEK_START, WEEK_START + WEEK)],
            timeline: &timeline,
            target_percent: 99.9,
            adjustments: std::slice::from_ref(&adj),
        });
        assert!((r.weighted_outage_ms / MINUTE_MS as f64 - 1.2).abs() < 1e-9);
        assert_eq!(format!("{:.2}", r.availability_percent), "99.99");
        assert_eq!(r.outages[0].adjustment.as_ref(), Some(&adj));
    }

    #[test]
    fn burn_rates_and_the_workbook_windows() {
        // 99.9 %: 0.1 % may be lost. Losing 1.44 % of an hour burns 14.4×.
        assert!((burn_rate(0.0144 * 3_600_000.0, 3_600_000, 99.9) - 14.4).abs() < 1e-9);
        let month = burn_windows(30 * 86_400_000);
        assert_eq!(month.clone().map(|w| w.rate), [14.4, 6.0, 1.0]);
        assert_eq!(
            month.clone().map(|w| (w.long_ms, w.short_ms)),
            [
                (3_600_000, 300_000),
                (21_600_000, 1_800_000),
                (259_200_000, 21_600_000)
            ]
        );
        // 14.4× over an hour spends 14.4 / 720 = 2 % of a 30-day budget.
        assert!(
            (month[0].rate * month[0].long_ms as f64 / (30.0 * 86_400_000.0) - 0.02).abs() < 1e-12
        );
        // A 12-hour window: the same shares over windows 60× shorter.
        let half_day = burn_windows(12 * 3_600_000);
        assert_eq!(
            half_day.map(|w| (w.long_ms, w.short_ms)),
            [(60_000, 5_000), (360_000, 30_000), (4_320_000, 360_000)]
        );
    }
}
