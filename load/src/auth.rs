//! Authenticating to a switchboard server started with `--auth-token-file`: the token
//! from a file, and the HELLO carrying it, sent and answered before a connection
//! joins the run.

use crate::settings::Error;
use bytes::BytesMut;
use std::io::{Read, Write};
use std::path::Path;
use switchboard_protocol::msg::hello::{self, MAX_TOKEN};
use switchboard_protocol::{
    Decoder, Limits, RequestId, Response, ResponseBody, Status, MAX_VERSION,
};

/// The token in `path`: the file's content without one trailing line end.
///
/// # Errors
/// [`Error::Usage`] when the file cannot be read or holds no token (or one over 256
/// bytes).
pub fn read_token(path: &Path) -> Result<Vec<u8>, Error> {
    let mut token = std::fs::read(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    if token.ends_with(b"\n") {
        token.pop();
        if token.ends_with(b"\r") {
            token.pop();
        }
    }
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(Error::Usage(format!(
            "{} must hold a token of 1 to {MAX_TOKEN} bytes",
            path.display()
        )));
    }
    Ok(token)
}

/// A HELLO (no features) carrying `token`, encoded.
pub fn hello_frame(token: &[u8]) -> bytes::Bytes {
    let mut out = BytesMut::new();
    hello::encode_request(&mut out, RequestId(0), MAX_VERSION, 0, token);
    out.freeze()
}

/// Why the server refused the HELLO answered by the whole frame `frame_bytes`;
/// `None` when it accepted it.
pub fn refusal(frame_bytes: &[u8]) -> Option<String> {
    let mut buf = BytesMut::from(frame_bytes);
    let frame = match Decoder::new(Limits::MAX_MAX_FRAME).decode(&mut buf) {
        Ok(Some(frame)) => frame,
        _ => return Some("the answer to HELLO is not a frame".into()),
    };
    match Response::decode(&frame).map(|r| r.body) {
        Ok(ResponseBody::Hello(_)) => None,
        Ok(ResponseBody::Error { status, message }) => Some(format!(
            "the server refused the token: {status}: {}",
            String::from_utf8_lossy(&message)
        )),
        Ok(other) => Some(format!("unexpected answer to HELLO: {other:?}")),
        Err(e) => Some(format!("bad answer to HELLO: {e}")),
    }
}

/// Sends HELLO (no features) carrying `token` on a fresh blocking connection (plain,
/// or a TLS stream over one) and waits for its answer; the caller bounds the wait with
/// the socket's read timeout.
///
/// # Errors
/// [`Error::Connect`] when the server refuses the token or does not answer.
pub fn authenticate(stream: &mut (impl Read + Write), token: &[u8]) -> Result<(), Error> {
    let fail = |why: String| Error::Connect(format!("authenticating: {why}"));
    let mut out = BytesMut::new();
    hello::encode_request(&mut out, RequestId(0), MAX_VERSION, 0, token);
    stream.write_all(&out).map_err(|e| fail(e.to_string()))?;
    stream.flush().map_err(|e| fail(e.to_string()))?;
    let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
    let mut input = BytesMut::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let frame = loop {
        match decoder.decode(&mut input) {
            Ok(Some(frame)) => break frame,
            Ok(None) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let n = stream.read(&mut chunk).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            return Err(fail("the server closed the connection".into()));
        }
        input.extend_from_slice(&chunk[..n]);
    };
    let status = frame.header.status;
    if status != Status::OK {
        let message = match Response::decode(&frame).map(|r| r.body) {
            Ok(ResponseBody::Error { message, .. }) => {
                String::from_utf8_lossy(&message).into_owned()
            }
            _ => String::new(),
        };
        return Err(fail(format!("the server answered {status}: {message}")));
    }
    Ok(())
}
