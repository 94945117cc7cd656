//! The listening socket: accepts drained to `WouldBlock`; connections past the limit
//! refused with SERVER_FULL; and a reserve descriptor so that running out of
//! descriptors refuses clients instead of leaving them waiting.
//!
//! The connection limit is fitted to the descriptor limit at startup (see `fds`), so
//! the limit check refuses clients before descriptors run out. When they run out
//! anyway (EMFILE or ENFILE, from descriptors used elsewhere), the listener gives up
//! its reserve descriptor for a moment, accepts the waiting client, tells it
//! SERVER_FULL, closes it and takes the reserve back, as nginx and libuv do: a client
//! never sits in the kernel's queue unanswered. Without a reserve, or when accept fails
//! for lack of memory, retrying at once would fail again and spin the reactor, so the
//! listener pauses for [`ACCEPT_BACKOFF`]; pending connections wait in the backlog
//! meanwhile, and since no new edge may come for them, the reactor retries when the
//! pause ends.

use crate::protocol::{encode, Opcode, RequestId, Status};
use crate::stats::{Counters, Stats};
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use std::fs::File;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// How long accepting pauses after the process ran out of descriptors or memory with
/// no reserve descriptor to answer with.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(super) struct Listener {
    inner: TcpListener,
    ready: bool,
    paused_until: Option<Instant>,
    /// Set while accepts keep failing, so the failure is logged once per streak.
    failing: bool,
    /// A descriptor held in reserve, released to refuse a client when none are left.
    reserve: Option<File>,
    /// Connections here speak TLS: a refusal is a close, without a plaintext frame.
    tls: bool,
}

/// Opens the reserve descriptor.
fn reserve() -> Option<File> {
    File::open("/dev/null").ok()
}

impl Listener {
    /// Binds `addr` with a listen backlog of `backlog` (the kernel caps it at
    /// `net.core.somaxconn`).
    pub(super) fn bind(
        addr: SocketAddr,
        backlog: u32,
        token: mio::Token,
        tls: bool,
        registry: &mio::Registry,
    ) -> io::Result<Listener> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // As every server does: a restart may bind while old connections linger.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        let mut inner = TcpListener::from_std(socket.into());
        registry.register(&mut inner, token, Interest::READABLE)?;
        Ok(Listener {
            inner,
            // A connection may be queued before registration: try once regardless.
            ready: true,
            paused_until: None,
            failing: false,
            reserve: reserve(),
            tls,
        })
    }

    /// True when connections accepted here speak TLS.
    pub(super) fn is_tls(&self) -> bool {
        self.tls
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

    /// The next accepted connection to serve (with `TCP_NODELAY` set), or `None` once
    /// the backlog is drained or accepting is paused. While `full`, every accepted
    /// connection is refused with SERVER_FULL instead.
    pub(super) fn accept(
        &mut self,
        now: Instant,
        counters: &Counters,
        full: bool,
        linger: &mut dyn FnMut(TcpStream),
    ) -> Option<TcpStream> {
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
                    if std::mem::take(&mut self.failing) {
                        tracing::info!("accepting connections again");
                    }
                    if full {
                        linger(refuse(stream, counters, self.tls));
                        continue;
                    }
                    // Responses are written whole; Nagle would only delay them.
                    let _ = stream.set_nodelay(true);
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
                    let exhausted = super::socket::is_descriptor_exhaustion(&e);
                    if exhausted && self.refuse_with_reserve(counters) {
                        continue;
                    }
                    if !std::mem::replace(&mut self.failing, true) {
                        let what = if super::socket::is_resource_exhaustion(&e) {
                            "out of descriptors or memory"
                        } else {
                            "unexpected error"
                        };
                        tracing::warn!(
                            "accept: {e} ({what}); retrying every 100 ms, \
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

    /// Out of descriptors: frees the reserve, accepts one waiting client and refuses
    /// it with SERVER_FULL, then takes the reserve back. False when there was no
    /// reserve or no client could be accepted with it.
    fn refuse_with_reserve(&mut self, counters: &Counters) -> bool {
        if self.reserve.take().is_none() {
            return false;
        }
        let refused = match self.inner.accept() {
            // Out of descriptors: closed at once, not lingered.
            Ok((stream, _)) => {
                drop(refuse(stream, counters, self.tls));
                true
            }
            Err(_) => false,
        };
        self.reserve = reserve();
        refused
    }
}

/// Tells a connection it cannot be served and shuts its write side; the caller
/// lingers it (see `refused`) or closes it.
///
/// The frame is a few dozen bytes written into a fresh socket's empty send buffer, so
/// the non-blocking write completes whole; if it somehow does not, the close alone
/// still tells the client.
fn refuse(stream: TcpStream, counters: &Counters, tls: bool) -> TcpStream {
    Stats::incr(&counters.connections_rejected);
    refuse_with(
        stream,
        Status::SERVER_FULL,
        b"server is at its connection limit",
        tls,
    )
}

/// Writes a `status` frame (SERVER_FULL, DENIED) carrying `message` and shuts the
/// write side. On a TLS listener no frame is written (it could only be sent after a
/// handshake, which a refused client is not given): the close alone tells the client.
pub(super) fn refuse_with(
    mut stream: TcpStream,
    status: Status,
    message: &[u8],
    tls: bool,
) -> TcpStream {
    if tls {
        let _ = stream.shutdown(Shutdown::Write);
        return stream;
    }
    let mut frame = BytesMut::with_capacity(64 + message.len());
    encode::error(&mut frame, Opcode(0), RequestId(0), status, message);
    let _ = stream.write(&frame);
    let _ = stream.shutdown(Shutdown::Write);
    stream
}
