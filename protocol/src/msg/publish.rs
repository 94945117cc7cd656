//! PUBLISH: send a message to every subscriber of a subject; nothing is stored.
//!
//! ```text
//! request  subject_len u16 | subject | payload (the rest of the body)
//! OK       receivers u32
//! ```
//!
//! The subject is limited like a key (and may not be empty); the payload like a value.
//! `receivers` is the number of connections the message was delivered to (a
//! connection with several matching subscriptions counts once; one whose output was
//! full, which lost the message and will be told so, does not count).

use super::{check_value, put_bytes_u16, read_key, Reader};
use crate::encode::{header, request_header, response_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, BytesMut};

/// Parses a PUBLISH request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    let subject = read_key(r, limits)?;
    let payload = r.rest();
    check_value(&payload, limits)?;
    Ok(Request::Publish { subject, payload })
}

/// Appends a whole PUBLISH request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId, subject: &[u8], payload: &[u8]) {
    header(
        buf,
        request_header(Opcode::PUBLISH, id),
        2 + subject.len() + payload.len(),
    );
    put_bytes_u16(buf, subject);
    buf.put_slice(payload);
}

/// Appends an OK response to PUBLISH.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, receivers: u32) {
    header(buf, response_header(Opcode::PUBLISH, Status::OK, id), 4);
    buf.put_u32(receivers);
}

/// Parses the body of an OK response to PUBLISH.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    let receivers = r.u32()?;
    r.finish()?;
    Ok(ResponseBody::Published { receivers })
}
