//! `ChangeLog`: the most recent changes, kept to replay to subscribers that resume.
//!
//! The log holds the last `max_events` changes, or fewer when their bytes pass
//! `max_bytes`, oldest first. Every change numbered after [`base`](ChangeLog::base)
//! is in it (holes, which changed nothing, are not events), so a subscriber whose
//! cursor is at or after `base` can be given everything it lacks, and one before it
//! gets a GAP.
//!
//! Each entry is an EVENT body, encoded once: the head (sequence, kind, key) and the
//! value. Heads and short values are written into a shared chunk of memory and
//! sliced, so logging a change allocates nothing; a long value is the store's own
//! buffer, shared. Chunks are freed in order as entries leave, so the log holds at
//! most its byte bound plus one partly used chunk.

use crate::protocol::push::{encode_event_body, EventKind, EVENT_OVERHEAD};
use crate::store::{Change, ChangeOp};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Bytes an entry is charged besides its body: its place in the queue and the
/// references to its bytes.
pub const ENTRY_OVERHEAD: usize = 64;

/// Size of the chunks heads and short values are written into.
const CHUNK_BYTES: usize = 64 << 10;

/// Values at least this long are shared with the store, not copied.
const SHARE_BYTES: usize = 1024;

/// One logged change: an EVENT body after its `sub_id`, in two parts.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The change's sequence number.
    pub seq: u64,
    /// `seq | kind | key_len | key`.
    pub head: Bytes,
    /// The new value (empty for a delete).
    pub value: Bytes,
}

impl Entry {
    /// The key changed.
    pub fn key(&self) -> &[u8] {
        &self.head[EVENT_OVERHEAD..]
    }

    /// Bytes of the EVENT body after `sub_id`.
    pub fn body_len(&self) -> usize {
        self.head.len() + self.value.len()
    }

    fn charge(&self) -> usize {
        self.body_len() + ENTRY_OVERHEAD
    }
}

/// The bounded log of recent changes.
#[derive(Debug)]
pub struct ChangeLog {
    entries: VecDeque<Entry>,
    bytes: usize,
    base: u64,
    last: u64,
    max_events: usize,
    max_bytes: usize,
    chunk: BytesMut,
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
            chunk: BytesMut::new(),
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

    /// The entry for a change, or `None` for a hole. Call [`push`](Self::push) with
    /// it next, in order.
    pub fn entry(&mut self, change: &Change) -> Option<Entry> {
        let (kind, value): (EventKind, &[u8]) = match &change.op {
            ChangeOp::Put(stored) => (EventKind::Put, stored.as_bytes()),
            ChangeOp::Delete => (EventKind::Delete, &[]),
            ChangeOp::Hole => {
                self.last = change.seq;
                return None;
            }
        };
        let key = change.key.as_bytes();
        let shared = change_value(change).filter(|v| v.len() >= SHARE_BYTES);
        let inline = if shared.is_some() { 0 } else { value.len() };
        let need = EVENT_OVERHEAD + key.len() + inline;
        if self.chunk.capacity() - self.chunk.len() < need {
            self.chunk = BytesMut::with_capacity(need.max(CHUNK_BYTES));
        }
        encode_event_body(&mut self.chunk, change.seq, kind, key, &[]);
        let head = self.chunk.split().freeze();
        let value = match shared {
            Some(v) => v,
            None => {
                self.chunk.put_slice(value);
                self.chunk.split().freeze()
            }
        };
        Some(Entry {
            seq: change.seq,
            head,
            value,
        })
    }

    /// Appends `entry` (the newest change) and drops the oldest past the bounds.
    pub fn push(&mut self, entry: Entry) {
        debug_assert!(entry.seq > self.last || self.entries.is_empty());
        self.last = self.last.max(entry.seq);
        self.bytes += entry.charge();
        self.entries.push_back(entry);
        while self.entries.len() > self.max_events || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.charge();
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

    /// The entry at `position`.
    pub fn get(&self, position: usize) -> Option<&Entry> {
        self.entries.get(position)
    }
}

/// A long value's shared buffer.
fn change_value(change: &Change) -> Option<Bytes> {
    match &change.op {
        ChangeOp::Put(stored) => stored.shared().cloned(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn log_of(store: &Store, log: &mut ChangeLog, n: usize, value: &[u8]) {
        for i in 0..n {
            let change = store.put(format!("k{i}").as_bytes(), value).unwrap();
            let entry = log.entry(&change).unwrap();
            log.push(entry);
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
        assert_eq!(log.get(2).unwrap().key(), b"k4");
        assert_eq!(log.get(2).unwrap().seq, 5);
    }

    #[test]
    fn the_byte_bound_binds_first_when_values_are_large() {
        let store = Store::new(0);
        let value = vec![b'x'; 4000];
        let mut log = ChangeLog::new(0, 1000, 3 * (4000 + 64 + 64));
        log_of(&store, &mut log, 10, &value);
        assert!(log.len() <= 3 && log.len() >= 2, "{}", log.len());
        assert!(log.bytes() <= 3 * (4000 + 64 + 64));
        assert_eq!(log.base(), 10 - log.len() as u64);
        // Long values are the store's own buffers.
        let entry = log.get(log.len() - 1).unwrap();
        assert_eq!(&entry.value[..], &value[..]);
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
        assert!(log.entry(&Change::hole(1)).is_none());
        assert_eq!(log.last(), 1);
        assert_eq!(log.base(), 0, "nothing was lost: a hole is no event");
    }
}
