//! PING: a liveness check whose payload comes back unchanged.
//!
//! ```text
//! request   payload (the whole body, possibly empty)
//! OK        the same payload
//! ```

use super::{check_value, Reader};
use crate::encode::{header, request_header, response_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, BytesMut};

/// Parses a PING request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let payload = r.rest();
    check_value(&payload, limits)?;
    Ok(Request::Ping { payload })
}

/// Appends a whole PING request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, payload: &[u8]) {
    header(buf, request_header(Opcode::PING, id), payload.len());
    buf.put_slice(payload);
}

/// Appends the OK response echoing `payload`.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, payload: &[u8]) {
    header(
        buf,
        response_header(Opcode::PING, Status::OK, id),
        payload.len(),
    );
    buf.put_slice(payload);
}

/// Parses the body of an OK response to PING.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    Ok(ResponseBody::Pong(r.rest()))
}
