//! Agent configuration: a TOML file (`--config`) whose keys can each be
//! overridden by a flag. `RawConfig` is the file as written; `Config` is
//! the validated result. Errors name the file (or "command line") and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nightjar_common::names::is_label_name;
use serde::Deserialize;

use crate::sampler::NameFilter;
use crate::sampler::process_watch::{ProcessMatcher, WatchSpec};
use crate::spool::FsyncPolicy;

/// Default collector URL.
pub const DEFAULT_COLLECTOR: &str = "http://127.0.0.1:7070";
/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest accepted sampling interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "./nightjar-agent-state";
/// Default bound of the on-disk spool of unacked batches.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default HTTP status address (`/healthz`, `/metrics`).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9465";

/// Smallest accepted spool bound.
pub const MIN_SPOOL_MAX_BYTES: u64 = 1024 * 1024;

/// The agent config file, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Collector gRPC URL. Default `http://127.0.0.1:7070`.
    pub collector: Option<String>,
    /// Sampling interval, e.g. "10s" (minimum 1s). Default "10s".
    pub interval: Option<String>,
    /// Host name put on every series. Default: the kernel's host name.
    pub host: Option<String>,
    /// Directory for the agent id, sequence state and the spool. Default
    /// `./nightjar-agent-state`.
    pub state_dir: Option<PathBuf>,
    /// Most bytes of unacked batches spooled on disk while the collector is
    /// away; the oldest are dropped beyond. Default 268435456 (256 MiB).
    pub spool_max_bytes: Option<i64>,
    /// When spooled batches are fsynced: "batch" (after every batch) or a
    /// duration such as "5s" (at most that often). Default "batch".
    pub spool_fsync: Option<String>,
    /// Static labels put on every series, e.g. `env = "prod"`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Which filesystems (by mountpoint) are reported.
    #[serde(default)]
    pub disks: RawFilter,
    /// Which network interfaces are reported. Default: all but `lo`.
    #[serde(default)]
    pub network: Option<RawFilter>,
    /// Processes to watch (`[[watch]]` entries).
    #[serde(default)]
    pub watch: Vec<RawWatch>,
    /// systemd units whose state is reported, e.g. `["nginx.service"]`.
    #[serde(default)]
    pub systemd_units: Vec<String>,
    /// File holding this agent's bearer token (first line).
    pub token_file: Option<PathBuf>,
    /// HTTP status address (`/healthz`, `/metrics`), `IP:PORT` or "off".
    /// Default `127.0.0.1:9465`.
    pub http_listen: Option<String>,
    /// Send plaintext gRPC to a non-loopback collector. Default false.
    pub allow_insecure: Option<bool>,
    /// TLS to the collector (for `https://` URLs).
    #[serde(default)]
    pub tls: RawClientTls,
    /// The statsd server.
    #[serde(default)]
    pub statsd: crate::statsd::RawStatsd,
    /// Synthetic checks (`[[check]]` entries).
    #[serde(default)]
    pub check: Vec<crate::checks::RawCheck>,
}

/// `[tls]` of the agent, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientTls {
    /// CA certificate(s) the collector's certificate must chain to (PEM).
    pub ca: Option<PathBuf>,
    /// Client certificate chain for mTLS (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key for mTLS (PEM).
    pub key: Option<PathBuf>,
    /// Name to verify in the collector's certificate. Default: the URL's host.
    pub server_name: Option<String>,
}

/// One `[[watch]]` entry, as written: a name, exactly one of `exe`,
/// `cmdline` and `pidfile`, and `min_count`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    /// The entry's name: the `process` label of its series.
    pub name: String,
    /// Match by executable name (`/proc/PID/comm` or the file name of `/proc/PID/exe`).
    pub exe: Option<String>,
    /// Match by a regex searched in the command line.
    pub cmdline: Option<String>,
    /// Match the PID written in this file.
    pub pidfile: Option<PathBuf>,
    /// Fewest matching processes for `process_up` to be 1. Default 1.
    pub min_count: Option<i64>,
}

/// An include/exclude pair of regex lists, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    /// Regexes (matched anywhere; anchor with ^ and $); empty = everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Regexes; a name matching any is left out, even if included.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Interfaces left out unless the config says otherwise.
pub const DEFAULT_NETWORK_EXCLUDE: &[&str] = &["^lo$"];

