//! The reactor's side of durability: changes go to the log as the sequencer emits
//! them; answers that reveal a change wait in their connection's queue, and change
//! events wait here, until the log thread reports the change durable.
//!
//! Answers are held where they are encoded (see `Sink::durable`): a write's answer
//! waits for its own change, a read's for the version it read. Everything behind a
//! held answer on that connection waits with it, and nothing else does: a GET of a
//! record that is already on disk goes out at once while writes wait for their sync.

use super::Server;
use crate::durability::Durability;
use crate::job::ConnId;
use crate::store::Change;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Durability as the reactor keeps it.
#[derive(Debug)]
pub(super) struct Gate {
    pub(super) log: Durability,
    /// Answers and events wait for durability (`--fsync always`).
    holds: bool,
    /// The durable sequence last released to connections and push.
    released: u64,
    /// Changes emitted and not yet durable, in order: their events wait.
    waiting: VecDeque<Change>,
    /// Connections with held output.
    holding: Vec<ConnId>,
}

impl Gate {
    pub(super) fn new(log: Durability) -> Gate {
        Gate {
            holds: log.holds(),
            released: log.durable(),
            log,
            waiting: VecDeque::new(),
            holding: Vec::new(),
        }
    }

    /// One emitted change: logged, and its events held when they must wait. Returns
    /// the change when push may have it now.
    pub(super) fn emitted(&mut self, change: Change) -> Option<Change> {
        self.log.append(&change);
        if self.holds {
            self.waiting.push_back(change);
            None
        } else {
            Some(change)
        }
    }
}

impl Server {
    /// After answers were appended to `id`: if some are held, the connection waits
    /// for the next release.
    pub(super) fn note_held(&mut self, id: ConnId) {
        let Some(gate) = &mut self.durable else {
            return;
        };
        if let Some(slot) = self.registry.get_mut(id) {
            if !slot.durable_wait && slot.conn.is_holding() {
                slot.durable_wait = true;
                gate.holding.push(id);
            }
        }
    }

    /// Releases what waited for changes the log thread has since made durable: held
    /// answers, which are then written, and change events.
    pub(super) fn release_durable(&mut self, now: Instant) {
        let Some(gate) = &mut self.durable else {
            return;
        };
        let durable = gate.log.durable();
        if durable <= gate.released {
            return;
        }
        gate.released = durable;
        if gate.holds {
            self.ctx.durable.store(durable, Ordering::Release);
        }
        let mut holding = std::mem::take(&mut gate.holding);
        let mut still = Vec::new();
        for id in holding.drain(..) {
            let Some(slot) = self.registry.get_mut(id) else {
                continue;
            };
            slot.conn.handle_released(durable);
            if slot.conn.is_holding() {
                still.push(id);
            } else {
                slot.durable_wait = false;
            }
            if !slot.queued {
                slot.queued = true;
                self.queue.push(id);
            }
        }
        let Some(gate) = &mut self.durable else {
            return;
        };
        gate.holding = still;
        if gate.waiting.front().is_some_and(|c| c.seq <= durable) {
            let mut targets = super::push::RegistryTargets {
                registry: &mut self.registry,
                pending: &mut self.push_flush,
            };
            let mut push = self.ctx.push.lock();
            while gate.waiting.front().is_some_and(|c| c.seq <= durable) {
                let change = gate.waiting.pop_front().expect("checked");
                push.on_change(change, now, &mut targets);
            }
        }
        self.service_queue(now);
    }
}
