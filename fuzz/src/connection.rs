//! The `connection` target: a `Connection` driven by a generated list of operations,
//! the way the reactor drives it, with its promises checked after every step.
//!
//! Input: a derived `Arbitrary` [`Config`] (output limit, in-flight limit, idle
//! timeout, linger, store memory limit), then up to [`MAX_OPS`] derived [`Op`]s, each
//! after a continuation byte (odd: another operation follows), read with
//! `arbitrary::Unstructured`; see [`parse`]. After every operation the harness calls
//! `poll_jobs` and `poll_shutdown`, as the reactor does, and checks:
//!
//! * **Input is bounded**: bytes are only fed while `wants_read`, and buffered input
//!   never exceeds the frame limit minus one plus the largest read.
//! * **Output is bounded**: no run is handed out while pending output is at or past
//!   `max_output`, and a run stops at its output credit, so pending output never
//!   exceeds `max_output - 1` plus one answer (one frame), plus the short
//!   SHUTTING_DOWN answers a cancellation writes.
//! * **One run at a time**: nothing is handed out while jobs are in flight; jobs given
//!   back unstarted come out again first, unchanged and in order.
//! * **In order**: responses come out in the order their jobs were decoded, with the
//!   jobs' ids and opcodes, each one a frame a client with the same limits can parse,
//!   and nothing after a fatal error's frame.
//! * **GOAWAY is exact**: it comes only after a shutdown, when every job has its
//!   answer, as the last frame; its count covers every answer with an outcome status
//!   (so every request that ran) and none from the first SHUTTING_DOWN on.
//! * **Split-invariant**: the jobs are a prefix of those an unlimited connection
//!   decodes from every accepted byte in one read, and all of them if the connection
//!   is still open at the end.
//! * **Lifecycle**: the close reason never changes once set, states only move forward,
//!   and a closed connection reads, decodes, writes and schedules nothing.
//! * **Authentication**: when the draw requires a token, no request is handed out
//!   before a HELLO carrying it.
//! * **Timers cannot spin**: handling a timeout that `poll_timeout` said was due changes
//!   the state and leaves no deadline at or before that time; a spurious one changes
//!   nothing.
//! * **Liveness**: `wants_decode` announces every `poll_jobs` call that can make
//!   progress, and at the end, executing and draining everything answers every job.

use super::decode::check_request_limits;
use super::values;
use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchboard::auth::TokenCheck;
use switchboard::conn::{CloseReason, ConnLimits, Connection, State};
use switchboard::exec::sink::Answers;
use switchboard::exec::Context;
use switchboard::exec::{self, Batch, Budget, IntoAnswers};
use switchboard::job::{ConnId, Job, JobOp};
use switchboard::protocol::{
    Decoder, Flags, Limits, Opcode, Push, Request, RequestId, Response, Status,
};
use switchboard::stats::Tally;

/// The token a connection requires when the draw asks for authentication.
pub const TOKEN: &[u8] = b"fuzz-token";

/// Most operations per input, so one input cannot run for long.
pub const MAX_OPS: usize = 512;

/// The connection id every harness uses.
const ID: ConnId = ConnId {
    index: 3,
    generation: 7,
};

/// The connection's limits and the store's memory limit, as raw draws.
#[derive(Arbitrary, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `max_output` is this modulo 16,384, plus one.
    pub max_output: u16,
    /// `max_in_flight` is this modulo 16, plus one; with the top bit set, the
    /// connection requires the token [`TOKEN`] (in a HELLO, first).
    pub max_in_flight: u8,
    /// Idle timeout in units of 10 ms; 0 = none.
    pub idle: u8,
    /// Linger in units of 10 ms; the closing timeout is twice the linger plus 50 ms.
    pub linger: u8,
    /// Store memory limit in units of 256 bytes; 0 = none.
    pub memory: u8,
}

