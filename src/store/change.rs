//! `Change`: one committed write, as the ordered change stream carries it.
//!
//! Every successful PUT, CAS and DELETE takes the next number of the store's one
//! counter while it holds the key's shard lock, and yields a `Change` with that number.
//! The number is the record's new version and the change's place in the stream, which
//! the sequencer (`crate::sequencer`) restores across threads. A change holds the key
//! and the value as the store holds them (inline copies of short ones, reference counts
//! on long ones), so making one allocates nothing.
//!
//! A number taken by a write that then failed (a panic, which the executor contains)
//! is reported as a [`ChangeOp::Hole`], so the stream never waits for it.

use super::blob::{KeyBlob, ValueBlob};
use bytes::Bytes;
use std::cell::Cell;

/// A key as the store holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub(super) KeyBlob);

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A value as the store holds it: inline when short, a shared buffer when long.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored(pub(super) ValueBlob);

impl Stored {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer behind a long value (a clone of it keeps the bytes alive).
    pub fn shared(&self) -> Option<&Bytes> {
        self.0.shared()
    }

    /// The value as `Bytes`: shared when long, copied when short.
    pub fn to_bytes(&self) -> Bytes {
        self.0.to_bytes()
    }
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a change did to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    /// The key now holds this value (a PUT, or a CAS that matched).
    Put(Stored),
    /// The key's record was removed.
    Delete,
    /// The number was taken by a write that failed before it committed: nothing
    /// changed. The key is empty.
    Hole,
}

/// One committed write (or a [hole](ChangeOp::Hole)), numbered in the store's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The change's number in the stream, which is also the record's new version.
    pub seq: u64,
    /// The key written.
    pub key: Key,
    /// What the write did.
    pub op: ChangeOp,
}

impl Change {
    /// The record's version after this change (its sequence number).
    pub fn version(&self) -> u64 {
        self.seq
    }

    /// A change read back from the write-ahead log: a write of `value`, or a delete
    /// when there is none.
    pub fn restored(seq: u64, key: &[u8], value: Option<&[u8]>) -> Change {
        Change {
            seq,
            key: Key(KeyBlob::copy_from(key)),
            op: match value {
                Some(v) => ChangeOp::Put(Stored(ValueBlob::copy_from(v))),
                None => ChangeOp::Delete,
            },
        }
    }

    /// A hole at `seq`.
    pub fn hole(seq: u64) -> Change {
        Change {
            seq,
            key: Key(KeyBlob::copy_from(b"")),
            op: ChangeOp::Hole,
        }
    }
}

thread_local! {
    /// The number this thread's write in progress took, 0 when none is in progress.
    static TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Records that this thread's write took `seq` and has not committed yet.
pub(super) fn taking(seq: u64) {
    TAKEN.with(|t| t.set(seq));
}

/// Records that this thread's write committed (or took no number).
pub(super) fn committed() {
    TAKEN.with(|t| t.set(0));
}

/// The number a write on this thread took and did not commit, if one did: call after
/// catching a panic from a write, and report it as a [`Change::hole`]. Clears it.
pub fn take_uncommitted() -> Option<u64> {
    TAKEN.with(|t| {
        let seq = t.replace(0);
        (seq != 0).then_some(seq)
    })
}
