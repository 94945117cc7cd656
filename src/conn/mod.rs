//! `Connection`: one client's protocol state machine, with no socket, thread or clock.
//!
//! The reactor is a thin pump around it; a test or a fuzz target can be that pump
//! instead (see `ConnHarness` in the tests). Bytes go in, jobs and bytes come out, and
//! time is an argument.
//!
//! # Methods, and the order to call them
//! * Inputs, `handle_*`: [`handle_input`](Connection::handle_input) with bytes read
//!   from the socket; [`handle_answered`](Connection::handle_answered) after answers
//!   were written into [`sink`](Connection::sink) (requests run on the network
//!   thread), or [`handle_answers`](Connection::handle_answers) with a worker's;
//!   [`handle_unrun`](Connection::handle_unrun) with jobs an executor gave back
//!   unstarted; [`handle_peer_closed`](Connection::handle_peer_closed) at end of input;
//!   [`handle_reset`](Connection::handle_reset) on a reset or socket error;
//!   [`handle_timeout`](Connection::handle_timeout) when [`poll_timeout`] passes;
//!   [`handle_shutdown`](Connection::handle_shutdown) when the server stops,
//!   [`handle_cancel`](Connection::handle_cancel) when it stops executing, and
//!   [`handle_evict`](Connection::handle_evict) when it needs this connection's memory.
//! * Outputs, `poll_*`: [`poll_jobs`](Connection::poll_jobs) hands out the next run of
//!   jobs; [`poll_transmit`](Connection::poll_transmit) (or
//!   [`poll_transmit_vectored`](Connection::poll_transmit_vectored)) lends the bytes to
//!   write, and [`advance_transmit`](Connection::advance_transmit) records what the
//!   socket took; [`poll_shutdown`](Connection::poll_shutdown) says when to shut the
//!   write side; [`poll_timeout`] says when to call `handle_timeout`.
//! * Getters: [`wants_read`](Connection::wants_read), [`wants_write`](Connection::wants_write),
//!   [`wants_decode`](Connection::wants_decode), [`memory`](Connection::memory),
//!   [`is_closed`](Connection::is_closed), [`close_reason`](Connection::close_reason).
//!
//! After any input call `poll_jobs`, then write out `poll_transmit`, then call
//! `poll_shutdown`, then `poll_timeout`: each may change what the next one returns.
//!
//! # Runs
//! Jobs go out a *run* at a time: `poll_jobs` hands out nothing while an earlier run
//! has jobs unanswered. A run is executed with a credit of
//! [`output_credit`](Connection::output_credit) answer bytes; jobs it could not start
//! come back through `handle_unrun` and are held, in order, ahead of anything decoded
//! later, until the output drains. So one run is in flight per connection, answers
//! arrive in request order whatever executes them, and executing stops at the output
//! limit rather than after it.
//!
//! # Limits
//! * Buffered input never exceeds the frame limit plus one read: the decoder rejects a
//!   longer declared frame, and `wants_read` turns false while a frame-limit's worth is
//!   buffered.
//! * A run holds at most `max_in_flight` jobs and, beyond its first frame, less than
//!   `max_output` bytes of requests.
//! * Pending output at `max_output` turns `wants_read` false and stops handing out
//!   jobs; a run stops starting jobs once its answers reach its credit. So a client
//!   that does not read makes the server hold at most `max_output` plus one answer.
//! * Frames and jobs held back by a limit are handed out by a later `poll_jobs` even if
//!   no more bytes arrive; [`wants_decode`](Connection::wants_decode) says when.
//!
//! [`poll_timeout`]: Connection::poll_timeout

mod auth;
mod outgoing;
mod push;
mod state;
#[cfg(test)]
mod tests;
pub mod timers;
mod upkeep;

pub use outgoing::Outgoing;
pub use state::{CloseReason, State};
pub use timers::Timer;

use crate::exec::sink::Sink;
use crate::job::{ConnId, Job, JobOp};
use crate::protocol::{
    encode, features, DecodeError, Decoder, Frame, Limits, Opcode, Request, Status, BASE_VERSION,
    MAX_VERSION, PREFIX_LEN,
};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Feature bits this server grants in HELLO (TTLs are reserved).
pub const SUPPORTED_FEATURES: u32 = features::PUSH;

