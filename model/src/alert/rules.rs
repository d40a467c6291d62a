//! Alert rule files: TOML `[[rule]]` tables, validated into [`Rule`]s.
//! Every error names the file, the line of the rule, the rule and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config_files::{self, line_of};
use crate::selector::{Matcher, Selector};

use super::state::{Level, Op, Thresholds};

/// The rules compiled into the collector, used when the config names none:
/// CPU, memory and disk thresholds behind `nightjar status`.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// Flap damping default: more than this many notified changes ...
pub const DEFAULT_FLAP_CHANGES: usize = 4;
/// ... within this window mark an alert flapping.
pub const DEFAULT_FLAP_WINDOW_MS: i64 = 10 * 60 * 1000;

/// How a threshold rule combines the points in its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowAgg {
    /// Mean of the points.
    Avg,
    /// Smallest point.
    Min,
    /// Largest point.
    Max,
    /// Newest point.
    Last,
}

/// What a rule watches.
#[derive(Clone, Debug)]
pub enum RuleKind {
    /// A value past a threshold.
    Threshold {
        /// Window the points are combined over (0 = each point alone).
        window_ms: i64,
        /// How the window combines.
        aggregation: WindowAgg,
        /// Thresholds, comparison and recovery.
        thresholds: Thresholds,
        /// How long the condition must hold before the alert fires.
        for_ms: i64,
    },
    /// No sample of a selected series for `after_ms`.
    Absence {
        /// Silence that makes the alert fire.
        after_ms: i64,
        /// The severity it fires with.
        severity: Level,
    },
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique name (`alertname`).
    pub name: String,
    /// The series it applies to.
    pub selector: Selector,
    /// The selector as written, for display and comparison.
    pub selector_text: String,
    /// Threshold or absence.
    pub kind: RuleKind,
    /// Labels added to each alert (team, service, ...).
    pub labels: BTreeMap<String, String>,
    /// Summary template: `{{host}}`, `{{value}}`, `{{rule}}`, `{{severity}}`,
    /// `{{labels.NAME}}`.
    pub summary: String,
    /// Runbook URL.
    pub runbook: String,
    /// Flap damping: more than `flap_changes` notified changes ...
    pub flap_changes: usize,
    /// ... within `flap_window_ms`.
    pub flap_window_ms: i64,
    /// The rule's text (normalised), to tell a changed rule from an unchanged one.
    pub fingerprint: String,
    /// `kind = "forecast"`: what the collector forecasts into
    /// [`FORECAST_METRIC`], which this (threshold) rule watches.
    pub forecast: Option<ForecastSpec>,
}

/// The series the collector emits for forecast rules (docs/capacity.md):
/// per rule and watched series, the seconds until the fit crosses the
/// threshold (0: crossed already; [`NO_FORECAST_S`]: not crossing, or the
/// fit is too poor to say).
pub const FORECAST_METRIC: &str = "forecast_seconds_to_threshold";

/// What "no crossing in sight" is written as: about 31.7 years.
pub const NO_FORECAST_S: f64 = 1.0e9;

/// A forecast rule's question: when does `selector` reach `threshold`?
#[derive(Clone, Debug)]
pub struct ForecastSpec {
    /// The series forecast.
    pub selector: Selector,
    pub selector_text: String,
    pub threshold: f64,
    /// Trouble on reaching it from below (usage) or from above (free space).
    pub limit: crate::capacity::fit::Limit,
    /// Fires when the crossing is predicted within this long.
    pub horizon_ms: i64,
    /// A fit worse than this says nothing (the alert stays quiet).
    pub min_r_squared: f64,
    /// The window fitted, back from now.
    pub over_ms: i64,
    pub fit: crate::capacity::fit::FitKind,
}

impl Rule {
    /// The metric name the rule selects (rules always name one).
    pub fn metric(&self) -> &str {
        self.selector.metric.as_deref().unwrap_or("")
    }
}

