//! `Server`: the reactor thread, a thin pump between sockets and connections.
//!
//! This is the only module that touches `mio`. Each loop iteration:
//!
//! 1. **poll** — block until a socket, the waker, a signal or a deadline needs us (not
//!    at all when work is already waiting);
//! 2. **note readiness** — each event marks its connection readable/writable and
//!    queues it; the listener and signals set flags;
//! 3. **accept** — drain the listener to `WouldBlock`;
//! 4. **service** — for each queued connection: read (up to the read budget), decode
//!    into the batch of its worker (or execute inline), write what is pending;
//! 5. **dispatch** — hand each worker its batch, one channel send per worker;
//! 6. **complete** — copy finished batches' responses into their connections and
//!    write them out;
//! 7. **timers** — idle and linger deadlines, and the accept back-off.
//!
//! # Readiness
//! mio is edge-triggered: an event means "something changed", so the reactor remembers
//! `readable` per connection until a read returns `WouldBlock`, end of input, or a
//! short read (fewer bytes than asked). The short-read rule saves one `read` system
//! call per request: on Linux a stream socket that returns less than asked had an empty
//! receive queue at that moment, and any later arrival raises a new edge (the rule
//! discussed in tokio-rs/mio#1611). It is not applied when the event reported the
//! peer's side closed, because then no further edge would announce the EOF. A
//! connection stopped by its read budget stays queued and the next `poll` does not
//! block, so a busy client cannot starve the others nor lose its readiness.
//!
//! # Backpressure
//! A connection stops being read while its output is over the limit, its in-flight
//! jobs are at the limit, or a frame limit's worth of input is buffered; its readiness
//! is remembered and it is serviced again once the condition clears. WRITABLE interest
//! is registered only while output is pending.

mod listener;
pub mod registry;
pub mod socket;
#[cfg(test)]
mod tests;
pub mod wake;

use crate::command::{self, Context};
use crate::config::{Config, LINGER, READ_BUDGET_BYTES, READ_CHUNK_BYTES, SHUTDOWN_GRACE};
use crate::conn::{CloseReason, ConnLimits, State};
use crate::job::{ConnId, Job, JobOp};
use crate::protocol::Request;
use crate::stats::{Stats, Tally};
use crate::worker::Pool;
use listener::Listener;
use mio::{Events, Interest, Poll, Token};
use registry::{Registry, SIGNAL, WAKER};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use socket::{ReadOutcome, WriteOutcome};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wake::ReactorWake;

/// Payload bytes a batch run on the reactor may copy in all (PUT, CAS and PING bodies):
/// with up to `--inline-max-batch` requests of up to 16 KiB each, the count alone would
/// let one batch keep every other connection waiting while megabytes are copied.
const INLINE_MAX_PAYLOAD: usize = 256 << 10;

/// The request bytes executing `job` copies.
fn payload_len(job: &Job) -> usize {
    match &job.op {
        JobOp::Request(Request::Put { value, .. } | Request::Cas { value, .. }) => value.len(),
        JobOp::Request(Request::Ping { payload }) => payload.len(),
        _ => 0,
    }
}

/// Requests whose execution is cheap enough to run on the reactor in a batch.
fn cheap(job: &Job) -> bool {
    const SMALL: usize = 16 << 10;
    match &job.op {
        JobOp::Reject { .. } => true,
        JobOp::Request(r) => match r {
            Request::Get { .. } | Request::Delete { .. } | Request::Hello { .. } => true,
            Request::Ping { payload } => payload.len() <= SMALL,
            Request::Put { value, .. } | Request::Cas { value, .. } => value.len() <= SMALL,
            Request::Scan { .. } | Request::Stats => false,
        },
    }
}

/// True when a batch is small and cheap enough to run on the reactor: at most
/// `max_jobs` jobs, every one [`cheap`], copying at most [`INLINE_MAX_PAYLOAD`] bytes.
/// (The reactor also checks that no earlier job of those connections is at a worker.)
fn fits_inline(batch: &[Job], max_jobs: usize) -> bool {
    !batch.is_empty()
        && batch.len() <= max_jobs
        && batch.iter().all(cheap)
        && batch.iter().map(payload_len).sum::<usize>() <= INLINE_MAX_PAYLOAD
}