/// Buffers larger than this are released once empty, so one large frame does not leave
/// a connection holding a large buffer for the rest of its life.
const KEEP_BUFFER_BYTES: usize = 64 << 10;

/// Linger cap when the server is shutting down: long enough for answers already
/// written to reach a client that is reading, short enough that stopping the server
/// is not held up by clients that never close.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(100);

/// The message of the error frame a connection closed for the server-wide client
/// memory limit receives.
const EVICTED_MESSAGE: &[u8] =
    b"closed: the server's memory for client buffers is full and this connection held the most";

/// The message of a SHUTTING_DOWN answer to a request the server will not execute.
const NOT_EXECUTED_MESSAGE: &[u8] = b"the server is shutting down; this request was not executed";

/// The limits one connection enforces.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Frame, key and value limits.
    pub protocol: Limits,
    /// Pending output past which reading and executing stop.
    pub max_output: usize,
    /// Jobs in one run.
    pub max_in_flight: u32,
    /// Close after this long with no byte moving either way and nothing executing.
    pub idle_timeout: Option<Duration>,
    /// How long a server-initiated close discards input before giving up on the peer.
    pub linger: Duration,
    /// How long a closing connection may go without the client taking any of its
    /// pending output before it is dropped.
    pub closing_timeout: Duration,
    /// How long a frame may take to arrive whole, from its first byte; `None` = for ever.
    pub frame_timeout: Option<Duration>,
    /// How long the client may take none of the answers it is owed; `None` = for ever.
    pub write_timeout: Option<Duration>,
    /// The token a connection's first frame, a HELLO, must carry; `None` = none.
    pub auth: Option<Arc<crate::auth::TokenCheck>>,
    /// How long a connection may take to authenticate, when `auth` is set.
    pub auth_timeout: Duration,
}

/// One client connection's protocol state. See the module doc for the call order.
#[derive(Debug)]
pub struct Connection {
    id: ConnId,
    /// Shared: every connection of a server has the same.
    limits: Arc<ConnLimits>,
    decoder: Decoder,
    input: BytesMut,
    output: Outgoing,
    state: State,
    /// The protocol version frames must carry (the base, or what HELLO agreed).
    version: u8,
    /// Feature bits HELLO granted.
    features: u32,
    /// True until the first frame: HELLO is only allowed then.
    awaiting_first_frame: bool,
    /// Jobs of the current run handed out and not yet answered or given back.
    in_flight: u32,
    /// Jobs an executor gave back unstarted, in order; only while nothing is in flight.
    held: VecDeque<Job>,
    /// Request bytes of the jobs in flight and held.
    request_bytes: usize,
    /// Input has ended (peer EOF or shutdown): decode what is buffered, then close.
    input_ended: Option<CloseReason>,
    /// `poll_jobs` may have frames to decode: input or an end of input arrived since it
    /// last stopped at a partial frame.
    decodable: bool,
    /// Answers to this connection are dropped (it was closed to free memory).
    discard_answers: bool,
    /// The server stopped executing: nothing is handed out any more, and held jobs are
    /// answered SHUTTING_DOWN as soon as nothing is in flight ahead of them.
    cancelled: bool,
    /// The last time a byte moved either way or an answer arrived.
    last_activity: Instant,
    /// The last time a byte arrived.
    last_input: Instant,
    /// Holds subscriptions: the idle timeout does not apply (keepalive does).
    subscribed: bool,
    /// A subscription fell behind for lack of room and waits for the output to drain.
    push_behind: bool,
    /// When the frame now partly buffered began to arrive; `None` with no partial frame.
    partial_since: Option<Instant>,
    /// Since when answers have been pending with none of them taken; `None` when
    /// nothing is pending.
    owed_since: Option<Instant>,
    /// Jobs answered, in order: each decoded frame is a request the client counts
    /// (refused ones included).
    answered: u64,
    /// How many were answered before the first one answered as not carried out (after
    /// a cancel, every later one is too); `u64::MAX` while there is none.
    handled: u64,
    /// The server is stopping and this connection is owed a GOAWAY once everything
    /// it read is answered.
    draining: bool,
    /// The GOAWAY is written: nothing more is.
    goaway_sent: bool,
    /// Until the connection has authenticated (when the server requires it), by when
    /// it must.
    auth_deadline: Option<Instant>,
}

