//! `[alerting]` in the collector config: hooks, routes, maintenance
//! windows, host_down and repeat defaults. Raw (serde) and validated forms;
//! errors name the key (`alerting.hook[2].url`) and the reason.

use std::time::Duration;

use serde::Deserialize;

use super::incident::IncidentConfig;
use super::route::{Route, Router};
use super::silence::{self, Maintenance};
use super::state::Level;
use nightjar_model::selector::Matcher;

/// Default for `[alerting] host_down_after` (silent intervals).
pub const DEFAULT_HOST_DOWN_AFTER: u32 = 3;
/// Default repeat interval of unacknowledged firing alerts.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Default hook timeout.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default history retention.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[alerting]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    /// Silent intervals before host_down fires; 0 turns it off. Default 3.
    pub host_down_after: Option<i64>,
    /// Default repeat interval for routes. Default "4h".
    pub repeat_interval: Option<String>,
    /// Default group wait for routes. Default "0s".
    pub group_wait: Option<String>,
    /// How long alert history is kept. Default "90d".
    pub history_retention: Option<String>,
    /// Most notifications waiting for delivery; beyond it the oldest are
    /// dropped (counted). Default 10000.
    pub outbox_capacity: Option<i64>,
    /// Notification hooks.
    #[serde(default)]
    pub hook: Vec<RawHook>,
    /// Routes, first match wins (unless `continue`).
    #[serde(default)]
    pub route: Vec<RawRoute>,
    /// Recurring maintenance windows.
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// Default update interval for routes (incident reminders). Default "0" (off).
    pub update_interval: Option<String>,
    /// How alerts become incidents.
    #[serde(default)]
    pub incidents: RawIncidents,
}

/// `[alerting.incidents]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncidents {
    enabled: Option<bool>,
    quiet_period: Option<String>,
    changes_lookback: Option<String>,
    recurring_count: Option<i64>,
    recurring_window: Option<String>,
}

/// `[[alerting.hook]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    secret: Option<String>,
    routing_key: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    timeout: Option<String>,
}

/// `[[alerting.route]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default, rename = "match")]
    match_: Vec<String>,
    #[serde(default)]
    severity: Vec<String>,
    #[serde(default)]
    hooks: Vec<String>,
    group_wait: Option<String>,
    repeat_interval: Option<String>,
    escalate_to: Option<String>,
    escalate_after: Option<String>,
    update_interval: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: bool,
}

/// `[[alerting.maintenance]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    name: Option<String>,
    #[serde(default, rename = "match")]
    match_: Vec<String>,
    #[serde(default)]
    weekdays: Vec<String>,
    start: Option<String>,
    duration: Option<String>,
    /// A one-off window (a planned change): RFC 3339 times.
    from: Option<String>,
    until: Option<String>,
}

/// What a hook does.
#[derive(Clone, Debug, PartialEq)]
pub enum HookKind {
    /// POST our JSON to `url`, signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        /// Target.
        url: String,
        /// HMAC key.
        secret: Option<String>,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        /// Events endpoint.
        url: String,
        /// Integration key.
        routing_key: String,
    },
    /// Slack-compatible incoming webhook.
    Slack {
        /// Webhook URL.
        url: String,
    },
    /// Run a command with the webhook JSON on stdin; exit 0 = accepted.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
    },
}

/// A validated hook.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// Name routes refer to.
    pub name: String,
    /// What it does.
    pub kind: HookKind,
    /// How long one delivery may take.
    pub timeout: Duration,
}

/// The validated `[alerting]`.
#[derive(Clone, Debug)]
pub struct Alerting {
    /// Silent intervals before host_down (0 = off).
    pub host_down_after: u32,
    /// History retention.
    pub history_retention: Duration,
    /// Bound of the outbox (`crate::outbox`).
    pub outbox_capacity: usize,
    /// Hooks.
    pub hooks: Vec<Hook>,
    /// Routing.
    pub router: Router,
    /// Maintenance windows.
    pub maintenance: Vec<Maintenance>,
    /// Incidents.
    pub incidents: IncidentConfig,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting::from_raw(RawAlerting::default()).expect("defaults are valid")
    }
}

