//! One lock stripe of the store: a hash map for point operations plus an ordered
//! index of its keys for SCAN.
//!
//! GET, PUT and CAS on an existing key touch only the hash map: one hash and one key
//! comparison, where a B-tree would compare the key a few dozen times. Short keys and
//! values live in the map's slot (see `blob`). The ordered index changes only when a
//! key is created or removed; it holds clones of the map's keys (inline copies of short
//! keys, reference counts on long ones).

use super::blob::{KeyBlob, ValueBlob};
use super::{record_cost, PageEntry};
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// Seeded per map, so keys chosen to collide in one process do not collide in another.
type Hasher = foldhash::fast::RandomState;

/// A record as stored.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub(super) version: u64,
    pub(super) value: ValueBlob,
}

#[derive(Debug, Default)]
pub(super) struct Shard {
    map: HashMap<KeyBlob, Stored, Hasher>,
    order: BTreeSet<KeyBlob>,
}

impl Shard {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Stored> {
        self.map.get(key)
    }

    /// The record's version, or 0 when there is none.
    pub(super) fn version_of(&self, key: &[u8]) -> u64 {
        self.map.get(key).map_or(0, |r| r.version)
    }

    /// What the record is charged now, or 0 when there is none.
    pub(super) fn cost_of(&self, key: &[u8]) -> u64 {
        self.map.get(key).map_or(0, |r| record_cost(key, &r.value))
    }

    pub(super) fn insert(&mut self, key: &[u8], value: &[u8], version: u64) {
        let record = Stored {
            version,
            value: ValueBlob::copy_from(value),
        };
        match self.map.get_mut(key) {
            // Replacing keeps the stored key and leaves the ordered index alone.
            Some(slot) => *slot = record,
            None => {
                let key = KeyBlob::copy_from(key);
                self.order.insert(key.clone());
                self.map.insert(key, record);
            }
        }
    }

    /// Removes the record; returns what it was charged.
    pub(super) fn remove(&mut self, key: &[u8]) -> u64 {
        match self.map.remove_entry(key) {
            Some((k, r)) => {
                self.order.remove(&k);
                record_cost(&k, &r.value)
            }
            None => 0,
        }
    }

    /// Appends up to `limit` records under `prefix` after `cursor`, in key order.
    pub(super) fn scan_into(
        &self,
        prefix: &[u8],
        cursor: &[u8],
        limit: usize,
        out: &mut Vec<PageEntry>,
    ) {
        let start: Bound<&[u8]> = if cursor.is_empty() || cursor < prefix {
            Bound::Included(prefix)
        } else {
            Bound::Excluded(cursor)
        };
        let keys = self
            .order
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|k| k.starts_with(prefix))
            .take(limit);
        out.extend(keys.filter_map(|k| {
            let stored = self.map.get(&**k)?;
            Some(PageEntry {
                key: k.clone(),
                version: stored.version,
                value: stored.value.clone(),
            })
        }));
    }
}
