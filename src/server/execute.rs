//! Executing on the reactor and handing off to workers: this iteration's cheap runs
//! run here within a budget, the rest go to the pool, and finished batches come back
//! to their connections.
//!
//! Which runs are cheap is [`cost::is_cheap`](crate::exec::cost::is_cheap)'s call,
//! made per connection when its run is handed out (`service`): a client sending SCANs
//! does not send another's GETs to a worker with it. The iteration's cheap runs stay
//! here while they number at most `--inline-max-batch` jobs in all: for small requests
//! a hand-off costs about as much as the work. Past that the pool takes them too, on
//! its cheap lane, and runs them beside the reactor's I/O ahead of heavy work.

use super::Server;
use crate::conn::Outgoing;
use crate::exec::{self, Budget, Route, REACTOR_BUDGET_UNITS};
use crate::job::ConnId;
use crate::server::registry::Registry;
use crate::stats::latency;
use crate::worker::Lane;
use std::time::Instant;

/// The route of requests run on the reactor: each answer straight into its
/// connection's output queue (one copy, or none for long values).
pub(super) struct RegistryRoute<'a> {
    pub(super) registry: &'a mut Registry,
    /// Answers to connections that closed meanwhile go here and are dropped.
    pub(super) discard: &'a mut Outgoing,
    pub(super) now: Instant,
    /// Where answered runs are noted; the caller files them once the batch is done
    /// ([`latency::Tally::delivered_now`]).
    pub(super) latency: &'a mut latency::Tally,
    /// The durable sequence answers are judged against (see `Sink::durable`).
    pub(super) durable: u64,
}

impl Route for RegistryRoute<'_> {
    type Sink = Outgoing;

    fn sink(&mut self, conn: ConnId) -> &mut Outgoing {
        if let Some(out) = self.registry.get_mut(conn).and_then(|s| s.conn.sink()) {
            out.set_durable(self.durable);
            return out;
        }
        self.discard.clear();
        self.discard
    }

    fn finish(&mut self, conn: ConnId, answered: u32) {
        if let Some(slot) = self.registry.get_mut(conn) {
            if answered > 0 {
                self.latency.answered(slot.run_since, answered);
            }
            slot.conn.handle_answered(self.now, answered);
        }
    }
}

impl Server {
    /// Runs this iteration's cheap runs here (or hands them to the pool when there are
    /// too many), then hands each worker its batch; a full queue keeps the batch for
    /// the next iteration.
    pub(super) fn dispatch(&mut self, now: Instant) {
        let Some(pool) = &self.pool else {
            return;
        };
        if self.inline.len() > self.inline_max_batch {
            let mut inline = std::mem::take(&mut self.inline);
            while let Some(run) = inline.runs.last() {
                let worker = pool.worker_for(run.conn);
                inline.move_last_run(&mut self.batches[worker][Lane::Cheap as usize]);
            }
            self.inline = inline;
        }
        if !self.inline.is_empty() {
            self.run_inline(now);
        }
        let Some(pool) = &self.pool else {
            return;
        };
        for (n, lanes) in self.batches.iter_mut().enumerate() {
            for (lane, batch) in [Lane::Cheap, Lane::Heavy].into_iter().zip(lanes.iter_mut()) {
                if batch.is_empty() {
                    continue;
                }
                let next = self.spare.pop().unwrap_or_default();
                let full = std::mem::replace(batch, next);
                let jobs = full.len();
                match pool.try_send(n, lane, full) {
                    Ok(()) => {
                        self.worker_requests += jobs;
                        self.worker_batches += 1;
                    }
                    Err(back) => {
                        let empty = std::mem::replace(batch, back);
                        self.spare.push(empty);
                    }
                }
            }
        }
    }

    /// Executes the iteration's cheap runs on the reactor, within the budget, and
    /// writes the answers out.
    fn run_inline(&mut self, now: Instant) {
        let mut touched = std::mem::take(&mut self.queue);
        touched.extend(self.inline.runs.iter().map(|r| r.conn));
        let mut route = RegistryRoute {
            registry: &mut self.registry,
            discard: &mut self.discard,
            now,
            latency: &mut self.latency,
            durable: self.ctx.durable.load(std::sync::atomic::Ordering::Relaxed),
        };
        let mut budget = Budget::new(REACTOR_BUDGET_UNITS);
        let mut changes = std::mem::take(&mut self.changes);
        exec::run_batch(
            &self.ctx,
            &mut self.inline,
            &mut route,
            &mut budget,
            &mut self.tally,
            &mut changes,
        );
        self.latency.delivered_now();
        self.sequence(&mut changes, now);
        self.changes = changes;
        self.return_unrun_inline();
        for id in touched.drain(..) {
            self.flush(id, now);
        }
        self.queue = touched;
    }

    /// Gives the jobs a run on the reactor did not start back to their connections.
    pub(super) fn return_unrun_inline(&mut self) {
        let cancelled = self.ctx.cancelled();
        let registry = &mut self.registry;
        self.inline.drain_runs(|run, jobs| {
            if let Some(slot) = registry.get_mut(run.conn) {
                slot.conn.handle_unrun(jobs, cancelled);
            }
        });
    }

    /// Delivers finished batches to their connections and writes them out.
    pub(super) fn complete(&mut self, now: Instant) {
        let Some(pool) = &self.pool else {
            return;
        };
        let cancelled = self.ctx.cancelled();
        let durable = self.ctx.durable.load(std::sync::atomic::Ordering::Relaxed);
        let mut touched = std::mem::take(&mut self.queue);
        while let Some(mut done) = pool.try_recv() {
            self.worker_requests -= done.jobs;
            self.worker_batches -= 1;
            for (span, base, bytes, shared) in done.answers.iter() {
                // A connection that closed meanwhile is gone, and so are its answers.
                if let Some(slot) = self.registry.get_mut(span.conn) {
                    self.latency.answered(slot.run_since, span.answered);
                    if span.hold > durable {
                        slot.conn.hold_output_until(span.hold);
                    }
                    slot.conn
                        .handle_answers(now, span.answered, bytes, shared, base);
                    if !slot.queued {
                        slot.queued = true;
                        touched.push(span.conn);
                    }
                }
            }
            // The batch's answers are queued: one clock reading files them all.
            self.latency.delivered_now();
            let registry = &mut self.registry;
            done.unrun.drain_runs(|run, jobs| {
                if let Some(slot) = registry.get_mut(run.conn) {
                    slot.conn.handle_unrun(jobs, cancelled);
                    if !slot.queued {
                        slot.queued = true;
                        touched.push(run.conn);
                    }
                }
            });
            self.spare.push(std::mem::take(&mut done.unrun));
            let mut targets = super::push::RegistryTargets {
                registry: &mut self.registry,
                pending: &mut self.push_flush,
            };
            super::push::sequence(
                &mut self.sequencer,
                &mut self.listeners,
                &self.ctx.push,
                self.durable.as_mut(),
                &mut targets,
                &mut done.changes,
                now,
            );
            pool.recycle(done);
        }
        self.queue = touched;
        // Servicing writes the answers, and hands out the connections' next runs.
        self.service_queue(now);
    }
}
