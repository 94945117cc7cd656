//! The `connection` target: a `Connection` driven by a generated list of operations,
//! the way the reactor drives it, with its promises checked after every step.
//!
//! Input layout: five bytes of configuration (output limit, in-flight limit, idle
//! timeout, linger, store memory limit), then operations until the input runs out (see
//! [`Op`]). After every operation the harness calls `poll_jobs` and `poll_shutdown`,
//! as the reactor does, and checks:
//!
//! * **Input is bounded**: bytes are only fed while `wants_read`, and buffered input
//!   never exceeds the frame limit minus one plus the largest read.
//! * **Output is bounded**: no job is handed out while pending output is at or past
//!   `max_output`, so pending output never exceeds `max_output - 1` plus what the jobs
//!   in flight at that moment can add, `max_in_flight` responses of at most one frame.
//! * **In order**: responses come out in the order their jobs were decoded, with the
//!   jobs' ids and opcodes, each one a frame a client with the same limits can parse,
//!   and nothing after a fatal error's frame.
//! * **Split-invariant**: the jobs are a prefix of those an unlimited connection
//!   decodes from every accepted byte in one read, and all of them if the connection
//!   is still open at the end.
//! * **Lifecycle**: the close reason never changes once set, states only move forward,
//!   and a closed connection reads, decodes, writes and schedules nothing.
//! * **Liveness**: `wants_decode` announces every `poll_jobs` call that can make
//!   progress, and at the end, executing and draining everything answers every job.

use super::decode::check_request_limits;
use super::source::Source;
use super::values;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use switchboard::command::{apply, Context};
use switchboard::conn::{CloseReason, ConnLimits, Connection, State};
use switchboard::job::{ConnId, Job, JobOp};
use switchboard::protocol::{Decoder, Flags, Limits, Opcode, RequestId, Response};

/// Most operations per input, so one input cannot run for long.
const MAX_OPS: usize = 512;

/// The connection id every harness uses.
const ID: ConnId = ConnId {
    index: 3,
    generation: 7,
};

/// What one operation does; the tag byte modulo [`Op::COUNT`] picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `bytes`: append raw bytes to what the peer will send.
    PushRaw = 0,
    /// `id u32`, request: append an encoded request to what the peer will send.
    PushRequest = 1,
    /// `n u16`: deliver the next `n` bytes (0 = all) in one read, if `wants_read`.
    Send = 2,
    /// `k u8, batched u8`: answer the next `k` jobs (0 = all), one at a time or in one
    /// completion.
    Execute = 3,
    /// `n u16`: the socket takes `n` bytes of output (0 = all).
    Drain = 4,
    /// `ms u16`: time passes; the timeout fires if it is due.
    Advance = 5,
    /// The peer closed its side.
    PeerClosed = 6,
    /// The server is shutting down.
    Shutdown = 7,
    /// `io u8`: the socket failed.
    Reset = 8,
    /// A timer fired early (spurious wake-ups must be harmless).
    Timeout = 9,
}

impl Op {
    /// How many operations there are.
    pub const COUNT: u8 = 10;

    fn from_tag(tag: u8) -> Op {
        match tag % Op::COUNT {
            0 => Op::PushRaw,
            1 => Op::PushRequest,
            2 => Op::Send,
            3 => Op::Execute,
            4 => Op::Drain,
            5 => Op::Advance,
            6 => Op::PeerClosed,
            7 => Op::Shutdown,
            8 => Op::Reset,
            _ => Op::Timeout,
        }
    }
}

/// Limits and store configuration read from the first five bytes.
pub fn config(src: &mut Source) -> (ConnLimits, u64) {
    let limits = ConnLimits {
        // The smallest frame limit keeps the largest responses small and fast to fuzz.
        protocol: Limits::with_max_frame(Limits::MIN_MAX_FRAME),
        max_output: usize::from(src.u16() % 16_384) + 1,
        max_in_flight: u32::from(src.u8() % 16) + 1,
        idle_timeout: match src.u8() {
            0 => None,
            n => Some(Duration::from_millis(u64::from(n) * 10)),
        },
        linger: Duration::from_millis(u64::from(src.u8()) * 10),
    };
    let max_memory = match src.u8() {
        0 => 0,
        n => u64::from(n) * 256,
    };
    (limits, max_memory)
}

