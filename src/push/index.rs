//! `PrefixIndex`: which subscriptions a subject or key matches, without scanning them.
//!
//! Subscriptions are filed under their prefix in a hash map, and the index keeps the
//! distinct prefix lengths in use. Matching a subject looks up each of its own
//! prefixes of those lengths: the cost grows with the number of distinct prefix
//! lengths (a handful in practice), never with the number of subscriptions or
//! connections.
//!
//! Once many prefixes are filed, a lookup in the large map usually misses the cache,
//! so a filter goes first: a table of counters indexed by a hash of a prefix's length
//! and first eight bytes. A subject's prefix of a given length is looked up only when
//! its counter is not zero, so the lengths that only other subscriptions use cost a
//! probe of a small table each, not a miss in a large one.

use crate::job::ConnId;
use bytes::Bytes;
use std::collections::HashMap;

/// A subscription: its connection and its id there.
pub type SubKey = (ConnId, u32);

/// Distinct prefixes past which the filter is kept.
const FILTER_FROM: usize = 4096;
/// Counters in the filter: ten times the prefixes it is meant for, so about one
/// probe in ten of a length in use elsewhere still goes to the map.
const FILTER_SLOTS: usize = 1 << 20;

/// Subscriptions by prefix.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    by_prefix: HashMap<Bytes, Vec<SubKey>, foldhash::fast::RandomState>,
    /// `(length, prefixes of that length)`, by length.
    lengths: Vec<(usize, usize)>,
    /// Prefixes per filter slot (saturating: a full slot is never decremented, which
    /// only costs a useless lookup); kept while there are many prefixes.
    filter: Option<Box<[u8]>>,
}

/// The filter slot of a prefix of `len` bytes that starts with `head` (its first
/// eight bytes, or fewer when it is shorter).
fn slot(len: usize, head: &[u8]) -> usize {
    let mut word = [0u8; 8];
    word[..head.len()].copy_from_slice(head);
    let x = u64::from_le_bytes(word) ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let h = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (h >> 44) as usize & (FILTER_SLOTS - 1)
}

fn head(prefix: &[u8]) -> &[u8] {
    &prefix[..prefix.len().min(8)]
}

impl PrefixIndex {
    /// Files `sub` under `prefix`.
    pub fn insert(&mut self, prefix: Bytes, sub: SubKey) {
        let len = prefix.len();
        let at = slot(len, head(&prefix));
        let subs = self.by_prefix.entry(prefix).or_default();
        let new = subs.is_empty();
        subs.push(sub);
        if new {
            match self.lengths.binary_search_by_key(&len, |&(l, _)| l) {
                Ok(i) => self.lengths[i].1 += 1,
                Err(i) => self.lengths.insert(i, (len, 1)),
            }
            match &mut self.filter {
                Some(filter) => filter[at] = filter[at].saturating_add(1),
                None if self.by_prefix.len() > FILTER_FROM => self.build_filter(),
                None => {}
            }
        }
    }

    fn build_filter(&mut self) {
        let mut filter = vec![0u8; FILTER_SLOTS].into_boxed_slice();
        for prefix in self.by_prefix.keys() {
            let at = slot(prefix.len(), head(prefix));
            filter[at] = filter[at].saturating_add(1);
        }
        self.filter = Some(filter);
    }

    /// Removes `sub` from under `prefix`.
    pub fn remove(&mut self, prefix: &[u8], sub: SubKey) {
        let Some(subs) = self.by_prefix.get_mut(prefix) else {
            return;
        };
        subs.retain(|s| *s != sub);
        if subs.is_empty() {
            self.by_prefix.remove(prefix);
            if let Ok(i) = self
                .lengths
                .binary_search_by_key(&prefix.len(), |&(l, _)| l)
            {
                self.lengths[i].1 -= 1;
                if self.lengths[i].1 == 0 {
                    self.lengths.remove(i);
                }
            }
            if let Some(filter) = &mut self.filter {
                let at = slot(prefix.len(), head(prefix));
                if filter[at] < u8::MAX {
                    filter[at] -= 1;
                }
                if self.by_prefix.len() < FILTER_FROM / 2 {
                    self.filter = None;
                }
            }
        }
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Calls `f` with every subscription whose prefix `subject` starts with.
    pub fn for_each_match(&self, subject: &[u8], mut f: impl FnMut(SubKey)) {
        for &(len, _) in &self.lengths {
            if len > subject.len() {
                break;
            }
            let prefix = &subject[..len];
            if let Some(filter) = &self.filter {
                if filter[slot(len, head(prefix))] == 0 {
                    continue;
                }
            }
            if let Some(subs) = self.by_prefix.get(prefix) {
                for &sub in subs {
                    f(sub);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(i: u32) -> ConnId {
        ConnId {
            index: i,
            generation: 0,
        }
    }

    fn matches(index: &PrefixIndex, subject: &[u8]) -> Vec<SubKey> {
        let mut out = Vec::new();
        index.for_each_match(subject, |s| out.push(s));
        out.sort_by_key(|(c, id)| (c.index, *id));
        out
    }

    #[test]
    fn matches_every_prefix_of_a_subject_and_nothing_else() {
        let mut index = PrefixIndex::default();
        index.insert(Bytes::from_static(b""), (conn(1), 1));
        index.insert(Bytes::from_static(b"order:"), (conn(2), 1));
        index.insert(Bytes::from_static(b"order:"), (conn(2), 2));
        index.insert(Bytes::from_static(b"order:12"), (conn(3), 1));
        index.insert(Bytes::from_static(b"user:"), (conn(4), 1));
        assert_eq!(
            matches(&index, b"order:123"),
            [(conn(1), 1), (conn(2), 1), (conn(2), 2), (conn(3), 1)]
        );
        assert_eq!(matches(&index, b"user"), [(conn(1), 1)]);
        index.remove(b"", (conn(1), 1));
        index.remove(b"order:", (conn(2), 1));
        assert_eq!(matches(&index, b"order:1"), [(conn(2), 2)]);
        index.remove(b"order:", (conn(2), 2));
        index.remove(b"order:12", (conn(3), 1));
        index.remove(b"user:", (conn(4), 1));
        assert!(index.is_empty());
    }

    #[test]
    fn with_many_prefixes_the_filter_skips_lengths_only_others_use_and_misses_nothing() {
        let mut index = PrefixIndex::default();
        for i in 0..10_000u32 {
            index.insert(Bytes::from(format!("idle.{i}.")), (conn(i), 1));
        }
        assert!(index.filter.is_some());
        index.insert(Bytes::from_static(b"bench."), (conn(99_999), 1));
        index.insert(Bytes::from_static(b"idle.7"), (conn(99_998), 1));
        assert_eq!(matches(&index, b"bench.x"), [(conn(99_999), 1)]);
        assert_eq!(
            matches(&index, b"idle.77.z"),
            [(conn(77), 1), (conn(99_998), 1)]
        );
        for i in 0..10_000u32 {
            index.remove(format!("idle.{i}.").as_bytes(), (conn(i), 1));
        }
        assert!(index.filter.is_none(), "dropped when few prefixes are left");
        assert_eq!(matches(&index, b"idle.77.z"), [(conn(99_998), 1)]);
    }
}
