//! `PrefixIndex`: which subscriptions a subject or key matches, without scanning them.
//!
//! Subscriptions are filed under their prefix in a hash map, and the index keeps the
//! distinct prefix lengths in use. Matching a subject looks up each of its own
//! prefixes of those lengths: the cost grows with the number of distinct prefix
//! lengths (a handful in practice), never with the number of subscriptions or
//! connections.

use crate::job::ConnId;
use bytes::Bytes;
use std::collections::HashMap;

/// A subscription: its connection and its id there.
pub type SubKey = (ConnId, u32);

/// Subscriptions by prefix.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    by_prefix: HashMap<Bytes, Vec<SubKey>, foldhash::fast::RandomState>,
    /// `(length, prefixes of that length)`, by length.
    lengths: Vec<(usize, usize)>,
}

impl PrefixIndex {
    /// Files `sub` under `prefix`.
    pub fn insert(&mut self, prefix: Bytes, sub: SubKey) {
        let len = prefix.len();
        let subs = self.by_prefix.entry(prefix).or_default();
        if subs.is_empty() {
            match self.lengths.binary_search_by_key(&len, |&(l, _)| l) {
                Ok(i) => self.lengths[i].1 += 1,
                Err(i) => self.lengths.insert(i, (len, 1)),
            }
        }
        subs.push(sub);
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
            if let Some(subs) = self.by_prefix.get(&subject[..len]) {
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
}
