//! The bytes of the push workloads, for each protocol: what a publisher, writer and
//! subscriber send, and the frames they read back.
//!
//! switchboard frames are written and read with `switchboard-protocol`; Redis's
//! PUBLISH, SUBSCRIBE and their replies are RESP arrays and integers, parsed here.

use crate::dialect::Protocol;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use switchboard_protocol::msg::{hello, publish, put, subscribe};
use switchboard_protocol::{
    features, Decoder, Flags, Limits, Push, Request, RequestId, Response, ResponseBody, MAX_VERSION,
};

/// Bytes every measured payload starts with: publisher (or writer), sequence, send time.
pub const STAMP_LEN: usize = 4 + 8 + 8;

/// What a payload says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher or writer sent it.
    pub source: u32,
    /// Its number at that source, from 1.
    pub seq: u64,
    /// When it was sent (monotonic ns, the same clock in every thread).
    pub sent_ns: u64,
}

impl Stamp {
    /// Appends the stamp, padded with `x` to `len` bytes (at least the stamp).
    pub fn write(&self, buf: &mut BytesMut, len: usize) {
        buf.put_u32(self.source);
        buf.put_u64(self.seq);
        buf.put_u64(self.sent_ns);
        buf.put_bytes(b'x', len.saturating_sub(STAMP_LEN));
    }

    /// Reads a stamp from the start of a payload.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let mut p = payload.get(..STAMP_LEN)?;
        Some(Stamp {
            source: p.get_u32(),
            seq: p.get_u64(),
            sent_ns: p.get_u64(),
        })
    }
}

/// One frame a subscriber reads.
#[derive(Debug)]
pub enum Incoming {
    /// A published message's payload.
    Message(Bytes),
    /// A change event: its sequence number and value.
    Event { seq: u64, value: Bytes },
    /// The server dropped `n` messages for this subscriber.
    Lost(u64),
    /// The server no longer had changes after `after` up to `oldest`.
    Gap { after: u64, oldest: u64 },
    /// A keepalive the subscriber must answer.
    Ping,
    /// Anything else (an answer, a PROGRESS): nothing to count.
    Other,
}

/// A subscriber's or publisher's connection bytes, for one protocol.
#[derive(Debug)]
pub struct Wire {
    proto: Protocol,
    decoder: Decoder,
    next_id: u32,
    /// The token a switchboard HELLO carries (empty for none).
    token: Vec<u8>,
}

impl Wire {
    pub fn new(proto: Protocol) -> Wire {
        Wire {
            proto,
            decoder: Decoder::new(Limits::MAX_MAX_FRAME),
            next_id: 1,
            token: Vec::new(),
        }
    }

    /// The HELLO a subscriber sends carries `token` (for `--auth-token-file`).
    pub fn with_token(mut self, token: &[u8]) -> Wire {
        self.token = token.to_vec();
        self
    }

    fn id(&mut self) -> RequestId {
        self.next_id = self.next_id.wrapping_add(1);
        RequestId(self.next_id)
    }

    /// What a subscriber sends first: HELLO asking for PUSH, then SUBSCRIBE.
    pub fn subscribe(&mut self, buf: &mut BytesMut, prefix: &[u8]) {
        match self.proto {
            Protocol::Resp => resp_command(buf, &[b"SUBSCRIBE", prefix]),
            _ => {
                let (hello_id, sub_id) = (self.id(), self.id());
                hello::encode_request(buf, hello_id, MAX_VERSION, features::PUSH, &self.token);
                subscribe::encode_request(buf, sub_id, prefix, None, 0);
            }
        }
    }

    /// Another SUBSCRIBE on a connection that already said HELLO.
    pub fn subscribe_more(&mut self, buf: &mut BytesMut, prefix: &[u8]) {
        match self.proto {
            Protocol::Resp => resp_command(buf, &[b"SUBSCRIBE", prefix]),
            _ => {
                let id = self.id();
                subscribe::encode_request(buf, id, prefix, None, 0);
            }
        }
    }

