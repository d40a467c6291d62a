//! `nightjar forecast`, `nightjar capacity [correlate]` and `nightjar
//! report capacity` (`CapacityService`, docs/capacity.md).

use std::fmt::Write as _;
use std::time::Duration;

use clap::Subcommand;
use nightjar_proto::v1 as pb;
use pb::capacity_service_client::CapacityServiceClient;
use serde_json::{Value, json};

use super::{Conn, format_time, labels_json, parse_duration, parse_matcher, table};

/// `nightjar capacity ...`.
#[derive(Debug, Subcommand)]
pub enum CapacityCommand {
    /// Regression of a KPI on the volume that drives it: R², correlation,
    /// elasticity, and the KPI at a grown volume against an SLA.
    Correlate {
        /// The KPI metric (a latency, a utilisation).
        #[arg(long)]
        kpi: String,
        /// Label matchers of the KPI's series (repeatable).
        #[arg(long = "kpi-label", value_name = "MATCHER", value_parser = parse_matcher)]
        kpi_labels: Vec<pb::LabelMatcher>,
        /// The volume metric (transactions, requests per second).
        #[arg(long)]
        volume: String,
        /// Label matchers of the volume's series (repeatable).
        #[arg(long = "volume-label", value_name = "MATCHER", value_parser = parse_matcher)]
        volume_labels: Vec<pb::LabelMatcher>,
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        since: Duration,
        /// Bucket width (default 1h over 2 days, else 1m).
        #[arg(long, value_parser = parse_duration)]
        step: Option<Duration>,
        /// linear or power.
        #[arg(long, default_value = "linear")]
        fit: String,
        /// How the KPI's series combine: avg, or p50/p90/p95/p99 of histograms.
        #[arg(long, default_value = "avg")]
        agg: String,
        /// Volume growth to predict, e.g. +50%.
        #[arg(long, value_parser = parse_growth, allow_hyphen_values = true)]
        what_if: Option<f64>,
        /// The KPI's agreed limit, in its unit (e.g. 0.005 for 5 ms in
        /// seconds; `5ms` and `2s` are read as seconds).
        #[arg(long, value_parser = parse_sla, requires = "what_if")]
        sla: Option<f64>,
    },
}

/// `+50%`, `50%`, `-10%` or `0.5` → 0.5.
pub fn parse_growth(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n, true),
        None => (t, false),
    };
    let v: f64 = num
        .trim_start_matches('+')
        .parse()
        .map_err(|_| format!("{s:?} is not a growth; write +50% (or 0.5)"))?;
    let g = if pct { v / 100.0 } else { v };
    if !g.is_finite() || g <= -1.0 {
        return Err(format!("{s:?}: a volume cannot shrink by 100 % or more"));
    }
    Ok(g)
}

/// A number, or a duration (`5ms`, `2s`) read as seconds.
pub fn parse_sla(s: &str) -> Result<f64, String> {
    if let Ok(v) = s.trim().parse::<f64>() {
        return Ok(v);
    }
    let t = s.trim();
    if let Some(ms) = t.strip_suffix("ms")
        && let Ok(v) = ms.parse::<f64>()
    {
        return Ok(v / 1000.0);
    }
    nightjar_common::duration::parse("--sla", t)
        .map(|d| d.as_secs_f64())
        .map_err(|_| format!("{s:?} is not a number or a duration (5ms, 2s)"))
}

fn pretty(v: &Value) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

fn opt_ms(ms: i64) -> Value {
    if ms == 0 { Value::Null } else { json!(ms) }
}

/// One forecast row as the README's JSON shape.
pub fn forecast_json(f: &pb::SeriesForecast) -> Value {
    let crossing = f.crossing == "crossing";
    json!({
        "metric": f.metric, "labels": labels_json(&f.labels), "fit": f.fit,
        "slope_per_day": f.slope_per_day, "r_squared": f.r_squared,
        "last_value": f.last_value, "last_ms": f.last_ms, "threshold": f.threshold,
        "crossing": f.crossing,
        "eta_ms": if crossing { json!(f.eta_ms) } else if f.crossing == "already" { json!(f.last_ms) } else { Value::Null },
        "eta_low_ms": if crossing { opt_ms(f.eta_low_ms) } else { Value::Null },
        "eta_high_ms": if crossing { opt_ms(f.eta_high_ms) } else { Value::Null },
        "error": if f.error.is_empty() { Value::Null } else { json!(f.error) },
        "points": f.points, "a": f.a, "b": f.b, "origin_ms": f.origin_ms,
        "resource": if f.resource.is_empty() { Value::Null } else { json!(f.resource) },
        "host": f.host,
    })
}

