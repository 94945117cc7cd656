//! Running requests: the one batch executor, used by the worker threads, by the
//! reactor for batches it runs itself, and by `--workers 0`.
//!
//! A [`Batch`] is jobs grouped in [`Run`]s, one run per connection, each with a
//! *credit*: how many answer bytes the connection may still take before it is over its
//! output limit. [`run_batch`] executes the jobs in order and stops a run once its
//! answers reach its credit, so a connection whose client does not read holds at most
//! its output limit plus one answer, whatever it pipelined; it stops the whole batch
//! when the [`Budget`] of the thread running it is spent or the server is cancelling
//! work. Jobs that did not run stay in the batch, in order, for their connections to
//! hold until they may run again (or to answer with SHUTTING_DOWN).
//!
//! Where answers go is the caller's [`Route`]: a connection's own output queue when
//! the reactor runs the batch, a worker's [`sink::Answers`] buffer otherwise.
//! Which requests are cheap enough for the reactor is decided by [`cost`].

mod context;
pub mod cost;
pub mod encode;
pub mod outcome;
mod prefetch;
pub mod sink;

pub use context::Context;
pub use prefetch::{prefetch_ahead, PREFETCH_GROUP};

use crate::conn::{Connection, Outgoing};
use crate::job::{ConnId, Job, JobOp};
use crate::protocol::{self, Status};
use crate::stats::Tally;
use crate::store::{self, Change};
use sink::{Answers, Sink};
use std::time::Instant;

/// Budget units (bytes copied, or their equivalent for heavy requests; see
/// [`cost::units_before`]) the reactor spends on executing requests before it returns
/// to I/O: about a quarter of a millisecond of copying. One job may overrun it; no
/// more starts once it is spent.
pub const REACTOR_BUDGET_UNITS: usize = 256 << 10;

/// Budget units a worker spends on one batch, shared evenly by its runs (each gets at
/// least one job): 64 heavy requests, a few milliseconds of SCAN pages. Bounding a
/// batch bounds how long its answers wait to be delivered, and how long cheap work
/// waits for the batch to end.
pub const WORKER_BATCH_UNITS: usize = 4 << 20;

/// The most budget units one run gets in a worker's batch, however few runs share it:
/// eight heavy requests. The rest of a long pipeline waits for the next batch, where
/// other clients' runs get their turn too.
pub const WORKER_RUN_UNITS: usize = 512 << 10;

/// One connection's consecutive jobs within a [`Batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The connection.
    pub conn: ConnId,
    /// How many jobs.
    pub jobs: u32,
    /// Answer bytes the run may produce before it stops: jobs start only while its
    /// answers are under this, so it can end up to one answer over.
    pub credit: usize,
}

/// Jobs to execute, grouped in runs by connection, in the order they must run.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every job, run after run.
    pub jobs: Vec<Job>,
    /// The runs, in order; their job counts add up to `jobs.len()`.
    pub runs: Vec<Run>,
}

impl Batch {
    /// Jobs in the batch.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// True when the batch holds no job.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Makes the jobs appended since `jobs.len()` was `start` one run of `conn`.
    pub fn end_run(&mut self, conn: ConnId, start: usize, credit: usize) {
        let jobs = (self.jobs.len() - start) as u32;
        if jobs > 0 {
            self.runs.push(Run { conn, jobs, credit });
        }
    }

    /// Moves the last run (its jobs and its entry) to the end of `other`.
    pub fn move_last_run(&mut self, other: &mut Batch) {
        if let Some(run) = self.runs.pop() {
            let start = self.jobs.len() - run.jobs as usize;
            other.jobs.extend(self.jobs.drain(start..));
            other.runs.push(run);
        }
    }

    /// Moves every run to the end of `other`.
    pub fn move_all(&mut self, other: &mut Batch) {
        other.jobs.append(&mut self.jobs);
        other.runs.append(&mut self.runs);
    }

