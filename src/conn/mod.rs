//! `Connection`: one client's protocol state machine, with no socket, thread or clock.
//!
//! The reactor is a thin pump around it; a test or a fuzz target can be that pump
//! instead (see `ConnHarness` in the tests). Bytes go in, jobs and bytes come out, and
//! time is an argument.
//!
//! # Methods, and the order to call them
//! * Inputs, `handle_*`: [`handle_input`](Connection::handle_input) with bytes read
//!   from the socket; [`handle_completion`](Connection::handle_completion) (or
//!   [`complete`](Connection::complete)) with encoded responses for `count` of its
//!   jobs; [`handle_peer_closed`](Connection::handle_peer_closed) at end of input;
//!   [`handle_reset`](Connection::handle_reset) on a reset or socket error;
//!   [`handle_timeout`](Connection::handle_timeout) when [`poll_timeout`] passes;
//!   [`handle_shutdown`](Connection::handle_shutdown) when the server stops.
//! * Outputs, `poll_*`: [`poll_jobs`](Connection::poll_jobs) decodes buffered frames
//!   into jobs; [`poll_transmit`](Connection::poll_transmit) lends the bytes to write,
//!   and [`advance_transmit`](Connection::advance_transmit) records what the socket
//!   took; [`poll_shutdown`](Connection::poll_shutdown) says when to shut the write
//!   side; [`poll_timeout`] says when to call `handle_timeout`.
//! * Getters: [`wants_read`](Connection::wants_read), [`wants_write`](Connection::wants_write),
//!   [`wants_decode`](Connection::wants_decode),
//!   [`is_closed`](Connection::is_closed), [`close_reason`](Connection::close_reason).
//!
//! After any input call `poll_jobs`, then write out `poll_transmit`, then call
//! `poll_shutdown`, then `poll_timeout`: each may change what the next one returns.
//!
//! # Limits
//! * Buffered input never exceeds the frame limit plus one read: the decoder rejects a
//!   longer declared frame, and `wants_read` turns false while a frame-limit's worth is
//!   buffered.
//! * Pending output at `max_output` turns `wants_read` false and pauses decoding until
//!   it drains, so a client that does not read cannot make the server buffer without
//!   bound: pending output stays under `max_output` plus the answers to the jobs in
//!   flight when it passed the limit (at most `max_in_flight` frames).
//! * At most `max_in_flight` jobs are out at once; decoding pauses at the limit.
//! * Frames held back by either limit are decoded by a later `poll_jobs` even if no
//!   more bytes arrive; [`wants_decode`](Connection::wants_decode) says when to call it.
//!
//! [`poll_timeout`]: Connection::poll_timeout

mod state;
#[cfg(test)]
mod tests;

pub use state::{CloseReason, State};

use crate::job::{ConnId, Job, JobOp};
use crate::protocol::{
    features, DecodeError, Decoder, Frame, Limits, Opcode, Request, Status, BASE_VERSION,
    MAX_VERSION,
};
use bytes::{Buf, BytesMut};
use std::time::{Duration, Instant};

/// Feature bits this server grants in HELLO (none yet: pushes and TTLs are reserved).
pub const SUPPORTED_FEATURES: u32 = 0;

/// Buffers larger than this are released once empty, so one large frame does not leave
/// a connection holding a large buffer for the rest of its life.
const KEEP_BUFFER_BYTES: usize = 64 << 10;

/// Linger cap when the server is shutting down: long enough for answers already
/// written to reach a client that is reading, short enough that stopping the server
/// is not held up by clients that never close.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(100);

/// The limits one connection enforces.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Frame, key and value limits.
    pub protocol: Limits,
    /// Pending output past which reading stops.
    pub max_output: usize,
    /// Jobs out at once past which decoding stops.
    pub max_in_flight: u32,
    /// Close after this long without input while nothing is pending.
    pub idle_timeout: Option<Duration>,
    /// How long a server-initiated close discards input before giving up on the peer.
    pub linger: Duration,
}

/// One client connection's protocol state. See the module doc for the call order.
#[derive(Debug)]
pub struct Connection {
    id: ConnId,
    limits: ConnLimits,
    decoder: Decoder,
    input: BytesMut,
    output: BytesMut,
    state: State,
    /// The protocol version frames must carry (the base, or what HELLO agreed).
    version: u8,
    /// Feature bits HELLO granted.
    features: u32,
    /// True until the first frame: HELLO is only allowed then.
    awaiting_first_frame: bool,
    /// Jobs handed out and not yet answered.
    in_flight: u32,
    /// Input has ended (peer EOF or shutdown): decode what is buffered, then close.
    input_ended: Option<CloseReason>,
    /// `poll_jobs` may have work: input or an end of input arrived since it last
    /// stopped at a partial frame, so it stopped at a limit or has not run yet.
    decodable: bool,
    last_input: Instant,
}

