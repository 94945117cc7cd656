//! STATS: the server's counters as text.
//!
//! ```text
//! request   (empty)
//! OK        UTF-8 text, one "name value" pair per line, each line ending in '\n'
//! ```
//!
//! Names are lower-case ASCII with underscores; values are unsigned decimal integers.
//! Clients must ignore names they do not know: servers add counters freely.

use super::Reader;
use crate::encode::{header, request_header, response_header, FrameStart, ReplyTo};
use crate::error::RequestError;
use crate::{Opcode, Request, RequestId, ResponseBody, Status};
use bytes::{BufMut, BytesMut};
use std::io::Write;

/// Parses a STATS request body (which must be empty).
pub fn decode_request(r: &mut Reader) -> Result<Request, RequestError> {
    r.finish()?;
    Ok(Request::Stats)
}

/// Appends a whole STATS request frame.
pub fn encode_request(buf: &mut BytesMut, id: RequestId) {
    header(buf, request_header(Opcode::STATS, id), 0);
}

/// Writes a STATS response one counter at a time.
#[derive(Debug)]
pub struct StatsWriter(FrameStart);

impl StatsWriter {
    /// Starts an OK response to STATS.
    pub fn begin(buf: &mut BytesMut, id: impl Into<ReplyTo>) -> StatsWriter {
        StatsWriter(FrameStart::begin(
            buf,
            response_header(Opcode::STATS, Status::OK, id),
        ))
    }

    /// Appends one `name value` line.
    pub fn counter(&mut self, buf: &mut BytesMut, name: &str, value: u64) {
        // Writing to a BytesMut cannot fail; `writeln!` avoids a String per line.
        let _ = writeln!(BufMut::writer(&mut *buf), "{name} {value}");
    }

    /// Patches the frame's length.
    pub fn finish(self, buf: &mut BytesMut) {
        self.0.finish(buf);
    }
}

/// Appends a whole STATS response with the given text body.
pub fn encode_response(buf: &mut BytesMut, id: impl Into<ReplyTo>, text: &[u8]) {
    header(
        buf,
        response_header(Opcode::STATS, Status::OK, id),
        text.len(),
    );
    buf.put_slice(text);
}

/// Parses the body of an OK response to STATS.
pub fn decode_response(r: &mut Reader) -> Result<ResponseBody, RequestError> {
    Ok(ResponseBody::Stats(r.rest()))
}
