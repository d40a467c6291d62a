//! `nightjar incident ...`, `problem ...`, `change ...`, `report incidents`
//! and `report noise` (`IncidentService`, docs/incidents.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use nightjar_proto::v1 as pb;
use pb::incident_service_client::IncidentServiceClient;
use pb::query_service_client::QueryServiceClient;
use serde_json::{Value, json};

use super::{Conn, format_time, parse_duration, table};

/// `nightjar incident ...`.
#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Incidents: open ones, and those opened within --since.
    List {
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        /// How far back to list resolved ones.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: Duration,
    },
    /// One incident: its alerts, what changed before it, its timeline and
    /// follow-ups; or its postmortem document.
    Show {
        /// I<number>.
        id: String,
        /// Print the postmortem (Markdown) instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Acknowledge: every firing alert of it is acknowledged (no more
    /// repeats or escalation).
    Ack {
        id: String,
        /// Who acknowledges.
        #[arg(long, env = "USER")]
        by: String,
        /// What is being done.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Add a note to the timeline (an update: resets the update clock).
    Note {
        id: String,
        /// The note.
        text: String,
        #[arg(long, env = "USER")]
        by: String,
    },
    /// Resolve by hand (its hooks hear the service is restored).
    Resolve {
        id: String,
        #[arg(long, env = "USER")]
        by: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Set what was learnt: root cause, category, impact, ...
    Set(Box<SetArgs>),
}

/// `nightjar incident set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    id: String,
    #[arg(long, env = "USER")]
    by: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    summary: Option<String>,
    #[arg(long)]
    root_cause: Option<String>,
    /// change, capacity, hardware, software_defect, configuration,
    /// dependency or unknown.
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    trigger: Option<String>,
    #[arg(long)]
    resolution: Option<String>,
    /// How it was detected: alert, customer report, ...
    #[arg(long)]
    detection: Option<String>,
    /// The change that caused it (C<number> or your change system's id).
    #[arg(long = "change")]
    change_id: Option<String>,
    #[arg(long)]
    lessons: Option<String>,
    /// Share of users hit, 0–1 (with --functional-impact): the
    /// availability report counts it for the incident's outages.
    #[arg(long, requires = "functional_impact")]
    user_share: Option<f64>,
    /// How much of their work they could not do, 0–1.
    #[arg(long, requires = "user_share")]
    functional_impact: Option<f64>,
}

/// `nightjar problem ...`: follow-up actions.
#[derive(Debug, Subcommand)]
pub enum ProblemCommand {
    /// Add a follow-up action to one or more incidents.
    Add {
        /// What is to be done.
        #[arg(long)]
        title: String,
        /// Who does it.
        #[arg(long)]
        owner: String,
        /// Due date: YYYY-MM-DD (end of that day, UTC) or RFC 3339.
        #[arg(long, default_value = "")]
        due: String,
        /// prevent, detect or mitigate.
        #[arg(long, default_value = "prevent")]
        kind: String,
        /// The incident it follows up (repeatable).
        #[arg(long = "incident", value_name = "ID")]
        incidents: Vec<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Follow-ups (open ones unless --all), overdue ones marked, and the
    /// recurring incidents that are candidate problems.
    List {
        #[arg(long)]
        all: bool,
    },
    /// Change a follow-up: its state (open, in_progress, done, wont_do),
    /// owner, due date, ...
    Update {
        /// P<number>.
        id: String,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        due: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Link another incident (repeatable).
        #[arg(long = "link", value_name = "ID")]
        link: Vec<String>,
    },
}

/// `nightjar change ...`.
#[derive(Debug, Subcommand)]
pub enum ChangeCommand {
    /// Record a change made in production (a deploy pipeline can call
    /// this, or the RecordChange API).
    Add {
        /// What was changed.
        #[arg(long)]
        what: String,
        /// Who changed it.
        #[arg(long, env = "USER")]
        by: String,
        /// A service it touched (repeatable).
        #[arg(long = "service")]
        services: Vec<String>,
        /// A host it touched (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// When, epoch ms or RFC 3339 (default now).
        #[arg(long, value_parser = parse_when)]
        at: Option<i64>,
        /// low, medium or high.
        #[arg(long, default_value = "medium")]
        risk: String,
        /// How to undo it.
        #[arg(long, default_value = "")]
        backout: String,
    },
    /// Changes made within --since.
    List {
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        since: Duration,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        host: Option<String>,
    },
}

fn parse_when(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.trim().parse::<i64>() {
        return Ok(ms);
    }
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{s:?} is not a time; write epoch milliseconds or RFC 3339"))
}

fn pretty(v: &Value) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

fn minutes(ms: i64) -> String {
    let m = (ms.max(0) + 30_000) / 60_000;
    if m >= 60 {
        format!("{}h{:02}m", m / 60, m % 60)
    } else {
        format!("{m}m")
    }
}

/// Wire incident → the JSON the README documents.
pub fn incident_json(i: &pb::Incident) -> Value {
    let r = i.review.clone().unwrap_or_default();
    json!({
        "id": i.id, "title": i.title, "state": i.state, "severity": i.severity,
        "services": i.services, "hosts": i.hosts, "firing": i.firing,
        "opened_ms": i.opened_ms, "resolved_ms": i.resolved_ms, "resolved_by": i.resolved_by,
        "acked_ms": i.acked_ms, "acked_by": i.acked_by, "ack_note": i.ack_note,
        "last_note_ms": i.last_note_ms, "reopened": i.reopened,
        "alerts": i.alerts.iter().map(|a| json!({
            "alert_id": a.alert_id, "rule": a.rule, "host": a.host, "series": a.series,
            "summary": a.summary, "severity": a.severity, "worst": a.worst,
            "fired_ms": a.fired_ms, "resolved_ms": a.resolved_ms,
        })).collect::<Vec<_>>(),
        "review": {
            "summary": r.summary, "root_cause": r.root_cause, "category": r.category,
            "trigger": r.trigger, "resolution": r.resolution, "detection": r.detection,
            "change_id": r.change_id, "lessons": r.lessons,
            "impact": r.has_impact.then(|| json!({ "user_share": r.user_share, "functional": r.functional_impact })),
        },
    })
}

fn change_json(c: &pb::ChangeRecord) -> Value {
    json!({
        "id": c.id, "what": c.what, "by": c.by, "services": c.services, "hosts": c.hosts,
        "at_ms": c.at_ms, "risk": c.risk, "backout": c.backout, "recorded_ms": c.recorded_ms,
    })
}

fn follow_up_json(f: &pb::FollowUp) -> Value {
    json!({
        "id": f.id, "title": f.title, "owner": f.owner, "due_ms": f.due_ms, "kind": f.kind,
        "state": f.state, "incidents": f.incidents, "note": f.note, "created_ms": f.created_ms,
        "updated_ms": f.updated_ms, "closed_ms": f.closed_ms, "overdue": f.overdue,
    })
}

fn recurring_json(r: &pb::RecurringIncidents) -> Value {
    json!({ "key": r.key, "incidents": r.incidents, "has_follow_up": r.has_follow_up })
}

fn incident_rows(incidents: &[pb::Incident], now: i64) -> String {
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            let end = if i.resolved_ms == 0 {
                now
            } else {
                i.resolved_ms
            };
            vec![
                i.id.clone(),
                i.state.clone(),
                i.severity.clone(),
                format!("{}/{}", i.firing, i.alerts.len()),
                format_time(i.opened_ms),
                minutes(end - i.opened_ms),
                if i.acked_by.is_empty() {
                    "-".into()
                } else {
                    i.acked_by.clone()
                },
                i.title.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "ID", "STATE", "SEVERITY", "FIRING", "OPENED", "LASTED", "ACKED BY", "TITLE",
        ],
        &rows,
    )
}

fn follow_up_rows(follow_ups: &[pb::FollowUp]) -> String {
    let rows: Vec<Vec<String>> = follow_ups
        .iter()
        .map(|f| {
            vec![
                f.id.clone(),
                if f.overdue {
                    format!("{} OVERDUE", f.state)
                } else {
                    f.state.clone()
                },
                f.kind.clone(),
                f.owner.clone(),
                if f.due_ms == 0 {
                    "-".into()
                } else {
                    format_time(f.due_ms)[..10].to_owned()
                },
                f.incidents.join(","),
                f.title.clone(),
            ]
        })
        .collect();
    table::render(
        &["ID", "STATE", "KIND", "OWNER", "DUE", "INCIDENTS", "TITLE"],
        &rows,
    )
}

fn show(resp: &pb::GetIncidentResponse, now: i64) -> String {
    let Some(i) = &resp.incident else {
        return String::new();
    };
    let mut out = format!(
        "{} {} — {} ({})\n",
        i.id,
        i.state.to_uppercase(),
        i.title,
        i.severity
    );
    let end = if i.resolved_ms == 0 {
        now
    } else {
        i.resolved_ms
    };
    out += &format!(
        "opened {}, lasted {}{}{}\n",
        format_time(i.opened_ms),
        minutes(end - i.opened_ms),
        if i.acked_by.is_empty() {
            ", not acknowledged".to_owned()
        } else {
            format!(
                ", acknowledged by {} after {}",
                i.acked_by,
                minutes(i.acked_ms - i.opened_ms)
            )
        },
        if i.reopened > 0 {
            format!(", reopened {}×", i.reopened)
        } else {
            String::new()
        }
    );
    if !i.services.is_empty() {
        out += &format!("services: {}\n", i.services.join(", "));
    }
    if !resp.changes_before.is_empty() {
        out += "\nWHAT CHANGED BEFORE IT\n";
        let rows: Vec<Vec<String>> = resp
            .changes_before
            .iter()
            .map(|c| {
                vec![
                    format_time(c.at_ms),
                    c.id.clone(),
                    c.risk.clone(),
                    c.by.clone(),
                    c.what.clone(),
                ]
            })
            .collect();
        out += &table::render(&["TIME", "CHANGE", "RISK", "BY", "WHAT"], &rows);
    }
    out += "\nALERTS\n";
    let rows: Vec<Vec<String>> = i
        .alerts
        .iter()
        .map(|a| {
            vec![
                a.alert_id.clone(),
                a.rule.clone(),
                a.host.clone(),
                if a.severity.is_empty() {
                    "resolved".into()
                } else {
                    a.severity.clone()
                },
                a.summary.clone(),
            ]
        })
        .collect();
    out += &table::render(&["ALERT", "RULE", "HOST", "NOW", "SUMMARY"], &rows);
    out += "\nTIMELINE\n";
    let rows: Vec<Vec<String>> = resp
        .timeline
        .iter()
        .map(|e| {
            vec![
                format_time(e.at_ms),
                e.kind.clone(),
                e.by.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    out += &table::render(&["TIME", "EVENT", "BY", "DETAIL"], &rows);
    if !resp.follow_ups.is_empty() {
        out += "\nFOLLOW-UPS\n";
        out += &follow_up_rows(&resp.follow_ups);
    }
    out
}

/// `nightjar incident ...`.
pub async fn incident(
    client: &mut IncidentServiceClient<Conn>,
    command: IncidentCommand,
    as_json: bool,
    now: i64,
) -> anyhow::Result<String> {
    let one = |i: Option<pb::Incident>, verb: &str| -> anyhow::Result<String> {
        let i = i.unwrap_or_default();
        if as_json {
            return pretty(&incident_json(&i));
        }
        Ok(format!("{} {verb}: {}\n", i.id, i.title))
    };
    match command {
        IncidentCommand::List { open, since } => {
            let incidents = client
                .list_incidents(pb::ListIncidentsRequest {
                    open_only: open,
                    since_ms: now - since.as_millis() as i64,
                    limit: 1000,
                })
                .await?
                .into_inner()
                .incidents;
            if as_json {
                return pretty(&json!(
                    incidents.iter().map(incident_json).collect::<Vec<_>>()
                ));
            }
            Ok(incident_rows(&incidents, now))
        }
        IncidentCommand::Show { id, markdown } => {
            let resp = client
                .get_incident(pb::GetIncidentRequest { id })
                .await?
                .into_inner();
            if markdown {
                return Ok(resp.postmortem_markdown);
            }
            if as_json {
                return pretty(&json!({
                    "incident": resp.incident.as_ref().map(incident_json),
                    "timeline": resp.timeline.iter().map(|e| json!({
                        "at_ms": e.at_ms, "kind": e.kind, "by": e.by, "alert_id": e.alert_id, "detail": e.detail,
                    })).collect::<Vec<_>>(),
                    "changes_before": resp.changes_before.iter().map(change_json).collect::<Vec<_>>(),
                    "changes_during": resp.changes_during.iter().map(change_json).collect::<Vec<_>>(),
                    "follow_ups": resp.follow_ups.iter().map(follow_up_json).collect::<Vec<_>>(),
                }));
            }
            Ok(show(&resp, now))
        }
        IncidentCommand::Ack { id, by, note } => {
            let r = client
                .ack_incident(pb::AckIncidentRequest { id, by, note })
                .await?
                .into_inner();
            one(r.incident, "acknowledged")
        }
        IncidentCommand::Note { id, text, by } => {
            let r = client
                .note_incident(pb::NoteIncidentRequest { id, by, text })
                .await?
                .into_inner();
            one(r.incident, "noted")
        }
        IncidentCommand::Resolve { id, by, note } => {
            let r = client
                .resolve_incident(pb::ResolveIncidentRequest { id, by, note })
                .await?
                .into_inner();
            one(r.incident, "resolved")
        }
        IncidentCommand::Set(args) => {
            let SetArgs {
                id,
                by,
                title,
                summary,
                root_cause,
                category,
                trigger,
                resolution,
                detection,
                change_id,
                lessons,
                user_share,
                functional_impact,
            } = *args;
            let r = client
                .set_incident(pb::SetIncidentRequest {
                    id,
                    by,
                    title,
                    summary,
                    root_cause,
                    category,
                    trigger,
                    resolution,
                    detection,
                    change_id,
                    lessons,
                    user_share,
                    functional_impact,
                })
                .await?
                .into_inner();
            one(r.incident, "updated")
        }
    }
}

/// `nightjar problem ...`.
pub async fn problem(
    client: &mut IncidentServiceClient<Conn>,
    command: ProblemCommand,
    as_json: bool,
) -> anyhow::Result<String> {
    let one = |f: Option<pb::FollowUp>, verb: &str| -> anyhow::Result<String> {
        let f = f.unwrap_or_default();
        if as_json {
            return pretty(&follow_up_json(&f));
        }
        Ok(format!("{} {verb}: {} ({})\n", f.id, f.title, f.state))
    };
    match command {
        ProblemCommand::Add {
            title,
            owner,
            due,
            kind,
            incidents,
            note,
        } => {
            let r = client
                .add_follow_up(pb::AddFollowUpRequest {
                    title,
                    owner,
                    due,
                    kind,
                    incidents,
                    note,
                })
                .await?
                .into_inner();
            one(r.follow_up, "added")
        }
        ProblemCommand::Update {
            id,
            state,
            title,
            owner,
            due,
            kind,
            note,
            link,
        } => {
            let r = client
                .update_follow_up(pb::UpdateFollowUpRequest {
                    id,
                    title,
                    owner,
                    due,
                    kind,
                    state,
                    note,
                    link,
                })
                .await?
                .into_inner();
            one(r.follow_up, "updated")
        }
        ProblemCommand::List { all } => {
            let r = client
                .list_follow_ups(pb::ListFollowUpsRequest { open_only: !all })
                .await?
                .into_inner();
            if as_json {
                return pretty(&json!({
                    "follow_ups": r.follow_ups.iter().map(follow_up_json).collect::<Vec<_>>(),
                    "candidates": r.candidates.iter().map(recurring_json).collect::<Vec<_>>(),
                }));
            }
            let mut out = follow_up_rows(&r.follow_ups);
            if !r.candidates.is_empty() {
                out += "\nRECURRING INCIDENTS (candidate problems)\n";
                let rows: Vec<Vec<String>> = r
                    .candidates
                    .iter()
                    .map(|c| {
                        vec![
                            c.key.clone(),
                            c.incidents.len().to_string(),
                            c.incidents.join(","),
                            if c.has_follow_up { "yes" } else { "NO" }.to_owned(),
                        ]
                    })
                    .collect();
                out += &table::render(&["WHAT", "TIMES", "INCIDENTS", "FOLLOW-UP"], &rows);
            }
            Ok(out)
        }
    }
}

/// `nightjar change ...`.
pub async fn change(
    client: &mut IncidentServiceClient<Conn>,
    command: ChangeCommand,
    as_json: bool,
    now: i64,
) -> anyhow::Result<String> {
    match command {
        ChangeCommand::Add {
            what,
            by,
            services,
            hosts,
            at,
            risk,
            backout,
        } => {
            let c = client
                .record_change(pb::RecordChangeRequest {
                    what,
                    by,
                    services,
                    hosts,
                    at_ms: at.unwrap_or(0),
                    risk,
                    backout,
                })
                .await?
                .into_inner()
                .change
                .unwrap_or_default();
            if as_json {
                return pretty(&change_json(&c));
            }
            Ok(format!("{} recorded: {}\n", c.id, c.what))
        }
        ChangeCommand::List {
            since,
            service,
            host,
        } => {
            let changes = client
                .list_changes(pb::ListChangesRequest {
                    from_ms: now - since.as_millis() as i64,
                    to_ms: now + 1,
                    service: service.unwrap_or_default(),
                    host: host.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .changes;
            if as_json {
                return pretty(&json!(changes.iter().map(change_json).collect::<Vec<_>>()));
            }
            let rows: Vec<Vec<String>> = changes
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        format_time(c.at_ms),
                        c.risk.clone(),
                        c.by.clone(),
                        [c.services.clone(), c.hosts.clone()].concat().join(","),
                        c.what.clone(),
                    ]
                })
                .collect();
            Ok(table::render(
                &["ID", "TIME", "RISK", "BY", "TOUCHED", "WHAT"],
                &rows,
            ))
        }
    }
}

/// `nightjar report incidents`.
pub async fn report_incidents(
    client: &mut IncidentServiceClient<Conn>,
    (from_ms, to_ms): (i64, i64),
    as_json: bool,
) -> anyhow::Result<String> {
    let r = client
        .incident_report(pb::IncidentReportRequest { from_ms, to_ms })
        .await?
        .into_inner();
    let counts = |v: &[pb::CountBy]| -> Value {
        v.iter().map(|c| (c.key.clone(), json!(c.count))).collect()
    };
    if as_json {
        return pretty(&json!({
            "from_ms": from_ms, "to_ms": to_ms, "incidents": r.incidents,
            "by_severity": counts(&r.by_severity), "by_service": counts(&r.by_service),
            "by_category": counts(&r.by_category),
            "minutes_to_acknowledge": { "median": r.median_minutes_to_acknowledge, "worst": r.worst_minutes_to_acknowledge, "count": r.acknowledged },
            "minutes_to_restore": { "median": r.median_minutes_to_restore, "worst": r.worst_minutes_to_restore, "count": r.restored },
            "top_talkers": r.top_talkers.iter().map(|t| json!({ "id": t.id, "title": t.title, "weighted_minutes": t.weighted_minutes, "minutes": t.minutes })).collect::<Vec<_>>(),
            "recurring": r.recurring.iter().map(recurring_json).collect::<Vec<_>>(),
            "follow_ups_open": r.follow_ups_open, "follow_ups_overdue": r.follow_ups_overdue,
            "overdue": r.overdue.iter().map(follow_up_json).collect::<Vec<_>>(),
        }));
    }
    let list = |v: &[pb::CountBy]| {
        v.iter()
            .map(|c| format!("{} {}", c.key, c.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "Incidents {} .. {}: {}\n",
        format_time(from_ms),
        format_time(to_ms),
        r.incidents
    );
    out += &format!("  by severity: {}\n", list(&r.by_severity));
    out += &format!("  by service:  {}\n", list(&r.by_service));
    out += &format!("  by cause:    {}\n", list(&r.by_category));
    out += &format!(
        "  time to acknowledge: median {:.1} min, worst {:.1} min ({} acknowledged)\n",
        r.median_minutes_to_acknowledge, r.worst_minutes_to_acknowledge, r.acknowledged
    );
    out += &format!(
        "  time to restore:     median {:.1} min, worst {:.1} min ({} restored)\n",
        r.median_minutes_to_restore, r.worst_minutes_to_restore, r.restored
    );
    out += &format!(
        "  follow-ups: {} open, {} overdue\n",
        r.follow_ups_open, r.follow_ups_overdue
    );
    if !r.top_talkers.is_empty() {
        out += "\nTOP TALKERS\n";
        let rows: Vec<Vec<String>> = r
            .top_talkers
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    format!("{:.1}", t.weighted_minutes),
                    format!("{:.1}", t.minutes),
                    t.title.clone(),
                ]
            })
            .collect();
        out += &table::render(&["ID", "WEIGHTED MIN", "MINUTES", "TITLE"], &rows);
    }
    if !r.recurring.is_empty() {
        out += "\nRECURRING\n";
        let rows: Vec<Vec<String>> = r
            .recurring
            .iter()
            .map(|c| {
                vec![
                    c.key.clone(),
                    c.incidents.len().to_string(),
                    if c.has_follow_up { "yes" } else { "NO" }.to_owned(),
                ]
            })
            .collect();
        out += &table::render(&["WHAT", "TIMES", "FOLLOW-UP"], &rows);
    }
    if !r.overdue.is_empty() {
        out += "\nOVERDUE FOLLOW-UPS\n";
        out += &follow_up_rows(&r.overdue);
    }
    Ok(out)
}

/// `nightjar report noise`: the noisiest rules, and with `--propose` the
/// backtest of the proposed rules over the same window beside them.
pub async fn report_noise(
    client: &mut IncidentServiceClient<Conn>,
    query: &mut QueryServiceClient<Conn>,
    (from_ms, to_ms): (i64, i64),
    propose: Option<PathBuf>,
    as_json: bool,
) -> anyhow::Result<String> {
    let rows = client
        .noise_report(pb::NoiseReportRequest {
            from_ms,
            to_ms,
            limit: 20,
        })
        .await?
        .into_inner()
        .rules;
    // rule → (fired, notifications) had the proposed rules been in force.
    let mut proposed: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    if let Some(file) = propose {
        let rules = nightjar_alerting::rules::load(&[file])
            .map_err(|e| anyhow::anyhow!("--propose: {e}"))?;
        let mut history = Vec::new();
        for rule in &rules {
            history.extend(super::alerts::history_of(query, rule, from_ms, to_ms).await?);
        }
        history.sort_by(|a, b| a.0.cmp(&b.0));
        history.dedup_by(|a, b| a.0 == b.0);
        let events =
            nightjar_alerting::backtest::run(rules.clone(), &history, from_ms, to_ms, 1000);
        for r in &rules {
            proposed.insert(r.name.clone(), (0, 0));
        }
        for e in &events {
            let entry = proposed.entry(e.rule.clone()).or_default();
            if e.change == nightjar_alerting::state::Change::Fired {
                entry.0 += 1;
            }
            if e.notify {
                entry.1 += 1;
            }
        }
    }
    if as_json {
        return pretty(&json!({
            "from_ms": from_ms, "to_ms": to_ms,
            "rules": rows.iter().map(|r| {
                let p = proposed.get(&r.rule);
                json!({
                    "rule": r.rule, "fired": r.fired, "acknowledged": r.acknowledged,
                    "ack_ratio": r.ack_ratio, "median_minutes_firing": r.median_minutes_firing,
                    "shortest_minutes_firing": r.shortest_minutes_firing,
                    "short_lived": r.short_lived, "flapping": r.flapping,
                    "notifications": r.notifications, "series": r.series, "score": r.score,
                    "proposed": p.map(|(f, n)| json!({ "fired": f, "notifications": n })),
                })
            }).collect::<Vec<_>>(),
        }));
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.rule.clone(),
                format!("{:.1}", r.score),
                r.fired.to_string(),
                format!("{:.0}%", r.ack_ratio * 100.0),
                format!("{:.1}", r.median_minutes_firing),
                r.short_lived.to_string(),
                r.flapping.to_string(),
                r.notifications.to_string(),
            ];
            if !proposed.is_empty() {
                row.push(
                    proposed
                        .get(&r.rule)
                        .map_or("-".into(), |(f, n)| format!("{f} fired, {n} sent")),
                );
            }
            row
        })
        .collect();
    let mut headers = vec![
        "RULE",
        "SCORE",
        "FIRED",
        "ACKED",
        "MEDIAN MIN",
        "SHORT-LIVED",
        "FLAPPING",
        "SENT",
    ];
    if !proposed.is_empty() {
        headers.push("PROPOSED (BACKTEST)");
    }
    Ok(format!(
        "Noisiest rules {} .. {}\n{}",
        format_time(from_ms),
        format_time(to_ms),
        table::render(&headers, &table_rows)
    ))
}
