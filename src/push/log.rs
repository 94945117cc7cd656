//! `ChangeLog`: the most recent changes, kept to replay to subscribers that resume.
//!
//! The log holds the last `max_events` changes, or fewer when their bytes pass
//! `max_bytes`, oldest first. Every change numbered after [`base`](ChangeLog::base)
//! is in it (holes, which changed nothing, are not events), so a subscriber whose
//! cursor is at or after `base` can be given everything it lacks, and one before it
//! gets a GAP.
//!
//! The log keeps the changes themselves, moved in from the sequencer: their keys and
//! short values are inline copies the write already made, and long values are the
//! store's own buffers, shared. So logging a change copies and allocates nothing, and
//! an event is encoded only when some subscriber is sent it.

use crate::store::{Change, ChangeOp};
use std::collections::VecDeque;

/// Bytes an entry is charged besides its key and value: the change itself in the
/// queue.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Change>();

/// The bytes a change is charged.
fn charge(change: &Change) -> usize {
    let value = match &change.op {
        ChangeOp::Put(stored) => stored.as_bytes().len(),
        _ => 0,
    };
    ENTRY_OVERHEAD + change.key.as_bytes().len() + value
}

/// The bounded log of recent changes.
#[derive(Debug)]
pub struct ChangeLog {
    entries: VecDeque<Change>,
    bytes: usize,
    base: u64,
    last: u64,
    max_events: usize,
    max_bytes: usize,
}

impl ChangeLog {
    /// An empty log of a history whose changes so far end at `last`, holding at most
    /// `max_events` changes and `max_bytes` bytes.
    pub fn new(last: u64, max_events: usize, max_bytes: usize) -> ChangeLog {
        ChangeLog {
            entries: VecDeque::new(),
            bytes: 0,
            base: last,
            last,
            max_events,
            max_bytes,
        }
    }

    /// Every change numbered after this is in the log.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The last change the log has seen.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Changes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the log holds no change.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held, as charged against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends the newest change (a hole is only noted) and drops the oldest past the
    /// bounds.
    pub fn push(&mut self, change: Change) {
        debug_assert!(change.seq > self.last || self.entries.is_empty());
        self.last = self.last.max(change.seq);
        if matches!(change.op, ChangeOp::Hole) {
            if self.entries.is_empty() {
                self.base = self.last;
            }
            return;
        }
        self.bytes += charge(&change);
        self.entries.push_back(change);
        while self.entries.len() > self.max_events || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= charge(&old);
            self.base = old.seq;
        }
        if self.entries.is_empty() {
            // Nothing held: every change up to the last is out of reach.
            self.base = self.last;
        }
    }

    /// The position of the first entry numbered after `seq`.
    pub fn position_after(&self, seq: u64) -> usize {
        self.entries.partition_point(|e| e.seq <= seq)
    }

    /// The change at `position`.
    pub fn get(&self, position: usize) -> Option<&Change> {
        self.entries.get(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn log_of(store: &Store, log: &mut ChangeLog, n: usize, value: &[u8]) {
        for i in 0..n {
            log.push(store.put(format!("k{i}").as_bytes(), value).unwrap());
        }
    }

    #[test]
    fn keeps_the_last_events_and_knows_where_it_is_complete() {
        let store = Store::new(0);
        let mut log = ChangeLog::new(0, 3, usize::MAX);
        log_of(&store, &mut log, 5, b"v");
        assert_eq!(log.len(), 3);
        assert_eq!(log.base(), 2, "changes 3..=5 are held");
        assert_eq!(log.last(), 5);
        assert_eq!(log.position_after(2), 0);
        assert_eq!(log.position_after(4), 2);
        assert_eq!(log.get(2).unwrap().key.as_bytes(), b"k4");
        assert_eq!(log.get(2).unwrap().seq, 5);
    }

    #[test]
    fn the_byte_bound_binds_first_when_values_are_large() {
        let store = Store::new(0);
        let value = vec![b'x'; 4000];
        let each = ENTRY_OVERHEAD + 2 + 4000;
        let mut log = ChangeLog::new(0, 1000, 3 * each);
        log_of(&store, &mut log, 10, &value);
        assert_eq!(log.len(), 3);
        assert!(log.bytes() <= 3 * each);
        assert_eq!(log.base(), 7);
    }

    #[test]
    fn an_entry_larger_than_the_bound_passes_through_and_moves_the_base() {
        let store = Store::new(0);
        let mut log = ChangeLog::new(0, 10, 100);
        log_of(&store, &mut log, 1, &[b'x'; 500]);
        assert!(log.is_empty());
        assert_eq!(log.base(), 1);
    }

    #[test]
    fn holes_are_seen_but_not_held() {
        let mut log = ChangeLog::new(0, 10, usize::MAX);
        log.push(Change::hole(1));
        assert_eq!(log.last(), 1);
        assert!(log.is_empty());
        assert_eq!(log.base(), 1, "nothing to replay up to the hole");
    }
}