/// Runs the `connection` target on one input.
pub fn check(data: &[u8]) {
    let mut src = Source::new(data);
    let (limits, max_memory) = config(&mut src);
    let mut h = Harness::new(limits, max_memory);
    for _ in 0..MAX_OPS {
        if src.is_empty() {
            break;
        }
        h.op(&mut src);
    }
    h.finish();
}

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
    /// Jobs handed out and not yet answered, in order.
    queued: VecDeque<Job>,
    /// Every job handed out.
    jobs: Vec<Job>,
    /// (id, opcode) of each job whose response the client has not read yet.
    expected: VecDeque<(RequestId, Opcode)>,
    /// Output was thrown away by a reset: answers after it are lost by design.
    reset: bool,
    /// The client read a fatal error frame.
    fatal_seen: bool,
    /// Bytes the client has read and not parsed yet, and its parser.
    wire: BytesMut,
    client: Decoder,
    state: State,
}

impl Harness {
    fn new(limits: ConnLimits, max_memory: u64) -> Harness {
        let now = Instant::now();
        let conn = Connection::new(ID, limits, now);
        Harness {
            state: conn.state(),
            conn,
            ctx: Context::new(limits.protocol, max_memory, 0),
            limits,
            now,
            pending: Vec::new(),
            fed: Vec::new(),
            max_read: 0,
            input_ended: false,
            queued: VecDeque::new(),
            jobs: Vec::new(),
            expected: VecDeque::new(),
            reset: false,
            fatal_seen: false,
            wire: BytesMut::new(),
            client: Decoder::new(limits.protocol.max_frame),
        }
    }

    fn op(&mut self, src: &mut Source) {
        match Op::from_tag(src.u8()) {
            Op::PushRaw => {
                let bytes = src.bytes(usize::MAX);
                self.pending.extend_from_slice(&bytes);
            }
            Op::PushRequest => {
                let id = RequestId(src.u32());
                let request = values::request(src, &self.limits.protocol);
                let mut buf = BytesMut::new();
                request.encode(id, &mut buf);
                self.pending.extend_from_slice(&buf);
            }
            Op::Send => {
                let n = usize::from(src.u16());
                let n = if n == 0 { self.pending.len() } else { n };
                self.send(n.min(self.pending.len()));
            }
            Op::Execute => {
                let k = usize::from(src.u8());
                let batched = src.u8() & 1 == 1;
                let k = if k == 0 { self.queued.len() } else { k };
                self.execute(k.min(self.queued.len()), batched);
            }
            Op::Drain => {
                let n = usize::from(src.u16());
                self.drain(if n == 0 { usize::MAX } else { n });
            }
            Op::Advance => {
                self.now += Duration::from_millis(u64::from(src.u16()));
                if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.conn.handle_timeout(self.now);
                }
            }
            Op::PeerClosed => {
                self.input_ended |= self.conn.state() == State::Open;
                self.conn.handle_peer_closed();
            }
            Op::Shutdown => {
                self.input_ended |= self.conn.state() == State::Open;
                self.conn.handle_shutdown();
            }
            Op::Reset => {
                let reason = if src.u8() & 1 == 0 {
                    CloseReason::Reset
                } else {
                    CloseReason::Io
                };
                if !self.conn.is_closed() {
                    self.reset = true;
                    self.expected.clear();
                }
                self.conn.handle_reset(reason);
            }
            Op::Timeout => self.conn.handle_timeout(self.now),
        }
        self.pump();
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

    /// Answers the next `k` jobs, as a worker or the inline executor would.
    fn execute(&mut self, k: usize, batched: bool) {
        let jobs: Vec<Job> = self.queued.drain(..k).collect();
        if batched {
            let mut out = BytesMut::new();
            for job in &jobs {
                apply(&self.ctx, job, &mut out);
            }
            self.conn.handle_completion(&out, k as u32);
        } else {
            for job in &jobs {
                self.conn.complete(1, |out| apply(&self.ctx, job, out));
            }
        }
    }

