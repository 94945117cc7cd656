//! One generator thread: a mio event loop over its share of the connections.
//!
//! Each iteration of the loop (1) dispatches every request that is due (open loop) or
//! every free pipeline slot (closed loop), encoding into the connections' write
//! buffers, (2) writes each buffer with one `write` call, (3) reads the clock again
//! and, when the next send fell due during the writes, polls without blocking and
//! goes round again; otherwise makes sure a timerfd is armed for the next due send
//! (and one for the send after it), and (4) polls, draining every readable socket and
//! judging each response. Setting a timer is the dearest step of a wait, so a
//! deadline already set is never set again, and when responses are already waiting
//! they are read before any timer is set. Buffers are sized at set-up (and grow only
//! when a value larger than any before arrives), so the steady state allocates
//! nothing: requests are encoded in place, responses parsed in place, and histograms
//! are fixed arrays.

use crate::clock::{now_ns, Timers};
use crate::proto::{self, Protocol, Req, Verdict};
use crate::schedule::{Schedule, Stop};
use crate::workload::{KeyDist, KeyPicker, Mix, Op, Ring, Rng, ValueSize};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// Everything the threads share and never change.
#[derive(Debug)]
pub struct Plan {
    pub proto: Protocol,
    pub mix: Mix,
    pub key_dist: KeyDist,
    pub keys: u64,
    pub value_size: ValueSize,
    pub pipeline: usize,
    pub timeout_ns: u64,
    pub warmup_ns: u64,
    pub stop: Stop,
    /// Offered rate in requests per second; `None` runs closed-loop.
    pub rate: Option<f64>,
    pub threads: usize,
    pub ring: Ring,
    pub seed: u64,
    /// Re-open lost connections instead of running on without them.
    pub reconnect: bool,
    /// Server addresses, by server index.
    pub addrs: Vec<SocketAddr>,
}

/// Numbers shared with the progress printer; threads add to them about once a second.
#[derive(Debug)]
pub struct Progress {
    /// Responses so far, warm-up included.
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    /// Corrected response times (ns) of measured requests so far.
    pub latency: Mutex<Histogram<u64>>,
    /// Set on SIGINT or SIGTERM: stop sending, drain what is in flight, report.
    pub interrupted: Arc<AtomicBool>,
}

impl Progress {
    pub fn new(interrupted: Arc<AtomicBool>) -> Progress {
        Progress {
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(new_histogram()),
            interrupted,
        }
    }
}

/// Where the threads agree on the run's start time, once all are set up: sends due
/// in the first milliseconds would otherwise be charged with the threads' start-up.
#[derive(Debug)]
pub struct StartLine {
    barrier: Barrier,
    at: AtomicU64,
}

impl StartLine {
    pub fn new(threads: usize) -> StartLine {
        StartLine {
            barrier: Barrier::new(threads),
            at: AtomicU64::new(0),
        }
    }

    /// Blocks until every thread has arrived; returns the common start time.
    fn wait(&self) -> u64 {
        if self.barrier.wait().is_leader() {
            self.at.store(now_ns(), Ordering::SeqCst);
        }
        // Second rendezvous: nobody reads the start before the leader has written it.
        self.barrier.wait();
        self.at.load(Ordering::SeqCst)
    }
}

/// Nanosecond histogram from 1 ns to one hour at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// A response whose request id matches no request in flight.
    pub wrong_id: u64,
    /// A status (or layout) the request does not allow.
    pub wrong_status: u64,
    /// A GET value that is not the one derived from its key.
    pub wrong_value: u64,
    /// No response within `--timeout`.
    pub timeout: u64,
    /// The connection failed or closed with the request in flight.
    pub connection: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.wrong_id + self.wrong_status + self.wrong_value + self.timeout + self.connection
    }

    pub fn add(&mut self, o: &ErrorCounts) {
        self.wrong_id += o.wrong_id;
        self.wrong_status += o.wrong_status;
        self.wrong_value += o.wrong_value;
        self.timeout += o.timeout;
        self.connection += o.connection;
    }
}