/// A rule file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The file.
    pub file: String,
    /// Line of the rule (1-based), 0 when not known.
    pub line: usize,
    /// The rule's name, if it got that far.
    pub rule: String,
    /// The field, or "" for the file as a whole.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.rule.is_empty() {
            write!(f, ": rule {:?}", self.rule)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RuleError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    kind: Option<String>,
    metric: Option<String>,
    #[serde(default, rename = "match")]
    match_: BTreeMap<String, String>,
    #[serde(default)]
    matchers: Vec<String>,
    window: Option<String>,
    aggregation: Option<WindowAgg>,
    op: Option<String>,
    warning: Option<f64>,
    critical: Option<f64>,
    recovery: Option<f64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    after: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    summary: Option<String>,
    runbook: Option<String>,
    flap_changes: Option<i64>,
    flap_window: Option<String>,
    /// `kind = "burn_rate"`: the service whose error budget it watches.
    service: Option<String>,
    /// `kind = "forecast"`: the threshold the series must not reach.
    threshold: Option<f64>,
    /// `kind = "forecast"`: fire when it is predicted within this long.
    horizon: Option<String>,
    /// `kind = "forecast"`: the least R² that may page. Default 0.8.
    min_r_squared: Option<f64>,
    /// `kind = "forecast"`: the window fitted. Default "6h".
    over: Option<String>,
    /// `kind = "forecast"`: linear (default), exponential, logarithmic, power.
    fit: Option<String>,
    /// `kind = "forecast"`: the threshold is a lower limit. Default false.
    lower: Option<bool>,
}

/// Whether a rule that is not a forecast rule names a forecast field.
fn forecast_fields(raw: &RawRule) -> Option<&'static str> {
    [
        ("threshold", raw.threshold.is_some()),
        ("horizon", raw.horizon.is_some()),
        ("min_r_squared", raw.min_r_squared.is_some()),
        ("over", raw.over.is_some()),
        ("fit", raw.fit.is_some()),
        ("lower", raw.lower.is_some()),
    ]
    .into_iter()
    .find(|(_, present)| *present)
    .map(|(f, _)| f)
}

