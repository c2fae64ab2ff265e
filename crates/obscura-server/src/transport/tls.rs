//! HTTPS and WSS on the API port without a proxy (`--tls-cert-file`, `--tls-key-file`): rustls
//! with a certificate that is read again on SIGHUP, so a renewed certificate takes effect for
//! new connections without a restart and without dropping the open ones.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate or key could not be used; names the flag whose file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--{flag} {path}: {reason}")]
    File { flag: &'static str, path: PathBuf, reason: String },
    #[error("--tls-key-file does not match the certificate in --tls-cert-file: {0}")]
    Mismatch(rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// The certificate and key files of the API port.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The current certificate, handed to every new TLS handshake.
#[derive(Debug)]
pub struct ReloadableCert {
    files: TlsSettings,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads the files; fails (naming the flag) if either is unreadable or they do not match.
    pub fn load(files: TlsSettings) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = RwLock::new(Arc::new(read_certified_key(&files, &provider)?));
        Ok(Arc::new(Self { files, provider, current }))
    }

    /// Reads the files again. On failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(read_certified_key(&self.files, &self.provider)?);
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(())
    }

    /// A server configuration that resolves every handshake to the current certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| Arc::clone(&current))
    }
}

fn read_certified_key(files: &TlsSettings, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| file_error("tls-cert-file", &files.cert_file, reason);
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| file_error("tls-key-file", &files.key_file, e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Mismatch)
}

fn file_error(flag: &'static str, path: &Path, reason: String) -> TlsError {
    TlsError::File { flag, path: path.to_owned(), reason }
}

/// Reloads `cert` on every SIGHUP until `stop` is cancelled; a failed reload is logged and the
/// certificate in use stays.
#[cfg(unix)]
pub fn reload_on_sighup(
    cert: Arc<ReloadableCert>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    match cert.reload() {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(err) => tracing::error!(error = %err, "TLS certificate not reloaded; keeping the current one"),
                    }
                }
            }
        }
    }))
}
