//! A generator thread's connections: what each holds, and what happens when one is
//! lost: its requests in flight fail, and with `--reconnect` it is opened again after
//! a backoff.

use super::receive::Failure;
use super::{Engine, Flight};
use crate::clock::now_ns;
use bytes::BytesMut;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

/// First wait before re-opening a lost connection; doubles per failure up to the max.
pub(super) const RECONNECT_MIN_NS: u64 = 100_000_000;
const RECONNECT_MAX_NS: u64 = 2_000_000_000;

/// One connection and its buffers.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// With --tls: the session beside the socket (see `tls`).
    pub(super) tls: Option<Box<rustls::ClientConnection>>,
    pub(super) server: usize,
    /// Encoded requests not yet written; `wpos` bytes of it are already on the wire.
    pub(super) wbuf: BytesMut,
    pub(super) wpos: usize,
    /// Received bytes; `rbuf[rstart..rend]` is not yet parsed.
    pub(super) rbuf: Vec<u8>,
    pub(super) rstart: usize,
    pub(super) rend: usize,
    pub(super) inflight: VecDeque<Flight>,
    pub(super) next_id: u32,
    pub(super) alive: bool,
    /// With --reconnect: when a lost connection is tried again, and since when a
    /// connect has been under way.
    pub(super) retry_at: Option<u64>,
    pub(super) connecting_since: Option<u64>,
    pub(super) backoff_ns: u64,
    /// The first answer due is the one to the authenticating HELLO, checked apart
    /// from the requests' answers and not counted.
    pub(super) hello_pending: bool,
}

impl Engine<'_> {
    /// Requests unanswered for longer than the timeout are errors; a connection that
    /// lost a response cannot be trusted to stay in step, so it is closed.
    pub(super) fn expire(&mut self, now: u64) {
        for ci in 0..self.conns.len() {
            let c = &self.conns[ci];
            if let Some(f) = c.inflight.front() {
                if now.saturating_sub(f.sent) > self.plan.timeout_ns {
                    let why = format!(
                        "no response within {:?}",
                        Duration::from_nanos(self.plan.timeout_ns)
                    );
                    self.kill_as(ci, &why, Failure::Timeout);
                }
            }
        }
    }

    pub(super) fn kill(&mut self, ci: usize, why: &str) {
        self.kill_as(ci, why, Failure::Connection);
    }

    pub(super) fn kill_as(&mut self, ci: usize, why: &str, failure: Failure) {
        let c = &mut self.conns[ci];
        if !c.alive {
            return;
        }
        c.alive = false;
        self.alive -= 1;
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.registry.deregister(&mut c.stream);
        if self.plan.reconnect {
            c.retry_at = Some(now_ns() + c.backoff_ns);
        }
        let lost: Vec<Flight> = c.inflight.drain(..).collect();
        self.inflight -= lost.len();
        let server = c.server;
        let detail = format!("connection {ci} to server {server}: {why}");
        for (i, f) in lost.iter().enumerate() {
            self.fail(f.measured, failure, (i == 0).then(|| detail.clone()));
        }
        if lost.is_empty() && self.res.first_error.is_none() {
            self.res.first_error = Some(detail);
        }
    }

    /// Starts a connect for every lost connection whose wait is over, and gives up on
    /// connects that took longer than the timeout (to try again later).
    pub(super) fn reconnect(&mut self, now: u64) -> io::Result<()> {
        for ci in 0..self.conns.len() {
            let c = &mut self.conns[ci];
            if let Some(since) = c.connecting_since {
                if now.saturating_sub(since) > self.plan.timeout_ns {
                    let _ = self.registry.deregister(&mut c.stream);
                    c.connecting_since = None;
                    c.retry_at = Some(now + c.backoff_ns);
                    c.backoff_ns = (c.backoff_ns * 2).min(RECONNECT_MAX_NS);
                }
                continue;
            }
            if !matches!(c.retry_at, Some(at) if at <= now) {
                continue;
            }
            c.retry_at = None;
            match TcpStream::connect(self.plan.addrs[c.server]) {
                Ok(mut stream) => {
                    self.registry.register(
                        &mut stream,
                        Token(ci),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    c.stream = stream;
                    c.connecting_since = Some(now);
                }
                Err(_) => {
                    c.retry_at = Some(now + c.backoff_ns);
                    c.backoff_ns = (c.backoff_ns * 2).min(RECONNECT_MAX_NS);
                }
            }
        }
        Ok(())
    }

    /// A connect under way reported progress: it succeeded, failed, or goes on.
    pub(super) fn connected(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let failed = match c.stream.take_error() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => false,
                // Still connecting: a later event finishes it.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => true,
            },
        };
        c.connecting_since = None;
        if failed {
            let _ = self.registry.deregister(&mut c.stream);
            c.retry_at = Some(now_ns() + c.backoff_ns);
            c.backoff_ns = (c.backoff_ns * 2).min(RECONNECT_MAX_NS);
            return;
        }
        let _ = c.stream.set_nodelay(true);
        c.rstart = 0;
        c.rend = 0;
        c.wbuf.clear();
        c.wpos = 0;
        c.backoff_ns = RECONNECT_MIN_NS;
        // A server that requires a token closes a connection whose first frame is
        // not a HELLO carrying it: it goes ahead of every request.
        c.hello_pending = false;
        if let Some(hello) = &self.plan.hello {
            c.wbuf.extend_from_slice(hello);
            c.hello_pending = true;
            self.dirty.push(ci);
        }
        c.alive = true;
        self.alive += 1;
        self.res.reconnects += 1;
    }
}
