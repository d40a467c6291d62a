//! Service files: TOML `[[service]]` tables, validated into [`Service`]s.
//! A service is what the business sees (checkout, price feed): its owners
//! and contacts, and its components in three layers (machine, application,
//! business), each selecting the alerts and series that say how it is.
//! Services may depend on others; a dependency's trouble is theirs too.
//! Every error names the file, the line, the service and the field, as
//! rule files do (`alert/rules.rs`).
//!
//! ```toml
//! [[service]]
//! name = "checkout"
//! description = "Web shop checkout"
//! team = "payments"
//! weight = 2                      # optional, default 1
//! depends_on = ["payments_db"]
//!
//! [[service.contact]]
//! team = "payments on call"
//! hours = "Mon-Fri 08:00-18:00 Europe/London"
//! phone = "+44 20 7946 0000"
//! email = "payments-oncall@example.com"
//! chat = "#payments"
//!
//! [[service.component]]
//! name = "web hosts"
//! layer = "machine"               # machine | application | business
//! matchers = ["host=~web-.*"]
//!
//! [[service.component]]
//! name = "checkout latency"
//! layer = "business"
//! metric = "checkout_latency_seconds"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::availability::schedule::{Calendar, Schedule};
use crate::availability::timeline::Users;
use crate::config_files::{self, line_of};
use crate::selector::{MatchOp, Matcher, Selector};

/// The layers of a service's stack, bottom up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Machine health: CPU, memory, disk, swap, network.
    Machine,
    /// Application health: processes, units, errors, smoke tests.
    Application,
    /// Business processes: transactions happening within their SLA.
    Business,
}

impl Layer {
    /// All layers, bottom up.
    pub const ALL: [Layer; 3] = [Layer::Machine, Layer::Application, Layer::Business];

    /// The name used in files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Machine => "machine",
            Layer::Application => "application",
            Layer::Business => "business",
        }
    }

    fn parse(text: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// Whom to call, and when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// The team (or person).
    pub team: String,
    /// When they are on call, as text (`Mon-Fri 08:00-18:00 Europe/London`).
    pub hours: String,
    /// Phone number.
    pub phone: String,
    /// E-mail address.
    pub email: String,
    /// Chat channel.
    pub chat: String,
}

/// One block of a service's stack.
#[derive(Clone, Debug)]
pub struct Component {
    /// Unique within its service.
    pub name: String,
    /// Where it sits in the stack.
    pub layer: Layer,
    /// The alerts (by their labels) and series (metric and labels) that
    /// say how it is. Without a metric, any series with these labels.
    pub selector: Selector,
    /// The selector as written, for display.
    pub selector_text: String,
    /// How much of the users' work is lost while it is critical (0–1,
    /// default 1), and while it is warning (default 0).
    pub impact: f64,
    pub warning_impact: f64,
}

impl Component {
    /// Whether an alert with `labels` on `series` concerns this component:
    /// its matchers hold on the labels, and with a metric, the alert
    /// watches that metric, or it is the `host_down` of a host a machine
    /// component selects (a host that is down takes its machine blocks
    /// with it; the layers above show their own data).
    pub fn matches_alert(&self, labels: &BTreeMap<String, String>, series: &str) -> bool {
        let labels_hold = self
            .selector
            .matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map(String::as_str)));
        if !labels_hold {
            return false;
        }
        match &self.selector.metric {
            None => true,
            Some(metric) => {
                let watched = series.split('{').next().unwrap_or("");
                watched == metric
                    || (self.layer == Layer::Machine
                        && labels.get("alertname").is_some_and(|a| a == "host_down"))
            }
        }
    }
}

/// A validated service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Unique name.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// The owning team.
    pub team: String,
    /// Relative importance (default 1).
    pub weight: f64,
    /// Whom to call, in escalation order.
    pub contacts: Vec<Contact>,
    /// Its components.
    pub components: Vec<Component>,
    /// Services it needs.
    pub depends_on: Vec<String>,
    /// Its agreed availability, if it has a target (docs/availability.md).
    pub availability: Option<Availability>,
}