/// `kind = "forecast"`: a threshold rule on [`FORECAST_METRIC`] (fires
/// below the horizon), carrying the forecast the collector computes.
fn forecast_rule(raw: RawRule, err: &dyn Fn(&str, String) -> RuleError) -> Result<Rule, RuleError> {
    for (field, present) in [
        ("window", raw.window.is_some()),
        ("aggregation", raw.aggregation.is_some()),
        ("op", raw.op.is_some()),
        ("warning", raw.warning.is_some()),
        ("critical", raw.critical.is_some()),
        ("recovery", raw.recovery.is_some()),
        ("after", raw.after.is_some()),
        ("service", raw.service.is_some()),
    ] {
        refuse(
            field,
            present,
            "forecast rules take metric, match, matchers, threshold, horizon, min_r_squared, over, fit, lower, severity, for, labels, summary, runbook and flap fields",
            err,
        )?;
    }
    let fingerprint = serde_json::to_string(&raw).unwrap_or_default();
    let name = raw.name.clone().unwrap_or_default();
    let threshold = raw.threshold.ok_or_else(|| {
        err(
            "threshold",
            "missing; the value the series must not reach".into(),
        )
    })?;
    if !threshold.is_finite() {
        return Err(err("threshold", "must be a finite number".into()));
    }
    let horizon_ms = duration_ms("horizon", raw.horizon.as_deref(), -1, err)?;
    if horizon_ms <= 0 {
        return Err(err(
            "horizon",
            "missing; how far ahead a crossing pages, e.g. \"24h\"".into(),
        ));
    }
    let min_r_squared = raw.min_r_squared.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&min_r_squared) {
        return Err(err(
            "min_r_squared",
            format!("{min_r_squared} is not between 0 and 1"),
        ));
    }
    let over_ms = duration_ms("over", raw.over.as_deref(), 6 * 3_600_000, err)?;
    if over_ms < 60_000 {
        return Err(err(
            "over",
            "must be at least 1m: a fit needs history".into(),
        ));
    }
    let fit = crate::capacity::fit::FitKind::parse(raw.fit.as_deref().unwrap_or("linear"))
        .map_err(|e| err("fit", e.trim_start_matches("fit: ").to_owned()))?;
    let level = match raw.severity.as_deref().unwrap_or("warning") {
        "warning" => Level::Warning,
        "critical" => Level::Critical,
        other => {
            return Err(err(
                "severity",
                format!("{other:?} is not warning or critical"),
            ));
        }
    };
    // The watched series: validated as a rule of its own would be.
    let watched = validate(
        RawRule {
            kind: Some("threshold".into()),
            warning: Some(threshold),
            threshold: None,
            horizon: None,
            min_r_squared: None,
            over: None,
            fit: None,
            lower: None,
            severity: None,
            for_: None,
            ..raw.clone()
        },
        err,
    )?;
    if watched.metric() == FORECAST_METRIC {
        return Err(err(
            "metric",
            "a forecast rule cannot forecast its own forecasts".into(),
        ));
    }
    let horizon_s = horizon_ms as f64 / 1000.0;
    let what = format!(
        "{} predicted to reach {threshold} within {}",
        watched.metric(),
        raw.horizon.clone().unwrap_or_default()
    );
    let mut rule = validate(
        RawRule {
            name: Some(name.clone()),
            kind: Some("threshold".into()),
            metric: Some(FORECAST_METRIC.into()),
            matchers: vec![format!("rule={name}")],
            op: Some("<".into()),
            warning: (level == Level::Warning).then_some(horizon_s),
            critical: (level == Level::Critical).then_some(horizon_s),
            // Quiet again only once the crossing is well beyond the horizon.
            recovery: Some(horizon_s * 1.25),
            for_: raw.for_.clone(),
            labels: raw.labels.clone(),
            summary: Some(
                raw.summary
                    .clone()
                    .unwrap_or_else(|| format!("{{{{host}}}}: {what} (in {{{{value}}}} s)")),
            ),
            runbook: raw.runbook.clone(),
            flap_changes: raw.flap_changes,
            flap_window: raw.flap_window.clone(),
            ..RawRule::default()
        },
        err,
    )?;
    rule.fingerprint = fingerprint;
    rule.forecast = Some(ForecastSpec {
        selector: watched.selector,
        selector_text: watched.selector_text,
        threshold,
        limit: if raw.lower.unwrap_or(false) {
            crate::capacity::fit::Limit::Lower
        } else {
            crate::capacity::fit::Limit::Upper
        },
        horizon_ms,
        min_r_squared,
        over_ms,
        fit,
    });
    Ok(rule)
}

/// The series the collector emits for burn-rate rules
/// (`docs/availability.md`): per service and condition, how fast the
/// budget burns over both of the condition's windows, as a multiple of the
/// condition's rate (1 = at the threshold).
pub const BURN_RATE_METRIC: &str = "service_burn_rate_ratio";

