//! The bytes on disk: segment names, the segment header, and entries (encoding,
//! and the checks recovery applies to each). Nothing here touches a file.

use bytes::{BufMut, BytesMut};

/// First 8 bytes of every segment.
pub const MAGIC: [u8; 8] = *b"SWBWAL\0\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header: magic, version, reserved.
pub const HEADER_LEN: u64 = 16;
/// Bytes before an entry's body: `len u32`, `crc u32`, `seq u64`.
pub const ENTRY_HEADER_LEN: usize = 16;
/// Bytes of a body before its key: `op u8`, `key_len u16`.
pub(crate) const BODY_FIXED_LEN: usize = 3;
/// Longest key an entry can hold (its length is a `u16`).
pub const MAX_KEY: usize = u16::MAX as usize;
/// Longest value an entry can hold: 1 GiB, the largest frame the protocol can be
/// configured to accept (`protocol::Limits::MAX_MAX_FRAME`), so every value the server
/// can commit fits.
pub const MAX_VALUE: usize = 1 << 30;
/// Largest `len` (body bytes) a valid entry can have. A larger one is damage, found
/// before anything is allocated or read for the body.
pub const MAX_BODY: u32 = (BODY_FIXED_LEN + MAX_KEY + MAX_VALUE) as u32;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_HOLE: u8 = 3;

/// One logged change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The key now holds this value.
    Put {
        /// The key written.
        key: &'a [u8],
        /// Its new value.
        value: &'a [u8],
    },
    /// The key's record was removed.
    Delete {
        /// The key removed.
        key: &'a [u8],
    },
    /// The sequence number was taken by a write that failed: nothing changed.
    Hole,
}

/// A record that does not fit an entry: its key is over [`MAX_KEY`] or its value
/// over [`MAX_VALUE`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record too large for the write-ahead log: key {key_len} bytes (max {MAX_KEY}), value {value_len} bytes (max {MAX_VALUE})")]
pub struct RecordTooLarge {
    /// The key's length.
    pub key_len: usize,
    /// The value's length.
    pub value_len: usize,
}

/// Appends one encoded entry to `buf`.
///
/// # Panics
/// If the key is over [`MAX_KEY`] or the value over [`MAX_VALUE`] bytes, which the
/// protocol's limits rule out for every record the server commits; use
/// [`try_encode_entry`] where that is not known.
pub fn encode_entry(buf: &mut BytesMut, seq: u64, record: Record<'_>) {
    if let Err(e) = try_encode_entry(buf, seq, record) {
        panic!("{e}");
    }
}

/// Appends one encoded entry to `buf`, or leaves `buf` unchanged and says why the
/// record does not fit.
pub fn try_encode_entry(
    buf: &mut BytesMut,
    seq: u64,
    record: Record<'_>,
) -> Result<(), RecordTooLarge> {
    let (op, key, value): (u8, &[u8], &[u8]) = match record {
        Record::Put { key, value } => (OP_PUT, key, value),
        Record::Delete { key } => (OP_DELETE, key, &[]),
        Record::Hole => (OP_HOLE, &[], &[]),
    };
    if key.len() > MAX_KEY || value.len() > MAX_VALUE {
        return Err(RecordTooLarge {
            key_len: key.len(),
            value_len: value.len(),
        });
    }
    let body_len = BODY_FIXED_LEN + key.len() + value.len();
    buf.reserve(ENTRY_HEADER_LEN + body_len);
    let start = buf.len();
    buf.put_u32(body_len as u32);
    buf.put_u32(0); // the checksum, filled in below once the body is in place
    buf.put_u64(seq);
    buf.put_u8(op);
    buf.put_u16(key.len() as u16);
    buf.put_slice(key);
    buf.put_slice(value);
    let crc = entry_crc(seq, &buf[start + ENTRY_HEADER_LEN..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// CRC-32C over the 8-byte big-endian seq followed by the body, so an entry copied to
/// the wrong place in the sequence fails its check.
pub(crate) fn entry_crc(seq: u64, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_be_bytes()), body)
}

/// The fixed fields in front of an entry's body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryHeader {
    pub(crate) len: u32,
    pub(crate) crc: u32,
    pub(crate) seq: u64,
}

impl EntryHeader {
    /// Reads the first [`ENTRY_HEADER_LEN`] bytes of `b`, which must hold that many.
    pub(crate) fn parse(b: &[u8]) -> EntryHeader {
        EntryHeader {
            len: be_u32(&b[0..4]),
            crc: be_u32(&b[4..8]),
            seq: u64::from_be_bytes(b[8..16].try_into().unwrap_or([0; 8])),
        }
    }

