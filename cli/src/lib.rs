//! The `nightjar` command-line client: hosts, series, query, status.
//!
//! Arguments are parsed into `Cli` first (parsing does nothing else), then
//! each command talks to the collector's QueryService. Every command prints
//! a table for people or, with `--json`, a JSON document whose shape README
//! documents.

pub mod alerts;
pub mod capacity;
pub mod incidents;
pub mod report;
pub mod services;
pub mod status;
pub mod table;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use nightjar_common::token::BearerToken;
use nightjar_proto::v1 as pb;
use pb::alert_service_client::AlertServiceClient;
use pb::board_service_client::BoardServiceClient;
use pb::query_service_client::QueryServiceClient;
use serde_json::json;
use tonic::transport::Channel;

use status::{Health, HostReading};

/// A channel whose calls carry the bearer token, if any.
pub type Conn = tonic::service::interceptor::InterceptedService<Channel, BearerToken>;

/// How long the CLI waits to connect to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the CLI waits for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Query and inspect a Nightjar collector.
#[derive(Debug, Parser)]
#[command(name = "nightjar", version)]
pub struct Cli {
    /// The collector's gRPC address.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "NIGHTJAR_COLLECTOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub collector: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// CA certificate (PEM) of an https:// collector.
    #[arg(long, global = true, value_name = "FILE", env = "NIGHTJAR_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Name to verify in the collector's certificate (default: the URL's host).
    #[arg(long, global = true, value_name = "NAME")]
    pub server_name: Option<String>,
    /// File holding a read token (first line), for a collector with tokens.
    #[arg(long, global = true, value_name = "FILE", env = "NIGHTJAR_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List hosts with last contact and series count.
    Hosts,
    /// List series, optionally of one metric and one host.
    Series {
        /// Metric name.
        metric: Option<String>,
        /// Only series of this host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Print the points of a metric over a recent time range.
    Query {
        /// Metric name, e.g. cpu_usage_percent.
        metric: String,
        /// Only series of this host.
        #[arg(long)]
        host: Option<String>,
        /// Label matcher: k=v, k!=v, k=~regex or k!~regex (repeatable).
        #[arg(long = "label", value_name = "MATCHER", value_parser = parse_matcher)]
        labels: Vec<pb::LabelMatcher>,
        /// How far back to look.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        since: Duration,
        /// Where the range ends, in epoch milliseconds (as `--json` and the
        /// dashboard's charts give times); default now. For a past incident.
        #[arg(long, value_name = "EPOCH_MS", value_parser = parse_epoch_ms)]
        end: Option<i64>,
        /// Bucket width; 0 prints the raw stored points.
        #[arg(long, default_value = "10s", value_parser = parse_duration_or_zero)]
        step: Duration,
        /// How the points of a bucket combine; the percentiles (and max,
        /// min, count, avg = mean, sum) also read histogram series.
        #[arg(long, value_enum, default_value_t = Agg::Avg)]
        agg: Agg,
        /// Combine series with equal values of these labels (comma-separated);
        /// with no label, combine all selected series into one (histograms
        /// merge, so a p99 is the p99 of every host's observations).
        #[arg(long, value_name = "LABELS", num_args = 0..=1, value_delimiter = ',', default_missing_value = "")]
        by: Option<Vec<String>>,
    },
    /// One row per host: green, amber or red by its worst firing alert,
    /// with CPU, memory and fullest disk.
    Status,
    /// One row per service: ok, unknown (no data), warning or critical by
    /// its worst component or dependency.
    Services,
    /// One service: its components by layer, dependencies and contacts.
    Service {
        /// The service's name (from `nightjar services`).
        name: String,
    },
    /// Alerts pending, firing or flapping now; or their history; or a live feed.
    Alerts {
        /// Print alert changes as they happen until interrupted.
        #[arg(long, conflicts_with = "history")]
        watch: bool,
        /// Print the history: transitions, notifications, acks, silences.
        #[arg(long)]
        history: bool,
        /// How far back --history looks.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        since: Duration,
    },
    /// Acknowledge a firing alert: no more repeats or escalation.
    Ack {
        /// The alert's id (from `nightjar alerts`).
        id: String,
        /// Who acknowledges.
        #[arg(long, env = "USER")]
        by: String,
        /// What is being done about it.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Silences: hold back notifications of matching alerts.
    Silence {
        /// add, list or expire.
        #[command(subcommand)]
        action: alerts::SilenceCommand,
    },
    /// Alert rules: check files, reload, backtest.
    Rules {
        /// check, reload or backtest.
        #[command(subcommand)]
        action: alerts::RulesCommand,
    },
    /// Reports: availability against the SLA, and adjusting an outage.
    Report {
        /// availability or adjust.
        #[command(subcommand)]
        what: report::ReportCommand,
    },
    /// Incidents: list, show (or its postmortem), ack, note, resolve, set
    /// the review fields.
    Incident {
        #[command(subcommand)]
        action: incidents::IncidentCommand,
    },
    /// Problem management: follow-up actions tracked to done, and
    /// recurring incidents.
    Problem {
        #[command(subcommand)]
        action: incidents::ProblemCommand,
    },
    /// Changes made in production: record one, list them.
    Change {
        #[command(subcommand)]
        action: incidents::ChangeCommand,
    },
    /// Fit each matching series over a window and say when it crosses a
    /// threshold, with the fit's R² and the crossing's interval.
    Forecast {
        /// Metric name.
        metric: String,
        /// Only series of this host.
        #[arg(long)]
        host: Option<String>,
        /// Label matcher: k=v, k!=v, k=~regex or k!~regex (repeatable).
        #[arg(long = "label", value_name = "MATCHER", value_parser = parse_matcher)]
        labels: Vec<pb::LabelMatcher>,
        /// The value it must not reach.
        #[arg(long, allow_hyphen_values = true)]
        threshold: f64,
        /// The window fitted.
        #[arg(long, default_value = "30d", value_parser = parse_duration)]
        since: Duration,
        /// linear, exponential, logarithmic or power.
        #[arg(long, default_value = "linear")]
        fit: String,
        /// The threshold is a floor (free space reaching it), not a ceiling.
        #[arg(long)]
        below: bool,
    },
    /// Every filesystem, memory and swap of every host (and each declared
    /// limit) ranked by the time left; or `correlate` a KPI with volume.
    Capacity {
        #[command(subcommand)]
        action: Option<capacity::CapacityCommand>,
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// The window fitted.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: Duration,
    },
    /// Bearer tokens: make one, or hash one for the collector's token file.
    Token {
        /// new or hash.
        #[command(subcommand)]
        action: TokenCommand,
    },
}

/// `nightjar token ...` (offline).
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a random token; prints it, then the line for the token file.
    New {
        /// Role: `agent` (ingest, for host NAME only), `read` (query,
        /// alerts) or `write` (remote_write pushes, any host).
        #[arg(value_parser = ["agent", "read", "write"])]
        role: String,
        /// The host (agent) or client name (read).
        name: String,
    },
    /// Read a token on stdin; print its line for the token file.
    Hash {
        /// Role: `agent`, `read` or `write`.
        #[arg(value_parser = ["agent", "read", "write"])]
        role: String,
        /// The host (agent) or client name (read).
        name: String,
    },
}

fn token_command(action: TokenCommand) -> anyhow::Result<String> {
    match action {
        TokenCommand::New { role, name } => {
            let mut bytes = [0u8; 24];
            let mut urandom =
                std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
            std::io::Read::read_exact(&mut urandom, &mut bytes).context("reading /dev/urandom")?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Ok(format!(
                "{token}\n{role} {name} {}\n",
                nightjar_common::token::hash_token(&token)
            ))
        }
        TokenCommand::Hash { role, name } => {
            let mut token = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)
                .context("reading stdin")?;
            let token = token.trim();
            if token.is_empty() {
                bail!("no token on stdin");
            }
            Ok(format!(
                "{role} {name} {}\n",
                nightjar_common::token::hash_token(token)
            ))
        }
    }
}

