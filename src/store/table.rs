//! `Table`: one shard's records, laid out so that a batch of reads can fetch them from
//! memory ahead of time.
//!
//! With 100k records a GET's lookup is two cache misses (finding the record, then
//! reading it), each ~50–90 ns, and under a per-lookup lock those misses are paid one
//! after another. A batch knows its keys in advance, so it can ask the memory system
//! for all of them at once and then run the lookups against a warm cache (see
//! [`Hint`]). `std`'s `HashMap` hides where a key's slot is, so the shard keeps its own
//! table:
//!
//! * **Records** live in a dense `Vec<Rec>` of 128-byte, 64-byte-aligned entries: the
//!   key (inline up to 30 bytes), its full hash and version share the first cache
//!   line, a short value the rest. Removal swaps the last record into the hole.
//! * **The index** is an open-addressing array of `u64` words with linear probing, at
//!   most half full: `0` is empty, otherwise the high 32 bits are the hash's high half
//!   (which also picks the home slot) and the low 32 bits the record's position + 1.
//!   Eight words share a cache line, and removal shifts later words back instead of
//!   leaving tombstones, so probe runs stay short.
//! * **Index arrays are never freed while the table lives.** A grown table keeps its
//!   old arrays (together less than the current one), so a reader outside the lock may
//!   read a stale word through a stale pointer without touching freed memory. Such a
//!   read only steers a prefetch; every real lookup happens under the shard lock.

use super::blob::{KeyBlob, ValueBlob};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

/// Smallest index array (words).
const MIN_SLOTS: usize = 16;

/// One record: 128 bytes on a 64-byte boundary, so it spans exactly two cache lines.
#[repr(C, align(64))]
#[derive(Clone, Debug)]
pub(super) struct Rec {
    /// The key's full hash: checked before the key is compared.
    pub(super) hash: u64,
    /// The number of the write that made this record.
    pub(super) version: u64,
    pub(super) key: KeyBlob,
    pub(super) value: ValueBlob,
}

/// An index array and its mask, allocated together so that a reader outside the lock
/// never pairs a pointer with another array's length.
#[derive(Debug)]
struct Index {
    mask: usize,
    words: Box<[AtomicU64]>,
}

impl Index {
    fn with_slots(n: usize) -> Arc<Index> {
        Arc::new(Index {
            mask: n - 1,
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn word(&self, pos: usize) -> u64 {
        // Relaxed: writers hold the shard lock, and lock-free readers only prefetch.
        self.words[pos & self.mask].load(Ordering::Relaxed)
    }

    fn set(&self, pos: usize, word: u64) {
        self.words[pos & self.mask].store(word, Ordering::Relaxed);
    }
}

/// The home position's source and the tag: the hash's high half.
fn tag(hash: u64) -> u64 {
    hash >> 32
}

fn word_for(hash: u64, at: usize) -> u64 {
    (tag(hash) << 32) | (at as u64 + 1)
}

fn record_of(word: u64) -> usize {
    (word & 0xFFFF_FFFF) as usize - 1
}

/// One shard's records: see the module doc.
#[derive(Debug)]
pub(super) struct Table {
    index: Arc<Index>,
    /// Earlier index arrays, kept so lock-free prefetching never reads freed memory.
    /// Behind `Arc`, not `Box`: hints hold raw pointers to the `Index`, and moving a
    /// `Box` asserts unique access to its contents (Stacked Borrows), which would
    /// invalidate them.
    retired: Vec<Arc<Index>>,
    recs: Vec<Rec>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            index: Index::with_slots(MIN_SLOTS),
            retired: Vec::new(),
            recs: Vec::new(),
        }
    }
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.recs.len()
    }

