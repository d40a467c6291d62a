//! Backtest: replays rules over recorded points with the same [`Engine`]
//! the collector runs, so a threshold can be tuned before it pages anyone.
//! Pure: history in, transitions out.

use super::engine::Engine;
use super::rules::Rule;
use super::state::{Change, Level};
use nightjar_model::model::{Batch, Point, Sample, SeriesKey};

/// One transition the rules would have made.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestEvent {
    /// When.
    pub at_ms: i64,
    /// The rule.
    pub rule: String,
    /// The series.
    pub series: String,
    /// What changed.
    pub change: Change,
    /// Level afterwards.
    pub level: Option<Level>,
    /// The value the rule computed.
    pub value: f64,
    /// Whether it would have sent a notification.
    pub notify: bool,
}

/// Replays `history` (points per series, any order) through `rules`,
/// sweeping every `sweep_ms` (as the collector does every second) from
/// `start_ms` to `end_ms`. Returns the transitions in time order.
pub fn run(
    rules: Vec<Rule>,
    history: &[(SeriesKey, Vec<Point>)],
    start_ms: i64,
    end_ms: i64,
    sweep_ms: i64,
) -> Vec<BacktestEvent> {
    let mut engine = Engine::new(rules, 0);
    let mut points: Vec<(i64, usize, Point)> = history
        .iter()
        .enumerate()
        .flat_map(|(i, (_, pts))| pts.iter().map(move |p| (p.timestamp_ms, i, *p)))
        .filter(|(t, _, _)| (start_ms..=end_ms).contains(t))
        .collect();
    points.sort_by_key(|(t, i, _)| (*t, *i));
    let sweep_ms = sweep_ms.max(1);
    let mut next_sweep = start_ms + sweep_ms;
    let mut out = Vec::new();
    let push = |events: Vec<super::engine::Event>, out: &mut Vec<BacktestEvent>| {
        out.extend(events.into_iter().map(|e| BacktestEvent {
            at_ms: e.transition.at_ms,
            rule: e.alert.rule,
            series: e.alert.series,
            change: e.transition.change,
            level: e.transition.level,
            value: e.transition.value,
            notify: e.transition.notify,
        }));
    };
    for (t, i, p) in points {
        while next_sweep < t {
            push(engine.sweep(next_sweep), &mut out);
            next_sweep += sweep_ms;
        }
        let key = &history[i].0;
        let batch = Batch {
            agent_id: String::new(),
            host: key.labels.get("host").unwrap_or_default().to_owned(),
            seq: 0,
            interval_ms: 0,
            samples: vec![Sample {
                series: key.clone(),
                point: p,
            }],
            histograms: Vec::new(),
        };
        push(engine.observe(&batch, t, false), &mut out);
    }
    while next_sweep <= end_ms {
        push(engine.sweep(next_sweep), &mut out);
        next_sweep += sweep_ms;
    }
    out
}

/// Notifications the events would have sent: notified transitions, except
/// resolves of incidents nobody was told about (there are none in a replay
/// without silences, so every notified transition counts).
pub fn notifications(events: &[BacktestEvent]) -> usize {
    events.iter().filter(|e| e.notify).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rules;

    #[test]
    fn replay_reports_fire_and_resolve_times() {
        let rules = parse_rules(
            "r",
            "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwarning = 50\nfor = \"30s\"\n",
        )
        .unwrap();
        let key = SeriesKey::of("temp", &[("host", "a")]);
        // 10 s samples: hot from 100 s to 200 s.
        let pts: Vec<Point> = (0..40)
            .map(|i| {
                let t = i * 10_000;
                Point::new(
                    t,
                    if (100_000..200_000).contains(&t) {
                        60.0
                    } else {
                        20.0
                    },
                )
            })
            .collect();
        let events = run(rules, &[(key, pts)], 0, 400_000, 1000);
        let summary: Vec<(i64, Change)> = events.iter().map(|e| (e.at_ms, e.change)).collect();
        assert_eq!(
            summary,
            vec![
                (100_000, Change::Pending),
                (130_000, Change::Fired),
                (200_000, Change::Resolved),
            ]
        );
        assert_eq!(notifications(&events), 2);
    }
}