impl Connection {
    /// A new open connection.
    pub fn new(id: ConnId, limits: impl Into<Arc<ConnLimits>>, now: Instant) -> Connection {
        let limits = limits.into();
        let auth_deadline = limits.auth.as_ref().map(|_| now + limits.auth_timeout);
        let max_frame = match auth_deadline {
            Some(_) => limits
                .protocol
                .max_frame
                .min(crate::auth::PRE_AUTH_MAX_FRAME),
            None => limits.protocol.max_frame,
        };
        Connection {
            id,
            decoder: Decoder::new(max_frame),
            limits,
            input: BytesMut::new(),
            output: Outgoing::default(),
            state: State::Open,
            version: BASE_VERSION,
            features: 0,
            awaiting_first_frame: true,
            in_flight: 0,
            held: VecDeque::new(),
            request_bytes: 0,
            input_ended: None,
            decodable: false,
            discard_answers: false,
            cancelled: false,
            last_activity: now,
            last_input: now,
            subscribed: false,
            push_behind: false,
            partial_since: None,
            owed_since: None,
            answered: 0,
            handled: u64::MAX,
            draining: false,
            goaway_sent: false,
            auth_deadline,
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

    /// Jobs handed out and not yet answered or given back.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Jobs given back unstarted and held for a later run.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Answer bytes the connection may still take before it is at its output limit:
    /// the credit to execute its next run with.
    pub fn output_credit(&self) -> usize {
        self.limits.max_output.saturating_sub(self.output.len())
    }

    /// Memory the connection holds for its client: buffered input, pending output and
    /// the requests it has decoded and not yet answered.
    pub fn memory(&self) -> usize {
        self.input.capacity() + self.output.held() + self.request_bytes
    }

    /// True when the reactor should read from the socket now.
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Open => {
                self.input_ended.is_none()
                    && self.output.len() < self.limits.max_output
                    && self.input.len() < self.decoder.max_frame() as usize
            }
            // Lingering reads only to discard, so the peer's data cannot provoke a reset.
            State::Lingering(..) => true,
            State::Closing(_) | State::Closed(_) => false,
        }
    }

    /// True when [`poll_jobs`](Self::poll_jobs) has jobs to hand out that a limit held
    /// back and the limit has lifted: the pump must call it even if no bytes arrive.
    pub fn wants_decode(&self) -> bool {
        self.may_release()
            && (!self.held.is_empty() || (self.decodable && self.state == State::Open))
    }

    /// Jobs may be handed out: no run in flight, output under its limit, and the
    /// connection still answering.
    fn may_release(&self) -> bool {
        matches!(self.state, State::Open | State::Closing(_))
            && !self.discard_answers
            && !self.cancelled
            && self.in_flight == 0
            && self.output.len() < self.limits.max_output
    }

    /// True while output is pending and may be written (not all of it held).
    pub fn wants_write(&self) -> bool {
        self.output.ready() > 0 && !self.is_closed()
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
        if self.input.is_empty() && !data.is_empty() {
            self.partial_since = Some(now);
        }
        self.input.extend_from_slice(data);
        self.decodable = true;
        self.last_activity = now;
        self.last_input = now;
    }

    /// Copying convenience for tests: `handle_input` then `poll_jobs`.
    pub fn feed(&mut self, now: Instant, data: &[u8], jobs: &mut Vec<Job>) -> usize {
        self.handle_input(now, data);
        self.poll_jobs(jobs)
    }

