//! `Pool`: the worker threads that execute jobs against the store.
//!
//! ```text
//!   reactor ──Batch──► [bounded channel, one per worker] ──► worker N
//!      ▲                                                       │ exec::run_batch
//!      └──── ReactorWake::wake() ◄── DoneBatch ◄── [shared channel] ◄┘
//! ```
//!
//! * **Routing keeps order.** A connection's jobs always go to worker
//!   `index % workers`, and each worker handles its batches first in, first out, so a
//!   connection's responses come back in request order without a reorder buffer.
//! * **Batches, not requests, cross threads.** The reactor sends at most one batch per
//!   worker per loop iteration and a worker answers each with one `DoneBatch`: the
//!   ~9 µs cost of waking a parked thread is paid per batch, not per request.
//! * **Cheap batches stay home.** The reactor runs up to `--inline-max-batch` cheap
//!   requests an iteration itself rather than pay a hand-off that costs about as much
//!   as the requests (`server::execute`); the pool sees expensive requests (SCAN,
//!   STATS, large values) and iterations with more cheap requests than that, where
//!   running beside the reactor's I/O pays.
//! * **Two lanes.** Each worker has a [`Lane::Cheap`] queue and a [`Lane::Heavy`] one
//!   and takes cheap batches first, even in the middle of a heavy batch: between two
//!   runs of a heavy batch it stops if cheap work is waiting and hands the rest back
//!   unstarted. So a PING is never queued behind a thousand SCANs. This reorders
//!   nothing a client can see: a connection has one run in flight at a time.
//! * **Parking.** A worker blocks in `recv` (crossbeam spins briefly, then parks). It
//!   does not spin longer: on two cores a spinning worker takes the core the clients
//!   need, and its spinning would count in the server's CPU per request.
//! * **Bounds.** Each lane holds [`JOB_QUEUE_BATCHES`] batches; when one is full the
//!   reactor keeps the batch and retries next iteration (nothing is dropped). The done
//!   channel needs no bound of its own: each job batch yields exactly one done batch.
//! * **Credits.** Each run in a batch carries its connection's output credit; the
//!   worker stops a run whose answers reach it and returns the rest unstarted, so a
//!   client that does not read cannot make a worker produce more than its limit.
//! * **Shares.** A batch's work is bounded ([`WORKER_BATCH_UNITS`](exec::WORKER_BATCH_UNITS))
//!   and shared evenly by its runs, each getting at least one job: a client with a
//!   thousand SCANs in its pipeline does not keep the other clients of the batch
//!   waiting for theirs, and answers go out batch by batch.
//! * **Shutdown.** When the server cancels work ([`Context::cancel`]) a worker starts
//!   no further job and returns every batch it holds unstarted, at once. Dropping the
//!   pool cancels, closes the job channels and joins the workers, so it takes at most
//!   one request's time.

pub(crate) mod batch;

use crate::exec::sink::Answers;
use crate::exec::Context;
use crate::exec::{self, Batch, Budget};
use crate::job::ConnId;
use crate::stats::Tally;
use crate::wake::ReactorWake;
use batch::DoneBatch;
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Job batches a worker's queue holds before the reactor holds them back.
pub(crate) const JOB_QUEUE_BATCHES: usize = 64;

/// Done batches kept for reuse; extras are dropped.
const FREE_BATCHES: usize = 16;

/// Which of a worker's queues a batch goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Requests cheap enough for the reactor, sent here when there are too many for it:
    /// taken first.
    Cheap = 0,
    /// Expensive requests: taken when no cheap batch waits.
    Heavy = 1,
}

/// The worker threads and the reactor's ends of their channels.
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Vec<[Sender<Batch>; 2]>,
    done: Receiver<DoneBatch>,
    free: Sender<DoneBatch>,
    threads: Vec<JoinHandle<()>>,
    ctx: Arc<Context>,
}