#[derive(Clone, Copy, Debug)]
enum Failure {
    WrongId,
    WrongStatus,
    WrongValue,
    Timeout,
    Connection,
}

/// What one thread measured.
#[derive(Debug)]
pub struct ThreadResult {
    /// Response time from the intended send time (ns).
    pub corrected: Histogram<u64>,
    /// Response time from the actual send time (ns).
    pub service: Histogram<u64>,
    /// Actual minus intended send time (ns).
    pub lag: Histogram<u64>,
    /// Lag of sends that did not wait for a pipeline slot: the generator's own delay.
    pub generator_lag: Histogram<u64>,
    /// Measured requests answered without error (misses included).
    pub ops: u64,
    /// Measured requests sent.
    pub sent: u64,
    /// Measured requests this thread's schedule offered (open loop).
    pub offered: u64,
    pub misses: u64,
    pub cas_conflicts: u64,
    pub errors: ErrorCounts,
    /// Errors during the warm-up (not in `errors`, but still a failed check).
    pub warmup_errors: u64,
    /// Every request answered, warm-up included (for CPU per request).
    pub answered_all: u64,
    /// Measured sends that had to wait because every slot was busy.
    pub slot_waits: u64,
    /// First measured send's intended time and last measured response, ns since start.
    pub window: Option<(u64, u64)>,
    pub per_op: [u64; 5],
    /// The first wrong response seen, for the report.
    pub first_error: Option<String>,
    /// Why the thread stopped before its share was done, if it did.
    pub gave_up: Option<String>,
    /// Connections re-opened after a loss (--reconnect).
    pub reconnects: u64,
}

/// One request on the wire.
#[derive(Clone, Copy, Debug)]
struct Flight {
    id: u32,
    req: Req,
    intended: u64,
    sent: u64,
    measured: bool,
}

/// One connection and its buffers.
struct Conn {
    stream: TcpStream,
    server: usize,
    /// Encoded requests not yet written; `wpos` bytes of it are already on the wire.
    wbuf: BytesMut,
    wpos: usize,
    /// Received bytes; `rbuf[rstart..rend]` is not yet parsed.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    inflight: VecDeque<Flight>,
    next_id: u32,
    alive: bool,
    /// With --reconnect: when a lost connection is tried again, and since when a
    /// connect has been under way.
    retry_at: Option<u64>,
    connecting_since: Option<u64>,
    backoff_ns: u64,
}

const TIMERS: [Token; 2] = [Token(usize::MAX - 1), Token(usize::MAX - 2)];
/// First wait before re-opening a lost connection; doubles per failure up to the max.
const RECONNECT_MIN_NS: u64 = 100_000_000;
const RECONNECT_MAX_NS: u64 = 2_000_000_000;
/// How often timeouts are checked and progress is published.
const HOUSEKEEPING_NS: u64 = 10_000_000;
const PUBLISH_NS: u64 = 250_000_000;
/// Versions remembered for CAS: direct-mapped, so memory is fixed whatever `--keys`.
const VERSION_SLOTS: usize = 1 << 14;

/// How the loop waits before its next pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// A send is due already: take what the sockets have without blocking, then send.
    Now,
    /// The next send is due at this time and no timer is armed for it: arm one
    /// (unless a response turns up first) and block.
    ArmAt(u64),
    /// Block: a timer is already armed for the next send, or no send waits on the
    /// clock (closed loop, a send waiting for a slot, or nothing left to send).
    Block,
}

/// The wait for a loop pass, given the next send's due time, the time now and whether
/// a timer is armed for that due time already. A due time already past never sleeps,
/// and a deadline already set is not set again.
fn wait_for(next_due: Option<u64>, now: u64, armed: bool) -> Wait {
    match next_due {
        Some(due) if due <= now => Wait::Now,
        Some(due) if !armed => Wait::ArmAt(due),
        _ => Wait::Block,
    }
}