/// What a service's availability is measured against.
#[derive(Clone, Debug)]
pub struct Availability {
    /// The agreed availability, percent (e.g. 99.9).
    pub target_percent: f64,
    /// The window of the error budget and the burn rates (default 30 days).
    pub slo_window_ms: i64,
    /// When it is agreed to be available.
    pub schedule: Schedule,
    /// Who its users are, by an alert label; `None`: one group.
    pub users: Option<Users>,
}

/// A service file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The file.
    pub file: String,
    /// Line (1-based), 0 when not known.
    pub line: usize,
    /// The service, if it got that far.
    pub service: String,
    /// The field (`component "web hosts": matchers`), or "".
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.service.is_empty() {
            write!(f, ": service {:?}", self.service)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ServiceError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    service: Vec<toml::Spanned<RawService>>,
    #[serde(default)]
    calendar: Vec<toml::Spanned<RawCalendar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    name: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    hours: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    label: Option<String>,
    #[serde(default)]
    shares: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Option<String>,
    description: Option<String>,
    team: Option<String>,
    weight: Option<f64>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    contact: Vec<RawContact>,
    #[serde(default)]
    component: Vec<toml::Spanned<RawComponent>>,
    availability_target: Option<f64>,
    slo_window: Option<String>,
    schedule: Option<String>,
    users: Option<RawUsers>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContact {
    team: Option<String>,
    hours: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    chat: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    name: Option<String>,
    layer: Option<String>,
    metric: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    impact: Option<f64>,
    warning_impact: Option<f64>,
}

fn is_service_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses one service file's text; `file` names it in errors. References
/// between services are checked by [`check_references`] once every file
/// is read.
pub fn parse_services(file: &str, text: &str) -> Result<Vec<(Service, usize)>, ServiceError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ServiceError {
        file: file.to_owned(),
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        service: String::new(),
        field: String::new(),
        reason: e.message().trim_end().to_owned(),
    })?;
    let mut calendars: BTreeMap<String, Calendar> = BTreeMap::new();
    for spanned in raw.calendar {
        let line = line_of(text, spanned.span().start);
        let c = spanned.into_inner();
        let name = c.name.unwrap_or_default();
        let err = |field: &str, reason: String| ServiceError {
            file: file.to_owned(),
            line,
            service: String::new(),
            field: format!("calendar {name:?}: {field}"),
            reason,
        };
        if name.is_empty() || name == "24x7" {
            return Err(err("name", "missing (and \"24x7\" is taken)".into()));
        }
        let Some(tz) = c.timezone else {
            return Err(err(
                "timezone",
                "missing; write an IANA name like \"Europe/London\"".into(),
            ));
        };
        let calendar = Calendar::new(&name, &tz, &c.hours, &c.holidays).map_err(|e| {
            let (field, reason) = e.0.split_once(": ").unwrap_or(("", &e.0));
            err(field, reason.to_owned())
        })?;
        if calendars.insert(name.clone(), calendar).is_some() {
            return Err(err("name", "declared twice in this file".into()));
        }
    }
    let mut out = Vec::with_capacity(raw.service.len());
    for spanned in raw.service {
        let line = line_of(text, spanned.span().start);
        let raw = spanned.into_inner();
        let name = raw.name.clone().unwrap_or_default();
        let err = |line: usize, field: &str, reason: String| ServiceError {
            file: file.to_owned(),
            line,
            service: name.clone(),
            field: field.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(err(line, "name", "missing".into()));
        }
        if !is_service_name(&name) {
            return Err(err(
                line,
                "name",
                format!("{name:?}: use letters, digits, _ and -"),
            ));
        }
        let weight = raw.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            return Err(err(line, "weight", format!("{weight} must be above 0")));
        }
        let contacts = raw
            .contact
            .into_iter()
            .map(|c| Contact {
                team: c.team.unwrap_or_default(),
                hours: c.hours.unwrap_or_default(),
                phone: c.phone.unwrap_or_default(),
                email: c.email.unwrap_or_default(),
                chat: c.chat.unwrap_or_default(),
            })
            .collect();
        if raw.component.is_empty() && raw.depends_on.is_empty() {
            return Err(err(
                line,
                "component",
                "a service needs at least one component or dependency".into(),
            ));
        }
        let mut components: Vec<Component> = Vec::new();
        for spanned in raw.component {
            let line = line_of(text, spanned.span().start);
            let c = spanned.into_inner();
            let cname = c.name.unwrap_or_default();
            let field = |key: &str| format!("component {cname:?}: {key}");
            if cname.is_empty() {
                return Err(err(line, "component: name", "missing".into()));
            }
            if components.iter().any(|o| o.name == cname) {
                return Err(err(
                    line,
                    &field("name"),
                    "used twice in this service".into(),
                ));
            }
            let layer_text = c.layer.unwrap_or_default();
            let layer = Layer::parse(&layer_text).ok_or_else(|| {
                err(
                    line,
                    &field("layer"),
                    format!("{layer_text:?}: write machine, application or business"),
                )
            })?;
            let matchers = c
                .matchers
                .iter()
                .map(|m| Matcher::parse(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(line, &field("matchers"), e))?;
            if c.metric.is_none() && matchers.is_empty() {
                return Err(err(
                    line,
                    &field("matchers"),
                    "without a metric or matchers it would match every alert".into(),
                ));
            }
            if let Some(why) = contradiction(&matchers) {
                return Err(err(line, &field("matchers"), why));
            }
            let share = |key: &str, v: Option<f64>, default: f64| match v {
                None => Ok(default),
                Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
                Some(v) => Err(err(
                    line,
                    &field(key),
                    format!("{v} must be between 0 and 1 (a share of the users' work)"),
                )),
            };
            let impact = share("impact", c.impact, 1.0)?;
            let warning_impact = share("warning_impact", c.warning_impact, 0.0)?;
            let mut text_parts: Vec<String> = c.matchers.clone();
            if let Some(m) = &c.metric {
                text_parts.insert(0, m.clone());
            }
            components.push(Component {
                name: cname,
                layer,
                selector: Selector {
                    metric: c.metric,
                    matchers,
                },
                selector_text: text_parts.join(" "),
                impact,
                warning_impact,
            });
        }
        let availability = availability_of(
            &raw.availability_target,
            raw.slo_window,
            raw.schedule,
            raw.users,
            &calendars,
        )
        .map_err(|(field, reason)| err(line, field, reason))?;
        out.push((
            Service {
                name,
                description: raw.description.unwrap_or_default(),
                team: raw.team.unwrap_or_default(),
                weight,
                contacts,
                components,
                depends_on: raw.depends_on,
                availability,
            },
            line,
        ));
    }
    Ok(out)
}