    /// Answers a keepalive.
    pub fn ping(&mut self, buf: &mut BytesMut) {
        let id = self.id();
        Request::Ping {
            payload: Bytes::new(),
        }
        .encode(id, buf);
    }

    /// Appends a PUBLISH.
    pub fn publish(&mut self, buf: &mut BytesMut, subject: &[u8], payload: &[u8]) {
        match self.proto {
            Protocol::Resp => resp_command(buf, &[b"PUBLISH", subject, payload]),
            _ => {
                let id = self.id();
                publish::encode_request(buf, id, subject, payload);
            }
        }
    }

    /// Appends a PUT (switchboard only).
    pub fn put(&mut self, buf: &mut BytesMut, key: &[u8], value: &[u8]) {
        let id = self.id();
        put::encode_request(buf, id, key, value, 0);
    }

    /// The next answer to a publish or put in `buf`: `Some(Ok(version))` (the version
    /// a PUT wrote, 0 for a PUBLISH), `Some(Err(why))` for an error answer, `None`
    /// until one is whole.
    pub fn answer(&mut self, buf: &mut BytesMut) -> Result<Option<Result<u64, String>>, String> {
        match self.proto {
            Protocol::Resp => {
                let Some(value) = resp_value(buf)? else {
                    return Ok(None);
                };
                Ok(Some(match value {
                    Resp::Int(_) => Ok(0),
                    Resp::Error(e) => Err(e),
                    other => Err(format!("unexpected reply {other:?}")),
                }))
            }
            _ => {
                let Some(frame) = self.decoder.decode(buf).map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                if frame.header.flags.contains(Flags::PUSH) {
                    return Ok(Some(Err("a push on a publishing connection".into())));
                }
                let response = Response::decode(&frame).map_err(|e| e.to_string())?;
                Ok(Some(match response.body {
                    ResponseBody::Published { .. } => Ok(0),
                    ResponseBody::Written { version } => Ok(version),
                    ResponseBody::Error { status, message } => {
                        Err(format!("{status}: {}", String::from_utf8_lossy(&message)))
                    }
                    other => Err(format!("unexpected answer {other:?}")),
                }))
            }
        }
    }

    /// The next frame a subscriber has in `buf`, `None` until one is whole.
    pub fn incoming(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, String> {
        match self.proto {
            Protocol::Resp => {
                let Some(value) = resp_value(buf)? else {
                    return Ok(None);
                };
                Ok(Some(match value {
                    Resp::Array(mut parts) if parts.len() == 3 && parts[0] == "message" => {
                        Incoming::Message(parts.pop().expect("three parts"))
                    }
                    Resp::Array(_) => Incoming::Other,
                    Resp::Error(e) => return Err(e),
                    _ => Incoming::Other,
                }))
            }
            _ => {
                let Some(frame) = self.decoder.decode(buf).map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                if !frame.header.flags.contains(Flags::PUSH) {
                    let response = Response::decode(&frame).map_err(|e| e.to_string())?;
                    if let ResponseBody::Error { status, message } = response.body {
                        return Err(format!("{status}: {}", String::from_utf8_lossy(&message)));
                    }
                    return Ok(Some(Incoming::Other));
                }
                if frame.header.opcode.name().is_none() {
                    return Ok(Some(Incoming::Other));
                }
                Ok(Some(
                    match Push::decode(&frame).map_err(|e| e.to_string())? {
                        Push::Message { payload, .. } => Incoming::Message(payload),
                        Push::Event { seq, value, .. } => Incoming::Event { seq, value },
                        Push::Lost { count, .. } => Incoming::Lost(count),
                        Push::Gap { after, oldest, .. } => Incoming::Gap { after, oldest },
                        Push::Ping => Incoming::Ping,
                        // The server is stopping: its close, which follows, ends the run.
                        Push::Progress { .. } | Push::GoAway { .. } => Incoming::Other,
                    },
                ))
            }
        }
    }
}

/// Appends a RESP command: an array of bulk strings.
fn resp_command(buf: &mut BytesMut, parts: &[&[u8]]) {
    buf.put_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        buf.put_slice(format!("${}\r\n", part.len()).as_bytes());
        buf.put_slice(part);
        buf.put_slice(b"\r\n");
    }
}