/// Values given on the command line, which win over the file.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--collector`.
    pub collector: Option<String>,
    /// `--interval`.
    pub interval: Option<String>,
    /// `--host`.
    pub host: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--http-listen`.
    pub http_listen: Option<String>,
    /// `--statsd` (both statsd addresses, or "off").
    pub statsd: Option<String>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Collector URL, `http://` or `https://`.
    pub collector: String,
    /// Sampling interval.
    pub interval: Duration,
    /// Host label value.
    pub host: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Spool bound in bytes.
    pub spool_max_bytes: u64,
    /// Spool fsync policy.
    pub spool_fsync: FsyncPolicy,
    /// Static labels, validated names.
    pub labels: BTreeMap<String, String>,
    /// Filesystems reported, by mountpoint.
    pub disks: NameFilter,
    /// Interfaces reported.
    pub network: NameFilter,
    /// Watched processes.
    pub watch: Vec<WatchSpec>,
    /// systemd units to report.
    pub systemd_units: Vec<String>,
    /// TLS to the collector, for `https://` URLs.
    pub tls: Option<nightjar_common::tls::ClientTls>,
    /// Bearer token sent with every stream (none without `token_file`).
    pub token: nightjar_common::token::BearerToken,
    /// The HTTP status port, if on.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The statsd server.
    pub statsd: crate::statsd::StatsdConfig,
    /// Synthetic checks.
    pub checks: Vec<crate::checks::CheckSpec>,
}

/// A config value that does not validate.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {key}: {reason}")]
pub struct ConfigError {
    /// The file path, "command line" or "defaults".
    pub origin: String,
    /// The key (flag name without dashes).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl Config {
    /// Merges file and flags, fills defaults and validates. `default_host`
    /// is used when neither names a host.
    pub fn build(
        file: Option<(&Path, RawConfig)>,
        flags: Overrides,
        default_host: impl FnOnce() -> String,
    ) -> Result<Config, ConfigError> {
        let file_name = file.as_ref().map(|(p, _)| p.display().to_string());
        let raw = file.map(|(_, raw)| raw).unwrap_or_default();
        let error = |from_flag: bool, key: &str, reason: String| ConfigError {
            origin: if from_flag {
                "command line".to_owned()
            } else {
                file_name.clone().unwrap_or_else(|| "defaults".to_owned())
            },
            key: key.to_owned(),
            reason,
        };

        let collector_flag = flags.collector.is_some();
        let collector = flags
            .collector
            .or(raw.collector)
            .unwrap_or_else(|| DEFAULT_COLLECTOR.to_owned());
        let uri: Result<tonic::transport::Uri, _> = collector.parse();
        let uri = match uri {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
            {
                uri
            }
            _ => {
                return Err(error(
                    collector_flag,
                    "collector",
                    format!(
                        "invalid URL {collector:?}; write it like http://collector.example:7070"
                    ),
                ));
            }
        };
        let base = file_name
            .as_deref()
            .and_then(|f| Path::new(f).parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let tls = if uri.scheme_str() == Some("https") {
            let ca = raw.tls.ca.as_ref().ok_or_else(|| {
                error(
                    false,
                    "tls.ca",
                    "required for an https:// collector: the CA its certificate chains to".into(),
                )
            })?;
            let pem = |key: &str, p: &PathBuf, kind: &str| {
                nightjar_common::tls::read_pem(key, &base.join(p), kind)
                    .map_err(|e| error(false, key, format!("{}: {}", e.path.display(), e.reason)))
            };
            let identity = match (&raw.tls.cert, &raw.tls.key) {
                (Some(c), Some(k)) => Some((
                    pem("tls.cert", c, "CERTIFICATE")?,
                    pem("tls.key", k, "PRIVATE KEY")?,
                )),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(error(false, "tls.key", "missing (tls.cert is set)".into()));
                }
                (None, Some(_)) => {
                    return Err(error(false, "tls.cert", "missing (tls.key is set)".into()));
                }
            };
            Some(nightjar_common::tls::ClientTls {
                ca: pem("tls.ca", ca, "CERTIFICATE")?,
                identity,
                server_name: raw.tls.server_name.clone(),
            })
        } else {
            if raw.tls.ca.is_some() || raw.tls.cert.is_some() {
                return Err(error(
                    collector_flag,
                    "collector",
                    format!("{collector:?} is http://, but [tls] is configured; use https://"),
                ));
            }
            let host = uri.host().unwrap_or_default();
            if !raw.allow_insecure.unwrap_or(false) && !nightjar_common::tls::is_loopback_host(host)
            {
                return Err(error(
                    collector_flag,
                    "collector",
                    format!(
                        "{collector:?} sends plaintext to a non-loopback host; use https:// with [tls] ca, or set allow_insecure = true"
                    ),
                ));
            }
            None
        };
        let http_flag = flags.http_listen.is_some();
        let http_text = flags
            .http_listen
            .or(raw.http_listen.clone())
            .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.to_owned());
        let http_listen = nightjar_common::status_http::parse_listen(&http_text)
            .map_err(|reason| error(http_flag, "http_listen", reason))?;
        let token = match &raw.token_file {
            Some(p) => nightjar_common::token::BearerToken::from_file("token_file", &base.join(p))
                .map_err(|e| {
                    error(
                        false,
                        "token_file",
                        e.trim_start_matches("token_file: ").to_owned(),
                    )
                })?,
            None => nightjar_common::token::BearerToken::none(),
        };

