//! Connections refused with SERVER_FULL, kept open a moment to discard what the client
//! already sent.
//!
//! A client that writes at once after connecting has its request in the server's
//! receive buffer by the time it is refused; closing a socket with unread input makes
//! the kernel send a reset, and a reset can destroy the SERVER_FULL frame before the
//! client reads it. So a refused connection, its frame written and its write side
//! shut, is read and discarded until the client closes or [`REFUSED_LINGER`] passes,
//! as server-initiated closes of served connections are.
//!
//! Lingering costs a descriptor each, so at most [`MAX_REFUSED`] linger at once (a
//! flood of connections past the limit cannot pin more); past that, and when
//! descriptors have run out, a refused connection is closed at once.

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Tokens at or above this are refused connections (slab index added).
pub(super) const REFUSED_BASE: usize = 1 << 40;
/// Refused connections lingering at most at once.
pub(super) const MAX_REFUSED: usize = 256;
/// How long a refused connection is read and discarded at most.
pub(super) const REFUSED_LINGER: Duration = Duration::from_secs(2);
/// Bytes discarded per connection per readiness event before others get a turn.
const DISCARD_BUDGET: usize = 256 << 10;

/// The refused connections lingering.
#[derive(Debug, Default)]
pub(super) struct Refused {
    sockets: Slab<TcpStream>,
    /// (slab key, deadline), in deadline order.
    deadlines: VecDeque<(usize, Instant)>,
}

impl Refused {
    /// Lingers `stream` (its frame written, its write side shut), or closes it at once
    /// when too many linger already or it cannot be registered.
    pub(super) fn add(&mut self, mut stream: TcpStream, poll: &Registry, now: Instant) {
        if self.sockets.len() >= MAX_REFUSED {
            return;
        }
        let entry = self.sockets.vacant_entry();
        let key = entry.key();
        if poll
            .register(&mut stream, Token(REFUSED_BASE + key), Interest::READABLE)
            .is_ok()
        {
            entry.insert(stream);
            self.deadlines.push_back((key, now + REFUSED_LINGER));
        }
    }

    /// Input arrived on `token`: discard it; close at end of input or on an error.
    pub(super) fn readable(&mut self, token: Token) {
        let key = token.0 - REFUSED_BASE;
        let Some(stream) = self.sockets.get_mut(key) else {
            return;
        };
        let mut buf = [0u8; 16 << 10];
        let mut budget = DISCARD_BUDGET;
        while budget > 0 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if budget > 0 {
            // End of input or an error: the client has what it was sent.
            self.sockets.remove(key);
        }
        // Else the budget ran out with input left: the next edge continues.
    }

    /// Closes those whose time is up; returns the next deadline.
    pub(super) fn expire(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&(key, at)) = self.deadlines.front() {
            if !self.sockets.contains(key) {
                self.deadlines.pop_front();
                continue;
            }
            if at > now {
                return Some(at);
            }
            self.deadlines.pop_front();
            self.sockets.remove(key);
        }
        None
    }
}