    /// Calls `f` with each run and its jobs, in order, emptying the batch (its
    /// allocations are kept). Jobs `f` leaves unconsumed are dropped.
    pub fn drain_runs(&mut self, mut f: impl FnMut(Run, &mut dyn Iterator<Item = Job>)) {
        let Batch { jobs, runs } = self;
        let mut all = jobs.drain(..);
        for run in runs.drain(..) {
            let mut part = all.by_ref().take(run.jobs as usize);
            f(run, &mut part);
            part.for_each(drop);
        }
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.jobs.clear();
        self.runs.clear();
    }
}

/// What executing may spend on the thread running it: in all, and per run.
///
/// A per-run share keeps one client's long pipeline of expensive requests from
/// holding every other client in the batch behind it: each run gets its share, at
/// least one job, and what it did not get to comes back unstarted for a later batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    units: usize,
    per_run: usize,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Budget = Budget {
        units: usize::MAX,
        per_run: usize::MAX,
    };

    /// A budget of `units` in all (see [`REACTOR_BUDGET_UNITS`]), with no limit per run.
    pub fn new(units: usize) -> Budget {
        Budget {
            units,
            per_run: usize::MAX,
        }
    }

    /// A budget of `units` shared evenly by `runs` runs, at most `run_cap` each. Every
    /// run gets its first job whatever the others spent, so no run is starved: the
    /// batch spends at most about `units`, plus one job per run.
    pub fn shared(units: usize, runs: usize, run_cap: usize) -> Budget {
        Budget {
            units: usize::MAX,
            per_run: (units / runs.max(1)).min(run_cap),
        }
    }

    /// True once spent: no further job may start.
    pub fn is_spent(&self) -> bool {
        self.units == 0
    }
}

/// Where a batch's answers go.
pub trait Route {
    /// The sink type.
    type Sink: Sink;
    /// The sink for `conn`'s answers. A connection that is gone still gets one (whose
    /// contents are dropped): a request that was read runs whatever happened to its
    /// connection meanwhile, on every execution path alike.
    fn sink(&mut self, conn: ConnId) -> &mut Self::Sink;
    /// `answered` jobs of `conn`, in order, have their answers in its sink.
    fn finish(&mut self, conn: ConnId, answered: u32);
    /// Checked between runs once a run has executed: true stops the batch there, the
    /// rest left unstarted (a worker's heavy batch giving way to cheap work).
    fn interrupted(&self) -> bool {
        false
    }
}

/// Executes `batch` in order, sending answers through `route`.
///
/// A run's jobs start while its answers are under its credit, `budget` is not spent
/// (nor, past its first job, the run's share of it),
/// the server is not cancelling work ([`Context::cancel`]) and, past the first run that
/// executed, the route is not [interrupted](Route::interrupted). Jobs that did not
/// start are left in `batch`, in order, as runs with their original credits;
/// everything else is removed. Counts go to `tally`, and each committed write's change
/// (or a hole a failed write left) to `changes`, in the order the writes ran.
pub fn run_batch<R: Route>(
    ctx: &Context,
    batch: &mut Batch,
    route: &mut R,
    budget: &mut Budget,
    tally: &mut Tally,
    changes: &mut Vec<Change>,
) {
    let mut keep = 0;
    let mut kept_runs = 0;
    let mut start = 0;
    let mut stopped = false;
    for r in 0..batch.runs.len() {
        let run = batch.runs[r];
        let end = start + run.jobs as usize;
        let mut next = start;
        stopped = stopped || (start > 0 && route.interrupted());
        if !stopped && !budget.is_spent() && !ctx.cancelled() {
            let sink = route.sink(run.conn);
            let base = sink.len();
            let mut shared = sink.shared_len();
            // Units this run may still spend: its share, and never more than the total.
            let mut left = budget.per_run.min(budget.units);
            let mut spent = 0;
            let prefetch = batch.jobs.len() > 1;
            while next < end
                && (next == start || left > 0)
                && sink.len() - base < run.credit
                && !ctx.cancelled()
            {
                if prefetch {
                    prefetch_ahead(ctx, &batch.jobs, next);
                }
                let job = &batch.jobs[next];
                let len = sink.len();
                apply_counted(ctx, job, sink, tally, changes);
                // Charged: a heavy request's flat units, and the bytes it copied (long
                // values are shared, not copied).
                let now_shared = sink.shared_len();
                let units = cost::units_before(job) + (sink.len() - len) - (now_shared - shared);
                shared = now_shared;
                left = left.saturating_sub(units);
                spent += units;
                next += 1;
            }
            if sink.len() - base >= run.credit {
                tally.output_limit_reached += 1;
            }
            budget.units = budget.units.saturating_sub(spent);
            route.finish(run.conn, (next - start) as u32);
        }
        if next < end {
            // Keep the jobs that did not start: compact them to the front. Every slot
            // before `next` has been visited, so `keep <= next` holds a finished job.
            for i in next..end {
                batch.jobs.swap(keep, i);
                keep += 1;
            }
            batch.runs[kept_runs] = Run {
                jobs: (end - next) as u32,
                ..run
            };
            kept_runs += 1;
        }
        start = end;
    }
    batch.jobs.truncate(keep);
    batch.runs.truncate(kept_runs);
}

