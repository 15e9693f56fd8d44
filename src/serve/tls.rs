//! TLS termination: the certificate and key files, loaded into rustls
//! (TLS 1.2 and 1.3 only, aws-lc-rs), and reloadable on SIGHUP.
//!
//! Reloading swaps the certificate that *new* handshakes get; connections
//! already open keep theirs, so nothing is dropped. A reload that fails
//! (missing file, bad PEM, key not matching the certificate) keeps the old
//! certificate and says why.

use super::ServeError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// The certificate and key files, and the pair currently served.
#[derive(Debug)]
pub struct TlsFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl TlsFiles {
    /// Loads and checks the pair; errors name the file and the problem.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<TlsFiles>, ServeError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = load_pair(cert_file, key_file, &provider)?;
        Ok(Arc::new(TlsFiles {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Re-reads both files; on success new handshakes get the new pair.
    pub fn reload(&self) -> Result<(), ServeError> {
        let fresh = load_pair(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    /// An acceptor (ALPN `http/1.1`) whose handshakes use the current pair.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, ServeError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for TlsFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Loads a PEM certificate chain and private key into a TLS acceptor that
/// never reloads (the embedded upstream, `config check`).
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, ServeError> {
    TlsFiles::load(cert_file, key_file)?.acceptor()
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ServeError> {
    let bad = |file: &Path, why: String| ServeError::Tls(format!("{}: {why}", file.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| bad(cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert_file, "no PEM certificate found".into()));
    }
    // The private key is a secret file: its owner's alone (start and SIGHUP).
    crate::config::check_secret_file("tls.key_file", key_file)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| bad(key_file, e.to_string()))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| bad(cert_file, format!("certificate and key do not fit: {e}")))
}
