//! Message bodies, one module per opcode family.
//!
//! Each module documents its body layout (the same table as protocol-spec.md) and
//! offers the same verbs: `decode_request`, `encode_request`, `encode_response`,
//! `decode_response`. [`Request`](crate::Request) and [`Response`](crate::Response)
//! dispatch to them by opcode.

pub mod cas;
pub mod delete;
pub mod get;
pub mod hello;
pub mod ping;
pub mod publish;
pub mod put;
pub mod scan;
pub mod stats;
pub mod subscribe;

mod reader;

pub use reader::Reader;

use crate::error::RequestError;
use crate::limits::Limits;
use crate::opcode::Status;
use bytes::{BufMut, Bytes, BytesMut};

/// Reads a `u16`-length-prefixed key and checks it against the key limit.
pub(crate) fn read_key(r: &mut Reader, limits: &Limits) -> Result<Bytes, RequestError> {
    let key = r.bytes_u16()?;
    check_key(&key, limits)?;
    Ok(key)
}

/// A key must be non-empty and within the key limit.
pub(crate) fn check_key(key: &[u8], limits: &Limits) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::bad("empty key"));
    }
    if key.len() as u64 > u64::from(limits.max_key) {
        return Err(RequestError::new(
            Status::KEY_TOO_LARGE,
            "key is over the key limit",
        ));
    }
    Ok(())
}

/// A value (or payload) must be within the value limit.
pub(crate) fn check_value(value: &[u8], limits: &Limits) -> Result<(), RequestError> {
    if value.len() as u64 > u64::from(limits.max_value) {
        return Err(RequestError::new(
            Status::VALUE_TOO_LARGE,
            "value is over the value limit",
        ));
    }
    Ok(())
}

/// Appends a `u16` length and the bytes. Callers have checked the length fits.
pub(crate) fn put_bytes_u16(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}
