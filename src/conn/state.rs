//! A connection's lifecycle and the reasons it can end.
//!
//! ```text
//!   Open ──(peer EOF, fatal error, idle, shutdown, eviction)──► Closing(reason)
//!     │                                                  │ in-flight answered, output flushed
//!     │ reset / socket error                             ▼
//!     └───────────────────────────────► Closed ◄── Lingering(reason, until)
//! ```
//!
//! `Closing` stops reading and decoding but still delivers the answers to everything
//! read before, then the error frame if there is one. A server that closes while the
//! peer is still sending would make the kernel answer the unread bytes with a reset,
//! which can destroy that last frame before the client reads it; so a server-initiated
//! close first shuts down the write side and *lingers*, discarding input until the peer
//! closes or [`LINGER`](crate::config::LINGER) passes. Fatal states are sticky: once
//! closing, the reason never changes.
//!
//! No state can be held forever by a client that stops reading: `Closing` with output
//! the client takes none of is dropped after the closing timeout, and an open
//! connection with an idle timeout is dropped when the deadline passes with answers
//! unread (see `timers`).

use crate::protocol::Status;
use std::time::Instant;

/// Why a connection ended. Each maps to one STATS counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (after the server answered what it had sent).
    PeerClosed,
    /// The peer reset the connection, or it vanished mid-frame.
    Reset,
    /// A fatal protocol error, reported to the peer with this status.
    ProtocolViolation(Status),
    /// No traffic for the idle timeout.
    IdleTimeout,
    /// A frame begun and not completed within the frame timeout.
    FrameTimeout,
    /// Answers owed and none taken for the write timeout.
    WriteTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The server's memory for client buffers was full and this connection held the
    /// most (`--max-client-memory`).
    ClientMemoryLimit,
    /// A socket error other than a reset.
    Io,
    /// The server requires a token and the first frame was not a HELLO carrying the
    /// right one (reported with AUTH_REQUIRED or AUTH_FAILED).
    Unauthenticated,
    /// The server requires a token and none came within the authentication deadline.
    AuthTimeout,
    /// The TLS handshake failed: a client that does not speak TLS (plaintext frames on
    /// a TLS port), a refused or missing client certificate, no common parameters.
    TlsHandshake,
    /// The TLS handshake was not finished within its deadline.
    TlsHandshakeTimeout,
    /// A TLS error after the handshake (a bad record, an alert from the peer).
    Tls,
}

impl CloseReason {
    /// True when the server, not the peer, decided to close: such closes linger.
    pub fn server_initiated(self) -> bool {
        matches!(
            self,
            CloseReason::ProtocolViolation(_)
                | CloseReason::IdleTimeout
                | CloseReason::FrameTimeout
                | CloseReason::Shutdown
                | CloseReason::ClientMemoryLimit
                | CloseReason::Unauthenticated
                | CloseReason::AuthTimeout
        )
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reading, decoding and answering.
    Open,
    /// Answering what was read, reading nothing more.
    Closing(CloseReason),
    /// Write side shut; discarding input until the peer closes or the deadline.
    Lingering(CloseReason, Instant),
    /// Done: the socket can be dropped.
    Closed(CloseReason),
}
