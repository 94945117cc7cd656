//! `Sequencer`: the changes of every executor, put back in sequence order.
//!
//! Writes take their numbers from the store's one counter under their shard's lock,
//! so numbers are unique and, per key, in the order the writes applied; but the
//! reactor's inline runs and each worker commit at their own pace, and their batches
//! of changes reach the reactor in any order. The sequencer holds a change whose
//! number is ahead of the next one expected, and emits every change exactly once, in
//! strictly increasing order, as soon as the numbers before it have arrived.
//!
//! # Bounds
//! Every number the counter hands out becomes a change or a hole (see
//! `store::change`), and every change travels back to the reactor with its batch, so
//! a gap only lasts while a batch is in flight: what the sequencer holds is bounded by
//! the changes in flight (the workers' queues, each of bounded batches). Nothing in it
//! waits on a client.

use crate::store::Change;
use std::collections::VecDeque;

/// Changes in, one ordered stream out.
#[derive(Debug)]
pub struct Sequencer {
    /// The number of the next change to emit.
    next: u64,
    /// Changes ahead of `next`: slot `i` holds number `next + i`, if it has arrived.
    waiting: VecDeque<Option<Change>>,
    /// How many of `waiting`'s slots hold a change.
    held: usize,
}

impl Sequencer {
    /// A sequencer whose stream continues after number `last` (the store's counter
    /// when the server starts: 0 for an empty store).
    pub fn new(last: u64) -> Sequencer {
        Sequencer {
            next: last + 1,
            waiting: VecDeque::new(),
            held: 0,
        }
    }

    /// The number of the last change emitted.
    pub fn emitted(&self) -> u64 {
        self.next - 1
    }

    /// Changes held while an earlier number is missing.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes a batch's changes (in the order they ran; batches in any order) and emits
    /// through `emit` every change that is now next in order, leaving `changes` empty
    /// (its allocation kept).
    ///
    /// A batch that continues the stream with nothing held, the usual case, goes
    /// straight through, without being held.
    pub fn accept_all(&mut self, changes: &mut Vec<Change>, mut emit: impl FnMut(Change)) {
        let in_order = self.waiting.is_empty()
            && changes
                .iter()
                .enumerate()
                .all(|(i, c)| c.seq == self.next + i as u64);
        if in_order {
            self.next += changes.len() as u64;
            for change in changes.drain(..) {
                emit(change);
            }
            return;
        }
        for change in changes.drain(..) {
            self.accept(change, &mut emit);
        }
    }

    /// Takes `change`, in any order, and emits through `emit` every change that is now
    /// next in order.
    ///
    /// A number already emitted or already held is a bug in the numbering; it is
    /// dropped (debug builds assert).
    pub fn accept(&mut self, change: Change, mut emit: impl FnMut(Change)) {
        if change.seq == self.next && self.waiting.is_empty() {
            // In order: the common case, through without being held.
            self.next += 1;
            emit(change);
            return;
        }
        let Some(offset) = change.seq.checked_sub(self.next) else {
            debug_assert!(false, "change {} arrived after it was emitted", change.seq);
            return;
        };
        let offset = offset as usize;
        if self.waiting.len() <= offset {
            self.waiting.resize(offset + 1, None);
        }
        let slot = &mut self.waiting[offset];
        debug_assert!(slot.is_none(), "change {} arrived twice", change.seq);
        if slot.is_none() {
            self.held += 1;
        }
        *slot = Some(change);
        while let Some(Some(_)) = self.waiting.front() {
            let change = self.waiting.pop_front().flatten().expect("checked above");
            self.held -= 1;
            self.next += 1;
            emit(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn changes(n: u64) -> Vec<Change> {
        let store = Store::new(0);
        (0..n)
            .map(|i| store.put(format!("k{}", i % 3).as_bytes(), b"v").unwrap())
            .collect()
    }

    #[test]
    fn changes_in_any_order_come_out_in_order_once() {
        let all = changes(50);
        // Every permutation pattern a few batches in flight make: reversed blocks.
        let mut shuffled: Vec<Change> = Vec::new();
        for block in all.chunks(7).rev() {
            shuffled.extend(block.iter().rev().cloned());
        }
        let mut seq = Sequencer::new(0);
        let mut out = Vec::new();
        for c in shuffled {
            seq.accept(c, |c| out.push(c.seq));
        }
        assert_eq!(out, (1..=50).collect::<Vec<_>>());
        assert_eq!(seq.emitted(), 50);
        assert_eq!(seq.held(), 0);
    }

    #[test]
    fn batches_in_order_pass_through_and_out_of_order_ones_wait() {
        let all = changes(9);
        let mut seq = Sequencer::new(0);
        let mut out = Vec::new();
        let mut batch = all[0..3].to_vec();
        seq.accept_all(&mut batch, |c| out.push(c.seq));
        assert!(batch.is_empty());
        let mut later = all[6..9].to_vec();
        seq.accept_all(&mut later, |c| out.push(c.seq));
        assert_eq!(out, [1, 2, 3], "the later batch waits for 4..6");
        let mut middle = all[3..6].to_vec();
        seq.accept_all(&mut middle, |c| out.push(c.seq));
        assert_eq!(out, (1..=9).collect::<Vec<_>>());
        assert_eq!(seq.held(), 0);
    }

    #[test]
    fn a_gap_holds_what_follows_until_it_fills() {
        let all = changes(3);
        let mut seq = Sequencer::new(0);
        let mut out = Vec::new();
        seq.accept(all[2].clone(), |c| out.push(c.seq));
        seq.accept(all[1].clone(), |c| out.push(c.seq));
        assert!(out.is_empty());
        assert_eq!(seq.held(), 2);
        seq.accept(all[0].clone(), |c| out.push(c.seq));
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn a_stream_continues_after_the_stores_counter() {
        let mut seq = Sequencer::new(41);
        let mut out = Vec::new();
        seq.accept(Change::hole(42), |c| out.push(c.seq));
        assert_eq!(out, [42]);
    }
}
