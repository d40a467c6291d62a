//! Incidents, follow-ups and changes (docs/incidents.md): the records
//! production support keeps about an outage, and the pure rules over them.
//! An [`Incident`] gathers the alerts of one outage of one scope (its
//! services, or else its host); its [`IncidentEvent`]s are its timeline;
//! its [`Review`] is what is learnt afterwards; [`FollowUp`]s are the
//! actions that stop it happening again; [`ChangeRecord`]s are what was
//! changed in production, so "what changed?" has an answer.
//!
//! The alerter (`alerter/incidents.rs`) keeps these records and writes
//! them through the alert store in the same synced write as the alert
//! transitions that cause them; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::{Ack, Alert};
use crate::state::Level;
use nightjar_model::service::Service;

/// Whether an incident is still going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Some of its alerts fire (or an operator has not yet resolved it).
    Open,
    /// All its alerts resolved, or an operator resolved it.
    Resolved,
}

impl IncidentState {
    /// `open` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One alert of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentAlert {
    /// The alert's id.
    pub alert_id: String,
    /// Its rule.
    pub rule: String,
    /// Its host label ("" when none).
    pub host: String,
    /// Its series.
    pub series: String,
    /// Its summary when it last changed.
    pub summary: String,
    /// Its severity now; `None` once resolved.
    pub severity: Option<Level>,
    /// The worst severity it reached in this incident.
    pub worst: Level,
    /// When it (last) fired in this incident.
    pub fired_ms: i64,
    /// When it resolved, if it has.
    pub resolved_ms: Option<i64>,
    /// Its labels (routing the incident's notices).
    pub labels: BTreeMap<String, String>,
}

/// Why the outage happened, as a category reports can count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Change,
    Capacity,
    Hardware,
    SoftwareDefect,
    Configuration,
    Dependency,
    Unknown,
}

impl Category {
    /// Every category, in the order the docs list them.
    pub const ALL: [Category; 7] = [
        Category::Change,
        Category::Capacity,
        Category::Hardware,
        Category::SoftwareDefect,
        Category::Configuration,
        Category::Dependency,
        Category::Unknown,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Change => "change",
            Category::Capacity => "capacity",
            Category::Hardware => "hardware",
            Category::SoftwareDefect => "software_defect",
            Category::Configuration => "configuration",
            Category::Dependency => "dependency",
            Category::Unknown => "unknown",
        }
    }

    /// Parses a name (`software-defect` is taken as `software_defect`).
    pub fn parse(text: &str) -> Result<Category, String> {
        let t = text.trim().to_ascii_lowercase().replace('-', "_");
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "category: {text:?} is not one of {}",
                    Category::ALL.map(Category::as_str).join(", ")
                )
            })
    }
}

/// The impact an operator assesses after the incident: what the
/// availability report counts for its outage instead of the computed
/// weighting.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    /// Share of users hit, 0–1.
    pub user_share: f64,
    /// How much of their work they could not do, 0–1.
    pub functional: f64,
}

/// What is learnt after the incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Review {
    pub summary: String,
    pub root_cause: String,
    pub category: Option<Category>,
    pub trigger: String,
    pub resolution: String,
    /// How it was detected: `alert`, `customer report`, ...
    pub detection: String,
    /// The change that caused it (a [`ChangeRecord`] id or the change
    /// system's own).
    pub change_id: String,
    pub lessons: String,
    pub impact: Option<Impact>,
}

/// One record per outage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Its number; shown as `I<number>`.
    pub number: u64,
    /// A line saying what it is (from its first alert; operators may edit).
    pub title: String,
    pub state: IncidentState,
    /// The worst severity of its firing alerts (the worst it reached once
    /// resolved).
    pub severity: Level,
    /// Scope tags (`service:<name>`, else `host:<name>`, else
    /// `rule:<name>`): an alert joins an open incident sharing one.
    pub scope: Vec<String>,
    /// The services it hits directly (its alerts' components).
    pub services: Vec<String>,
    /// Its alerts, in the order they joined.
    pub alerts: Vec<IncidentAlert>,
    pub opened_ms: i64,
    /// The first acknowledgement (of the incident or of one of its alerts).
    pub acked: Option<Ack>,
    pub resolved_ms: Option<i64>,
    /// Who resolved it by hand ("" when its alerts did).
    #[serde(default)]
    pub resolved_by: String,
    /// The last operator's note, or the open time.
    pub last_note_ms: i64,
    /// The last "update due" reminder (0 = none).
    #[serde(default)]
    pub last_reminder_ms: i64,
    /// How often it reopened inside the quiet period.
    #[serde(default)]
    pub reopened: u32,
    /// When it last reopened (0: never).
    #[serde(default)]
    pub reopened_ms: i64,
    #[serde(default)]
    pub review: Review,
}

