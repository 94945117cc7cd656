//! TLS settings and the loading of certificates and keys, for the server (the reactor's
//! per-connection pump is `server::tls`; the client's side is `client::tls`).
//!
//! TLS is a transport underneath the protocol: frames are the same bytes inside it.
//! The server loads its certificate chain and key from PEM files into a rustls
//! `ServerConfig` at start, and again on SIGHUP; connections keep the configuration
//! they began with, so a reload never disturbs them.
//!
//! # Limits
//! * A handshake not finished within [`TlsConfig::handshake_timeout`] (default
//!   [`DEFAULT_HANDSHAKE_TIMEOUT`]) closes the connection, counted as
//!   `closed_tls_handshake`.
//! * Handshake messages are limited by rustls to 64 KiB; a longer one fails the
//!   handshake.
//! * At most [`SESSION_CACHE_ENTRIES`] sessions are kept for resumption (oldest
//!   dropped first); a reload starts an empty cache, so no session outlives the
//!   certificate it was made with.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a client has to finish the TLS handshake after connecting. Long enough
/// for a handshake over a slow link (a few round trips); short enough that a client
/// that connects and sends nothing cannot hold a descriptor for long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions kept for resumption. Each costs a few hundred bytes; 4096 covers a
/// reconnecting fleet of that many clients and stays around a megabyte.
pub const SESSION_CACHE_ENTRIES: usize = 4096;

/// The ALPN protocol id the server offers and the clients ask for. A client that asks
/// for no ALPN protocol is served too; one that asks only for others is refused.
pub const ALPN: &[u8] = b"switchboard/1";

/// Where the server's certificate and key are, and how it treats clients.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM file holding the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file holding the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file of CA certificates: when given, every client must present a
    /// certificate signed by one of them.
    pub client_ca: Option<PathBuf>,
    /// How long a client has to finish the handshake.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// The certificate and key files, no client certificates, the default timeout.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Why certificates or keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CA set.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA set could not make a verifier.
    #[error("client CA: {0}")]
    Verifier(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate in a PEM file; an error if there is none.
///
/// # Errors
/// When the file cannot be read, is not PEM, or holds no certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
///
/// # Errors
/// When the file cannot be read or holds no key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// A root store of every certificate in a PEM file.
///
/// # Errors
/// When the file cannot be read or a certificate is not a usable CA.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(roots)
}

/// The crypto provider everything here uses (see Cargo.toml for why ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server's rustls configuration from the files `config` names.
///
/// # Errors
/// When a file cannot be loaded or the key does not match the certificate.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&config.cert)?;
    let key = load_key(&config.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca {
        Some(ca) => {
            let roots = load_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(certs, key)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    server.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    // One ticket per full handshake is enough for a client to resume; the default of
    // two costs a second ticket's work and cache slot on every connection.
    server.send_tls13_tickets = 1;
    Ok(Arc::new(server))
}
