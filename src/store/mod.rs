//! `Store`: the versioned in-memory record map that workers execute requests against.
//!
//! # Design
//! * **Lock-striped shards.** Keys hash to one of [`SHARDS`] shards, each behind a
//!   `Mutex`. Any worker may serve any key, so the pool balances load by itself and a
//!   connection's requests can stay on one worker (which keeps them in order) whatever
//!   keys they touch. Shards owned by workers would avoid the locks but force a hop
//!   between workers for every key not owned by the connection's worker. An
//!   uncontended `Mutex` costs ~20 ns. One hash per key picks the shard (low bits)
//!   and the slot inside it (high bits).
//! * **Hashed for point reads, ordered for SCAN.** Each shard is a hash table (one
//!   hash and one key comparison per GET; see `table`) plus an ordered index of its
//!   keys, changed only when a key is created or removed. A prefix scan seeks to the
//!   prefix in every shard's index and merges the sorted runs: a page costs
//!   `O(shards × page)` whatever the store's size, and never walks the whole store.
//!   (A B-tree alone made GET compare keys a few dozen times: 40% of a pipelined
//!   GET's CPU.)
//! * **Prefetched in batches.** With a store larger than the CPU caches, a lookup is
//!   two cache misses, and a lock per lookup makes each wait for the one before.
//!   [`Store::prefetch_index`] and [`Store::prefetch_records`] take a batch's keys
//!   and, without locking, ask the memory system for every index line and then every
//!   record they name; the lookups that follow find them cached. Batches run the two
//!   stages a group or two ahead of the jobs (`exec::prefetch_ahead`). It is only
//!   a hint: results never depend on it.
//! * **One version counter.** A single `AtomicU64` numbers every successful write
//!   (PUT, CAS, DELETE). A record's version is the number of the write that made it,
//!   so versions rise on every write and never repeat for a key, even across delete
//!   and re-create: a stale CAS cannot match a re-created record. The same number is
//!   the change sequence a SCAN reports and that change events will carry. It is
//!   taken *under the shard lock*, so changes to one key are numbered in the order
//!   they are applied, and a reader that sees the counter at `s` and then locks a
//!   shard sees every change to that shard numbered up to `s`.
//! * **Values own their memory.** A PUT copies the value (and key) out of the frame it
//!   arrived in. A frame is a slice of a connection's read buffer, and keeping that
//!   slice for hours would pin the whole buffer (up to 64 KiB per small value). Keys of
//!   up to 30 bytes and values of up to 70 live inside the record, so writing them
//!   allocates nothing and reading them touches no other cache line; longer ones get
//!   one allocation of their own. [`Store::read`] lends the stored bytes to the
//!   caller under the lock, so a GET encodes its answer straight from the record;
//!   [`Store::get`] returns an owned copy for callers that keep it.
//! * **Memory accounting.** Each record is charged [`RECORD_OVERHEAD`] plus any key
//!   or value too long to be stored inline (see [`record_cost`]). A write that would take the total past the limit is refused
//!   before anything changes; deletes and reads always work.
//! * **Changes.** Every successful write returns its [`Change`] (number, key, what it
//!   did), sharing the stored key and value: the executor passes them on to the
//!   ordered change stream.
//! * **Restorable.** [`Store::restore`] sets a record at a given version and
//!   [`Store::apply_change`] replays a change, raising the counter with it, so a log
//!   (or a change stream) rebuilds a store from outside.

mod blob;
mod bulk;
pub mod change;
mod shard;
mod table;

use blob::{KeyBlob, ValueBlob};
pub use bulk::BulkLoad;
pub use change::{Change, ChangeOp, Key, Stored};

use bytes::Bytes;
use shard::Shard;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use table::Hint;

/// Number of lock stripes. A power of two, so a hash picks one with a mask; 16 keeps
/// lock contention negligible for a handful of workers while a SCAN merges few runs.
pub const SHARDS: usize = 16;