impl Incident {
    /// `I<number>`.
    pub fn id(&self) -> String {
        format!("I{}", self.number)
    }

    /// Its distinct hosts, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .alerts
            .iter()
            .map(|a| a.host.as_str())
            .filter(|h| !h.is_empty())
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// The alerts still firing.
    pub fn firing(&self) -> impl Iterator<Item = &IncidentAlert> {
        self.alerts.iter().filter(|a| a.resolved_ms.is_none())
    }

    /// The worst severity of its firing alerts, if any fire.
    pub fn current_severity(&self) -> Option<Level> {
        self.firing().filter_map(|a| a.severity).max()
    }

    /// How long it lasted (to `now_ms` while open).
    pub fn duration_ms(&self, now_ms: i64) -> i64 {
        self.resolved_ms.unwrap_or(now_ms) - self.opened_ms
    }

    /// Whether `scope` shares a tag with it.
    pub fn shares_scope(&self, scope: &[String]) -> bool {
        scope.iter().any(|t| self.scope.contains(t))
    }
}

/// A duration for people, to the nearest minute: `7 min`, `1 h 5 min`
/// (timeline lines, notices, the postmortem).
pub fn format_minutes(ms: i64) -> String {
    let m = (ms.max(0) + 30_000) / 60_000;
    if m >= 60 {
        format!("{} h {} min", m / 60, m % 60)
    } else {
        format!("{m} min")
    }
}

/// Parses `I12` or `12`.
pub fn parse_incident_id(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.strip_prefix(['I', 'i']).unwrap_or(t);
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("incident id: {text:?} is not an incident id (I<number>)"))
}

/// One line of an incident's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// The incident's number.
    pub incident: u64,
    pub at_ms: i64,
    /// What happened: `opened`, `alert_fired`, `escalated`,
    /// `deescalated`, `flapping`, `alert_resolved`, `severity`,
    /// `queued`, `notified`, `delivery_failed`, `acknowledged`,
    /// `silenced`, `note`, `update_due`, `restored`, `resolved`,
    /// `reopened`, `set`.
    pub kind: String,
    /// Who did it (operators' actions), else "".
    #[serde(default)]
    pub by: String,
    /// The alert it concerns, if any.
    #[serde(default)]
    pub alert_id: String,
    /// Free text.
    #[serde(default)]
    pub detail: String,
}

impl IncidentEvent {
    /// A line about `incident` at `at_ms`.
    pub fn new(incident: u64, at_ms: i64, kind: &str, detail: String) -> IncidentEvent {
        IncidentEvent {
            incident,
            at_ms,
            kind: kind.to_owned(),
            by: String::new(),
            alert_id: String::new(),
            detail,
        }
    }
}

/// The `[alerting.incidents]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentConfig {
    /// Whether alerts open incidents at all.
    pub enabled: bool,
    /// A scope that fires again within this long after its incident
    /// resolved reopens that incident.
    pub quiet_period_ms: i64,
    /// Changes this long before an incident opened head its timeline.
    pub changes_lookback_ms: i64,
    /// This many incidents of one scope or (rule, host) ...
    pub recurring_count: usize,
    /// ... within this long make a candidate problem.
    pub recurring_window_ms: i64,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            enabled: true,
            quiet_period_ms: 30 * 60_000,
            changes_lookback_ms: 6 * 3_600_000,
            recurring_count: 3,
            recurring_window_ms: 30 * 86_400_000,
        }
    }
}

/// The scope of an alert: the services whose components select it (or
/// that its `service` label names), tagged `service:<name>`; without any,
/// its host (`host:<name>`); without a host, its rule. Returns the tags
/// and the service names.
pub fn scope_of(alert: &Alert, services: &[Service]) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = services
        .iter()
        .filter(|s| {
            s.components
                .iter()
                .any(|c| c.matches_alert(&alert.labels, &alert.series))
                || alert.labels.get("service") == Some(&s.name)
        })
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names.dedup();
    let tags = if !names.is_empty() {
        names.iter().map(|n| format!("service:{n}")).collect()
    } else if !alert.host().is_empty() {
        vec![format!("host:{}", alert.host())]
    } else {
        vec![format!("rule:{}", alert.rule)]
    };
    (tags, names)
}