    /// Hands out the next run: held jobs first, then frames decoded from the input,
    /// one job per frame, in order; returns how many were added to `jobs`.
    ///
    /// Hands out nothing while a run is in flight or output is at `max_output`; a run
    /// stops at `max_in_flight` jobs, at `max_output` bytes of requests, at a partial
    /// frame, or at a fatal error (which becomes its last job: the error frame, then
    /// the close).
    pub fn poll_jobs(&mut self, jobs: &mut Vec<Job>) -> usize {
        let before = jobs.len();
        if !self.may_release() {
            return 0;
        }
        if !self.held.is_empty() {
            self.in_flight = self.held.len() as u32;
            jobs.extend(self.held.drain(..));
        }
        // Answers are only owed for decoded frames, so pausing decoding is what bounds
        // the output of a peer that sends requests and never reads the answers.
        while self.state == State::Open
            && self.in_flight < self.limits.max_in_flight
            && (self.in_flight == 0 || self.request_bytes < self.limits.max_output)
        {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(frame)) => {
                    self.request_bytes += PREFIX_LEN + frame.body.len();
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
        // What is left is the start of the next frame: it began with the last read at
        // the latest.
        self.partial_since = if self.input.is_empty() {
            None
        } else if jobs.len() > before {
            Some(self.last_input)
        } else {
            self.partial_since
        };
        self.release_idle_buffers();
        self.check_invariants();
        jobs.len() - before
    }

    /// True while answers to this connection are still wanted: not closed, and not
    /// closed down for memory.
    pub fn takes_answers(&self) -> bool {
        !self.is_closed() && !self.discard_answers
    }

    /// Where answers to this connection's jobs are encoded when they run on the
    /// network thread; call [`handle_answered`](Self::handle_answered) after. `None`
    /// when its answers are no longer wanted (the executor writes them elsewhere and
    /// drops them).
    pub fn sink(&mut self) -> Option<&mut Outgoing> {
        self.takes_answers().then_some(&mut self.output)
    }

    /// The next `answered` jobs in flight have their answers in [`sink`](Self::sink).
    pub fn handle_answered(&mut self, now: Instant, answered: u32) {
        debug_assert!(
            answered <= self.in_flight,
            "{:?}: more answers than jobs",
            self.id
        );
        self.in_flight = self.in_flight.saturating_sub(answered);
        self.answered += u64::from(answered);
        if answered > 0 {
            self.last_activity = now;
            if self.owed_since.is_none() && !self.output.is_empty() {
                self.owed_since = Some(now);
            }
        }
        self.settle();
    }

    /// A worker's answers to the next `answered` jobs in flight: `encoded` bytes with
    /// `shared` values at their offsets, relative to `base` (see
    /// [`Answers`](crate::exec::sink::Answers)).
    pub fn handle_answers(
        &mut self,
        now: Instant,
        answered: u32,
        encoded: &[u8],
        shared: &[(usize, Bytes)],
        base: usize,
    ) {
        if let Some(out) = self.sink() {
            out.append(encoded, shared, base);
        }
        self.handle_answered(now, answered);
    }

    /// Jobs in flight that an executor gave back without starting them, in order. They
    /// are held and handed out again ahead of anything newer; when `cancelled` (or
    /// after [`handle_cancel`](Self::handle_cancel)), the server will not execute them
    /// and each is answered SHUTTING_DOWN instead.
    pub fn handle_unrun(&mut self, jobs: &mut dyn Iterator<Item = Job>, cancelled: bool) {
        let cancelled = cancelled || self.cancelled;
        for job in jobs {
            self.in_flight = self.in_flight.saturating_sub(1);
            if self.is_closed() || self.discard_answers {
                continue;
            }
            if cancelled {
                self.not_executed(&job);
            } else {
                self.held.push_back(job);
            }
        }
        self.settle();
    }

    /// The server stops executing requests: every whole frame still buffered is decoded
    /// and held with the jobs already held, and all are answered SHUTTING_DOWN, in
    /// order, after the run in flight if there is one (it comes back through
    /// `handle_unrun`, cancelled). The connection closes once that is written.
    pub fn handle_cancel(&mut self, now: Instant) {
        if !matches!(self.state, State::Open | State::Closing(_)) || self.cancelled {
            return;
        }
        self.cancelled = true;
        if self.state == State::Open {
            // Whole frames read but not decoded are requests too: decode them as
            // `poll_jobs` would, with no limit, to answer each in its turn.
            while self.state == State::Open {
                match self.decoder.decode(&mut self.input) {
                    Ok(Some(frame)) => {
                        let job = self.job_for(frame);
                        self.held.push_back(job);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let job = self.fatal_job(e);
                        self.held.push_back(job);
                    }
                }
            }
            self.input = BytesMut::new();
            self.decodable = false;
            self.end_input(CloseReason::Shutdown);
            self.begin_close(CloseReason::Shutdown);
        }
        self.last_activity = now;
        self.settle();
    }

    /// True when [`handle_evict`](Self::handle_evict) would act: the connection is
    /// open. One already closing is on its way out, holding only what it owes, and is
    /// dropped by the closing timeout if its client does not take it.
    pub fn evictable(&self) -> bool {
        self.state == State::Open && !self.discard_answers
    }

    /// The server needs this connection's memory: its pending output (all but the rest
    /// of a frame the client has started to receive), held jobs and input are dropped,
    /// an error frame saying why is queued, and it closes once that is written. Answers
    /// still arriving for it are dropped. Only an open connection is evicted (see
    /// [`evictable`](Self::evictable)).
    pub fn handle_evict(&mut self, now: Instant) {
        if !self.evictable() {
            return;
        }
        self.output.drop_after_frame();
        self.held.clear();
        self.tell_and_stop_reading(Status::CLIENT_MEMORY_LIMIT, EVICTED_MESSAGE);
        self.discard_answers = true;
        self.begin_close(CloseReason::ClientMemoryLimit);
        self.last_activity = now;
        self.settle();
    }

    /// The first contiguous bytes ready to be written.
    #[must_use]
    pub fn poll_transmit(&self) -> &[u8] {
        self.output.front()
    }

    /// Fills `slices` with the bytes ready to be written, in order; returns how many
    /// slices it filled.
    #[must_use]
    pub fn poll_transmit_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.output.io_slices(slices)
    }

