//! Synthetic checks: smoke tests the agent runs against services (HTTP(S),
//! TCP connect, a command), each on its own interval in its own task, so a
//! slow target never delays sampling or another check.
//!
//! Every sampling tick reports, per check (label `check`):
//! - `check_up`: 1 if the last run succeeded, else 0;
//! - `check_sla_met`: 1 if the last run succeeded within the latency SLA
//!   (only for checks with `sla`);
//! - `check_duration_seconds`: a histogram of the runs since the last tick
//!   (failed runs too; a timeout counts as its timeout);
//! - `check_failures_total{reason}`: failed runs since start, by reason.

pub mod probe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nightjar_common::log_limit::RateLimitedLog;
use nightjar_model::histogram::Histogram;
use serde::Deserialize;

use crate::sample::{AppSample, AppValue};
use probe::{Failure, Probe};

/// Default time a run may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Durations are kept in microseconds.
const DURATION_UNIT: f64 = 1e-6;

/// One `[[check]]` entry as written: a name and exactly one of `http`,
/// `tcp`, `command`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// The `check` label value.
    pub name: String,
    /// URL to request.
    pub http: Option<String>,
    /// `host:port` to connect to.
    pub tcp: Option<String>,
    /// Program and arguments; exit status 0 means up.
    pub command: Option<Vec<String>>,
    /// HTTP method. Default "GET".
    pub method: Option<String>,
    /// HTTP status that means up. Default: any 2xx.
    pub expect_status: Option<i64>,
    /// A string the HTTP body must contain.
    pub body_contains: Option<String>,
    /// How often the check runs. Default: the sampling interval.
    pub interval: Option<String>,
    /// How long a run may take. Default "10s", at most `interval`.
    pub timeout: Option<String>,
    /// Latency SLA: a run that succeeds within it meets the SLA.
    pub sla: Option<String>,
}

/// A validated check.
#[derive(Clone, Debug)]
pub struct CheckSpec {
    /// The `check` label value.
    pub name: String,
    /// What it probes.
    pub probe: Probe,
    /// How often it runs.
    pub interval: Duration,
    /// How long a run may take.
    pub timeout: Duration,
    /// The latency SLA, if any.
    pub sla: Option<Duration>,
}

impl PartialEq for CheckSpec {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

/// Validates the `[[check]]` entries. Errors are (key, reason).
pub fn build(raw: &[RawCheck], interval: Duration) -> Result<Vec<CheckSpec>, (String, String)> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let key = |field: &str| format!("check[{i}].{field}");
        let err = |field: &str, reason: String| (key(field), reason);
        if c.name.trim().is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if raw[..i].iter().any(|o| o.name == c.name) {
            return Err(err(
                "name",
                format!("{:?} is used by an earlier check", c.name),
            ));
        }
        let duration = |field: &str,
                        text: &Option<String>|
         -> Result<Option<Duration>, (String, String)> {
            text.as_deref()
                .map(|t| {
                    nightjar_common::duration::parse(field, t)
                        .map_err(|e| err(field, format!("invalid duration {t:?} ({})", e.reason)))
                })
                .transpose()
        };
        let every = duration("interval", &c.interval)?.unwrap_or(interval);
        if every < Duration::from_secs(1) {
            return Err(err("interval", "below the minimum of 1s".into()));
        }
        let timeout = duration("timeout", &c.timeout)?.unwrap_or(DEFAULT_TIMEOUT.min(every));
        if timeout.is_zero() || timeout > every {
            return Err(err(
                "timeout",
                format!(
                    "must be above 0 and at most the check's interval ({})",
                    nightjar_common::duration::format(every)
                ),
            ));
        }
        let sla = duration("sla", &c.sla)?;
        let http_only = [
            ("method", c.method.is_some()),
            ("expect_status", c.expect_status.is_some()),
            ("body_contains", c.body_contains.is_some()),
        ];
        let probe = match (&c.http, &c.tcp, &c.command) {
            (Some(url), None, None) => {
                let parsed = reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        err("http", format!("{url:?} is not an http:// or https:// URL"))
                    })?;
                let method_text = c.method.as_deref().unwrap_or("GET");
                let method =
                    reqwest::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
                        .map_err(|_| {
                            err("method", format!("{method_text:?} is not an HTTP method"))
                        })?;
                let expect_status = match c.expect_status {
                    None => None,
                    Some(s) if (100..=599).contains(&s) => Some(s as u16),
                    Some(s) => {
                        return Err(err("expect_status", format!("{s} is not an HTTP status")));
                    }
                };
                Probe::Http {
                    method,
                    url: parsed,
                    expect_status,
                    body_contains: c.body_contains.clone(),
                }
            }
            (None, Some(address), None) => {
                let port_ok = address.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !port_ok {
                    return Err(err("tcp", format!("{address:?} is not host:port")));
                }
                Probe::Tcp {
                    address: address.clone(),
                }
            }
            (None, None, Some(argv)) => {
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err(err("command", "needs a program (the first element)".into()));
                }
                Probe::Command { argv: argv.clone() }
            }
            _ => {
                return Err((
                    format!("check[{i}]"),
                    format!("check {:?} needs exactly one of http, tcp, command", c.name),
                ));
            }
        };
        if !matches!(probe, Probe::Http { .. })
            && let Some((field, _)) = http_only.iter().find(|(_, set)| *set)
        {
            return Err(err(field, "applies to http checks only".into()));
        }
        out.push(CheckSpec {
            name: c.name.clone(),
            probe,
            interval: every,
            timeout,
            sla,
        });
    }
    Ok(out)
}