/// Bytes charged per record besides keys and values too long to be stored inline: the
/// record itself (128 bytes, holding a key of up to 30 bytes and a value of up to 70),
/// its index words (16–32 bytes at the table's load, as much again in index arrays kept
/// after growing), and the ordered index's entry, rounded up. The record array's spare
/// capacity is not charged: just after a shard's array doubles, the heap holds up to
/// half as much again as the records are charged (measured: 246–358 bytes per small
/// record between 50k and 1M records), so leave that headroom above `--max-memory`.
pub const RECORD_OVERHEAD: u64 = 240;

/// A record as read: its version and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The number of the write that made this record.
    pub version: u64,
    /// The value, shared with the store (no copy).
    pub value: Bytes,
}

/// Why a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The record's version is not the expected one; `current` is 0 when there is none.
    VersionConflict {
        /// The record's version now.
        current: u64,
    },
    /// The key has no record (conditional or unconditional DELETE).
    NotFound,
    /// The write would pass the memory limit.
    MemoryLimit,
}

/// One SCAN page as read from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The change sequence read before the page: the page reflects every change up to it.
    pub seq: u64,
    /// Records in key order.
    pub records: Vec<PageEntry>,
    /// True when records after the last one returned exist.
    pub more: bool,
}

/// One record of a [`Page`]: copied out of the store (short keys and values by value,
/// long ones by reference count), so the page outlives the shard locks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageEntry {
    key: KeyBlob,
    version: u64,
    value: ValueBlob,
}

impl PageEntry {
    /// The record's key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The record's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The record's value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The record's value, with its shared buffer when it has one.
    pub fn value_ref(&self) -> Value<'_> {
        Value(&self.value)
    }
}

/// A stored value lent by [`Store::read`] or a [`PageEntry`]: its bytes, and the
/// reference-counted buffer behind them when the value is too long to be stored
/// inline, so an answer can carry a long value without copying it.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a>(&'a ValueBlob);

impl<'a> Value<'a> {
    /// The value's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The shared buffer holding the value, if it lives on the heap; a clone of it
    /// keeps the bytes alive after the record changes.
    pub fn shared(&self) -> Option<&'a Bytes> {
        self.0.shared()
    }
}

impl std::ops::Deref for Value<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

/// One lock stripe and the lock-free prefetch pointers into it.
#[derive(Debug)]
struct Stripe {
    shard: Mutex<Shard>,
    hint: Hint,
}

/// A shard, locked, with the stripe it belongs to (to republish its hint after writes).
struct Locked<'a> {
    shard: MutexGuard<'a, Shard>,
    stripe: &'a Stripe,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.stripe.hint.publish(&self.shard.table);
    }
}

/// The versioned record map. Shared by reference among all workers.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Stripe]>,
    stripe: foldhash::fast::RandomState,
    seq: AtomicU64,
    memory: AtomicU64,
    max_memory: u64,
}

impl Store {
    /// An empty store with a memory limit in bytes (0 = none).
    pub fn new(max_memory: u64) -> Store {
        Store {
            shards: (0..SHARDS)
                .map(|_| {
                    let shard = Shard::default();
                    let hint = Hint::new(&shard.table);
                    Stripe {
                        shard: Mutex::new(shard),
                        hint,
                    }
                })
                .collect(),
            stripe: foldhash::fast::RandomState::default(),
            seq: AtomicU64::new(0),
            memory: AtomicU64::new(0),
            max_memory,
        }
    }

    /// The key's hash: its low bits pick the stripe, its high half the table slot.
    fn hash(&self, key: &[u8]) -> u64 {
        self.stripe.hash_one(key)
    }

    fn stripe_of(&self, hash: u64) -> &Stripe {
        &self.shards[hash as usize & (SHARDS - 1)]
    }