/// The thread's loop and state.
struct Engine<'a> {
    plan: &'a Plan,
    conns: Vec<Conn>,
    by_server: Vec<Vec<usize>>,
    rr: Vec<usize>,
    rng: Rng,
    picker: KeyPicker,
    scratch: Vec<u8>,
    schedule: Option<Schedule>,
    /// Next owned send of the schedule not yet dispatched (open loop).
    next_k: Option<u64>,
    /// The head of the queue: chosen, not yet sent (kept while it waits for a slot).
    head: Option<Req>,
    /// Last time the head found every slot of its server busy.
    last_blocked: u64,
    /// True from the moment the queue blocks on busy slots until it has caught up
    /// with the schedule: sends in between are late because of the server.
    draining: bool,
    /// Closed loop: measured sends left (requests mode).
    closed_left: u64,
    versions: Vec<(u64, u64)>,
    server_lost: bool,
    registry: mio::Registry,
    /// Largest a read buffer may grow to.
    rbuf_max: usize,
    max_response: usize,
    start: u64,
    dirty: Vec<usize>,
    /// Requests in flight over all connections, and connections alive: kept as counts
    /// so that the loop does not visit every connection on each pass.
    inflight: usize,
    alive: usize,
    res: ThreadResult,
    publish_corrected: Histogram<u64>,
    published_ops: u64,
    published_errors: u64,
}

/// Runs one thread until its share of the run is done, and returns what it measured.
pub fn run_thread(
    plan: &Plan,
    thread: usize,
    streams: Vec<(std::net::TcpStream, usize)>,
    servers: usize,
    start: &StartLine,
    progress: &Progress,
) -> io::Result<ThreadResult> {
    crate::clock::tighten_timer_slack();
    let setup = set_up(plan, thread, streams, servers);
    // Every thread reaches the start line, even one whose set-up failed, so that no
    // other thread waits for it forever. Only now does the clock start.
    let start_ns = start.wait();
    let (mut e, mut poll, mut timers) = setup?;
    e.start = start_ns;
    e.run(&mut poll, &mut timers, progress)?;
    e.publish(progress);
    Ok(e.res)
}

/// Registers the connections and allocates every buffer the run will use.
fn set_up(
    plan: &Plan,
    thread: usize,
    streams: Vec<(std::net::TcpStream, usize)>,
    servers: usize,
) -> io::Result<(Engine<'_>, Poll, Timers)> {
    let poll = Poll::new()?;
    let timers = Timers::new()?;
    timers.register(poll.registry(), TIMERS)?;
    // Any value an earlier run wrote may come back, so responses are bounded by the
    // protocol's value limit, not by this run's --value-size; buffers start sized for
    // this run and grow only if a larger value actually arrives.
    let max_response = plan.proto.max_response(proto::MAX_VALUE);
    let rbuf_len = (2 * plan.proto.max_response(plan.value_size.max)).max(64 * 1024);
    let max_request = plan.value_size.max + 128;
    let mut conns = Vec::with_capacity(streams.len());
    let mut by_server = vec![Vec::new(); servers];
    for (i, (s, server)) in streams.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        by_server[server].push(i);
        conns.push(Conn {
            stream,
            server,
            // Room for a typical batch up front; larger values grow it once, and
            // clear() keeps the capacity, so the steady state does not allocate.
            wbuf: BytesMut::with_capacity((plan.pipeline * max_request).min(256 * 1024)),
            wpos: 0,
            rbuf: vec![0; rbuf_len],
            rstart: 0,
            rend: 0,
            inflight: VecDeque::with_capacity(plan.pipeline),
            next_id: 1,
            alive: true,
            retry_at: None,
            connecting_since: None,
            backoff_ns: RECONNECT_MIN_NS,
        });
    }
    let schedule = plan
        .rate
        .map(|r| Schedule::new(r, plan.warmup_ns, plan.stop, thread, plan.threads));
    let closed_left = match (plan.rate, plan.stop) {
        (None, Stop::Requests(n)) => {
            let t = plan.threads as u64;
            n / t + u64::from(n % t > thread as u64)
        }
        _ => u64::MAX,
    };
    let n_conns = conns.len();
    let e = Engine {
        plan,
        conns,
        by_server,
        rr: vec![0; servers],
        rng: Rng::new(plan.seed ^ crate::workload::mix64(thread as u64 + 1)),
        picker: KeyPicker::new(&plan.key_dist, plan.keys, thread, plan.threads),
        scratch: Vec::with_capacity(plan.value_size.max),
        next_k: schedule.as_ref().and_then(Schedule::first),
        schedule,
        head: None,
        last_blocked: 0,
        draining: false,
        closed_left,
        versions: vec![(u64::MAX, 0); VERSION_SLOTS],
        server_lost: false,
        registry: poll.registry().try_clone()?,
        rbuf_max: 2 * max_response,
        max_response,
        start: 0,
        dirty: Vec::with_capacity(n_conns),
        inflight: 0,
        alive: n_conns,
        res: ThreadResult {
            corrected: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            generator_lag: new_histogram(),
            ops: 0,
            sent: 0,
            offered: schedule.map_or(0, |s| s.measured_for_thread()),
            misses: 0,
            cas_conflicts: 0,
            errors: ErrorCounts::default(),
            warmup_errors: 0,
            answered_all: 0,
            slot_waits: 0,
            window: None,
            per_op: [0; 5],
            first_error: None,
            gave_up: None,
            reconnects: 0,
        },
        publish_corrected: new_histogram(),
        published_ops: 0,
        published_errors: 0,
    };
    Ok((e, poll, timers))
}