        let interval_flag = flags.interval.is_some();
        let interval = match flags.interval.or(raw.interval) {
            Some(text) => nightjar_common::duration::parse("interval", &text).map_err(|e| {
                error(
                    interval_flag,
                    "interval",
                    format!("invalid duration {text:?} ({})", e.reason),
                )
            })?,
            None => DEFAULT_INTERVAL,
        };
        if interval < MIN_INTERVAL {
            return Err(error(
                interval_flag,
                "interval",
                format!(
                    "{} is below the minimum of 1s",
                    nightjar_common::duration::format(interval)
                ),
            ));
        }

        let host_flag = flags.host.is_some();
        let host = flags.host.or(raw.host).unwrap_or_else(default_host);
        if host.trim().is_empty() {
            return Err(error(host_flag, "host", "must not be empty".to_owned()));
        }

        let spool_max_bytes = match raw.spool_max_bytes {
            None => DEFAULT_SPOOL_MAX_BYTES,
            Some(n) if n >= MIN_SPOOL_MAX_BYTES as i64 => n as u64,
            Some(n) => {
                return Err(error(
                    false,
                    "spool_max_bytes",
                    format!("{n} is below the minimum of {MIN_SPOOL_MAX_BYTES} (1 MiB)"),
                ));
            }
        };
        let spool_fsync = match raw.spool_fsync.as_deref() {
            None | Some("batch") => FsyncPolicy::EveryBatch,
            Some(text) => FsyncPolicy::Every(
                nightjar_common::duration::parse("spool_fsync", text).map_err(|e| {
                    error(
                        false,
                        "spool_fsync",
                        format!(
                            "{text:?} is neither \"batch\" nor a duration ({})",
                            e.reason
                        ),
                    )
                })?,
            ),
        };

        for name in raw.labels.keys() {
            if !is_label_name(name) {
                return Err(error(
                    false,
                    &format!("labels.{name}"),
                    "label names are of the form [a-zA-Z_][a-zA-Z0-9_]*".to_owned(),
                ));
            }
            if name == "host" {
                return Err(error(
                    false,
                    "labels.host",
                    "host is set by the `host` key, not as a static label".to_owned(),
                ));
            }
        }

        let filter = |section: &str, raw: &RawFilter| {
            let include: Vec<&str> = raw.include.iter().map(String::as_str).collect();
            let exclude: Vec<&str> = raw.exclude.iter().map(String::as_str).collect();
            NameFilter::new(&include, &exclude).map_err(|(list, i, reason)| {
                error(false, &format!("{section}.{list}[{i}]"), reason)
            })
        };
        let disks = filter("disks", &raw.disks)?;
        let network = match &raw.network {
            Some(raw) => filter("network", raw)?,
            None => NameFilter::new(&[], DEFAULT_NETWORK_EXCLUDE).expect("valid default"),
        };

        let mut watch = Vec::with_capacity(raw.watch.len());
        for (i, w) in raw.watch.iter().enumerate() {
            let key = |field: &str| format!("watch[{i}].{field}");
            if w.name.trim().is_empty() {
                return Err(error(false, &key("name"), "must not be empty".to_owned()));
            }
            if raw.watch[..i].iter().any(|other| other.name == w.name) {
                return Err(error(
                    false,
                    &key("name"),
                    format!("{:?} is used by an earlier entry", w.name),
                ));
            }
            let matcher = match (&w.exe, &w.cmdline, &w.pidfile) {
                (Some(exe), None, None) if !exe.is_empty() => ProcessMatcher::Exe(exe.clone()),
                (None, Some(re), None) => {
                    ProcessMatcher::Cmdline(regex::Regex::new(re).map_err(|e| {
                        error(false, &key("cmdline"), format!("invalid regex {re:?}: {e}"))
                    })?)
                }
                (None, None, Some(path)) => ProcessMatcher::Pidfile(path.clone()),
                _ => {
                    return Err(error(
                        false,
                        &format!("watch[{i}]"),
                        format!(
                            "entry {:?} needs exactly one of exe, cmdline, pidfile",
                            w.name
                        ),
                    ));
                }
            };
            let min_count = match w.min_count {
                None => 1,
                Some(n) if n >= 0 => n as u64,
                Some(n) => return Err(error(false, &key("min_count"), format!("{n} is negative"))),
            };
            watch.push(WatchSpec {
                name: w.name.clone(),
                matcher,
                min_count,
            });
        }