    /// The socket takes up to `n` bytes; the client parses what it received.
    fn drain(&mut self, n: usize) {
        let out = self.conn.poll_transmit();
        let n = n.min(out.len());
        self.wire.extend_from_slice(&out[..n]);
        self.conn.advance_transmit(n);
        loop {
            let frame = match self.client.decode(&mut self.wire) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => panic!("the server sent a frame its client cannot read: {e}"),
            };
            assert!(!self.fatal_seen, "a frame after the fatal error frame");
            let response = Response::decode(&frame).expect("the server's responses parse");
            assert_eq!(frame.header.flags, Flags::NONE);
            let (id, opcode) = self.expected.pop_front().expect("a response without a job");
            assert_eq!(
                (response.request_id, response.opcode),
                (id, opcode),
                "responses out of request order"
            );
            self.fatal_seen = response.body.status().is_fatal();
        }
    }

    /// What the reactor does after every event: decode, then maybe shut down.
    fn pump(&mut self) {
        let state = self.conn.state();
        let output = self.conn.poll_transmit().len();
        let wanted = self.conn.wants_decode();
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
            assert_eq!(
                state,
                State::Open,
                "jobs after the connection began closing"
            );
            assert!(
                output < self.limits.max_output,
                "decoded {n} jobs with {output} bytes of output pending (limit {})",
                self.limits.max_output
            );
        }
        for job in new {
            assert_eq!(job.conn, ID);
            let opcode = match &job.op {
                JobOp::Request(request) => {
                    check_request_limits(request, &self.limits.protocol);
                    request.opcode()
                }
                JobOp::Reject { opcode, status, .. } => {
                    assert!(status.is_error());
                    *opcode
                }
            };
            self.expected.push_back((job.id, opcode));
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
        assert!(
            c.buffered_input() < max_frame + self.max_read,
            "{} bytes buffered, frame limit {max_frame}, largest read {}",
            c.buffered_input(),
            self.max_read
        );
        let out_bound = self.limits.max_output - 1 + self.limits.max_in_flight as usize * max_frame;
        assert!(
            c.poll_transmit().len() <= out_bound,
            "{} bytes of output pending, bound {out_bound}",
            c.poll_transmit().len()
        );
        if c.wants_read() && c.state() == State::Open {
            assert!(c.poll_transmit().len() < self.limits.max_output);
            assert!(c.in_flight() < self.limits.max_in_flight);
            assert!(c.buffered_input() < max_frame);
        }
        assert_eq!(
            c.wants_write(),
            !c.is_closed() && !c.poll_transmit().is_empty()
        );

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
            assert!(c.poll_transmit().is_empty() && c.buffered_input() == 0);
            assert!(!c.wants_read() && !c.wants_write());
            assert_eq!(c.poll_timeout(), None);
        }
        self.state = new;
    }

    /// Runs everything to quiescence, then checks liveness, splitting and closing.
    fn finish(mut self) {
        // Each round answers every job and drains all output; a round that decodes no
        // new job ends it. The in-flight limit bounds the jobs per round.
        for _ in 0..100_000 {
            self.execute(self.queued.len(), false);
            self.drain(usize::MAX);
            let before = self.jobs.len();
            self.pump();
            if self.jobs.len() == before {
                break;
            }
        }
        assert!(self.queued.is_empty(), "jobs left undecided");
        if !self.reset {
            assert!(
                self.expected.is_empty(),
                "jobs never answered: {:?}",
                self.expected
            );
            assert!(self.wire.is_empty(), "a partial response frame was left");
        }

        // The same bytes in one read, with no limits in the way, decode to a superset.
        let unlimited = ConnLimits {
            max_output: usize::MAX,
            max_in_flight: u32::MAX,
            idle_timeout: None,
            ..self.limits
        };
        let mut reference = Connection::new(ID, unlimited, self.now);
        let mut all = Vec::new();
        reference.handle_input(self.now, &self.fed);
        reference.poll_jobs(&mut all);
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
            let mut jobs = Vec::new();
            assert_eq!(self.conn.poll_jobs(&mut jobs), 0);
            assert!(!self.conn.poll_shutdown(self.now));
            assert_eq!(self.conn.state(), state);
            assert!(self.conn.poll_transmit().is_empty());
        }
    }
}
