//! Logging connections closed for cause (a protocol error, the idle timeout, the
//! client memory limit), each with the client's address and the reason, at most
//! [`LINES_PER_SECOND`] a second: a flood of bad clients costs a line a second saying
//! how many were not logged, never a full disk.

use crate::conn::CloseReason;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Close lines logged per second at most.
pub(super) const LINES_PER_SECOND: u32 = 10;

/// The rate limit's state.
#[derive(Debug, Default)]
pub(super) struct CloseLog {
    window: Option<Instant>,
    logged: u32,
    dropped: u64,
}

/// Why a close is worth a line, in words; `None` for ordinary closes.
fn cause(reason: CloseReason) -> Option<String> {
    match reason {
        CloseReason::ProtocolViolation(status) => Some(format!("protocol error ({status})")),
        CloseReason::IdleTimeout => Some("idle timeout, or no answer to keepalive".into()),
        CloseReason::FrameTimeout => Some("a frame took longer than --frame-timeout".into()),
        CloseReason::WriteTimeout => Some("took none of its answers for --write-timeout".into()),
        CloseReason::ClientMemoryLimit => {
            Some("client memory limit: it held the most unread output".into())
        }
        CloseReason::Io => Some("socket error".into()),
        CloseReason::Unauthenticated => {
            Some("authentication failed: no HELLO with the right token".into())
        }
        CloseReason::AuthTimeout => Some("did not authenticate within --auth-timeout".into()),
        CloseReason::TlsHandshake => {
            Some("TLS handshake failed (not TLS, or a refused certificate)".into())
        }
        CloseReason::TlsHandshakeTimeout => {
            Some("TLS handshake not finished within --tls-handshake-timeout".into())
        }
        CloseReason::Tls => Some("TLS error".into()),
        CloseReason::PeerClosed | CloseReason::Reset | CloseReason::Shutdown => None,
    }
}

impl CloseLog {
    /// A connection from `peer` closed for `reason`: logged if it was for cause and the
    /// rate allows.
    pub(super) fn closed(&mut self, peer: Option<SocketAddr>, reason: CloseReason, now: Instant) {
        let Some(cause) = cause(reason) else {
            return;
        };
        let fresh = self
            .window
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1));
        if fresh {
            if self.dropped > 0 {
                tracing::warn!(
                    "{} more connection(s) closed for cause in the last second were not logged",
                    self.dropped
                );
            }
            self.window = Some(now);
            self.logged = 0;
            self.dropped = 0;
        }
        if self.logged >= LINES_PER_SECOND {
            self.dropped += 1;
            return;
        }
        self.logged += 1;
        match peer {
            Some(peer) => tracing::info!(%peer, "closed a connection: {cause}"),
            None => tracing::info!("closed a connection: {cause}"),
        }
    }
}
