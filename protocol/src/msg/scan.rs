//! SCAN: list records whose keys start with a prefix, in key order, a page at a time.
//!
//! ```text
//! request  limit u16 | prefix_len u16 | prefix | cursor_len u16 | cursor
//! OK       seq u64 | count u32 | count × entry | next_cursor_len u16 | next_cursor
//! entry    key_len u16 | key | version u64 | value_len u32 | value
//! ```
//!
//! * `limit` is the most entries wanted; 0 asks for the server's default page size, and
//!   a server may return fewer (its own cap, or the frame limit), never more.
//! * `cursor` is empty for the first page; for later pages, the previous page's
//!   `next_cursor`. Entries start strictly after the cursor key.
//! * `next_cursor` is empty when the listing is complete.
//! * `seq` is the server's change sequence when the page was read: the page reflects
//!   every change numbered up to `seq`, and may reflect later ones, which a watcher
//!   recognises by their versions.

use super::{put_bytes_u16, Reader};
use crate::encode::{header, request_header, response_header, FrameStart, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, Bytes, BytesMut};

/// Bytes an entry takes besides its key and value.
pub const ENTRY_OVERHEAD: usize = 2 + 8 + 4;

/// Bytes an OK response body takes besides its entries and next cursor: `seq`,
/// `count` and the cursor's length.
pub const RESPONSE_OVERHEAD: usize = 8 + 4 + 2;

/// One record in a SCAN page.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ScanEntry {
    /// The record's key.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
    pub key: Bytes,
    /// The record's version.
    pub version: u64,
    /// The record's value.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
    pub value: Bytes,
}

/// One page of a SCAN.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ScanPage {
    /// The change sequence the page is consistent with.
    pub seq: u64,
    /// The records, in key order.
    pub entries: Vec<ScanEntry>,
    /// Where the next page starts; empty when the listing is complete.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
    pub next_cursor: Bytes,
}

/// Parses a SCAN request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    // Checked field by field, like every other body: the first bad field decides the
    // status, so a long prefix followed by trailing bytes is KEY_TOO_LARGE, as in GET.
    let limit = r.u16()?;
    let prefix = read_bound(r, limits)?;
    let cursor = read_bound(r, limits)?;
    r.finish()?;
    Ok(Request::Scan {
        prefix,
        cursor,
        limit,
    })
}

/// Reads a prefix or cursor: like a key, but it may be empty.
fn read_bound(r: &mut Reader, limits: &Limits) -> Result<Bytes, RequestError> {
    let part = r.bytes_u16()?;
    if part.len() as u64 > u64::from(limits.max_key) {
        return Err(RequestError::new(
            Status::KEY_TOO_LARGE,
            "prefix or cursor is over the key limit",
        ));
    }
    Ok(part)
}

/// Appends a whole SCAN request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, prefix: &[u8], cursor: &[u8], limit: u16) {
    header(
        buf,
        request_header(Opcode::SCAN, id),
        2 + 2 + prefix.len() + 2 + cursor.len(),
    );
    buf.put_u16(limit);
    put_bytes_u16(buf, prefix);
    put_bytes_u16(buf, cursor);
}

/// Writes an OK response to SCAN entry by entry, straight into the output buffer.
///
/// Call [`entry`](Self::entry) for each record in key order, then
/// [`finish`](Self::finish) with the next cursor.
#[derive(Debug)]
pub struct ScanWriter {
    frame: FrameStart,
    count: u32,
}

impl ScanWriter {
    /// Starts the response: header, `seq`, and a count to be patched.
    pub fn begin(buf: &mut BytesMut, id: impl Into<ReplyTo>, seq: u64) -> ScanWriter {
        let frame = FrameStart::begin(buf, response_header(Opcode::SCAN, Status::OK, id));
        buf.put_u64(seq);
        buf.put_u32(0);
        ScanWriter { frame, count: 0 }
    }

    /// Body bytes the frame would hold after one more entry of this size and a cursor
    /// of `cursor_len` bytes: lets the caller stop before passing the frame limit.
    pub fn body_len_with(
        &self,
        buf: &BytesMut,
        key_len: usize,
        value_len: usize,
        cursor_len: usize,
    ) -> usize {
        self.frame.body_len(buf) + ENTRY_OVERHEAD + key_len + value_len + 2 + cursor_len
    }

    /// Entries written so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Appends one entry.
    pub fn entry(&mut self, buf: &mut BytesMut, key: &[u8], version: u64, value: &[u8]) {
        put_bytes_u16(buf, key);
        buf.put_u64(version);
        buf.put_u32(value.len() as u32);
        buf.put_slice(value);
        self.count += 1;
    }

