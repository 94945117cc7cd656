//! Writing frames straight into an output buffer.
//!
//! Every function appends one whole frame to a `BytesMut` and allocates nothing beyond
//! growing that buffer. When a body's length is known up front the header is written
//! once ([`header`]); when it is not (SCAN pages, STATS text) a [`FrameStart`] marks
//! where the frame began and [`FrameStart::finish`] patches its length afterwards.
//!
//! The per-opcode response encoders live in [`crate::msg`]; this module holds the
//! framing they share and the responses that look the same for every opcode.

use crate::header::{Flags, Header, RequestId, HEADER_LEN, LENGTH_LEN, PREFIX_LEN};
use crate::opcode::{Opcode, Status};
use crate::BASE_VERSION;
use bytes::{BufMut, BytesMut};

/// Appends a length field and header for a body of `body_len` bytes.
///
/// The caller then appends exactly `body_len` bytes of body.
#[inline]
pub fn header(buf: &mut BytesMut, header: Header, body_len: usize) {
    let mut h = [0u8; HEADER_LEN];
    header.write(&mut h);
    buf.reserve(PREFIX_LEN + body_len);
    buf.put_u32((HEADER_LEN + body_len) as u32);
    buf.put_slice(&h);
}

/// Who a response answers: the request's id, and the protocol version its connection
/// agreed on (frames of a connection all carry that version, responses included).
///
/// Every response encoder takes `impl Into<ReplyTo>`: a bare [`RequestId`] stands for
/// a reply in the base version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    /// The version byte to write.
    pub version: u8,
    /// The request id to echo.
    pub request_id: RequestId,
}

impl From<RequestId> for ReplyTo {
    fn from(request_id: RequestId) -> ReplyTo {
        ReplyTo {
            version: BASE_VERSION,
            request_id,
        }
    }
}

/// The header of a response.
#[inline]
pub fn response_header(opcode: Opcode, status: Status, to: impl Into<ReplyTo>) -> Header {
    let to = to.into();
    Header {
        version: to.version,
        opcode,
        flags: Flags::NONE,
        status,
        request_id: to.request_id,
    }
}

/// The header of a request in the base version.
pub fn request_header(opcode: Opcode, request_id: RequestId) -> Header {
    response_header(opcode, Status::OK, request_id)
}

/// Where a frame of not yet known length began in its buffer.
#[derive(Debug)]
#[must_use = "a started frame must be finished to patch its length"]
pub struct FrameStart(usize);

impl FrameStart {
    /// Appends a header with a placeholder length and remembers where it went.
    pub fn begin(buf: &mut BytesMut, header: Header) -> FrameStart {
        let start = buf.len();
        let mut h = [0u8; HEADER_LEN];
        header.write(&mut h);
        buf.put_u32(0);
        buf.put_slice(&h);
        FrameStart(start)
    }

    /// Bytes of body written since [`begin`](Self::begin).
    pub fn body_len(&self, buf: &BytesMut) -> usize {
        buf.len() - self.0 - PREFIX_LEN
    }

    /// The offset in `buf` of the first body byte.
    pub fn body_offset(&self) -> usize {
        self.0 + PREFIX_LEN
    }

    /// Patches the length field to cover everything written since `begin`.
    pub fn finish(self, buf: &mut BytesMut) {
        let len = (buf.len() - self.0 - LENGTH_LEN) as u32;
        buf[self.0..self.0 + LENGTH_LEN].copy_from_slice(&len.to_be_bytes());
    }
}

/// Appends a NOT_FOUND response (empty body).
pub fn not_found(buf: &mut BytesMut, opcode: Opcode, id: impl Into<ReplyTo>) {
    header(buf, response_header(opcode, Status::NOT_FOUND, id), 0);
}

/// Appends a VERSION_CONFLICT response carrying the record's current version
/// (0 when the key has no record).
pub fn version_conflict(buf: &mut BytesMut, opcode: Opcode, id: impl Into<ReplyTo>, current: u64) {
    header(
        buf,
        response_header(opcode, Status::VERSION_CONFLICT, id),
        8,
    );
    buf.put_u64(current);
}

/// Appends an OK response whose body is one version number (PUT, CAS, DELETE).
pub fn written(buf: &mut BytesMut, opcode: Opcode, id: impl Into<ReplyTo>, version: u64) {
    header(buf, response_header(opcode, Status::OK, id), 8);
    buf.put_u64(version);
}

/// Appends an error response: `status` in the header, `message` (UTF-8) as the body.
pub fn error(
    buf: &mut BytesMut,
    opcode: Opcode,
    id: impl Into<ReplyTo>,
    status: Status,
    message: &[u8],
) {
    header(buf, response_header(opcode, status, id), message.len());
    buf.put_slice(message);
}
