//! The alert state machine of one (rule, series): ok → pending → firing
//! (warning | critical) → resolved, with escalation and de-escalation,
//! `for` durations, recovery thresholds (hysteresis) and flap damping.
//!
//! Pure: every step takes `now`; nothing here reads a clock or does I/O.
//! Tested with text fixtures (see `tests` below and `fixtures/*.txt`).

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Alert severity, amber or red. Ordered: `Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Amber.
    Warning,
    /// Red.
    Critical,
}

impl Level {
    /// `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A threshold comparison: the alert condition is `value OP threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    /// Whether `value OP threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// Whether `a` lies strictly further in the alerting direction than `b`.
    pub fn beyond(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt | Op::Ge => a > b,
            Op::Lt | Op::Le => a < b,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// The thresholds of a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Comparison.
    pub op: Op,
    /// Amber threshold.
    pub warning: Option<f64>,
    /// Red threshold.
    pub critical: Option<f64>,
    /// A firing alert resolves only once `value OP recovery` no longer
    /// holds: the hysteresis that keeps a value hovering at the threshold
    /// from paging again and again.
    pub recovery: f64,
}

impl Thresholds {
    /// The level `value` calls for, given the level currently firing.
    pub fn target(&self, value: f64, firing: Option<Level>) -> Option<Level> {
        if value.is_nan() {
            return firing;
        }
        let past = |t: Option<f64>| t.is_some_and(|t| self.op.holds(value, t));
        if past(self.critical) {
            Some(Level::Critical)
        } else if past(self.warning) {
            Some(Level::Warning)
        } else if firing.is_some() && self.op.holds(value, self.recovery) {
            // Between recovery and the lowest threshold: stay firing at the
            // lowest level the rule has.
            Some(if self.warning.is_some() {
                Level::Warning
            } else {
                Level::Critical
            })
        } else {
            None
        }
    }
}

/// Timing parameters of the machine, from the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a level must be called for before it fires (or escalates).
    pub for_ms: i64,
    /// Flap damping: more than this many notified changes ...
    pub flap_changes: usize,
    /// ... within this window make the alert flapping.
    pub flap_window_ms: i64,
}

/// What a step changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The condition began; the alert waits for `for`.
    Pending,
    /// The condition ended before `for` elapsed.
    Cleared,
    /// The alert fired at a level.
    Fired,
    /// Warning → critical.
    Escalated,
    /// Critical → warning.
    Deescalated,
    /// The alert resolved.
    Resolved,
    /// Too many changes in the flap window: one notice, then quiet.
    Flapping,
    /// Stable again after flapping; carries the current level (or none).
    Stable,
}

impl Change {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Cleared => "cleared",
            Change::Fired => "fired",
            Change::Escalated => "escalated",
            Change::Deescalated => "deescalated",
            Change::Resolved => "resolved",
            Change::Flapping => "flapping",
            Change::Stable => "stable",
        }
    }
}

/// One transition of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// What happened.
    pub change: Change,
    /// The level after it (None = ok).
    pub level: Option<Level>,
    /// When (ms).
    pub at_ms: i64,
    /// The value that caused it (NaN for sweeps without a value).
    pub value: f64,
    /// Whether it is worth a notification (false while flapping, and for
    /// pending/cleared).
    pub notify: bool,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.change.as_str())?;
        if let Some(level) = self.level
            && !matches!(self.change, Change::Resolved | Change::Cleared)
        {
            write!(f, " {}", level.as_str())?;
        }
        if !self.notify && !matches!(self.change, Change::Pending | Change::Cleared) {
            f.write_str(" (quiet)")?;
        }
        Ok(())
    }
}

/// The persisted state of one (rule, series).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The firing level, None when ok or pending.
    pub level: Option<Level>,
    /// Per level (warning, critical): since when the value has called for at
    /// least that level without a break.
    pub held_since: [Option<i64>; 2],
    /// The level the value last called for.
    pub target: Option<Level>,
    /// When the current incident began firing (0 when ok).
    pub started_ms: i64,
    /// When the newest incident began firing (kept after it resolves, so a
    /// resolve can name the incident it ends).
    #[serde(default)]
    pub last_started_ms: i64,
    /// When the level last changed.
    pub changed_ms: i64,
    /// The newest value seen.
    pub value: f64,
    /// Times of recent notified changes, for flap damping.
    pub recent_changes: VecDeque<i64>,
    /// Flapping: changes are recorded but not notified.
    pub flapping: bool,
}

impl AlertState {
    /// Whether the state is worth keeping (anything but plain ok).
    pub fn is_active(&self) -> bool {
        self.level.is_some() || self.target.is_some() || self.flapping
    }

    /// Pending: the condition holds but `for` has not elapsed.
    pub fn is_pending(&self) -> bool {
        self.level.is_none() && self.target.is_some()
    }

    /// Feeds the level the newest value calls for (`target`, see
    /// [`Thresholds::target`]) at `now`; returns what changed.
    pub fn step(
        &mut self,
        target: Option<Level>,
        value: f64,
        now: i64,
        t: &Timing,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        if !value.is_nan() {
            self.value = value;
        }
        for level in [Level::Warning, Level::Critical] {
            let slot = &mut self.held_since[level.index()];
            if target >= Some(level) {
                slot.get_or_insert(now);
            } else {
                *slot = None;
            }
        }
        let was_pending = self.is_pending();
        self.target = target;
        // The highest level held for `for`; a lower target takes effect at once.
        let qualified = [Level::Critical, Level::Warning]
            .into_iter()
            .find(|l| self.held_since[l.index()].is_some_and(|since| now - since >= t.for_ms));
        let next = if target < self.level {
            target
        } else {
            self.level.max(qualified)
        };
        if next != self.level {
            let change = match (self.level, next) {
                (None, Some(_)) => Change::Fired,
                (Some(_), None) => Change::Resolved,
                (Some(a), Some(b)) if b > a => Change::Escalated,
                _ => Change::Deescalated,
            };
            if change == Change::Fired {
                self.started_ms = now;
                self.last_started_ms = now;
            }
            self.level = next;
            self.changed_ms = now;
            if next.is_none() {
                self.started_ms = 0;
            }
            out.push(self.notified(change, now, t));
        } else if self.is_pending() && !was_pending {
            out.push(self.quiet(Change::Pending, now));
        } else if was_pending && !self.is_pending() {
            out.push(self.quiet(Change::Cleared, now));
        }
        if let Some(stable) = self.check_stable(now, t) {
            out.push(stable);
        }
        out
    }