    /// Appends the cursor and patches the count and the frame length.
    pub fn finish(self, buf: &mut BytesMut, next_cursor: &[u8]) {
        put_bytes_u16(buf, next_cursor);
        let at = self.frame.body_offset() + 8;
        buf[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
        self.frame.finish(buf);
    }
}

/// Body length of an OK response holding entries of these `(key_len, value_len)`
/// sizes and a next cursor of `cursor_len` bytes.
pub fn response_body_len(
    entries: impl IntoIterator<Item = (usize, usize)>,
    cursor_len: usize,
) -> usize {
    let entries: usize = entries
        .into_iter()
        .map(|(key, value)| ENTRY_OVERHEAD + key + value)
        .sum();
    RESPONSE_OVERHEAD + entries + cursor_len
}

/// Writes an OK response to SCAN whose size is known before it starts, so that long
/// values can follow their entry heads from other buffers instead of being copied.
///
/// Call [`begin`](Self::begin) with the entry count and the body length from
/// [`response_body_len`], then for each entry [`entry_head`](Self::entry_head)
/// followed by exactly its value's bytes, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct SizedScanWriter;

impl SizedScanWriter {
    /// Appends the header, `seq` and `count`.
    pub fn begin(
        buf: &mut BytesMut,
        id: impl Into<ReplyTo>,
        seq: u64,
        count: u32,
        body_len: usize,
    ) {
        header(buf, response_header(Opcode::SCAN, Status::OK, id), body_len);
        buf.put_u64(seq);
        buf.put_u32(count);
    }

    /// Appends an entry up to its value; the caller appends `value_len` bytes next.
    pub fn entry_head(buf: &mut BytesMut, key: &[u8], version: u64, value_len: usize) {
        put_bytes_u16(buf, key);
        buf.put_u64(version);
        buf.put_u32(value_len as u32);
    }

    /// Appends the next cursor, ending the frame.
    pub fn finish(buf: &mut BytesMut, next_cursor: &[u8]) {
        put_bytes_u16(buf, next_cursor);
    }
}

/// Appends a whole OK response to SCAN.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, page: &ScanPage) {
    let mut w = ScanWriter::begin(buf, id, page.seq);
    for e in &page.entries {
        w.entry(buf, &e.key, e.version, &e.value);
    }
    w.finish(buf, &page.next_cursor);
}

/// Parses the body of an OK response to SCAN.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    let seq = r.u64()?;
    let count = r.u32()?;
    // Each entry takes at least ENTRY_OVERHEAD bytes, so a count the body cannot hold is
    // rejected by the reads below; capping the reservation keeps a lying count from
    // allocating ahead of them.
    let mut entries = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let key = r.bytes_u16()?;
        let version = r.u64()?;
        let value = r.bytes_u32()?;
        entries.push(ScanEntry {
            key,
            version,
            value,
        });
    }
    let next_cursor = r.bytes_u16()?;
    r.finish()?;
    Ok(ResponseBody::Scan(ScanPage {
        seq,
        entries,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use crate::{Decoder, Limits, Request, RequestError, Status};
    use bytes::BytesMut;

    fn decode(bytes: &[u8]) -> Result<Request, RequestError> {
        let limits = Limits::default();
        let mut buf = BytesMut::from(bytes);
        let frame = Decoder::new(limits.max_frame)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        Request::decode(&frame, &limits)
    }

    fn scan_frame(prefix_len: usize, trailing: &[u8]) -> Vec<u8> {
        let body_len = 2 + 2 + prefix_len + 2 + trailing.len();
        let mut f = Vec::new();
        f.extend_from_slice(&((8 + body_len) as u32).to_be_bytes());
        f.extend_from_slice(&[1, 0x14, 0, 0, 0, 0, 0, 9]);
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(&(prefix_len as u16).to_be_bytes());
        f.extend(std::iter::repeat_n(b'p', prefix_len));
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(trailing);
        f
    }

    #[test]
    fn the_sized_writer_writes_what_the_streaming_writer_writes() {
        use super::{response_body_len, ScanWriter, SizedScanWriter};
        use crate::RequestId;
        let entries: [(&[u8], u64, &[u8]); 3] =
            [(b"a", 1, b""), (b"bb", 2, b"value"), (b"c", 9, &[7; 300])];
        for take in 0..=entries.len() {
            let page = &entries[..take];
            let cursor: &[u8] = if take == 3 { b"" } else { b"bb" };
            let mut streamed = BytesMut::new();
            let mut w = ScanWriter::begin(&mut streamed, RequestId(5), 77);
            for (key, version, value) in page {
                w.entry(&mut streamed, key, *version, value);
            }
            w.finish(&mut streamed, cursor);

            let mut sized = BytesMut::new();
            let len = response_body_len(page.iter().map(|e| (e.0.len(), e.2.len())), cursor.len());
            SizedScanWriter::begin(&mut sized, RequestId(5), 77, take as u32, len);
            for (key, version, value) in page {
                SizedScanWriter::entry_head(&mut sized, key, *version, value.len());
                sized.extend_from_slice(value);
            }
            SizedScanWriter::finish(&mut sized, cursor);
            assert_eq!(sized, streamed, "{take} entries");
        }
    }

    #[test]
    fn first_bad_field_decides_the_status() {
        let long = Limits::DEFAULT_MAX_KEY as usize + 1;
        let err = decode(&scan_frame(long, b"x")).unwrap_err();
        assert_eq!(err.status, Status::KEY_TOO_LARGE);
        let err = decode(&scan_frame(3, b"x")).unwrap_err();
        assert_eq!(err.status, Status::BAD_REQUEST);
        assert!(decode(&scan_frame(long - 1, b"")).is_ok());
    }
}
