//! Rule evaluation: samples in, alert transitions out. Holds every
//! (rule, series) it has seen with its window and [`AlertState`], and the
//! hosts for the built-in `host_down` rule.
//!
//! Pure apart from the memory it keeps: time comes in as arguments
//! (a sample's timestamp for thresholds, the receive time for absence), so
//! the live collector and `nightjar rules backtest` run the same code.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::HOST_DOWN_RULE;
use super::rules::{Rule, RuleKind};
use super::state::{AlertState, Level, Timing, Transition};
use super::window::Window;
use nightjar_model::model::{Batch, SeriesKey};

/// Interval assumed for a host that did not report one.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;

/// An acknowledgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// Why / what is being done.
    pub note: String,
    /// When (ms).
    pub at_ms: i64,
}

/// One (rule, series) alert as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: a hash of rule and series (what `nightjar ack` takes).
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The series, as `metric{labels}` (or the host for host_down).
    pub series: String,
    /// Series labels, rule labels and `alertname`.
    pub labels: BTreeMap<String, String>,
    /// The state machine.
    pub state: AlertState,
    /// The rule's summary rendered at the last transition.
    pub summary: String,
    /// The rule's runbook URL.
    pub runbook: String,
    /// Acknowledgement of the current incident.
    pub ack: Option<Ack>,
    /// When a notification of the current incident was last queued (0 = never).
    pub notified_ms: i64,
    /// The highest severity notified in this incident; its resolve takes
    /// the same routes.
    #[serde(default)]
    pub notified_level: Option<Level>,
    /// Whether the escalation hook was notified in this incident.
    pub escalated: bool,
    /// When a sample of the series (or a batch of the host) last arrived.
    pub last_seen_ms: i64,
    /// The incident (number) it belongs to while it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<u64>,
    /// Whether that incident is one of services (its notifications travel
    /// together) rather than of one host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incident_of_services: bool,
}

impl Alert {
    /// The `host` label, or "".
    pub fn host(&self) -> &str {
        self.labels.get("host").map_or("", String::as_str)
    }

    /// Key for notifications of the current incident: the same for its
    /// trigger, repeats, acknowledgement and resolve (PagerDuty's dedup_key).
    pub fn dedup_key(&self, started_ms: i64) -> String {
        format!("nightjar-{}-{}", self.id, started_ms)
    }
}

/// A transition of one alert, with the alert as it is afterwards.
#[derive(Clone, Debug)]
pub struct Event {
    /// The alert after the transition.
    pub alert: Alert,
    /// What changed.
    pub transition: Transition,
    /// The incident start the transition belongs to (for a resolve, the
    /// incident that ended).
    pub started_ms: i64,
}