impl Engine<'_> {
    /// Time after which no more requests are dispatched.
    fn dispatch_deadline(&self) -> u64 {
        let p = self.plan;
        match (&self.schedule, p.stop) {
            (Some(s), _) => self.start + s.last_due_ns() + p.timeout_ns,
            (None, Stop::Duration(d)) => self.start + p.warmup_ns + d,
            (None, Stop::Requests(_)) => u64::MAX,
        }
    }

    fn run(&mut self, poll: &mut Poll, timers: &mut Timers, progress: &Progress) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut deadline = self.dispatch_deadline();
        let mut next_housekeeping = now_ns() + HOUSEKEEPING_NS;
        let mut next_publish = now_ns() + PUBLISH_NS;
        let mut stalled_since = now_ns();
        let mut answered_seen = 0;
        loop {
            let now = now_ns();
            let more = now < deadline && self.dispatch(now);
            self.flush();
            if now >= next_housekeeping {
                self.expire(now);
                if self.plan.reconnect {
                    self.reconnect(now)?;
                }
                next_housekeeping = now + HOUSEKEEPING_NS;
                if deadline > now && progress.interrupted.load(Ordering::Relaxed) {
                    deadline = now;
                    self.res.gave_up = Some("interrupted; the report covers what was sent".into());
                }
            }
            if now >= next_publish {
                self.publish(progress);
                next_publish = now + PUBLISH_NS;
            }
            debug_assert_eq!(
                self.inflight,
                self.conns.iter().map(|c| c.inflight.len()).sum::<usize>()
            );
            if !self.plan.reconnect && self.alive == 0 {
                self.res.gave_up = Some("every connection of this thread was lost".into());
                break;
            }
            // With --reconnect a server that accepts and then drops every connection
            // would be retried forever: give up once requests have waited a whole
            // timeout without a single answer.
            let waiting = self.inflight > 0 || self.head.is_some();
            if !waiting || self.res.answered_all != answered_seen {
                stalled_since = now;
                answered_seen = self.res.answered_all;
            } else if self.plan.reconnect && now - stalled_since > self.plan.timeout_ns {
                let why = format!(
                    "no answer for {:?} while connections were being re-opened",
                    Duration::from_nanos(self.plan.timeout_ns)
                );
                // What is still in flight will not be answered: count it as failed.
                for ci in 0..self.conns.len() {
                    self.kill(ci, &why);
                }
                self.res.gave_up = Some(why);
                break;
            }
            if !more && self.inflight == 0 {
                break;
            }
            // Wake for the next due send (timerfd, µs precision) and in any case for
            // housekeeping; epoll's ms-rounded timeout is only that coarse backstop.
            // The clock is read afresh: the writes above take long enough for the next
            // send to fall due meanwhile, and setting a timer for a time already past
            // costs a timer interrupt for nothing.
            let next = if more { self.next_dues() } else { None };
            let armed = next.is_some_and(|(due, _)| timers.armed_for(due));
            let wait = wait_for(next.map(|(due, _)| due), now_ns(), armed);
            if let Wait::ArmAt(due) = wait {
                // Setting the earliest timer reprograms the CPU's timer hardware, which
                // costs far more than a look at the sockets: when responses are already
                // waiting, read them first and decide again with the clock after.
                if !self.poll_once(poll, &mut events, Duration::ZERO, timers)? {
                    continue;
                }
                if now_ns() >= due {
                    continue;
                }
            }
            if let (Wait::ArmAt(_) | Wait::Block, Some((due, then))) = (wait, next) {
                // The send after it too, while this one's deadline is pending (see
                // `Timers`); deadlines already set are not set again.
                timers.arm(due, then)?;
            }
            let timeout = match wait {
                Wait::Now => Duration::ZERO,
                Wait::ArmAt(_) | Wait::Block => {
                    Duration::from_nanos(next_housekeeping.saturating_sub(now).max(1_000_000))
                }
            };
            self.poll_once(poll, &mut events, timeout, timers)?;
        }
        Ok(())
    }

    /// Due times of the next send of the schedule and of the one after it (if any),
    /// unless the next waits for a slot (then a response, not the clock, lets it go).
    fn next_dues(&self) -> Option<(u64, Option<u64>)> {
        match (&self.schedule, self.next_k, self.head) {
            (Some(s), Some(k), None) => Some((
                self.start + s.due_ns(k),
                s.next(k).map(|k| self.start + s.due_ns(k)),
            )),
            _ => None,
        }
    }

    /// Polls once and handles every event. Returns true when nothing happened.
    fn poll_once(
        &mut self,
        poll: &mut Poll,
        events: &mut Events,
        timeout: Duration,
        timers: &mut Timers,
    ) -> io::Result<bool> {
        match poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            match ev.token() {
                t if t == TIMERS[0] => timers.fired(0),
                t if t == TIMERS[1] => timers.fired(1),
                Token(i) if self.conns[i].connecting_since.is_some() => {
                    if ev.is_writable() || ev.is_error() || ev.is_read_closed() {
                        self.connected(i);
                    }
                }
                Token(i) => {
                    let closing = ev.is_read_closed() || ev.is_error();
                    if ev.is_readable() || closing {
                        self.read(i, closing);
                    }
                    if ev.is_writable() && self.conns[i].alive {
                        self.write(i);
                    }
                }
            }
        }
        Ok(events.is_empty())
    }

    /// Sends what is due. Returns false once this thread has nothing more to send.
    fn dispatch(&mut self, now: u64) -> bool {
        let p = self.plan;
        if self.server_lost {
            return false;
        }
        loop {
            // Which send is next, and when was it meant to go?
            let (intended, measured) = match &self.schedule {
                Some(s) => {
                    let Some(k) = self.next_k else { return false };
                    let due = self.start + s.due_ns(k);
                    if due > now {
                        // Caught up: later lateness is the generator's own.
                        self.draining = false;
                        return true;
                    }
                    (due, s.is_measured(k))
                }
                None => {
                    if self.closed_left == 0 {
                        return false;
                    }
                    let measured = now >= self.start + p.warmup_ns;
                    (now, measured)
                }
            };
            let req = match self.head {
                Some(r) => r,
                None => {
                    let r = self.choose();
                    self.head = Some(r);
                    r
                }
            };
            let server = if self.by_server.len() > 1 {
                p.ring.server_for(req.key)
            } else {
                0
            };
            let Some(ci) = self.free_conn(server) else {
                // Every slot of this server is busy: the request keeps its intended
                // time and waits at the head of the queue.
                self.last_blocked = now;
                self.draining = true;
                if !p.reconnect && !self.by_server[server].iter().any(|&c| self.conns[c].alive) {
                    // Every connection to its server is gone: stop sending. What was
                    // not sent shows as sent < offered, what was lost as errors.
                    self.server_lost = true;
                    self.res.gave_up = Some(format!(
                        "every connection to server {server} was lost; sending stopped"
                    ));
                    return false;
                }
                return true;
            };
            self.head = None;
            let c = &mut self.conns[ci];
            let id = c.next_id;
            c.next_id = c.next_id.wrapping_add(1);
            if c.wbuf.is_empty() {
                self.dirty.push(ci);
            }
            proto::encode(p.proto, &req, id, &mut c.wbuf, &mut self.scratch);
            self.inflight += 1;
            c.inflight.push_back(Flight {
                id,
                req,
                intended,
                sent: now,
                measured,
            });
            if measured {
                self.res.sent += 1;
                let lag = now - intended;
                let _ = self.res.lag.record(lag.max(1));
                if (self.draining || self.last_blocked >= intended) && self.schedule.is_some() {
                    self.res.slot_waits += 1;
                } else {
                    let _ = self.res.generator_lag.record(lag.max(1));
                }
            }
            self.advance(measured);
        }
    }

    fn advance(&mut self, measured: bool) {
        match &self.schedule {
            Some(s) => self.next_k = self.next_k.and_then(|k| s.next(k)),
            None => {
                if measured && self.closed_left != u64::MAX {
                    self.closed_left -= 1;
                }
            }
        }
    }

    fn choose(&mut self) -> Req {
        let p = self.plan;
        let op = p.mix.pick(&mut self.rng);
        let key = self.picker.pick(&mut self.rng);
        let slot = &self.versions[key as usize % VERSION_SLOTS];
        let expected = if slot.0 == key { slot.1 } else { 0 };
        Req {
            op,
            key,
            value_len: p.value_size.for_key(key),
            expected,
        }
    }

    /// A live connection to `server` with a free pipeline slot, round-robin.
    fn free_conn(&mut self, server: usize) -> Option<usize> {
        let group = &self.by_server[server];
        let n = group.len();
        for step in 0..n {
            let ci = group[(self.rr[server] + step) % n];
            let c = &self.conns[ci];
            if c.alive && c.inflight.len() < self.plan.pipeline {
                self.rr[server] = (self.rr[server] + step + 1) % n;
                return Some(ci);
            }
        }
        None
    }

    /// One write per connection with new requests: the whole batch in one syscall.
    fn flush(&mut self) {
        while let Some(ci) = self.dirty.pop() {
            if self.conns[ci].alive {
                self.write(ci);
            }
        }
    }

    fn write(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if c.wpos >= c.wbuf.len() {
            return;
        }
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(n) => {
                c.wpos += n;
                if c.wpos == c.wbuf.len() {
                    c.wbuf.clear();
                    c.wpos = 0;
                }
                // A short write leaves the rest for the next WRITABLE edge.
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.kill(ci, &format!("write failed: {e}")),
        }
    }

    /// Drains the socket (edge-triggered: until WouldBlock, or a short read) and
    /// handles every whole response as it arrives. `closing` (the peer closed or
    /// failed) reads on to the end of the stream, which a short read would not show.
    fn read(&mut self, ci: usize, closing: bool) {
        loop {
            let c = &mut self.conns[ci];
            if !c.alive {
                return;
            }
            if c.rend == c.rbuf.len() {
                if c.rstart > 0 {
                    // Move the unparsed tail to the front.
                    c.rbuf.copy_within(c.rstart..c.rend, 0);
                    c.rend -= c.rstart;
                    c.rstart = 0;
                } else if c.rbuf.len() < self.rbuf_max {
                    // One response is bigger than the buffer (a large value written by
                    // an earlier run): grow, up to twice the largest legal response.
                    let len = (c.rbuf.len() * 2).min(self.rbuf_max);
                    c.rbuf.resize(len, 0);
                } else {
                    self.kill(ci, "response larger than the read buffer");
                    return;
                }
            }
            let (rend, len) = (c.rend, c.rbuf.len());
            match c.stream.read(&mut c.rbuf[rend..len]) {
                Ok(0) => {
                    let why = "server closed the connection";
                    self.kill(ci, why);
                    return;
                }
                Ok(n) => {
                    let drained = rend + n < len && !closing;
                    c.rend += n;
                    let now = now_ns();
                    self.parse(ci, now);
                    // A short read emptied the socket: every later segment raises a
                    // new edge, so the read that would return WouldBlock is skipped
                    // (one syscall less per response at low pipeline depths).
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.kill(ci, &format!("read failed: {e}"));
                    return;
                }
            }
        }
    }

    fn parse(&mut self, ci: usize, now: u64) {
        let p = self.plan;
        let max_response = self.max_response;
        loop {
            let c = &mut self.conns[ci];
            let buf = &c.rbuf[c.rstart..c.rend];
            let found = match proto::find(p.proto, buf, max_response) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(why) => {
                    self.kill(ci, why);
                    return;
                }
            };
            // Match the response with its request: by id when the protocol has ids
            // (answers may be reordered), else the oldest request in flight.
            let pos = match found.id {
                Some(id) => c.inflight.iter().position(|f| f.id == id),
                None => Some(0),
            };
            let Some(flight) = (match pos {
                Some(0) => c.inflight.pop_front(),
                Some(i) => c.inflight.remove(i),
                None => None,
            }) else {
                // No request has this id: count it against the oldest request, whose
                // own answer this most likely was.
                let Some(oldest) = c.inflight.pop_front() else {
                    self.kill(ci, "response with no request in flight");
                    return;
                };
                self.inflight -= 1;
                c.rstart += found.len;
                let detail = format!(
                    "response id {} matches no request in flight (oldest is {})",
                    found.id.unwrap_or(0),
                    oldest.id
                );
                self.fail(oldest.measured, Failure::WrongId, Some(detail));
                continue;
            };
            self.inflight -= 1;
            let start = c.rstart;
            c.rstart += found.len;
            let verdict = proto::judge(p.proto, &flight.req, &c.rbuf[start..start + found.len]);
            if c.rstart == c.rend {
                c.rstart = 0;
                c.rend = 0;
            }
            self.complete(ci, &flight, verdict, now, start, found.len);
        }
    }

    fn complete(&mut self, ci: usize, f: &Flight, v: Verdict, now: u64, start: usize, len: usize) {
        self.res.answered_all += 1;
        let slot = f.req.key as usize % VERSION_SLOTS;
        // Remember the version each answer reveals, so a later CAS can expect it.
        match (f.req.op, v) {
            (Op::Del, Verdict::Ok(_)) | (_, Verdict::Miss) => self.versions[slot] = (f.req.key, 0),
            (_, Verdict::Ok(Some(version))) | (_, Verdict::Conflict(version)) => {
                self.versions[slot] = (f.req.key, version)
            }
            _ => {}
        }
        let failure = match v {
            Verdict::WrongStatus => Some(Failure::WrongStatus),
            Verdict::WrongValue => Some(Failure::WrongValue),
            _ => None,
        };
        if let Some(failure) = failure {
            let detail = if self.res.first_error.is_none() {
                let c = &self.conns[ci];
                let shown = &c.rbuf[start..start + len.min(80)];
                Some(format!(
                    "{:?} of key {} (request id {}) got {}: {:?}",
                    f.req.op,
                    f.req.key,
                    f.id,
                    if v == Verdict::WrongValue {
                        "a value that is not the one derived from its key"
                    } else {
                        "an unexpected status"
                    },
                    String::from_utf8_lossy(shown)
                ))
            } else {
                None
            };
            self.fail(f.measured, failure, detail);
            return;
        }
        if !f.measured {
            return;
        }
        self.res.ops += 1;
        self.res.per_op[Op::ALL.iter().position(|&o| o == f.req.op).unwrap_or(0)] += 1;
        match v {
            Verdict::Miss => self.res.misses += 1,
            Verdict::Conflict(_) => self.res.cas_conflicts += 1,
            _ => {}
        }
        let corrected = (now - f.intended).max(1);
        let _ = self.res.corrected.record(corrected);
        let _ = self.publish_corrected.record(corrected);
        let _ = self.res.service.record((now - f.sent).max(1));
        let window = self.res.window.get_or_insert((f.intended - self.start, 0));
        window.0 = window.0.min(f.intended - self.start);
        window.1 = window.1.max(now - self.start);
    }

    fn fail(&mut self, measured: bool, failure: Failure, detail: Option<String>) {
        if self.res.first_error.is_none() {
            self.res.first_error = detail.or_else(|| Some(format!("{failure:?}")));
        }
        if !measured {
            self.res.warmup_errors += 1;
            return;
        }
        let e = &mut self.res.errors;
        match failure {
            Failure::WrongId => e.wrong_id += 1,
            Failure::WrongStatus => e.wrong_status += 1,
            Failure::WrongValue => e.wrong_value += 1,
            Failure::Timeout => e.timeout += 1,
            Failure::Connection => e.connection += 1,
        }
    }

    /// Requests unanswered for longer than the timeout are errors; a connection that
    /// lost a response cannot be trusted to stay in step, so it is closed.
    fn expire(&mut self, now: u64) {
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

    fn kill(&mut self, ci: usize, why: &str) {
        self.kill_as(ci, why, Failure::Connection);
    }

    fn kill_as(&mut self, ci: usize, why: &str, failure: Failure) {
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
    fn reconnect(&mut self, now: u64) -> io::Result<()> {
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
    fn connected(&mut self, ci: usize) {
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
        c.alive = true;
        self.alive += 1;
        self.res.reconnects += 1;
    }

    /// Adds this thread's news to the shared progress counters.
    fn publish(&mut self, progress: &Progress) {
        let errors = self.res.errors.total() + self.res.warmup_errors;
        progress.completed.fetch_add(
            self.res.answered_all - self.published_ops,
            Ordering::Relaxed,
        );
        progress
            .errors
            .fetch_add(errors - self.published_errors, Ordering::Relaxed);
        self.published_ops = self.res.answered_all;
        self.published_errors = errors;
        if let Ok(mut h) = progress.latency.lock() {
            let _ = h.add(&self.publish_corrected);
        }
        self.publish_corrected.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_that_fell_due_during_the_pass_goes_without_sleeping() {
        // Due at 100; the pass that sent the previous one ended at 100 or later.
        assert_eq!(wait_for(Some(100), 100, false), Wait::Now);
        assert_eq!(wait_for(Some(100), 150, false), Wait::Now);
        // Even with its timer set: the send goes now, not at the timer's wake.
        assert_eq!(wait_for(Some(100), 150, true), Wait::Now);
    }

    #[test]
    fn a_later_send_sets_its_deadline_once() {
        assert_eq!(wait_for(Some(200), 100, false), Wait::ArmAt(200));
        assert_eq!(wait_for(Some(200), 100, true), Wait::Block);
    }

    #[test]
    fn nothing_waiting_on_the_clock_just_blocks() {
        assert_eq!(wait_for(None, 100, false), Wait::Block);
    }
}