/// The availability section of a service: its target, SLO window,
/// schedule (a calendar of the same file, or 24×7) and user shares.
fn availability_of(
    target: &Option<f64>,
    window: Option<String>,
    schedule: Option<String>,
    users: Option<RawUsers>,
    calendars: &BTreeMap<String, Calendar>,
) -> Result<Option<Availability>, (&'static str, String)> {
    let Some(target) = *target else {
        for (field, given) in [
            ("slo_window", window.is_some()),
            ("schedule", schedule.is_some()),
            ("users", users.is_some()),
        ] {
            if given {
                return Err((
                    field,
                    "needs availability_target (the agreed availability, e.g. 99.9)".into(),
                ));
            }
        }
        return Ok(None);
    };
    if !(target > 0.0 && target < 100.0) {
        return Err((
            "availability_target",
            format!("{target} must be a percentage above 0 and below 100, e.g. 99.9"),
        ));
    }
    let slo_window_ms = match window {
        None => 30 * 86_400_000,
        Some(w) => {
            let d = nightjar_common::duration::parse("slo_window", &w)
                .map_err(|e| ("slo_window", e.to_string()))?;
            if d < std::time::Duration::from_secs(3600) {
                return Err(("slo_window", format!("{w:?} is shorter than an hour")));
            }
            d.as_millis() as i64
        }
    };
    let schedule = match schedule.as_deref() {
        None | Some("24x7") => Schedule::Always,
        Some(name) => Schedule::Calendar(calendars.get(name).cloned().ok_or_else(|| {
            (
                "schedule",
                format!("no calendar is named {name:?} in this file; declare [[calendar]] name = {name:?} here, or write \"24x7\""),
            )
        })?),
    };
    let users = match users {
        None => None,
        Some(u) => {
            let label = u.label.unwrap_or_default();
            if label.is_empty() {
                return Err((
                    "users",
                    "label: missing (the alert label that names the users hit, e.g. \"region\")"
                        .into(),
                ));
            }
            if u.shares.is_empty() {
                return Err((
                    "users",
                    "shares: missing, e.g. { AMRS = 0.5, EMEA = 0.4, APAC = 0.1 }".into(),
                ));
            }
            if let Some((k, v)) = u.shares.iter().find(|(_, v)| !(**v > 0.0 && **v <= 1.0)) {
                return Err((
                    "users",
                    format!("shares: {k} = {v} must be above 0 and at most 1"),
                ));
            }
            let sum: f64 = u.shares.values().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(("users", format!("shares: they sum to {sum}, not 1")));
            }
            Some(Users {
                label,
                shares: u.shares,
            })
        }
    };
    Ok(Some(Availability {
        target_percent: target,
        slo_window_ms,
        schedule,
        users,
    }))
}