/// Executes one job, appends its answer to `out`, and publishes its counts at once;
/// a write's change is dropped. For tests and tools: the batch executor uses
/// [`apply_counted`] and publishes once per batch.
pub fn apply<S: Sink + ?Sized>(ctx: &Context, job: &Job, out: &mut S) {
    let mut tally = Tally::default();
    apply_counted(ctx, job, out, &mut tally, &mut Vec::new());
    ctx.stats.counters.absorb(&mut tally);
}

/// Executes one job ([`outcome::execute`]) and appends its answer to `out`
/// ([`encode::encode`]), counting it in `tally`, which the caller publishes with
/// [`Counters::absorb`](crate::stats::Counters::absorb); a write's change goes to
/// `changes`.
///
/// A panic while executing (a bug, never an input the protocol allows) is contained
/// here: whatever the job had written is discarded, the client gets INTERNAL_ERROR,
/// the event is counted, and the thread (the reactor, or a worker holding other
/// connections' answers) lives on. The store stays usable: its locks recover from
/// poisoning, a write either happened or did not, and a sequence number the write took
/// without committing is reported as a hole in the change stream.
pub fn apply_counted<S: Sink + ?Sized>(
    ctx: &Context,
    job: &Job,
    out: &mut S,
    tally: &mut Tally,
    changes: &mut Vec<Change>,
) {
    let before = out.len();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        outcome::execute(ctx, job, tally, changes, |outcome| {
            encode::encode(ctx, job, &outcome, out)
        });
    }));
    if result.is_err() {
        out.rollback(before);
        if let Some(seq) = store::change::take_uncommitted() {
            changes.push(Change::hole(seq));
        }
        tally.internal_errors += 1;
        let opcode = match &job.op {
            JobOp::Request(r) => r.opcode(),
            JobOp::Reject { opcode, .. } => *opcode,
        };
        protocol::encode::error(
            out.buf(),
            opcode,
            job.reply_to(),
            Status::INTERNAL_ERROR,
            b"internal error; the request may or may not have been applied",
        );
    }
}

/// The route of one connection's jobs run where the connection is at hand (tests,
/// fuzzing, embedding): answers straight into its output queue.
#[derive(Debug)]
pub struct IntoConnection<'a> {
    /// The connection.
    pub conn: &'a mut Connection,
    /// Where answers go once the connection no longer takes any.
    pub discard: Outgoing,
    /// The time to report answers at.
    pub now: Instant,
}

impl Route for IntoConnection<'_> {
    type Sink = Outgoing;

    fn sink(&mut self, _conn: ConnId) -> &mut Outgoing {
        match self.conn.sink() {
            Some(out) => out,
            None => &mut self.discard,
        }
    }

    fn finish(&mut self, _conn: ConnId, answered: u32) {
        self.conn.handle_answered(self.now, answered);
    }
}

