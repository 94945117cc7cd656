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

mod conns;
mod receive;
mod send;

use crate::clock::{now_ns, Timers};
use crate::dialect::{self, Protocol, Req};
use crate::report::{new_histogram, Outcome};
use crate::schedule::{Schedule, Stop};
use crate::workload::{KeyDist, KeyPicker, Mix, Ring, Rng, ValueSize};
use bytes::BytesMut;
use conns::{Conn, RECONNECT_MIN_NS};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io;
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
    /// The HELLO that authenticates a re-opened connection (`--auth-token-file`);
    /// `None` when the server requires no token.
    pub hello: Option<bytes::Bytes>,
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

/// One request on the wire.
#[derive(Clone, Copy, Debug)]
struct Flight {
    id: u32,
    req: Req,
    intended: u64,
    sent: u64,
    measured: bool,
}

const TIMERS: [Token; 2] = [Token(usize::MAX - 1), Token(usize::MAX - 2)];
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
    res: Outcome,
    publish_corrected: Histogram<u64>,
    published_ops: u64,
    published_errors: u64,
}

/// A connection opened for a thread: the socket, its TLS session (handshake done)
/// with `--tls`, and which server it reaches.
pub type Opened = (
    std::net::TcpStream,
    Option<Box<rustls::ClientConnection>>,
    usize,
);

/// Runs one thread until its share of the run is done, and returns what it measured.
pub fn run_thread(
    plan: &Plan,
    thread: usize,
    streams: Vec<Opened>,
    servers: usize,
    start: &StartLine,
    progress: &Progress,
) -> io::Result<Outcome> {
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
    streams: Vec<Opened>,
    servers: usize,
) -> io::Result<(Engine<'_>, Poll, Timers)> {
    let poll = Poll::new()?;
    let timers = Timers::new()?;
    timers.register(poll.registry(), TIMERS)?;
    // Any value an earlier run wrote may come back, so responses are bounded by the
    // protocol's value limit, not by this run's --value-size; buffers start sized for
    // this run and grow only if a larger value actually arrives.
    let max_response = plan.proto.max_response(dialect::MAX_VALUE);
    let rbuf_len = (2 * plan.proto.max_response(plan.value_size.max)).max(64 * 1024);
    let max_request = plan.value_size.max + 128;
    let mut conns = Vec::with_capacity(streams.len());
    let mut by_server = vec![Vec::new(); servers];
    for (i, (s, tls, server)) in streams.into_iter().enumerate() {
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
            tls,
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
            hello_pending: false,
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
        res: Outcome {
            offered: schedule.map_or(0, |s| s.measured_for_thread()),
            ..Outcome::new(plan.rate)
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
                    self.res.interrupted = true;
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
