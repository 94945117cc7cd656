//! Turning fuzzer bytes into structured values, and values back into such bytes.
//!
//! The targets read their inputs through [`Source`] instead of deriving
//! `arbitrary::Arbitrary`, because the root workspace's `cargo test` replays every
//! corpus file through the same code and must not need the `arbitrary` crate. The
//! format is deliberately simple (fixed-width big-endian fields, `u16`-length-prefixed
//! byte strings) so that [`Script`] can write seeds that decode to chosen values.
//!
//! Reads past the end yield zeros and empty strings, never an error: every byte string
//! is a valid input, which is what a fuzzer needs.

use bytes::Bytes;

/// A cursor over fuzzer input.
#[derive(Debug)]
pub struct Source<'a> {
    data: &'a [u8],
}

impl<'a> Source<'a> {
    /// A source reading `data` from the start.
    pub fn new(data: &'a [u8]) -> Source<'a> {
        Source { data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Takes up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// A `u16` length, then that many bytes, cut to `max` and to what is left.
    pub fn bytes(&mut self, max: usize) -> Bytes {
        let len = usize::from(self.u16()).min(max);
        Bytes::copy_from_slice(self.take(len))
    }
}

/// Writes bytes that a [`Source`] reads back as the values written: the seed writer.
#[derive(Debug, Default)]
pub struct Script {
    out: Vec<u8>,
}

impl Script {
    /// An empty script.
    pub fn new() -> Script {
        Script::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Script {
        self.out.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Script {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Script {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Script {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u16` length and the bytes, as [`Source::bytes`] reads them.
    ///
    /// # Panics
    /// When `b` is longer than `u16::MAX`: seeds are small by design.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Script {
        let len = u16::try_from(b.len()).expect("seed strings fit a u16 length");
        self.u16(len);
        self.out.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_writes_what_source_reads() {
        let mut s = Script::new();
        s.u8(7).u16(0x1234).u32(5).u64(u64::MAX).bytes(b"abc");
        let bytes = s.into_bytes();
        let mut src = Source::new(&bytes);
        assert_eq!(src.u8(), 7);
        assert_eq!(src.u16(), 0x1234);
        assert_eq!(src.u32(), 5);
        assert_eq!(src.u64(), u64::MAX);
        assert_eq!(&src.bytes(10)[..], b"abc");
        assert!(src.is_empty());
        assert_eq!((src.u8(), src.u64(), src.bytes(9).len()), (0, 0, 0));
    }

    #[test]
    fn strings_are_cut_to_the_maximum_and_the_input() {
        let mut src = Source::new(&[0, 5, b'a', b'b', b'c', b'd', b'e', 0, 9, b'x']);
        assert_eq!(&src.bytes(3)[..], b"abc");
        // The two bytes the cut left behind are read as the next length: 'd' 'e'.
        assert_eq!(src.u16(), u16::from_be_bytes([b'd', b'e']));
        assert_eq!(&src.bytes(100)[..], b"x");
    }
}