fn duration(key: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(t) if t.trim() == "0" => Ok(Duration::ZERO),
        Some(t) => nightjar_common::duration::parse(key, t).map_err(|e| e.to_string()),
    }
}

/// An integer key: `default` when absent, else within `range`.
fn integer(
    key: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
) -> Result<i64, String> {
    match value {
        None => Ok(default),
        Some(n) if range.contains(&n) => Ok(n),
        Some(n) => Err(format!(
            "{key}: {n} is not between {} and {}",
            range.start(),
            range.end()
        )),
    }
}

fn matchers(key: &str, texts: &[String]) -> Result<Vec<Matcher>, String> {
    texts
        .iter()
        .map(|t| Matcher::parse(t).map_err(|e| format!("{key}: {e}")))
        .collect()
}

fn http_url(key: &str, url: Option<String>) -> Result<String, String> {
    let url = url.ok_or_else(|| format!("{key}: missing"))?;
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(url),
        Ok(_) => Err(format!("{key}: {url:?} is not an http(s) URL")),
        Err(e) => Err(format!("{key}: {url:?} is not a URL ({e})")),
    }
}

fn incident_config(raw: &RawIncidents) -> Result<IncidentConfig, String> {
    let d = IncidentConfig::default();
    let ms = |key: &str, text: &Option<String>, default_ms: i64| {
        duration(
            key,
            text.as_deref(),
            Duration::from_millis(default_ms as u64),
        )
        .map(|d| d.as_millis() as i64)
    };
    Ok(IncidentConfig {
        enabled: raw.enabled.unwrap_or(true),
        quiet_period_ms: ms(
            "alerting.incidents.quiet_period",
            &raw.quiet_period,
            d.quiet_period_ms,
        )?,
        changes_lookback_ms: ms(
            "alerting.incidents.changes_lookback",
            &raw.changes_lookback,
            d.changes_lookback_ms,
        )?,
        recurring_count: integer(
            "alerting.incidents.recurring_count",
            raw.recurring_count,
            2..=1000,
            d.recurring_count as i64,
        )? as usize,
        recurring_window_ms: ms(
            "alerting.incidents.recurring_window",
            &raw.recurring_window,
            d.recurring_window_ms,
        )?,
    })
}