/// The id of a (rule, series) pair: 16 hex digits of SHA-256, stable across
/// restarts and versions.
pub fn alert_id(rule: &str, series: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{rule}\0{series}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders a summary template.
pub fn render(
    template: &str,
    rule: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
    level: Option<Level>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + len].trim();
        match name {
            "value" => out.push_str(&format_value(value)),
            "rule" => out.push_str(rule),
            "severity" => out.push_str(level.map_or("ok", Level::as_str)),
            "host" => out.push_str(labels.get("host").map_or("", String::as_str)),
            _ => {
                let label = name.strip_prefix("labels.").unwrap_or(name);
                out.push_str(labels.get(label).map_or("", String::as_str));
            }
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A value as people read it: up to two decimals, no trailing zeros.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "none".into();
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

struct Tracked {
    alert: Alert,
    window: Window,
    rule: Arc<Rule>,
}

struct HostSeen {
    alert: Alert,
    interval_ms: u64,
}

/// Evaluates rules over incoming samples.
pub struct Engine {
    rules: Vec<Arc<Rule>>,
    by_metric: HashMap<String, Vec<usize>>,
    tracked: HashMap<String, Tracked>,
    hosts: HashMap<String, HostSeen>,
    /// `host_down` fires after this many silent intervals (0 = off).
    host_down_after: u32,
}

fn timing(rule: &Rule) -> Timing {
    Timing {
        for_ms: match rule.kind {
            RuleKind::Threshold { for_ms, .. } => for_ms,
            RuleKind::Absence { .. } => 0,
        },
        flap_changes: rule.flap_changes,
        flap_window_ms: rule.flap_window_ms,
    }
}

const HOST_TIMING: Timing = Timing {
    for_ms: 0,
    flap_changes: super::rules::DEFAULT_FLAP_CHANGES,
    flap_window_ms: super::rules::DEFAULT_FLAP_WINDOW_MS,
};

fn new_alert(rule: &Rule, series: &SeriesKey) -> Alert {
    let series_text = series.to_string();
    let mut labels: BTreeMap<String, String> = series
        .labels
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".into(), rule.name.clone());
    Alert {
        id: alert_id(&rule.name, &series_text),
        rule: rule.name.clone(),
        series: series_text,
        labels,
        state: AlertState::default(),
        summary: String::new(),
        runbook: rule.runbook.clone(),
        ack: None,
        notified_ms: 0,
        notified_level: None,
        escalated: false,
        last_seen_ms: 0,
        incident: None,
        incident_of_services: false,
    }
}

fn host_alert(host: &str) -> Alert {
    let labels = BTreeMap::from([
        ("alertname".to_owned(), HOST_DOWN_RULE.to_owned()),
        ("host".to_owned(), host.to_owned()),
    ]);
    Alert {
        id: alert_id(HOST_DOWN_RULE, host),
        rule: HOST_DOWN_RULE.into(),
        series: host.into(),
        labels,
        state: AlertState::default(),
        summary: String::new(),
        runbook: String::new(),
        ack: None,
        notified_ms: 0,
        notified_level: None,
        escalated: false,
        last_seen_ms: 0,
        incident: None,
        incident_of_services: false,
    }
}

/// Applies transitions to `alert`: summary, incident bookkeeping.
fn record(alert: &mut Alert, transitions: Vec<Transition>, summary: &str, out: &mut Vec<Event>) {
    for t in transitions {
        // For a resolve, the incident that just ended.
        let started_ms = alert.state.last_started_ms;
        alert.summary = render(summary, &alert.rule, &alert.labels, t.value, t.level);
        if t.change == super::state::Change::Fired {
            alert.ack = None;
            alert.notified_ms = 0;
            alert.notified_level = None;
            alert.escalated = false;
        }
        out.push(Event {
            alert: alert.clone(),
            transition: t,
            started_ms,
        });
    }
}

impl Engine {
    /// An engine with `rules`; `host_down_after` silent intervals make a
    /// host down (0 turns host_down off).
    pub fn new(rules: Vec<Rule>, host_down_after: u32) -> Engine {
        let mut engine = Engine {
            rules: Vec::new(),
            by_metric: HashMap::new(),
            tracked: HashMap::new(),
            hosts: HashMap::new(),
            host_down_after,
        };
        engine.install(rules);
        engine
    }

    fn install(&mut self, rules: Vec<Rule>) {
        self.rules = rules.into_iter().map(Arc::new).collect();
        self.by_metric.clear();
        for (i, rule) in self.rules.iter().enumerate() {
            self.by_metric
                .entry(rule.metric().to_owned())
                .or_default()
                .push(i);
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Replaces the rules. Alerts of unchanged rules keep their state;
    /// alerts of removed or changed rules are dropped, and those that were
    /// firing resolve (returned as events, at `now`). Returns the events and
    /// the ids of the dropped alerts.
    pub fn replace_rules(&mut self, rules: Vec<Rule>, now: i64) -> (Vec<Event>, Vec<String>) {
        let kept: HashMap<&str, &str> = rules
            .iter()
            .map(|r| (r.name.as_str(), r.fingerprint.as_str()))
            .collect();
        let mut events = Vec::new();
        let mut dropped = Vec::new();
        self.tracked.retain(|id, t| {
            if kept.get(t.rule.name.as_str()) == Some(&t.rule.fingerprint.as_str()) {
                return true;
            }
            if t.alert.state.level.is_some() {
                let mut state = t.alert.state.clone();
                let transitions = state.step(None, f64::NAN, now, &timing(&t.rule));
                t.alert.state = state;
                record(&mut t.alert, transitions, &t.rule.summary, &mut events);
            }
            dropped.push(id.clone());
            false
        });
        // Unchanged rules keep their Arc so tracked entries stay attached.
        let old: HashMap<String, Arc<Rule>> = self
            .rules
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        let mut next = Vec::with_capacity(rules.len());
        for rule in rules {
            match old.get(&rule.name) {
                Some(r) if r.fingerprint == rule.fingerprint => next.push((**r).clone()),
                _ => next.push(rule),
            }
        }
        self.install(next);
        let by_name: HashMap<&str, Arc<Rule>> = self
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.clone()))
            .collect();
        for t in self.tracked.values_mut() {
            if let Some(r) = by_name.get(t.rule.name.as_str()) {
                t.rule = r.clone();
            }
        }
        (events, dropped)
    }

    /// Restores alerts from storage (after a restart): their state, acks and
    /// notification bookkeeping carry on. Returns the alerts of rules that
    /// no longer exist (the caller deletes them).
    pub fn restore(&mut self, alerts: Vec<Alert>) -> Vec<Alert> {
        let mut orphans = Vec::new();
        for alert in alerts {
            if alert.rule == HOST_DOWN_RULE {
                let host = alert.host().to_owned();
                self.hosts.insert(
                    host,
                    HostSeen {
                        alert,
                        interval_ms: DEFAULT_INTERVAL_MS,
                    },
                );
                continue;
            }
            let Some(rule) = self.rules.iter().find(|r| r.name == alert.rule) else {
                orphans.push(alert);
                continue;
            };
            self.tracked.insert(
                alert.id.clone(),
                Tracked {
                    alert,
                    window: Window::default(),
                    rule: rule.clone(),
                },
            );
        }
        orphans
    }

    /// Fills the windows of the threshold rules selecting `series` with
    /// stored points (at start), without judging them: the first sample
    /// after a restart is judged over a full window, as before it.
    pub fn prime(&mut self, series: &SeriesKey, points: &[nightjar_model::model::Point]) {
        let Some(indices) = self.by_metric.get(&series.metric) else {
            return;
        };
        for &i in indices {
            let rule = &self.rules[i];
            let RuleKind::Threshold { window_ms, .. } = rule.kind else {
                continue;
            };
            if !rule.selector.matches(series) {
                continue;
            }
            let t = Self::entry(&mut self.tracked, rule, series);
            for p in points {
                t.window.push(*p, window_ms);
            }
        }
    }

    /// The longest window of any threshold rule (ms).
    pub fn longest_window_ms(&self) -> i64 {
        self.rules
            .iter()
            .filter_map(|r| match r.kind {
                RuleKind::Threshold { window_ms, .. } => Some(window_ms),
                RuleKind::Absence { .. } => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Makes a host known without a batch (at start, from storage), so that
    /// host_down fires if it never reports again.
    pub fn seed_host(&mut self, host: &str, last_seen_ms: i64, interval_ms: u64) {
        let seen = self
            .hosts
            .entry(host.to_owned())
            .or_insert_with(|| HostSeen {
                alert: host_alert(host),
                interval_ms,
            });
        seen.alert.last_seen_ms = seen.alert.last_seen_ms.max(last_seen_ms);
        if interval_ms > 0 {
            seen.interval_ms = interval_ms;
        }
    }

    /// Makes a series known to an absence rule without a sample (at start).
    pub fn seed_series(&mut self, series: &SeriesKey, last_seen_ms: i64) {
        let Some(indices) = self.by_metric.get(&series.metric) else {
            return;
        };
        for &i in indices {
            let rule = &self.rules[i];
            if !matches!(rule.kind, RuleKind::Absence { .. }) || !rule.selector.matches(series) {
                continue;
            }
            let t = Self::entry(&mut self.tracked, rule, series);
            t.alert.last_seen_ms = t.alert.last_seen_ms.max(last_seen_ms);
        }
    }

    fn entry<'a>(
        tracked: &'a mut HashMap<String, Tracked>,
        rule: &Arc<Rule>,
        series: &SeriesKey,
    ) -> &'a mut Tracked {
        // Per matching sample: only the id is computed; the alert (labels,
        // strings) is built once, when the pair is first seen.
        let series_text = series.to_string();
        tracked
            .entry(alert_id(&rule.name, &series_text))
            .or_insert_with(|| Tracked {
                alert: new_alert(rule, series),
                window: Window::default(),
                rule: rule.clone(),
            })
    }

    /// Whether any rule could look at a sample of `metric`.
    pub fn watches(&self, metric: &str) -> bool {
        self.by_metric.contains_key(metric)
    }

    /// Evaluates a stored batch received at `received_ms`; `track_host`:
    /// whether the batch's host counts for host_down (not for the
    /// collector's own metrics).
    pub fn observe(&mut self, batch: &Batch, received_ms: i64, track_host: bool) -> Vec<Event> {
        let mut events = Vec::new();
        if track_host && self.host_down_after > 0 {
            let seen = self
                .hosts
                .entry(batch.host.clone())
                .or_insert_with(|| HostSeen {
                    alert: host_alert(&batch.host),
                    interval_ms: DEFAULT_INTERVAL_MS,
                });
            if batch.interval_ms > 0 {
                seen.interval_ms = batch.interval_ms;
            }
            seen.alert.last_seen_ms = seen.alert.last_seen_ms.max(received_ms);
            if seen.alert.state.is_active() {
                let transitions = seen
                    .alert
                    .state
                    .step(None, f64::NAN, received_ms, &HOST_TIMING);
                record(&mut seen.alert, transitions, HOST_DOWN_SUMMARY, &mut events);
            }
        }
        for sample in &batch.samples {
            let Some(indices) = self.by_metric.get(&sample.series.metric) else {
                continue;
            };
            for &i in indices {
                let rule = &self.rules[i];
                if !rule.selector.matches(&sample.series) {
                    continue;
                }
                let t = Self::entry(&mut self.tracked, rule, &sample.series);
                let p = sample.point;
                match &rule.kind {
                    RuleKind::Threshold {
                        window_ms,
                        aggregation,
                        thresholds,
                        ..
                    } => {
                        if !t.window.push(p, *window_ms) {
                            continue;
                        }
                        t.alert.last_seen_ms = received_ms;
                        let value = t.window.value(*aggregation);
                        let target = thresholds.target(value, t.alert.state.level);
                        let transitions =
                            t.alert
                                .state
                                .step(target, value, p.timestamp_ms, &timing(rule));
                        record(&mut t.alert, transitions, &rule.summary, &mut events);
                    }
                    RuleKind::Absence { .. } => {
                        t.alert.last_seen_ms = received_ms;
                        if t.alert.state.is_active() {
                            let transitions =
                                t.alert
                                    .state
                                    .step(None, p.value, received_ms, &timing(rule));
                            record(&mut t.alert, transitions, &rule.summary, &mut events);
                        }
                    }
                }
            }
        }
        events
    }

    /// The periodic sweep at `now`: `for` durations that elapsed without a
    /// new sample, absence, host_down, and the end of flapping.
    pub fn sweep(&mut self, now: i64) -> Vec<Event> {
        let mut events = Vec::new();
        for t in self.tracked.values_mut() {
            let timing = timing(&t.rule);
            let transitions = match &t.rule.kind {
                RuleKind::Threshold { .. } => t.alert.state.tick(now, &timing),
                RuleKind::Absence { after_ms, severity } => {
                    if t.alert.last_seen_ms > 0 && now - t.alert.last_seen_ms >= *after_ms {
                        t.alert.state.step(Some(*severity), f64::NAN, now, &timing)
                    } else {
                        t.alert.state.tick(now, &timing)
                    }
                }
            };
            record(&mut t.alert, transitions, &t.rule.summary, &mut events);
        }
        if self.host_down_after > 0 {
            for seen in self.hosts.values_mut() {
                // Saturating: the interval comes from the wire (ingest
                // bounds it, but the engine does not rely on that).
                let after = i64::from(self.host_down_after)
                    .saturating_mul(i64::try_from(seen.interval_ms).unwrap_or(i64::MAX));
                let transitions = if now - seen.alert.last_seen_ms >= after {
                    seen.alert
                        .state
                        .step(Some(Level::Critical), f64::NAN, now, &HOST_TIMING)
                } else {
                    seen.alert.state.tick(now, &HOST_TIMING)
                };
                record(&mut seen.alert, transitions, HOST_DOWN_SUMMARY, &mut events);
            }
        }
        events
    }

    /// Every alert that is pending, firing or flapping.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.tracked
            .values()
            .map(|t| &t.alert)
            .chain(self.hosts.values().map(|h| &h.alert))
            .filter(|a| a.state.is_active())
    }

    /// The alert with `id`, if tracked.
    pub fn get(&self, id: &str) -> Option<&Alert> {
        if let Some(t) = self.tracked.get(id) {
            return Some(&t.alert);
        }
        self.hosts.values().map(|h| &h.alert).find(|a| a.id == id)
    }

    /// The alert with `id`, if tracked, mutable.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Alert> {
        if let Some(t) = self.tracked.get_mut(id) {
            return Some(&mut t.alert);
        }
        self.hosts
            .values_mut()
            .map(|h| &mut h.alert)
            .find(|a| a.id == id)
    }

    /// Every firing alert, mutable (for the repeat and escalation sweep).
    pub fn firing_mut(&mut self) -> impl Iterator<Item = &mut Alert> {
        self.tracked
            .values_mut()
            .map(|t| &mut t.alert)
            .chain(self.hosts.values_mut().map(|h| &mut h.alert))
            .filter(|a| a.state.level.is_some())
    }
}

/// Summary of host_down alerts.
const HOST_DOWN_SUMMARY: &str = "{{host}} sends no data";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rules;
    use crate::state::Change;
    use nightjar_model::model::{Point, Sample};

    /// (metric, labels, timestamp, value)
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], i64, f64);

    fn batch(host: &str, samples: &[Row<'_>]) -> Batch {
        Batch {
            agent_id: "a".into(),
            host: host.into(),
            seq: 1,
            interval_ms: 10_000,
            samples: samples
                .iter()
                .map(|(m, labels, t, v)| {
                    let mut l = labels.to_vec();
                    l.push(("host", host));
                    Sample {
                        series: SeriesKey::of(m, &l),
                        point: Point::new(*t, *v),
                    }
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    fn changes(events: &[Event]) -> Vec<(String, Change)> {
        events
            .iter()
            .map(|e| (e.alert.series.clone(), e.transition.change))
            .collect()
    }

    #[test]
    fn threshold_fires_per_series_with_labels_and_summary() {
        let rules = parse_rules(
            "r",
            "[[rule]]\nname = \"cpu\"\nmetric = \"cpu\"\nmatch = { cpu = \"total\" }\nwarning = 80\nlabels = { team = \"ops\" }\nsummary = \"{{host}} {{labels.team}} at {{value}}%\"\n",
        )
        .unwrap();
        let mut e = Engine::new(rules, 0);
        let ev = e.observe(
            &batch(
                "web-1",
                &[
                    ("cpu", &[("cpu", "total")], 1000, 91.256),
                    ("cpu", &[("cpu", "0")], 1000, 99.0),
                ],
            ),
            1000,
            true,
        );
        assert_eq!(ev.len(), 1);
        let alert = &ev[0].alert;
        assert_eq!(alert.summary, "web-1 ops at 91.26%");
        assert_eq!(alert.labels["alertname"], "cpu");
        assert_eq!(alert.labels["team"], "ops");
        assert_eq!(
            alert.id,
            alert_id("cpu", "cpu{cpu=\"total\",host=\"web-1\"}")
        );
        assert_eq!(e.active().count(), 1);
    }

    #[test]
    fn host_down_fires_after_silent_intervals_and_resolves_on_a_batch() {
        let mut e = Engine::new(Vec::new(), 3);
        e.observe(&batch("db-1", &[]), 0, true);
        assert!(e.sweep(29_999).is_empty());
        let ev = e.sweep(30_000);
        assert_eq!(changes(&ev), vec![("db-1".into(), Change::Fired)]);
        assert_eq!(ev[0].alert.summary, "db-1 sends no data");
        let ev = e.observe(&batch("db-1", &[]), 40_000, true);
        assert_eq!(changes(&ev), vec![("db-1".into(), Change::Resolved)]);
        assert_eq!(
            ev[0].started_ms, 30_000,
            "a resolve names the incident it ends"
        );
    }

    #[test]
    fn absence_rule_fires_for_a_silent_series() {
        let rules = parse_rules(
            "r",
            "[[rule]]\nname = \"gone\"\nkind = \"absence\"\nmetric = \"up\"\nafter = \"1m\"\n",
        )
        .unwrap();
        let mut e = Engine::new(rules, 0);
        e.seed_series(&SeriesKey::of("up", &[("host", "a")]), 1000);
        e.observe(&batch("b", &[("up", &[], 0, 1.0)]), 30_000, true);
        assert!(e.sweep(60_999).is_empty());
        let ev = e.sweep(61_000);
        assert_eq!(changes(&ev), vec![("up{host=\"a\"}".into(), Change::Fired)]);
        let ev = e.observe(&batch("a", &[("up", &[], 62_000, 1.0)]), 62_000, true);
        assert_eq!(
            changes(&ev),
            vec![("up{host=\"a\"}".into(), Change::Resolved)]
        );
    }

    #[test]
    fn primed_windows_judge_the_first_sample_after_a_restart_over_the_full_window() {
        let rules = parse_rules(
            "r",
            "[[rule]]\nname = \"hot\"\nmetric = \"t\"\nwindow = \"1m\"\nwarning = 50\n",
        )
        .unwrap();
        let mut e = Engine::new(rules, 0);
        assert_eq!(e.longest_window_ms(), 60_000);
        let key = SeriesKey::of("t", &[("host", "h")]);
        e.prime(
            &key,
            &[Point::new(10_000, 100.0), Point::new(20_000, 100.0)],
        );
        assert_eq!(e.active().count(), 0, "priming judges nothing");
        // avg(100, 100, 10) = 70 > 50: fires; an empty window would not.
        let ev = e.observe(&batch("h", &[("t", &[], 30_000, 10.0)]), 30_000, true);
        assert_eq!(changes(&ev), vec![("t{host=\"h\"}".into(), Change::Fired)]);
    }

    #[test]
    fn replacing_rules_keeps_unchanged_state_and_resolves_changed() {
        let text = |w: u32| {
            format!(
                "[[rule]]\nname = \"a\"\nmetric = \"m\"\nwarning = 1\n\n[[rule]]\nname = \"b\"\nmetric = \"n\"\nwarning = {w}\n"
            )
        };
        let mut e = Engine::new(parse_rules("r", &text(1)).unwrap(), 0);
        let ev = e.observe(
            &batch("h", &[("m", &[], 1, 5.0), ("n", &[], 1, 5.0)]),
            1,
            true,
        );
        assert_eq!(ev.len(), 2);
        let (ev, dropped) = e.replace_rules(parse_rules("r", &text(2)).unwrap(), 2);
        assert_eq!(
            changes(&ev),
            vec![("n{host=\"h\"}".into(), Change::Resolved)]
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            e.active().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
            vec!["a"]
        );
        // The unchanged rule's alert still fires: no second "fired".
        assert!(
            e.observe(&batch("h", &[("m", &[], 3, 5.0)]), 3, true)
                .is_empty()
        );
    }
}
