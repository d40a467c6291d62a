//! `nightjar report availability` and `nightjar report adjust`: the
//! availability of services against their targets over a window
//! (`AvailabilityService`, docs/availability.md), as a table, JSON,
//! Markdown, CSV or a self-contained HTML page for stakeholders.

use std::fmt::Write as _;

use clap::Subcommand;
use nightjar_proto::v1 as pb;
use pb::availability_service_client::AvailabilityServiceClient;
use serde_json::{Value, json};

use crate::Conn;
use crate::table;

/// `nightjar report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Availability per service: percent against target, error budget,
    /// raw and weighted outage minutes, unknown minutes, top talkers.
    Availability {
        /// 7d, 30d (any duration back from now), month (this calendar
        /// month so far, UTC), last-month, or FROM..TO with dates
        /// (2026-11-01, UTC), RFC 3339 times or epoch milliseconds.
        #[arg(long, default_value = "30d")]
        window: String,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Markdown (the monthly stakeholder report).
        #[arg(long, conflicts_with_all = ["csv", "html"])]
        markdown: bool,
        /// CSV, one row per service.
        #[arg(long, conflicts_with = "html")]
        csv: bool,
        /// A self-contained HTML page (readable on a phone).
        #[arg(long)]
        html: bool,
    },
    /// Incidents over a window: counts by severity, service and cause, time
    /// to acknowledge and to restore, top talkers, recurring incidents,
    /// follow-ups open and overdue.
    Incidents {
        /// As for `report availability`.
        #[arg(long, default_value = "30d")]
        window: String,
    },
    /// The noisiest rules over a window (fired most, acknowledged least,
    /// shortest-lived, flapping), with the backtest of proposed rules.
    Noise {
        /// As for `report availability`.
        #[arg(long, default_value = "7d")]
        window: String,
        /// A rule file with proposed thresholds: each rule of it is
        /// backtested over the window and shown beside the rule of its name.
        #[arg(long, value_name = "FILE")]
        propose: Option<std::path::PathBuf>,
    },
    /// Capacity: per host the resources that run out soonest, with their
    /// trend and R²; Markdown (default) or a self-contained HTML page.
    Capacity {
        /// As for `report availability`.
        #[arg(long, default_value = "30d")]
        window: String,
        /// A self-contained HTML page.
        #[arg(long)]
        html: bool,
    },
    /// Correct one outage after review: the share of users it really hit
    /// and how much of their work they lost. Reports show who and why.
    Adjust {
        /// The service.
        service: String,
        /// The outage's start, epoch ms, as `report availability --json` gives it.
        outage_start_ms: i64,
        /// Share of the users hit, 0–1.
        #[arg(long)]
        share: f64,
        /// Impact on their work, 0–1.
        #[arg(long)]
        impact: f64,
        /// Who adjusts.
        #[arg(long, env = "USER")]
        by: String,
        /// Why (required).
        #[arg(long)]
        why: String,
    },
}

