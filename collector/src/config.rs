//! Collector configuration: a TOML file (`--config`) whose keys can each be
//! overridden by a flag. `RawConfig` is what the file holds; `Config` is
//! the validated result the collector runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use nightjar_model::limits::Limits;
use nightjar_storage::Retention;

/// Default gRPC listen address (ingest and query on one port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Default HTTP status address (`/healthz`, `/metrics`).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7071";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./nightjar-data";

/// Default interval of the collector's own metrics.
pub const DEFAULT_SELF_METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The default collector name: `<host name>-collector`. Deliberately not
/// the bare host name: an agent on the same machine reports under that
/// name, and the collector's own batches would then keep that host looking
/// alive after its agent died.
fn host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        "nightjar-collector".to_owned()
    } else {
        format!("{host}-collector")
    }
}

fn listen_is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Parses a duration of at least `min`; the error says so (`min_text`).
fn at_least(key: &str, text: &str, min: Duration, min_text: &str) -> Result<Duration, String> {
    nightjar_common::duration::parse(key, text)
        .ok()
        .filter(|d| *d >= min)
        .ok_or_else(|| format!("{text:?} is not a duration of at least {min_text}"))
}

/// The collector config file, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address for the gRPC listener, `IP:PORT`. Default `127.0.0.1:7070`.
    pub listen: Option<String>,
    /// Directory holding the RocksDB data. Default `./nightjar-data`.
    pub data_dir: Option<PathBuf>,
    /// HTTP status address (`/healthz`, `/metrics`), `IP:PORT` or "off".
    /// Default `127.0.0.1:7071`.
    pub http_listen: Option<String>,
    /// The collector's name: the `host` label of its own metrics. Default:
    /// `<host name>-collector`. Keep it different from every agent's host
    /// name, or the collector's own batches mask that host going silent.
    pub name: Option<String>,
    /// How often the collector stores its own metrics. Default "10s".
    pub self_metrics_interval: Option<String>,
    /// Ingest limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Alert rule files or directories (`*.toml` inside); relative paths
    /// are relative to the config file. Unset: the built-in rules.
    pub rules: Option<Vec<PathBuf>>,
    /// Service files or directories (`*.toml` inside), relative to the
    /// config file; reloaded on SIGHUP. Unset: no services.
    #[serde(default)]
    pub services: Vec<PathBuf>,
    /// How long data is kept.
    #[serde(default)]
    pub retention: RawRetention,
    /// Hooks, routes, maintenance windows, host_down.
    #[serde(default)]
    pub alerting: nightjar_alerting::config::RawAlerting,
    /// Serve plaintext gRPC on a non-loopback address. Default false.
    pub allow_insecure: Option<bool>,
    /// TLS for the listener.
    #[serde(default)]
    pub tls: RawTls,
    /// Bearer tokens.
    #[serde(default)]
    pub auth: RawAuth,
    /// Capacity: forecast rules' interval, declared limits.
    #[serde(default)]
    pub capacity: RawCapacity,
    /// `[[remote_write]]`: endpoints every stored sample is forwarded to.
    #[serde(default)]
    pub remote_write: Vec<crate::remote_write::config::RawRemoteWrite>,
}

/// `[capacity]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    /// How often forecast rules are computed. Default "1m".
    pub forecast_interval: Option<String>,
    /// Gauges with a declared limit, ranked by `nightjar capacity`.
    #[serde(default)]
    pub limit: Vec<RawCapacityLimit>,
    /// Volume-vs-KPI correlations in the capacity report.
    #[serde(default)]
    pub correlation: Vec<RawCorrelation>,
}

/// `[[capacity.correlation]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCorrelation {
    /// What it is, e.g. "price generation".
    pub name: Option<String>,
    /// The service it belongs to, if any.
    pub service: Option<String>,
    /// The KPI metric and its matchers.
    pub kpi: Option<String>,
    #[serde(default)]
    pub kpi_match: Vec<String>,
    /// avg (default), p50, p90, p95 or p99.
    pub kpi_aggregation: Option<String>,
    /// The volume metric and its matchers.
    pub volume: Option<String>,
    #[serde(default)]
    pub volume_match: Vec<String>,
    /// linear (default) or power.
    pub fit: Option<String>,
    /// Volume growth to predict, e.g. 0.5 for +50 %.
    pub what_if: Option<f64>,
    /// The KPI's agreed limit.
    pub sla: Option<f64>,
}

