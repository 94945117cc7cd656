//! Stopping: what the server does between SIGTERM (or SIGINT, or the shutdown handle)
//! and the end of [`Server::run`](super::Server::run).
//!
//! 1. Stop accepting (the listener is dropped) and stop reading: every connection
//!    answers what it has read, then sends a GOAWAY counting the requests it handled
//!    (after a final PROGRESS for each subscription), then closes. A connection with
//!    nothing in flight does this at once, so idle connections do not hold a stop up.
//! 2. Requests keep executing until the *execution deadline*, the stop timeout less a
//!    reserve for delivering answers ([`execution_deadline`]). Then the server cancels
//!    work: no request starts any more, workers hand back what they hold at once, and
//!    every request read and not executed is answered SHUTTING_DOWN, so each client
//!    knows exactly which of its requests ran.
//! 3. The run ends when every connection has closed, or at the stop timeout with
//!    whatever a client did not read left unsent (counted and logged).
//!
//! A second signal ends the run at once; dropping the pool then takes at most one
//! request's time, since the workers see the cancellation.

use super::Server;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The deadlines of a stop in progress.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stopping {
    /// When requests not yet started are cancelled.
    cancel_at: Instant,
    /// When the run ends whatever is left.
    deadline: Instant,
    /// Work was cancelled.
    cancelled: bool,
}

impl Stopping {
    /// The next of its deadlines still ahead.
    pub(super) fn next_deadline(&self) -> Instant {
        if self.cancelled {
            self.deadline
        } else {
            self.cancel_at
        }
    }
}

/// How long into a stop of `timeout` requests keep executing: all but a fifth of it,
/// at most a second less, which is left for answering and flushing.
pub(super) fn execution_deadline(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 5).min(Duration::from_secs(1)))
}

impl Server {
    /// Starts a graceful stop (once).
    pub(super) fn begin_shutdown(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        let timeout = self.shutdown_timeout;
        self.ctx.draining.store(true, Ordering::Relaxed);
        self.stopping = Some(Stopping {
            cancel_at: now + execution_deadline(timeout),
            deadline: now + timeout,
            cancelled: false,
        });
        tracing::info!(
            "shutting down; answering what {} connection(s) sent \
             (up to {:.1} s; a second signal stops at once)",
            self.registry.len(),
            timeout.as_secs_f64()
        );
        // Dropping the listener closes it: new connections are refused from here on.
        self.listener = None;
        self.plaintext_listener = None;
        for id in self.registry.ids() {
            if let Some(slot) = self.registry.get_mut(id) {
                slot.conn.handle_shutdown();
                if !slot.queued {
                    slot.queued = true;
                    self.queue.push(id);
                }
            }
        }
        self.service_queue(now);
    }

    /// Advances a stop in progress; true when the run should end.
    pub(super) fn stopped(&mut self, now: Instant) -> bool {
        let Some(mut stopping) = self.stopping else {
            return false;
        };
        if !stopping.cancelled && now >= stopping.cancel_at {
            stopping.cancelled = true;
            self.stopping = Some(stopping);
            self.cancel_work(now);
        }
        if self.registry.is_empty() {
            return true;
        }
        if now >= stopping.deadline {
            let owed = self
                .registry
                .iter()
                .filter(|slot| slot.conn.pending_output() > 0 || slot.conn.in_flight() > 0)
                .count();
            tracing::warn!(
                "stop timeout: closing {} connection(s), {owed} of them with \
                 answers their clients did not take",
                self.registry.len()
            );
            return true;
        }
        false
    }

    /// Stops executing: nothing starts any more, and everything read and not started
    /// is answered SHUTTING_DOWN (jobs at workers as they come back).
    fn cancel_work(&mut self, now: Instant) {
        self.ctx.cancel.store(true, Ordering::Relaxed);
        tracing::warn!("stop: no more requests are executed; the rest are told so");
        for id in self.registry.ids() {
            if let Some(slot) = self.registry.get_mut(id) {
                slot.conn.handle_cancel(now);
                if !slot.queued {
                    slot.queued = true;
                    self.queue.push(id);
                }
            }
        }
        self.service_queue(now);
    }
}

#[cfg(test)]
mod tests {
    use super::execution_deadline;
    use std::time::Duration;

    #[test]
    fn execution_stops_a_fifth_before_the_deadline_at_most_a_second() {
        let s = Duration::from_secs;
        assert_eq!(execution_deadline(s(5)), s(4));
        assert_eq!(execution_deadline(s(60)), s(59));
        assert_eq!(execution_deadline(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            execution_deadline(Duration::from_millis(500)),
            Duration::from_millis(400)
        );
    }
}