    /// Locks a shard to read it. Read-only, so that every change goes through
    /// [`shard_mut`](Self::shard_mut) and republishes the prefetch hint.
    fn shard(&self, hash: u64) -> impl std::ops::Deref<Target = Shard> + '_ {
        lock(&self.stripe_of(hash).shard)
    }

    /// Locks a shard to change it; its prefetch hint is republished on unlock.
    fn shard_mut(&self, hash: u64) -> Locked<'_> {
        let stripe = self.stripe_of(hash);
        Locked {
            shard: lock(&stripe.shard),
            stripe,
        }
    }

    /// Starts loading the index lines `keys` hash to: the first of the two stages that
    /// let a batch's lookups find a warm cache instead of each waiting for its own
    /// misses. Purely a hint: it takes no lock and changes nothing. Run it a group of
    /// jobs or two ahead of [`prefetch_records`](Self::prefetch_records) for the same
    /// keys, and that a group ahead of the lookups (`exec::prefetch_ahead`).
    pub fn prefetch_index<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        for key in keys {
            let hash = self.hash(key);
            self.stripe_of(hash).hint.prefetch_index(hash);
        }
    }

    /// Starts loading the records the index names for `keys`: the second stage (see
    /// [`prefetch_index`](Self::prefetch_index)). It reads the index, so it waits for
    /// any of those lines not yet cached. A hint only, like the first.
    pub fn prefetch_records<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        for key in keys {
            let hash = self.hash(key);
            self.stripe_of(hash).hint.prefetch_record(hash);
        }
    }

    /// The number of the latest write (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Sets the write counter, for a store rebuilt from a log. Never lowers it.
    pub fn restore_seq(&self, seq: u64) {
        self.seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// Bytes charged to records now.
    pub fn memory_used(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// The memory limit (0 = none).
    pub fn max_memory(&self) -> u64 {
        self.max_memory
    }

    /// Records in the store.
    pub fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| lock(&s.shard).len() as u64)
            .sum()
    }

    /// True when the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads a record (sharing its value: no copy).
    pub fn get(&self, key: &[u8]) -> Option<Record> {
        let hash = self.hash(key);
        self.shard(hash).get(hash, key).map(|s| Record {
            version: s.version,
            value: s.value.to_bytes(),
        })
    }

    /// Lends a record's version and value to `f` under the shard lock; returns what
    /// `f` returns, or `None` when the key has no record. Keep `f` short: it holds
    /// the lock.
    pub fn read<R>(&self, key: &[u8], f: impl FnOnce(u64, Value<'_>) -> R) -> Option<R> {
        let hash = self.hash(key);
        self.shard(hash)
            .get(hash, key)
            .map(|r| f(r.version, Value(&r.value)))
    }

    /// Creates or replaces a record; returns the change, whose `seq` is the record's
    /// new version.
    ///
    /// # Errors
    /// [`WriteError::MemoryLimit`] when the record would not fit.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Change, WriteError> {
        let mut change = None;
        self.put_with(key, value, |c| change = Some(c))?;
        Ok(change.expect("a committed write emits its change"))
    }

    /// [`put`](Self::put), handing the change to `emit` where it is made instead of
    /// returning it (the executor appends it to its batch's changes without moving it
    /// through the call); returns the new version.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    #[inline]
    pub fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        emit: impl FnOnce(Change),
    ) -> Result<u64, WriteError> {
        let hash = self.hash(key);
        let version = self.shard_mut(hash).shard.write(
            hash,
            key,
            value,
            |_, old| {
                self.charge(old, record_cost(key, value))?;
                Ok(self.next_version())
            },
            emit,
        );
        change::committed();
        version
    }

    /// Writes a record only if its version is `expected` (0 = only if absent).
    ///
    /// # Errors
    /// [`WriteError::VersionConflict`] with the current version, or
    /// [`WriteError::MemoryLimit`].
    pub fn cas(&self, key: &[u8], expected: u64, value: &[u8]) -> Result<Change, WriteError> {
        let mut change = None;
        self.cas_with(key, expected, value, |c| change = Some(c))?;
        Ok(change.expect("a committed write emits its change"))
    }

    /// [`cas`](Self::cas), handing the change to `emit` (see
    /// [`put_with`](Self::put_with)); returns the new version.
    ///
    /// # Errors
    /// As [`cas`](Self::cas).
    #[inline]
    pub fn cas_with(
        &self,
        key: &[u8],
        expected: u64,
        value: &[u8],
        emit: impl FnOnce(Change),
    ) -> Result<u64, WriteError> {
        let hash = self.hash(key);
        let version = self.shard_mut(hash).shard.write(
            hash,
            key,
            value,
            |current, old| {
                if current != expected {
                    return Err(WriteError::VersionConflict { current });
                }
                self.charge(old, record_cost(key, value))?;
                Ok(self.next_version())
            },
            emit,
        );
        change::committed();
        version
    }

    /// Removes a record, only at version `expected` unless it is 0; returns the change,
    /// whose `seq` is the number given to the deletion.
    ///
    /// # Errors
    /// [`WriteError::NotFound`] or [`WriteError::VersionConflict`].
    pub fn delete(&self, key: &[u8], expected: u64) -> Result<Change, WriteError> {
        let mut change = None;
        self.delete_with(key, expected, |c| change = Some(c))?;
        Ok(change.expect("a committed write emits its change"))
    }

    /// [`delete`](Self::delete), handing the change to `emit` (see
    /// [`put_with`](Self::put_with)); returns the number given to the deletion.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    #[inline]
    pub fn delete_with(
        &self,
        key: &[u8],
        expected: u64,
        emit: impl FnOnce(Change),
    ) -> Result<u64, WriteError> {
        let hash = self.hash(key);
        let mut locked = self.shard_mut(hash);
        let shard = &mut locked.shard;
        let current = shard.version_of(hash, key);
        if current == 0 {
            return Err(WriteError::NotFound);
        }
        if expected != 0 && current != expected {
            return Err(WriteError::VersionConflict { current });
        }
        let seq = self.next_version();
        let removed = shard.remove(hash, key);
        change::committed();
        let rec = removed.expect("the record was just found under the same lock");
        self.memory
            .fetch_sub(record_cost(&rec.key, &rec.value), Ordering::Relaxed);
        emit(Change {
            seq,
            key: Key(rec.key),
            op: ChangeOp::Delete,
        });
        Ok(seq)
    }

    /// Sets `key`'s record to `value` at `version`, or removes it when `value` is
    /// `None`, whatever it held, and raises the write counter to at least `version`:
    /// replaying a change stream into an empty store with this rebuilds the store that
    /// made it. Charges memory without refusing (the log's writes were accepted once).
    pub fn restore(&self, key: &[u8], version: u64, value: Option<&[u8]>) {
        let hash = self.hash(key);
        let (old, new) = self
            .shard_mut(hash)
            .shard
            .restore(hash, key, version, value);
        if new >= old {
            self.memory.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.memory.fetch_sub(old - new, Ordering::Relaxed);
        }
        self.restore_seq(version);
    }

    /// Replays one change (see [`restore`](Self::restore)); holes only raise the
    /// counter.
    pub fn apply_change(&self, change: &Change) {
        match &change.op {
            ChangeOp::Put(value) => {
                self.restore(change.key.as_bytes(), change.seq, Some(value.as_bytes()))
            }
            ChangeOp::Delete => self.restore(change.key.as_bytes(), change.seq, None),
            ChangeOp::Hole => self.restore_seq(change.seq),
        }
    }

    /// Reads up to `limit` records whose keys start with `prefix` and sort after
    /// `cursor` (all of them when `cursor` is empty), in key order.
    ///
    /// Keys are spread evenly over the shards, so each shard is asked for its share of
    /// the page plus a margin, not for a whole page: a page of 1,000 reads about 1,100
    /// keys, not 16,000. Every key up to the smallest last key of a shard that had
    /// more is certain to be in order; when that covers fewer than a page, the shards
    /// that had more are asked again for twice as many. Only the keys that make the
    /// page then have their records read, one lock per shard.
    pub fn scan(&self, prefix: &[u8], cursor: &[u8], limit: usize) -> Page {
        // Read the counter before any shard: see the module doc for why that makes the
        // page reflect every change numbered up to `seq`.
        let seq = self.seq();
        if limit == 0 {
            let mut any = Vec::new();
            let more = self.shards.iter().any(|stripe| {
                lock(&stripe.shard).scan_keys_into(prefix, Some(cursor), 1, &mut any)
            });
            return Page {
                seq,
                records: Vec::new(),
                more,
            };
        }
        let start = (!cursor.is_empty()).then_some(cursor);
        let mut keys: Vec<Vec<KeyBlob>> = vec![Vec::new(); SHARDS];
        let mut cut = [true; SHARDS];
        let mut quota = limit / SHARDS + 8;
        // The largest key every shard has answered for, when some shard had more.
        let (bound, count) = loop {
            for (i, stripe) in self.shards.iter().enumerate() {
                if !cut[i] {
                    continue;
                }
                let after = keys[i].last().map(|k| &k[..]).or(start);
                let mut more = Vec::new();
                cut[i] = lock(&stripe.shard).scan_keys_into(prefix, after, quota, &mut more);
                keys[i].append(&mut more);
            }
            let bound = (0..SHARDS)
                .filter(|&i| cut[i])
                .filter_map(|i| keys[i].last())
                .min()
                .cloned();
            let count: usize = keys
                .iter()
                .map(|k| match &bound {
                    Some(b) => k.partition_point(|key| key <= b),
                    None => k.len(),
                })
                .sum();
            if bound.is_none() || count > limit {
                break (bound, count);
            }
            quota = quota.saturating_mul(2);
        };
        // The page ends at the `limit`-th smallest key that is certain.
        let mut certain: Vec<&KeyBlob> = keys
            .iter()
            .flat_map(|k| match &bound {
                Some(b) => &k[..k.partition_point(|key| key <= b)],
                None => &k[..],
            })
            .collect();
        let last = if certain.len() > limit {
            let (_, nth, _) = certain.select_nth_unstable(limit - 1);
            Some((*nth).clone())
        } else {
            None
        };
        drop(certain);
        let mut records = Vec::with_capacity(count.min(limit));
        for (stripe, shard_keys) in self.shards.iter().zip(&keys) {
            let end = match (&last, &bound) {
                (Some(l), _) => shard_keys.partition_point(|key| key <= l),
                (None, Some(b)) => shard_keys.partition_point(|key| key <= b),
                (None, None) => shard_keys.len(),
            };
            if end > 0 {
                let hash_of = |key: &[u8]| self.hash(key);
                lock(&stripe.shard).entries_into(&shard_keys[..end], hash_of, &mut records);
            }
        }
        records.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Page {
            seq,
            records,
            more: count > limit,
        }
    }

    /// Takes the next version. Called with the shard locked, so one key's versions are
    /// handed out in the order its writes are applied; marked as taken until the write
    /// returns, so a write that fails in between leaves a known hole (see `change`).
    fn next_version(&self) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        change::taking(seq);
        seq
    }

    /// Charges the difference between a record's new and old cost, or refuses.
    fn charge(&self, old: u64, new: u64) -> Result<(), WriteError> {
        if new <= old {
            self.memory.fetch_sub(old - new, Ordering::Relaxed);
            return Ok(());
        }
        let grow = new - old;
        let before = self.memory.fetch_add(grow, Ordering::Relaxed);
        if self.max_memory != 0 && before + grow > self.max_memory {
            // Undo: concurrent writers may see the total briefly high and be refused
            // too, but the limit itself is never passed.
            self.memory.fetch_sub(grow, Ordering::Relaxed);
            return Err(WriteError::MemoryLimit);
        }
        Ok(())
    }
}

/// What a record with this key and value is charged: its fixed overhead, plus the heap
/// copies of a key or value too long to live in the record (each also allocated with
/// the ordered index sharing the key).
pub fn record_cost(key: &[u8], value: &[u8]) -> u64 {
    let heap = KeyBlob::heap_len_for(key.len()) + ValueBlob::heap_len_for(value.len());
    heap as u64 + RECORD_OVERHEAD
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A worker that panicked mid-write left at most one record half-updated in a map
    // that is still structurally sound; serving on beats taking the whole server down.
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
pub(crate) mod tests;
