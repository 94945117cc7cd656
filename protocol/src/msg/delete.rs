//! DELETE: remove a record, optionally only at an expected version.
//!
//! ```text
//! request           expected u64 | key_len u16 | key
//! OK                version u64 (the change sequence number of the deletion)
//! NOT_FOUND         (empty)
//! VERSION_CONFLICT  version u64 (the current version)
//! ```
//!
//! `expected` 0 deletes whatever version is there.

use super::{put_bytes_u16, read_key, Reader};
use crate::encode::{header, request_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody};
use bytes::{BufMut, BytesMut};

/// Parses a DELETE request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let expected = r.u64()?;
    let key = read_key(r, limits)?;
    r.finish()?;
    Ok(Request::Delete { key, expected })
}

/// Appends a whole DELETE request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, key: &[u8], expected: u64) {
    header(buf, request_header(Opcode::DELETE, id), 8 + 2 + key.len());
    buf.put_u64(expected);
    put_bytes_u16(buf, key);
}

/// Appends an OK response to DELETE.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, version: u64) {
    crate::encode::written(buf, Opcode::DELETE, id, version);
}

/// Parses the body of an OK response to DELETE.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    super::put::decode_response(r)
}
