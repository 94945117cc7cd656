//! TLS between a connection's socket and its [`Connection`](crate::conn::Connection):
//! the reactor decrypts what the socket delivers into the connection's input and
//! encrypts the connection's output on the way out, so the connection stays sans-IO and
//! never knows TLS is there.
//!
//! ```text
//!   socket ──read_tls──► rustls ──process_new_packets──► reader ──► Connection input
//!   socket ◄─write_tls── rustls ◄──────────writer────────────────── Connection output
//! ```
//!
//! Each TLS connection has a rustls `ServerConnection` beside its socket (a
//! [`Session`]); nothing blocks and no thread is added. Reads and writes are drained to
//! `WouldBlock` as for plaintext sockets, with the same budgets; the short-read rule
//! (see the reactor's doc) is applied to the socket reads rustls makes, not to the
//! plaintext it hands back, since one socket read can hold several records.
//!
//! # Limits, and what happens at each
//! * **Handshake deadline**: a connection that has not finished its handshake within
//!   the handshake timeout (a client that sends nothing, half a ClientHello, or
//!   plaintext frames) is closed, counted as `closed_tls_handshake`. It is armed in
//!   the reactor's deadline heap like the connection's own timers.
//! * **Encrypted output** waiting in rustls is at most one feed of the connection's
//!   output (rustls's 64 KiB buffer limit, plus record overhead): output is moved into
//!   rustls only once the ciphertext before it has reached the socket, so the
//!   connection's own limits (`--max-output`, the write timeout) still see what the
//!   client has not taken.
//! * **Decrypted input** waiting in rustls is at most rustls's 16 KiB plaintext limit:
//!   when the connection stops reading (backpressure), the socket is not read either.
//! * **Close**: a server-initiated close sends `close_notify` after the last answer
//!   and shuts the socket's write side once it is written. A connection whose client
//!   closed first keeps its socket until its last answers are encrypted and written,
//!   for at most [`CLOSING_TIMEOUT`]. A failed handshake gets rustls's alert, written
//!   once if the socket takes it, then the socket is closed.

use super::socket::{self, ReadOutcome};
use crate::config::CLOSING_TIMEOUT;
use crate::conn::{CloseReason, Connection};
use crate::tls::{TlsConfig, TlsError};
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

/// I/O vectors handed to rustls in one encryption call.
const FEED_SLICES: usize = 32;

/// Makes each TLS connection's session: the configuration in force, replaced on reload.
#[derive(Debug)]
pub(super) struct Acceptor {
    settings: TlsConfig,
    config: Arc<ServerConfig>,
}

impl Acceptor {
    /// Loads the certificate and key `settings` name.
    pub(super) fn new(settings: &TlsConfig) -> Result<Acceptor, TlsError> {
        Ok(Acceptor {
            config: crate::tls::server_config(settings)?,
            settings: settings.clone(),
        })
    }

    /// Loads the files again; on success new connections use them, on failure the
    /// configuration in force stays. Connections already open keep theirs either way.
    pub(super) fn reload(&mut self) -> Result<(), TlsError> {
        self.config = crate::tls::server_config(&self.settings)?;
        Ok(())
    }

    /// A session for a connection accepted at `now`.
    pub(super) fn session(&self, now: Instant) -> Result<Box<Session>, rustls::Error> {
        Ok(Box::new(Session {
            tls: ServerConnection::new(self.config.clone())?,
            deadline: Some(now + self.settings.handshake_timeout),
            drained: false,
            shut_pending: false,
            gave_up: false,
            completed: None,
        }))
    }
}

/// One connection's TLS state. See the module doc.
#[derive(Debug)]
pub(super) struct Session {
    tls: ServerConnection,
    /// While handshaking: when the handshake must be done. While flushing after the
    /// peer closed: when to stop trying. Otherwise `None`.
    deadline: Option<Instant>,
    /// The last socket read returned less than asked: the socket was empty then, and
    /// a new readiness edge announces anything later (cleared by that edge).
    drained: bool,
    /// `close_notify` is queued: shut the socket's write side once it is written.
    shut_pending: bool,
    /// The flush after the peer closed ran out of time.
    gave_up: bool,
    /// The handshake just completed (`Some(resumed)`), until the reactor counts it.
    completed: Option<bool>,
}

/// A socket read that records whether the socket returned less than asked.
struct Recorder<'a> {
    stream: &'a mut TcpStream,
    short: bool,
}

impl Read for Recorder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

/// How a write turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteEnd {
    /// Nothing more to write now.
    Done,
    /// The write budget is spent with more to write.
    Budget,
    /// The socket's buffer is full.
    Blocked,
    /// The socket failed.
    Failed(CloseReason),
}

impl Session {
    /// A readiness edge arrived: the socket may have new input.
    pub(super) fn note_readable(&mut self) {
        self.drained = false;
    }

    /// The handshake completed since the last call: `Some(resumed)`.
    pub(super) fn take_completed(&mut self) -> Option<bool> {
        self.completed.take()
    }