impl Connection {
    /// A new open connection.
    pub fn new(id: ConnId, limits: ConnLimits, now: Instant) -> Connection {
        Connection {
            id,
            limits,
            decoder: Decoder::new(limits.protocol.max_frame),
            input: BytesMut::new(),
            output: BytesMut::new(),
            state: State::Open,
            version: BASE_VERSION,
            features: 0,
            awaiting_first_frame: true,
            in_flight: 0,
            input_ended: None,
            decodable: false,
            last_input: now,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The current lifecycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Jobs handed out and not yet answered.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// True when the reactor should read from the socket now.
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Open => {
                self.input_ended.is_none()
                    && self.output.len() < self.limits.max_output
                    && self.in_flight < self.limits.max_in_flight
                    && self.input.len() < self.limits.protocol.max_frame as usize
            }
            // Lingering reads only to discard, so the peer's data cannot provoke a reset.
            State::Lingering(..) => true,
            State::Closing(_) | State::Closed(_) => false,
        }
    }

    /// True when [`poll_jobs`](Self::poll_jobs) has frames to decode that a limit held
    /// back and the limit has lifted: the pump must call it even if no bytes arrive.
    pub fn wants_decode(&self) -> bool {
        self.decodable && self.may_decode()
    }

    /// Decoding is allowed: open, and under the in-flight and output limits.
    fn may_decode(&self) -> bool {
        self.state == State::Open
            && self.in_flight < self.limits.max_in_flight
            && self.output.len() < self.limits.max_output
    }