    /// The index position of `key`'s word, if it has a record.
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let mut pos = tag(hash) as usize & self.index.mask;
        loop {
            let word = self.index.word(pos);
            if word == 0 {
                return None;
            }
            if word >> 32 == tag(hash) {
                let rec = &self.recs[record_of(word)];
                if rec.hash == hash && *rec.key == *key {
                    return Some(pos & self.index.mask);
                }
            }
            pos += 1;
        }
    }

    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&Rec> {
        let pos = self.find(hash, key)?;
        Some(&self.recs[record_of(self.index.word(pos))])
    }

    /// The record's version and value, to replace them, and its key to read. Not its
    /// key or hash to change: the index is built from those.
    pub(super) fn get_mut(
        &mut self,
        hash: u64,
        key: &[u8],
    ) -> Option<(&KeyBlob, &mut u64, &mut ValueBlob)> {
        let pos = self.find(hash, key)?;
        let rec = &mut self.recs[record_of(self.index.word(pos))];
        Some((&rec.key, &mut rec.version, &mut rec.value))
    }

    /// Adds a record for a key that has none (the caller checked).
    pub(super) fn insert_new(&mut self, rec: Rec) {
        if (self.recs.len() + 1) * 2 > self.index.words.len() {
            self.grow();
        }
        let at = self.recs.len();
        // The index word holds `at + 1` in 32 bits.
        assert!(at < u32::MAX as usize, "table full");
        let hash = rec.hash;
        self.recs.push(rec);
        self.place(word_for(hash, at));
    }

    /// Removes and returns `key`'s record.
    pub(super) fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Rec> {
        let pos = self.find(hash, key)?;
        let at = record_of(self.index.word(pos));
        self.unlink(pos);
        let last = self.recs.len() - 1;
        let rec = self.recs.swap_remove(at);
        if at != last {
            // The last record moved into the hole: point its word at its new place.
            let moved = self.recs[at].hash;
            let mut p = tag(moved) as usize & self.index.mask;
            while self.index.word(p) != word_for(moved, last) {
                p += 1;
            }
            self.index.set(p, word_for(moved, at));
        }
        Some(rec)
    }

    /// Every record, in no particular order.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &Rec> {
        self.recs.iter()
    }

    /// Where lock-free readers find the current index and records.
    fn hint_pointers(&self) -> (*mut Index, *mut Rec) {
        let index: *const Index = Arc::as_ptr(&self.index);
        (index.cast_mut(), self.recs.as_ptr().cast_mut())
    }

    /// Puts `word` in the first empty position from its home on.
    fn place(&mut self, word: u64) {
        let mut pos = (word >> 32) as usize & self.index.mask;
        while self.index.word(pos) != 0 {
            pos += 1;
        }
        self.index.set(pos, word);
    }

    /// Empties position `hole`, shifting back later words of its probe run that may
    /// sit earlier (backward-shift deletion: no tombstones, runs stay short).
    fn unlink(&mut self, mut hole: usize) {
        let mask = self.index.mask;
        let mut pos = hole;
        loop {
            pos = (pos + 1) & mask;
            let word = self.index.word(pos);
            if word == 0 {
                break;
            }
            let home = (word >> 32) as usize & mask;
            // The word may move to the hole when the hole lies on its probe path,
            // i.e. cyclically between its home and where it sits now.
            if pos.wrapping_sub(home) & mask >= pos.wrapping_sub(hole) & mask {
                self.index.set(hole, word);
                hole = pos;
            }
        }
        self.index.set(hole, 0);
    }

    fn grow(&mut self) {
        let bigger = Index::with_slots(self.index.words.len() * 2);
        let old = std::mem::replace(&mut self.index, bigger);
        // Each word carries its tag, which is all `place` needs: read the old index
        // sequentially instead of one line of every record.
        for word in old.words.iter() {
            let word = word.load(Ordering::Relaxed);
            if word != 0 {
                self.place(word);
            }
        }
        self.retired.push(old);
    }
}

/// Lock-free pointers to one shard's index and records, for prefetching only.
///
/// The shard updates them (under its lock) whenever either moves. A reader may see an
/// older index or an older records pointer: the index is never freed while the store
/// lives (see the module doc), and a records pointer is only handed to a prefetch
/// instruction, which never faults and reads nothing the program sees.
#[derive(Debug)]
pub(super) struct Hint {
    index: AtomicPtr<Index>,
    recs: AtomicPtr<Rec>,
}