    /// True when everything pending is one contiguous slice
    /// ([`poll_transmit`](Self::poll_transmit)): one plain write can take it all.
    pub fn transmit_is_contiguous(&self) -> bool {
        self.output.is_contiguous()
    }

    /// Holds the answers and pushes appended from now on until
    /// [`handle_released`](Self::handle_released) reaches `seq` (see
    /// [`Outgoing::hold_until`]); what was appended before goes out as usual.
    pub fn hold_output_until(&mut self, seq: u64) {
        self.output.hold_until(seq);
    }

    /// True while output waits for a sequence to be released.
    pub fn is_holding(&self) -> bool {
        self.output.is_holding()
    }

    /// Everything waiting for `seq` or less may go out now (with durability: `seq` is
    /// on disk).
    pub fn handle_released(&mut self, seq: u64) {
        self.output.release(seq);
    }

    /// Records that the socket took `n` bytes of what `poll_transmit` lent.
    pub fn advance_transmit(&mut self, now: Instant, n: usize) {
        if n > 0 {
            self.output.advance(n.min(self.output.len()));
            self.last_activity = now;
            // The client took some: the clock restarts for what is left.
            self.owed_since = (!self.output.is_empty()).then_some(now);
        }
        self.release_idle_buffers();
    }

    /// True once, when everything owed is written and the server-initiated close should
    /// shut the socket's write side and start lingering.
    #[must_use]
    #[inline]
    pub fn poll_shutdown(&mut self, now: Instant) -> bool {
        if self.goaway_due() {
            self.write_goaway();
        }
        if let State::Closing(reason) = self.state {
            if self.in_flight == 0 && self.held.is_empty() && self.output.is_empty() {
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

    /// The peer will send nothing more. Frames already buffered are still answered.
    pub fn handle_peer_closed(&mut self) {
        match self.state {
            State::Open => self.end_input(CloseReason::PeerClosed),
            State::Lingering(reason, _) => self.state = State::Closed(reason),
            State::Closing(_) | State::Closed(_) => {}
        }
    }

    /// The server is stopping: read nothing more, answer what was read, then send a
    /// GOAWAY and close. A connection whose client already closed its side is owed the
    /// GOAWAY too: it tells which of its requests will have run.
    pub fn handle_shutdown(&mut self) {
        match self.state {
            State::Open => {
                self.end_input(CloseReason::Shutdown);
                self.draining = !self.discard_answers;
            }
            State::Closing(CloseReason::PeerClosed) => self.draining = !self.discard_answers,
            _ => {}
        }
    }

    /// The socket failed: nothing more can be written. Closes at once.
    ///
    /// A connection already closing keeps its reason: a peer that resets after a
    /// protocol error or during a shutdown still counts as that error or shutdown.
    pub fn handle_reset(&mut self, reason: CloseReason) {
        self.abort(reason);
    }

    /// Closes at once, dropping everything buffered; an existing reason is kept.
    fn abort(&mut self, reason: CloseReason) {
        if !self.is_closed() {
            self.state = State::Closed(self.close_reason().unwrap_or(reason));
            self.output.clear();
            self.input = BytesMut::new();
            self.held.clear();
            self.decodable = false;
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

    /// Bookkeeping after answers or returned jobs: once nothing is in flight, only the
    /// held jobs' requests remain, and after a cancel those are answered now.
    fn settle(&mut self) {
        if self.in_flight == 0 {
            if self.cancelled {
                for job in std::mem::take(&mut self.held) {
                    if self.takes_answers() {
                        self.not_executed(&job);
                    }
                }
            }
            self.request_bytes = if self.held.is_empty() {
                0
            } else {
                self.held.iter().map(Job::request_len).sum()
            };
        }
        self.check_invariants();
    }

    /// A fatal decode error: its error frame is the last job, then the connection closes.
    fn fail(&mut self, e: DecodeError, jobs: &mut Vec<Job>) {
        let job = self.fatal_job(e);
        self.push_job(job, jobs);
    }

    /// The job answering a fatal decode error; the connection stops reading and closes
    /// after it.
    fn fatal_job(&mut self, e: DecodeError) -> Job {
        self.input = BytesMut::new();
        self.begin_close(CloseReason::ProtocolViolation(e.status()));
        Job {
            conn: self.id,
            id: e.request_id().unwrap_or_default(),
            version: self.version,
            op: JobOp::Reject {
                opcode: e.opcode().unwrap_or(Opcode(0)),
                status: e.status(),
                reason: e.reason(),
            },
        }
    }

    /// Turns one whole frame into its job, applying the per-connection rules: the
    /// negotiated version, HELLO only first, features that were not granted.
    fn job_for(&mut self, frame: Frame) -> Job {
        let h = frame.header;
        // Answered in the version the connection spoke when the request came, HELLO's
        // answer included.
        let version = self.version;
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
        } else if self.auth_deadline.is_some() {
            self.authenticate(
                Request::decode_owned(frame, &self.limits.protocol),
                h.opcode,
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
                Ok(Request::Subscribe { .. } | Request::Unsubscribe { .. })
                    if self.features & features::PUSH == 0 =>
                {
                    reject(
                        Status::UNSUPPORTED,
                        "PUSH was not negotiated: ask for it in HELLO",
                    )
                }
                Ok(request) => {
                    self.negotiate(&request);
                    JobOp::Request(request)
                }
            }
        };
        Job {
            conn: self.id,
            id: h.request_id,
            version,
            op,
        }
    }

    /// HELLO sets the version and features the connection speaks from now on.
    fn negotiate(&mut self, request: &Request) {
        if let Request::Hello {
            max_version,
            features: wanted,
            ..
        } = request
        {
            self.version = (*max_version).min(MAX_VERSION);
            self.features = wanted & SUPPORTED_FEATURES;
        }
    }
}

impl Connection {
    /// Answers a job the server will not execute: a request with SHUTTING_DOWN; a
    /// frame already refused with its own error, which needs no executing. The first
    /// such job ends what a GOAWAY counts.
    fn not_executed(&mut self, job: &Job) {
        let (opcode, status, message) = match &job.op {
            JobOp::Request(r) => (r.opcode(), Status::SHUTTING_DOWN, NOT_EXECUTED_MESSAGE),
            JobOp::Reject {
                opcode,
                status,
                reason,
            } => (*opcode, *status, reason.as_bytes()),
        };
        encode::error(self.output.buf(), opcode, job.reply_to(), status, message);
        self.handled = self.handled.min(self.answered);
        self.answered += 1;
    }
}