impl Alerting {
    /// Validates the raw section.
    pub fn from_raw(raw: RawAlerting) -> Result<Alerting, String> {
        let host_down_after = integer(
            "alerting.host_down_after",
            raw.host_down_after,
            0..=1000,
            DEFAULT_HOST_DOWN_AFTER.into(),
        )? as u32;
        let repeat = duration(
            "alerting.repeat_interval",
            raw.repeat_interval.as_deref(),
            DEFAULT_REPEAT_INTERVAL,
        )?;
        let group_wait = duration(
            "alerting.group_wait",
            raw.group_wait.as_deref(),
            Duration::ZERO,
        )?;
        let update_interval = duration(
            "alerting.update_interval",
            raw.update_interval.as_deref(),
            Duration::ZERO,
        )?;
        let incidents = incident_config(&raw.incidents)?;
        let history_retention = duration(
            "alerting.history_retention",
            raw.history_retention.as_deref(),
            DEFAULT_HISTORY_RETENTION,
        )?;
        let outbox_capacity = integer(
            "alerting.outbox_capacity",
            raw.outbox_capacity,
            1..=10_000_000,
            crate::outbox::DEFAULT_CAPACITY as i64,
        )? as usize;
        let mut hooks: Vec<Hook> = Vec::new();
        for (i, h) in raw.hook.into_iter().enumerate() {
            let key = format!("alerting.hook[{i}]");
            let name = h.name.ok_or_else(|| format!("{key}.name: missing"))?;
            if hooks.iter().any(|o| o.name == name) {
                return Err(format!("{key}.name: a hook named {name:?} exists already"));
            }
            let kind = match h.kind.as_deref() {
                Some("webhook") => HookKind::Webhook {
                    url: http_url(&format!("{key}.url"), h.url)?,
                    secret: h.secret.filter(|s| !s.is_empty()),
                },
                Some("pagerduty") => HookKind::PagerDuty {
                    url: http_url(
                        &format!("{key}.url"),
                        Some(h.url.unwrap_or_else(|| PAGERDUTY_URL.into())),
                    )?,
                    routing_key: h.routing_key.filter(|k| !k.is_empty()).ok_or_else(|| {
                        format!("{key}.routing_key: missing (the integration key)")
                    })?,
                },
                Some("slack") => HookKind::Slack {
                    url: http_url(&format!("{key}.url"), h.url)?,
                },
                Some("exec") => {
                    if h.command.is_empty() || h.command[0].is_empty() {
                        return Err(format!("{key}.command: missing; give [program, args...]"));
                    }
                    HookKind::Exec { command: h.command }
                }
                Some(other) => {
                    return Err(format!(
                        "{key}.kind: {other:?} is not webhook, pagerduty, slack or exec"
                    ));
                }
                None => {
                    return Err(format!(
                        "{key}.kind: missing (webhook, pagerduty, slack or exec)"
                    ));
                }
            };
            let timeout = duration(
                &format!("{key}.timeout"),
                h.timeout.as_deref(),
                DEFAULT_HOOK_TIMEOUT,
            )?;
            if timeout.is_zero() {
                return Err(format!("{key}.timeout: must be above zero"));
            }
            hooks.push(Hook {
                name,
                kind,
                timeout,
            });
        }
        let known = |key: &str, name: &str| {
            if hooks.iter().any(|h| h.name == name) {
                Ok(())
            } else {
                Err(format!("{key}: no hook is named {name:?}"))
            }
        };
        let mut routes = Vec::new();
        for (i, r) in raw.route.into_iter().enumerate() {
            let key = format!("alerting.route[{i}]");
            if r.hooks.is_empty() {
                return Err(format!("{key}.hooks: name at least one hook"));
            }
            for h in &r.hooks {
                known(&format!("{key}.hooks"), h)?;
            }
            let severities = r
                .severity
                .iter()
                .map(|s| match s.as_str() {
                    "warning" => Ok(Level::Warning),
                    "critical" => Ok(Level::Critical),
                    other => Err(format!(
                        "{key}.severity: {other:?} is not warning or critical"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(e) = &r.escalate_to {
                known(&format!("{key}.escalate_to"), e)?;
            }
            let escalate_after = duration(
                &format!("{key}.escalate_after"),
                r.escalate_after.as_deref(),
                Duration::from_secs(900),
            )?;
            routes.push(Route {
                matchers: matchers(&format!("{key}.match"), &r.match_)?,
                severities,
                hooks: r.hooks,
                group_wait: duration(
                    &format!("{key}.group_wait"),
                    r.group_wait.as_deref(),
                    group_wait,
                )?,
                repeat_interval: duration(
                    &format!("{key}.repeat_interval"),
                    r.repeat_interval.as_deref(),
                    repeat,
                )?,
                escalate_to: r.escalate_to,
                escalate_after,
                update_interval: duration(
                    &format!("{key}.update_interval"),
                    r.update_interval.as_deref(),
                    update_interval,
                )?,
                continue_: r.continue_,
            });
        }
        let mut maintenance = Vec::new();
        for (i, m) in raw.maintenance.into_iter().enumerate() {
            let key = format!("alerting.maintenance[{i}]");
            if m.from.is_some() || m.until.is_some() {
                let time = |field: &str, v: &Option<String>| -> Result<i64, String> {
                    let v = v.as_deref().ok_or_else(|| {
                        format!("{key}.{field}: missing (a one-off window needs from and until)")
                    })?;
                    v.parse::<jiff::Timestamp>()
                        .map(|t| t.as_millisecond())
                        .map_err(|e| format!("{key}.{field}: {v:?} is not an RFC 3339 time like 2026-12-01T22:00:00Z ({e})"))
                };
                let (from, until) = (time("from", &m.from)?, time("until", &m.until)?);
                if until <= from {
                    return Err(format!("{key}.until: ends before it starts"));
                }
                if m.start.is_some() || m.duration.is_some() || !m.weekdays.is_empty() {
                    return Err(format!(
                        "{key}: a one-off window (from, until) takes no weekdays, start or duration"
                    ));
                }
                maintenance.push(Maintenance {
                    name: m.name.unwrap_or_else(|| format!("maintenance[{i}]")),
                    matchers: matchers(&format!("{key}.match"), &m.match_)?,
                    weekdays: Vec::new(),
                    start_minute: 0,
                    duration_ms: until - from,
                    once_from_ms: Some(from),
                });
                continue;
            }
            let weekdays = if m.weekdays.is_empty() {
                (0..7).collect()
            } else {
                m.weekdays
                    .iter()
                    .map(|d| {
                        silence::weekday(d)
                            .ok_or_else(|| format!("{key}.weekdays: {d:?} is not a weekday"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            let start = m
                .start
                .ok_or_else(|| format!("{key}.start: missing (HH:MM, UTC)"))?;
            let start_minute = silence::clock_time(&start)
                .ok_or_else(|| format!("{key}.start: {start:?} is not HH:MM"))?;
            let length = duration(
                &format!("{key}.duration"),
                m.duration.as_deref(),
                Duration::ZERO,
            )?;
            if length.is_zero() {
                return Err(format!("{key}.duration: missing or zero"));
            }
            maintenance.push(Maintenance {
                name: m.name.unwrap_or_else(|| format!("maintenance[{i}]")),
                matchers: matchers(&format!("{key}.match"), &m.match_)?,
                weekdays,
                start_minute,
                duration_ms: length.as_millis() as i64,
                once_from_ms: None,
            });
        }
        let router = Router::new(
            routes,
            hooks.iter().map(|h| h.name.clone()).collect(),
            group_wait,
            repeat,
            update_interval,
        );
        Ok(Alerting {
            host_down_after,
            history_retention,
            outbox_capacity,
            hooks,
            router,
            maintenance,
            incidents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Alerting, String> {
        Alerting::from_raw(toml::from_str(text).map_err(|e| e.to_string())?)
    }

    #[test]
    fn hooks_and_routes_validate() {
        let a = parse(
            r#"
[[hook]]
name = "pd"
kind = "pagerduty"
routing_key = "R"
[[hook]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/x"
secret = "s"
[[route]]
match = ["team=db"]
severity = ["critical"]
hooks = ["pd"]
escalate_to = "ops"
"#,
        )
        .unwrap();
        assert_eq!(a.hooks.len(), 2);
        assert!(
            matches!(&a.hooks[0].kind, HookKind::PagerDuty { url, .. } if url == PAGERDUTY_URL)
        );
        assert_eq!(a.host_down_after, 3);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, expected) in [
            (
                "[[hook]]\nname = \"a\"\nkind = \"email\"\n",
                "alerting.hook[0].kind: \"email\" is not",
            ),
            (
                "[[hook]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"ftp://x\"\n",
                "alerting.hook[0].url: \"ftp://x\" is not an http(s) URL",
            ),
            (
                "[[hook]]\nname = \"a\"\nkind = \"pagerduty\"\n",
                "alerting.hook[0].routing_key: missing",
            ),
            (
                "[[hook]]\nname = \"a\"\nkind = \"exec\"\n",
                "alerting.hook[0].command: missing",
            ),
            (
                "[[route]]\nhooks = [\"nope\"]\n",
                "alerting.route[0].hooks: no hook is named \"nope\"",
            ),
            ("host_down_after = -1\n", "alerting.host_down_after: -1"),
            (
                "outbox_capacity = 0\n",
                "alerting.outbox_capacity: 0 is not between 1 and 10000000",
            ),
            (
                "[[maintenance]]\nstart = \"25:00\"\nduration = \"1h\"\n",
                "alerting.maintenance[0].start: \"25:00\" is not HH:MM",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(expected), "{e}");
        }
    }
}