/// `services` and everything they depend on, directly or not: whose
/// changes may explain their incident.
pub fn with_dependencies(names: &[String], services: &[Service]) -> BTreeSet<String> {
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(n) = todo.pop() {
        if out.insert(n.clone())
            && let Some(s) = by_name.get(n.as_str())
        {
            todo.extend(s.depends_on.iter().cloned());
        }
    }
    out
}

/// `names` and every service that depends on one of them, directly or
/// not: the services an incident of `names` hits (a red dependency makes
/// its dependents red too).
pub fn with_dependents(names: &[String], services: &[Service]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = names.iter().cloned().collect();
    loop {
        let more: Vec<String> = services
            .iter()
            .filter(|s| !out.contains(&s.name) && s.depends_on.iter().any(|d| out.contains(d)))
            .map(|s| s.name.clone())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// What a follow-up action does about the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    Prevent,
    Detect,
    Mitigate,
}

impl FollowUpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpKind::Prevent => "prevent",
            FollowUpKind::Detect => "detect",
            FollowUpKind::Mitigate => "mitigate",
        }
    }

    pub fn parse(text: &str) -> Result<FollowUpKind, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "prevent" => Ok(FollowUpKind::Prevent),
            "detect" => Ok(FollowUpKind::Detect),
            "mitigate" => Ok(FollowUpKind::Mitigate),
            _ => Err(format!(
                "kind: {text:?} is not one of prevent, detect, mitigate"
            )),
        }
    }
}

/// Where a follow-up is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    Open,
    InProgress,
    Done,
    WontDo,
}

impl FollowUpState {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpState::Open => "open",
            FollowUpState::InProgress => "in_progress",
            FollowUpState::Done => "done",
            FollowUpState::WontDo => "wont_do",
        }
    }

    pub fn parse(text: &str) -> Result<FollowUpState, String> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .replace('\'', "")
            .as_str()
        {
            "open" => Ok(FollowUpState::Open),
            "in_progress" => Ok(FollowUpState::InProgress),
            "done" => Ok(FollowUpState::Done),
            "wont_do" => Ok(FollowUpState::WontDo),
            _ => Err(format!(
                "state: {text:?} is not one of open, in_progress, done, wont_do"
            )),
        }
    }

    /// Whether it still needs doing.
    pub fn is_open(self) -> bool {
        matches!(self, FollowUpState::Open | FollowUpState::InProgress)
    }

    /// Checks a transition: work starts, stops, finishes or is declined;
    /// a finished or declined action can only be reopened.
    pub fn check_transition(self, to: FollowUpState) -> Result<(), String> {
        use FollowUpState::*;
        let allowed = match self {
            Open => matches!(to, InProgress | Done | WontDo),
            InProgress => matches!(to, Open | Done | WontDo),
            Done | WontDo => to == Open,
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "state: a follow-up cannot go from {} to {} (from {}: {})",
                self.as_str(),
                to.as_str(),
                self.as_str(),
                match self {
                    Open => "in_progress, done or wont_do",
                    InProgress => "open, done or wont_do",
                    Done | WontDo => "open (reopen) only",
                }
            ))
        }
    }
}

/// One action of problem management.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Its number; shown as `P<number>`.
    pub number: u64,
    pub title: String,
    pub owner: String,
    /// Due (end of that day, UTC, epoch ms); 0 = no date.
    pub due_ms: i64,
    pub kind: FollowUpKind,
    pub state: FollowUpState,
    /// The incidents it follows up (numbers).
    pub incidents: Vec<u64>,
    #[serde(default)]
    pub note: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When it was done (or declined); 0 while open.
    #[serde(default)]
    pub closed_ms: i64,
}

impl FollowUp {
    /// `P<number>`.
    pub fn id(&self) -> String {
        format!("P{}", self.number)
    }

    /// Open and past its due date.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.state.is_open() && self.due_ms > 0 && now_ms > self.due_ms
    }
}

/// Parses `P7` or `7`.
pub fn parse_follow_up_id(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.strip_prefix(['P', 'p']).unwrap_or(t);
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("follow-up id: {text:?} is not a follow-up id (P<number>)"))
}