/// `kind = "burn_rate"`: two threshold rules on [`BURN_RATE_METRIC`], one
/// that pages (critical) on the fast and slow conditions and one
/// (`<name>_ticket`, warning) on the slow-burn ticket condition.
fn burn_rate_rules(
    raw: RawRule,
    err: &dyn Fn(&str, String) -> RuleError,
) -> Result<Vec<Rule>, RuleError> {
    for (field, present) in [
        ("metric", raw.metric.is_some()),
        ("match", !raw.match_.is_empty()),
        ("matchers", !raw.matchers.is_empty()),
        ("window", raw.window.is_some()),
        ("aggregation", raw.aggregation.is_some()),
        ("op", raw.op.is_some()),
        ("warning", raw.warning.is_some()),
        ("critical", raw.critical.is_some()),
        ("recovery", raw.recovery.is_some()),
        ("after", raw.after.is_some()),
        ("severity", raw.severity.is_some()),
    ] {
        refuse(
            field,
            present,
            "burn_rate rules take only service, for, labels, summary, runbook and flap fields: the metric and thresholds are the error budget's",
            err,
        )?;
    }
    let name = raw.name.clone().unwrap_or_default();
    let mut service_matcher = Vec::new();
    if let Some(service) = &raw.service {
        if service.is_empty() {
            return Err(err("service", "empty; name a service with an availability_target, or leave it out for all of them".into()));
        }
        service_matcher.push(format!("service={service}"));
    }
    let summary = raw.summary.clone();
    let expand = |suffix: &str,
                  condition: &str,
                  warning: Option<f64>,
                  critical: Option<f64>,
                  what: &str| {
        RawRule {
            name: Some(format!("{name}{suffix}")),
            kind: Some("threshold".into()),
            metric: Some(BURN_RATE_METRIC.into()),
            matchers: [service_matcher.clone(), vec![condition.to_owned()]].concat(),
            op: Some(">=".into()),
            warning,
            critical,
            recovery: Some(1.0),
            for_: raw.for_.clone(),
            labels: raw.labels.clone(),
            summary: Some(summary.clone().unwrap_or_else(|| format!("{{{{labels.service}}}} {what}: {{{{value}}}}× the threshold ({{{{labels.condition}}}})"))),
            runbook: raw.runbook.clone(),
            flap_changes: raw.flap_changes,
            flap_window: raw.flap_window.clone(),
            service: raw.service.clone(),
            ..RawRule::default()
    }
    };
    Ok(vec![
        validate(
            expand(
                "",
                "condition=~page_fast|page_slow",
                None,
                Some(1.0),
                "burns its error budget fast",
            ),
            err,
        )?,
        validate(
            expand(
                "_ticket",
                "condition=ticket",
                Some(1.0),
                None,
                "burns its error budget steadily",
            ),
            err,
        )?,
    ])
}

/// Parses one rule file's text; `file` names it in errors.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<Rule>, RuleError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| RuleError {
        file: file.to_owned(),
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        rule: String::new(),
        field: String::new(),
        reason: e.message().trim_end().to_owned(),
    })?;
    let mut rules = Vec::with_capacity(raw.rule.len());
    for spanned in raw.rule {
        let line = line_of(text, spanned.span().start);
        let raw = spanned.into_inner();
        let name = raw.name.clone().unwrap_or_default();
        let err = |field: &str, reason: String| RuleError {
            file: file.to_owned(),
            line,
            rule: name.clone(),
            field: field.to_owned(),
            reason,
        };
        if raw.kind.as_deref() != Some("forecast")
            && let Some(field) = forecast_fields(&raw)
        {
            return Err(err(field, "only forecast rules take this field".into()));
        }
        if raw.kind.as_deref() == Some("burn_rate") {
            rules.extend(burn_rate_rules(raw, &err)?);
        } else if raw.kind.as_deref() == Some("forecast") {
            rules.push(forecast_rule(raw, &err)?);
        } else {
            if raw.service.is_some() {
                return Err(err(
                    "service",
                    "only burn_rate rules take this field".into(),
                ));
            }
            rules.push(validate(raw, &err)?);
        }
    }
    Ok(rules)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses a field this kind of rule does not take, if it is `present`.
fn refuse(
    field: &str,
    present: bool,
    why: &str,
    err: &dyn Fn(&str, String) -> RuleError,
) -> Result<(), RuleError> {
    if present {
        Err(err(field, why.to_owned()))
    } else {
        Ok(())
    }
}

fn duration_ms(
    field: &str,
    text: Option<&str>,
    default_ms: i64,
    err: &dyn Fn(&str, String) -> RuleError,
) -> Result<i64, RuleError> {
    match text {
        None => Ok(default_ms),
        Some(t) if t.trim() == "0" => Ok(0),
        Some(t) => nightjar_common::duration::parse(field, t)
            .map(|d| d.as_millis() as i64)
            .map_err(|e| {
                err(
                    field,
                    format!(
                        "{t:?} is not a duration ({}); write it like 30s, 5m or 1h",
                        e.reason
                    ),
                )
            }),
    }
}