    /// Applies `for` and flap stability without a new value (the periodic
    /// sweep): an alert whose condition has held long enough fires even if
    /// no further sample arrives.
    pub fn tick(&mut self, now: i64, t: &Timing) -> Vec<Transition> {
        if !self.is_active() {
            return Vec::new();
        }
        self.step(self.target, f64::NAN, now, t)
    }

    fn quiet(&self, change: Change, now: i64) -> Transition {
        Transition {
            change,
            level: self.target,
            at_ms: now,
            value: self.value,
            notify: false,
        }
    }

    fn notified(&mut self, change: Change, now: i64, t: &Timing) -> Transition {
        self.recent_changes.push_back(now);
        while self
            .recent_changes
            .front()
            .is_some_and(|at| now - at > t.flap_window_ms)
        {
            self.recent_changes.pop_front();
        }
        let mut transition = Transition {
            change,
            level: self.level,
            at_ms: now,
            value: self.value,
            notify: !self.flapping,
        };
        if !self.flapping && self.recent_changes.len() > t.flap_changes {
            self.flapping = true;
            transition.change = Change::Flapping;
        }
        transition
    }

    /// Ends flapping once no change happened for a whole flap window; the
    /// notification carries the level at that moment.
    fn check_stable(&mut self, now: i64, t: &Timing) -> Option<Transition> {
        if !self.flapping || now - self.changed_ms < t.flap_window_ms {
            return None;
        }
        self.flapping = false;
        self.recent_changes.clear();
        Some(Transition {
            change: Change::Stable,
            level: self.level,
            at_ms: now,
            value: self.value,
            notify: true,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Fixture format, one step per line:
    //!
    //! ```text
    //! rule op=> warning=80 critical=95 recovery=70 for=30s flap=4/10m
    //! 0s   50   =>
    //! 10s  85   => pending warning
    //! 40s  tick => fired warning
    //! ```
    //!
    //! A step is `TIME VALUE` (a sample) or `TIME tick` (a sweep); after
    //! `=>` come the expected transitions, `;`-separated, as `Transition`
    //! displays them.
    use super::*;

    fn ms(text: &str) -> i64 {
        nightjar_common::duration::parse("time", text)
            .unwrap_or_else(|e| panic!("{e}"))
            .as_millis() as i64
    }

    fn run_fixture(name: &str, text: &str) {
        let mut thresholds = Thresholds {
            op: Op::Gt,
            warning: None,
            critical: None,
            recovery: f64::NAN,
        };
        let mut timing = Timing {
            for_ms: 0,
            flap_changes: 4,
            flap_window_ms: ms("10m"),
        };
        let mut state = AlertState::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(params) = line.strip_prefix("rule ") {
                for param in params.split_whitespace() {
                    let (k, v) = param.split_once('=').unwrap();
                    match k {
                        "op" => {
                            thresholds.op = match v {
                                ">" => Op::Gt,
                                ">=" => Op::Ge,
                                "<" => Op::Lt,
                                _ => Op::Le,
                            }
                        }
                        "warning" => thresholds.warning = Some(v.parse().unwrap()),
                        "critical" => thresholds.critical = Some(v.parse().unwrap()),
                        "recovery" => thresholds.recovery = v.parse().unwrap(),
                        "for" => timing.for_ms = ms(v),
                        "flap" => {
                            let (n, w) = v.split_once('/').unwrap();
                            timing.flap_changes = n.parse().unwrap();
                            timing.flap_window_ms = ms(w);
                        }
                        other => panic!("{name}:{}: unknown parameter {other}", n + 1),
                    }
                }
                if thresholds.recovery.is_nan() {
                    thresholds.recovery = thresholds.warning.or(thresholds.critical).unwrap();
                }
                continue;
            }
            let (step, expected) = line.split_once("=>").unwrap_or((line, ""));
            let mut parts = step.split_whitespace();
            let now = ms(parts.next().unwrap());
            let got = match parts.next().unwrap() {
                "tick" => state.tick(now, &timing),
                v => {
                    let value: f64 = v.parse().unwrap();
                    let target = thresholds.target(value, state.level);
                    state.step(target, value, now, &timing)
                }
            };
            let got: Vec<String> = got.iter().map(ToString::to_string).collect();
            let expected: Vec<String> = expected
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            assert_eq!(got, expected, "{name}:{}: {line}", n + 1);
        }
    }

    macro_rules! fixture {
        ($name:ident) => {
            #[test]
            fn $name() {
                run_fixture(
                    stringify!($name),
                    include_str!(concat!("fixtures/", stringify!($name), ".txt")),
                );
            }
        };
    }

    fixture!(fires_at_once_without_for);
    fixture!(for_delays_firing);
    fixture!(escalates_and_deescalates);
    fixture!(hysteresis_holds_until_recovery);
    fixture!(flapping_notifies_once_then_quiet);
    fixture!(below_thresholds_for_less_than);
}
