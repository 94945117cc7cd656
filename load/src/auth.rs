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
