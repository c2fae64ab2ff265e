//! Certificates for TLS tests: a throwaway certificate authority issuing server certificates
//! for the loopback address, and clients (HTTP, WebSocket) that trust only that authority.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// A certificate authority of its own.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and key, PEM-encoded.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    #[must_use]
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A certificate for `127.0.0.1` and `localhost`, signed by this authority.
    #[must_use]
    pub fn issue(&self) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        ServerCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// This authority's certificate, DER-encoded (to add as a trusted root).
    #[must_use]
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// An HTTP client that trusts this authority only.
    #[must_use]
    pub fn https_client(&self) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.cert.pem().as_bytes()).unwrap();
        reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(root).build().unwrap()
    }

    /// A rustls client configuration that trusts this authority only (for WSS).
    #[must_use]
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.cert.pem().as_bytes()).unwrap()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

impl ServerCert {
    /// Writes `cert.pem` and `key.pem` into `dir` (replacing them), returning their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}