impl Pool {
    /// Starts `workers` threads (at least one) executing against `ctx`; each wakes the
    /// reactor through `wake` when it has answers.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub(crate) fn start(
        workers: usize,
        ctx: Arc<Context>,
        wake: Arc<ReactorWake>,
    ) -> std::io::Result<Pool> {
        let (done_tx, done_rx) = unbounded();
        let (free_tx, free_rx) = bounded(FREE_BATCHES);
        let mut pool = Pool {
            jobs: Vec::with_capacity(workers),
            done: done_rx,
            free: free_tx,
            threads: Vec::with_capacity(workers),
            ctx: ctx.clone(),
        };
        for n in 0..workers.max(1) {
            let (cheap_tx, cheap_rx) = bounded(JOB_QUEUE_BATCHES);
            let (heavy_tx, heavy_rx) = bounded(JOB_QUEUE_BATCHES);
            let worker = Worker {
                ctx: ctx.clone(),
                cheap: cheap_rx,
                heavy: heavy_rx,
                done: done_tx.clone(),
                free: free_rx.clone(),
                wake: wake.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("switchboard-worker-{n}"))
                .spawn(move || worker.run())?;
            pool.jobs.push([cheap_tx, heavy_tx]);
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// The worker that serves a connection.
    pub(crate) fn worker_for(&self, conn: ConnId) -> usize {
        conn.index as usize % self.jobs.len()
    }

    /// Hands a batch to worker `n`'s `lane` without blocking.
    ///
    /// # Errors
    /// Gives the batch back when the queue is full (or the worker is gone).
    pub(crate) fn try_send(&self, n: usize, lane: Lane, batch: Batch) -> Result<(), Batch> {
        self.jobs[n][lane as usize]
            .try_send(batch)
            .map_err(|e| match e {
                TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
            })
    }

    /// A finished batch, if one is waiting.
    pub(crate) fn try_recv(&self) -> Option<DoneBatch> {
        self.done.try_recv().ok()
    }

    /// True when no finished batch is waiting.
    pub(crate) fn done_is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Returns a drained batch for reuse.
    pub(crate) fn recycle(&self, mut batch: DoneBatch) {
        batch.clear();
        let _ = self.free.try_send(batch);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Whatever is still queued is not run: a stop must not wait for it.
        self.ctx
            .cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Worker {
    ctx: Arc<Context>,
    cheap: Receiver<Batch>,
    heavy: Receiver<Batch>,
    done: Sender<DoneBatch>,
    free: Receiver<DoneBatch>,
    wake: Arc<ReactorWake>,
}

impl Worker {
    fn run(self) {
        let mut tally = Tally::default();
        while let Some((lane, mut batch)) = self.next_batch() {
            let mut done = self.free.try_recv().unwrap_or_default();
            done.jobs = batch.len();
            let durable = self.ctx.durable.load(std::sync::atomic::Ordering::Acquire);
            done.answers.set_durable(durable);
            let mut route = WorkerRoute {
                answers: &mut done.answers,
                own: (lane == Lane::Heavy).then(|| {
                    let mut own = Answers::default();
                    own.set_durable(durable);
                    own
                }),
                cheap: &self.cheap,
            };
            let mut budget = Budget::shared(
                exec::WORKER_BATCH_UNITS,
                batch.runs.len(),
                exec::WORKER_RUN_UNITS,
            );
            let changes = &mut done.changes;
            exec::run_batch(
                &self.ctx,
                &mut batch,
                &mut route,
                &mut budget,
                &mut tally,
                changes,
            );
            self.ctx.stats.counters.absorb(&mut tally);
            done.unrun = batch;
            if self.done.send(done).is_err() {
                return;
            }
            self.wake.wake();
        }
    }

    /// The next batch and its lane: a cheap one if any waits, else whichever comes
    /// first. `None` once the pool is gone.
    fn next_batch(&self) -> Option<(Lane, Batch)> {
        match self.cheap.try_recv() {
            Ok(batch) => Some((Lane::Cheap, batch)),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) => select! {
                recv(self.cheap) -> batch => batch.ok().map(|b| (Lane::Cheap, b)),
                recv(self.heavy) -> batch => batch.ok().map(|b| (Lane::Heavy, b)),
            },
        }
    }
}

/// A worker's route: answers into its batch buffer; a run boundary is where a heavy
/// batch gives way to cheap work waiting.
///
/// On the heavy lane each run is encoded into a buffer of its own, which joins the
/// batch's answers by reference: a SCAN page reaches the connection's queue without
/// being copied again, and it pins no other connection's bytes. Cheap answers are small
/// and share the batch's buffer; the reactor copies them once into each connection's.
struct WorkerRoute<'a> {
    answers: &'a mut Answers,
    /// The current run's own buffer, on the heavy lane.
    own: Option<Answers>,
    cheap: &'a Receiver<Batch>,
}

impl exec::Route for WorkerRoute<'_> {
    type Sink = Answers;

    fn sink(&mut self, _conn: ConnId) -> &mut Answers {
        match &mut self.own {
            Some(own) => own,
            None => self.answers,
        }
    }

    fn finish(&mut self, conn: ConnId, answered: u32) {
        if let Some(own) = &mut self.own {
            own.move_into(self.answers);
        }
        if answered > 0 {
            self.answers.end_span(conn, answered);
        }
    }

    fn interrupted(&self) -> bool {
        !self.cheap.is_empty()
    }
}
