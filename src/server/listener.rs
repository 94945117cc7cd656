//! The listening socket: accepts drained to `WouldBlock`, with a back-off when the
//! process runs out of descriptors.
//!
//! When `accept` fails with EMFILE, ENFILE, ENOBUFS or ENOMEM, retrying at once fails
//! again and would spin the reactor. The listener pauses for [`ACCEPT_BACKOFF`]
//! instead; pending connections wait in the kernel's backlog meanwhile, and since no
//! new edge may come for them, the reactor retries when the pause ends.

use crate::protocol::{encode, Opcode, RequestId, Status};
use crate::stats::{Counters, Stats};
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// How long accepting pauses after the process ran out of descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(super) struct Listener {
    inner: TcpListener,
    ready: bool,
    paused_until: Option<Instant>,
    /// Set while accepts keep failing, so the failure is logged once per streak.
    failing: bool,
}

impl Listener {
    pub(super) fn bind(addr: SocketAddr, registry: &mio::Registry) -> io::Result<Listener> {
        let mut inner = TcpListener::bind(addr)?;
        registry.register(&mut inner, super::registry::LISTENER, Interest::READABLE)?;
        Ok(Listener {
            inner,
            // A connection may be queued before registration: try once regardless.
            ready: true,
            paused_until: None,
            failing: false,
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// A readiness event arrived for the listener.
    pub(super) fn set_ready(&mut self) {
        self.ready = true;
    }

    /// When a paused listener should be tried again.
    pub(super) fn resume_at(&self) -> Option<Instant> {
        self.paused_until
    }

    /// The next accepted connection (with `TCP_NODELAY` set), or `None` once the
    /// backlog is drained or accepting is paused.
    pub(super) fn accept(&mut self, now: Instant, counters: &Counters) -> Option<TcpStream> {
        if let Some(until) = self.paused_until {
            if now < until {
                return None;
            }
            self.paused_until = None;
            self.ready = true;
        }
        while self.ready {
            match self.inner.accept() {
                Ok((stream, _)) => {
                    // Responses are written whole; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
                    if std::mem::take(&mut self.failing) {
                        eprintln!("switchboard: accepting connections again");
                    }
                    return Some(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready = false,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    Stats::incr(&counters.accept_errors);
                    if !std::mem::replace(&mut self.failing, true) {
                        let what = if super::socket::is_resource_exhaustion(&e) {
                            "out of descriptors or memory"
                        } else {
                            "unexpected error"
                        };
                        eprintln!(
                            "switchboard: accept: {e} ({what}); retrying every 100 ms, \
                             counted in accept_errors"
                        );
                    }
                    self.paused_until = Some(now + ACCEPT_BACKOFF);
                    return None;
                }
            }
        }
        None
    }
}

/// Tells a connection over the limit why it is refused, then closes it.
///
/// The frame is a few dozen bytes written into a fresh socket's empty send buffer, so
/// the non-blocking write completes whole; if it somehow does not, the close alone
/// still tells the client.
pub(super) fn reject_full(mut stream: TcpStream) {
    let mut frame = BytesMut::with_capacity(64);
    encode::error(
        &mut frame,
        Opcode(0),
        RequestId(0),
        Status::SERVER_FULL,
        b"server is at its connection limit",
    );
    let _ = stream.write(&frame);
    let _ = stream.shutdown(Shutdown::Write);
}
