//! One lock stripe of the store: an ordered map from key to record.

use super::{record_cost, Record};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Default)]
pub(super) struct Shard {
    map: BTreeMap<Bytes, Record>,
}

impl Shard {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Record> {
        self.map.get(key).cloned()
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
        let record = Record {
            version,
            value: Bytes::copy_from_slice(value),
        };
        match self.map.get_mut(key) {
            // Replacing keeps the stored key: no second copy of it.
            Some(slot) => *slot = record,
            None => {
                self.map.insert(Bytes::copy_from_slice(key), record);
            }
        }
    }

    /// Removes the record; returns what it was charged.
    pub(super) fn remove(&mut self, key: &[u8]) -> u64 {
        self.map
            .remove_entry(key)
            .map_or(0, |(k, r)| record_cost(&k, &r.value))
    }

    /// Appends up to `limit` records under `prefix` after `cursor`, in key order.
    pub(super) fn scan_into(
        &self,
        prefix: &[u8],
        cursor: &[u8],
        limit: usize,
        out: &mut Vec<(Bytes, Record)>,
    ) {
        let start: Bound<&[u8]> = if cursor.is_empty() || cursor < prefix {
            Bound::Included(prefix)
        } else {
            Bound::Excluded(cursor)
        };
        let range = self
            .map
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit);
        out.extend(range.map(|(k, r)| (k.clone(), r.clone())));
    }
}