/// Aggregations accepted by `query --agg`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Agg {
    /// Mean (of the points; of the observations for a histogram series).
    #[value(alias = "mean")]
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sum.
    Sum,
    /// Number of points.
    Count,
    /// Newest point.
    Last,
    /// Median of a histogram series.
    P50,
    /// 90th percentile of a histogram series.
    P90,
    /// 95th percentile of a histogram series.
    P95,
    /// 99th percentile of a histogram series.
    P99,
    /// 99.9th percentile of a histogram series.
    P999,
}

impl From<Agg> for pb::Aggregation {
    fn from(a: Agg) -> Self {
        match a {
            Agg::Avg => pb::Aggregation::Avg,
            Agg::Min => pb::Aggregation::Min,
            Agg::Max => pb::Aggregation::Max,
            Agg::Sum => pb::Aggregation::Sum,
            Agg::Count => pb::Aggregation::Count,
            Agg::Last => pb::Aggregation::Last,
            Agg::P50 => pb::Aggregation::P50,
            Agg::P90 => pb::Aggregation::P90,
            Agg::P95 => pb::Aggregation::P95,
            Agg::P99 => pb::Aggregation::P99,
            Agg::P999 => pb::Aggregation::P999,
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    nightjar_common::duration::parse("duration", s)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.is_zero() {
                Err("duration must be above zero".into())
            } else {
                Ok(d)
            }
        })
}

