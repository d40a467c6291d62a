//! Reports over incidents and alert history (docs/incidents.md,
//! "Reports" and "Noise"): the incident report (counts, time to
//! acknowledge and to restore, top talkers, recurring incidents,
//! follow-ups), the noise report (which rules everyone has learned to
//! ignore), and the postmortem document. Pure: records in, figures out.

use std::collections::{BTreeMap, HashMap};

use crate::incident::format_minutes as minutes;
use crate::incident::{
    ChangeRecord, FollowUp, Incident, IncidentEvent, IncidentState, Recurring, recurring,
};
use crate::notify::rfc3339;
use crate::store::HistoryRecord;

/// The median and the worst of some durations (ms), and how many.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub median_ms: f64,
    pub worst_ms: f64,
    pub count: usize,
}

/// The median (the mean of the two middle values for an even count) and
/// the largest of `values`.
pub fn spread(mut values: Vec<f64>) -> Spread {
    if values.is_empty() {
        return Spread::default();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median_ms = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Spread {
        median_ms,
        worst_ms: values[n - 1],
        count: n,
    }
}

/// One of the incidents that cost most.
#[derive(Clone, Debug, PartialEq)]
pub struct Talker {
    pub number: u64,
    pub title: String,
    pub weighted_minutes: f64,
    pub minutes: f64,
}

/// `nightjar report incidents`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IncidentReport {
    pub incidents: usize,
    pub by_severity: Vec<(String, usize)>,
    pub by_service: Vec<(String, usize)>,
    pub by_category: Vec<(String, usize)>,
    /// From open to the first acknowledgement.
    pub to_acknowledge: Spread,
    /// From open to resolved.
    pub to_restore: Spread,
    /// Most weighted minutes first, at most ten.
    pub top_talkers: Vec<Talker>,
    pub recurring: Vec<Recurring>,
    pub follow_ups_open: usize,
    /// Open follow-ups past their due date, the most overdue first.
    pub overdue: Vec<FollowUp>,
}

fn counted(map: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// The report of the incidents opened in `[from_ms, to_ms)`.
/// `weighted_minutes` gives an incident's minutes weighted by what its
/// services lost (from their availability timelines), or None for a
/// service without an availability target: its plain duration counts.
pub fn incident_report(
    incidents: &[Incident],
    follow_ups: &[FollowUp],
    recurring_count: usize,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
    weighted_minutes: &dyn Fn(&Incident) -> Option<f64>,
) -> IncidentReport {
    let inside: Vec<&Incident> = incidents
        .iter()
        .filter(|i| i.opened_ms >= from_ms && i.opened_ms < to_ms)
        .collect();
    let mut by_severity = BTreeMap::new();
    let mut by_service = BTreeMap::new();
    let mut by_category = BTreeMap::new();
    let mut tta = Vec::new();
    let mut ttr = Vec::new();
    let mut talkers = Vec::new();
    for i in &inside {
        *by_severity
            .entry(i.severity.as_str().to_owned())
            .or_default() += 1;
        if i.services.is_empty() {
            *by_service.entry("(no service)".to_owned()).or_default() += 1;
        }
        for s in &i.services {
            *by_service.entry(s.clone()).or_default() += 1;
        }
        let category = i.review.category.map_or("not reviewed", |c| c.as_str());
        *by_category.entry(category.to_owned()).or_default() += 1;
        if let Some(a) = &i.acked {
            tta.push((a.at_ms - i.opened_ms).max(0) as f64);
        }
        if i.state == IncidentState::Resolved
            && let Some(r) = i.resolved_ms
        {
            ttr.push((r - i.opened_ms).max(0) as f64);
        }
        let minutes = i.duration_ms(now_ms) as f64 / 60_000.0;
        talkers.push(Talker {
            number: i.number,
            title: i.title.clone(),
            weighted_minutes: weighted_minutes(i).unwrap_or(minutes),
            minutes,
        });
    }
    talkers.sort_by(|a, b| {
        b.weighted_minutes
            .total_cmp(&a.weighted_minutes)
            .then(a.number.cmp(&b.number))
    });
    talkers.truncate(10);
    let open: Vec<&FollowUp> = follow_ups.iter().filter(|f| f.state.is_open()).collect();
    let mut overdue: Vec<FollowUp> = open
        .iter()
        .filter(|f| f.overdue(now_ms))
        .map(|f| (*f).clone())
        .collect();
    overdue.sort_by_key(|f| f.due_ms);
    let owned: Vec<Incident> = inside.iter().map(|i| (*i).clone()).collect();
    IncidentReport {
        incidents: inside.len(),
        by_severity: counted(by_severity),
        by_service: counted(by_service),
        by_category: counted(by_category),
        to_acknowledge: spread(tta),
        to_restore: spread(ttr),
        top_talkers: talkers,
        recurring: recurring(&owned, follow_ups, recurring_count, from_ms, to_ms),
        follow_ups_open: open.len(),
        overdue,
    }
}

/// How noisy one rule was.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleNoise {
    pub rule: String,
    pub fired: usize,
    pub acknowledged: usize,
    pub ack_ratio: f64,
    /// Of the firings that resolved in the window.
    pub lifetime: Spread,
    pub shortest_ms: f64,
    /// Firings that resolved within [`SHORT_LIVED_MS`].
    pub short_lived: usize,
    pub flapping: usize,
    pub notifications: usize,
    pub series: usize,
    /// `fired × (1 − ack_ratio) + short_lived + flapping`: firings nobody
    /// acted on, plus those gone before anyone could.
    pub score: f64,
}

