//! `Push`: the frames a server sends without a request, typed.
//!
//! Every push frame has the PUSH flag set, request id 0 and status OK, and is written
//! in the connection's version. A client tells them from responses by the flag alone;
//! they never take a response's place in the order of answers.
//!
//! ```text
//! EVENT     0x30  sub_id u32 | seq u64 | kind u8 | key_len u16 | key | value
//! MESSAGE   0x31  sub_id u32 | subject_len u16 | subject | payload
//! GAP       0x33  sub_id u32 | history u64 | after u64 | oldest u64 | current u64
//! PROGRESS  0x34  sub_id u32 | history u64 | seq u64
//! LOST      0x35  sub_id u32 | count u64
//! PING      0x02  (empty)
//! GOAWAY    0x32  count u64 | message
//! ```
//!
//! * EVENT: a record changed. `seq` is the change's sequence number and the record's
//!   new version; `kind` 1 is a write (PUT, or a CAS that matched; `value` is the new
//!   value) and 2 a delete (`value` empty).
//! * MESSAGE: a published message.
//! * GAP: changes numbered after `after` and before `oldest` that match the
//!   subscription could not be delivered (the change log no longer holds them, or
//!   `after` belongs to another history); the events that follow start at `oldest`.
//!   `current` is the server's sequence when the GAP was sent.
//! * PROGRESS: every matching change up to `seq` has been delivered on this
//!   subscription or covered by a GAP it received.
//! * LOST: `count` published messages for this subscription were dropped because the
//!   connection's output was full; sent before the next message delivered to it.
//! * PING: a keepalive on a quiet connection that holds subscriptions. Any frame from
//!   the client (a PING request is usual) counts as the answer.
//!
//! An EVENT's body after `sub_id` is the same for every subscriber, so a server
//! encodes it once ([`encode_event_body`]) and writes only the prefix per subscriber
//! ([`encode_prefix`]).

use crate::decode::Frame;
use crate::encode::header;
use crate::error::RequestError;
use crate::header::{Flags, Header, RequestId, PREFIX_LEN};
use crate::msg::{put_bytes_u16, Reader};
use crate::opcode::{Opcode, Status};
use bytes::{BufMut, Bytes, BytesMut};

/// EVENT kind: the record was written; the value follows.
pub const KIND_PUT: u8 = 1;
/// EVENT kind: the record was deleted.
pub const KIND_DELETE: u8 = 2;

/// Bytes before an EVENT's or MESSAGE's shared body: prefix and `sub_id`.
pub const SUB_PREFIX_LEN: usize = PREFIX_LEN + 4;

/// Bytes of an EVENT body after `sub_id` besides the key and value.
pub const EVENT_OVERHEAD: usize = 8 + 1 + 2;

/// What a change did, in an EVENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The record now holds the event's value.
    Put,
    /// The record was deleted.
    Delete,
}

impl EventKind {
    /// The kind's byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            EventKind::Put => KIND_PUT,
            EventKind::Delete => KIND_DELETE,
        }
    }
}

/// A frame the server sent without a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// A record changed.
    Event {
        /// The subscription.
        sub_id: u32,
        /// The change's sequence number, which is the record's new version.
        seq: u64,
        /// Written or deleted.
        kind: EventKind,
        /// The record's key.
        key: Bytes,
        /// The new value (empty for a delete).
        value: Bytes,
    },
    /// A published message.
    Message {
        /// The subscription.
        sub_id: u32,
        /// The subject it was published on.
        subject: Bytes,
        /// Its payload.
        payload: Bytes,
    },
    /// Changes that could not be delivered.
    Gap {
        /// The subscription.
        sub_id: u32,
        /// The server's history id.
        history: u64,
        /// The sequence delivery was to continue after.
        after: u64,
        /// The oldest sequence delivered from now on.
        oldest: u64,
        /// The server's sequence when the GAP was sent.
        current: u64,
    },
    /// Every matching change up to `seq` was delivered or covered by a GAP.
    Progress {
        /// The subscription.
        sub_id: u32,
        /// The server's history id.
        history: u64,
        /// The sequence reached.
        seq: u64,
    },
    /// Published messages dropped for this subscription.
    Lost {
        /// The subscription.
        sub_id: u32,
        /// How many.
        count: u64,
    },
    /// A keepalive.
    Ping,
    /// The server is stopping: the last frame on the connection.
    GoAway {
        /// How many of the connection's requests, counted from its first, were
        /// handled and answered; none after them was carried out.
        count: u64,
        /// Why, for people (UTF-8).
        message: Bytes,
    },
}

/// The header of a push frame in `version`.
pub fn push_header(opcode: Opcode, version: u8) -> Header {
    Header {
        version,
        opcode,
        flags: Flags::PUSH,
        status: Status::OK,
        request_id: RequestId(0),
    }
}

/// Appends the part of an EVENT or MESSAGE frame that differs per subscriber: length,
/// header and `sub_id`, for a shared body of `body_len` bytes that the caller appends.
pub fn encode_prefix(
    buf: &mut BytesMut,
    opcode: Opcode,
    version: u8,
    sub_id: u32,
    body_len: usize,
) {
    header(buf, push_header(opcode, version), 4 + body_len);
    buf.put_u32(sub_id);
}

/// Appends an EVENT body after `sub_id`: the part every subscriber shares.
pub fn encode_event_body(buf: &mut BytesMut, seq: u64, kind: EventKind, key: &[u8], value: &[u8]) {
    buf.reserve(EVENT_OVERHEAD + key.len() + value.len());
    buf.put_u64(seq);
    buf.put_u8(kind.byte());
    put_bytes_u16(buf, key);
    buf.put_slice(value);
}

