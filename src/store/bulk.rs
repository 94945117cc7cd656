//! Loading a snapshot: its records come in ascending key order into an empty store,
//! so each can be added without the hash lookup `restore` makes for an existing
//! record, and each shard's ordered index can be built once, from sorted keys,
//! instead of searched and split record by record. Those two were most of the time
//! a snapshot of a million records took to load.

use super::blob::{KeyBlob, ValueBlob};
use super::table::Rec;
use super::{record_cost, Store, SHARDS};
use std::sync::atomic::Ordering;

/// Records being loaded into a store; [`finish`](BulkLoad::finish) completes the
/// ordered indexes. Until then, keys added here are readable by key but not listed.
#[derive(Debug)]
pub struct BulkLoad<'a> {
    store: &'a Store,
    /// The keys added to each shard, in order, for its ordered index.
    keys: Vec<Vec<KeyBlob>>,
    /// The shard the last key added went to: that key ends its list in `keys`.
    last: Option<usize>,
    /// The store was empty and every key so far came after the one before, so none
    /// is in the store yet. Once false, records go through `restore`.
    fresh: bool,
    /// Memory charged to the records added, and their highest version.
    charged: u64,
    top: u64,
}

impl Store {
    /// Starts loading records, best in ascending key order into an empty store;
    /// records out of that order are restored one by one, with the same result.
    pub fn bulk_load(&self) -> BulkLoad<'_> {
        BulkLoad {
            store: self,
            keys: (0..SHARDS).map(|_| Vec::new()).collect(),
            last: None,
            fresh: self.is_empty(),
            charged: 0,
            top: 0,
        }
    }
}

impl BulkLoad<'_> {
    /// Adds (or, out of order, restores) `key` at `version` with `value`.
    pub fn add(&mut self, key: &[u8], version: u64, value: &[u8]) {
        let last = self.last.and_then(|i| self.keys[i].last());
        if self.fresh && last.is_some_and(|last| key <= &**last) {
            self.fresh = false;
        }
        if !self.fresh {
            self.store.restore(key, version, Some(value));
            return;
        }
        let hash = self.store.hash(key);
        let key_blob = KeyBlob::copy_from(key);
        self.store.shard_mut(hash).shard.table.insert_new(Rec {
            hash,
            version,
            key: key_blob.clone(),
            value: ValueBlob::copy_from(value),
        });
        let shard = hash as usize & (SHARDS - 1);
        self.keys[shard].push(key_blob);
        self.last = Some(shard);
        self.charged += record_cost(key, value);
        self.top = self.top.max(version);
    }

    /// Builds the ordered indexes of the keys added, and charges their memory.
    pub fn finish(self) {
        for (i, keys) in self.keys.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let stripe = &self.store.shards[i];
            super::lock(&stripe.shard).extend_order(keys);
        }
        self.store.memory.fetch_add(self.charged, Ordering::Relaxed);
        self.store.restore_seq(self.top);
    }
}