/// What one check has seen since the last tick.
struct CheckState {
    /// Whether the last run succeeded (None before the first).
    up: Option<bool>,
    /// Whether the last run met the SLA.
    sla_met: Option<bool>,
    durations: Histogram,
    /// Failed runs since start, by reason.
    failures: BTreeMap<&'static str, u64>,
    /// Failures after the first are logged at most once a minute.
    failure_log: RateLimitedLog<60>,
}

/// The running checks.
pub struct Checks {
    checks: Vec<(CheckSpec, Mutex<CheckState>)>,
    /// For HTTP checks; none without checks (it loads the system's CA
    /// certificates).
    client: Option<reqwest::Client>,
}

impl Checks {
    /// The checks, not yet running (see [`Checks::spawn`]).
    pub fn new(specs: Vec<CheckSpec>) -> anyhow::Result<Arc<Checks>> {
        use anyhow::Context as _;
        let client = if specs.is_empty() {
            None
        } else {
            Some(
                reqwest::Client::builder()
                    .user_agent(concat!("nightjar-agent/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .context("building the HTTP client for checks")?,
            )
        };
        Ok(Arc::new(Checks {
            client,
            checks: specs
                .into_iter()
                .map(|spec| {
                    let state = CheckState {
                        up: None,
                        sla_met: None,
                        durations: Histogram::new(DURATION_UNIT),
                        failures: BTreeMap::new(),
                        failure_log: RateLimitedLog::new(),
                    };
                    (spec, Mutex::new(state))
                })
                .collect(),
        }))
    }

    /// Whether there are no checks.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Starts one task per check on the current tokio runtime.
    pub fn spawn(self: &Arc<Self>) {
        let Some(client) = &self.client else { return };
        for index in 0..self.checks.len() {
            let (checks, client) = (self.clone(), client.clone());
            tokio::spawn(async move { checks.run(index, client).await });
        }
    }

    async fn run(&self, index: usize, client: reqwest::Client) {
        let (spec, state) = &self.checks[index];
        let mut every = tokio::time::interval(spec.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let started = Instant::now();
            let outcome = spec.probe.run(&client, spec.timeout).await;
            let took = started.elapsed().min(spec.timeout);
            let mut state = state.lock().expect("poisoned");
            record(spec, &mut state, outcome, took);
        }
    }
}

fn record(spec: &CheckSpec, state: &mut CheckState, outcome: Result<(), Failure>, took: Duration) {
    let _ = state.durations.record(took.as_secs_f64(), 1);
    let was_up = state.up;
    match outcome {
        Ok(()) => {
            state.up = Some(true);
            state.sla_met = spec.sla.map(|sla| took <= sla);
            if was_up == Some(false) {
                tracing::info!(check = %spec.name, "check recovered");
            }
        }
        Err(failure) => {
            state.up = Some(false);
            state.sla_met = spec.sla.map(|_| false);
            *state.failures.entry(failure.reason).or_default() += 1;
            if was_up != Some(false) {
                // A new failure is always told, however recent the last one.
                state.failure_log.reset();
            }
            if state.failure_log.due().is_some() {
                tracing::warn!(
                    check = %spec.name,
                    reason = failure.reason,
                    detail = %failure.detail,
                    "check failed (repeated failures are logged at most once a minute)"
                );
            }
        }
    }
}

impl crate::sample::AppSource for Checks {
    fn collect(&self, _interval: Duration) -> Vec<AppSample> {
        let mut out = Vec::new();
        for (spec, state) in &self.checks {
            let mut state = state.lock().expect("poisoned");
            let labels = vec![("check".to_owned(), spec.name.clone())];
            let sample = |metric: &str, value: AppValue| AppSample {
                metric: metric.to_owned(),
                labels: labels.clone(),
                value,
            };
            if let Some(up) = state.up {
                out.push(sample("check_up", AppValue::Gauge(f64::from(u8::from(up)))));
            }
            if let Some(met) = state.sla_met {
                out.push(sample(
                    "check_sla_met",
                    AppValue::Gauge(f64::from(u8::from(met))),
                ));
            }
            if !state.durations.is_empty() {
                out.push(sample(
                    "check_duration_seconds",
                    AppValue::Histogram(state.durations.clone()),
                ));
                state.durations.reset();
            }
            for (reason, count) in &state.failures {
                let mut s = sample("check_failures_total", AppValue::Gauge(*count as f64));
                s.labels.push(("reason".to_owned(), (*reason).to_owned()));
                out.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<CheckSpec>, (String, String)> {
        #[derive(Deserialize)]
        struct File {
            check: Vec<RawCheck>,
        }
        let file: File = toml::from_str(text).unwrap();
        build(&file.check, Duration::from_secs(10))
    }

    #[test]
    fn checks_are_validated_with_the_key_named() {
        let ok = parse(
            r#"
            [[check]]
            name = "web"
            http = "http://127.0.0.1:8080/health"
            expect_status = 204
            body_contains = "ok"
            sla = "250ms"
            [[check]]
            name = "db"
            tcp = "127.0.0.1:5432"
            interval = "30s"
            [[check]]
            name = "script"
            command = ["/bin/true"]
            timeout = "2s"
            "#,
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(ok[1].interval, Duration::from_secs(30));
        let bad = |text: &str| parse(text).unwrap_err();
        assert_eq!(
            bad("[[check]]\nname = \"x\"\n").1,
            "check \"x\" needs exactly one of http, tcp, command"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\ntcp = \"nope\"\n").0,
            "check[0].tcp"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\nhttp = \"ftp://a/\"\n").0,
            "check[0].http"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\ntcp = \"a:1\"\nexpect_status = 200\n").0,
            "check[0].expect_status"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\ntcp = \"a:1\"\ntimeout = \"20s\"\n").0,
            "check[0].timeout"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\ncommand = []\n").0,
            "check[0].command"
        );
        assert_eq!(
            bad("[[check]]\nname = \"x\"\ntcp = \"a:1\"\n[[check]]\nname = \"x\"\ntcp = \"a:2\"\n")
                .0,
            "check[1].name"
        );
    }

    #[tokio::test]
    async fn a_command_check_reports_up_down_and_the_reason() {
        let checks = Checks::new(
            parse(
                r#"
                [[check]]
                name = "yes"
                command = ["/bin/true"]
                sla = "10s"
                [[check]]
                name = "no"
                command = ["/bin/false"]
                [[check]]
                name = "missing"
                command = ["/nonexistent/program"]
                "#,
            )
            .unwrap(),
        )
        .unwrap();
        let client = reqwest::Client::new();
        for (spec, state) in &checks.checks {
            let outcome = spec.probe.run(&client, spec.timeout).await;
            record(
                spec,
                &mut state.lock().unwrap(),
                outcome,
                Duration::from_millis(5),
            );
        }
        use crate::sample::AppSource as _;
        let out = checks.collect(Duration::from_secs(1));
        let value = |metric: &str, check: &str, reason: Option<&str>| {
            out.iter()
                .find(|s| {
                    s.metric == metric
                        && s.labels.contains(&("check".to_owned(), check.to_owned()))
                        && reason
                            .is_none_or(|r| s.labels.contains(&("reason".to_owned(), r.to_owned())))
                })
                .map(|s| match s.value {
                    AppValue::Gauge(v) => v,
                    AppValue::Histogram(ref h) => h.count() as f64,
                })
        };
        assert_eq!(value("check_up", "yes", None), Some(1.0));
        assert_eq!(value("check_sla_met", "yes", None), Some(1.0));
        assert_eq!(value("check_up", "no", None), Some(0.0));
        assert_eq!(
            value("check_sla_met", "no", None),
            None,
            "no SLA configured"
        );
        assert_eq!(
            value("check_failures_total", "no", Some("exit_code")),
            Some(1.0)
        );
        assert_eq!(
            value("check_failures_total", "missing", Some("spawn")),
            Some(1.0)
        );
        assert_eq!(value("check_duration_seconds", "yes", None), Some(1.0));
        // Durations are per tick; the rest stays.
        let again = checks.collect(Duration::from_secs(1));
        assert!(again.iter().all(|s| s.metric != "check_duration_seconds"));
        assert!(again.iter().any(|s| s.metric == "check_up"));
    }
}