        for (i, unit) in raw.systemd_units.iter().enumerate() {
            let ok = !unit.is_empty()
                && !unit.starts_with('-')
                && unit
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
            if !ok {
                return Err(error(
                    false,
                    &format!("systemd_units[{i}]"),
                    format!(
                        "{unit:?} is not a unit name (letters, digits, ':', '_', '.', '@', '-', '\\'; not starting with '-')"
                    ),
                ));
            }
        }

        let statsd_flag = flags.statsd.is_some();
        let statsd =
            crate::statsd::StatsdConfig::build(&raw.statsd, flags.statsd.as_deref(), interval)
                .map_err(|(key, reason)| {
                    error(
                        statsd_flag,
                        if statsd_flag { "statsd" } else { &key },
                        reason,
                    )
                })?;
        let checks = crate::checks::build(&raw.check, interval)
            .map_err(|(key, reason)| error(false, &key, reason))?;

        Ok(Config {
            statsd,
            checks,
            collector,
            tls,
            token,
            http_listen,
            interval,
            host,
            state_dir: flags
                .state_dir
                .or(raw.state_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            spool_max_bytes,
            spool_fsync,
            labels: raw.labels,
            disks,
            network,
            watch,
            systemd_units: raw.systemd_units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(file: &str, flags: Overrides) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(file).map_err(|e| e.to_string())?;
        Config::build(Some((Path::new("/etc/agent.toml"), raw)), flags, || {
            "h1".into()
        })
        .map_err(|e| e.to_string())
    }

    #[track_caller]
    fn check_err(file: &str, flags: Overrides, expected: &str) {
        let err = build(file, flags).unwrap_err();
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }

    #[test]
    fn defaults_file_and_flags() {
        let cfg = build("", Overrides::default()).unwrap();
        assert_eq!(cfg.collector, DEFAULT_COLLECTOR);
        assert_eq!(cfg.interval, DEFAULT_INTERVAL);
        assert_eq!(cfg.host, "h1");
        let cfg = build(
            "interval = \"5s\"\nhost = \"web-1\"\n[labels]\nenv = \"prod\"",
            Overrides {
                interval: Some("1s".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.interval, Duration::from_secs(1));
        assert_eq!(cfg.host, "web-1");
        assert_eq!(cfg.labels.get("env").map(String::as_str), Some("prod"));
    }

    #[test]
    fn statsd_defaults_flag_and_bad_values() {
        let cfg = build("", Overrides::default()).unwrap();
        let default: std::net::SocketAddr = "127.0.0.1:8125".parse().unwrap();
        assert_eq!(cfg.statsd.udp, Some(default));
        assert_eq!(cfg.statsd.tcp, Some(default));
        assert_eq!(cfg.statsd.flush_every, 1);
        let off = build(
            "[statsd]\nudp = \"127.0.0.1:9000\"",
            Overrides {
                statsd: Some("off".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!((off.statsd.udp, off.statsd.tcp), (None, None));
        let every = build(
            "interval = \"10s\"\n[statsd]\nflush_interval = \"30s\"\ntcp = \"off\"",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(every.statsd.flush_every, 3);
        assert_eq!(every.statsd.tcp, None);
        check_err(
            "interval = \"10s\"\n[statsd]\nflush_interval = \"15s\"",
            Overrides::default(),
            "/etc/agent.toml: statsd.flush_interval: \"15s\" is not a multiple of the sampling interval (10s)",
        );
        check_err(
            "[statsd]\nudp = \"localhost\"",
            Overrides::default(),
            "/etc/agent.toml: statsd.udp:",
        );
        check_err(
            "",
            Overrides {
                statsd: Some("nowhere".into()),
                ..Overrides::default()
            },
            "command line: statsd:",
        );
        check_err(
            "[statsd]\nmax_series = 0",
            Overrides::default(),
            "/etc/agent.toml: statsd.max_series: 0 is below the minimum of 1",
        );
        check_err(
            "[statsd]\nread_buffer_bytes = 1",
            Overrides::default(),
            "statsd.read_buffer_bytes: 1 is outside",
        );
        check_err(
            "[[check]]\nname = \"x\"\ntcp = \"a\"",
            Overrides::default(),
            "/etc/agent.toml: check[0].tcp: \"a\" is not host:port",
        );
    }

    #[test]
    fn bad_values_name_origin_and_key() {
        check_err(
            "interval = \"soon\"",
            Overrides::default(),
            "/etc/agent.toml: interval: invalid duration \"soon\"",
        );
        check_err(
            "",
            Overrides {
                interval: Some("10 parsecs".into()),
                ..Overrides::default()
            },
            "command line: interval: invalid duration",
        );
        check_err(
            "interval = \"100ms\"",
            Overrides::default(),
            "interval: 100ms is below the minimum of 1s",
        );
        check_err(
            "collector = \"nowhere\"",
            Overrides::default(),
            "/etc/agent.toml: collector: invalid URL \"nowhere\"",
        );
        check_err(
            "collector = \"ftp://x:1\"",
            Overrides::default(),
            "collector: invalid URL",
        );
        check_err(
            "[labels]\n\"bad-name\" = \"x\"",
            Overrides::default(),
            "labels.bad-name",
        );
        check_err(
            "[labels]\nhost = \"x\"",
            Overrides::default(),
            "labels.host",
        );
        check_err(
            "spool_max_bytes = 10",
            Overrides::default(),
            "spool_max_bytes: 10 is below",
        );
        check_err(
            "spool_max_bytes = -1",
            Overrides::default(),
            "spool_max_bytes: -1 is below",
        );
        check_err(
            "spool_fsync = \"sometimes\"",
            Overrides::default(),
            "spool_fsync: \"sometimes\" is neither",
        );
        check_err(
            "[network]\nexclude = [\"^lo$\", \"(\"]",
            Overrides::default(),
            "/etc/agent.toml: network.exclude[1]: invalid regex \"(\"",
        );
        check_err(
            "[[watch]]\nname = \"web\"\ncmdline = \"(\"",
            Overrides::default(),
            "/etc/agent.toml: watch[0].cmdline: invalid regex \"(\"",
        );
        check_err(
            "[[watch]]\nname = \"web\"\nexe = \"nginx\"\npidfile = \"/run/x\"",
            Overrides::default(),
            "watch[0]: entry \"web\" needs exactly one of exe, cmdline, pidfile",
        );
        check_err(
            "[[watch]]\nname = \"web\"\nexe = \"nginx\"\nmin_count = -2",
            Overrides::default(),
            "watch[0].min_count: -2 is negative",
        );
        check_err(
            "[[watch]]\nname = \"a\"\nexe = \"x\"\n[[watch]]\nname = \"a\"\nexe = \"y\"",
            Overrides::default(),
            "watch[1].name: \"a\" is used by an earlier entry",
        );
        check_err(
            "[[watch]]\nname = \"a\"\nexe = \"x\"\nuser = \"root\"",
            Overrides::default(),
            "unknown field `user`",
        );
        check_err(
            "systemd_units = [\"nginx.service\", \"--user\"]",
            Overrides::default(),
            "systemd_units[1]: \"--user\" is not a unit name",
        );
        check_err(
            "[disks]\nincldue = []",
            Overrides::default(),
            "unknown field `incldue`",
        );
        check_err(
            "intervall = \"1s\"",
            Overrides::default(),
            "unknown field `intervall`",
        );
    }

    #[test]
    fn deploy_example_is_valid_and_shows_the_defaults() {
        // Read at run time: a test binary reused from another checkout
        // (shared target dir) must read this checkout's file.
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it for tests");
        let path = Path::new(&manifest_dir).join("../deploy/agent.toml");
        let raw: RawConfig = nightjar_common::config_file::load(&path).unwrap();
        let cfg = Config::build(Some((&path, raw)), Overrides::default(), || "h".into()).unwrap();
        assert_eq!(cfg.collector, DEFAULT_COLLECTOR);
        assert_eq!(cfg.interval, DEFAULT_INTERVAL);
        assert_eq!(cfg.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(cfg.spool_max_bytes, DEFAULT_SPOOL_MAX_BYTES);
        assert_eq!(cfg.spool_fsync, FsyncPolicy::EveryBatch);
        assert_eq!(
            cfg.network,
            NameFilter::new(&[], DEFAULT_NETWORK_EXCLUDE).unwrap()
        );
        assert_eq!(cfg.disks, NameFilter::default());
    }
}
