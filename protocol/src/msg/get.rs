//! GET: read one record.
//!
//! ```text
//! request   key_len u16 | key
//! OK        version u64 | value (the rest of the body)
//! NOT_FOUND (empty)
//! ```

use super::{put_bytes_u16, read_key, Reader};
use crate::encode::{header, request_header, response_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, BytesMut};

/// Parses a GET request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let key = read_key(r, limits)?;
    r.finish()?;
    Ok(Request::Get { key })
}

/// Appends a whole GET request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, key: &[u8]) {
    header(buf, request_header(Opcode::GET, id), 2 + key.len());
    put_bytes_u16(buf, key);
}

/// Appends an OK response carrying a record.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, version: u64, value: &[u8]) {
    encode_response_head(buf, id, version, value.len());
    buf.put_slice(value);
}

/// Appends an OK response up to its value: the caller sends exactly `value_len` bytes
/// of value after it (from another buffer, so a long value need not be copied here).
pub fn encode_response_head(
    buf: &mut BytesMut,
    id: impl Into<ReplyTo>,
    version: u64,
    value_len: usize,
) {
    header(
        buf,
        response_header(Opcode::GET, Status::OK, id),
        8 + value_len,
    );
    buf.put_u64(version);
}

/// Parses the body of an OK response to GET.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    let version = r.u64()?;
    let value = r.rest();
    Ok(ResponseBody::Value { version, value })
}