/// Parses a due date: `YYYY-MM-DD` (due by the end of that day, UTC) or
/// an RFC 3339 time. Returns epoch ms.
pub fn parse_due(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(date) = t.parse::<jiff::civil::Date>()
        && t.len() == 10
    {
        let end = date
            .at(23, 59, 59, 999_000_000)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| format!("due: {text:?}: {e}"))?;
        return Ok(end.timestamp().as_millisecond());
    }
    match t.parse::<jiff::Timestamp>() {
        Ok(ts) => Ok(ts.as_millisecond()),
        Err(_) => Err(format!(
            "due: {text:?} is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-12-24T17:00:00Z)"
        )),
    }
}

/// How risky a change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }

    pub fn parse(text: &str) -> Result<Risk, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            _ => Err(format!("risk: {text:?} is not one of low, medium, high")),
        }
    }
}

/// A change made in production.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// `C<seq>`.
    pub id: String,
    /// What was changed.
    pub what: String,
    /// Who changed it.
    pub by: String,
    pub services: Vec<String>,
    pub hosts: Vec<String>,
    /// When it was made (epoch ms).
    pub at_ms: i64,
    pub risk: Risk,
    #[serde(default)]
    pub backout: String,
    /// When it was recorded.
    pub recorded_ms: i64,
}

impl ChangeRecord {
    /// Whether it touched one of `services` or `hosts`.
    pub fn touches(&self, services: &BTreeSet<String>, hosts: &[String]) -> bool {
        self.services.iter().any(|s| services.contains(s))
            || self.hosts.iter().any(|h| hosts.contains(h))
    }
}

/// The first line of an incident's title from its first alert.
pub fn title_for(alert: &Alert, services: &[String]) -> String {
    let what = if alert.summary.is_empty() {
        alert.rule.clone()
    } else {
        alert.summary.clone()
    };
    if services.is_empty() {
        what
    } else {
        format!("{}: {what}", services.join(", "))
    }
}

/// A scope or (rule, host) that had incidents often: a candidate problem.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurring {
    /// `service:<name>` or `<rule> on <host>`.
    pub key: String,
    /// Its incidents in the window, oldest first.
    pub incidents: Vec<u64>,
    /// Whether a follow-up already names one of them.
    pub has_follow_up: bool,
}

