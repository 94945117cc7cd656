//! The reactor's deadlines: one heap entry per armed connection deadline, so the poll
//! timeout comes from the earliest without scanning every connection.
//!
//! A connection's deadlines move (activity pushes its idle deadline back); the heap
//! keeps at most one live entry per connection, the earliest, and stale entries are
//! skipped when they surface. Two rules make it impossible to spin on a deadline that
//! is already past, whatever a connection returns:
//! * a pass fires only the entries due when it started, so re-arming during the pass
//!   cannot keep it going;
//! * a deadline is never armed at or before the `now` it is armed at: it is moved to
//!   [`TIMER_STEP`] later, so a connection that handles a timeout without leaving its
//!   state is polled at most once per step, not in a loop.

use super::Server;
use crate::job::ConnId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The least time between arming a deadline and its firing.
pub(super) const TIMER_STEP: Duration = Duration::from_millis(1);

/// Deadlines by connection, earliest first.
#[derive(Debug, Default)]
pub(super) struct Heap {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Scratch for one pass's due entries.
    due: Vec<(Instant, ConnId)>,
}

impl Heap {
    /// The earliest deadline in the heap (possibly stale).
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn push(&mut self, at: Instant, id: ConnId) {
        self.heap.push(Reverse((at, id.index, id.generation)));
    }

    /// Moves every entry due at `now` into the scratch list.
    fn take_due(&mut self, now: Instant) {
        self.due.clear();
        while let Some(Reverse((at, index, generation))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            self.due.push((at, ConnId { index, generation }));
        }
    }
}

impl Server {
    /// Makes sure the heap holds `deadline` for `id`, if it is earlier than the one it
    /// holds; a deadline not after `now` is moved to `now + TIMER_STEP`.
    pub(super) fn arm_timer(&mut self, id: ConnId, deadline: Option<Instant>, now: Instant) {
        let Some(at) = deadline else {
            return;
        };
        let at = at.max(now + TIMER_STEP);
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if slot.timer.is_none_or(|t| at < t) {
            slot.timer = Some(at);
            self.timers.push(at, id);
        }
    }

    /// Fires the deadlines due at `now`: those in the heap when the pass began.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        self.timers.take_due(now);
        let due = std::mem::take(&mut self.timers.due);
        for &(at, id) in &due {
            let Some(slot) = self.registry.get_mut(id) else {
                continue;
            };
            if slot.timer != Some(at) {
                continue; // superseded by an earlier deadline
            }
            slot.timer = None;
            if let Some(reason) = slot.tls.as_mut().and_then(|t| t.expire(now)) {
                slot.conn.handle_reset(reason);
            }
            slot.conn.handle_timeout(now);
            self.flush(id, now);
        }
        self.timers.due = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_takes_only_what_was_due_when_it_began() {
        let mut heap = Heap::default();
        let now = Instant::now();
        let id = |index| ConnId {
            index,
            generation: 0,
        };
        heap.push(now - Duration::from_secs(1), id(1));
        heap.push(now, id(2));
        heap.push(now + Duration::from_secs(1), id(3));
        heap.take_due(now);
        let due: Vec<u32> = heap.due.iter().map(|(_, id)| id.index).collect();
        assert_eq!(due, [1, 2]);
        // Re-arming in the past during the pass does not extend it.
        heap.push(now - Duration::from_secs(5), id(1));
        assert_eq!(heap.due.len(), 2);
        assert_eq!(heap.next(), Some(now - Duration::from_secs(5)));
    }
}
