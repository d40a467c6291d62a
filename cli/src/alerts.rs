//! `nightjar alerts`, `ack`, `silence ...` and `rules ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use nightjar_proto::v1 as pb;
use pb::alert_service_client::AlertServiceClient;
use pb::query_service_client::QueryServiceClient;
use serde_json::json;

use super::{Conn, format_age, format_time, labels_json, now_ms, parse_duration, table};
use nightjar_alerting::backtest;
use nightjar_alerting::engine::format_value;
use nightjar_alerting::rules::{self, Rule};
use nightjar_model::model::{Labels, Point, SeriesKey};

/// `nightjar silence ...`.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence alerts whose labels match, for a while.
    Add {
        /// Matcher on alert labels: k=v, k!=v, k=~regex, k!~regex
        /// (repeatable; alertname is the rule).
        #[arg(long = "match", value_name = "MATCHER", required = true)]
        matchers: Vec<String>,
        /// How long.
        #[arg(long = "for", default_value = "1h", value_parser = parse_duration)]
        duration: Duration,
        /// Who silences.
        #[arg(long, env = "USER")]
        author: String,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List silences in force (or all with --all).
    List {
        /// Include expired silences.
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Expire {
        /// The silence's id.
        id: String,
    },
}

/// `nightjar rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate rule files offline (no collector needed).
    Check {
        /// Rule files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Make the collector reload its rule files (like SIGHUP).
    Reload,
    /// Replay rules over stored history: when would they have fired and
    /// resolved, and how many notifications would they have sent.
    Backtest {
        /// Rule file or directory.
        file: PathBuf,
        /// How far back.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: Duration,
        /// Sweep period of the replay (the collector sweeps every second).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        sweep: Duration,
    },
}

/// Validates rule files without a collector.
pub fn rules_check(files: &[PathBuf], as_json: bool) -> anyhow::Result<String> {
    let rules = rules::load(files).map_err(|e| anyhow::anyhow!("{e}"))?;
    if as_json {
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        return Ok(format!("{}\n", json!({ "valid": true, "rules": names })));
    }
    let mut out = format!("{} rules OK\n", rules.len());
    for r in &rules {
        out.push_str(&format!("  {} ({})\n", r.name, r.selector_text));
    }
    Ok(out)
}

fn alert_row(a: &pb::Alert, now: i64) -> Vec<String> {
    let host = a
        .labels
        .iter()
        .find(|l| l.name == "host")
        .map_or("", |l| l.value.as_str());
    let mut state = a.state.clone();
    if !a.acked_by.is_empty() {
        state.push_str(" (acked)");
    }
    if !a.silenced_by.is_empty() {
        state.push_str(" (silenced)");
    }
    vec![
        a.id.clone(),
        a.severity.to_uppercase(),
        state,
        a.rule.clone(),
        host.to_owned(),
        format_value(a.value),
        if a.started_ms > 0 {
            format_age(now - a.started_ms)
        } else {
            "-".into()
        },
        a.summary.clone(),
    ]
}

fn alert_json(a: &pb::Alert) -> serde_json::Value {
    json!({
        "id": a.id, "rule": a.rule, "series": a.series, "labels": labels_json(&a.labels),
        "state": a.state, "severity": a.severity,
        "value": if a.value.is_finite() { Some(a.value) } else { None },
        "started_ms": a.started_ms, "changed_ms": a.changed_ms, "summary": a.summary,
        "runbook": a.runbook, "acked_by": a.acked_by, "ack_note": a.ack_note,
        "silenced_by": a.silenced_by,
    })
}

const ALERT_HEADER: [&str; 8] = [
    "ID", "SEVERITY", "STATE", "RULE", "HOST", "VALUE", "FIRING", "SUMMARY",
];

/// `nightjar alerts`: the alerts now, or their history, or a live feed.
pub async fn alerts(
    client: &mut AlertServiceClient<Conn>,
    watch: bool,
    history: bool,
    since: Duration,
    as_json: bool,
) -> anyhow::Result<String> {
    if watch {
        let mut stream = client
            .watch_alerts(pb::WatchAlertsRequest {})
            .await?
            .into_inner();
        while let Some(event) = stream.message().await? {
            let a = event.alert.unwrap_or_default();
            let line = if as_json {
                json!({ "at_ms": event.at_ms, "kind": event.kind, "alert": alert_json(&a) })
                    .to_string()
            } else {
                format!(
                    "{} {} {} {} {} {}",
                    format_time(event.at_ms),
                    event.kind,
                    a.severity,
                    a.rule,
                    a.series,
                    a.summary
                )
            };
            println!("{line}");
        }
        return Ok(String::new());
    }
    if history {
        let entries = client
            .alert_history(pb::AlertHistoryRequest {
                since_ms: now_ms() - since.as_millis() as i64,
                limit: 10_000,
                alert_id: String::new(),
            })
            .await?
            .into_inner()
            .entries;
        if as_json {
            let v: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({ "at_ms": e.at_ms, "alert_id": e.alert_id, "rule": e.rule, "kind": e.kind,
                            "severity": e.severity, "value": e.value, "detail": e.detail })
                })
                .collect();
            return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
        }
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    format_time(e.at_ms),
                    e.alert_id.clone(),
                    e.rule.clone(),
                    e.kind.clone(),
                    e.severity.clone(),
                    e.value.map_or_else(String::new, format_value),
                    e.detail.clone(),
                ]
            })
            .collect();
        return Ok(table::render(
            &[
                "TIME", "ALERT", "RULE", "WHAT", "SEVERITY", "VALUE", "DETAIL",
            ],
            &rows,
        ));
    }
    let alerts = client
        .list_alerts(pb::ListAlertsRequest {})
        .await?
        .into_inner()
        .alerts;
    if as_json {
        let v: Vec<_> = alerts.iter().map(alert_json).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    if alerts.is_empty() {
        return Ok("no alerts\n".into());
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = alerts.iter().map(|a| alert_row(a, now)).collect();
    Ok(table::render(&ALERT_HEADER, &rows))
}

/// `nightjar ack`.
pub async fn ack(
    client: &mut AlertServiceClient<Conn>,
    id: String,
    by: String,
    note: String,
    as_json: bool,
) -> anyhow::Result<String> {
    let alert = client
        .ack(pb::AckRequest { id, by, note })
        .await?
        .into_inner()
        .alert
        .unwrap_or_default();
    if as_json {
        return Ok(format!("{}\n", alert_json(&alert)));
    }
    Ok(format!(
        "acknowledged {} ({} {}) by {}\n",
        alert.id, alert.rule, alert.series, alert.acked_by
    ))
}

fn silence_rows(silences: &[pb::Silence]) -> Vec<Vec<String>> {
    silences
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.matchers.join(","),
                format_time(s.starts_ms),
                format_time(s.ends_ms),
                s.author.clone(),
                s.comment.clone(),
            ]
        })
        .collect()
}