/// Parses a `--window` against `now_ms` into `[from, to)` epoch ms.
pub fn parse_window(text: &str, now_ms: i64) -> Result<(i64, i64), String> {
    let text = text.trim();
    let utc = jiff::tz::TimeZone::UTC;
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .map_err(|e| e.to_string())?
        .to_zoned(utc.clone());
    let month_start = |d: jiff::civil::Date| -> Result<i64, String> {
        Ok(d.first_of_month()
            .to_zoned(utc.clone())
            .map_err(|e| e.to_string())?
            .timestamp()
            .as_millisecond())
    };
    match text {
        "month" => return Ok((month_start(now.date())?, now_ms)),
        "last-month" => {
            let this = month_start(now.date())?;
            let prev = now
                .date()
                .first_of_month()
                .checked_sub(jiff::Span::new().months(1))
                .map_err(|e| e.to_string())?;
            return Ok((month_start(prev)?, this));
        }
        _ => {}
    }
    if let Some((a, b)) = text.split_once("..") {
        let point = |s: &str| -> Result<i64, String> {
            let s = s.trim();
            if let Ok(ms) = s.parse::<i64>() {
                return Ok(ms);
            }
            if let Ok(t) = s.parse::<jiff::Timestamp>() {
                return Ok(t.as_millisecond());
            }
            s.parse::<jiff::civil::Date>()
                .map_err(|_| {
                    format!(
                        "{s:?} is not a date (2026-11-01), an RFC 3339 time or epoch milliseconds"
                    )
                })
                .and_then(|d| d.to_zoned(utc.clone()).map_err(|e| e.to_string()))
                .map(|z| z.timestamp().as_millisecond())
        };
        let (from, to) = (point(a)?, point(b)?);
        if to <= from {
            return Err(format!("{text:?} ends before it starts"));
        }
        return Ok((from, to));
    }
    let d = nightjar_common::duration::parse("--window", text).map_err(|_| {
        format!("{text:?} is not a window; write 7d, 30d, month, last-month or FROM..TO (dates, RFC 3339 times or epoch ms)")
    })?;
    if d.is_zero() {
        return Err("--window must be longer than zero".into());
    }
    Ok((now_ms - d.as_millis() as i64, now_ms))
}

/// `nightjar report ...`.
pub async fn report(
    client: &mut AvailabilityServiceClient<Conn>,
    command: ReportCommand,
    as_json: bool,
    now_ms: i64,
) -> anyhow::Result<String> {
    match command {
        ReportCommand::Incidents { .. }
        | ReportCommand::Noise { .. }
        | ReportCommand::Capacity { .. } => {
            unreachable!("lib.rs sends these to their services")
        }
        ReportCommand::Adjust {
            service,
            outage_start_ms,
            share,
            impact,
            by,
            why,
        } => {
            client
                .adjust_outage(pb::AdjustOutageRequest {
                    service: service.clone(),
                    outage_start_ms,
                    share,
                    impact,
                    by,
                    why,
                })
                .await?;
            Ok(format!(
                "adjusted the outage of {service} that began at {}\n",
                crate::format_time(outage_start_ms)
            ))
        }
        ReportCommand::Availability {
            window,
            service,
            markdown,
            csv,
            html,
        } => {
            let (from_ms, to_ms) =
                parse_window(&window, now_ms).map_err(|e| anyhow::anyhow!("--window: {e}"))?;
            let r = client
                .report(pb::AvailabilityReportRequest {
                    from_ms,
                    to_ms,
                    service: service.unwrap_or_default(),
                    daily: false,
                    max_outages: 10,
                })
                .await?
                .into_inner();
            Ok(if as_json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&report_json(&r, from_ms, to_ms))?
                )
            } else if markdown {
                render_markdown(&r, from_ms, to_ms)
            } else if csv {
                render_csv(&r)
            } else if html {
                render_html(&r, from_ms, to_ms)
            } else {
                render_table(&r, from_ms, to_ms)
            })
        }
    }
}