impl Config {
    /// The connection limits and the store's memory limit this draw stands for.
    pub fn limits(self) -> (ConnLimits, u64) {
        let limits = ConnLimits {
            // The smallest frame limit keeps the largest responses small and fast to fuzz.
            protocol: Limits::with_max_frame(Limits::MIN_MAX_FRAME),
            max_output: usize::from(self.max_output % 16_384) + 1,
            max_in_flight: u32::from(self.max_in_flight % 16) + 1,
            idle_timeout: match self.idle {
                0 => None,
                n => Some(Duration::from_millis(u64::from(n) * 10)),
            },
            linger: Duration::from_millis(u64::from(self.linger) * 10),
            closing_timeout: Duration::from_millis(u64::from(self.linger) * 20 + 50),
            // From a field the draw already has, so the seeds' layout stays as it is.
            frame_timeout: Some(Duration::from_millis(u64::from(self.linger) * 30 + 100)),
            write_timeout: Some(Duration::from_millis(u64::from(self.linger) * 40 + 200)),
            auth: (self.max_in_flight & 0x80 != 0)
                .then(|| std::sync::Arc::new(TokenCheck::from_token(TOKEN))),
            auth_timeout: Duration::from_millis(u64::from(self.linger) * 50 + 300),
        };
        (limits, u64::from(self.memory) * 256)
    }
}

/// What one step does to the connection, as the reactor, the workers or the peer
/// would.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Append raw bytes to what the peer will send (not delivered yet).
    PushRaw(#[arbitrary(with = values::raw)] Vec<u8>),
    /// Append an encoded request (cut to the frame limits) to what the peer will send.
    PushRequest(RequestId, Request),
    /// Deliver the next `n` bytes (0 = all) in one read, if the connection
    /// `wants_read`.
    Send(u16),
    /// Execute the next `jobs` jobs in flight (0 = all) with the connection's output
    /// credit, on a worker (answers batched) or the network thread; if the credit stops
    /// them, the rest of the run comes back unstarted.
    Execute {
        /// How many jobs.
        jobs: u8,
        /// On a worker: answers in one `Answers` buffer, delivered as one completion.
        batched: bool,
    },
    /// The socket takes `n` bytes of output (0 = all).
    Drain(u16),
    /// Time passes by this many milliseconds; the timeout fires if it is due.
    Advance(u16),
    /// The peer closed its side.
    PeerClosed,
    /// The server is shutting down.
    Shutdown,
    /// The socket failed: `CloseReason::Io` if `io`, else `CloseReason::Reset`.
    Reset {
        /// An I/O error rather than a reset by the peer.
        io: bool,
    },
    /// A timer fired early (spurious wake-ups must be harmless).
    Timeout,
    /// The executor hands the rest of the run back unstarted (a spent budget), or, if
    /// `cancelled`, refuses it because the server stops executing.
    Return {
        /// The server is cancelling work.
        cancelled: bool,
    },
    /// The server stops executing requests (`handle_cancel`).
    Cancel,
    /// The server needs this connection's memory (`handle_evict`).
    Evict,
}

/// Reads an input as the target does: the configuration, then the operations.
pub fn parse(data: &[u8]) -> (Config, Vec<Op>) {
    let mut u = Unstructured::new(data);
    // Integers, enum tags and byte strings read zeros past the end: no error occurs.
    let config = Config::arbitrary(&mut u).unwrap_or_default();
    let ops = u
        .arbitrary_iter::<Op>()
        .expect("an iterator")
        .take(MAX_OPS)
        .map_while(Result::ok)
        .collect();
    (config, ops)
}

/// Runs the `connection` target on one input.
pub fn check(data: &[u8]) {
    let (config, ops) = parse(data);
    run(config, ops);
}

/// Runs the `connection` checks on a parsed input.
pub fn run(config: Config, ops: Vec<Op>) {
    let (limits, max_memory) = config.limits();
    let mut h = Harness::new(limits, max_memory);
    for op in ops {
        h.op(op);
    }
    h.finish();
}

/// Bytes a SHUTTING_DOWN answer takes, at most: what a cancellation may add past the
/// output bound per job.
const NOT_EXECUTED_FRAME: usize = 128;

/// Bytes a GOAWAY takes, at most: what a shutdown may add past the output bound.
const GOAWAY_FRAME: usize = 64;

