//! `Registry`: the slab of live connections, keyed by `Token`, with generations.
//!
//! A connection's `mio::Token` is its slab index plus [`FIRST_CONN`]; the low tokens
//! are reserved for the listener, the waker and the signal pipe. Each slot index has a
//! generation that rises when a connection leaves it, and every lookup by [`ConnId`]
//! checks it, so a worker's reply for a closed connection is dropped rather than
//! delivered to whoever took the slot next.

use crate::conn::{ConnLimits, Connection};
use crate::job::ConnId;
use mio::net::TcpStream;
use mio::Token;
use slab::Slab;
use std::sync::Arc;
use std::time::Instant;

/// The listening socket.
pub(super) const LISTENER: Token = Token(0);
/// The waker workers use.
pub(super) const WAKER: Token = Token(1);
/// SIGINT, SIGTERM and SIGHUP.
pub(super) const SIGNAL: Token = Token(2);
/// The plaintext listener beside a TLS one (`--plaintext-listen`).
pub(super) const PLAINTEXT_LISTENER: Token = Token(3);
/// The first token given to a connection.
pub(super) const FIRST_CONN: usize = 4;

/// One live connection and the reactor's bookkeeping about its socket.
#[derive(Debug)]
pub(super) struct Slot {
    /// The protocol state machine.
    pub conn: Connection,
    /// The socket.
    pub stream: TcpStream,
    /// TLS between the socket and the connection, on a TLS listener's connections.
    pub tls: Option<Box<super::tls::Session>>,
    /// The socket may have unread input (an edge arrived and was not drained).
    pub readable: bool,
    /// The last readiness event said the peer's side is closed: read to the end.
    pub read_closed: bool,
    /// WRITABLE is part of the registered interest.
    pub write_interest: bool,
    /// The last write returned `WouldBlock`: wait for a writable edge.
    pub write_blocked: bool,
    /// What the connection reported holding at its last flush (see `memory`).
    pub memory: usize,
    /// The slot is on the reactor's list of connections to service.
    pub queued: bool,
    /// The slot is on the list of connections given pushes not yet written.
    pub push_pending: bool,
    /// The slot is on the list of connections whose output waits for durability.
    pub durable_wait: bool,
    /// The deadline this connection has in the timer heap, if any.
    pub timer: Option<Instant>,
    /// The client's address, for logs.
    pub peer: Option<std::net::SocketAddr>,
    /// When the run in flight, or the oldest of the jobs held, was handed out: the
    /// start of its requests' latency (see `stats::latency`).
    pub run_since: crate::stats::latency::Stamp,
}

impl Slot {
    /// The earliest of the connection's deadlines and its TLS session's.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let tls = self.tls.as_ref().and_then(|t| t.deadline());
        [self.conn.poll_timeout(), tls].into_iter().flatten().min()
    }
}

/// Live connections by slab index, with a generation per index.
#[derive(Debug, Default)]
pub(super) struct Registry {
    slab: Slab<Slot>,
    generations: Vec<u32>,
}

impl Registry {
    /// An empty registry with room for `capacity` connections before it grows.
    pub(super) fn with_capacity(capacity: usize) -> Registry {
        Registry {
            slab: Slab::with_capacity(capacity),
            generations: Vec::with_capacity(capacity),
        }
    }

    /// Live connections.
    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when no connection is live.
    pub(super) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Adds a connection; returns its id and token.
    pub(super) fn insert(
        &mut self,
        stream: TcpStream,
        tls: Option<Box<super::tls::Session>>,
        limits: Arc<ConnLimits>,
        now: Instant,
    ) -> (ConnId, Token) {
        let entry = self.slab.vacant_entry();
        let index = entry.key();
        if self.generations.len() <= index {
            self.generations.resize(index + 1, 0);
        }
        let id = ConnId {
            index: index as u32,
            generation: self.generations[index],
        };
        let peer = stream.peer_addr().ok();
        entry.insert(Slot {
            conn: Connection::new(id, limits, now),
            peer,
            stream,
            tls,
            readable: false,
            read_closed: false,
            write_interest: false,
            write_blocked: false,
            memory: 0,
            queued: false,
            push_pending: false,
            durable_wait: false,
            timer: None,
            run_since: 0,
        });
        (id, Token(index + FIRST_CONN))
    }

    /// The id of the connection behind a token, if it is live.
    pub(super) fn id_of(&self, token: Token) -> Option<ConnId> {
        let index = token.0.checked_sub(FIRST_CONN)?;
        self.slab.get(index).map(|slot| slot.conn.id())
    }

    /// The slot of a live connection; `None` if it closed (even if the index is reused).
    pub(super) fn get_mut(&mut self, id: ConnId) -> Option<&mut Slot> {
        let index = id.index as usize;
        if self.generations.get(index) != Some(&id.generation) {
            return None;
        }
        self.slab.get_mut(index)
    }

    /// Removes a connection and retires its generation.
    pub(super) fn remove(&mut self, id: ConnId) -> Option<Slot> {
        let index = id.index as usize;
        if self.generations.get(index) != Some(&id.generation) {
            return None;
        }
        let slot = self.slab.try_remove(index)?;
        self.generations[index] = self.generations[index].wrapping_add(1);
        Some(slot)
    }

    /// Every live connection's slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slab.iter().map(|(_, slot)| slot)
    }

    /// Every live connection's id.
    pub(super) fn ids(&self) -> Vec<ConnId> {
        self.slab.iter().map(|(_, slot)| slot.conn.id()).collect()
    }

    /// The token of a connection.
    pub(super) fn token(id: ConnId) -> Token {
        Token(id.index as usize + FIRST_CONN)
    }
}
