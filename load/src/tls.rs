//! TLS for the generator's connections (`--tls`), to switchboard or to Redis's
//! `--tls-port` alike, so a comparison pays for encryption on both sides.
//!
//! The handshake is done blocking, when the connections are opened and before the
//! clock starts; from then on each connection's rustls `ClientConnection` sits beside
//! its non-blocking socket, and [`read`] and [`write`] keep the engine's rules: a read
//! returns less than asked only when the socket had nothing more, and a write takes
//! what it can and leaves the rest for the next WRITABLE edge.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

/// What the connections of a run share: one configuration (so that sessions could
/// be resumed) and the name to check.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Tls {
    /// Trusts the CAs in `ca` (PEM), or anything when `insecure`; checks `name`.
    pub fn new(ca: Option<&Path>, insecure: bool, name: &str) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = match (insecure, ca) {
            (true, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
            (false, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                builder.with_root_certificates(roots)
            }
            (false, None) => {
                return Err("--tls needs --tls-ca FILE (or --tls-insecure)".into());
            }
        }
        .with_no_client_auth();
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("'{name}' is not a server name: {e}"))?;
        Ok(Tls {
            config: Arc::new(config),
            name,
        })
    }

    /// Finishes a handshake on a blocking socket.
    pub fn handshake(&self, sock: &mut std::net::TcpStream) -> io::Result<Box<ClientConnection>> {
        let mut conn = ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(sock)?;
        }
        Ok(Box::new(conn))
    }
}

/// Reads decrypted bytes into `buf` until it is full or the socket has nothing more:
/// so a short read means what it means on a plain socket. `Ok(0)` at the end.
pub(crate) fn read(
    tls: &mut ClientConnection,
    sock: &mut impl Read,
    buf: &mut [u8],
) -> io::Result<usize> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Ok(n);
        }
        match tls.reader().read(&mut buf[n..]) {
            Ok(0) => return Ok(n),
            Ok(k) => {
                n += k;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
            Err(e) => return Err(e),
        }
        match tls.read_tls(sock) {
            Ok(0) => return Ok(n),
            Ok(_) => {
                tls.process_new_packets().map_err(io::Error::other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
            Err(e) => return Err(e),
        }
    }
}

/// Encrypts what rustls takes of `data` and writes ciphertext until the socket is
/// full; returns the plaintext bytes taken (`WouldBlock` if none could be).
pub(crate) fn write(
    tls: &mut ClientConnection,
    sock: &mut impl Write,
    data: &[u8],
) -> io::Result<usize> {
    let taken = if data.is_empty() {
        0
    } else {
        tls.writer().write(data)?
    };
    flush(tls, sock)?;
    if taken == 0 && !data.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(taken)
}

/// Writes ciphertext rustls holds until it has none or the socket is full.
pub(crate) fn flush(tls: &mut ClientConnection, sock: &mut impl Write) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `--tls-insecure`: any certificate, but a real handshake signature.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