struct Harness {
    conn: Connection,
    ctx: Context,
    limits: ConnLimits,
    now: Instant,
    /// Bytes the peer has written and the connection has not read yet.
    pending: Vec<u8>,
    /// Every byte the connection accepted, in order.
    fed: Vec<u8>,
    /// Largest single read delivered.
    max_read: usize,
    /// The peer's EOF or the server's shutdown was delivered while open.
    input_ended: bool,
    /// Jobs in flight (handed out, not yet answered or given back), in order.
    queued: VecDeque<Job>,
    /// Jobs given back unstarted, which the connection holds: its next run starts
    /// with exactly these.
    held: VecDeque<Job>,
    /// Every job decoded, in order (a held job counts once).
    jobs: Vec<Job>,
    /// (id, opcode) of each job whose response the client has not read yet.
    expected: VecDeque<(RequestId, Opcode)>,
    /// Output was thrown away by a reset, a timeout or an eviction: answers after it
    /// are lost by design.
    lost: bool,
    /// Bytes a cancellation's SHUTTING_DOWN answers may add past the output bound.
    allowance: usize,
    /// The client read a fatal error frame.
    fatal_seen: bool,
    /// The server's shutdown was delivered.
    shutdown: bool,
    /// Responses the client has read; how many came before the first SHUTTING_DOWN;
    /// and how many up to the last with an outcome status (the last request that
    /// certainly ran).
    responses: u64,
    executed: u64,
    last_outcome: u64,
    /// The client read the GOAWAY.
    goaway_seen: bool,
    /// Bytes the client has read and not parsed yet, and its parser.
    wire: BytesMut,
    client: Decoder,
    state: State,
    /// A HELLO with the token was handed out (when one is required).
    authenticated: bool,
}

