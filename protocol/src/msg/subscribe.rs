//! SUBSCRIBE and UNSUBSCRIBE: receive the changes and messages under a prefix.
//!
//! ```text
//! SUBSCRIBE request    flags u8 | from u64 | history u64 | progress_ms u32
//!                      | prefix_len u16 | prefix
//! SUBSCRIBE OK         sub_id u32 | history u64 | seq u64
//! UNSUBSCRIBE request  sub_id u32
//! UNSUBSCRIBE OK       (empty)
//! ```
//!
//! * `prefix` selects subjects (published messages) and keys (change events) that start
//!   with it; empty selects everything. It is limited like a key.
//! * `flags` bit 0, RESUME: first deliver every logged change after sequence `from` of
//!   history `history` (0 = the server's current history), then continue live. Without
//!   it, delivery starts with the changes after the answer's `seq`, and `from` and
//!   `history` must be 0. Other bits are reserved and must be 0.
//! * `progress_ms` asks for a PROGRESS push after that many milliseconds in which
//!   nothing else was sent on the subscription; 0 asks for none (a PROGRESS still
//!   follows a replay that caught up).
//! * The answer names the subscription (every push for it carries `sub_id`, never
//!   reused on the connection), the server's history id and its change sequence at that moment.
//! * UNSUBSCRIBE of an id the connection does not hold answers NOT_FOUND.

use super::{put_bytes_u16, Reader};
use crate::encode::{header, request_header, response_header, ReplyTo};
use crate::error::RequestError;
use crate::{Limits, Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, BytesMut};

/// SUBSCRIBE flag: replay the logged changes after `from` before going live.
pub const RESUME: u8 = 0x01;

/// Where a subscription resumes: after sequence `from` of history `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Resume {
    /// The last sequence the subscriber has; 0 = from the beginning.
    pub from: u64,
    /// The history `from` belongs to; 0 = the server's current one.
    pub history: u64,
}

/// Parses a SUBSCRIBE request body.
pub fn decode_request(r: &mut Reader, limits: &Limits) -> Result<Request, RequestError> {
    // Checked field by field, in wire order, like every other body: the first bad
    // field decides the status.
    let flags = r.u8()?;
    if flags & !RESUME != 0 {
        return Err(RequestError::bad("SUBSCRIBE sets a reserved flag"));
    }
    let from = r.u64()?;
    let history = r.u64()?;
    if flags & RESUME == 0 && (from != 0 || history != 0) {
        return Err(RequestError::bad(
            "SUBSCRIBE names a sequence without the RESUME flag",
        ));
    }
    let progress_ms = r.u32()?;
    let prefix = r.bytes_u16()?;
    if prefix.len() as u64 > u64::from(limits.max_key) {
        return Err(RequestError::new(
            Status::KEY_TOO_LARGE,
            "prefix is over the key limit",
        ));
    }
    r.finish()?;
    Ok(Request::Subscribe {
        prefix,
        resume: (flags & RESUME != 0).then_some(Resume { from, history }),
        progress_ms,
    })
}

/// Appends a whole SUBSCRIBE request frame.
pub fn encode_request(
    buf: &mut BytesMut,
    id: RequestId,
    prefix: &[u8],
    resume: Option<Resume>,
    progress_ms: u32,
) {
    header(
        buf,
        request_header(Opcode::SUBSCRIBE, id),
        1 + 8 + 8 + 4 + 2 + prefix.len(),
    );
    buf.put_u8(if resume.is_some() { RESUME } else { 0 });
    let Resume { from, history } = resume.unwrap_or(Resume {
        from: 0,
        history: 0,
    });
    buf.put_u64(from);
    buf.put_u64(history);
    buf.put_u32(progress_ms);
    put_bytes_u16(buf, prefix);
}

/// Appends an OK response to SUBSCRIBE.
pub fn encode_response(
    buf: &mut BytesMut,
    id: impl Into<ReplyTo>,
    sub_id: u32,
    history: u64,
    seq: u64,
) {
    header(
        buf,
        response_header(Opcode::SUBSCRIBE, Status::OK, id),
        4 + 8 + 8,
    );
    buf.put_u32(sub_id);
    buf.put_u64(history);
    buf.put_u64(seq);
}

/// Parses the body of an OK response to SUBSCRIBE.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    let body = ResponseBody::Subscribed {
        sub_id: r.u32()?,
        history: r.u64()?,
        seq: r.u64()?,
    };
    r.finish()?;
    Ok(body)
}

/// Parses an UNSUBSCRIBE request body.
pub fn decode_unsubscribe(r: &mut Reader) -> Result<Request, RequestError> {
    let sub_id = r.u32()?;
    r.finish()?;
    Ok(Request::Unsubscribe { sub_id })
}

/// Appends a whole UNSUBSCRIBE request frame.
pub fn encode_unsubscribe(buf: &mut BytesMut, id: RequestId, sub_id: u32) {
    header(buf, request_header(Opcode::UNSUBSCRIBE, id), 4);
    buf.put_u32(sub_id);
}

/// Appends an OK response to UNSUBSCRIBE.
pub fn encode_unsubscribed(buf: &mut BytesMut, id: impl Into<ReplyTo>) {
    header(buf, response_header(Opcode::UNSUBSCRIBE, Status::OK, id), 0);
}

/// Parses the body of an OK response to UNSUBSCRIBE.
pub fn decode_unsubscribed(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    r.finish()?;
    Ok(ResponseBody::Unsubscribed)
}