/// Why `matchers` can match nothing, if they cannot: two equalities on
/// one label with different values, or an equality the same label's
/// inequality or regex refuses.
fn contradiction(matchers: &[Matcher]) -> Option<String> {
    for m in matchers {
        let MatchOp::Equal(value) = &m.op else {
            continue;
        };
        for other in matchers.iter().filter(|o| o.name == m.name) {
            if !other.matches(Some(value)) {
                return Some(format!(
                    "label {:?} cannot be {value:?} and match another of them at once: these matchers match nothing",
                    m.name
                ));
            }
        }
    }
    None
}

/// Checks names and dependencies across all files: every name once, every
/// dependency declared, no cycle. `located` carries each service's file and
/// line for the errors.
pub fn check_references(located: &[(Service, String, usize)]) -> Result<(), ServiceError> {
    let err =
        |(s, file, line): &(Service, String, usize), field: &str, reason: String| ServiceError {
            file: file.clone(),
            line: *line,
            service: s.name.clone(),
            field: field.to_owned(),
            reason,
        };
    let mut seen = BTreeMap::new();
    for entry in located {
        if let Some((file, line)) = seen.insert(entry.0.name.as_str(), (&entry.1, entry.2)) {
            return Err(err(
                entry,
                "name",
                format!("also declared at {file}:{line}"),
            ));
        }
    }
    for entry in located {
        for dep in &entry.0.depends_on {
            if !seen.contains_key(dep.as_str()) {
                return Err(err(
                    entry,
                    "depends_on",
                    format!("no service is named {dep:?}"),
                ));
            }
        }
    }
    // Depth-first search for a cycle, reporting its path.
    let by_name: BTreeMap<&str, &(Service, String, usize)> =
        located.iter().map(|e| (e.0.name.as_str(), e)).collect();
    let mut done = BTreeSet::new();
    for entry in located {
        let mut path = Vec::new();
        if let Some(cycle) = find_cycle(entry.0.name.as_str(), &by_name, &mut path, &mut done) {
            return Err(err(
                by_name[cycle[0]],
                "depends_on",
                format!(
                    "services depend on each other in a circle: {}",
                    cycle.join(" → ")
                ),
            ));
        }
    }
    Ok(())
}

fn find_cycle<'a>(
    name: &'a str,
    by_name: &BTreeMap<&'a str, &'a (Service, String, usize)>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    if let Some(at) = path.iter().position(|p| *p == name) {
        let mut cycle = path[at..].to_vec();
        cycle.push(name);
        return Some(cycle);
    }
    if done.contains(name) {
        return None;
    }
    path.push(name);
    for dep in &by_name[name].0.depends_on {
        if let Some(cycle) = find_cycle(dep.as_str(), by_name, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(name);
    None
}

/// Loads service files and directories (`*.toml` in a directory, sorted)
/// and checks the references between them.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Service>, ServiceError> {
    let files = config_files::toml_files(paths).map_err(|(path, e)| io_error(&path, e))?;
    let mut located = Vec::new();
    for file in files {
        let text = config_files::read(&file).map_err(|(path, e)| io_error(&path, e))?;
        let name = file.display().to_string();
        for (service, line) in parse_services(&name, &text)? {
            located.push((service, name.clone(), line));
        }
    }
    check_references(&located)?;
    Ok(located.into_iter().map(|(s, _, _)| s).collect())
}

