//! `Server`: the reactor thread, a thin pump between sockets and connections.
//!
//! This is the only module that touches `mio`. Each loop iteration:
//!
//! 1. **poll** — block until a socket, the waker, a signal or a deadline needs us (not
//!    at all when work is already waiting);
//! 2. **note readiness** — each event marks its connection readable/writable and
//!    queues it; the listener and signals set flags;
//! 3. **accept** — drain the listener to `WouldBlock`;
//! 4. **service** — for each queued connection: read (up to the read budget), hand out
//!    its next run of jobs (executed at once with `--workers 0`), write what is
//!    pending (up to the write budget); on a TLS listener's connections the reads and
//!    writes go through the connection's TLS session (`tls`);
//! 5. **dispatch** — run the iteration's cheap runs on this thread, within a budget,
//!    and hand each worker its batch, one channel send per worker (`execute`);
//! 6. **complete** — append finished batches' answers to their connections and write
//!    them out;
//! 7. **timers** — the deadlines due now (`timers`), then the client memory limit
//!    (`memory`) and a stop in progress (`shutdown`).
//!
//! # Readiness
//! mio is edge-triggered: an event means "something changed", so the reactor remembers
//! `readable` per connection until a read returns `WouldBlock`, end of input, or a
//! short read (fewer bytes than asked). The short-read rule saves one `read` system
//! call per request: on Linux a stream socket that returns less than asked had an empty
//! receive queue at that moment, and any later arrival raises a new edge (the rule
//! discussed in tokio-rs/mio#1611). It is not applied when the event reported the
//! peer's side closed, because then no further edge would announce the EOF. A
//! connection stopped by its read or write budget stays queued and the next `poll`
//! does not block, so a busy client cannot starve the others nor lose its readiness.
//!
//! # Budgets
//! No connection holds the loop for long while others wait: per turn it reads at most
//! [`READ_BUDGET_BYTES`], writes at most [`WRITE_BUDGET_BYTES`], and requests run on
//! this thread spend at most [`REACTOR_BUDGET_UNITS`](crate::exec::REACTOR_BUDGET_UNITS)
//! (about a quarter of a millisecond of copying) per connection turn with `--workers
//! 0`, or per iteration for the cheap runs of all connections together. Long values
//! are answered by reference, so a large GET costs no copying here at all.
//!
//! # Backpressure
//! A connection stops being read while its output is over the limit or a frame limit's
//! worth of input is buffered, and gets no new run while a run is in flight or its
//! output is over the limit; its readiness is remembered and it is serviced again once
//! the condition clears. WRITABLE interest is registered only while output is pending.

mod accept;
mod background;
mod close_log;
mod durable;
mod execute;
mod fds;
mod listener;
mod memory;
mod push;
mod refused;
mod registry;
mod service;
mod shutdown;
mod socket;
#[cfg(test)]
mod tests;
mod timers;
mod tls;