impl Hint {
    pub(super) fn new(table: &Table) -> Hint {
        let (index, recs) = table.hint_pointers();
        Hint {
            index: AtomicPtr::new(index),
            recs: AtomicPtr::new(recs),
        }
    }

    /// Called with the shard locked after every change.
    pub(super) fn publish(&self, table: &Table) {
        let (index, recs) = table.hint_pointers();
        // Release pairs with the Acquire in `index`: a reader that sees the new array
        // sees it initialised.
        self.index.store(index, Ordering::Release);
        self.recs.store(recs, Ordering::Relaxed);
    }

    fn index(&self) -> &Index {
        // SAFETY: the pointer is to an `Index` owned by this shard's table, as the
        // current or a retired array; neither is freed before the table is dropped,
        // and the table lives as long as the store that owns this hint.
        unsafe { &*self.index.load(Ordering::Acquire) }
    }

    /// Starts loading the index line where `hash`'s search begins.
    pub(super) fn prefetch_index(&self, hash: u64) {
        let index = self.index();
        prefetch(&index.words[tag(hash) as usize & index.mask]);
    }

    /// Starts loading the record the first matching index word names. Best after
    /// [`Hint::prefetch_index`] of the same hash has had time to land.
    pub(super) fn prefetch_record(&self, hash: u64) {
        let index = self.index();
        let home = tag(hash) as usize & index.mask;
        // A few words at most: a longer run is rare at half load, and this is a hint.
        for pos in home..home + 4 {
            let word = index.word(pos);
            if word == 0 {
                return;
            }
            if word >> 32 == tag(hash) {
                let base = self.recs.load(Ordering::Relaxed);
                let rec = base.wrapping_add(record_of(word));
                prefetch(rec);
                prefetch(rec.cast::<u8>().wrapping_add(64));
                return;
            }
        }
    }
}