fn validate(raw: RawRule, err: &dyn Fn(&str, String) -> RuleError) -> Result<Rule, RuleError> {
    let fingerprint = serde_json::to_string(&raw).unwrap_or_default();
    let name = raw
        .name
        .ok_or_else(|| err("name", "missing; every rule needs a unique name".into()))?;
    if !is_name(&name) {
        return Err(err(
            "name",
            format!("{name:?} must be letters, digits and _ (not starting with a digit)"),
        ));
    }
    let metric = raw
        .metric
        .ok_or_else(|| err("metric", "missing; name the metric the rule watches".into()))?;
    if !is_name(&metric) {
        return Err(err("metric", format!("{metric:?} is not a metric name")));
    }
    let mut matchers = Vec::new();
    let mut texts = Vec::new();
    for (label, value) in &raw.match_ {
        if !is_name(label) {
            return Err(err("match", format!("{label:?} is not a label name")));
        }
        matchers.push(Matcher::parse(&format!("{label}={value}")).map_err(|e| err("match", e))?);
        texts.push(format!("{label}={value:?}"));
    }
    for text in &raw.matchers {
        let m = Matcher::parse(text).map_err(|e| err("matchers", e))?;
        if !is_name(&m.name) {
            return Err(err("matchers", format!("{:?} is not a label name", m.name)));
        }
        matchers.push(m);
        texts.push(text.clone());
    }
    let selector_text = format!("{metric}{{{}}}", texts.join(","));
    let selector = Selector {
        metric: Some(metric),
        matchers,
    };
    for label in raw.labels.keys() {
        if !is_name(label) {
            return Err(err("labels", format!("{label:?} is not a label name")));
        }
    }
    let kind_text = raw.kind.as_deref().unwrap_or("threshold");
    let kind = match kind_text {
        "threshold" => {
            for (field, present) in [
                ("after", raw.after.is_some()),
                ("severity", raw.severity.is_some()),
            ] {
                refuse(field, present, "only absence rules take this field", err)?;
            }
            let op = match raw.op.as_deref().unwrap_or(">") {
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "<" => Op::Lt,
                "<=" => Op::Le,
                other => return Err(err("op", format!("{other:?} is not one of >, >=, <, <="))),
            };
            for (field, v) in [
                ("warning", raw.warning),
                ("critical", raw.critical),
                ("recovery", raw.recovery),
            ] {
                if v.is_some_and(|v| !v.is_finite()) {
                    return Err(err(field, "must be a finite number".into()));
                }
            }
            if raw.warning.is_none() && raw.critical.is_none() {
                return Err(err(
                    "warning",
                    "a threshold rule needs `warning`, `critical` or both".into(),
                ));
            }
            if let (Some(w), Some(c)) = (raw.warning, raw.critical)
                && !op.beyond(c, w)
                && c != w
            {
                return Err(err(
                    "critical",
                    format!(
                        "{c} must be beyond warning {w} in the direction of `op` {}",
                        op.as_str()
                    ),
                ));
            }
            let lowest = raw.warning.or(raw.critical).unwrap_or_default();
            let recovery = raw.recovery.unwrap_or(lowest);
            if op.beyond(recovery, lowest) {
                return Err(err(
                    "recovery",
                    format!(
                        "{recovery} must not be beyond the lowest threshold {lowest} (`op` {}); it is where a firing alert resolves",
                        op.as_str()
                    ),
                ));
            }
            RuleKind::Threshold {
                window_ms: duration_ms("window", raw.window.as_deref(), 0, err)?,
                aggregation: raw.aggregation.unwrap_or(WindowAgg::Avg),
                thresholds: Thresholds {
                    op,
                    warning: raw.warning,
                    critical: raw.critical,
                    recovery,
                },
                for_ms: duration_ms("for", raw.for_.as_deref(), 0, err)?,
            }
        }
        "absence" => {
            for (field, present) in [
                ("window", raw.window.is_some()),
                ("aggregation", raw.aggregation.is_some()),
                ("op", raw.op.is_some()),
                ("warning", raw.warning.is_some()),
                ("critical", raw.critical.is_some()),
                ("recovery", raw.recovery.is_some()),
                ("for", raw.for_.is_some()),
            ] {
                refuse(
                    field,
                    present,
                    "absence rules do not take this field; use `after`",
                    err,
                )?;
            }
            let after_ms = duration_ms("after", raw.after.as_deref(), -1, err)?;
            if after_ms <= 0 {
                return Err(err(
                    "after",
                    "missing; say how long a series may be silent, e.g. \"1m\"".into(),
                ));
            }
            let severity = match raw.severity.as_deref().unwrap_or("critical") {
                "warning" => Level::Warning,
                "critical" => Level::Critical,
                other => {
                    return Err(err(
                        "severity",
                        format!("{other:?} is not warning or critical"),
                    ));
                }
            };
            RuleKind::Absence { after_ms, severity }
        }
        other => {
            return Err(err(
                "kind",
                format!("{other:?} is not threshold, absence, burn_rate or forecast"),
            ));
        }
    };
    let flap_changes = match raw.flap_changes {
        None => DEFAULT_FLAP_CHANGES,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(err(
                "flap_changes",
                format!("{n} is not between 1 and 1000"),
            ));
        }
    };
    let flap_window_ms = duration_ms(
        "flap_window",
        raw.flap_window.as_deref(),
        DEFAULT_FLAP_WINDOW_MS,
        err,
    )?;
    if flap_window_ms <= 0 {
        return Err(err("flap_window", "must be above zero".into()));
    }
    let summary = raw
        .summary
        .unwrap_or_else(|| "{{rule}} on {{host}}: {{value}}".to_owned());
    Ok(Rule {
        name,
        selector,
        selector_text,
        kind,
        labels: raw.labels,
        summary,
        runbook: raw.runbook.unwrap_or_default(),
        flap_changes,
        flap_window_ms,
        fingerprint,
        forecast: None,
    })
}