use crate::config::{Config, READ_CHUNK_BYTES};
use crate::conn::{ConnLimits, Outgoing};
use crate::durability::Durability;
use crate::exec::Batch;
use crate::exec::Context;
use crate::job::ConnId;
use crate::sequencer::Sequencer;
use crate::stats::latency::Tally as LatencyTally;
use crate::stats::Tally;
use crate::store::Change;
use crate::wake::ReactorWake;
use crate::worker::Pool;
use listener::Listener;
use mio::{Events, Interest, Poll, Token};
use registry::{Registry, SIGNAL, WAKER};
use shutdown::Stopping;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::config::{READ_BUDGET_BYTES, WRITE_BUDGET_BYTES};
pub use background::Running;

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
    /// The data directory could not be used (locked, damaged or unreadable).
    #[error("data directory: {0}")]
    Durability(crate::durability::DurabilityError),
    /// The TLS certificate, key or client CA could not be loaded.
    #[error("TLS: {0}")]
    Tls(crate::tls::TlsError),
    /// A plaintext listener was asked for without TLS on the main one.
    #[error(
        "--plaintext-listen needs --tls-cert and --tls-key (without them --listen is plaintext)"
    )]
    PlaintextWithoutTls,
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
    /// Shared by every connection: one copy, not one per connection.
    conn_limits: std::sync::Arc<ConnLimits>,
    max_connections: usize,
    inline_max_batch: usize,
    /// Connections to service this iteration.
    queue: Vec<ConnId>,
    /// Connections to service next iteration (a budget spent, or still readable).
    again: Vec<ConnId>,
    /// This iteration's runs cheap enough to execute here (see `execute`).
    inline: Batch,
    /// A run executed here at once: with `--workers 0`, or one that must run here.
    local: Batch,
    /// Per worker, a batch of jobs for each of its lanes (see `worker`).
    batches: Vec<[Batch; 2]>,
    /// Emptied batches come back from workers; kept for the next batches.
    spare: Vec<Batch>,
    /// Where answers to connections that closed meanwhile are written, and dropped.
    discard: Outgoing,
    /// The deadline heap (see `timers`).
    timers: timers::Heap,
    read_buf: Box<[u8]>,
    /// Set once a stop began: its deadlines (see `shutdown`).
    stopping: Option<Stopping>,
    /// Memory all connections hold for their clients, as last reported by each.
    client_memory: usize,
    /// The limit on `client_memory` (see `memory`); 0 = none.
    max_client_memory: usize,
    /// How long a stop may take (see `shutdown`).
    shutdown_timeout: Duration,
    /// Counts of requests run on this thread, published once per loop iteration.
    tally: Tally,
    /// Request latency: runs answered, filed by elapsed time once per batch, published
    /// once per loop iteration. Every answer is queued on this thread, so it is the
    /// only recorder.
    latency: LatencyTally,
    /// Requests, and batches, sent to workers and not yet back.
    worker_requests: usize,
    worker_batches: usize,
    /// Connections with WRITABLE interest: answers left after their last write turn.
    output_waiting: usize,
    /// Changes made by runs on this thread, until the sequencer takes them.
    changes: Vec<Change>,
    /// Every executor's changes, back in sequence order.
    sequencer: Sequencer,
    /// What receives the ordered change stream.
    listeners: Vec<ChangeListener>,
    /// Connections holding subscriptions.
    subscribers: usize,
    /// When push's periodic work is next due (see `push`).
    push_tick_at: Instant,
    /// Connections with subscriptions to catch up from the change log.
    push_ready: Vec<ConnId>,
    /// Connections given pushes not yet written (see `push`), and since when.
    push_flush: Vec<ConnId>,
    push_flush_since: Option<Instant>,
    /// Connections whose subscriptions began or ended, to apply (kept for reuse).
    push_notices: Vec<(ConnId, bool)>,
    /// The keepalive interval for subscribers.
    push_keepalive: Duration,
    /// Connections refused with SERVER_FULL, discarding their input a moment.
    refused: refused::Refused,
    /// The Prometheus endpoint, when one was asked for; stopped with the server.
    metrics: Option<crate::metrics::Endpoint>,
    /// Logs closes for cause, rate-limited.
    close_log: close_log::CloseLog,
    /// Connections open per client address, kept only with `--max-connections-per-ip`.
    per_ip: std::collections::HashMap<std::net::IpAddr, u32>,
    /// The limit on those; 0 = none.
    max_per_ip: usize,
    /// Serve only loopback clients: no token is configured and protected mode is on.
    protected_mode: bool,
    /// The token connections must show, reread on SIGHUP.
    auth: Option<Arc<crate::auth::TokenCheck>>,
    /// The write-ahead log and what waits for it, with `--data-dir`.
    durable: Option<durable::Gate>,
    /// With a certificate: makes each `listener` connection's TLS session.
    tls: Option<tls::Acceptor>,
    /// The plaintext listener beside a TLS one (`--plaintext-listen`).
    plaintext_listener: Option<Listener>,
}