/// A RESP reply this workload reads.
#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Int(i64),
    Error(String),
    Bulk(Bytes),
    Array(Vec<Bytes>),
    Simple,
}

/// Takes one whole reply off `buf` (arrays of bulk strings and integers only, which is
/// what SUBSCRIBE and PUBLISH produce); `None` until one is whole.
fn resp_value(buf: &mut BytesMut) -> Result<Option<Resp>, String> {
    let mut at = 0;
    let Some(value) = resp_parse(buf, &mut at)? else {
        return Ok(None);
    };
    buf.advance(at);
    Ok(Some(value))
}

fn resp_line(buf: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
    let start = *at;
    let end = start + buf.get(start..)?.windows(2).position(|w| w == b"\r\n")?;
    *at = end + 2;
    Some(start..end)
}

fn resp_int(bytes: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad RESP integer {:?}", String::from_utf8_lossy(bytes)))
}

fn resp_parse(buf: &BytesMut, at: &mut usize) -> Result<Option<Resp>, String> {
    let Some(line) = resp_line(buf, at) else {
        return Ok(None);
    };
    let (kind, rest) = (buf[line.start], &buf[line.start + 1..line.end]);
    Ok(Some(match kind {
        b':' => Resp::Int(resp_int(rest)?),
        b'-' => Resp::Error(String::from_utf8_lossy(rest).into_owned()),
        b'+' => Resp::Simple,
        b'$' => {
            let n = resp_int(rest)?;
            if n < 0 {
                return Ok(Some(Resp::Bulk(Bytes::new())));
            }
            let n = n as usize;
            if buf.len() < *at + n + 2 {
                return Ok(None);
            }
            let bytes = Bytes::copy_from_slice(&buf[*at..*at + n]);
            *at += n + 2;
            Resp::Bulk(bytes)
        }
        b'*' => {
            let n = resp_int(rest)?.max(0) as usize;
            let mut parts = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                match resp_parse(buf, at)? {
                    None => return Ok(None),
                    Some(Resp::Bulk(b)) => parts.push(b),
                    Some(Resp::Int(i)) => parts.push(Bytes::from(i.to_string())),
                    Some(other) => return Err(format!("unexpected RESP array part {other:?}")),
                }
            }
            Resp::Array(parts)
        }
        other => return Err(format!("unexpected RESP type byte {:?}", char::from(other))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_messages_and_replies_parse_whole_or_not_at_all() {
        let mut w = Wire::new(Protocol::Resp);
        let msg = b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n:2\r\n";
        for cut in 0..msg.len() {
            let mut buf = BytesMut::from(&msg[..cut]);
            if cut < msg.len() - 4 {
                assert!(w.incoming(&mut buf).unwrap().is_none(), "cut at {cut}");
                assert_eq!(buf.len(), cut, "nothing taken from a partial reply");
            }
        }
        let mut buf = BytesMut::from(&msg[..]);
        match w.incoming(&mut buf).unwrap() {
            Some(Incoming::Message(p)) => assert_eq!(p, "hello"),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.answer(&mut buf).unwrap(), Some(Ok(0)));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_stamp_survives_the_payload() {
        let stamp = Stamp {
            source: 3,
            seq: 99,
            sent_ns: 123_456,
        };
        let mut buf = BytesMut::new();
        stamp.write(&mut buf, 64);
        assert_eq!(buf.len(), 64);
        assert_eq!(Stamp::read(&buf), Some(stamp));
    }
}
