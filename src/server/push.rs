//! The reactor's side of push: changes from the sequencer into the change log and to
//! live subscribers, and once per loop iteration what executing left (messages,
//! replays to start, connections that now hold subscriptions), the replays of
//! subscribers whose output drained, and the periodic PROGRESS and keepalive.
//!
//! Pushes are written when the reactor is about to wait (a poll that found nothing
//! new), or [`PUSH_FLUSH_DELAY`] after the first unwritten one, whichever is first, as
//! Redis writes its replies before it sleeps: while publishers keep the reactor busy,
//! each subscriber's pushes go out in fewer, larger writes (each write to a
//! subscriber costs a system call and a wake-up of its reader, far more than the
//! bytes), and an idle server writes at once.

use super::registry::Registry;
use super::Server;
use crate::job::ConnId;
use crate::push::deliver::{Replay, Targets};
use crate::push::Hub;
use crate::sequencer::Sequencer;
use crate::store::Change;
use socket2::{SockRef, TcpKeepalive};
use std::time::{Duration, Instant};

/// How often the periodic push work runs while any connection holds a subscription:
/// the granularity of PROGRESS intervals and keepalive.
pub(super) const PUSH_TICK: Duration = Duration::from_millis(100);

/// The longest a push waits to be written while the reactor stays busy.
pub(super) const PUSH_FLUSH_DELAY: Duration = Duration::from_micros(200);

/// The registry as push's view of the connections; touched ones wait in `pending` to
/// be written.
pub(super) struct RegistryTargets<'a> {
    pub(super) registry: &'a mut Registry,
    pub(super) pending: &'a mut Vec<ConnId>,
}

impl Targets for RegistryTargets<'_> {
    fn conn(&mut self, id: ConnId) -> Option<&mut crate::conn::Connection> {
        self.registry.get_mut(id).map(|slot| &mut slot.conn)
    }

    fn touched(&mut self, id: ConnId) {
        if let Some(slot) = self.registry.get_mut(id) {
            if !slot.push_pending {
                slot.push_pending = true;
                self.pending.push(id);
            }
        }
    }
}

/// Feeds `changes` to the sequencer, and each change it emits, in order, to the
/// listeners, to the write-ahead log, and to push (at once, or once the change is
/// durable when events must wait for that).
pub(super) fn sequence(
    sequencer: &mut Sequencer,
    listeners: &mut [super::ChangeListener],
    hub: &Hub,
    mut gate: Option<&mut super::durable::Gate>,
    targets: &mut RegistryTargets<'_>,
    changes: &mut Vec<Change>,
    now: Instant,
) {
    if changes.is_empty() {
        return;
    }
    let mut push = hub.lock();
    sequencer.accept_all(changes, |c| {
        for listen in listeners.iter_mut() {
            listen(&c);
        }
        let c = match gate.as_deref_mut() {
            Some(gate) => match gate.emitted(c) {
                Some(c) => c,
                None => return,
            },
            None => c,
        };
        push.on_change(c, now, targets);
    });
    if let Some(gate) = gate {
        gate.log.submit();
    }
}

impl Server {
    /// Hands the changes of a run or batch to the sequencer, which emits what is now in
    /// order to the listeners and to push.
    pub(super) fn sequence(&mut self, changes: &mut Vec<Change>, now: Instant) {
        let mut targets = RegistryTargets {
            registry: &mut self.registry,
            pending: &mut self.push_flush,
        };
        sequence(
            &mut self.sequencer,
            &mut self.listeners,
            &self.ctx.push,
            self.durable.as_mut(),
            &mut targets,
            changes,
            now,
        );
    }

    /// Delivers what executing left for push, replays to subscribers that have room
    /// again, and the periodic work when it is due.
    pub(super) fn deliver_push(&mut self, now: Instant) {
        let pending = self.ctx.push.take_pending();
        let tick = self.subscribers > 0 && now >= self.push_tick_at;
        if !pending && !tick && self.push_ready.is_empty() {
            return;
        }
        let ctx = self.ctx.clone();
        let mut state = ctx.push.lock();
        let mut notices = std::mem::take(&mut self.push_notices);
        let mut ready = std::mem::take(&mut self.push_ready);
        let mut targets = RegistryTargets {
            registry: &mut self.registry,
            pending: &mut self.push_flush,
        };
        if pending {
            state.deliver_pending(now, &mut targets, |c, s| notices.push((c, s)), &mut ready);
        }
        if tick {
            state.tick(now, &mut targets);
            self.push_tick_at = now + PUSH_TICK;
        }
        // The replays share one budget per iteration; connections it does not reach,
        // or whose replay it cut short, go first next time.
        let mut budget = crate::push::REPLAY_BUDGET;
        let mut left = Vec::new();
        for id in ready.drain(..) {
            if budget == 0 || state.catch_up(id, now, &mut targets, &mut budget) == Replay::Budget {
                left.push(id);
            }
        }
        drop(state);
        self.push_ready = left;
        for (id, subscribed) in notices.drain(..) {
            self.note_subscribed(id, subscribed);
        }
        self.push_notices = notices;
    }

    /// Writes the pushes waiting, when the reactor found nothing new to do (`idle`) or
    /// the first of them has waited [`PUSH_FLUSH_DELAY`].
    pub(super) fn flush_pushes(&mut self, now: Instant, idle: bool) {
        if self.push_flush.is_empty() {
            self.push_flush_since = None;
            return;
        }
        let since = *self.push_flush_since.get_or_insert(now);
        if !idle && now.saturating_duration_since(since) < PUSH_FLUSH_DELAY {
            return;
        }
        let mut pending = std::mem::take(&mut self.push_flush);
        for id in pending.drain(..) {
            if let Some(slot) = self.registry.get_mut(id) {
                slot.push_pending = false;
                self.flush(id, now);
            }
        }
        self.push_flush = pending;
        self.push_flush_since = None;
    }

    /// A connection now holds subscriptions, or no longer does.
    fn note_subscribed(&mut self, id: ConnId, subscribed: bool) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if slot.conn.subscribed() == subscribed {
            return;
        }
        slot.conn.set_subscribed(subscribed);
        if subscribed {
            self.subscribers += 1;
            // A quiet subscriber is judged alive by TCP: keepalive probes, and a limit
            // on how long sent data may go unacknowledged.
            let keepalive = self.push_keepalive;
            let sock = SockRef::from(&slot.stream);
            let _ = sock.set_tcp_keepalive(
                &TcpKeepalive::new()
                    .with_time(keepalive)
                    .with_interval(keepalive / 3)
                    .with_retries(3),
            );
            let _ = sock.set_tcp_user_timeout(Some(keepalive * crate::push::KEEPALIVE_MISSES));
        } else {
            self.subscribers -= 1;
        }
        let deadline = slot.deadline();
        self.arm_timer(id, deadline, Instant::now());
    }

    /// A closing connection's subscriptions are forgotten.
    pub(super) fn forget_subscriptions(&mut self, id: ConnId, subscribed: bool) {
        if subscribed {
            self.subscribers -= 1;
        }
        if subscribed || self.ctx.push.has_subscriptions() {
            self.ctx.push.drop_conn(id);
        }
    }
}