fn left(ms: i64, now: i64) -> String {
    let s = (ms - now) / 1000;
    match s {
        i64::MIN..=0 => "now".into(),
        1..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{:.1} h", s as f64 / 3600.0),
        _ => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

/// The "when" column: crossing time and interval, or why there is none.
fn when(f: &pb::SeriesForecast, now: i64) -> String {
    match f.crossing.as_str() {
        "already" => "crossed already".into(),
        "never" => "not crossing".into(),
        "crossing" => format!(
            "{} (in {}; {} … {})",
            format_time(f.eta_ms),
            left(f.eta_ms, now),
            left(f.eta_low_ms, now),
            if f.eta_high_ms == 0 {
                "maybe never".to_owned()
            } else {
                left(f.eta_high_ms, now)
            }
        ),
        _ => format!("cannot fit: {}", f.error),
    }
}

fn series_name(f: &pb::SeriesForecast) -> String {
    let labels: Vec<String> = f
        .labels
        .iter()
        .filter(|l| l.name != "host")
        .map(|l| format!("{}={}", l.name, l.value))
        .collect();
    if labels.is_empty() {
        f.metric.clone()
    } else {
        format!("{}{{{}}}", f.metric, labels.join(","))
    }
}

/// `nightjar forecast`.
#[allow(clippy::too_many_arguments)]
pub async fn forecast(
    client: &mut CapacityServiceClient<Conn>,
    metric: String,
    matchers: Vec<pb::LabelMatcher>,
    threshold: f64,
    since: Duration,
    fit: String,
    lower: bool,
    as_json: bool,
    now: i64,
) -> anyhow::Result<String> {
    let series = client
        .forecast(pb::ForecastRequest {
            selector: Some(pb::Selector { metric, matchers }),
            from_ms: now - since.as_millis() as i64,
            to_ms: now,
            threshold,
            fit,
            lower_limit: lower,
        })
        .await?
        .into_inner()
        .series;
    if as_json {
        return pretty(&json!(series.iter().map(forecast_json).collect::<Vec<_>>()));
    }
    if series.is_empty() {
        return Ok("no series matches\n".into());
    }
    let rows: Vec<Vec<String>> = series
        .iter()
        .map(|f| {
            vec![
                f.host.clone(),
                series_name(f),
                f.fit.clone(),
                format!("{:+.4}", f.slope_per_day),
                format!("{:.3}", f.r_squared),
                format!("{:.4}", f.last_value),
                when(f, now),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "HOST",
            "SERIES",
            "FIT",
            "SLOPE/DAY",
            "R²",
            "LAST",
            "REACHES THRESHOLD",
        ],
        &rows,
    ))
}

/// `nightjar capacity` (the ranked list) and `capacity correlate`.
pub async fn capacity(
    client: &mut CapacityServiceClient<Conn>,
    command: Option<CapacityCommand>,
    host: Option<String>,
    since: Duration,
    as_json: bool,
    now: i64,
) -> anyhow::Result<String> {
    match command {
        None => {
            let rows = client
                .capacity(pb::CapacityRequest {
                    from_ms: now - since.as_millis() as i64,
                    to_ms: now,
                    host: host.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .resources;
            if as_json {
                return pretty(&json!(rows.iter().map(forecast_json).collect::<Vec<_>>()));
            }
            Ok(capacity_table(&rows, now))
        }
        Some(CapacityCommand::Correlate {
            kpi,
            kpi_labels,
            volume,
            volume_labels,
            since,
            step,
            fit,
            agg,
            what_if,
            sla,
        }) => {
            let r = client
                .correlate(pb::CorrelateRequest {
                    kpi: Some(pb::Selector {
                        metric: kpi.clone(),
                        matchers: kpi_labels,
                    }),
                    volume: Some(pb::Selector {
                        metric: volume.clone(),
                        matchers: volume_labels,
                    }),
                    from_ms: now - since.as_millis() as i64,
                    to_ms: now,
                    step_ms: step.map_or(0, |s| s.as_millis() as i64),
                    fit,
                    kpi_aggregation: agg,
                    what_if_growth: what_if,
                    sla,
                })
                .await?
                .into_inner();
            if as_json {
                return pretty(&json!({
                    "kpi": kpi, "volume": volume, "fit": r.fit, "a": r.a, "b": r.b,
                    "buckets": r.buckets, "r_squared": r.r_squared, "r": r.r,
                    "volume_now": r.volume_now, "kpi_now": r.kpi_now,
                    "elasticity_percent": r.elasticity_percent,
                    "what_if": r.has_what_if.then(|| json!({
                        "growth": what_if, "volume": r.what_if_volume, "kpi": r.what_if_kpi,
                        "sla": r.has_sla.then_some(r.sla),
                        "within_sla": r.has_sla.then_some(r.within_sla),
                    })),
                }));
            }
            let mut out = format!(
                "{kpi} on {volume}: {} fit over {} buckets, R² {:.3}, r {:.3}\n",
                r.fit, r.buckets, r.r_squared, r.r
            );
            let _ = writeln!(
                out,
                "today: volume {:.4} → {kpi} {:.4}; +1 % volume → {:+.2} % {kpi}",
                r.volume_now, r.kpi_now, r.elasticity_percent
            );
            if r.has_what_if {
                let _ = write!(
                    out,
                    "what if volume {:+.0} % ({:.4}): {kpi} {:.4}",
                    what_if.unwrap_or(0.0) * 100.0,
                    r.what_if_volume,
                    r.what_if_kpi
                );
                if r.has_sla {
                    let _ = write!(
                        out,
                        " — {} the SLA of {}",
                        if r.within_sla { "within" } else { "OVER" },
                        r.sla
                    );
                }
                out.push('\n');
            }
            if r.r_squared < 0.5 {
                out.push_str("note: R² below 0.5: the volume explains little of the KPI; do not plan on this fit\n");
            }
            Ok(out)
        }
    }
}

fn capacity_table(rows: &[pb::SeriesForecast], now: i64) -> String {
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|f| {
            vec![
                f.host.clone(),
                f.resource.clone(),
                format!("{:.1}", f.last_value),
                format!("{:+.2}/day", f.slope_per_day),
                format!("{:.2}", f.r_squared),
                match f.crossing.as_str() {
                    "crossing" => left(f.eta_ms, now),
                    "already" => "full now".into(),
                    "never" => "-".into(),
                    _ => format!("? ({})", f.error),
                },
                when(f, now),
            ]
        })
        .collect();
    table::render(
        &["HOST", "RESOURCE", "NOW", "TREND", "R²", "LEFT", "WHEN"],
        &table_rows,
    )
}

/// `nightjar report capacity`: the resources that run out soonest, each
/// host's, each service's business KPIs with their trend, and the
/// declared volume-vs-KPI correlations with their what-if; Markdown, a
/// self-contained HTML page, or JSON.
pub async fn report_capacity(
    client: &mut CapacityServiceClient<Conn>,
    (from_ms, to_ms): (i64, i64),
    html: bool,
    as_json: bool,
) -> anyhow::Result<String> {
    let r = client
        .report(pb::CapacityReportRequest { from_ms, to_ms })
        .await?
        .into_inner();
    if as_json {
        return pretty(&json!({
            "from_ms": from_ms, "to_ms": to_ms,
            "resources": r.resources.iter().map(forecast_json).collect::<Vec<_>>(),
            "kpis": r.kpis.iter().map(|k| json!({
                "service": k.service, "component": k.component,
                "series": k.series.iter().map(forecast_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "correlations": r.correlations.iter().map(|c| json!({
                "name": c.name, "service": c.service, "kpi": c.kpi, "volume": c.volume,
                "error": if c.error.is_empty() { Value::Null } else { json!(c.error) },
                "result": c.result.as_ref().map(|x| json!({
                    "fit": x.fit, "r_squared": x.r_squared, "r": x.r, "buckets": x.buckets,
                    "volume_now": x.volume_now, "kpi_now": x.kpi_now,
                    "elasticity_percent": x.elasticity_percent,
                    "what_if_volume": x.has_what_if.then_some(x.what_if_volume),
                    "what_if_kpi": x.has_what_if.then_some(x.what_if_kpi),
                    "sla": x.has_sla.then_some(x.sla),
                    "within_sla": x.has_sla.then_some(x.within_sla),
                })),
            })).collect::<Vec<_>>(),
        }));
    }
    let full = |f: &pb::SeriesForecast| match f.crossing.as_str() {
        "crossing" => format!(
            "{} ({} … {})",
            format_time(f.eta_ms),
            format_time(f.eta_low_ms),
            if f.eta_high_ms == 0 {
                "maybe never".into()
            } else {
                format_time(f.eta_high_ms)
            }
        ),
        "already" => "now".into(),
        "never" => "not in sight".into(),
        _ => format!("cannot fit: {}", f.error),
    };
    let mut md = format!(
        "# Capacity report {} .. {}\n\nTrends are least-squares fits over the window (docs/capacity.md). R² says how much of the movement the line explains: below 0.5, do not plan on it.\n\n",
        format_time(from_ms),
        format_time(to_ms)
    );
    md += "## Runs out soonest\n\n| Host | Resource | Now | Trend per day | R² | Full |\n|---|---|---|---|---|---|\n";
    let soon: Vec<&pb::SeriesForecast> = r
        .resources
        .iter()
        .filter(|f| f.crossing == "crossing" || f.crossing == "already")
        .take(20)
        .collect();
    for f in &soon {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:+.2} | {:.2} | {} |",
            f.host,
            f.resource,
            f.last_value,
            f.slope_per_day,
            f.r_squared,
            full(f)
        );
    }
    if soon.is_empty() {
        md += "| — | nothing runs out on the trends of this window | | | | |\n";
    }
    if !r.kpis.is_empty() {
        md += "\n## Services: business KPIs\n\n| Service | KPI | Series | Now | Trend per day | R² |\n|---|---|---|---|---|---|\n";
        for k in &r.kpis {
            for f in &k.series {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.4} | {:+.4} | {:.2} |",
                    k.service,
                    k.component,
                    series_name(f),
                    f.last_value,
                    f.slope_per_day,
                    f.r_squared
                );
            }
        }
    }
    if !r.correlations.is_empty() {
        md += "\n## Volume vs KPI\n\n| Name | Service | Fit | R² | +1 % volume | Today | What if | SLA |\n|---|---|---|---|---|---|---|---|\n";
        for c in &r.correlations {
            match &c.result {
                Some(x) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.2} | {:+.2} % {} | {} {:.4} at {:.4} | {} | {} |",
                        c.name,
                        c.service,
                        x.fit,
                        x.r_squared,
                        x.elasticity_percent,
                        c.kpi,
                        c.kpi,
                        x.kpi_now,
                        x.volume_now,
                        if x.has_what_if {
                            format!("{:.4} at {:.4}", x.what_if_kpi, x.what_if_volume)
                        } else {
                            "—".into()
                        },
                        if x.has_sla {
                            format!("{} {}", if x.within_sla { "within" } else { "OVER" }, x.sla)
                        } else {
                            "—".into()
                        }
                    );
                }
                None => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | — | — | — | — | cannot fit: {} | — |",
                        c.name, c.service, c.error
                    );
                }
            }
        }
    }
    let mut hosts: Vec<&str> = r.resources.iter().map(|f| f.host.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    for host in hosts {
        let _ = write!(
            md,
            "\n## Host {host}\n\n| Resource | Now | Trend per day | R² | Full |\n|---|---|---|---|---|\n"
        );
        for f in r.resources.iter().filter(|f| f.host == host) {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:+.2} | {:.2} | {} |",
                f.resource,
                f.last_value,
                f.slope_per_day,
                f.r_squared,
                full(f)
            );
        }
    }
    if !html {
        return Ok(md);
    }
    Ok(crate::report::markdown_page("Capacity report", &md))
}