/// `[[capacity.limit]]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacityLimit {
    /// What it is, e.g. "connection pool".
    pub name: Option<String>,
    /// The metric.
    pub metric: Option<String>,
    /// Label matchers: k=v, k!=v, k=~re, k!~re.
    #[serde(default, rename = "match")]
    pub match_: Vec<String>,
    /// The limit.
    pub threshold: Option<f64>,
    /// The limit is a floor (free space), not a ceiling. Default false.
    pub lower: Option<bool>,
}

/// `[tls]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// CA of agents' client certificates (PEM): set = mTLS required.
    pub client_ca: Option<PathBuf>,
}

/// `[auth]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Token file (hashes): set = every call needs a bearer token.
    pub tokens_file: Option<PathBuf>,
}

/// `[retention]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Raw points older than this are deleted. Default "15d".
    pub raw: Option<String>,
    /// 1-minute rollups older than this are deleted. Default "90d".
    #[serde(rename = "1m")]
    pub minute: Option<String>,
    /// 1-hour rollups older than this are deleted. Default "730d".
    #[serde(rename = "1h")]
    pub hour: Option<String>,
}

/// `[limits]`, as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most series one host may have. Default 10000.
    pub max_series_per_host: Option<i64>,
    /// Most series in total. Default 1000000.
    pub max_series_total: Option<i64>,
    /// Most labels on one series, `host` included. Default 32.
    pub max_labels_per_series: Option<i64>,
    /// Longest metric name in bytes. Default 256.
    pub max_metric_name_bytes: Option<i64>,
    /// Longest label name in bytes. Default 128.
    pub max_label_name_bytes: Option<i64>,
    /// Longest label value in bytes. Default 1024.
    pub max_label_value_bytes: Option<i64>,
    /// Samples stamped further ahead of the collector's clock are
    /// rejected. Default "10m".
    pub max_sample_future: Option<String>,
    /// Samples older than this are rejected. Default "15d".
    pub max_sample_age: Option<String>,
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--http-listen`.
    pub http_listen: Option<String>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the data lives.
    pub data_dir: PathBuf,
    /// The HTTP status port, if on.
    pub http_listen: Option<SocketAddr>,
    /// The `host` label of the collector's own metrics.
    pub name: String,
    /// How often the collector stores its own metrics.
    pub self_metrics_interval: std::time::Duration,
    /// Ingest limits.
    pub limits: Limits,
    /// How long data is kept.
    pub retention: Retention,
    /// Where the alert rules come from.
    pub rules: nightjar_alerting::alerter::RuleSource,
    /// Service files and directories (`docs/services.md`).
    pub services: Vec<PathBuf>,
    /// Hooks, routes, maintenance windows, host_down.
    pub alerting: nightjar_alerting::config::Alerting,
    /// TLS for the listener, if configured.
    pub tls: Option<nightjar_common::tls::ServerTls>,
    /// Token table, if configured (None = no authentication).
    pub tokens: Option<std::sync::Arc<crate::auth::TokenTable>>,
    /// How often forecast rules are computed.
    pub forecast_interval: Duration,
    /// `[[capacity.limit]]`.
    pub capacity_limits: Vec<crate::capacity::CapacityLimit>,
    /// `[[capacity.correlation]]`.
    pub correlations: Vec<crate::capacity::DeclaredCorrelation>,
    /// `[[remote_write]]`.
    pub remote_write: Vec<crate::remote_write::config::Endpoint>,
}

/// A config value that does not validate, naming where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}: {reason}")]
pub struct ConfigError {
    /// The file path or "command line".
    pub source_name: String,
    /// The key or flag.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// Merges the file (if any) with the flags and validates the result.
    pub fn build(
        file: Option<(&Path, RawConfig)>,
        overrides: Overrides,
    ) -> Result<Config, ConfigError> {
        let file_name = file.as_ref().map(|(p, _)| p.display().to_string());
        let config_dir = file
            .as_ref()
            .and_then(|(p, _)| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let raw = file.map(|(_, raw)| raw).unwrap_or_default();
        let origin = |from_flag: bool| {
            if from_flag {
                "command line".to_owned()
            } else {
                file_name.clone().unwrap_or_else(|| "defaults".to_owned())
            }
        };

        let listen_from_flag = overrides.listen.is_some();
        let listen_text = overrides
            .listen
            .or(raw.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|e| ConfigError {
            source_name: origin(listen_from_flag),
            key: "listen",
            reason: format!("invalid address {listen_text:?} ({e}); write it as IP:PORT"),
        })?;

        let http_from_flag = overrides.http_listen.is_some();
        let http_text = overrides
            .http_listen
            .or(raw.http_listen)
            .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.to_owned());
        let http_listen =
            nightjar_common::status_http::parse_listen(&http_text).map_err(|reason| {
                ConfigError {
                    source_name: origin(http_from_flag),
                    key: "http_listen",
                    reason,
                }
            })?;
        let data_dir = overrides
            .data_dir
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let name = raw.name.unwrap_or_else(host_name);
        if name.trim().is_empty() {
            return Err(ConfigError {
                source_name: origin(false),
                key: "name",
                reason: "must not be empty".to_owned(),
            });
        }
        // An optional file duration of at least `min` (`min_text` in the error).
        let duration = |key: &'static str,
                        text: &Option<String>,
                        default: Duration,
                        min: Duration,
                        min_text: &str| match text {
            None => Ok(default),
            Some(text) => at_least(key, text, min, min_text).map_err(|reason| ConfigError {
                source_name: origin(false),
                key,
                reason,
            }),
        };
        let self_metrics_interval = duration(
            "self_metrics_interval",
            &raw.self_metrics_interval,
            DEFAULT_SELF_METRICS_INTERVAL,
            Duration::from_secs(1),
            "1s",
        )?;
        let d = Limits::default();
        let positive = |key: &'static str, value: Option<i64>, default: u64| match value {
            None => Ok(default),
            Some(n) if n >= 1 => Ok(n as u64),
            Some(n) => Err(ConfigError {
                source_name: origin(false),
                key,
                reason: format!("{n} must be at least 1"),
            }),
        };
        let l = &raw.limits;
        let limits = Limits {
            max_series_per_host: positive(
                "limits.max_series_per_host",
                l.max_series_per_host,
                d.max_series_per_host,
            )?,
            max_series_total: positive(
                "limits.max_series_total",
                l.max_series_total,
                d.max_series_total,
            )?,
            max_labels_per_series: positive(
                "limits.max_labels_per_series",
                l.max_labels_per_series,
                d.max_labels_per_series as u64,
            )? as usize,
            max_metric_name_bytes: positive(
                "limits.max_metric_name_bytes",
                l.max_metric_name_bytes,
                d.max_metric_name_bytes as u64,
            )? as usize,
            max_label_name_bytes: positive(
                "limits.max_label_name_bytes",
                l.max_label_name_bytes,
                d.max_label_name_bytes as u64,
            )? as usize,
            max_label_value_bytes: positive(
                "limits.max_label_value_bytes",
                l.max_label_value_bytes,
                d.max_label_value_bytes as u64,
            )? as usize,
            max_sample_future: duration(
                "limits.max_sample_future",
                &l.max_sample_future,
                d.max_sample_future,
                Duration::from_secs(1),
                "1s",
            )?,
            max_sample_age: duration(
                "limits.max_sample_age",
                &l.max_sample_age,
                d.max_sample_age,
                Duration::from_secs(3600),
                "1h",
            )?,
        };
        let defaults = Retention::default();
        let tier = |key: &'static str, text: &Option<String>, default: Duration| {
            duration(
                key,
                text,
                default,
                Duration::from_secs(3600),
                "1h (write it like 15d)",
            )
        };
        let retention = Retention {
            raw: tier("retention.raw", &raw.retention.raw, defaults.raw)?,
            minute: tier("retention.1m", &raw.retention.minute, defaults.minute)?,
            hour: tier("retention.1h", &raw.retention.hour, defaults.hour)?,
        };
        let services = raw.services.iter().map(|p| config_dir.join(p)).collect();
        let rules = match raw.rules {
            None => nightjar_alerting::alerter::RuleSource::Defaults,
            Some(paths) => nightjar_alerting::alerter::RuleSource::Paths(
                paths.into_iter().map(|p| config_dir.join(p)).collect(),
            ),
        };
        let alerting =
            nightjar_alerting::config::Alerting::from_raw(raw.alerting).map_err(|reason| {
                ConfigError {
                    source_name: origin(false),
                    key: "alerting",
                    reason: reason
                        .strip_prefix("alerting.")
                        .map_or(reason.clone(), str::to_owned),
                }
            })?;
        let resolve = |p: PathBuf| config_dir.join(p);
        let file_error = |key: &'static str, reason: String| ConfigError {
            source_name: origin(false),
            key,
            reason,
        };
        let tls = match (raw.tls.cert, raw.tls.key) {
            (None, None) if raw.tls.client_ca.is_some() => {
                return Err(file_error(
                    "tls.client_ca",
                    "needs tls.cert and tls.key too".into(),
                ));
            }
            (None, None) => None,
            (Some(cert), Some(key)) => Some(
                nightjar_common::tls::ServerTls::load(
                    "tls",
                    &resolve(cert),
                    &resolve(key),
                    raw.tls.client_ca.map(resolve).as_deref(),
                )
                .map_err(|e| file_error("tls", e.to_string()))?,
            ),
            (Some(_), None) => {
                return Err(file_error("tls.key", "missing (tls.cert is set)".into()));
            }
            (None, Some(_)) => {
                return Err(file_error("tls.cert", "missing (tls.key is set)".into()));
            }
        };
        if tls.is_none() && !raw.allow_insecure.unwrap_or(false) && !listen_is_loopback(&listen) {
            return Err(ConfigError {
                source_name: origin(listen_from_flag),
                key: "listen",
                reason: format!(
                    "{listen} is not a loopback address: configure [tls] cert and key, or set allow_insecure = true to serve plaintext gRPC on the network"
                ),
            });
        }
        let forecast_interval = duration(
            "capacity.forecast_interval",
            &raw.capacity.forecast_interval,
            Duration::from_secs(60),
            Duration::from_secs(1),
            "1s",
        )?;
        let mut capacity_limits = Vec::new();
        for (i, l) in raw.capacity.limit.iter().enumerate() {
            let bad = |reason: String| file_error("capacity.limit", format!("[{i}]: {reason}"));
            let metric = l
                .metric
                .clone()
                .ok_or_else(|| bad("metric: missing".into()))?;
            let mut matchers = Vec::new();
            for m in &l.match_ {
                matchers.push(
                    nightjar_model::selector::Matcher::parse(m)
                        .map_err(|e| bad(format!("match: {e}")))?,
                );
            }
            let threshold = l
                .threshold
                .filter(|t| t.is_finite())
                .ok_or_else(|| bad("threshold: missing (a finite number)".into()))?;
            capacity_limits.push(crate::capacity::CapacityLimit {
                name: l.name.clone().unwrap_or_else(|| metric.clone()),
                selector: nightjar_model::selector::Selector {
                    metric: Some(metric),
                    matchers,
                },
                threshold,
                limit: if l.lower.unwrap_or(false) {
                    nightjar_model::capacity::fit::Limit::Lower
                } else {
                    nightjar_model::capacity::fit::Limit::Upper
                },
            });
        }
        let mut correlations = Vec::new();
        for (i, c) in raw.capacity.correlation.iter().enumerate() {
            let bad =
                |reason: String| file_error("capacity.correlation", format!("[{i}]: {reason}"));
            let selector = |field: &str,
                            metric: &Option<String>,
                            texts: &[String]|
             -> Result<nightjar_model::selector::Selector, ConfigError> {
                let metric = metric
                    .clone()
                    .ok_or_else(|| bad(format!("{field}: missing")))?;
                let matchers = texts
                    .iter()
                    .map(|m| {
                        nightjar_model::selector::Matcher::parse(m)
                            .map_err(|e| bad(format!("{field}_match: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(nightjar_model::selector::Selector {
                    metric: Some(metric),
                    matchers,
                })
            };
            let kpi = selector("kpi", &c.kpi, &c.kpi_match)?;
            let volume = selector("volume", &c.volume, &c.volume_match)?;
            let fit = c.fit.clone().unwrap_or_else(|| "linear".into());
            nightjar_model::capacity::correlate::VolumeFit::parse(&fit).map_err(&bad)?;
            let agg = c.kpi_aggregation.clone().unwrap_or_else(|| "avg".into());
            if !["avg", "p50", "p90", "p95", "p99"].contains(&agg.as_str()) {
                return Err(bad(format!(
                    "kpi_aggregation: {agg:?} is not avg, p50, p90, p95 or p99"
                )));
            }
            if let Some(g) = c.what_if
                && (!g.is_finite() || g <= -1.0)
            {
                return Err(bad(format!("what_if: {g} must be above -1")));
            }
            correlations.push(crate::capacity::DeclaredCorrelation {
                name: c.name.clone().unwrap_or_else(|| {
                    format!(
                        "{} on {}",
                        c.kpi.clone().unwrap_or_default(),
                        c.volume.clone().unwrap_or_default()
                    )
                }),
                service: c.service.clone().unwrap_or_default(),
                kpi,
                volume,
                fit,
                kpi_aggregation: agg,
                what_if_growth: c.what_if,
                sla: c.sla,
            });
        }
        let tokens = raw
            .auth
            .tokens_file
            .map(|p| crate::auth::TokenTable::load("auth.tokens_file", &resolve(p)))
            .transpose()
            .map_err(|reason| file_error("auth", reason))?
            .map(std::sync::Arc::new);
        let remote_write = crate::remote_write::config::build(raw.remote_write, &config_dir)
            .map_err(|reason| file_error("remote_write", reason))?;
        Ok(Config {
            remote_write,
            http_listen,
            tls,
            tokens,
            forecast_interval,
            capacity_limits,
            correlations,
            listen,
            data_dir,
            name,
            self_metrics_interval,
            limits,
            retention,
            rules,
            services,
            alerting,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_in() {
        let raw: RawConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\ndata_dir = \"/d\"").unwrap();
        let cfg = Config::build(
            Some((Path::new("c.toml"), raw)),
            Overrides {
                listen: Some("127.0.0.1:9001".into()),
                data_dir: None,
                http_listen: Some("off".into()),
            },
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.http_listen, None);
        assert_eq!(cfg.data_dir, PathBuf::from("/d"));
        let defaults = Config::build(None, Overrides::default()).unwrap();
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn bad_listen_names_file_and_key() {
        let raw: RawConfig = toml::from_str("listen = \"nowhere\"").unwrap();
        let err = Config::build(Some((Path::new("/etc/c.toml"), raw)), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/etc/c.toml: listen: invalid address \"nowhere\""),
            "{err}"
        );
    }

    #[test]
    fn bad_self_metrics_interval_names_key() {
        let raw: RawConfig = toml::from_str("self_metrics_interval = \"100ms\"").unwrap();
        let err = Config::build(Some((Path::new("c.toml"), raw)), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml: self_metrics_interval: \"100ms\" is not"),
            "{err}"
        );
    }

    #[test]
    fn negative_limit_names_key() {
        let raw: RawConfig = toml::from_str("[limits]\nmax_series_per_host = -5").unwrap();
        let err = Config::build(Some((Path::new("c.toml"), raw)), Overrides::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.toml: limits.max_series_per_host: -5 must be at least 1"
        );
    }

    #[test]
    fn retention_parses_days_and_names_key_on_error() {
        let raw: RawConfig = toml::from_str("[retention]\nraw = \"30d\"").unwrap();
        let cfg = Config::build(Some((Path::new("c.toml"), raw)), Overrides::default()).unwrap();
        assert_eq!(
            cfg.retention.raw,
            std::time::Duration::from_secs(30 * 86400)
        );
        let raw: RawConfig = toml::from_str("[retention]\nraw = \"forever\"").unwrap();
        let err = Config::build(Some((Path::new("c.toml"), raw)), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml: retention.raw: \"forever\" is not"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = toml::from_str::<RawConfig>("listen = \"127.0.0.1:1\"\nlisten_addr = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn deploy_example_is_valid_and_shows_the_defaults() {
        // Read at run time: a test binary reused from another checkout
        // (shared target dir) must read this checkout's file.
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests");
        let path = Path::new(&manifest_dir).join("../deploy/collector.toml");
        let raw: RawConfig = nightjar_common::config_file::load(&path).unwrap();
        let cfg = Config::build(Some((&path, raw)), Overrides::default()).unwrap();
        let defaults = Config::build(None, Overrides::default()).unwrap();
        assert_eq!(format!("{cfg:?}"), format!("{defaults:?}"));
    }
}
