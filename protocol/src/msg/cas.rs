//! CAS: write a record only if its current version is the expected one.
//!
//! ```text
//! request           expected u64 | ttl_ms u32 | key_len u16 | key | value (rest)
//! OK                version u64 (the new version)
//! VERSION_CONFLICT  version u64 (the current version; 0 = no record)
//! ```
//!
//! `expected` 0 means "create only if absent". `ttl_ms` is as in PUT.

use super::{check_value, put_bytes_u16, read_key, Reader};
use crate::encode::{header, request_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody};
use bytes::{BufMut, BytesMut};

/// Parses a CAS request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let expected = r.u64()?;
    let ttl_ms = r.u32()?;
    let key = read_key(r, limits)?;
    let value = r.rest();
    check_value(&value, limits)?;
    Ok(Request::Cas {
        key,
        expected,
        value,
        ttl_ms,
    })
}

/// Appends a whole CAS request frame.
pub fn encode_request(
    buf: &mut BytesMut,
    id: RequestId,
    key: &[u8],
    expected: u64,
    value: &[u8],
    ttl_ms: u32,
) {
    header(
        buf,
        request_header(Opcode::CAS, id),
        8 + 4 + 2 + key.len() + value.len(),
    );
    buf.put_u64(expected);
    buf.put_u32(ttl_ms);
    put_bytes_u16(buf, key);
    buf.put_slice(value);
}

/// Appends an OK response to CAS.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, version: u64) {
    crate::encode::written(buf, Opcode::CAS, id, version);
}

/// Parses the body of an OK response to CAS.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    super::put::decode_response(r)
}
