//! TLS settings shared by the daemons and the CLI: PEM files loaded with
//! errors that name the config key and the file, turned into tonic's
//! rustls configurations. Plaintext is refused off loopback unless
//! explicitly allowed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A PEM file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {path}: {reason}")]
pub struct TlsFileError {
    /// The config key or flag naming the file.
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// Why it is unusable.
    pub reason: String,
}

/// Reads a PEM file and checks that it holds a block of `kind` (e.g.
/// "CERTIFICATE", "PRIVATE KEY").
pub fn read_pem(key: &str, path: &Path, kind: &str) -> Result<Vec<u8>, TlsFileError> {
    let err = |reason: String| TlsFileError {
        key: key.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&pem);
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.contains(kind));
    if !found {
        return Err(err(format!("no PEM {kind} block in it")));
    }
    Ok(pem)
}

/// The collector's listener TLS: certificate chain, key, and optionally the
/// CA that agents' client certificates must chain to (mTLS).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
    /// CA for client certificates; set = client certificates required.
    pub client_ca: Option<Vec<u8>>,
}

impl ServerTls {
    /// Loads the files; `section` prefixes the keys in errors (`tls`).
    pub fn load(
        section: &str,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsFileError> {
        Ok(ServerTls {
            cert: read_pem(&format!("{section}.cert"), cert, "CERTIFICATE")?,
            key: read_pem(&format!("{section}.key"), key, "PRIVATE KEY")?,
            client_ca: client_ca
                .map(|p| read_pem(&format!("{section}.client_ca"), p, "CERTIFICATE"))
                .transpose()?,
        })
    }

    /// tonic's server configuration.
    pub fn config(&self) -> ServerTlsConfig {
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key));
        if let Some(ca) = &self.client_ca {
            // Optional at the handshake: the ingest API demands a client
            // certificate (agents), the query API does not (people's CLIs).
            config = config
                .client_ca_root(Certificate::from_pem(ca))
                .client_auth_optional(true);
        }
        config
    }
}

/// A client's TLS: the CA the server's certificate must chain to, and
/// optionally a client certificate (mTLS) and the name to verify.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA certificate(s), PEM.
    pub ca: Vec<u8>,
    /// Client certificate chain and key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the server's certificate must carry (default: the URL's host).
    pub server_name: Option<String>,
}

impl ClientTls {
    /// tonic's client configuration.
    pub fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        config
    }
}

/// Whether `host` (a URL host or an IP) is a loopback address or
/// `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "0.0.0.0", "collector.example", "[::]"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn pem_errors_name_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "not pem").unwrap();
        let e = read_pem("tls.cert", &p, "CERTIFICATE")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("tls.cert: {}: no PEM CERTIFICATE block in it", p.display())
        );
        let e = read_pem("tls.key", &dir.path().join("missing"), "PRIVATE KEY")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tls.key: ") && e.contains("cannot read"),
            "{e}"
        );
    }
}