/// Loads the rule files and directories (`*.toml` inside, sorted) in
/// `paths`; names must be unique across all of them.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Rule>, RuleError> {
    let files = config_files::toml_files(paths).map_err(|(path, e)| io_error(&path, e))?;
    let mut rules: Vec<Rule> = Vec::new();
    for file in files {
        let text = config_files::read(&file).map_err(|(path, e)| io_error(&path, e))?;
        let name = file.display().to_string();
        for rule in parse_rules(&name, &text)? {
            check_unique(&rules, &rule, &name)?;
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// Parses the compiled-in default rules.
pub fn defaults() -> Vec<Rule> {
    parse_rules("<default rules>", DEFAULT_RULES).expect("the default rules are valid")
}

fn check_unique(rules: &[Rule], rule: &Rule, file: &str) -> Result<(), RuleError> {
    if rules.iter().any(|r| r.name == rule.name) || rule.name == super::HOST_DOWN_RULE {
        return Err(RuleError {
            file: file.to_owned(),
            line: 0,
            rule: rule.name.clone(),
            field: "name".into(),
            reason: "a rule of this name exists already (names are unique across rule files; host_down is built in)".into(),
        });
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> RuleError {
    RuleError {
        file: path.display().to_string(),
        line: 0,
        rule: String::new(),
        field: String::new(),
        reason: format!("cannot read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn error(text: &str) -> String {
        parse_rules("r.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_threshold_rule_parses() {
        let rules = parse_rules(
            "r.toml",
            r#"
[[rule]]
name = "cpu_high"
metric = "cpu_usage_percent"
match = { cpu = "total" }
matchers = ["host=~web-.*"]
window = "1m"
aggregation = "max"
op = ">="
warning = 80
critical = 95
recovery = 70
for = "2m"
labels = { team = "infra" }
summary = "CPU {{value}} on {{host}}"
runbook = "https://runbooks/cpu"
"#,
        )
        .unwrap();
        let r = &rules[0];
        assert_eq!(r.name, "cpu_high");
        assert_eq!(
            r.selector_text,
            "cpu_usage_percent{cpu=\"total\",host=~web-.*}"
        );
        let RuleKind::Threshold {
            window_ms,
            aggregation,
            thresholds,
            for_ms,
        } = &r.kind
        else {
            panic!("threshold expected")
        };
        assert_eq!(
            (*window_ms, *aggregation, *for_ms),
            (60_000, WindowAgg::Max, 120_000)
        );
        assert_eq!(thresholds.recovery, 70.0);
        assert_eq!(r.labels["team"], "infra");
        assert!(r.selector.matches(&crate::model::SeriesKey::of(
            "cpu_usage_percent",
            &[("cpu", "total"), ("host", "web-1")]
        )));
    }

    #[test]
    fn a_forecast_rule_watches_the_forecast_series_below_its_horizon() {
        let rules = parse_rules(
            "f.toml",
            "[[rule]]\nname = \"disk_full_soon\"\nkind = \"forecast\"\nmetric = \"disk_used_percent\"\nmatch = { mountpoint = \"/var\" }\nthreshold = 100\nhorizon = \"24h\"\nmin_r_squared = 0.9\nover = \"12h\"\nseverity = \"critical\"\n",
        )
        .unwrap();
        let r = &rules[0];
        assert_eq!(
            r.selector_text,
            "forecast_seconds_to_threshold{rule=disk_full_soon}"
        );
        match &r.kind {
            RuleKind::Threshold { thresholds, .. } => {
                assert_eq!(thresholds.op, Op::Lt);
                assert_eq!(thresholds.critical, Some(86_400.0));
                assert_eq!(thresholds.recovery, 108_000.0);
            }
            k => panic!("{k:?}"),
        }
        let f = r.forecast.as_ref().unwrap();
        assert_eq!(f.selector_text, "disk_used_percent{mountpoint=\"/var\"}");
        assert_eq!(
            (f.threshold, f.horizon_ms, f.min_r_squared, f.over_ms),
            (100.0, 86_400_000, 0.9, 43_200_000)
        );
        let err = |text: &str| parse_rules("f.toml", text).unwrap_err().to_string();
        assert!(
            err("[[rule]]\nname = \"x\"\nkind = \"forecast\"\nmetric = \"m\"\nhorizon = \"1h\"\n")
                .contains("field `threshold`: missing")
        );
        assert!(
            err("[[rule]]\nname = \"x\"\nkind = \"forecast\"\nmetric = \"m\"\nthreshold = 1\nhorizon = \"1h\"\nfit = \"cubic\"\n")
                .contains("field `fit`: \"cubic\" is not linear")
        );
        assert!(
            err("[[rule]]\nname = \"x\"\nkind = \"forecast\"\nmetric = \"m\"\nthreshold = 1\nhorizon = \"1h\"\nwarning = 3\n")
                .contains("field `warning`: forecast rules take")
        );
        assert!(
            err("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nhorizon = \"1h\"\n")
                .contains("field `horizon`: only forecast rules take this field")
        );
    }

    #[test]
    fn a_burn_rate_rule_is_a_page_and_a_ticket_on_the_budget_series() {
        let rules = parse_rules("b.toml", "[[rule]]\nname = \"reports_budget\"\nkind = \"burn_rate\"\nservice = \"reports\"\nlabels = { team = \"bi\" }\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name, "reports_budget");
        assert_eq!(rules[1].name, "reports_budget_ticket");
        assert_eq!(
            rules[0].selector_text,
            "service_burn_rate_ratio{service=reports,condition=~page_fast|page_slow}"
        );
        let RuleKind::Threshold { thresholds, .. } = &rules[0].kind else {
            panic!()
        };
        assert_eq!((thresholds.warning, thresholds.critical), (None, Some(1.0)));
        let RuleKind::Threshold { thresholds, .. } = &rules[1].kind else {
            panic!()
        };
        assert_eq!((thresholds.warning, thresholds.critical), (Some(1.0), None));
        assert_eq!(rules[1].labels["team"], "bi");
        let err = |text: &str| parse_rules("b.toml", text).unwrap_err().to_string();
        assert!(
            err("[[rule]]\nname = \"x\"\nkind = \"burn_rate\"\nwarning = 3\n")
                .contains("b.toml:1: rule \"x\": field `warning`: burn_rate rules take only")
        );
        assert!(
            err("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nservice = \"s\"\n")
                .contains("field `service`: only burn_rate rules take this field")
        );
    }

    #[test]
    fn recovery_defaults_to_the_lowest_threshold() {
        let rules = parse_rules(
            "r.toml",
            "[[rule]]\nname = \"free\"\nmetric = \"m\"\nop = \"<\"\nwarning = 20\ncritical = 10\n",
        )
        .unwrap();
        let RuleKind::Threshold { thresholds, .. } = &rules[0].kind else {
            panic!()
        };
        assert_eq!(thresholds.recovery, 20.0);
    }

    #[test]
    fn errors_name_file_line_rule_and_field() {
        let text = "# rules\n\n[[rule]]\nname = \"a\"\nmetric = \"m\"\nwarning = 1\n\n[[rule]]\nname = \"b\"\nmetric = \"m\"\nwarning = 90\ncritical = 80\n";
        assert_eq!(
            error(text),
            "r.toml:8: rule \"b\": field `critical`: 80 must be beyond warning 90 in the direction of `op` >"
        );
        assert!(
            error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nfor = \"soon\"\n")
                .starts_with("r.toml:1: rule \"x\": field `for`: \"soon\" is not a duration")
        );
        // A window that would wrap when cast to milliseconds is refused.
        let long = error(
            "[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nwindow = \"300000000years\"\n",
        );
        assert!(
            long.contains("field `window`") && long.contains("longer than ten years"),
            "{long}"
        );
        assert!(
            error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nrecovery = 5\n")
                .contains("field `recovery`")
        );
        assert!(error("[[rule]]\nname = \"x\"\nmetric = \"m\"\n").contains("field `warning`"));
        assert!(error("[[rule]]\nmetric = \"m\"\n").contains("field `name`: missing"));
        assert!(
            error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarning = 1\nmatchers = [\"a=~(\"]\n")
                .contains("field `matchers`")
        );
        assert!(
            error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nkind = \"absence\"\n")
                .contains("field `after`")
        );
        assert!(error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nkind = \"absence\"\nafter = \"1m\"\nwarning = 3\n")
            .contains("field `warning`: absence rules"));
        // toml's own errors keep their line.
        let e = error("[[rule]]\nname = \"x\"\nmetric = \"m\"\nwarnin = 1\n");
        assert!(e.starts_with("r.toml:4: unknown field `warnin`"), "{e}");
    }

    #[test]
    fn names_are_unique_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let rule = "[[rule]]\nname = \"same\"\nmetric = \"m\"\nwarning = 1\n";
        std::fs::write(dir.path().join("a.toml"), rule).unwrap();
        std::fs::write(dir.path().join("b.toml"), rule).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let e = load(&[dir.path().to_owned()]).unwrap_err();
        assert!(
            e.file.ends_with("b.toml") && e.reason.contains("exists already"),
            "{e}"
        );
    }

    #[test]
    fn deploy_example_rules_are_valid() {
        // Read at run time (a test binary may come from another checkout).
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests");
        let rules = load(&[Path::new(&dir).join("../deploy/rules.d")]).unwrap();
        assert!(rules.iter().any(|r| r.name == "process_down"));
    }

    #[test]
    fn default_rules_parse() {
        assert!(defaults().len() >= 3);
    }
}