/// The scopes and (rule, host) pairs with at least `count` incidents
/// opened in `[from_ms, to_ms)`, most first.
pub fn recurring(
    incidents: &[Incident],
    follow_ups: &[FollowUp],
    count: usize,
    from_ms: i64,
    to_ms: i64,
) -> Vec<Recurring> {
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in incidents
        .iter()
        .filter(|i| i.opened_ms >= from_ms && i.opened_ms < to_ms)
    {
        let mut keys: BTreeSet<String> =
            i.services.iter().map(|s| format!("service:{s}")).collect();
        for a in &i.alerts {
            let host = if a.host.is_empty() { "-" } else { &a.host };
            keys.insert(format!("{} on {host}", a.rule));
        }
        for k in keys {
            by_key.entry(k).or_default().push(i.number);
        }
    }
    let mut out: Vec<Recurring> = by_key
        .into_iter()
        .filter(|(_, v)| v.len() >= count.max(1))
        .map(|(key, mut incidents)| {
            incidents.sort_unstable();
            let has_follow_up = follow_ups
                .iter()
                .any(|f| f.incidents.iter().any(|n| incidents.contains(n)));
            Recurring {
                key,
                incidents,
                has_follow_up,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.incidents
            .len()
            .cmp(&a.incidents.len())
            .then(a.key.cmp(&b.key))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_or_without_their_letter_and_refuse_anything_else() {
        assert_eq!(parse_incident_id("I12"), Ok(12));
        assert_eq!(parse_incident_id("12"), Ok(12));
        assert!(parse_incident_id("I0").is_err());
        let e = parse_incident_id("X9").unwrap_err();
        assert!(e.contains("\"X9\" is not an incident id"), "{e}");
        assert_eq!(parse_follow_up_id("p3"), Ok(3));
        assert!(parse_follow_up_id("P-1").is_err());
    }

    #[test]
    fn due_dates_are_the_end_of_the_day_or_an_exact_time() {
        // 2026-12-24T23:59:59.999Z
        assert_eq!(parse_due("2026-12-24"), Ok(1_798_156_799_999));
        assert_eq!(parse_due("2026-12-24T17:00:00Z"), Ok(1_798_131_600_000));
        let e = parse_due("24/12/2026").unwrap_err();
        assert!(
            e.contains("due: \"24/12/2026\" is not a date (YYYY-MM-DD)"),
            "{e}"
        );
        assert!(parse_due("next week").is_err());
    }

    #[test]
    fn follow_up_transitions_that_do_not_exist_are_refused() {
        use FollowUpState::*;
        assert!(Open.check_transition(InProgress).is_ok());
        assert!(InProgress.check_transition(Done).is_ok());
        assert!(Done.check_transition(Open).is_ok());
        let e = Done.check_transition(InProgress).unwrap_err();
        assert!(
            e.contains("cannot go from done to in_progress") && e.contains("open (reopen) only"),
            "{e}"
        );
        assert!(Open.check_transition(Open).is_err());
        assert!(WontDo.check_transition(Done).is_err());
        assert_eq!(FollowUpState::parse("won't do"), Ok(WontDo));
        assert_eq!(FollowUpState::parse("in-progress"), Ok(InProgress));
        assert!(FollowUpState::parse("closed").is_err());
    }

    #[test]
    fn categories_parse_and_name_the_choices_when_wrong() {
        assert_eq!(
            Category::parse("software-defect"),
            Ok(Category::SoftwareDefect)
        );
        let e = Category::parse("cosmic rays").unwrap_err();
        assert!(e.contains("change, capacity, hardware"), "{e}");
    }

    fn incident(number: u64, opened_ms: i64, service: &str, rule: &str, host: &str) -> Incident {
        Incident {
            number,
            title: String::new(),
            state: IncidentState::Resolved,
            severity: Level::Warning,
            scope: vec![format!("service:{service}")],
            services: vec![service.into()],
            alerts: vec![IncidentAlert {
                alert_id: "a".into(),
                rule: rule.into(),
                host: host.into(),
                series: String::new(),
                summary: String::new(),
                severity: None,
                worst: Level::Warning,
                fired_ms: opened_ms,
                resolved_ms: Some(opened_ms + 1),
                labels: BTreeMap::new(),
            }],
            opened_ms,
            acked: None,
            resolved_ms: Some(opened_ms + 1),
            resolved_by: String::new(),
            last_note_ms: opened_ms,
            last_reminder_ms: 0,
            reopened: 0,
            reopened_ms: 0,
            review: Review::default(),
        }
    }

    #[test]
    fn an_incident_hits_its_services_and_all_that_depend_on_them() {
        let text = r#"
[[service]]
name = "shop"
depends_on = ["api"]
[[service]]
name = "api"
depends_on = ["db"]
[[service]]
name = "db"
[[service.component]]
name = "db host"
layer = "machine"
matchers = ["host=db-1"]
[[service]]
name = "mail"
[[service.component]]
name = "mail host"
layer = "machine"
matchers = ["host=mail-1"]
"#;
        let services: Vec<Service> = nightjar_model::service::parse_services("s.toml", text)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let hit = with_dependents(&["db".to_owned()], &services);
        assert_eq!(
            hit.into_iter().collect::<Vec<_>>(),
            vec!["api", "db", "shop"]
        );
        let cause = with_dependencies(&["shop".to_owned()], &services);
        assert_eq!(
            cause.into_iter().collect::<Vec<_>>(),
            vec!["api", "db", "shop"]
        );
    }

    #[test]
    fn recurring_incidents_of_one_service_or_rule_and_host_are_candidates() {
        let day = 86_400_000;
        let incidents = vec![
            incident(1, day, "shop", "disk_full", "web-1"),
            incident(2, 2 * day, "shop", "disk_full", "web-1"),
            incident(3, 3 * day, "shop", "cpu", "web-2"),
            incident(4, 4 * day, "db", "disk_full", "db-1"),
            // Outside the window.
            incident(5, 40 * day, "shop", "cpu", "web-2"),
        ];
        let follow = FollowUp {
            number: 1,
            title: "t".into(),
            owner: "o".into(),
            due_ms: 0,
            kind: FollowUpKind::Prevent,
            state: FollowUpState::Open,
            incidents: vec![2],
            note: String::new(),
            created_ms: 0,
            updated_ms: 0,
            closed_ms: 0,
        };
        let got = recurring(&incidents, &[follow], 2, 0, 30 * day);
        assert_eq!(
            got.iter()
                .map(|r| (r.key.as_str(), r.incidents.clone(), r.has_follow_up))
                .collect::<Vec<_>>(),
            vec![
                ("service:shop", vec![1, 2, 3], true),
                ("disk_full on web-1", vec![1, 2], true),
            ]
        );
        assert!(recurring(&incidents, &[], 4, 0, 30 * day).is_empty());
    }
}
