//! `Blob`: a byte string kept inline when short and in a shared heap buffer when long.
//!
//! A record's key and value used to be two heap allocations, so a GET touched four
//! cache lines that were rarely cached with 100k records: the map's control bytes, its
//! slot, the key (to compare it) and the value (to copy it). Profiles of pipelined GETs
//! showed those misses as more than half of the server's user CPU. With short keys and
//! values stored in the record itself, a GET touches the index and the record.
//! Long values stay shared `Bytes`, so reading them copies nothing.

use bytes::Bytes;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Up to `N` bytes inline; longer strings in a shared buffer.
#[derive(Clone)]
pub(crate) enum Blob<const N: usize> {
    /// The first `len` bytes of `bytes`.
    Inline { len: u8, bytes: [u8; N] },
    /// A heap buffer, shared by clones.
    Shared(Bytes),
}

/// Keys up to 30 bytes inline (the type is 40 bytes, against 32 for `Bytes`).
pub(crate) type KeyBlob = Blob<30>;
/// Values up to 70 bytes inline (the type is 72 bytes): counters, ids, small JSON.
pub(crate) type ValueBlob = Blob<70>;

impl<const N: usize> Blob<N> {
    /// Copies `data` into a new blob (never sharing the caller's buffer).
    pub(crate) fn copy_from(data: &[u8]) -> Self {
        if data.len() <= N {
            let mut bytes = [0; N];
            bytes[..data.len()].copy_from_slice(data);
            // N < 256 for every instance, so the length fits a byte.
            Blob::Inline {
                len: data.len() as u8,
                bytes,
            }
        } else {
            Blob::Shared(Bytes::copy_from_slice(data))
        }
    }

    /// The bytes as a `Bytes`: shared when on the heap, copied when inline.
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Blob::Inline { .. } => Bytes::copy_from_slice(self),
            Blob::Shared(b) => b.clone(),
        }
    }

    /// The shared heap buffer behind a long blob; `None` for one stored inline.
    pub(crate) fn shared(&self) -> Option<&Bytes> {
        match self {
            Blob::Inline { .. } => None,
            Blob::Shared(b) => Some(b),
        }
    }

    /// Heap bytes a blob of `len` bytes holds beyond its own size.
    pub(crate) const fn heap_len_for(len: usize) -> usize {
        if len <= N {
            0
        } else {
            len
        }
    }
}

impl<const N: usize> Deref for Blob<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Blob::Shared(b) => b,
        }
    }
}

impl<const N: usize> Borrow<[u8]> for Blob<N> {
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Equality, order and hash are those of the bytes, as `Borrow<[u8]>` requires.
impl<const N: usize> PartialEq for Blob<N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<const N: usize> Eq for Blob<N> {}

impl<const N: usize> PartialOrd for Blob<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for Blob<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl<const N: usize> Hash for Blob<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl<const N: usize> fmt::Debug for Blob<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.escape_ascii().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn short_is_inline_long_is_shared_and_both_behave_as_bytes() {
        for len in [0, 1, 30, 31, 70, 71, 5000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let k = KeyBlob::copy_from(&data);
            let v = ValueBlob::copy_from(&data);
            assert_eq!(&*k, &data[..]);
            assert_eq!(&*v, &data[..]);
            assert_eq!(matches!(k, Blob::Inline { .. }), len <= 30);
            assert_eq!(matches!(v, Blob::Inline { .. }), len <= 70);
            assert_eq!(hash_of(&k), hash_of(&data[..]));
            assert_eq!(v.to_bytes(), Bytes::from(data.clone()));
            assert_eq!(KeyBlob::heap_len_for(len), if len <= 30 { 0 } else { len });
        }
        assert!(KeyBlob::copy_from(b"a") < KeyBlob::copy_from(b"ab"));
        assert!(KeyBlob::copy_from(&[b'z'; 40]) > KeyBlob::copy_from(b"y"));
        assert_eq!(std::mem::size_of::<KeyBlob>(), 40);
        assert_eq!(std::mem::size_of::<ValueBlob>(), 72);
    }
}