fn io_error(path: &Path, e: std::io::Error) -> ServiceError {
    ServiceError {
        file: path.display().to_string(),
        line: 0,
        service: String::new(),
        field: String::new(),
        reason: format!("cannot read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
[[service]]
name = "checkout"
team = "payments"
depends_on = ["payments_db"]

[[service.contact]]
team = "payments on call"
phone = "+44 20 7946 0000"

[[service.component]]
name = "web hosts"
layer = "machine"
matchers = ["host=~web-.*"]

[[service.component]]
name = "latency"
layer = "business"
metric = "checkout_latency_seconds"

[[service]]
name = "payments_db"

[[service.component]]
name = "db host"
layer = "machine"
matchers = ["host=db-1"]
"#;

    fn error(text: &str) -> String {
        let located: Result<Vec<_>, _> = parse_services("s.toml", text).map(|v| {
            v.into_iter()
                .map(|(s, line)| (s, "s.toml".to_owned(), line))
                .collect::<Vec<_>>()
        });
        match located.and_then(|l| check_references(&l)) {
            Ok(()) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_shop_parses_with_layers_contacts_and_dependencies() {
        let services = parse_services("s.toml", SHOP).unwrap();
        assert_eq!(services.len(), 2);
        let (checkout, line) = &services[0];
        assert_eq!(*line, 2);
        assert_eq!(checkout.team, "payments");
        assert_eq!(checkout.weight, 1.0);
        assert_eq!(checkout.contacts[0].phone, "+44 20 7946 0000");
        assert_eq!(checkout.components[0].layer, Layer::Machine);
        assert_eq!(
            checkout.components[1].selector.metric.as_deref(),
            Some("checkout_latency_seconds")
        );
        assert_eq!(checkout.depends_on, vec!["payments_db"]);
        let located: Vec<_> = services
            .into_iter()
            .map(|(s, l)| (s, "s.toml".to_owned(), l))
            .collect();
        check_references(&located).unwrap();
    }

    #[test]
    fn components_match_alerts_by_labels_and_metric() {
        let services = parse_services("s.toml", SHOP).unwrap();
        let web = &services[0].0.components[0];
        let latency = &services[0].0.components[1];
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        assert!(web.matches_alert(&labels(&[("host", "web-1")]), "cpu{host=\"web-1\"}"));
        assert!(!web.matches_alert(&labels(&[("host", "db-1")]), "cpu{host=\"db-1\"}"));
        assert!(latency.matches_alert(
            &labels(&[("host", "web-1")]),
            "checkout_latency_seconds{host=\"web-1\"}"
        ));
        assert!(!latency.matches_alert(&labels(&[("host", "web-1")]), "cpu{host=\"web-1\"}"));
    }

    const AVAILABLE: &str = "[[calendar]]\nname = \"london\"\ntimezone = \"Europe/London\"\nhours = [\"Mon-Fri 07:00-19:00\"]\nholidays = [\"2026-12-25\"]\n\n[[service]]\nname = \"reports\"\navailability_target = 99.5\nschedule = \"london\"\nslo_window = \"7d\"\nusers = { label = \"region\", shares = { AMRS = 0.5, EMEA = 0.4, APAC = 0.1 } }\n[[service.component]]\nname = \"feed\"\nlayer = \"business\"\nmetric = \"feed_rows\"\nimpact = 0.2\nwarning_impact = 0.05\n";

    #[test]
    fn availability_targets_schedules_users_and_impacts_parse() {
        let (s, _) = parse_services("s.toml", AVAILABLE).unwrap().remove(0);
        let a = s.availability.expect("an availability section");
        assert_eq!(a.target_percent, 99.5);
        assert_eq!(a.slo_window_ms, 7 * 86_400_000);
        assert_eq!(a.schedule.name(), "london");
        let users = a.users.unwrap();
        assert_eq!(
            (users.label.as_str(), users.shares["APAC"]),
            ("region", 0.1)
        );
        assert_eq!(
            (s.components[0].impact, s.components[0].warning_impact),
            (0.2, 0.05)
        );
        // Without a target: no availability, full impact when critical.
        let plain = "[[service]]\nname = \"a\"\n[[service.component]]\nname = \"x\"\nlayer = \"machine\"\nmatchers = [\"host=a\"]\n";
        let (s, _) = parse_services("s.toml", plain).unwrap().remove(0);
        assert!(s.availability.is_none());
        assert_eq!(
            (s.components[0].impact, s.components[0].warning_impact),
            (1.0, 0.0)
        );
    }

    #[test]
    fn bad_availability_input_names_what_is_wrong() {
        let with = |from: &str, to: &str| error(&AVAILABLE.replace(from, to));
        assert_eq!(
            with("APAC = 0.1", "APAC = 0.05"),
            "s.toml:7: service \"reports\": users: shares: they sum to 0.9500000000000001, not 1"
        );
        assert!(with("Europe/London", "Europe/Atlantis").starts_with(
            "s.toml:1: calendar \"london\": timezone: \"Europe/Atlantis\" is not a known time zone"
        ));
        assert!(
            with("schedule = \"london\"", "schedule = \"paris\"")
                .contains("schedule: no calendar is named \"paris\" in this file")
        );
        assert!(
            with("availability_target = 99.5", "availability_target = 100")
                .contains("availability_target: 100 must be a percentage above 0 and below 100")
        );
        assert!(
            with("availability_target = 99.5\n", "")
                .contains("slo_window: needs availability_target")
        );
        assert!(
            with("impact = 0.2", "impact = 1.5")
                .contains("component \"feed\": impact: 1.5 must be between 0 and 1")
        );
        assert!(
            with("Mon-Fri 07:00-19:00", "Mon-Fri 19:00-07:00")
                .contains("calendar \"london\": hours: ")
        );
    }

    #[test]
    fn errors_name_file_line_service_and_field() {
        let missing = "[[service]]\nname = \"a\"\ndepends_on = [\"ghost\"]\n";
        assert_eq!(
            error(missing),
            "s.toml:1: service \"a\": depends_on: no service is named \"ghost\""
        );
        let cycle = "[[service]]\nname = \"a\"\ndepends_on = [\"b\"]\n\n[[service]]\nname = \"b\"\ndepends_on = [\"a\"]\n";
        assert!(
            error(cycle).contains("in a circle: a → b → a"),
            "{}",
            error(cycle)
        );
        let twice = "[[service]]\nname = \"a\"\ndepends_on = [\"a2\"]\n[[service]]\nname = \"a2\"\n[[service.component]]\nname = \"x\"\nlayer = \"machine\"\nmatchers = [\"host=h\"]\n[[service]]\nname = \"a\"\ndepends_on = [\"a2\"]\n";
        assert!(
            error(twice).contains("also declared at s.toml:1"),
            "{}",
            error(twice)
        );
        let layer = "[[service]]\nname = \"a\"\n\n[[service.component]]\nname = \"x\"\nlayer = \"os\"\nmatchers = [\"host=h\"]\n";
        assert_eq!(
            error(layer),
            "s.toml:4: service \"a\": component \"x\": layer: \"os\": write machine, application or business"
        );
        let nothing = "[[service]]\nname = \"a\"\n[[service.component]]\nname = \"x\"\nlayer = \"machine\"\nmatchers = [\"host=a\", \"host=b\"]\n";
        assert!(
            error(nothing).contains("match nothing"),
            "{}",
            error(nothing)
        );
        let everything =
            "[[service]]\nname = \"a\"\n[[service.component]]\nname = \"x\"\nlayer = \"machine\"\n";
        assert!(
            error(everything).contains("every alert"),
            "{}",
            error(everything)
        );
        let empty = "[[service]]\nname = \"a\"\n";
        assert!(
            error(empty).contains("at least one component"),
            "{}",
            error(empty)
        );
        assert!(error("[[service]]\nname = \"a\"\nowner = \"x\"\n").starts_with("s.toml:"));
    }
}