fn report_json(r: &pb::AvailabilityReportResponse, from_ms: i64, to_ms: i64) -> Value {
    json!({
        "from_ms": from_ms,
        "to_ms": to_ms,
        "mean_percent": r.mean_percent,
        "weighted_mean_percent": r.weighted_mean_percent,
        "all_of_percent": r.all_of_percent,
        "services": r.services.iter().map(|s| json!({
            "service": s.service,
            "schedule": s.schedule,
            "target_percent": s.target_percent,
            "availability_percent": s.availability_percent,
            "raw_availability_percent": s.raw_availability_percent,
            "met": s.met,
            "scheduled_minutes": s.scheduled_minutes,
            "excluded_minutes": s.excluded_minutes,
            "unknown_minutes": s.unknown_minutes,
            "known_minutes": s.known_minutes,
            "raw_outage_minutes": s.raw_outage_minutes,
            "weighted_outage_minutes": s.weighted_outage_minutes,
            "budget_minutes": s.budget_minutes,
            "budget_used_minutes": s.budget_used_minutes,
            "budget_left_minutes": s.budget_left_minutes,
            "incidents": s.incidents,
            "mean_minutes_to_restore": s.mean_minutes_to_restore,
            "mean_minutes_to_acknowledge": s.mean_minutes_to_acknowledge,
            "acknowledged": s.acknowledged,
            "weight": s.weight,
            "outages": s.outages.iter().map(|o| json!({
                "start_ms": o.start_ms,
                "end_ms": o.end_ms,
                "raw_minutes": o.raw_minutes,
                "weighted_minutes": o.weighted_minutes,
                "worst": o.worst,
                "adjusted_by": o.adjusted_by,
                "adjusted_why": o.adjusted_why,
                "adjusted_share": o.adjusted_share,
                "adjusted_impact": o.adjusted_impact,
                "acknowledged_ms": o.acknowledged_ms,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn pct(v: f64) -> String {
    format!("{v:.3} %")
}

fn min(v: f64) -> String {
    format!("{v:.1}")
}

/// The outages with the most weighted minutes, at most `n`.
fn top_talkers(s: &pb::ServiceAvailability, n: usize) -> Vec<&pb::OutageReport> {
    let mut v: Vec<&pb::OutageReport> = s.outages.iter().collect();
    v.sort_by(|a, b| b.weighted_minutes.total_cmp(&a.weighted_minutes));
    v.truncate(n);
    v
}

fn adjusted(o: &pb::OutageReport) -> String {
    if o.adjusted_by.is_empty() {
        String::new()
    } else {
        format!(
            "adjusted by {} (share {}, impact {}): {}",
            o.adjusted_by, o.adjusted_share, o.adjusted_impact, o.adjusted_why
        )
    }
}

const HEADER: [&str; 13] = [
    "SERVICE",
    "AVAILABILITY",
    "TARGET",
    "MET",
    "BUDGET MIN",
    "USED",
    "LEFT",
    "RAW OUTAGE MIN",
    "WEIGHTED MIN",
    "UNKNOWN MIN",
    "INCIDENTS",
    "MTTA MIN",
    "MTTR MIN",
];

fn row(s: &pb::ServiceAvailability) -> Vec<String> {
    vec![
        s.service.clone(),
        pct(s.availability_percent),
        pct(s.target_percent),
        if s.met { "yes".into() } else { "NO".into() },
        min(s.budget_minutes),
        min(s.budget_used_minutes),
        min(s.budget_left_minutes),
        min(s.raw_outage_minutes),
        min(s.weighted_outage_minutes),
        min(s.unknown_minutes),
        s.incidents.to_string(),
        time_to_ack(s),
        time_to_restore(s),
    ]
}

/// Mean time to acknowledge, or "-" when no outage was acknowledged.
fn time_to_ack(s: &pb::ServiceAvailability) -> String {
    if s.acknowledged > 0 {
        min(s.mean_minutes_to_acknowledge)
    } else {
        "-".into()
    }
}

/// Mean time to restore, or "-" without outages.
fn time_to_restore(s: &pb::ServiceAvailability) -> String {
    if s.incidents > 0 {
        min(s.mean_minutes_to_restore)
    } else {
        "-".into()
    }
}

fn render_table(r: &pb::AvailabilityReportResponse, from_ms: i64, to_ms: i64) -> String {
    let mut out = format!(
        "availability {} .. {}\n",
        crate::format_time(from_ms),
        crate::format_time(to_ms)
    );
    let rows: Vec<Vec<String>> = r.services.iter().map(row).collect();
    out.push_str(&table::render(&HEADER, &rows));
    let _ = writeln!(
        out,
        "combined: mean {}, weighted mean {}, all of them at once {}",
        pct(r.mean_percent),
        pct(r.weighted_mean_percent),
        pct(r.all_of_percent)
    );
    for s in &r.services {
        let top = top_talkers(s, 5);
        if top.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\ntop talkers of {}:", s.service);
        let rows: Vec<Vec<String>> = top
            .iter()
            .map(|o| {
                vec![
                    crate::format_time(o.start_ms),
                    crate::format_time(o.end_ms),
                    min(o.raw_minutes),
                    min(o.weighted_minutes),
                    adjusted(o),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["  FROM", "TO", "RAW MIN", "WEIGHTED MIN", "ADJUSTED"],
            &rows,
        ));
    }
    out
}

fn render_csv(r: &pb::AvailabilityReportResponse) -> String {
    let mut out = String::from(
        "service,availability_percent,target_percent,met,budget_minutes,budget_used_minutes,budget_left_minutes,raw_outage_minutes,weighted_outage_minutes,unknown_minutes,incidents,mean_minutes_to_restore,mean_minutes_to_acknowledge\n",
    );
    for s in &r.services {
        let _ = writeln!(
            out,
            "{},{:.4},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{},{:.2},{:.2}",
            csv_field(&s.service),
            s.availability_percent,
            s.target_percent,
            s.met,
            s.budget_minutes,
            s.budget_used_minutes,
            s.budget_left_minutes,
            s.raw_outage_minutes,
            s.weighted_outage_minutes,
            s.unknown_minutes,
            s.incidents,
            s.mean_minutes_to_restore,
            s.mean_minutes_to_acknowledge
        );
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn render_markdown(r: &pb::AvailabilityReportResponse, from_ms: i64, to_ms: i64) -> String {
    let mut out = format!(
        "# Availability, {} to {}\n\n",
        crate::format_time(from_ms),
        crate::format_time(to_ms)
    );
    out.push_str("| Service | Availability | Target | Met | Budget left (min) | Outage min (raw / weighted) | Unknown min | Incidents | Time to ack / restore (min) |\n|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.services {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} of {} | {} / {} | {} | {} | {} / {} |",
            s.service.replace('|', "\\|"),
            pct(s.availability_percent),
            pct(s.target_percent),
            if s.met { "✔ yes" } else { "✖ no" },
            min(s.budget_left_minutes),
            min(s.budget_minutes),
            min(s.raw_outage_minutes),
            min(s.weighted_outage_minutes),
            min(s.unknown_minutes),
            s.incidents,
            time_to_ack(s),
            time_to_restore(s),
        );
    }
    let _ = writeln!(
        out,
        "\nCombined: mean {}, weighted by importance {}, every service at once {}.",
        pct(r.mean_percent),
        pct(r.weighted_mean_percent),
        pct(r.all_of_percent)
    );
    for s in &r.services {
        let top = top_talkers(s, 5);
        if top.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n## {}: top talkers\n\n| From | To | Raw min | Weighted min | Adjustment |\n|---|---|---|---|---|",
            s.service
        );
        for o in top {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                crate::format_time(o.start_ms),
                crate::format_time(o.end_ms),
                min(o.raw_minutes),
                min(o.weighted_minutes),
                adjusted(o).replace('|', "\\|")
            );
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render_html(r: &pb::AvailabilityReportResponse, from_ms: i64, to_ms: i64) -> String {
    let title = format!(
        "Availability, {} to {}",
        crate::format_time(from_ms),
        crate::format_time(to_ms)
    );
    let mut body = String::new();
    for s in &r.services {
        let share = if s.budget_minutes > 0.0 {
            (s.budget_left_minutes / s.budget_minutes).clamp(0.0, 1.0) * 100.0
        } else {
            0.0
        };
        let _ = write!(
            body,
            "<section class=\"{}\"><h2>{} <span>{}</span></h2><p class=big>{}</p><p>target {} · raw {} · {} incidents · {} min unknown</p>\
             <div class=bar title=\"error budget left\"><div style=\"width:{share:.1}%\"></div></div><p>budget left {} of {} min</p>",
            if s.met { "met" } else { "missed" },
            escape(&s.service),
            if s.met { "✔ met" } else { "✖ missed" },
            pct(s.availability_percent),
            pct(s.target_percent),
            pct(s.raw_availability_percent),
            s.incidents,
            min(s.unknown_minutes),
            min(s.budget_left_minutes),
            min(s.budget_minutes),
        );
        let top = top_talkers(s, 5);
        if !top.is_empty() {
            body.push_str(
                "<table><tr><th>From</th><th>To</th><th>Weighted min</th><th>Adjustment</th></tr>",
            );
            for o in top {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    crate::format_time(o.start_ms),
                    crate::format_time(o.end_ms),
                    min(o.weighted_minutes),
                    escape(&adjusted(o))
                );
            }
            body.push_str("</table>");
        }
        body.push_str("</section>");
    }
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
         <style>body{{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:760px;padding:12px;color:#17202a}}section{{border:1px solid #d5dae0;border-left:8px solid #17803d;border-radius:8px;padding:8px 12px;margin:12px 0}}\
         section.missed{{border-left-color:#b42318}}h2 span{{font-size:14px}}.big{{font-size:28px;font-weight:700;margin:4px 0}}.bar{{background:#eceef1;height:10px;border-radius:5px}}.bar div{{background:#17803d;height:10px;border-radius:5px}}\
         table{{border-collapse:collapse;width:100%;font-size:14px}}td,th{{text-align:left;border-bottom:1px solid #e3e6ea;padding:4px}}</style>\
         <h1>{t}</h1><p>Combined: mean {}, weighted {}, every service at once {}.</p>{body}</html>\n",
        pct(r.mean_percent),
        pct(r.weighted_mean_percent),
        pct(r.all_of_percent),
        t = escape(&title),
    )
}

/// A self-contained HTML page (readable on a phone) of the simple
/// Markdown the reports write: headings, paragraphs and pipe tables.
pub fn markdown_page(title: &str, md: &str) -> String {
    let mut body = String::new();
    let mut in_table = false;
    for line in md.lines() {
        let t = line.trim();
        if t.starts_with('|') {
            let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                body.push_str("<table>");
                in_table = true;
            }
            body.push_str("<tr>");
            for c in cells {
                let _ = write!(body, "<{tag}>{}</{tag}>", escape(c));
            }
            body.push_str("</tr>");
            continue;
        }
        if in_table {
            body.push_str("</table>");
            in_table = false;
        }
        if let Some(h) = t.strip_prefix("## ") {
            let _ = write!(body, "<h2>{}</h2>", escape(h));
        } else if let Some(h) = t.strip_prefix("# ") {
            let _ = write!(body, "<h1>{}</h1>", escape(h));
        } else if !t.is_empty() {
            let _ = write!(body, "<p>{}</p>", escape(t));
        }
    }
    if in_table {
        body.push_str("</table>");
    }
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
         <style>body{{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:760px;padding:12px;color:#17202a}}\
         table{{border-collapse:collapse;width:100%;font-size:14px;margin:8px 0}}td,th{{text-align:left;border-bottom:1px solid #e3e6ea;padding:4px}}</style>\
         {body}</html>\n",
        t = escape(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse() {
        let now = "2026-12-15T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let ms = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert_eq!(parse_window("7d", now), Ok((now - 7 * 86_400_000, now)));
        assert_eq!(
            parse_window("month", now),
            Ok((ms("2026-12-01T00:00:00Z"), now))
        );
        assert_eq!(
            parse_window("last-month", now),
            Ok((ms("2026-11-01T00:00:00Z"), ms("2026-12-01T00:00:00Z")))
        );
        assert_eq!(
            parse_window("2026-11-01..2026-11-08", now),
            Ok((ms("2026-11-01T00:00:00Z"), ms("2026-11-08T00:00:00Z")))
        );
        assert_eq!(parse_window("1000..2000", now), Ok((1000, 2000)));
        assert!(
            parse_window("2026-11-08..2026-11-01", now)
                .unwrap_err()
                .contains("ends before it starts")
        );
        assert!(
            parse_window("fortnight", now)
                .unwrap_err()
                .contains("is not a window")
        );
        assert!(
            parse_window("2026-13-01..2026-12-01", now)
                .unwrap_err()
                .contains("is not a date")
        );
    }
}
