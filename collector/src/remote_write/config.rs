//! `[[remote_write]]`: the endpoints every stored sample is forwarded to.
//!
//! ```toml
//! [[remote_write]]
//! name = "mimir"                       # default: the URL's host:port
//! url = "https://mimir.example/api/v1/push"
//! bearer_token_file = "/etc/nightjar/mimir.token"
//! # basic_auth_user = "nightjar"; basic_auth_password_file = "..."
//! tls_ca = "/etc/nightjar/ca.pem"
//! timeout = "30s"
//! labels = { cluster = "eu-1" }       # added where a series lacks them
//! include = ["node_.*", "cpu_.*"]      # metric-name regexes; default all
//! exclude = ["collector_.*"]
//! shards = 2
//! max_samples_per_send = 2000
//! queue_capacity = 10000000            # samples held for this endpoint
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// One `[[remote_write]]` table, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteWrite {
    /// Names the endpoint in metrics, logs and cursors.
    pub name: Option<String>,
    /// The endpoint, `http://` or `https://`.
    pub url: Option<String>,
    /// File holding a bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth user name.
    pub basic_auth_user: Option<String>,
    /// File holding the basic auth password.
    pub basic_auth_password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the endpoint's certificate.
    pub tls_ca: Option<PathBuf>,
    /// Timeout of one request. Default 30s.
    pub timeout: Option<String>,
    /// Labels added to every series that lacks them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Metric-name regexes (whole name): forward only these.
    #[serde(default)]
    pub include: Vec<String>,
    /// Metric-name regexes (whole name): never forward these.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Requests in flight at once, each for its share of the series.
    pub shards: Option<usize>,
    /// Samples per request at most (whole batches). Default 2000.
    pub max_samples_per_send: Option<usize>,
    /// Samples the queue holds for this endpoint before it drops the
    /// oldest. Default 10,000,000.
    pub queue_capacity: Option<u64>,
}

/// How a request authenticates. (Debug leaves the secrets out.)
#[derive(Clone, PartialEq, Eq)]
pub enum EndpointAuth {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointAuth::None => f.write_str("None"),
            EndpointAuth::Bearer(_) => f.write_str("Bearer(..)"),
            EndpointAuth::Basic { user, .. } => write!(f, "Basic({user:?}, ..)"),
        }
    }
}

/// A validated endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its name.
    pub name: String,
    /// Where requests go.
    pub url: String,
    /// How they authenticate.
    pub auth: EndpointAuth,
    /// A CA certificate (PEM) to trust besides the system's.
    pub tls_ca: Option<Vec<u8>>,
    /// Request timeout.
    pub timeout: Duration,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Metric-name filters (anchored).
    pub include: Vec<regex::Regex>,
    /// Metric-name exclusions (anchored).
    pub exclude: Vec<regex::Regex>,
    /// Parallel requests.
    pub shards: usize,
    /// Samples per request.
    pub max_samples_per_send: usize,
    /// Samples held before the oldest are dropped.
    pub queue_capacity: u64,
}

impl Endpoint {
    /// Whether samples of `metric` go to this endpoint.
    pub fn wants(&self, metric: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(metric)))
            && !self.exclude.iter().any(|r| r.is_match(metric))
    }
}

fn read_secret(key: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{key}: {}: cannot read: {e}", path.display()))?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        return Err(format!("{key}: {}: is empty", path.display()));
    }
    Ok(secret)
}

