//! Replaying the log at start: each entry is applied to the store, and the last
//! `keep` changes are kept for the in-memory change log, so subscribers resume
//! across a restart without a GAP.
//!
//! Entries are applied in batches whose keys are prefetched first. A replay of a
//! log over a large store spent most of its time waiting for the cache misses of
//! one lookup after another (the index line, then the record); prefetching a batch
//! lets those misses overlap, as the executor does for a batch of requests.

use crate::store::{Change, ChangeOp, Store};
use crate::wal::Record;
use std::collections::VecDeque;

/// Entries applied together after their keys are prefetched.
const BATCH: usize = 32;

/// How many entries ahead of the one being applied its record is prefetched: far
/// enough for the load to arrive, near enough that the index line it reads has.
const AHEAD: usize = 8;

/// A replay in progress.
pub(super) struct Replay<'a> {
    store: &'a Store,
    keep: usize,
    batch: Vec<Change>,
    tail: VecDeque<Change>,
    /// Every change numbered after this is in `tail` (`None` until the first).
    tail_base: Option<u64>,
}

impl<'a> Replay<'a> {
    pub(super) fn new(store: &'a Store, keep: usize) -> Replay<'a> {
        Replay {
            store,
            keep,
            batch: Vec::with_capacity(BATCH),
            tail: VecDeque::new(),
            tail_base: None,
        }
    }

    /// Takes the entry numbered `seq`; it is applied with its batch.
    pub(super) fn add(&mut self, seq: u64, record: Record<'_>) {
        self.tail_base.get_or_insert(seq - 1);
        self.batch.push(match record {
            Record::Put { key, value } => Change::restored(seq, key, Some(value)),
            Record::Delete { key } => Change::restored(seq, key, None),
            Record::Hole => Change::hole(seq),
        });
        if self.batch.len() == BATCH {
            self.apply();
        }
    }

    /// Applies what is left, and returns the kept changes, oldest first, and the
    /// sequence every later change is numbered after (`last_seq` when none was
    /// replayed).
    pub(super) fn finish(mut self, last_seq: u64) -> (VecDeque<Change>, u64) {
        self.apply();
        let base = match self.tail_base {
            Some(base) if !self.tail.is_empty() => base,
            _ => last_seq,
        };
        (self.tail, base)
    }

    fn apply(&mut self) {
        {
            let keys: Vec<&[u8]> = self
                .batch
                .iter()
                .filter(|c| !matches!(c.op, ChangeOp::Hole))
                .map(|c| c.key.as_bytes())
                .collect();
            self.store.prefetch_index(keys.iter().copied());
            self.store
                .prefetch_records(keys.iter().take(AHEAD).copied());
            for (i, change) in self.batch.iter().enumerate() {
                if let Some(key) = keys.get(i + AHEAD) {
                    self.store.prefetch_records(std::iter::once(*key));
                }
                self.store.apply_change(change);
            }
        }
        for change in self.batch.drain(..) {
            self.tail.push_back(change);
            if self.tail.len() > self.keep {
                if let Some(old) = self.tail.pop_front() {
                    let base = self.tail_base.unwrap_or(0);
                    self.tail_base = Some(old.seq.max(base));
                }
            }
        }
    }
}
