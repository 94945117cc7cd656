//! One lock stripe of the store: a hash map for point operations plus an ordered
//! index of its keys for SCAN.
//!
//! GET, PUT and CAS on an existing key touch only the hash table (see `table`): one
//! hash and one key comparison, where a B-tree would compare the key a few dozen
//! times. Short keys and values live in the record itself (see `blob`). The ordered
//! index changes only when a key is created or removed; it holds clones of the keys
//! (inline copies of short keys, reference counts on long ones). Callers pass each
//! key's hash in: the store computes it once and uses it to pick the shard too.

use super::blob::{KeyBlob, ValueBlob};
use super::change::{Change, ChangeOp, Key, Stored};
use super::table::{Rec, Table};
use super::{record_cost, PageEntry, WriteError};
use std::collections::BTreeSet;
use std::ops::Bound;

#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) table: Table,
    order: BTreeSet<KeyBlob>,
}

impl Shard {
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&Rec> {
        self.table.get(hash, key)
    }

    /// The record's version, or 0 when there is none.
    pub(super) fn version_of(&self, hash: u64, key: &[u8]) -> u64 {
        self.get(hash, key).map_or(0, |r| r.version)
    }

    /// Creates or replaces `key`'s record with one lookup. `decide` sees the current
    /// version (0 when there is none) and what the record is charged now (0 likewise),
    /// and returns the new version or refuses, in which case nothing changes. On
    /// success `emit` gets the change, sharing the stored key and value, and the new
    /// version is returned.
    pub(super) fn write(
        &mut self,
        hash: u64,
        key: &[u8],
        value: &[u8],
        decide: impl FnOnce(u64, u64) -> Result<u64, WriteError>,
        emit: impl FnOnce(Change),
    ) -> Result<u64, WriteError> {
        // Replacing keeps the stored key and leaves the ordered index alone.
        if let Some((stored_key, version, stored)) = self.table.get_mut(hash, key) {
            let new = decide(*version, record_cost(key, stored))?;
            *version = new;
            *stored = ValueBlob::copy_from(value);
            emit(Change {
                seq: new,
                key: Key(stored_key.clone()),
                op: ChangeOp::Put(Stored(stored.clone())),
            });
            return Ok(new);
        }
        let version = decide(0, 0)?;
        #[cfg(test)]
        super::tests::maybe_fail_after_numbering(key);
        let key = KeyBlob::copy_from(key);
        let value = ValueBlob::copy_from(value);
        let change = Change {
            seq: version,
            key: Key(key.clone()),
            op: ChangeOp::Put(Stored(value.clone())),
        };
        self.order.insert(key.clone());
        self.table.insert_new(Rec {
            hash,
            version,
            key,
            value,
        });
        // Emitted once the write has committed: a write that fails before this point
        // leaves its number as a hole instead.
        emit(change);
        Ok(version)
    }

    /// Sets `key`'s record to `value` at `version` whatever it held, or removes it
    /// (`None`), for a store rebuilt from a log; returns what the record was charged
    /// before and after.
    pub(super) fn restore(
        &mut self,
        hash: u64,
        key: &[u8],
        version: u64,
        value: Option<&[u8]>,
    ) -> (u64, u64) {
        match value {
            None => (
                self.remove(hash, key)
                    .map_or(0, |rec| record_cost(&rec.key, &rec.value)),
                0,
            ),
            Some(value) => {
                if let Some((_, v, stored)) = self.table.get_mut(hash, key) {
                    let old = record_cost(key, stored);
                    *v = version;
                    *stored = ValueBlob::copy_from(value);
                    return (old, record_cost(key, value));
                }
                let key_blob = KeyBlob::copy_from(key);
                self.order.insert(key_blob.clone());
                self.table.insert_new(Rec {
                    hash,
                    version,
                    key: key_blob,
                    value: ValueBlob::copy_from(value),
                });
                (0, record_cost(key, value))
            }
        }
    }

    /// Adds keys, in ascending order, to the ordered index (see `BulkLoad`). Into an
    /// empty index they are built in one pass rather than inserted one by one.
    pub(super) fn extend_order(&mut self, keys: Vec<KeyBlob>) {
        if self.order.is_empty() {
            self.order = keys.into_iter().collect();
        } else {
            self.order.extend(keys);
        }
    }

    /// Removes and returns the record.
    pub(super) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Rec> {
        let rec = self.table.remove(hash, key)?;
        self.order.remove(&rec.key);
        Some(rec)
    }

    /// Appends up to `limit` keys under `prefix`, in order, starting after `after` (or
    /// at the prefix when `after` is `None`); returns true when it stopped at the limit
    /// (more such keys may follow).
    pub(super) fn scan_keys_into(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        out: &mut Vec<KeyBlob>,
    ) -> bool {
        let start: Bound<&[u8]> = match after {
            Some(key) if key >= prefix => Bound::Excluded(key),
            _ => Bound::Included(prefix),
        };
        let before = out.len();
        out.extend(
            self.order
                .range::<[u8], _>((start, Bound::Unbounded))
                .take_while(|k| k.starts_with(prefix))
                .take(limit)
                .cloned(),
        );
        out.len() - before == limit
    }

    /// Appends the records of `keys` that still exist, as page entries.
    pub(super) fn entries_into(
        &self,
        keys: &[KeyBlob],
        hash_of: impl Fn(&[u8]) -> u64,
        out: &mut Vec<PageEntry>,
    ) {
        out.extend(keys.iter().filter_map(|k| {
            let stored = self.table.get(hash_of(k), k)?;
            Some(PageEntry {
                key: k.clone(),
                version: stored.version,
                value: stored.value.clone(),
            })
        }));
    }
}