/// Receives every change, in sequence order, on the reactor thread: it must be quick.
pub type ChangeListener = Box<dyn FnMut(&Change) + Send>;

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
        let tls = match &config.tls {
            Some(settings) => Some(tls::Acceptor::new(settings).map_err(ServerError::Tls)?),
            None if config.plaintext_listen.is_some() => {
                return Err(ServerError::PlaintextWithoutTls)
            }
            None => None,
        };
        let bind = |addr, token, tls| {
            Listener::bind(addr, config.listen_backlog, token, tls, poll.registry())
                .map_err(|source| ServerError::Bind { addr, source })
        };
        let listener = bind(config.listen, registry::LISTENER, tls.is_some())?;
        let plaintext_listener = match config.plaintext_listen {
            Some(addr) => Some(bind(addr, registry::PLAINTEXT_LISTENER, false)?),
            None => None,
        };
        let local_addr = listener.local_addr().map_err(ServerError::Poll)?;
        // One waker per Poll: workers wake through ReactorWake, the shutdown handle
        // through the same waker (mio allows only one).
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).map_err(ServerError::Poll)?);
        let wake = Arc::new(ReactorWake::new(waker.clone()));
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(ServerError::Poll)?;
        poll.registry()
            .register(&mut signals, SIGNAL, Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let mut ctx = Context::new(config.limits, config.max_memory, config.workers);
        let durable = match &config.durability {
            Some(dc) => {
                let keep = config.push.change_log_events;
                let (log, mut recovered) = Durability::open(dc, &ctx.store, keep, waker.clone())
                    .map_err(ServerError::Durability)?;
                report_recovery(dc, &recovered, &ctx);
                ctx.push = crate::push::Hub::with_history(
                    config.push,
                    recovered.tail_base,
                    recovered.history,
                );
                ctx.push.preload(std::mem::take(&mut recovered.tail));
                if log.holds() {
                    ctx.durable = std::sync::atomic::AtomicU64::new(log.durable());
                }
                ctx.log = Some(log.stats());
                Some(durable::Gate::new(log))
            }
            None => {
                ctx.push = crate::push::Hub::new(config.push, ctx.store.seq());
                None
            }
        };
        let last_seq = ctx.store.seq();
        let ctx = Arc::new(ctx);
        let metrics = match config.metrics_listen {
            Some(addr) => Some(
                crate::metrics::Endpoint::start(addr, ctx.clone())
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let pool = match config.workers {
            0 => None,
            n => Some(Pool::start(n, ctx.clone(), wake.clone()).map_err(ServerError::Spawn)?),
        };
        // Counted now that the poller, listener and its reserve are open.
        let (max_connections, note) = fds::fit_connection_limit(config.max_connections);
        if let Some(note) = note {
            tracing::warn!("{note}");
        }
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            registry: Registry::with_capacity(max_connections.min(1024)),
            ctx,
            batches: (0..config.workers).map(|_| Default::default()).collect(),
            pool,
            wake,
            stop: Arc::new(AtomicBool::new(false)),
            stop_waker: waker,
            signals,
            conn_limits: std::sync::Arc::new(config.conn_limits()),
            max_connections,
            inline_max_batch: config.inline_max_batch,
            queue: Vec::new(),
            again: Vec::new(),
            inline: Batch::default(),
            local: Batch::default(),
            spare: Vec::new(),
            discard: Outgoing::default(),
            timers: timers::Heap::default(),
            read_buf: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            stopping: None,
            client_memory: 0,
            max_client_memory: config.max_client_memory,
            tally: Tally::default(),
            latency: LatencyTally::default(),
            worker_requests: 0,
            worker_batches: 0,
            output_waiting: 0,
            shutdown_timeout: config.shutdown_timeout,
            changes: Vec::new(),
            sequencer: Sequencer::new(last_seq),
            listeners: Vec::new(),
            subscribers: 0,
            push_tick_at: Instant::now(),
            push_ready: Vec::new(),
            push_notices: Vec::new(),
            push_flush: Vec::new(),
            push_flush_since: None,
            push_keepalive: config.push.keepalive,
            refused: refused::Refused::default(),
            metrics,
            close_log: close_log::CloseLog::default(),
            per_ip: std::collections::HashMap::new(),
            max_per_ip: config.max_connections_per_ip,
            // Client certificates authenticate clients too.
            protected_mode: config.protected_mode
                && config.auth.is_none()
                && config.tls.as_ref().is_none_or(|t| t.client_ca.is_none()),
            auth: config.auth.clone(),
            durable,
            tls,
            plaintext_listener,
        })
    }

    /// Rereads the token file, if there is one. Connections already
    /// authenticated stay open; new ones need the new token. A token file that cannot
    /// be read keeps the old token in force.
    fn reload_token(&self) {
        let Some(auth) = &self.auth else {
            return;
        };
        match auth.reload() {
            Ok(()) => tracing::info!("SIGHUP: reread the token in {}", auth.path().display()),
            Err(e) => tracing::error!("SIGHUP: {e}; the previous token stays in force"),
        }
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the plaintext listener beside a TLS one listens, if there is one.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.plaintext_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// True when the main listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Where the Prometheus endpoint listens, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// The connection limit in force: the one configured, or lower when the file
    /// descriptor limit could not hold it.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// A handle that stops this server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            stop: self.stop.clone(),
            waker: self.stop_waker.clone(),
        }
    }

    /// Adds a receiver of the ordered change stream: every committed write (and hole),
    /// exactly once, in strictly increasing sequence order, called on the reactor
    /// thread as soon as the changes before it have arrived.
    pub fn on_change(&mut self, listener: impl FnMut(&Change) + Send + 'static) {
        self.listeners.push(Box::new(listener));
    }

    /// The shared context (store and counters), for embedding and tests.
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// Runs until SIGINT, SIGTERM or the shutdown handle; then stops accepting,
    /// answers what was read (or, past the execution deadline, tells the client it
    /// was not executed), closes every connection, syncs the log and joins the
    /// workers. A second signal returns at once. SIGHUP reloads what can be reloaded
    /// without dropping connections (the TLS certificate and key).
    ///
    /// # Errors
    /// Only when `poll` itself fails.
    pub fn run(mut self) -> Result<(), ServerError> {
        let result = self.run_loop();
        if let Some(gate) = self.durable.take() {
            let durable = gate.log.close();
            tracing::info!("the log is synced up to change {durable}");
        }
        result
    }

    fn run_loop(&mut self) -> Result<(), ServerError> {
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
                    registry::PLAINTEXT_LISTENER => {
                        if let Some(l) = &mut self.plaintext_listener {
                            l.set_ready();
                        }
                    }
                    WAKER => {
                        if self.stop.load(Ordering::SeqCst) {
                            self.begin_shutdown(now);
                        }
                    }
                    SIGNAL => {
                        let (mut stop, mut hangup) = (false, false);
                        for signal in self.signals.pending() {
                            match signal {
                                SIGHUP => hangup = true,
                                _ => stop = true,
                            }
                        }
                        if hangup {
                            self.on_hangup();
                        }
                        if stop {
                            if self.stopping.is_some() {
                                tracing::warn!("second signal; stopping now");
                                self.ctx.cancel.store(true, Ordering::Relaxed);
                                return Ok(());
                            }
                            self.begin_shutdown(now);
                        }
                    }
                    token if token.0 >= refused::REFUSED_BASE => self.refused.readable(token),
                    token => self.note_readiness(token, event),
                }
            }
            self.accept(now);
            self.service_queue(now);
            self.dispatch(now);
            self.complete(now);
            self.release_durable(now);
            self.deliver_push(now);
            self.flush_pushes(now, events.is_empty());
            self.fire_timers(now);
            self.enforce_client_memory(now);
            self.publish(now);
            if self.stopped(now) {
                return Ok(());
            }
        }
    }

    /// How long `poll` may block: not at all when work is waiting, else until the
    /// next deadline. Announces the sleep to workers (see `wake`).
    fn poll_timeout(&mut self, now: Instant) -> Option<Duration> {
        let batched = self
            .batches
            .iter()
            .any(|[cheap, heavy]| !cheap.is_empty() || !heavy.is_empty());
        // Pushes waiting to be written: look for more work without blocking; a poll
        // that finds none writes them.
        if !self.again.is_empty()
            || !self.inline.is_empty()
            || batched
            || !self.push_ready.is_empty()
            || !self.push_flush.is_empty()
        {
            return Some(Duration::ZERO);
        }
        if let Some(pool) = &self.pool {
            self.wake.prepare_sleep();
            if !pool.done_is_empty() {
                self.wake.cancel_sleep();
                return Some(Duration::ZERO);
            }
        }
        let listener = [&self.listener, &self.plaintext_listener]
            .into_iter()
            .flatten()
            .filter_map(|l| l.resume_at())
            .min();
        let stopping = self.stopping.as_ref().map(|s| s.next_deadline());
        let push = (self.subscribers > 0).then_some(self.push_tick_at);
        let refused = self.refused.expire(now);
        [listener, self.timers.next(), stopping, push, refused]
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
            if let Some(tls) = slot.tls.as_deref_mut() {
                tls.note_readable();
            }
        }
        if event.is_writable() || event.is_error() {
            slot.write_blocked = false;
        }
        slot.read_closed |= event.is_read_closed() || event.is_error();
        if !slot.queued {
            slot.queued = true;
            self.queue.push(id);
        }
    }

    /// SIGHUP: reload what can be reloaded without dropping connections: the
    /// certificate and key, and the token.
    fn on_hangup(&mut self) {
        self.reload_tls();
        self.reload_token();
    }

    /// Publishes the reactor's gauges and this iteration's counts.
    fn publish(&mut self, _now: Instant) {
        if let Some(gate) = &mut self.durable {
            gate.log.maybe_compact(&self.ctx);
        }
        let stats = &self.ctx.stats;
        stats.counters.absorb(&mut self.tally);
        stats.latency.absorb(&mut self.latency);
        stats
            .client_memory
            .store(self.client_memory as u64, Ordering::Relaxed);
        // Batches a full worker queue kept here are work queued for the pool too.
        let kept: usize = self.batches.iter().flatten().map(Batch::len).sum();
        let q = &stats.queues;
        let set = |gauge: &std::sync::atomic::AtomicU64, v: usize| {
            gauge.store(v as u64, Ordering::Relaxed)
        };
        set(&q.worker_requests, self.worker_requests + kept);
        set(&q.worker_batches, self.worker_batches);
        set(&q.output_waiting, self.output_waiting);
        set(&q.sequencer_held, self.sequencer.held());
    }
}

/// Logs what recovery found in the data directory.
fn report_recovery(
    config: &crate::durability::DurabilityConfig,
    recovered: &crate::durability::Recovered,
    ctx: &Context,
) {
    let r = &recovered.report;
    tracing::info!(
        "recovered {} change(s) from {} in {:.3} s: {} record(s), sequence {}, fsync {}",
        r.entries,
        config.dir.display(),
        recovered.took.as_secs_f64(),
        ctx.store.len(),
        r.last_seq,
        config.fsync.name()
    );
    if r.torn_bytes > 0 {
        tracing::warn!(
            "cut {} byte(s) of a torn last write from the log (a crash during an \
             append; nothing acknowledged was in them)",
            r.torn_bytes
        );
    }
    if let Some(repaired) = &r.repaired {
        tracing::warn!("repaired the log: {repaired}");
    }
    if let Some(why) = recovered.new_history {
        tracing::warn!("starting a new history ({why}): resuming clients will get a GAP");
    }
}