    /// True while rustls holds bytes for the socket.
    pub(super) fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// The deadline this session needs in the reactor's heap, if any.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Reads plaintext into `buf`: what rustls holds decrypted, else what one more
    /// socket read decrypts to. `WouldBlock` only once the socket is drained, so the
    /// reactor keeps its readiness until then. `read_closed` (the peer's side closed)
    /// turns off the short-read rule, as for plaintext sockets.
    pub(super) fn read(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut [u8],
        read_closed: bool,
    ) -> ReadOutcome {
        loop {
            match self.tls.reader().read(buf) {
                // A close_notify: the peer ends its side cleanly.
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => return ReadOutcome::Data(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP ended without close_notify: frames are self-delimiting, so a cut
                // stream is caught by the connection like a plaintext one.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return ReadOutcome::Eof,
                Err(_) => return ReadOutcome::Failed(self.failure()),
            }
            if std::mem::take(&mut self.drained) {
                return ReadOutcome::WouldBlock;
            }
            let mut source = Recorder {
                stream,
                short: false,
            };
            match self.tls.read_tls(&mut source) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(_) => self.drained = source.short && !read_closed,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                // rustls's own refusals (a handshake message too long) are TLS errors.
                Err(e) if e.kind() == io::ErrorKind::Other => {
                    return ReadOutcome::Failed(self.failure())
                }
                Err(e) => return ReadOutcome::Failed(socket::classify(&e)),
            }
            let handshaking = self.tls.is_handshaking();
            if self.tls.process_new_packets().is_err() {
                return ReadOutcome::Failed(self.failure());
            }
            if handshaking && !self.tls.is_handshaking() {
                self.deadline = None;
                self.completed = Some(matches!(
                    self.tls.handshake_kind(),
                    Some(rustls::HandshakeKind::Resumed)
                ));
            }
        }
    }

    /// The close reason for a TLS failure now.
    fn failure(&self) -> CloseReason {
        if self.tls.is_handshaking() {
            CloseReason::TlsHandshake
        } else {
            CloseReason::Tls
        }
    }

    /// Writes what rustls holds to the socket and moves `conn`'s output into rustls,
    /// until nothing is left, the socket is full, or `budget` socket bytes are written.
    /// Adds the plaintext bytes moved to `moved`.
    pub(super) fn write(
        &mut self,
        stream: &mut TcpStream,
        conn: &mut Connection,
        now: Instant,
        budget: usize,
        moved: &mut usize,
    ) -> WriteEnd {
        let mut written = 0;
        loop {
            if self.tls.wants_write() {
                if written >= budget {
                    return WriteEnd::Budget;
                }
                match self.tls.write_tls(stream) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return WriteEnd::Blocked,
                    Err(e) => return WriteEnd::Failed(socket::classify(&e)),
                }
                continue;
            }
            if self.shut_pending {
                self.shut_pending = false;
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            if self.tls.is_handshaking() || !conn.wants_write() || conn.is_closed() {
                return WriteEnd::Done;
            }
            let mut slices = [IoSlice::new(&[]); FEED_SLICES];
            let k = conn.poll_transmit_vectored(&mut slices);
            let n = self.tls.writer().write_vectored(&slices[..k]).unwrap_or(0);
            if n == 0 {
                return WriteEnd::Done;
            }
            conn.advance_transmit(now, n);
            *moved += n;
        }
    }

    /// The connection is done with its side: queue `close_notify`, and shut the
    /// socket's write side once everything before it is written.
    pub(super) fn close_notify(&mut self) {
        self.tls.send_close_notify();
        self.shut_pending = true;
    }

    /// The connection closed: true while its last answers still wait in rustls for a
    /// socket that has not failed (the client closed first and is still reading), up
    /// to [`CLOSING_TIMEOUT`] from `now`.
    pub(super) fn keeps_open(&mut self, reason: Option<CloseReason>, now: Instant) -> bool {
        if self.gave_up || reason != Some(CloseReason::PeerClosed) || !self.tls.wants_write() {
            return false;
        }
        self.deadline.get_or_insert(now + CLOSING_TIMEOUT);
        true
    }

    /// Writes once whatever rustls holds (an alert after a failed handshake), if the
    /// socket takes it; the socket is closed next either way.
    pub(super) fn last_gasp(&mut self, stream: &mut TcpStream) {
        if self.tls.wants_write() {
            let _ = self.tls.write_tls(stream);
        }
    }

    /// The session's deadline passed at `now`: the reason to close, if it closes.
    pub(super) fn expire(&mut self, now: Instant) -> Option<CloseReason> {
        let due = self.deadline.is_some_and(|at| at <= now);
        if !due {
            return None;
        }
        self.deadline = None;
        if self.tls.is_handshaking() {
            Some(CloseReason::TlsHandshakeTimeout)
        } else {
            self.gave_up = true;
            None
        }
    }
}

impl super::Server {
    /// Loads the certificate and key again (SIGHUP): new handshakes use them, open
    /// connections keep theirs. A failure keeps the old ones and says why.
    pub(super) fn reload_tls(&mut self) {
        let Some(acceptor) = &mut self.tls else {
            return;
        };
        let counters = &self.ctx.stats.counters;
        match acceptor.reload() {
            Ok(()) => {
                crate::stats::Stats::incr(&counters.tls_reloads);
                tracing::info!("SIGHUP: reloaded the TLS certificate and key");
            }
            Err(e) => {
                crate::stats::Stats::incr(&counters.tls_reload_errors);
                tracing::warn!("SIGHUP: kept the TLS certificate in use: {e}");
            }
        }
    }
}