/// Appends a MESSAGE body after `sub_id`.
pub fn encode_message_body(buf: &mut BytesMut, subject: &[u8], payload: &[u8]) {
    buf.reserve(2 + subject.len() + payload.len());
    put_bytes_u16(buf, subject);
    buf.put_slice(payload);
}

/// The key of an EVENT body made by [`encode_event_body`].
pub fn event_body_key(body: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_be_bytes([body[9], body[10]]));
    &body[EVENT_OVERHEAD..EVENT_OVERHEAD + len]
}

impl Push {
    /// Parses a push frame (one with the PUSH flag).
    ///
    /// # Errors
    /// A frame without the PUSH flag, an opcode that is not a push this version
    /// defines, a non-zero status or request id, or a body that does not match.
    pub fn decode(frame: &Frame) -> Result<Push, RequestError> {
        let h = &frame.header;
        if !h.flags.contains(Flags::PUSH) {
            return Err(RequestError::bad("a response where a push was expected"));
        }
        if h.status != Status::OK || h.request_id != RequestId(0) {
            return Err(RequestError::bad("push frames carry status 0 and id 0"));
        }
        let r = &mut Reader::new(frame.body.clone());
        let push = match h.opcode {
            Opcode::EVENT => {
                let sub_id = r.u32()?;
                let seq = r.u64()?;
                let kind = match r.u8()? {
                    KIND_PUT => EventKind::Put,
                    KIND_DELETE => EventKind::Delete,
                    _ => return Err(RequestError::bad("unknown EVENT kind")),
                };
                let key = r.bytes_u16()?;
                let value = r.rest();
                if kind == EventKind::Delete && !value.is_empty() {
                    return Err(RequestError::bad("a delete EVENT carries a value"));
                }
                return Ok(Push::Event {
                    sub_id,
                    seq,
                    kind,
                    key,
                    value,
                });
            }
            Opcode::MESSAGE => {
                let sub_id = r.u32()?;
                let subject = r.bytes_u16()?;
                return Ok(Push::Message {
                    sub_id,
                    subject,
                    payload: r.rest(),
                });
            }
            Opcode::GAP => Push::Gap {
                sub_id: r.u32()?,
                history: r.u64()?,
                after: r.u64()?,
                oldest: r.u64()?,
                current: r.u64()?,
            },
            Opcode::PROGRESS => Push::Progress {
                sub_id: r.u32()?,
                history: r.u64()?,
                seq: r.u64()?,
            },
            Opcode::LOST => Push::Lost {
                sub_id: r.u32()?,
                count: r.u64()?,
            },
            Opcode::PING => Push::Ping,
            Opcode::GOAWAY => {
                let count = r.u64()?;
                return Ok(Push::GoAway {
                    count,
                    message: r.rest(),
                });
            }
            _ => return Err(RequestError::bad("unknown push opcode")),
        };
        r.finish()?;
        Ok(push)
    }

    /// The opcode this push travels under.
    pub fn opcode(&self) -> Opcode {
        match self {
            Push::Event { .. } => Opcode::EVENT,
            Push::Message { .. } => Opcode::MESSAGE,
            Push::Gap { .. } => Opcode::GAP,
            Push::Progress { .. } => Opcode::PROGRESS,
            Push::Lost { .. } => Opcode::LOST,
            Push::Ping => Opcode::PING,
            Push::GoAway { .. } => Opcode::GOAWAY,
        }
    }

    /// The subscription it belongs to (`None` for PING and GOAWAY).
    pub fn sub_id(&self) -> Option<u32> {
        match self {
            Push::Event { sub_id, .. }
            | Push::Message { sub_id, .. }
            | Push::Gap { sub_id, .. }
            | Push::Progress { sub_id, .. }
            | Push::Lost { sub_id, .. } => Some(*sub_id),
            Push::Ping | Push::GoAway { .. } => None,
        }
    }

    /// Appends this push as one whole frame in `version`.
    pub fn encode(&self, version: u8, buf: &mut BytesMut) {
        let h = push_header(self.opcode(), version);
        match self {
            Push::Event {
                sub_id,
                seq,
                kind,
                key,
                value,
            } => {
                encode_prefix(
                    buf,
                    Opcode::EVENT,
                    version,
                    *sub_id,
                    EVENT_OVERHEAD + key.len() + value.len(),
                );
                encode_event_body(buf, *seq, *kind, key, value);
            }
            Push::Message {
                sub_id,
                subject,
                payload,
            } => {
                encode_prefix(
                    buf,
                    Opcode::MESSAGE,
                    version,
                    *sub_id,
                    2 + subject.len() + payload.len(),
                );
                encode_message_body(buf, subject, payload);
            }
            Push::Gap {
                sub_id,
                history,
                after,
                oldest,
                current,
            } => {
                header(buf, h, 4 + 8 * 4);
                buf.put_u32(*sub_id);
                buf.put_u64(*history);
                buf.put_u64(*after);
                buf.put_u64(*oldest);
                buf.put_u64(*current);
            }
            Push::Progress {
                sub_id,
                history,
                seq,
            } => {
                header(buf, h, 4 + 8 + 8);
                buf.put_u32(*sub_id);
                buf.put_u64(*history);
                buf.put_u64(*seq);
            }
            Push::Lost { sub_id, count } => {
                header(buf, h, 4 + 8);
                buf.put_u32(*sub_id);
                buf.put_u64(*count);
            }
            Push::Ping => header(buf, h, 0),
            Push::GoAway { count, message } => {
                header(buf, h, 8 + message.len());
                buf.put_u64(*count);
                buf.put_slice(message);
            }
        }
    }
}