fn silence_json(s: &pb::Silence) -> serde_json::Value {
    json!({ "id": s.id, "matchers": s.matchers, "starts_ms": s.starts_ms, "ends_ms": s.ends_ms,
            "author": s.author, "comment": s.comment, "created_ms": s.created_ms })
}

const SILENCE_HEADER: [&str; 6] = ["ID", "MATCHERS", "FROM", "UNTIL", "AUTHOR", "COMMENT"];

/// `nightjar silence ...`.
pub async fn silence(
    client: &mut AlertServiceClient<Conn>,
    command: SilenceCommand,
    as_json: bool,
) -> anyhow::Result<String> {
    let silences = match command {
        SilenceCommand::Add {
            matchers,
            duration,
            author,
            comment,
        } => {
            for m in &matchers {
                nightjar_model::selector::Matcher::parse(m)
                    .map_err(|e| anyhow::anyhow!("--match: {e}"))?;
            }
            let now = now_ms();
            let s = client
                .add_silence(pb::AddSilenceRequest {
                    matchers,
                    starts_ms: now,
                    ends_ms: now + duration.as_millis() as i64,
                    author,
                    comment,
                })
                .await?
                .into_inner()
                .silence
                .unwrap_or_default();
            vec![s]
        }
        SilenceCommand::List { all } => {
            client
                .list_silences(pb::ListSilencesRequest {
                    include_expired: all,
                })
                .await?
                .into_inner()
                .silences
        }
        SilenceCommand::Expire { id } => {
            let s = client
                .expire_silence(pb::ExpireSilenceRequest { id })
                .await?
                .into_inner()
                .silence
                .unwrap_or_default();
            vec![s]
        }
    };
    if as_json {
        let v: Vec<_> = silences.iter().map(silence_json).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(table::render(&SILENCE_HEADER, &silence_rows(&silences)))
}

/// `nightjar rules reload`.
pub async fn rules_reload(client: &mut AlertServiceClient<Conn>) -> anyhow::Result<String> {
    let n = client
        .reload_rules(pb::ReloadRulesRequest {})
        .await?
        .into_inner()
        .rules;
    Ok(format!("reloaded: {n} rules in force\n"))
}

pub(crate) async fn history_of(
    client: &mut QueryServiceClient<Conn>,
    rule: &Rule,
    start: i64,
    end: i64,
) -> anyhow::Result<Vec<(SeriesKey, Vec<Point>)>> {
    // Raw points of the rule's metric; the rule's matchers apply here, with
    // the same code the collector runs.
    let series = client
        .query_range(pb::QueryRangeRequest {
            selector: Some(pb::Selector {
                metric: rule.metric().to_owned(),
                matchers: Vec::new(),
            }),
            start_ms: start,
            end_ms: end,
            step_ms: 0,
            aggregation: pb::Aggregation::Last as i32,
            group: None,
        })
        .await
        .with_context(|| format!("reading the history of {}", rule.metric()))?
        .into_inner()
        .series;
    let mut out = Vec::new();
    for s in series {
        let labels = Labels::from_pairs(s.labels.into_iter().map(|l| (l.name, l.value)).collect())
            .map_err(|e| anyhow::anyhow!("collector sent bad labels: {e}"))?;
        let key = SeriesKey {
            metric: s.metric,
            labels,
        };
        if rule.selector.matches(&key) {
            let points = s
                .points
                .into_iter()
                .map(|p| Point::new(p.timestamp_ms, p.value))
                .collect();
            out.push((key, points));
        }
    }
    Ok(out)
}

/// `nightjar rules backtest`.
pub async fn rules_backtest(
    client: &mut QueryServiceClient<Conn>,
    file: PathBuf,
    since: Duration,
    sweep: Duration,
    as_json: bool,
) -> anyhow::Result<String> {
    let rules = rules::load(&[file]).map_err(|e| anyhow::anyhow!("{e}"))?;
    if rules.is_empty() {
        bail!("the file holds no rules");
    }
    let end = now_ms();
    let start = end - since.as_millis() as i64;
    let mut history = Vec::new();
    for rule in &rules {
        history.extend(history_of(client, rule, start, end).await?);
    }
    // One series may feed several rules; give each once.
    history.sort_by(|a, b| a.0.cmp(&b.0));
    history.dedup_by(|a, b| a.0 == b.0);
    let events = backtest::run(
        rules.clone(),
        &history,
        start,
        end,
        sweep.as_millis() as i64,
    );
    let mut per_rule: BTreeMap<&str, (usize, usize)> =
        rules.iter().map(|r| (r.name.as_str(), (0, 0))).collect();
    for e in &events {
        let entry = per_rule.entry(e.rule.as_str()).or_default();
        if e.change == nightjar_alerting::state::Change::Fired {
            entry.0 += 1;
        }
        if e.notify {
            entry.1 += 1;
        }
    }
    if as_json {
        let v: Vec<_> = events
            .iter()
            .map(|e| {
                json!({ "at_ms": e.at_ms, "rule": e.rule, "series": e.series, "change": e.change.as_str(),
                        "severity": e.level.map(|l| l.as_str()), "value": if e.value.is_finite() { Some(e.value) } else { None },
                        "notify": e.notify })
            })
            .collect();
        let summary: BTreeMap<&str, serde_json::Value> = per_rule
            .iter()
            .map(|(r, (fired, sent))| (*r, json!({ "fired": fired, "notifications": sent })))
            .collect();
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({ "events": v, "rules": summary }))?
        ));
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .filter(|e| {
            !matches!(
                e.change,
                nightjar_alerting::state::Change::Pending
                    | nightjar_alerting::state::Change::Cleared
            )
        })
        .map(|e| {
            vec![
                format_time(e.at_ms),
                e.rule.clone(),
                e.series.clone(),
                e.change.as_str().to_owned(),
                e.level.map_or("", |l| l.as_str()).to_owned(),
                format_value(e.value),
                if e.notify { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "TIME", "RULE", "SERIES", "EVENT", "SEVERITY", "VALUE", "NOTIFIES",
        ],
        &rows,
    );
    for (rule, (fired, sent)) in &per_rule {
        out.push_str(&format!(
            "{rule}: fired {fired} times, {sent} notifications\n"
        ));
    }
    Ok(out)
}
