//! TLS for every listener: `--tls-cert` and `--tls-key` (PEM) make the HTTP, admin and gRPC
//! listeners speak only TLS (1.2 and 1.3, rustls with ring); `--tls-client-ca` (PEM) makes it
//! mutual: a client must present a certificate that CA signed, or its handshake fails.
//!
//! The files are re-read like the key files ([`Reload`]): a renewed certificate (cert-manager,
//! a Secret volume) is served to new connections without a restart, and open connections keep
//! the one they started with. A set that does not load (a key that does not match its
//! certificate, an empty CA file) keeps the one in force.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use anyhow::Context;
use rustls::{
    crypto::{ring, CryptoProvider},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::{
    stamp::{stamps, Stamps},
    Reload,
};

/// The PEM files of `--tls-cert`, `--tls-key` and `--tls-client-ca`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates a client certificate must chain to (mutual TLS); none: no client auth.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [
            Some(self.cert.as_path()),
            Some(self.key.as_path()),
            self.client_ca.as_deref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// The application protocol a listener negotiates (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// The HTTP listeners (HTTP/1.1 only).
    Http1,
    /// The gRPC listener (HTTP/2).
    H2,
}

/// The server's TLS settings, current as of the last (re-)read of its files.
pub struct ServerTls {
    files: TlsFiles,
    configs: RwLock<Configs>,
    read: Mutex<Stamps>,
}

/// One loaded set of files, for each protocol.
#[derive(Clone)]
struct Configs {
    http1: Arc<ServerConfig>,
    h2: Arc<ServerConfig>,
}

impl ServerTls {
    /// Loads the files; any that does not load is an error naming it.
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let read = stamps(files.paths());
        let configs = configs(&files)?;
        Ok(Self {
            files,
            configs: RwLock::new(configs),
            read: Mutex::new(read),
        })
    }

    /// An acceptor with the settings in force now.
    pub fn acceptor(&self, alpn: Alpn) -> TlsAcceptor {
        let configs = self.configs.read().expect("tls configs");
        TlsAcceptor::from(Arc::clone(match alpn {
            Alpn::Http1 => &configs.http1,
            Alpn::H2 => &configs.h2,
        }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }
}

impl Reload for ServerTls {
    fn reload(&self) -> anyhow::Result<String> {
        *self.read.lock().expect("tls stamps") = stamps(self.files.paths());
        let configs = configs(&self.files)?;
        *self.configs.write().expect("tls configs") = configs;
        Ok(format!(
            "certificate {}{}",
            self.files.cert.display(),
            if self.mutual() { " with client CA" } else { "" }
        ))
    }

    fn reload_if_changed(&self) -> Option<anyhow::Result<String>> {
        let now = stamps(self.files.paths());
        if *self.read.lock().expect("tls stamps") == now {
            return None;
        }
        Some(self.reload())
    }

    fn source(&self) -> String {
        self.files.cert.display().to_string()
    }
}

fn configs(files: &TlsFiles) -> anyhow::Result<Configs> {
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &files.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates(&files.cert)?, private_key(&files.key)?)
        .with_context(|| {
            format!(
                "{} and {} are not a certificate and its key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    let mut h2 = config.clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    h2.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Configs {
        http1: Arc::new(config),
        h2: Arc::new(h2),
    })
}

/// Every certificate of a PEM file; none is an error.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading a private key from {}", path.display()))
}

/// Accepts client certificates that chain to the CAs in `path`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .with_context(|| format!("a CA certificate of {}", path.display()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("client CA {}", path.display()))
}