/// A firing shorter than this was gone before anyone could act on it.
pub const SHORT_LIVED_MS: i64 = 5 * 60_000;

/// The noisiest rules of `history` (oldest first) in `[from_ms, to_ms)`,
/// at most `limit`.
pub fn noise(history: &[HistoryRecord], from_ms: i64, to_ms: i64, limit: usize) -> Vec<RuleNoise> {
    #[derive(Default)]
    struct Acc {
        fired: usize,
        acked: usize,
        flapping: usize,
        notifications: usize,
        lifetimes: Vec<f64>,
        series: std::collections::BTreeSet<String>,
    }
    let mut per_rule: BTreeMap<String, Acc> = BTreeMap::new();
    let mut firing_since: HashMap<&str, i64> = HashMap::new();
    for h in history
        .iter()
        .filter(|h| h.at_ms >= from_ms && h.at_ms < to_ms && !h.rule.is_empty())
    {
        let acc = per_rule.entry(h.rule.clone()).or_default();
        match h.kind.as_str() {
            "fired" => {
                acc.fired += 1;
                acc.series.insert(h.alert_id.clone());
                firing_since.insert(&h.alert_id, h.at_ms);
            }
            "resolved" => {
                if let Some(start) = firing_since.remove(h.alert_id.as_str()) {
                    acc.lifetimes.push((h.at_ms - start) as f64);
                }
            }
            "acknowledged" => acc.acked += 1,
            "flapping" => acc.flapping += 1,
            "notified" => acc.notifications += 1,
            _ => {}
        }
    }
    let mut out: Vec<RuleNoise> = per_rule
        .into_iter()
        .filter(|(_, a)| a.fired > 0 || a.flapping > 0)
        .map(|(rule, a)| {
            let ack_ratio = if a.fired == 0 {
                0.0
            } else {
                (a.acked as f64 / a.fired as f64).min(1.0)
            };
            let short_lived = a
                .lifetimes
                .iter()
                .filter(|l| **l < SHORT_LIVED_MS as f64)
                .count();
            let shortest_ms = a.lifetimes.iter().copied().fold(f64::NAN, f64::min);
            RuleNoise {
                rule,
                fired: a.fired,
                acknowledged: a.acked,
                ack_ratio,
                lifetime: spread(a.lifetimes),
                shortest_ms: if shortest_ms.is_nan() {
                    0.0
                } else {
                    shortest_ms
                },
                short_lived,
                flapping: a.flapping,
                notifications: a.notifications,
                series: a.series.len(),
                score: a.fired as f64 * (1.0 - ack_ratio) + short_lived as f64 + a.flapping as f64,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.rule.cmp(&b.rule)));
    out.truncate(limit);
    out
}

fn or_tbd(text: &str) -> &str {
    if text.trim().is_empty() {
        "_To be written._"
    } else {
        text
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The postmortem of an incident, in Markdown, with the usual headings.
pub fn postmortem(
    incident: &Incident,
    timeline: &[IncidentEvent],
    changes_before: &[ChangeRecord],
    follow_ups: &[FollowUp],
    now_ms: i64,
) -> String {
    let r = &incident.review;
    let mut md = format!("# Postmortem: {} — {}\n\n", incident.id(), incident.title);
    md += &format!(
        "| | |\n|---|---|\n| Status | {} |\n| Severity | {} |\n| Services | {} |\n| Hosts | {} |\n| Opened | {} |\n",
        incident.state.as_str(),
        incident.severity.as_str(),
        if incident.services.is_empty() {
            "—".to_owned()
        } else {
            incident.services.join(", ")
        },
        cell(&incident.hosts().join(", ")),
        rfc3339(incident.opened_ms),
    );
    if let Some(a) = &incident.acked {
        md += &format!(
            "| Acknowledged | {} by {} (after {}) |\n",
            rfc3339(a.at_ms),
            cell(&a.by),
            minutes(a.at_ms - incident.opened_ms)
        );
    }
    match incident.resolved_ms {
        Some(t) => {
            md += &format!(
                "| Restored | {} (after {}) |\n",
                rfc3339(t),
                minutes(t - incident.opened_ms)
            )
        }
        None => {
            md += &format!(
                "| Restored | not yet (open {}) |\n",
                minutes(now_ms - incident.opened_ms)
            )
        }
    }
    md += &format!("| Alerts | {} |\n\n", incident.alerts.len());
    md += &format!("## Summary\n\n{}\n\n", or_tbd(&r.summary));
    md += "## Impact\n\n";
    match &r.impact {
        Some(i) => {
            md += &format!(
                "{:.0}% of users were hit; they could not do {:.0}% of their work, for {}.\n\n",
                i.user_share * 100.0,
                i.functional * 100.0,
                minutes(incident.duration_ms(now_ms))
            )
        }
        None => md += "_Not yet assessed._\n\n",
    }
    md += &format!(
        "## Root causes\n\n{}{}\n\n",
        r.category
            .map_or(String::new(), |c| format!("**Category:** {}. ", c.as_str())),
        or_tbd(&r.root_cause)
    );
    md += &format!("## Trigger\n\n{}\n\n", or_tbd(&r.trigger));
    if !r.change_id.is_empty() {
        md += &format!("Linked change: {}\n\n", r.change_id);
    }
    md += &format!("## Resolution\n\n{}\n\n", or_tbd(&r.resolution));
    md += &format!(
        "## Detection\n\n{}\n\n",
        if r.detection.is_empty() {
            "alert (Nightjar)"
        } else {
            &r.detection
        }
    );
    md += "## Action items\n\n";
    if follow_ups.is_empty() {
        md += "_None yet._\n\n";
    } else {
        md += "| Id | Action | Kind | Owner | Due | State |\n|---|---|---|---|---|---|\n";
        for f in follow_ups {
            md += &format!(
                "| {} | {} | {} | {} | {} | {}{} |\n",
                f.id(),
                cell(&f.title),
                f.kind.as_str(),
                cell(&f.owner),
                if f.due_ms > 0 {
                    rfc3339(f.due_ms)[..10].to_owned()
                } else {
                    "—".into()
                },
                f.state.as_str(),
                if f.overdue(now_ms) { " (overdue)" } else { "" }
            );
        }
        md += "\n";
    }
    md += &format!("## Lessons learned\n\n{}\n\n", or_tbd(&r.lessons));
    if !changes_before.is_empty() {
        md += "## What changed before\n\n| Time (UTC) | Change | By | Risk |\n|---|---|---|---|\n";
        for c in changes_before {
            md += &format!(
                "| {} | {} {} | {} | {} |\n",
                rfc3339(c.at_ms),
                c.id,
                cell(&c.what),
                cell(&c.by),
                c.risk.as_str()
            );
        }
        md += "\n";
    }
    md += "## Timeline\n\n| Time (UTC) | Event | By | Detail |\n|---|---|---|---|\n";
    for e in timeline {
        md += &format!(
            "| {} | {} | {} | {} |\n",
            rfc3339(e.at_ms),
            e.kind,
            cell(&e.by),
            cell(&e.detail)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Ack;
    use crate::incident::{Category, Review};
    use crate::state::Level;

    #[test]
    fn spread_takes_the_middle_and_the_worst() {
        let s = spread(vec![9.0, 1.0, 5.0]);
        assert_eq!((s.median_ms, s.worst_ms, s.count), (5.0, 9.0, 3));
        assert_eq!(spread(vec![4.0, 1.0, 3.0, 10.0]).median_ms, 3.5);
        assert_eq!(spread(Vec::new()), Spread::default());
    }

    fn incident(n: u64, opened: i64, ack_after: Option<i64>, lasted: i64, sev: Level) -> Incident {
        Incident {
            number: n,
            title: format!("i{n}"),
            state: IncidentState::Resolved,
            severity: sev,
            scope: vec!["service:shop".into()],
            services: vec!["shop".into()],
            alerts: Vec::new(),
            opened_ms: opened,
            acked: ack_after.map(|a| Ack {
                by: "ann".into(),
                note: String::new(),
                at_ms: opened + a,
            }),
            resolved_ms: Some(opened + lasted),
            resolved_by: String::new(),
            last_note_ms: opened,
            last_reminder_ms: 0,
            reopened: 0,
            reopened_ms: 0,
            review: Review {
                category: (n == 1).then_some(Category::Change),
                ..Review::default()
            },
        }
    }

    /// The worked example of docs/incidents.md, "Reports".
    #[test]
    fn the_worked_example_of_the_docs() {
        let m = 60_000;
        let incidents = vec![
            incident(1, 0, Some(2 * m), 30 * m, Level::Critical),
            incident(2, 100 * m, Some(6 * m), 10 * m, Level::Warning),
            incident(3, 200 * m, None, 90 * m, Level::Critical),
        ];
        // I3 hit a service with a target: its outage weighed 45 minutes.
        let weighted = |i: &Incident| (i.number == 3).then_some(45.0);
        let r = incident_report(&incidents, &[], 3, 0, 1_000 * m, 1_000 * m, &weighted);
        assert_eq!(r.incidents, 3);
        assert_eq!(
            r.by_severity,
            vec![("critical".to_owned(), 2), ("warning".to_owned(), 1)]
        );
        assert_eq!(r.to_acknowledge.median_ms, 4.0 * m as f64, "(2 + 6) / 2");
        assert_eq!(r.to_acknowledge.worst_ms, 6.0 * m as f64);
        assert_eq!(r.to_acknowledge.count, 2);
        assert_eq!(r.to_restore.median_ms, 30.0 * m as f64);
        assert_eq!(r.to_restore.worst_ms, 90.0 * m as f64);
        assert_eq!(
            r.top_talkers
                .iter()
                .map(|t| (t.number, t.weighted_minutes))
                .collect::<Vec<_>>(),
            vec![(3, 45.0), (1, 30.0), (2, 10.0)]
        );
        assert_eq!(
            r.recurring
                .iter()
                .map(|c| c.key.as_str())
                .collect::<Vec<_>>(),
            vec!["service:shop"],
            "three incidents of shop"
        );
        assert_eq!(
            r.by_category,
            vec![("not reviewed".to_owned(), 2), ("change".to_owned(), 1)]
        );
    }

    fn line(at_ms: i64, alert: &str, rule: &str, kind: &str) -> HistoryRecord {
        HistoryRecord {
            at_ms,
            alert_id: alert.into(),
            rule: rule.into(),
            kind: kind.into(),
            severity: None,
            value: None,
            detail: String::new(),
        }
    }

    #[test]
    fn noise_ranks_unacked_short_lived_and_flapping_rules_first() {
        let m = 60_000;
        let mut history = Vec::new();
        // "blip": fires 4 times, a minute each, never acked.
        for k in 0..4 {
            history.push(line(k * 10 * m, "b1", "blip", "fired"));
            history.push(line(k * 10 * m + m, "b1", "blip", "resolved"));
        }
        // "real": fires twice, acked both times, lasts an hour.
        for k in 0..2 {
            history.push(line(k * 100 * m, "r1", "real", "fired"));
            history.push(line(k * 100 * m + m, "r1", "real", "acknowledged"));
            history.push(line(k * 100 * m + 60 * m, "r1", "real", "resolved"));
        }
        history.push(line(5 * m, "f1", "flappy", "flapping"));
        history.sort_by_key(|h| h.at_ms);
        let rows = noise(&history, 0, 1_000 * m, 10);
        let names: Vec<&str> = rows.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(names, vec!["blip", "flappy", "real"]);
        let blip = &rows[0];
        assert_eq!(
            (blip.fired, blip.acknowledged, blip.short_lived, blip.score),
            (4, 0, 4, 8.0)
        );
        assert_eq!(blip.lifetime.median_ms, m as f64);
        let real = &rows[2];
        assert_eq!((real.ack_ratio, real.score), (1.0, 0.0));
        assert_eq!(real.lifetime.median_ms, 60.0 * m as f64);
    }

    #[test]
    fn the_postmortem_has_the_usual_headings_in_order() {
        let i = incident(7, 0, Some(60_000), 600_000, Level::Critical);
        let md = postmortem(
            &i,
            &[IncidentEvent::new(
                7,
                0,
                "opened",
                "shop: disk | full".into(),
            )],
            &[],
            &[],
            600_000,
        );
        let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headings,
            vec![
                "# Postmortem: I7 — i7",
                "## Summary",
                "## Impact",
                "## Root causes",
                "## Trigger",
                "## Resolution",
                "## Detection",
                "## Action items",
                "## Lessons learned",
                "## Timeline",
            ]
        );
        assert!(md.contains("| 1970-01-01T00:00:00.000Z | opened |  | shop: disk \\| full |"));
        assert!(md.contains("after 1 min"), "{md}");
    }
}
