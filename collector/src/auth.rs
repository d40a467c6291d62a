//! Who may call what: bearer tokens checked against a token file that holds
//! only their SHA-256 hashes. Agent tokens may ingest, and only for their
//! own host; write tokens may push samples for any host through the
//! remote_write receiver; read tokens may query and manage alerts.
//!
//! Token file (`[auth] tokens_file`), one token per line:
//!
//! ```text
//! # role  name      hash
//! agent   web-1     sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! read    grafana   sha256:...
//! write   vmagent   sha256:...
//! ```
//!
//! `nightjar token new --agent web-1` makes a token and its line.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nightjar_common::log_limit::RateLimitedLog;
pub use nightjar_common::token::hash_token;

use sha2::Digest as _;
use tonic::{Request, Status};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Send batches, for the host named by the token only.
    Agent,
    /// Query and alert APIs.
    Read,
    /// The remote_write receiver (`POST /api/v1/write`), for any host.
    Write,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

/// The caller, as its token says; put in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its role.
    pub role: Role,
    /// Host (agents) or client name (read).
    pub name: String,
}

/// Token hashes → callers.
#[derive(Debug, Default)]
pub struct TokenTable {
    /// Replaced whole on SIGHUP ([`TokenTable::replace_with`]), so a
    /// revoked token stops working without a restart.
    by_hash: std::sync::RwLock<HashMap<[u8; 32], Caller>>,
}
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl TokenTable {
    /// Parses a token file's text; errors name `file:line`.
    pub fn parse(file: &str, text: &str) -> Result<TokenTable, String> {
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{file}:{}", n + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [role, name, hash] = fields[..] else {
                return Err(format!(
                    "{at}: expected `ROLE NAME sha256:HEX`, got {} fields",
                    fields.len()
                ));
            };
            let role = match role {
                "agent" => Role::Agent,
                "read" => Role::Read,
                "write" => Role::Write,
                other => {
                    return Err(format!("{at}: role {other:?} is not agent, read or write"));
                }
            };
            let hash = parse_hash(hash).ok_or_else(|| {
                format!("{at}: {hash:?} is not sha256: followed by 64 hex digits")
            })?;
            let caller = Caller {
                role,
                name: name.to_owned(),
            };
            if by_hash.insert(hash, caller).is_some() {
                return Err(format!("{at}: this token hash is listed twice"));
            }
        }
        Ok(TokenTable {
            by_hash: std::sync::RwLock::new(by_hash),
        })
    }

    /// Takes `other`'s tokens in place of these (every service holding
    /// this table sees the change at its next call). Returns how many
    /// tokens were added and removed.
    pub fn replace_with(&self, other: &TokenTable) -> (usize, usize) {
        let new = other.by_hash.read().expect("token table lock").clone();
        let mut current = self.by_hash.write().expect("token table lock");
        let added = new.keys().filter(|k| !current.contains_key(*k)).count();
        let removed = current.keys().filter(|k| !new.contains_key(*k)).count();
        *current = new;
        (added, removed)
    }

    /// Loads a token file.
    pub fn load(key: &str, path: &Path) -> Result<TokenTable, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{key}: {}: cannot read: {e}", path.display()))?;
        TokenTable::parse(&path.display().to_string(), &text)
    }

    /// The caller a token belongs to.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        self.by_hash
            .read()
            .expect("token table lock")
            .get(&digest)
            .cloned()
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_hash.read().expect("token table lock").len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a call was refused, for logs and self-metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer` header.
    Missing,
    /// A token not in the file.
    Unknown,
    /// A token of the wrong role for this API.
    WrongRole,
    /// An agent sending for another host.
    Impersonation,
    /// No client certificate where mTLS is required.
    NoClientCert,
}

impl Refusal {
    /// Every reason, in counter order.
    pub const ALL: [Refusal; 5] = [
        Refusal::Missing,
        Refusal::Unknown,
        Refusal::WrongRole,
        Refusal::Impersonation,
        Refusal::NoClientCert,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing_token",
            Refusal::Unknown => "unknown_token",
            Refusal::WrongRole => "wrong_role",
            Refusal::Impersonation => "impersonation",
            Refusal::NoClientCert => "no_client_certificate",
        }
    }
}

/// Refusal counters and a log limiter: refusals are logged with the peer
/// address at most once every 10 s, with the count of those not logged.
#[derive(Debug, Default)]
pub struct AuthLog {
    counts: [AtomicU64; 5],
    /// One refusal line per 10 s, with the count of those not logged.
    log: RateLimitedLog<10>,
}

impl AuthLog {
    /// Counts and (rate-limited) logs a refusal.
    pub fn refuse(&self, why: Refusal, peer: &str, detail: &str) {
        let i = Refusal::ALL.iter().position(|r| *r == why).expect("listed");
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        if let Some(unlogged) = self.log.due() {
            tracing::warn!(%peer, reason = why.as_str(), detail, refusals_not_logged = unlogged, "refused a call");
        }
    }

    /// Refusals so far, per reason (in [`Refusal::ALL`] order).
    pub fn counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// The gRPC interceptor: checks the bearer token for `role` and puts the
/// [`Caller`] into the request's extensions. Without a table, every call
/// passes (auth off).
#[derive(Clone)]
pub struct Authenticate {
    /// The tokens; None = auth off.
    pub table: Option<Arc<TokenTable>>,
    /// The role this service needs.
    pub role: Role,
    /// Where refusals go.
    pub log: Arc<AuthLog>,
    /// Demand a verified client certificate (mTLS for agents).
    pub require_client_cert: bool,
}

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        // rustls verified any certificate presented against tls.client_ca;
        // here only its presence is left to check.
        if self.require_client_cert && request.peer_certs().is_none_or(|c| c.is_empty()) {
            self.log
                .refuse(Refusal::NoClientCert, &peer, "no client certificate");
            return Err(Status::unauthenticated(
                "a client certificate is required (mTLS)",
            ));
        }
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if let Some(caller) = self.check_bearer(&peer, authorization)? {
            request.extensions_mut().insert(caller);
        }
        Ok(request)
    }
}

impl Authenticate {
    /// Checks an `authorization` header's bearer token for this role (the
    /// gRPC services and the HTTP APIs alike): the caller, None with auth
    /// off, or the refusal (counted and logged) as a status whose code an
    /// HTTP handler maps to 401 / 403.
    pub fn check_bearer(
        &self,
        peer: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Caller>, Status> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            self.log.refuse(Refusal::Missing, peer, "no bearer token");
            return Err(Status::unauthenticated(
                "a bearer token is required (authorization: Bearer TOKEN)",
            ));
        };
        let Some(caller) = table.caller(token) else {
            self.log
                .refuse(Refusal::Unknown, peer, "token not in the token file");
            return Err(Status::unauthenticated("unknown token"));
        };
        if caller.role != self.role {
            let detail = format!(
                "{} token of {:?} used for the {} API",
                caller.role.as_str(),
                caller.name,
                self.role.as_str()
            );
            self.log.refuse(Refusal::WrongRole, peer, &detail);
            return Err(Status::permission_denied(format!(
                "this API needs a {} token",
                self.role.as_str()
            )));
        }
        Ok(Some(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor as _;

    fn table() -> Arc<TokenTable> {
        let text = format!(
            "# tokens\nagent web-1 {}\n\nread grafana {}\n",
            hash_token("agent-secret"),
            hash_token("read-secret")
        );
        Arc::new(TokenTable::parse("tokens", &text).unwrap())
    }

    fn call(role: Role, header: Option<&str>) -> Result<Option<Caller>, tonic::Code> {
        let mut auth = Authenticate {
            table: Some(table()),
            role,
            log: Arc::default(),
            require_client_cert: false,
        };
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        auth.call(req)
            .map(|r| r.extensions().get::<Caller>().cloned())
            .map_err(|s| s.code())
    }

    #[test]
    fn tokens_are_checked_by_hash_and_role() {
        let agent = call(Role::Agent, Some("Bearer agent-secret"))
            .unwrap()
            .unwrap();
        assert_eq!(
            agent,
            Caller {
                role: Role::Agent,
                name: "web-1".into()
            }
        );
        assert_eq!(call(Role::Agent, None), Err(tonic::Code::Unauthenticated));
        assert_eq!(
            call(Role::Agent, Some("Bearer nope")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            call(Role::Agent, Some("Bearer read-secret")),
            Err(tonic::Code::PermissionDenied)
        );
        assert!(
            call(Role::Read, Some("Bearer read-secret"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn token_file_errors_name_the_line() {
        for (text, expected) in [
            ("agent web-1\n", "tokens:1: expected `ROLE NAME sha256:HEX`"),
            ("\nadmin x sha256:00\n", "tokens:2: role \"admin\""),
            (
                "agent x sha256:zz\n",
                "tokens:1: \"sha256:zz\" is not sha256:",
            ),
        ] {
            let e = TokenTable::parse("tokens", text).unwrap_err();
            assert!(e.starts_with(expected), "{e}");
        }
        let h = hash_token("t");
        let e = TokenTable::parse("tokens", &format!("agent a {h}\nagent b {h}\n")).unwrap_err();
        assert!(
            e.starts_with("tokens:2: this token hash is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn refusals_are_counted_even_when_not_logged() {
        let log = AuthLog::default();
        for _ in 0..5 {
            log.refuse(Refusal::Unknown, "1.2.3.4:5", "x");
        }
        log.refuse(Refusal::Impersonation, "1.2.3.4:5", "y");
        assert_eq!(log.counts(), [0, 5, 0, 1, 0]);
        let later = std::time::Instant::now() + std::time::Duration::from_secs(11);
        assert_eq!(
            log.log.due_at(later),
            Some(5),
            "the next line tells of the 5 held back"
        );
    }
}
