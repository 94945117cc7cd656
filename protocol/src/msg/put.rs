//! PUT: create or replace a record; the response carries its new version.
//!
//! ```text
//! request   ttl_ms u32 | key_len u16 | key | value (the rest of the body)
//! OK        version u64
//! ```
//!
//! `ttl_ms` is reserved for expiry: 0 means "never expires", and a server that has not
//! granted the TTL feature answers any other value with `UNSUPPORTED`.

use super::{check_value, put_bytes_u16, read_key, Reader};
use crate::encode::{header, request_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody};
use bytes::{BufMut, BytesMut};

/// Parses a PUT request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let ttl_ms = r.u32()?;
    let key = read_key(r, limits)?;
    let value = r.rest();
    check_value(&value, limits)?;
    Ok(Request::Put { key, value, ttl_ms })
}

/// Appends a whole PUT request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, key: &[u8], value: &[u8], ttl_ms: u32) {
    header(
        buf,
        request_header(Opcode::PUT, id),
        4 + 2 + key.len() + value.len(),
    );
    buf.put_u32(ttl_ms);
    put_bytes_u16(buf, key);
    buf.put_slice(value);
}

/// Parses the body of an OK response to PUT, CAS or DELETE: one version.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    let version = r.u64()?;
    r.finish()?;
    Ok(ResponseBody::Written { version })
}

/// Appends an OK response to PUT.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, version: u64) {
    crate::encode::written(buf, Opcode::PUT, id, version);
}