fn parse_epoch_ms(s: &str) -> Result<i64, String> {
    let ms: i64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a time; write epoch milliseconds, e.g. 1764590400000")
    })?;
    if ms <= 0 {
        return Err(format!("{ms} is before 1970; write epoch milliseconds"));
    }
    Ok(ms)
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    nightjar_common::duration::parse("duration", s).map_err(|e| e.to_string())
}

/// Parses `k=v`, `k!=v`, `k=~re`, `k!~re`.
fn parse_matcher(s: &str) -> Result<pb::LabelMatcher, String> {
    let ops = [
        ("!=", pb::MatchOp::NotEqual),
        ("=~", pb::MatchOp::Regex),
        ("!~", pb::MatchOp::NotRegex),
        ("=", pb::MatchOp::Equal),
    ];
    let (pos, op_text, op) = ops
        .iter()
        .filter_map(|(text, op)| s.find(text).map(|pos| (pos, *text, *op)))
        .min_by_key(|(pos, text, _)| (*pos, std::cmp::Reverse(text.len())))
        .ok_or_else(|| format!("{s:?} is not a matcher; write k=v, k!=v, k=~regex or k!~regex"))?;
    let name = &s[..pos];
    if name.is_empty() {
        return Err(format!("{s:?}: label name is empty"));
    }
    Ok(pb::LabelMatcher {
        name: name.to_owned(),
        op: op as i32,
        value: s[pos + op_text.len()..].to_owned(),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn eq(name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher {
        name: name.to_owned(),
        op: pb::MatchOp::Equal as i32,
        value: value.to_owned(),
    }
}

fn labels_json(labels: &[pb::Label]) -> serde_json::Value {
    let map: BTreeMap<&str, &str> = labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    json!(map)
}

fn series_name(metric: &str, labels: &[pb::Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// A value with three decimals, or six significant digits below 1 (a
/// latency in seconds reads 0.000734, not 0.001).
fn format_value(v: f64) -> String {
    if v != 0.0 && v.abs() < 1.0 {
        let digits = (5 - v.abs().log10().floor() as i32).clamp(3, 12) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3}")
    }
}

pub(crate) fn format_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn format_age(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}%"))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Rules {
        action: alerts::RulesCommand::Check { files },
    } = &cli.command
    {
        print!("{}", alerts::rules_check(files, cli.json)?);
        return Ok(());
    }
    if let Command::Token { action } = cli.command {
        print!("{}", token_command(action)?);
        return Ok(());
    }
    let token = match &cli.token_file {
        Some(path) => {
            refuse_plaintext_token(&cli.collector)?;
            BearerToken::from_file("--token-file", path).map_err(|e| anyhow::anyhow!(e))?
        }
        None => BearerToken::none(),
    };
    let channel = connect(&cli.collector, cli.ca.as_deref(), cli.server_name.clone()).await?;
    let mut client = QueryServiceClient::with_interceptor(channel.clone(), token.clone());
    let mut alert_client = AlertServiceClient::with_interceptor(channel.clone(), token.clone());
    let mut board_client = BoardServiceClient::with_interceptor(channel.clone(), token.clone());
    let mut availability_client =
        pb::availability_service_client::AvailabilityServiceClient::with_interceptor(
            channel.clone(),
            token.clone(),
        );
    let mut incident_client = pb::incident_service_client::IncidentServiceClient::with_interceptor(
        channel.clone(),
        token.clone(),
    );
    let mut capacity_client =
        pb::capacity_service_client::CapacityServiceClient::with_interceptor(channel, token);
    let addr = cli.collector.clone();
    let out = match cli.command {
        Command::Hosts => hosts(&mut client, cli.json).await,
        Command::Series { metric, host } => series(&mut client, metric, host, cli.json).await,
        Command::Query {
            metric,
            host,
            labels,
            since,
            end,
            step,
            agg,
            by,
        } => {
            let mut matchers = labels;
            if let Some(h) = host {
                matchers.push(eq("host", &h));
            }
            let shape = RangeShape {
                since,
                end,
                step,
                agg,
                by,
            };
            query(&mut client, metric, matchers, shape, cli.json).await
        }
        Command::Status => status(&mut client, &mut alert_client, cli.json).await,
        Command::Report {
            what: report::ReportCommand::Incidents { window },
        } => match report::parse_window(&window, now_ms()) {
            Ok(w) => incidents::report_incidents(&mut incident_client, w, cli.json).await,
            Err(e) => Err(anyhow::anyhow!("--window: {e}")),
        },
        Command::Report {
            what: report::ReportCommand::Noise { window, propose },
        } => match report::parse_window(&window, now_ms()) {
            Ok(w) => {
                incidents::report_noise(&mut incident_client, &mut client, w, propose, cli.json)
                    .await
            }
            Err(e) => Err(anyhow::anyhow!("--window: {e}")),
        },
        Command::Report {
            what: report::ReportCommand::Capacity { window, html },
        } => match report::parse_window(&window, now_ms()) {
            Ok(w) => capacity::report_capacity(&mut capacity_client, w, html, cli.json).await,
            Err(e) => Err(anyhow::anyhow!("--window: {e}")),
        },
        Command::Report { what } => {
            report::report(&mut availability_client, what, cli.json, now_ms()).await
        }
        Command::Forecast {
            metric,
            host,
            labels,
            threshold,
            since,
            fit,
            below,
        } => {
            let mut matchers = labels;
            if let Some(h) = host {
                matchers.push(eq("host", &h));
            }
            capacity::forecast(
                &mut capacity_client,
                metric,
                matchers,
                threshold,
                since,
                fit,
                below,
                cli.json,
                now_ms(),
            )
            .await
        }
        Command::Capacity {
            action,
            host,
            since,
        } => {
            capacity::capacity(
                &mut capacity_client,
                action,
                host,
                since,
                cli.json,
                now_ms(),
            )
            .await
        }
        Command::Incident { action } => {
            incidents::incident(&mut incident_client, action, cli.json, now_ms()).await
        }
        Command::Problem { action } => {
            incidents::problem(&mut incident_client, action, cli.json).await
        }
        Command::Change { action } => {
            incidents::change(&mut incident_client, action, cli.json, now_ms()).await
        }
        Command::Services => services::services(&mut board_client, cli.json).await,
        Command::Service { name } => services::service(&mut board_client, &name, cli.json).await,
        Command::Alerts {
            watch,
            history,
            since,
        } => alerts::alerts(&mut alert_client, watch, history, since, cli.json).await,
        Command::Ack { id, by, note } => {
            alerts::ack(&mut alert_client, id, by, note, cli.json).await
        }
        Command::Silence { action } => alerts::silence(&mut alert_client, action, cli.json).await,
        Command::Rules { action } => match action {
            alerts::RulesCommand::Check { .. } => unreachable!("handled before connecting"),
            alerts::RulesCommand::Reload => alerts::rules_reload(&mut alert_client).await,
            alerts::RulesCommand::Backtest { file, since, sweep } => {
                alerts::rules_backtest(&mut client, file, since, sweep, cli.json).await
            }
        },
        Command::Token { .. } => unreachable!("handled before connecting"),
    };
    // The collector's refusal in its own words, not tonic's debug form.
    let out = out.map_err(|e| match e.downcast_ref::<tonic::Status>() {
        Some(status) => anyhow::anyhow!("{}: {}", status.code().description(), status.message()),
        None => e,
    });
    let text = out.with_context(|| format!("collector at {addr}"))?;
    print!("{text}");
    Ok(())
}

/// A token is a credential: over plaintext it goes only to a loopback
/// collector (the agent refuses the same).
fn refuse_plaintext_token(url: &str) -> anyhow::Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let host = url
        .parse::<tonic::codegen::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_default();
    if nightjar_common::tls::is_loopback_host(&host) {
        return Ok(());
    }
    bail!(
        "--token-file: {url:?} is plaintext to a non-loopback host; the token would cross the network readable; use https:// with --ca"
    )
}

async fn connect(
    url: &str,
    ca: Option<&std::path::Path>,
    server_name: Option<String>,
) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(url.to_owned())
        .with_context(|| format!("--collector {url:?} is not a valid URL"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if url.starts_with("https://") {
        let ca = ca.context(
            "--ca: an https:// collector needs the CA certificate its certificate chains to",
        )?;
        let tls = nightjar_common::tls::ClientTls {
            ca: nightjar_common::tls::read_pem("--ca", ca, "CERTIFICATE")?,
            identity: None,
            server_name,
        };
        endpoint = endpoint
            .tls_config(tls.config())
            .context("--ca: cannot configure TLS")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach collector at {url}"))?;
    Ok(channel)
}

async fn hosts(client: &mut QueryServiceClient<Conn>, as_json: bool) -> anyhow::Result<String> {
    let hosts = client
        .list_hosts(pb::ListHostsRequest {})
        .await?
        .into_inner()
        .hosts;
    if as_json {
        let v: Vec<_> = hosts
            .iter()
            .map(|h| {
                json!({
                    "host": h.host,
                    "last_seen_ms": h.last_seen_ms,
                    "interval_ms": h.interval_ms,
                    "series_count": h.series_count,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                format_age(now - h.last_seen_ms),
                format!("{}s", h.interval_ms as f64 / 1000.0),
                h.series_count.to_string(),
            ]
        })
        .collect();
    Ok(table::render(
        &["HOST", "LAST SEEN", "INTERVAL", "SERIES"],
        &rows,
    ))
}

async fn series(
    client: &mut QueryServiceClient<Conn>,
    metric: Option<String>,
    host: Option<String>,
    as_json: bool,
) -> anyhow::Result<String> {
    let selector = pb::Selector {
        metric: metric.unwrap_or_default(),
        matchers: host.iter().map(|h| eq("host", h)).collect(),
    };
    let series = client
        .list_series(pb::ListSeriesRequest {
            selector: Some(selector),
        })
        .await?
        .into_inner()
        .series;
    if as_json {
        let v: Vec<_> = series
            .iter()
            .map(|s| json!({"metric": s.metric, "labels": labels_json(&s.labels)}))
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    Ok(series
        .iter()
        .map(|s| series_name(&s.metric, &s.labels) + "\n")
        .collect())
}

fn labels_sort_key(labels: &[pb::Label]) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// The time range, step, aggregation and grouping of `query`.
struct RangeShape {
    since: Duration,
    end: Option<i64>,
    step: Duration,
    agg: Agg,
    by: Option<Vec<String>>,
}

async fn query(
    client: &mut QueryServiceClient<Conn>,
    metric: String,
    matchers: Vec<pb::LabelMatcher>,
    shape: RangeShape,
    as_json: bool,
) -> anyhow::Result<String> {
    let RangeShape {
        since,
        end,
        step,
        agg,
        by,
    } = shape;
    let end = end.unwrap_or_else(now_ms);
    let group = by.map(|labels| pb::Grouping {
        by: labels.into_iter().filter(|l| !l.is_empty()).collect(),
    });
    let request = pb::QueryRangeRequest {
        selector: Some(pb::Selector { metric, matchers }),
        start_ms: end - since.as_millis() as i64,
        end_ms: end,
        step_ms: step.as_millis() as i64,
        aggregation: pb::Aggregation::from(agg) as i32,
        group,
    };
    let mut series = client.query_range(request).await?.into_inner().series;
    // The server answers in storage order; people read lists sorted.
    series.sort_by(|a, b| {
        (&a.metric, labels_sort_key(&a.labels)).cmp(&(&b.metric, labels_sort_key(&b.labels)))
    });
    if as_json {
        let v: Vec<_> = series
            .iter()
            .map(|s| {
                let points: Vec<_> = s
                    .points
                    .iter()
                    .map(|p| json!([p.timestamp_ms, p.value]))
                    .collect();
                json!({"metric": s.metric, "labels": labels_json(&s.labels), "points": points})
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let mut out = String::new();
    for s in &series {
        out.push_str(&series_name(&s.metric, &s.labels));
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .points
            .iter()
            .map(|p| {
                vec![
                    format!("  {}", format_time(p.timestamp_ms)),
                    format_value(p.value),
                ]
            })
            .collect();
        out.push_str(&table::render(&["  TIME", "VALUE"], &rows));
    }
    if series.is_empty() {
        out.push_str("no data\n");
    }
    Ok(out)
}

async fn latest(
    client: &mut QueryServiceClient<Conn>,
    metric: &str,
    matchers: Vec<pb::LabelMatcher>,
) -> anyhow::Result<Vec<pb::Series>> {
    let request = pb::LatestRequest {
        selector: Some(pb::Selector {
            metric: metric.to_owned(),
            matchers,
        }),
    };
    Ok(client.latest(request).await?.into_inner().series)
}

fn host_of(s: &pb::Series) -> Option<&str> {
    s.labels
        .iter()
        .find(|l| l.name == "host")
        .map(|l| l.value.as_str())
}

fn value_of(s: &pb::Series) -> Option<f64> {
    s.points.first().map(|p| p.value)
}

async fn status(
    client: &mut QueryServiceClient<Conn>,
    alert_client: &mut AlertServiceClient<Conn>,
    as_json: bool,
) -> anyhow::Result<String> {
    let hosts = client
        .list_hosts(pb::ListHostsRequest {})
        .await?
        .into_inner()
        .hosts;
    let cpu = latest(client, "cpu_usage_percent", vec![eq("cpu", "total")]).await?;
    let memory = latest(client, "memory_used_percent", vec![]).await?;
    let disks = latest(client, "disk_used_percent", vec![]).await?;

    let mut readings: BTreeMap<String, HostReading> = hosts
        .iter()
        .map(|h| {
            let r = HostReading {
                last_seen_ms: h.last_seen_ms,
                interval_ms: h.interval_ms,
                ..HostReading::default()
            };
            (h.host.clone(), r)
        })
        .collect();
    for s in &cpu {
        if let Some(r) = host_of(s).and_then(|h| readings.get_mut(h)) {
            r.cpu_percent = value_of(s);
        }
    }
    for s in &memory {
        if let Some(r) = host_of(s).and_then(|h| readings.get_mut(h)) {
            r.memory_percent = value_of(s);
        }
    }
    for s in &disks {
        let (Some(r), Some(v)) = (host_of(s).and_then(|h| readings.get_mut(h)), value_of(s)) else {
            continue;
        };
        let mount = s
            .labels
            .iter()
            .find(|l| l.name == "mountpoint")
            .map_or_else(String::new, |l| l.value.clone());
        if r.fullest_disk.as_ref().is_none_or(|(best, _)| v > *best) {
            r.fullest_disk = Some((v, mount));
        }
    }

    let alerts = alert_client
        .list_alerts(pb::ListAlertsRequest {})
        .await?
        .into_inner()
        .alerts;
    let now = now_ms();
    let judged: Vec<(String, HostReading, Health, Vec<String>)> = readings
        .into_iter()
        .map(|(host, r)| {
            let of_host: Vec<status::HostAlert<'_>> = alerts
                .iter()
                .filter(|a| a.labels.iter().any(|l| l.name == "host" && l.value == host))
                .map(|a| status::HostAlert {
                    state: &a.state,
                    severity: &a.severity,
                    rule: &a.rule,
                    summary: &a.summary,
                })
                .collect();
            let (health, reasons) = status::judge(&of_host);
            (host, r, health, reasons)
        })
        .collect();
    if as_json {
        let v: Vec<_> = judged
            .iter()
            .map(|(host, r, health, reasons)| {
                json!({
                    "host": host,
                    "health": health,
                    "last_seen_ms": r.last_seen_ms,
                    "cpu_usage_percent": r.cpu_percent,
                    "memory_used_percent": r.memory_percent,
                    "disk_used_percent": r.fullest_disk.as_ref().map(|d| d.0),
                    "disk_mountpoint": r.fullest_disk.as_ref().map(|d| d.1.clone()),
                    "reasons": reasons,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    if judged.is_empty() {
        bail!("no hosts have reported yet");
    }
    let rows: Vec<Vec<String>> = judged
        .iter()
        .map(|(host, r, health, reasons)| {
            vec![
                health.as_str().to_uppercase(),
                host.clone(),
                format_age(now - r.last_seen_ms),
                percent(r.cpu_percent),
                percent(r.memory_percent),
                r.fullest_disk
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |(v, m)| format!("{v:.1}% {m}")),
                reasons.join("; "),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "STATE",
            "HOST",
            "LAST SEEN",
            "CPU",
            "MEMORY",
            "FULLEST DISK",
            "WHY",
        ],
        &rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<(&str, pb::MatchOp, &str), &str>) {
        let got = parse_matcher(input);
        match (got, expected) {
            (Ok(m), Ok((n, op, v))) => {
                assert_eq!((m.name.as_str(), m.op, m.value.as_str()), (n, op as i32, v))
            }
            (Err(e), Err(want)) => assert!(e.contains(want), "{e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn matchers_parse() {
        use pb::MatchOp::*;
        check("env=prod", Ok(("env", Equal, "prod")));
        check("env!=prod", Ok(("env", NotEqual, "prod")));
        check("cpu=~[0-9]+", Ok(("cpu", Regex, "[0-9]+")));
        check("cpu!~tot.*", Ok(("cpu", NotRegex, "tot.*")));
        check("path=/a=b", Ok(("path", Equal, "/a=b")));
        check("env=", Ok(("env", Equal, "")));
        check("env", Err("is not a matcher"));
        check("=x", Err("label name is empty"));
    }

    #[test]
    fn ends_are_epoch_milliseconds() {
        assert_eq!(parse_epoch_ms("1764590400000"), Ok(1_764_590_400_000));
        assert!(
            parse_epoch_ms("yesterday")
                .unwrap_err()
                .contains("write epoch milliseconds")
        );
        assert!(parse_epoch_ms("-5").unwrap_err().contains("before 1970"));
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(4_000), "4s ago");
        assert_eq!(format_age(120_000), "2m ago");
        assert_eq!(format_age(7_200_000), "2h ago");
        assert_eq!(format_age(-5), "0s ago");
    }
}