    /// Whether `len` can be a valid body's length. Checked before anything is read
    /// or allocated for the body.
    pub(crate) fn len_ok(&self) -> bool {
        (BODY_FIXED_LEN as u32..=MAX_BODY).contains(&self.len)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().unwrap_or([0; 4]))
}

/// Decodes a body whose checksum has passed; an error says what is wrong with it.
pub(crate) fn decode_body(body: &[u8]) -> Result<Record<'_>, String> {
    let [op, k0, k1, rest @ ..] = body else {
        return Err(format!("body of {} bytes is too short", body.len()));
    };
    let key_len = usize::from(u16::from_be_bytes([*k0, *k1]));
    if key_len > rest.len() {
        return Err(format!(
            "key length {key_len} is past the body's {} remaining bytes",
            rest.len()
        ));
    }
    let (key, value) = rest.split_at(key_len);
    match *op {
        OP_PUT => Ok(Record::Put { key, value }),
        OP_DELETE if value.is_empty() => Ok(Record::Delete { key }),
        OP_HOLE if key.is_empty() && value.is_empty() => Ok(Record::Hole),
        OP_DELETE | OP_HOLE => Err(format!("op {op} carries bytes it should not")),
        _ => Err(format!("unknown op {op}")),
    }
}

/// The segment header this build writes.
pub(crate) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h
}

/// What is wrong with a segment's first bytes, if anything.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    Ok,
    /// Damaged or torn: short, wrong magic, or a reserved field set.
    Bad(String),
    /// A well-formed header of another format version: not ours to read or cut.
    OtherVersion(u32),
}

/// Checks a segment's first bytes (`b` is up to [`HEADER_LEN`] of them).
pub(crate) fn check_header(b: &[u8]) -> HeaderCheck {
    if b.len() < HEADER_LEN as usize {
        return HeaderCheck::Bad(format!("header cut short at {} bytes", b.len()));
    }
    if b[..8] != MAGIC {
        return HeaderCheck::Bad("not a write-ahead log segment (wrong magic)".into());
    }
    let version = be_u32(&b[8..12]);
    if version != FORMAT_VERSION {
        return HeaderCheck::OtherVersion(version);
    }
    let reserved = be_u32(&b[12..16]);
    if reserved != 0 {
        return HeaderCheck::Bad(format!("reserved header field is {reserved:#x}, not 0"));
    }
    HeaderCheck::Ok
}

/// `wal-<first_seq:020>.log`.
pub fn segment_name(first_seq: u64) -> String {
    format!("wal-{first_seq:020}.log")
}

/// The first seq a segment's file name gives, or `None` for any other name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const _: () = assert!(MAX_VALUE as u64 >= switchboard_protocol::Limits::MAX_MAX_FRAME as u64);

    #[test]
    fn entries_round_trip_and_lay_out_as_documented() {
        let mut buf = BytesMut::new();
        encode_entry(
            &mut buf,
            7,
            Record::Put {
                key: b"ab",
                value: b"xyz",
            },
        );
        assert_eq!(&buf[..4], &8u32.to_be_bytes()); // op + key_len + 2 + 3
        assert_eq!(&buf[8..16], &7u64.to_be_bytes());
        assert_eq!(&buf[16..], &[1, 0, 2, b'a', b'b', b'x', b'y', b'z']);
        let h = EntryHeader::parse(&buf);
        assert_eq!(h.crc, entry_crc(7, &buf[16..]));
        assert_eq!(
            decode_body(&buf[16..]),
            Ok(Record::Put {
                key: b"ab",
                value: b"xyz"
            })
        );
        for r in [Record::Delete { key: b"k" }, Record::Hole] {
            let mut b = BytesMut::new();
            encode_entry(&mut b, 1, r);
            assert_eq!(decode_body(&b[16..]), Ok(r));
        }
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        for body in [
            &[][..],
            &[1, 0],
            &[1, 0, 5, b'a'],
            &[9, 0, 0],
            &[2, 0, 0, 1],
            &[3, 0, 1, 0],
        ] {
            assert!(decode_body(body).is_err(), "{body:?}");
        }
        let big = vec![0u8; MAX_KEY + 1];
        let mut buf = BytesMut::new();
        assert!(try_encode_entry(&mut buf, 1, Record::Delete { key: &big }).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "wal-1.log",
            "wal-99999999999999999999.log",
            "x",
            "wal-0000000000000000000a.log",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