/// Asks the CPU to start loading `p`'s cache line. Never faults, whatever `p` is.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it neither faults nor makes memory reachable.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scaled;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn rec(hash: u64, key: &[u8], version: u64) -> Rec {
        Rec {
            hash,
            version,
            key: KeyBlob::copy_from(key),
            value: ValueBlob::copy_from(&version.to_le_bytes()),
        }
    }

    #[test]
    fn a_record_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Rec>(), 128);
        assert_eq!(std::mem::align_of::<Rec>(), 64);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u8>().prop_map(Op::Put),
            any::<u8>().prop_map(Op::Remove)
        ]
    }

    /// Hashes drawn from few values, so that probe runs collide, wrap around the end
    /// of the index and share tags.
    fn weak_hash(k: u8) -> u64 {
        let h = u64::from(k % 23).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Keep some keys on an identical hash so the full-key check matters.
        if k % 5 == 0 {
            h
        } else {
            h ^ u64::from(k)
        }
    }

    proptest! {
        /// Any sequence of inserts, replacements and removals agrees with a `HashMap`,
        /// and the lock-free hint never leads anywhere unsound.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut table = Table::default();
            let hint = Hint::new(&table);
            let mut model: HashMap<u8, u64> = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                let version = n as u64 + 1;
                match op {
                    Op::Put(k) => {
                        let h = weak_hash(k);
                        match table.get_mut(h, &[k]) {
                            Some((_, v, _)) => *v = version,
                            None => table.insert_new(rec(h, &[k], version)),
                        }
                        model.insert(k, version);
                    }
                    Op::Remove(k) => {
                        let got = table.remove(weak_hash(k), &[k]).map(|r| r.version);
                        prop_assert_eq!(got, model.remove(&k));
                    }
                }
                hint.publish(&table);
                prop_assert_eq!(table.len(), model.len());
            }
            for k in 0..=255u8 {
                let h = weak_hash(k);
                hint.prefetch_index(h);
                hint.prefetch_record(h);
                prop_assert_eq!(table.get(h, &[k]).map(|r| r.version), model.get(&k).copied());
            }
            let mut seen: Vec<u8> = table.iter().map(|r| r.key[0]).collect();
            seen.sort_unstable();
            let mut want: Vec<u8> = model.keys().copied().collect();
            want.sort_unstable();
            prop_assert_eq!(seen, want);
        }
    }

    #[test]
    fn grows_and_keeps_the_old_index_alive() {
        let mut table = Table::default();
        let hint = Hint::new(&table);
        let first = hint.index.load(Ordering::Relaxed);
        for i in 0..1000u64 {
            let key = i.to_le_bytes();
            table.insert_new(rec(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), &key, i));
            hint.publish(&table);
        }
        assert_ne!(hint.index.load(Ordering::Relaxed), first);
        assert!(table.retired.iter().any(|r| std::ptr::eq(&**r, first)));
        assert!(table.index.words.len() >= 2000);
        for i in 0..1000u64 {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(table.get(h, &i.to_le_bytes()).unwrap().version, i);
        }
    }

    /// Structural invariants: each record named by exactly one word, each word's
    /// tag matches its record's hash, and no empty slot between a word's home and it.
    fn check(t: &Table) {
        let n = t.index.words.len();
        let mask = t.index.mask;
        let mut seen = vec![false; t.recs.len()];
        for pos in 0..n {
            let w = t.index.word(pos);
            if w == 0 {
                continue;
            }
            let at = record_of(w);
            assert!(
                at < t.recs.len(),
                "word at {pos} names record {at} of {}",
                t.recs.len()
            );
            assert!(!seen[at], "record {at} named twice");
            seen[at] = true;
            assert_eq!(w >> 32, tag(t.recs[at].hash));
            let home = (w >> 32) as usize & mask;
            let mut p = home;
            while p != pos {
                assert_ne!(t.index.word(p), 0, "hole between home {home} and {pos}");
                p = (p + 1) & mask;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert!(t.recs.len() * 2 <= n);
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn run(seed: u64, keys: u64, hash: impl Fn(u64) -> u64, ops: usize) {
        let mut rng = Rng(seed);
        let mut t = Table::default();
        let hint = Hint::new(&t);
        let mut model: HashMap<u64, u64> = HashMap::new();
        for v in 1..=ops as u64 {
            let k = rng.next() % keys;
            let h = hash(k);
            let key = k.to_le_bytes();
            if rng.next() % 3 == 0 {
                let got = t.remove(h, &key).map(|r| r.version);
                assert_eq!(got, model.remove(&k), "remove {k}");
            } else {
                match t.get_mut(h, &key) {
                    Some((_, version, _)) => *version = v,
                    None => t.insert_new(rec(h, &key, v)),
                }
                model.insert(k, v);
            }
            hint.publish(&t);
            hint.prefetch_index(h);
            hint.prefetch_record(h);
            if v % 97 == 0 {
                check(&t);
            }
        }
        check(&t);
        for k in 0..keys {
            assert_eq!(
                t.get(hash(k), &k.to_le_bytes()).map(|r| r.version),
                model.get(&k).copied()
            );
        }
        // Drain everything, including the last record.
        for k in 0..keys {
            let got = t.remove(hash(k), &k.to_le_bytes()).map(|r| r.version);
            assert_eq!(got, model.remove(&k));
            check(&t);
        }
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn wraps_at_the_end_of_the_index() {
        // Tags all at the top of any power-of-two index: runs wrap past the end.
        for seed in 1..=scaled(19) as u64 {
            run(
                seed,
                40,
                |k| ((0xFFFF_FFFF - (k % 5)) << 32) | (k * 16),
                scaled(3000),
            );
        }
    }

    #[test]
    fn identical_hashes_and_tags() {
        for seed in 1..=scaled(19) as u64 {
            // Every key the same full hash.
            run(seed, 30, |_| 0xFFFF_FFFF_0000_0000, scaled(2000));
            // Same tag, different low halves.
            run(seed, 30, |k| 0xFFFF_FFF0_0000_0000 | k, scaled(2000));
        }
    }

    #[test]
    fn random_hashes_many_ops() {
        for seed in 1..=scaled(5) as u64 {
            run(
                seed,
                scaled(3000) as u64,
                |k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17),
                scaled(60_000),
            );
            run(
                seed,
                500,
                |k| (k % 61).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k << 40),
                scaled(20_000),
            );
        }
    }
}
