//! `Pool`: the worker threads that execute jobs against the store.
//!
//! ```text
//!   reactor ──JobBatch──► [bounded channel, one per worker] ──► worker N
//!      ▲                                                          │ command::apply_counted
//!      └──── ReactorWake::wake() ◄── DoneBatch ◄── [shared channel] ◄┘
//! ```
//!
//! * **Routing keeps order.** A connection's jobs always go to worker
//!   `index % workers`, and each worker handles its batches first in, first out, so a
//!   connection's responses come back in request order without a reorder buffer.
//! * **Batches, not requests, cross threads.** The reactor sends at most one batch per
//!   worker per loop iteration and a worker answers each with one `DoneBatch`: the
//!   ~9 µs cost of waking a parked thread is paid per batch, not per request.
//! * **Cheap batches stay home.** The reactor runs a batch of up to
//!   `--inline-max-batch` cheap requests itself rather than pay a hand-off that costs
//!   about as much as the requests (`Server::inline_eligible`); the pool sees expensive
//!   requests (SCAN, STATS, large values) and very large batches, where running
//!   beside the reactor's I/O pays.
//! * **Parking.** A worker blocks in `recv` (crossbeam spins briefly, then parks). It
//!   does not spin longer: on two cores a spinning worker takes the core the clients
//!   need, and its spinning would count in the server's CPU per request.
//! * **Bounds.** Job channels hold [`JOB_QUEUE_BATCHES`] batches; when one is full the
//!   reactor keeps the batch and retries next iteration (nothing is dropped). The done
//!   channel needs no bound of its own: each job batch yields exactly one done batch.
//! * **Shutdown.** Dropping the pool closes the job channels; each worker finishes
//!   what it holds and exits, and the drop joins them.

pub mod batch;

use crate::command::{self, Context};
use crate::job::{ConnId, Job};
use crate::server::wake::ReactorWake;
use crate::stats::Tally;
use batch::DoneBatch;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Job batches a worker's queue holds before the reactor holds them back.
pub const JOB_QUEUE_BATCHES: usize = 64;

/// Done batches kept for reuse; extras are dropped.
const FREE_BATCHES: usize = 64;

/// The worker threads and the reactor's ends of their channels.
#[derive(Debug)]
pub struct Pool {
    jobs: Vec<Sender<Vec<Job>>>,
    done: Receiver<DoneBatch>,
    free: Sender<DoneBatch>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` threads (at least one) executing against `ctx`; each wakes the
    /// reactor through `wake` when it has answers.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(
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
        };
        for n in 0..workers.max(1) {
            let (job_tx, job_rx) = bounded(JOB_QUEUE_BATCHES);
            let worker = Worker {
                ctx: ctx.clone(),
                jobs: job_rx,
                done: done_tx.clone(),
                free: free_rx.clone(),
                wake: wake.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("switchboard-worker-{n}"))
                .spawn(move || worker.run())?;
            pool.jobs.push(job_tx);
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Always false: a pool has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The worker that serves a connection.
    pub fn worker_for(&self, conn: ConnId) -> usize {
        conn.index as usize % self.jobs.len()
    }

    /// Hands a batch to worker `n` without blocking.
    ///
    /// # Errors
    /// Gives the batch back when the worker's queue is full (or the worker is gone).
    pub fn try_send(&self, n: usize, batch: Vec<Job>) -> Result<(), Vec<Job>> {
        self.jobs[n].try_send(batch).map_err(|e| match e {
            TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
        })
    }

    /// A finished batch, if one is waiting.
    pub fn try_recv(&self) -> Option<DoneBatch> {
        self.done.try_recv().ok()
    }

    /// True when no finished batch is waiting.
    pub fn done_is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Returns a drained batch for reuse.
    pub fn recycle(&self, mut batch: DoneBatch) {
        batch.clear();
        let _ = self.free.try_send(batch);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Worker {
    ctx: Arc<Context>,
    jobs: Receiver<Vec<Job>>,
    done: Sender<DoneBatch>,
    free: Receiver<DoneBatch>,
    wake: Arc<ReactorWake>,
}

impl Worker {
    fn run(self) {
        let mut tally = Tally::default();
        while let Ok(mut jobs) = self.jobs.recv() {
            let mut done = self.free.try_recv().unwrap_or_default();
            for (i, job) in jobs.iter().enumerate() {
                command::prefetch_ahead(&self.ctx, &jobs, i);
                let before = done.out.len();
                command::apply_counted(&self.ctx, job, &mut done.out, &mut tally);
                done.record(job.conn, done.out.len() - before);
            }
            jobs.clear();
            self.ctx.stats.counters.absorb(&mut tally);
            done.jobs = jobs;
            if self.done.send(done).is_err() {
                return;
            }
            self.wake.wake();
        }
    }
}