/// Executes the run `conn` just handed out (the jobs in `batch`, which has no runs
/// recorded) against `ctx` with the connection's current output credit, and gives back
/// to it whatever did not start. Returns how many jobs ran; `batch` is left empty, its
/// allocations kept for the next run.
pub fn run_on(
    ctx: &Context,
    conn: &mut Connection,
    batch: &mut Batch,
    now: Instant,
    budget: &mut Budget,
    tally: &mut Tally,
    changes: &mut Vec<Change>,
) -> usize {
    let total = batch.len();
    batch.runs.clear();
    batch.end_run(conn.id(), 0, conn.output_credit());
    let mut route = IntoConnection {
        conn,
        discard: Outgoing::default(),
        now,
    };
    run_batch(ctx, batch, &mut route, budget, tally, changes);
    let ran = total - batch.len();
    let cancelled = ctx.cancelled();
    batch.drain_runs(|_, unrun| route.conn.handle_unrun(unrun, cancelled));
    ran
}

/// The route of a worker: every answer into one [`Answers`] buffer, in spans.
#[derive(Debug)]
pub struct IntoAnswers<'a>(pub &'a mut Answers);

impl Route for IntoAnswers<'_> {
    type Sink = Answers;

    fn sink(&mut self, _conn: ConnId) -> &mut Answers {
        self.0
    }

    fn finish(&mut self, conn: ConnId, answered: u32) {
        if answered > 0 {
            self.0.end_span(conn, answered);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::exec::outcome::tests::PANIC_KEY;
    use crate::job::ConnId;
    use crate::protocol::{Decoder, Limits, Request, RequestId, Response, ResponseBody};
    use bytes::Bytes;

    fn job(id: u32, request: Request) -> Job {
        Job {
            conn: ConnId {
                index: 0,
                generation: 0,
            },
            id: RequestId(id),
            version: crate::protocol::BASE_VERSION,
            op: JobOp::Request(request),
        }
    }

    #[test]
    fn a_write_that_panics_after_numbering_leaves_a_hole_in_the_changes() {
        let ctx = Context::new(Limits::default(), 0, 1);
        let mut out = crate::exec::sink::Answers::default();
        let mut changes = Vec::new();
        let mut tally = Tally::default();
        let put = |id, key: &'static [u8]| {
            job(
                id,
                Request::Put {
                    key: Bytes::from_static(key),
                    value: "v".into(),
                    ttl_ms: 0,
                },
            )
        };
        apply_counted(&ctx, &put(1, b"a"), &mut out, &mut tally, &mut changes);
        let failing = put(2, crate::store::tests::FAIL_AFTER_NUMBERING);
        apply_counted(&ctx, &failing, &mut out, &mut tally, &mut changes);
        apply_counted(&ctx, &put(3, b"b"), &mut out, &mut tally, &mut changes);
        let seqs: Vec<(u64, bool)> = changes
            .iter()
            .map(|c| (c.seq, c.op == crate::store::ChangeOp::Hole))
            .collect();
        assert_eq!(seqs, [(1, false), (2, true), (3, false)]);
        assert_eq!(tally.internal_errors, 1);
    }

    #[test]
    fn a_panic_becomes_internal_error_and_the_next_job_runs() {
        let ctx = Context::new(Limits::default(), 0, 1);
        let mut out = crate::exec::sink::Answers::default();
        apply(
            &ctx,
            &job(
                1,
                Request::Put {
                    key: "k".into(),
                    value: "v".into(),
                    ttl_ms: 0,
                },
            ),
            &mut out,
        );
        apply(
            &ctx,
            &job(
                2,
                Request::Get {
                    key: Bytes::from_static(PANIC_KEY),
                },
            ),
            &mut out,
        );
        apply(&ctx, &job(3, Request::Get { key: "k".into() }), &mut out);
        let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut out.buf).unwrap() {
            bodies.push(Response::decode(&frame).unwrap());
        }
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[1].request_id, RequestId(2));
        assert!(matches!(
            bodies[1].body,
            ResponseBody::Error {
                status: Status::INTERNAL_ERROR,
                ..
            }
        ));
        assert!(matches!(&bodies[2].body, ResponseBody::Value { value, .. } if value == "v"));
        assert_eq!(
            ctx.stats
                .counters
                .internal_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
