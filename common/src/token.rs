//! Bearer tokens on gRPC calls: the client side (adds `authorization:
//! Bearer …` to every call) and token files (one secret line).

use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

/// Adds the bearer token, if any, to every request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

/// Never prints the token itself.
impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(<redacted>)"
        } else {
            "BearerToken(none)"
        })
    }
}

impl BearerToken {
    /// No token.
    pub fn none() -> BearerToken {
        BearerToken(None)
    }

    /// A token; it must be printable ASCII without spaces.
    pub fn new(token: &str) -> Result<BearerToken, String> {
        let token = token.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token is printable ASCII without spaces".into());
        }
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "a token is printable ASCII without spaces".to_owned())?;
        Ok(BearerToken(Some(value)))
    }

    /// Reads a token file (the token on its first non-empty line);
    /// `key` names the config key or flag in errors.
    pub fn from_file(key: &str, path: &Path) -> Result<BearerToken, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{key}: {}: cannot read: {e}", path.display()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        BearerToken::new(line).map_err(|e| format!("{key}: {}: {e}", path.display()))
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// SHA-256 of a token, as the collector's token file writes it
/// (`sha256:<hex>`): what `nightjar token hash` prints and the collector
/// compares against.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
