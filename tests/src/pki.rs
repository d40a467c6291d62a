//! A throwaway PKI for TLS tests, made with rcgen: a CA, a server
//! certificate for 127.0.0.1/localhost, and client certificates, written as
//! PEM files into a directory.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// Paths of the PEM files.
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate (SANs 127.0.0.1, localhost) and key.
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA, and its key.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
    /// A CA that signed nothing here (for "wrong CA" tests).
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

impl Pki {
    /// Generates everything into `dir`.
    pub fn generate(dir: &Path) -> Pki {
        let (ca_params, ca_key, ca_pem) = ca("Nightjar test CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |sans: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) =
            leaf(vec!["127.0.0.1".into(), "localhost".into()], "collector");
        let (client_pem, client_key) = leaf(vec!["agent.test".into()], "agent");
        let (_, _, other_pem) = ca("Some other CA");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        Pki {
            ca: write("ca.crt", &ca_pem),
            server_cert: write("server.crt", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_pem),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.crt", &other_pem),
        }
    }
}
