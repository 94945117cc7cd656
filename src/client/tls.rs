//! The client's TLS: which servers to trust, the client's own certificate, and the
//! stream a [`Client`](super::Client) reads and writes, plain or encrypted.
//!
//! The handshake is finished when connecting, so a refused certificate (expired, for
//! another host, from an unknown CA) fails [`Client::connect_tls`](super::Client::connect_tls)
//! itself rather than the first request.

use crate::tls::{load_certs, load_key, load_roots, provider, TlsError, ALPN};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// Where system CA bundles usually are, tried in order when no CA file is given.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// How a client sets up TLS; `Default` trusts the system's CAs, presents no
/// certificate, and checks the certificate against the host connected to.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust (a self-signed server certificate itself works);
    /// `None` = the system bundle (`SSL_CERT_FILE`, else the usual paths).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate: encryption without authentication, for tests
    /// with throwaway certificates. Never for real traffic.
    pub insecure: bool,
    /// The client's certificate chain (PEM), for servers that require one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry; `None` = the host connected to.
    pub server_name: Option<String>,
}

/// A ready client TLS configuration: cheap to clone, shared by every connection made
/// with it (which also lets them resume each other's sessions).
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl ClientTls {
    /// Builds a configuration from `options`; `host` is the name (or address) the
    /// server's certificate is checked against unless `options.server_name` is given.
    ///
    /// # Errors
    /// When a file cannot be loaded, or the name is neither a DNS name nor an address.
    pub fn new(options: &TlsOptions, host: &str) -> Result<ClientTls, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else {
            let roots = match &options.ca_file {
                Some(path) => load_roots(path)?,
                None => load_roots(&system_bundle()?)?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&options.cert, &options.key) {
            (Some(cert), Some(key)) => {
                builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::File {
                    path: options
                        .cert
                        .clone()
                        .or(options.key.clone())
                        .unwrap_or_default(),
                    reason: "a client certificate needs both the certificate and its key".into(),
                })
            }
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        let name = options.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| TlsError::File {
            path: PathBuf::new(),
            reason: format!("'{name}' is not a server name: {e}"),
        })?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Wraps a connected socket and finishes the handshake on it.
    pub(super) fn handshake(&self, mut tcp: TcpStream) -> io::Result<Stream> {
        let mut conn = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// The system's CA bundle.
fn system_bundle() -> Result<PathBuf, TlsError> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        return Ok(path.into());
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| TlsError::File {
            path: PathBuf::new(),
            reason: "no system CA bundle found; give a CA file".into(),
        })
}

/// What a [`Client`](super::Client) talks over.
#[derive(Debug)]
pub(super) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath, for timeouts and addresses.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            // A server that closes without close_notify (a reset, a timeout) ends
            // the stream like a plain close would: frames say whether it was cut.
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf),
            // One encryption pass and one socket write for a whole pipeline.
            // (rustls takes up to its buffer limit at a time.)
            Stream::Tls(s) => {
                let mut rest = buf;
                while !rest.is_empty() {
                    let n = s.conn.writer().write(rest)?;
                    rest = &rest[n..];
                    while s.conn.wants_write() {
                        s.conn.write_tls(&mut s.sock)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// `--tls-insecure`: accepts any certificate, but still checks that the server holds
/// the key of the one it sent (so the handshake is a real one).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