/// Readiness events taken per `poll`.
const EVENTS_CAPACITY: usize = 1024;

/// Why a server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: io::Error,
    },
    /// The poller, waker or signal handlers could not be set up, or `poll` failed.
    #[error("event loop: {0}")]
    Poll(io::Error),
    /// A worker thread could not be started.
    #[error("cannot start worker threads: {0}")]
    Spawn(io::Error),
}

/// Stops a running server from another thread (the binary uses signals instead).
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
}

impl ShutdownHandle {
    /// Asks the server to stop gracefully; returns at once.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// The reactor and everything it owns. Build with [`Server::bind`], then [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: Option<Listener>,
    local_addr: SocketAddr,
    registry: Registry,
    ctx: Arc<Context>,
    pool: Option<Pool>,
    wake: Arc<ReactorWake>,
    stop: Arc<AtomicBool>,
    stop_waker: Arc<mio::Waker>,
    signals: Signals,
    conn_limits: ConnLimits,
    max_connections: usize,
    inline_max_batch: usize,
    /// Connections to service this iteration.
    queue: Vec<ConnId>,
    /// Connections to service next iteration (read budget spent, or still readable).
    again: Vec<ConnId>,
    /// One batch of jobs per worker (one batch in total when running inline).
    batches: Vec<Vec<Job>>,
    /// Emptied job vectors come back from workers; kept for the next batches.
    spare: Vec<Vec<Job>>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    read_buf: Box<[u8]>,
    shutdown_deadline: Option<Instant>,
    /// Counts of requests run on this thread, published once per loop iteration.
    tally: Tally,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listener, starts the workers and installs the signal handlers.
    ///
    /// # Errors
    /// See [`ServerError`].
    pub fn bind(config: &Config) -> Result<Server, ServerError> {
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let listener =
            Listener::bind(config.listen, poll.registry()).map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ServerError::Poll)?;
        // One waker per Poll: workers wake through ReactorWake, the shutdown handle
        // through the same waker (mio allows only one).
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).map_err(ServerError::Poll)?);
        let wake = Arc::new(ReactorWake::new(waker.clone()));
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(ServerError::Poll)?;
        poll.registry()
            .register(&mut signals, SIGNAL, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let ctx = Arc::new(Context::new(
            config.limits,
            config.max_memory,
            config.workers,
        ));
        let pool = match config.workers {
            0 => None,
            n => Some(Pool::start(n, ctx.clone(), wake.clone()).map_err(ServerError::Spawn)?),
        };
        let conn_limits = ConnLimits {
            protocol: config.limits,
            max_output: config.max_output,
            max_in_flight: config.max_in_flight,
            idle_timeout: config.idle_timeout,
            linger: LINGER,
        };
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            registry: Registry::with_capacity(config.max_connections.min(1024)),
            ctx,
            batches: vec![Vec::new(); config.workers.max(1)],
            pool,
            wake,
            stop: Arc::new(AtomicBool::new(false)),
            stop_waker: waker,
            signals,
            conn_limits,
            max_connections: config.max_connections,
            inline_max_batch: config.inline_max_batch,
            queue: Vec::new(),
            again: Vec::new(),
            spare: Vec::new(),
            timers: BinaryHeap::new(),
            read_buf: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            shutdown_deadline: None,
            tally: Tally::default(),
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
            waker: self.stop_waker.clone(),
        }
    }

    /// The shared context (store and counters), for embedding and tests.
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Runs until SIGINT, SIGTERM or the shutdown handle; then stops accepting,
    /// answers what was read, closes every connection and joins the workers.
    ///
    /// # Errors
    /// Only when `poll` itself fails.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            let polled = self.poll.poll(&mut events, timeout);
            self.wake.cancel_sleep();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ServerError::Poll(e)),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    registry::LISTENER => {
                        if let Some(l) = &mut self.listener {
                            l.set_ready();
                        }
                    }
                    WAKER => {
                        if self.stop.load(Ordering::SeqCst) {
                            self.begin_shutdown(now);
                        }
                    }
                    SIGNAL => {
                        if self.signals.pending().next().is_some() {
                            if self.shutdown_deadline.is_some() {
                                eprintln!("switchboard: second signal; stopping now");
                                return Ok(());
                            }
                            self.begin_shutdown(now);
                        }
                    }
                    token => self.note_readiness(token, event),
                }
            }
            self.accept(now);
            self.service_queue(now);
            self.dispatch(now);
            self.complete(now);
            self.fire_timers(now);
            self.ctx.stats.counters.absorb(&mut self.tally);
            if let Some(deadline) = self.shutdown_deadline {
                if self.registry.is_empty() || now >= deadline {
                    if !self.registry.is_empty() {
                        eprintln!(
                            "switchboard: closing {} connection(s) still open after the grace period",
                            self.registry.len()
                        );
                    }
                    return Ok(());
                }
            }
        }
    }

    /// How long `poll` may block: not at all when work is waiting, else until the
    /// next deadline. Announces the sleep to workers (see `wake`).
    fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() || self.batches.iter().any(|b| !b.is_empty()) {
            return Some(Duration::ZERO);
        }
        if let Some(pool) = &self.pool {
            self.wake.prepare_sleep();
            if !pool.done_is_empty() {
                self.wake.cancel_sleep();
                return Some(Duration::ZERO);
            }
        }
        let listener = self.listener.as_ref().and_then(|l| l.resume_at());
        let timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let shutdown = self.shutdown_deadline;
        [listener, timer, shutdown]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    fn note_readiness(&mut self, token: Token, event: &mio::event::Event) {
        let Some(id) = self.registry.id_of(token) else {
            return;
        };
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            slot.readable = true;
        }
        slot.read_closed |= event.is_read_closed() || event.is_error();
        if !slot.queued {
            slot.queued = true;
            self.queue.push(id);
        }
    }

    fn accept(&mut self, now: Instant) {
        let ctx = self.ctx.clone();
        let counters = &ctx.stats.counters;
        while let Some(stream) = self.listener.as_mut().and_then(|l| l.accept(now, counters)) {
            if self.registry.len() >= self.max_connections {
                listener::reject_full(stream);
                Stats::incr(&counters.connections_rejected);
                continue;
            }
            let (id, token) = self.registry.insert(stream, self.conn_limits, now);
            let slot = self.registry.get_mut(id).expect("just inserted");
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut slot.stream, token, Interest::READABLE)
            {
                eprintln!("switchboard: cannot register a connection: {e}");
                self.registry.remove(id);
                continue;
            }
            Stats::incr(&counters.connections_total);
            Stats::incr(&counters.connections_current);
            let deadline = slot.conn.poll_timeout();
            self.arm_timer(id, deadline);
        }
    }

    /// Services every queued connection once, then queues those with work left.
    fn service_queue(&mut self, now: Instant) {
        let mut queue = std::mem::take(&mut self.queue);
        queue.append(&mut self.again);
        for id in queue.drain(..) {
            self.service(id, now);
        }
        self.queue = queue;
    }

    /// Reads, decodes, executes (inline) or batches, and writes one connection.
    fn service(&mut self, id: ConnId, now: Instant) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        slot.queued = false;
        let counters = &self.ctx.stats.counters;
        let batch = match &self.pool {
            Some(pool) => &mut self.batches[pool.worker_for(id)],
            None => &mut self.batches[0],
        };
        let mut budget = READ_BUDGET_BYTES;
        while slot.readable && slot.conn.wants_read() && budget > 0 {
            let want = budget.min(self.read_buf.len());
            match socket::read(&mut slot.stream, &mut self.read_buf[..want]) {
                ReadOutcome::Data(n) => {
                    counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    slot.conn.handle_input(now, &self.read_buf[..n]);
                    slot.conn.poll_jobs(batch);
                    budget -= n;
                    if n < want && !slot.read_closed {
                        slot.readable = false;
                    }
                }
                ReadOutcome::WouldBlock => slot.readable = false,
                ReadOutcome::Eof => {
                    slot.readable = false;
                    slot.conn.handle_peer_closed();
                }
                ReadOutcome::Failed(reason) => {
                    slot.readable = false;
                    slot.conn.handle_reset(reason);
                }
            }
        }
        // Frames held back by the in-flight limit, or left by an ended input.
        slot.conn.poll_jobs(batch);
        if self.pool.is_none() {
            for (i, job) in batch.iter().enumerate() {
                command::prefetch_ahead(&self.ctx, batch, i);
                slot.conn.complete(1, |out| {
                    command::apply_counted(&self.ctx, job, out, &mut self.tally)
                });
            }
            batch.clear();
        }
        self.flush(id, now);
    }

    /// Writes what a connection has pending, updates its interest, and retires it once
    /// closed. Queues it for next iteration if it can still read.
    fn flush(&mut self, id: ConnId, now: Instant) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        let counters = &self.ctx.stats.counters;
        while slot.conn.wants_write() {
            match socket::write(&mut slot.stream, slot.conn.poll_transmit()) {
                WriteOutcome::Wrote(n) => {
                    counters
                        .bytes_written
                        .fetch_add(n as u64, Ordering::Relaxed);
                    slot.conn.advance_transmit(n);
                }
                WriteOutcome::WouldBlock => break,
                WriteOutcome::Failed(reason) => slot.conn.handle_reset(reason),
            }
        }
        if slot.conn.poll_shutdown(now) {
            let _ = slot.stream.shutdown(Shutdown::Write);
        }
        if slot.conn.is_closed() {
            self.close(id);
            return;
        }
        let want_write = slot.conn.wants_write();
        if want_write != slot.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Registry::token(id);
            if self
                .poll
                .registry()
                .reregister(&mut slot.stream, token, interest)
                .is_ok()
            {
                slot.write_interest = want_write;
            }
        }
        // Frames held back by the output or in-flight limit wait for this connection's
        // next service, even if the socket has nothing new to read.
        let more = (slot.readable && slot.conn.wants_read()) || slot.conn.wants_decode();
        if more && !slot.queued {
            slot.queued = true;
            self.again.push(id);
        }
        let deadline = slot.conn.poll_timeout();
        self.arm_timer(id, deadline);
    }

    fn close(&mut self, id: ConnId) {
        let Some(slot) = self.registry.remove(id) else {
            return;
        };
        let c = &self.ctx.stats.counters;
        c.connections_current.fetch_sub(1, Ordering::Relaxed);
        let counter = match slot.conn.close_reason() {
            Some(CloseReason::PeerClosed | CloseReason::Reset) => &c.closed_by_peer,
            Some(CloseReason::ProtocolViolation(_)) => &c.closed_protocol_error,
            Some(CloseReason::IdleTimeout) => &c.closed_idle,
            Some(CloseReason::Shutdown) => &c.closed_shutdown,
            Some(CloseReason::Io) | None => &c.closed_io_error,
        };
        Stats::incr(counter);
        // Dropping the stream closes the socket, which also removes it from the poller.
    }

    /// Hands each worker its batch; a full queue keeps the batch for next iteration.
    /// A batch of cheap requests runs here instead (see `run_inline`).
    fn dispatch(&mut self, now: Instant) {
        if self.pool.is_none() {
            return;
        }
        for n in 0..self.batches.len() {
            if self.inline_eligible(n) {
                self.run_inline(n, now);
            }
        }
        let Some(pool) = &self.pool else {
            return;
        };
        for (n, batch) in self.batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let next = self.spare.pop().unwrap_or_default();
            let full = std::mem::replace(batch, next);
            if let Err(back) = pool.try_send(n, full) {
                let empty = std::mem::replace(batch, back);
                self.spare.push(empty);
            }
        }
    }

    /// True when worker `n`'s batch is cheaper to run on the reactor than to hand off.
    ///
    /// A hand-off costs a wake-up each way, cache lines moving between cores and, when
    /// the worker has to wait for a core, milliseconds of latency; a small GET or PUT
    /// costs about 0.1 µs. Up to `inline_max_batch` such requests the hand-off is most
    /// of the work. Larger batches still go to the worker, where they run in parallel
    /// with the reactor's I/O, and so do expensive requests (SCAN, STATS, large
    /// values) and batches copying more than [`INLINE_MAX_PAYLOAD`] bytes, which would
    /// stall every connection if run here.
    ///
    /// A connection's jobs may run here only if none of its earlier jobs are still at
    /// the worker: otherwise its answers could overtake each other.
    fn inline_eligible(&mut self, n: usize) -> bool {
        let batch = &self.batches[n];
        if !fits_inline(batch, self.inline_max_batch) {
            return false;
        }
        let mut i = 0;
        while let Some(first) = batch.get(i) {
            let run = batch[i..]
                .iter()
                .take_while(|j| j.conn == first.conn)
                .count();
            if let Some(slot) = self.registry.get_mut(first.conn) {
                // Every unanswered job of this connection is in this run.
                if slot.conn.in_flight() as usize != run {
                    return false;
                }
            }
            i += run;
        }
        true
    }

    /// Executes worker `n`'s batch on the reactor and writes the answers out.
    fn run_inline(&mut self, n: usize, now: Instant) {
        let mut batch = std::mem::take(&mut self.batches[n]);
        // A connection's jobs are consecutive: write each run's answers once it is done.
        let mut last: Option<ConnId> = None;
        for (i, job) in batch.iter().enumerate() {
            command::prefetch_ahead(&self.ctx, &batch, i);
            if let Some(done) = last.filter(|&id| id != job.conn) {
                self.flush(done, now);
            }
            last = Some(job.conn);
            if let Some(slot) = self.registry.get_mut(job.conn) {
                slot.conn.complete(1, |out| {
                    command::apply_counted(&self.ctx, job, out, &mut self.tally)
                });
            }
        }
        if let Some(id) = last {
            self.flush(id, now);
        }
        batch.clear();
        self.batches[n] = batch;
    }

    /// Delivers finished batches to their connections and writes them out.
    fn complete(&mut self, now: Instant) {
        let Some(pool) = &self.pool else {
            return;
        };
        let mut touched = std::mem::take(&mut self.queue);
        while let Some(mut done) = pool.try_recv() {
            for (span, bytes) in done.iter() {
                // A connection that closed meanwhile is gone, and so are its answers.
                if let Some(slot) = self.registry.get_mut(span.conn) {
                    slot.conn.handle_completion(bytes, span.count);
                    if !slot.queued {
                        slot.queued = true;
                        touched.push(span.conn);
                    }
                }
            }
            self.spare.push(std::mem::take(&mut done.jobs));
            pool.recycle(done);
        }
        self.queue = touched;
        // Servicing writes the answers, and decodes anything the in-flight limit held.
        self.service_queue(now);
    }

    fn arm_timer(&mut self, id: ConnId, deadline: Option<Instant>) {
        let Some(at) = deadline else {
            return;
        };
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if slot.timer.is_none_or(|t| at < t) {
            slot.timer = Some(at);
            self.timers.push(Reverse((at, id.index, id.generation)));
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, index, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let id = ConnId { index, generation };
            let Some(slot) = self.registry.get_mut(id) else {
                continue;
            };
            if slot.timer != Some(at) {
                continue; // superseded by an earlier deadline
            }
            slot.timer = None;
            slot.conn.handle_timeout(now);
            self.flush(id, now);
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + SHUTDOWN_GRACE);
        eprintln!(
            "switchboard: shutting down; answering what {} connection(s) sent \
             (up to {} s; a second signal stops at once)",
            self.registry.len(),
            SHUTDOWN_GRACE.as_secs()
        );
        // Dropping the listener closes it: new connections are refused from here on.
        self.listener = None;
        for id in self.registry.ids() {
            if let Some(slot) = self.registry.get_mut(id) {
                slot.conn.handle_shutdown();
                if slot.conn.state() == State::Open && !slot.queued {
                    slot.queued = true;
                    self.queue.push(id);
                }
            }
        }
        self.service_queue(now);
    }
}