    /// True while output is pending.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty() && !self.is_closed()
    }

    /// True once the socket can be dropped.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Why the connection is closing or closed.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Open => None,
            State::Closing(r) | State::Lingering(r, _) | State::Closed(r) => Some(r),
        }
    }

    /// Bytes read from the socket. Ignored unless the connection is open.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.state != State::Open || self.input_ended.is_some() {
            return;
        }
        self.input.extend_from_slice(data);
        self.decodable = true;
        self.last_input = now;
    }

    /// Copying convenience for tests: `handle_input` then `poll_jobs`.
    pub fn feed(&mut self, now: Instant, data: &[u8], jobs: &mut Vec<Job>) -> usize {
        self.handle_input(now, data);
        self.poll_jobs(jobs)
    }

    /// Decodes buffered frames into `jobs`, one job per frame, in order; returns how
    /// many were added. Stops at `max_in_flight`, at `max_output` bytes of pending
    /// output, at a partial frame, or at a fatal error (which becomes the last job: its
    /// error frame, then the close).
    pub fn poll_jobs(&mut self, jobs: &mut Vec<Job>) -> usize {
        let before = jobs.len();
        // Answers are only owed for decoded frames, so pausing decoding is what bounds
        // the output of a peer that sends requests and never reads the answers.
        while self.may_decode() {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(frame)) => {
                    let job = self.job_for(frame);
                    self.push_job(job, jobs);
                }
                Ok(None) => {
                    self.decodable = false;
                    if let Some(reason) = self.input_ended {
                        // What is left is a partial frame at most: nobody will finish it.
                        self.input.clear();
                        self.begin_close(reason);
                    }
                    break;
                }
                Err(e) => self.fail(e, jobs),
            }
        }
        self.release_idle_buffers();
        self.check_invariants();
        jobs.len() - before
    }

    /// Encoded responses for the next `count` of this connection's jobs.
    pub fn handle_completion(&mut self, responses: &[u8], count: u32) {
        self.complete(count, |out| out.extend_from_slice(responses));
    }

    /// Like [`handle_completion`](Self::handle_completion), but lets the caller encode
    /// straight into the output buffer (used when requests run on the reactor thread).
    pub fn complete(&mut self, count: u32, write: impl FnOnce(&mut BytesMut)) {
        debug_assert!(
            count <= self.in_flight,
            "{:?}: more answers than jobs",
            self.id
        );
        self.in_flight = self.in_flight.saturating_sub(count);
        if self.is_closed() {
            return;
        }
        write(&mut self.output);
        self.check_invariants();
    }

    /// The bytes ready to be written.
    #[must_use]
    pub fn poll_transmit(&self) -> &[u8] {
        &self.output
    }

    /// Records that the socket took `n` bytes of [`poll_transmit`](Self::poll_transmit).
    pub fn advance_transmit(&mut self, n: usize) {
        self.output.advance(n.min(self.output.len()));
        self.release_idle_buffers();
    }

    /// True once, when everything owed is written and the server-initiated close should
    /// shut the socket's write side and start lingering.
    #[must_use]
    pub fn poll_shutdown(&mut self, now: Instant) -> bool {
        if let State::Closing(reason) = self.state {
            if self.in_flight == 0 && self.output.is_empty() {
                if reason.server_initiated() {
                    let linger = match reason {
                        CloseReason::Shutdown => self.limits.linger.min(SHUTDOWN_LINGER),
                        _ => self.limits.linger,
                    };
                    self.state = State::Lingering(reason, now + linger);
                    self.input = BytesMut::new();
                    return true;
                }
                self.state = State::Closed(reason);
            }
        }
        false
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Lingering(_, until) => Some(until),
            State::Open => self.limits.idle_timeout.map(|t| self.last_input + t),
            State::Closing(_) | State::Closed(_) => None,
        }
    }

    /// Time has passed: ends a linger, or closes an idle connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Lingering(reason, until) if now >= until => {
                self.state = State::Closed(reason);
            }
            State::Open => {
                let idle = self.limits.idle_timeout;
                let quiet = self.in_flight == 0 && self.output.is_empty();
                if quiet && idle.is_some_and(|t| now >= self.last_input + t) {
                    self.input.clear();
                    self.begin_close(CloseReason::IdleTimeout);
                }
            }
            _ => {}
        }
    }

    /// The peer will send nothing more. Frames already buffered are still answered.
    pub fn handle_peer_closed(&mut self) {
        match self.state {
            State::Open => self.end_input(CloseReason::PeerClosed),
            State::Lingering(reason, _) => self.state = State::Closed(reason),
            State::Closing(_) | State::Closed(_) => {}
        }
    }

    /// The server is stopping: read nothing more, answer what was read, then close.
    pub fn handle_shutdown(&mut self) {
        if self.state == State::Open {
            self.end_input(CloseReason::Shutdown);
        }
    }

    /// The socket failed: nothing more can be written. Closes at once.
    ///
    /// A connection already closing keeps its reason: a peer that resets after a
    /// protocol error or during a shutdown still counts as that error or shutdown.
    pub fn handle_reset(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.state = State::Closed(self.close_reason().unwrap_or(reason));
            self.output = BytesMut::new();
            self.input = BytesMut::new();
        }
    }

    fn end_input(&mut self, reason: CloseReason) {
        if self.input_ended.is_none() {
            self.input_ended = Some(reason);
            self.decodable = true;
        }
    }

    fn push_job(&mut self, job: Job, jobs: &mut Vec<Job>) {
        jobs.push(job);
        self.in_flight += 1;
    }

    fn begin_close(&mut self, reason: CloseReason) {
        if self.state == State::Open {
            self.state = State::Closing(reason);
        }
    }

    /// A fatal decode error: its error frame is the last job, then the connection closes.
    fn fail(&mut self, e: DecodeError, jobs: &mut Vec<Job>) {
        let job = Job {
            conn: self.id,
            id: e.request_id().unwrap_or_default(),
            op: JobOp::Reject {
                opcode: e.opcode().unwrap_or(Opcode(0)),
                status: e.status(),
                reason: e.reason(),
            },
        };
        self.push_job(job, jobs);
        self.input = BytesMut::new();
        self.begin_close(CloseReason::ProtocolViolation(e.status()));
    }

    /// Turns one whole frame into its job, applying the per-connection rules: the
    /// negotiated version, HELLO only first, features that were not granted.
    fn job_for(&mut self, frame: Frame) -> Job {
        let h = frame.header;
        let first = std::mem::replace(&mut self.awaiting_first_frame, false);
        let reject = |status, reason| JobOp::Reject {
            opcode: h.opcode,
            status,
            reason,
        };
        let op = if h.version != self.version {
            self.input = BytesMut::new();
            self.begin_close(CloseReason::ProtocolViolation(Status::UNSUPPORTED_VERSION));
            reject(
                Status::UNSUPPORTED_VERSION,
                "frame version differs from the connection's",
            )
        } else {
            match Request::decode_owned(frame, &self.limits.protocol) {
                Err(e) => reject(e.status, e.reason),
                Ok(Request::Hello { .. }) if !first => reject(
                    Status::BAD_REQUEST,
                    "HELLO is only allowed as the first request",
                ),
                Ok(Request::Put { ttl_ms, .. } | Request::Cas { ttl_ms, .. })
                    if ttl_ms != 0 && self.features & features::TTL == 0 =>
                {
                    reject(Status::UNSUPPORTED, "TTL was not negotiated")
                }
                Ok(request) => {
                    if let Request::Hello {
                        max_version,
                        features: wanted,
                        ..
                    } = request
                    {
                        self.version = max_version.min(MAX_VERSION);
                        self.features = wanted & SUPPORTED_FEATURES;
                    }
                    JobOp::Request(request)
                }
            }
        };
        Job {
            conn: self.id,
            id: h.request_id,
            op,
        }
    }

    fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > KEEP_BUFFER_BYTES {
            self.input = BytesMut::new();
        }
        if self.output.is_empty() && self.output.capacity() > KEEP_BUFFER_BYTES {
            self.output = BytesMut::new();
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.in_flight <= self.limits.max_in_flight);
        debug_assert!(
            self.state == State::Open || self.input.is_empty() || self.input_ended.is_some(),
            "{:?}: input kept after close",
            self.id
        );
    }
}