/// Validates the `[[remote_write]]` tables; relative paths are relative to
/// `dir`. Errors name the table and key: `[i].key: reason`.
pub fn build(raw: Vec<RawRemoteWrite>, dir: &Path) -> Result<Vec<Endpoint>, String> {
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("[{i}].{key}");
        let resolve = |p: PathBuf| if p.is_relative() { dir.join(p) } else { p };
        let url_text = r.url.ok_or_else(|| format!("{}: missing", at("url")))?;
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| format!("{}: {url_text:?} is not a URL: {e}", at("url")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "{}: {url_text:?} must be an http:// or https:// URL with a host",
                at("url")
            ));
        }
        let name = match r.name {
            Some(name) => name,
            None => format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(0)
            ),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(format!(
                "{}: {name:?} may hold only letters, digits and - _ . :",
                at("name")
            ));
        }
        if out.iter().any(|e| e.name == name) {
            return Err(format!(
                "{}: {name:?} names two endpoints; give each its own name",
                at("name")
            ));
        }
        let auth = match (
            r.bearer_token_file,
            r.basic_auth_user,
            r.basic_auth_password_file,
        ) {
            (None, None, None) => EndpointAuth::None,
            (Some(file), None, None) => {
                EndpointAuth::Bearer(read_secret(&at("bearer_token_file"), &resolve(file))?)
            }
            (None, Some(user), Some(file)) => EndpointAuth::Basic {
                user,
                password: read_secret(&at("basic_auth_password_file"), &resolve(file))?,
            },
            (None, Some(_), None) => {
                return Err(format!(
                    "{}: missing (basic_auth_user is set)",
                    at("basic_auth_password_file")
                ));
            }
            (None, None, Some(_)) => {
                return Err(format!(
                    "{}: missing (basic_auth_password_file is set)",
                    at("basic_auth_user")
                ));
            }
            (Some(_), _, _) => {
                return Err(format!(
                    "{}: set either a bearer token or basic auth, not both",
                    at("bearer_token_file")
                ));
            }
        };
        let tls_ca = match r.tls_ca {
            None => None,
            Some(path) => {
                let path = resolve(path);
                let pem = std::fs::read(&path).map_err(|e| {
                    format!("{}: {}: cannot read: {e}", at("tls_ca"), path.display())
                })?;
                reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    format!(
                        "{}: {}: not a PEM certificate: {e}",
                        at("tls_ca"),
                        path.display()
                    )
                })?;
                Some(pem)
            }
        };
        let timeout = match r.timeout {
            None => Duration::from_secs(30),
            Some(text) => nightjar_common::duration::parse(&at("timeout"), &text)
                .ok()
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| {
                    format!(
                        "{}: {text:?} is not a duration of at least 100ms",
                        at("timeout")
                    )
                })?,
        };
        for name in r.labels.keys() {
            if !nightjar_model::validate::is_label_name(name) || name == "__name__" {
                return Err(format!("{}: {name:?} is not a label name", at("labels")));
            }
        }
        let regexes = |key: &str, list: Vec<String>| {
            list.into_iter()
                .map(|p| {
                    regex::Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| format!("{}: {p:?} is not a regex: {e}", at(key)))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let shards = r.shards.unwrap_or(2);
        if !(1..=64).contains(&shards) {
            return Err(format!("{}: {shards} is outside 1..=64", at("shards")));
        }
        let max_samples_per_send = r.max_samples_per_send.unwrap_or(2000);
        if !(1..=100_000).contains(&max_samples_per_send) {
            return Err(format!(
                "{}: {max_samples_per_send} is outside 1..=100000",
                at("max_samples_per_send")
            ));
        }
        let queue_capacity = r.queue_capacity.unwrap_or(10_000_000);
        if queue_capacity < max_samples_per_send as u64 {
            return Err(format!(
                "{}: {queue_capacity} is below max_samples_per_send ({max_samples_per_send})",
                at("queue_capacity")
            ));
        }
        out.push(Endpoint {
            name,
            url: url.to_string(),
            auth,
            tls_ca,
            timeout,
            labels: r.labels.into_iter().collect(),
            include: regexes("include", r.include)?,
            exclude: regexes("exclude", r.exclude)?,
            shards,
            max_samples_per_send,
            queue_capacity,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Endpoint>, String> {
        #[derive(Deserialize)]
        struct File {
            remote_write: Vec<RawRemoteWrite>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        build(file.remote_write, Path::new("/nonexistent"))
    }

    #[test]
    fn endpoints_validate_and_errors_name_the_key() {
        let e = parse(
            "[[remote_write]]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\ninclude = [\"node_.*\"]\nexclude = [\"node_cpu.*\"]\nlabels = { cluster = \"eu\" }\n",
        )
        .unwrap();
        assert_eq!(e[0].name, "127.0.0.1:9090");
        assert_eq!(e[0].shards, 2);
        assert!(e[0].wants("node_load1") && !e[0].wants("node_cpu_seconds_total"));
        assert!(!e[0].wants("cpu_usage_percent"));
        let err = |text: &str| parse(text).unwrap_err();
        assert!(err("[[remote_write]]\nurl = \"ftp://x/\"\n").starts_with("[0].url: "));
        assert!(err("[[remote_write]]\nname = \"a\"\nurl = \"http://x/\"\n[[remote_write]]\nname = \"a\"\nurl = \"http://y/\"\n").starts_with("[1].name: "));
        assert!(
            err("[[remote_write]]\nurl = \"http://x/\"\nshards = 0\n")
                .contains("shards: 0 is outside")
        );
        assert!(
            err("[[remote_write]]\nurl = \"http://x/\"\nbearer_token_file = \"t\"\n")
                .contains("[0].bearer_token_file: /nonexistent/t: cannot read")
        );
        assert!(
            err("[[remote_write]]\nurl = \"http://x/\"\ninclude = [\"(\"]\n")
                .contains("[0].include: \"(\" is not a regex")
        );
        assert!(
            err("[[remote_write]]\nurl = \"http://x/\"\nlabels = { \"a-b\" = \"x\" }\n")
                .contains("[0].labels")
        );
        assert!(err("[[remote_write]]\nurl = \"http://x/\"\nurll = 1\n").contains("unknown field"));
    }
}