impl Harness {
    fn new(limits: ConnLimits, max_memory: u64) -> Harness {
        let now = Instant::now();
        let conn = Connection::new(ID, limits.clone(), now);
        Harness {
            state: conn.state(),
            conn,
            ctx: Context::new(limits.protocol, max_memory, 0),
            client: Decoder::new(limits.protocol.max_frame),
            limits,
            now,
            pending: Vec::new(),
            fed: Vec::new(),
            max_read: 0,
            input_ended: false,
            queued: VecDeque::new(),
            held: VecDeque::new(),
            jobs: Vec::new(),
            expected: VecDeque::new(),
            lost: false,
            allowance: 0,
            fatal_seen: false,
            shutdown: false,
            responses: 0,
            executed: 0,
            last_outcome: 0,
            goaway_seen: false,
            authenticated: false,
            wire: BytesMut::new(),
        }
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::PushRaw(bytes) => self.pending.extend_from_slice(&bytes),
            Op::PushRequest(id, request) => {
                let request = values::fit(request, &self.limits.protocol);
                let mut buf = BytesMut::new();
                request.encode(id, &mut buf);
                self.pending.extend_from_slice(&buf);
            }
            Op::Send(n) => {
                let n = usize::from(n);
                let n = if n == 0 { self.pending.len() } else { n };
                self.send(n.min(self.pending.len()));
            }
            Op::Execute { jobs, batched } => {
                let k = usize::from(jobs);
                let k = if k == 0 { self.queued.len() } else { k };
                self.execute(k.min(self.queued.len()), batched);
            }
            Op::Drain(n) => {
                let n = usize::from(n);
                self.drain(if n == 0 { usize::MAX } else { n });
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.fire_due_timers();
            }
            Op::PeerClosed => {
                self.input_ended |= self.conn.state() == State::Open;
                self.conn.handle_peer_closed();
            }
            Op::Shutdown => {
                self.input_ended |= self.conn.state() == State::Open;
                if !self.shutdown {
                    self.allowance += GOAWAY_FRAME;
                }
                self.shutdown = true;
                self.conn.handle_shutdown();
            }
            Op::Reset { io } => {
                let reason = if io {
                    CloseReason::Io
                } else {
                    CloseReason::Reset
                };
                if !self.conn.is_closed() {
                    self.lose_output();
                }
                self.conn.handle_reset(reason);
            }
            Op::Timeout => {
                // Spurious unless something is due; then it must make progress.
                if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.fire_due_timers();
                } else {
                    let state = self.conn.state();
                    self.conn.handle_timeout(self.now);
                    assert_eq!(self.conn.state(), state, "a timeout fired early");
                }
            }
            Op::Return { cancelled } => {
                // An executor refuses work only once the server has cancelled it, which
                // it does on every connection first.
                if cancelled && !self.ctx.cancel.load(Ordering::Relaxed) {
                    self.cancel();
                }
                let jobs: Vec<Job> = self.queued.drain(..).collect();
                let cancelled = self.ctx.cancel.load(Ordering::Relaxed);
                self.give_back(jobs, cancelled);
            }
            Op::Cancel => self.cancel(),
            Op::Evict => {
                if self.conn.evictable() {
                    // A frame the client has started to receive is completed; every
                    // other answer is dropped, and the reason comes last.
                    let in_progress = if self.wire.is_empty() {
                        None
                    } else {
                        self.expected.front().copied()
                    };
                    self.lost = true;
                    self.expected.clear();
                    self.expected.extend(in_progress);
                    self.expected.push_back((RequestId(0), Opcode(0)));
                    self.held.clear();
                }
                self.conn.handle_evict(self.now);
            }
        }
        self.pump();
    }

    /// Everything owed so far is thrown away: the client's expectations end here.
    fn lose_output(&mut self) {
        self.lost = true;
        self.expected.clear();
        self.wire.clear();
        self.client = Decoder::new(self.limits.protocol.max_frame);
    }

    /// Fires the timers due now, checking that doing so makes progress.
    fn fire_due_timers(&mut self) {
        let Some(at) = self.conn.poll_timeout() else {
            return;
        };
        if at > self.now {
            return;
        }
        let state = self.conn.state();
        let had_output = self.conn.pending_output() > 0;
        self.conn.handle_timeout(self.now);
        assert_ne!(self.conn.state(), state, "a due timer changed nothing");
        assert!(
            self.conn.poll_timeout().is_none_or(|t| t > self.now),
            "a deadline at or before now survived its timeout"
        );
        if self.conn.is_closed() && had_output {
            self.lose_output();
        }
    }

    /// One read of `n` bytes, if the reactor would read now.
    fn send(&mut self, n: usize) {
        if n == 0 || !self.conn.wants_read() {
            return;
        }
        let chunk: Vec<u8> = self.pending.drain(..n).collect();
        let accepted = self.conn.state() == State::Open && !self.input_ended;
        let before = self.conn.buffered_input();
        self.conn.handle_input(self.now, &chunk);
        if accepted {
            self.fed.extend_from_slice(&chunk);
            self.max_read = self.max_read.max(n);
            assert_eq!(
                self.conn.buffered_input(),
                before + n,
                "a read was not kept"
            );
        } else {
            assert_eq!(
                self.conn.buffered_input(),
                before,
                "input taken while not open"
            );
        }
    }

    /// Executes the next `k` jobs in flight, as a worker (`batched`) or the reactor
    /// would, with the connection's output credit. If the credit stops them, the rest
    /// of the run comes back unstarted, as an executor returns it.
    fn execute(&mut self, k: usize, batched: bool) {
        if k == 0 {
            return;
        }
        let mut batch = Batch::default();
        batch.jobs.extend(self.queued.drain(..k));
        batch.end_run(ID, 0, self.conn.output_credit());
        let mut tally = Tally::default();
        let mut budget = Budget::UNLIMITED;
        if batched {
            let mut answers = Answers::default();
            exec::run_batch(
                &self.ctx,
                &mut batch,
                &mut IntoAnswers(&mut answers),
                &mut budget,
                &mut tally,
                &mut Vec::new(),
            );
            for (span, base, bytes, shared) in answers.iter() {
                assert_eq!(span.conn, ID);
                self.conn
                    .handle_answers(self.now, span.answered, bytes, shared, base);
            }
        } else {
            let mut route = exec::IntoConnection {
                conn: &mut self.conn,
                discard: Default::default(),
                now: self.now,
            };
            exec::run_batch(
                &self.ctx,
                &mut batch,
                &mut route,
                &mut budget,
                &mut tally,
                &mut Vec::new(),
            );
        }
        if !batch.is_empty() {
            // The run stopped at its credit: everything after comes back too.
            let mut rest: Vec<Job> = std::mem::take(&mut batch.jobs);
            rest.extend(self.queued.drain(..));
            // After a cancel nothing starts, and what comes back is refused.
            let cancelled = self.ctx.cancel.load(Ordering::Relaxed);
            self.give_back(rest, cancelled);
        }
    }

    /// Jobs in flight come back unstarted (the whole rest of the run).
    fn give_back(&mut self, jobs: Vec<Job>, cancelled: bool) {
        assert!(self.queued.is_empty(), "only a run's tail comes back");
        let keeps = !self.conn.is_closed() && self.conn.takes_answers();
        if keeps && !cancelled {
            self.held.extend(jobs.iter().cloned());
        }
        if cancelled && keeps {
            self.allowance += jobs.len() * NOT_EXECUTED_FRAME;
        }
        self.conn.handle_unrun(&mut jobs.into_iter(), cancelled);
        if !keeps || cancelled {
            self.held.clear();
        }
        assert_eq!(
            self.conn.held(),
            self.held.len(),
            "held jobs lost or invented"
        );
    }

    /// The server stops executing: held jobs and whole buffered frames are answered
    /// without running, exactly as an unlimited connection would have decoded them.
    fn cancel(&mut self) {
        let open = self.conn.state() == State::Open && self.conn.takes_answers();
        let answering = matches!(self.conn.state(), State::Open | State::Closing(_))
            && self.conn.takes_answers();
        if answering {
            self.allowance += self.held.len() * NOT_EXECUTED_FRAME;
            self.held.clear();
        }
        if open {
            // The frames still buffered: those an unlimited connection decodes from
            // every accepted byte beyond the jobs already handed out.
            let all = self.reference_jobs();
            for job in all.into_iter().skip(self.jobs.len()) {
                self.allowance += NOT_EXECUTED_FRAME
                    + match &job.op {
                        JobOp::Reject { reason, .. } => reason.len(),
                        JobOp::Request(_) => 0,
                    };
                self.expected.push_back((job.id, opcode_of(&job)));
                self.jobs.push(job);
            }
            self.input_ended = true;
        }
        self.conn.handle_cancel(self.now);
        self.ctx.cancel.store(true, Ordering::Relaxed);
        if answering && self.conn.in_flight() == 0 {
            assert_eq!(self.conn.held(), 0, "held jobs not answered after a cancel");
        }
    }

    /// The jobs an unlimited connection decodes from every accepted byte in one read.
    fn reference_jobs(&self) -> Vec<Job> {
        let unlimited = ConnLimits {
            max_output: usize::MAX,
            max_in_flight: u32::MAX,
            idle_timeout: None,
            frame_timeout: None,
            write_timeout: None,
            ..self.limits.clone()
        };
        let mut reference = Connection::new(ID, unlimited, self.now);
        let mut all = Vec::new();
        reference.handle_input(self.now, &self.fed);
        reference.poll_jobs(&mut all);
        all
    }

    /// The socket takes up to `n` bytes; the client parses what it received.
    fn drain(&mut self, n: usize) {
        let out = self.conn.poll_transmit();
        let n = n.min(out.len());
        self.wire.extend_from_slice(&out[..n]);
        self.conn.advance_transmit(self.now, n);
        loop {
            let frame = match self.client.decode(&mut self.wire) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => panic!("the server sent a frame its client cannot read: {e}"),
            };
            assert!(!self.fatal_seen, "a frame after the fatal error frame");
            assert!(!self.goaway_seen, "a frame after the GOAWAY");
            if frame.header.flags.contains(Flags::PUSH) {
                let push = Push::decode(&frame).expect("the server's pushes parse");
                let Push::GoAway { count, .. } = push else {
                    panic!("a push other than GOAWAY without subscriptions: {push:?}");
                };
                assert!(self.shutdown, "a GOAWAY without a shutdown");
                assert!(
                    self.expected.is_empty(),
                    "a GOAWAY before every answer: {:?}",
                    self.expected
                );
                assert!(
                    (self.last_outcome..=self.executed).contains(&count),
                    "the GOAWAY's count {count}: answers up to {} ran, and from {} on not",
                    self.last_outcome,
                    self.executed + 1
                );
                self.goaway_seen = true;
                continue;
            }
            let response = Response::decode(&frame).expect("the server's responses parse");
            assert_eq!(frame.header.flags, Flags::NONE);
            let (id, opcode) = self.expected.pop_front().expect("a response without a job");
            assert_eq!(
                (response.request_id, response.opcode),
                (id, opcode),
                "responses out of request order"
            );
            let status = response.body.status();
            self.fatal_seen = status.is_fatal();
            self.responses += 1;
            if self.executed + 1 == self.responses && status != Status::SHUTTING_DOWN {
                self.executed = self.responses;
            }
            if !status.is_error() {
                self.last_outcome = self.responses;
            }
            if status == Status::SHUTTING_DOWN {
                assert!(
                    self.ctx.cancel.load(Ordering::Relaxed),
                    "SHUTTING_DOWN before a cancel"
                );
            }
        }
    }

    /// What the reactor does after every event: hand out a run, then maybe shut down.
    fn pump(&mut self) {
        let state = self.conn.state();
        let output = self.conn.pending_output();
        let wanted = self.conn.wants_decode();
        let in_flight = self.conn.in_flight();
        let mut new = Vec::new();
        let n = self.conn.poll_jobs(&mut new);
        assert_eq!(n, new.len());
        // The reactor only calls poll_jobs on new input or when wants_decode says so:
        // any progress it can make must have been announced.
        assert!(
            wanted || (n == 0 && self.conn.state() == state),
            "poll_jobs made progress that wants_decode did not announce"
        );
        if n > 0 {
            assert_eq!(in_flight, 0, "a run handed out while another was in flight");
            assert!(
                output < self.limits.max_output,
                "a run handed out with {output} bytes of output pending (limit {})",
                self.limits.max_output
            );
        }
        // The held jobs come out first, as they were.
        let held = self.held.len().min(new.len());
        for job in self.held.drain(..held) {
            assert_eq!(Some(&job), new.first(), "a held job changed or moved");
            new.remove(0);
            self.queued.push_back(job);
        }
        if !new.is_empty() {
            assert_eq!(
                state,
                State::Open,
                "frames decoded after the connection began closing"
            );
        }
        for job in new {
            assert_eq!(job.conn, ID);
            let opcode = match &job.op {
                JobOp::Request(request) => {
                    check_request_limits(request, &self.limits.protocol);
                    // With a token required, nothing runs before a HELLO carrying it.
                    if self.limits.auth.is_some() && !self.authenticated {
                        assert!(
                            matches!(request, Request::Hello { token, .. } if &token[..] == TOKEN),
                            "{request:?} handed out before authentication"
                        );
                        self.authenticated = true;
                    }
                    request.opcode()
                }
                JobOp::Reject { opcode, status, .. } => {
                    assert!(status.is_error());
                    *opcode
                }
            };
            if !self.lost || self.conn.takes_answers() {
                self.expected.push_back((job.id, opcode));
            }
            self.queued.push_back(job.clone());
            self.jobs.push(job);
        }
        if self.conn.poll_shutdown(self.now) {
            assert!(matches!(self.conn.state(), State::Lingering(..)));
        }
        self.check();
    }

    fn check(&mut self) {
        let c = &self.conn;
        let max_frame = self.limits.protocol.max_frame as usize;
        assert_eq!(c.in_flight() as usize, self.queued.len());
        assert!(c.in_flight() <= self.limits.max_in_flight);
        let cancelled = self.ctx.cancel.load(Ordering::Relaxed);
        assert!(
            c.held() == 0 || c.in_flight() == 0 || cancelled,
            "held jobs beside a run in flight"
        );
        assert!(
            c.buffered_input() < max_frame + self.max_read,
            "{} bytes buffered, frame limit {max_frame}, largest read {}",
            c.buffered_input(),
            self.max_read
        );
        let out_bound = self.limits.max_output - 1 + max_frame + self.allowance;
        assert!(
            c.pending_output() <= out_bound,
            "{} bytes of output pending, bound {out_bound}",
            c.pending_output()
        );
        if c.wants_read() && c.state() == State::Open {
            assert!(c.pending_output() < self.limits.max_output);
            assert!(c.buffered_input() < max_frame);
        }
        assert_eq!(c.wants_write(), !c.is_closed() && c.pending_output() > 0);

        let (old, new) = (self.state, c.state());
        let forward = match (old, new) {
            (State::Open, _) => true,
            (State::Closing(a), State::Closing(b) | State::Closed(b)) => a == b,
            (State::Closing(a), State::Lingering(b, _)) => a == b,
            (State::Lingering(a, t), State::Lingering(b, u)) => a == b && t == u,
            (State::Lingering(a, _), State::Closed(b)) => a == b,
            (State::Closed(a), State::Closed(b)) => a == b,
            _ => false,
        };
        assert!(forward, "state went from {old:?} to {new:?}");
        if let State::Lingering(_, until) = new {
            assert_eq!(c.poll_timeout(), Some(until));
        }
        if c.is_closed() {
            assert!(c.pending_output() == 0 && c.buffered_input() == 0 && c.held() == 0);
            assert!(!c.wants_read() && !c.wants_write());
            assert_eq!(c.poll_timeout(), None);
        }
        self.state = new;
    }

    /// Runs everything to quiescence, then checks liveness, splitting and closing.
    fn finish(mut self) {
        // Each round answers every job and drains all output; a round that hands out
        // no new job ends it. The in-flight limit bounds the jobs per round.
        for _ in 0..100_000 {
            self.execute(self.queued.len(), false);
            self.drain(usize::MAX);
            let before = (self.jobs.len(), self.queued.len());
            self.pump();
            if (self.jobs.len(), self.queued.len()) == before && self.queued.is_empty() {
                break;
            }
        }
        assert!(self.queued.is_empty(), "jobs left undecided");
        if !self.lost {
            assert!(
                self.expected.is_empty(),
                "jobs never answered: {:?}",
                self.expected
            );
            assert!(self.wire.is_empty(), "a partial response frame was left");
        }

        // The same bytes in one read, with no limits in the way, decode to a superset.
        let all = self.reference_jobs();
        assert!(
            self.jobs.len() <= all.len() && self.jobs[..] == all[..self.jobs.len()],
            "splitting the input changed the jobs"
        );
        if self.conn.state() == State::Open {
            assert_eq!(
                self.jobs.len(),
                all.len(),
                "an open connection held jobs back"
            );
        }

        // Once closed, nothing moves.
        if self.conn.is_closed() {
            let state = self.conn.state();
            self.pending.extend_from_slice(&self.fed);
            let n = self.pending.len();
            self.conn.handle_input(self.now, &self.pending[..n]);
            self.conn.handle_peer_closed();
            self.conn.handle_shutdown();
            self.conn
                .handle_timeout(self.now + Duration::from_secs(3600));
            self.conn.handle_reset(CloseReason::Io);
            self.conn.handle_cancel(self.now);
            self.conn.handle_evict(self.now);
            let mut jobs = Vec::new();
            assert_eq!(self.conn.poll_jobs(&mut jobs), 0);
            assert!(!self.conn.poll_shutdown(self.now));
            assert_eq!(self.conn.state(), state);
            assert_eq!(self.conn.pending_output(), 0);
        }
    }
}

fn opcode_of(job: &Job) -> Opcode {
    match &job.op {
        JobOp::Request(r) => r.opcode(),
        JobOp::Reject { opcode, .. } => *opcode,
    }
}
