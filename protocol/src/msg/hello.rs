//! HELLO: agree on a protocol version and features.
//!
//! ```text
//! request  max_version u8 | features u32 | token_len u16 | token
//! OK       version u8 | features u32 | max_frame u32 | max_key u32 | max_value u32
//!          | history u64 | server (UTF-8, the rest of the body)
//! ```
//!
//! The client names the highest version it speaks and the features it wants; the
//! server answers with the version it will use (the lower of the two highest versions)
//! and the features it granted (a subset of those asked for), plus its limits, so a
//! client need not guess them, and its history id: change sequences are comparable
//! only between servers (or runs of one) that report the same history. `token` is reserved for authentication: a server with
//! no token configured ignores it.
//!
//! HELLO is optional, and only allowed as a connection's first request. Without it the
//! connection speaks the base version with no features.

use super::Reader;
use crate::encode::{header, request_header, response_header, ReplyTo};
use crate::error::RequestError;
use crate::{Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, Bytes, BytesMut};

/// Largest authentication token accepted, in bytes.
pub const MAX_TOKEN: usize = 256;

/// What the server tells a client in answer to HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HelloReply {
    /// The version the connection speaks from now on.
    pub version: u8,
    /// The features granted.
    pub features: u32,
    /// The server's frame limit, length field included.
    pub max_frame: u32,
    /// The server's key limit.
    pub max_key: u32,
    /// The server's value limit.
    pub max_value: u32,
    /// The server's history id: its change sequences continue those of every run
    /// that reported the same id.
    pub history: u64,
    /// The server's name and version, for people and logs.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
    pub server: Bytes,
}

/// Parses a HELLO request body.
pub fn decode_request(r: &mut Reader) -> Result<Request, RequestError> {
    let max_version = r.u8()?;
    let features = r.u32()?;
    let token = r.bytes_u16()?;
    r.finish()?;
    if max_version == 0 {
        return Err(RequestError::bad("HELLO names version 0"));
    }
    if token.len() > MAX_TOKEN {
        return Err(RequestError::bad("HELLO token is over 256 bytes"));
    }
    Ok(Request::Hello {
        max_version,
        features,
        token,
    })
}

/// Appends a whole HELLO request frame. `token` must be at most [`MAX_TOKEN`] bytes.
pub fn encode_request(
    buf: &mut BytesMut,
    id: RequestId,
    max_version: u8,
    features: u32,
    token: &[u8],
) {
    header(
        buf,
        request_header(Opcode::HELLO, id),
        1 + 4 + 2 + token.len(),
    );
    buf.put_u8(max_version);
    buf.put_u32(features);
    super::put_bytes_u16(buf, token);
}

/// Appends an OK response to HELLO.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, reply: &HelloReply) {
    let body_len = 1 + 4 * 4 + 8 + reply.server.len();
    header(
        buf,
        response_header(Opcode::HELLO, Status::OK, id),
        body_len,
    );
    buf.put_u8(reply.version);
    buf.put_u32(reply.features);
    buf.put_u32(reply.max_frame);
    buf.put_u32(reply.max_key);
    buf.put_u32(reply.max_value);
    buf.put_u64(reply.history);
    buf.put_slice(&reply.server);
}

/// Parses the body of an OK response to HELLO.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    Ok(ResponseBody::Hello(HelloReply {
        version: r.u8()?,
        features: r.u32()?,
        max_frame: r.u32()?,
        max_key: r.u32()?,
        max_value: r.u32()?,
        history: r.u64()?,
        server: r.rest(),
    }))
}
