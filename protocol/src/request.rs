//! `Request`: every request a client may send, typed.

use crate::decode::Frame;
use crate::error::RequestError;
use crate::header::{Flags, Header, RequestId};
use crate::limits::Limits;
use crate::msg::subscribe::Resume;
use crate::msg::{self, Reader};
use crate::opcode::{Opcode, Status};
use bytes::{Bytes, BytesMut};

/// A decoded request. Keys and values are slices of the frame they came in.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::{Request, RequestId};
///
/// let mut buf = BytesMut::new();
/// Request::Put { key: "k".into(), value: "v".into(), ttl_ms: 0 }.encode(RequestId(1), &mut buf);
/// assert_eq!(&buf[..], b"\x00\x00\x00\x10\x01\x11\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01kv");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Request {
    /// Negotiate version and features.
    Hello {
        /// Highest version the client speaks.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::version))]
        max_version: u8,
        /// Feature bits the client wants.
        features: u32,
        /// Reserved for authentication.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::token))]
        token: Bytes,
    },
    /// Liveness check.
    Ping {
        /// Echoed back.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::value))]
        payload: Bytes,
    },
    /// Server counters.
    Stats,
    /// Read a record.
    Get {
        /// The key.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key))]
        key: Bytes,
    },
    /// Create or replace a record.
    Put {
        /// The key.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key))]
        key: Bytes,
        /// The new value.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::value))]
        value: Bytes,
        /// Reserved: time to live in milliseconds, 0 = never expires.
        ttl_ms: u32,
    },
    /// Remove a record.
    Delete {
        /// The key.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key))]
        key: Bytes,
        /// Only delete at this version; 0 = any version.
        expected: u64,
    },
    /// Write only at an expected version.
    Cas {
        /// The key.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key))]
        key: Bytes,
        /// The version the record must have; 0 = the record must not exist.
        expected: u64,
        /// The new value.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::value))]
        value: Bytes,
        /// Reserved: time to live in milliseconds, 0 = never expires.
        ttl_ms: u32,
    },
    /// List records under a prefix.
    Scan {
        /// Only keys starting with this (empty = all keys).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key_or_empty))]
        prefix: Bytes,
        /// Start after this key; empty = from the start.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key_or_empty))]
        cursor: Bytes,
        /// Most entries wanted; 0 = the server's default.
        limit: u16,
    },
    /// Receive the changes and messages under a prefix.
    Subscribe {
        /// Subjects and keys starting with this (empty = all).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key_or_empty))]
        prefix: Bytes,
        /// Replay the logged changes after a sequence first; `None` = live only.
        resume: Option<Resume>,
        /// A PROGRESS push after this many quiet milliseconds; 0 = none.
        progress_ms: u32,
    },
    /// End a subscription.
    Unsubscribe {
        /// The id SUBSCRIBE answered with.
        sub_id: u32,
    },
    /// Send a message to a subject's subscribers.
    Publish {
        /// The subject.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::key))]
        subject: Bytes,
        /// The payload.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::value))]
        payload: Bytes,
    },
}

/// Parses one request body.
type BodyDecoder = fn(&mut Reader, &Limits) -> Result<Request, RequestError>;

/// The request opcodes this version serves, each with its body's decoder: the one
/// table deciding which opcodes are requests. Anything else, reserved opcodes
/// included, is UNKNOWN_OPCODE; adding an opcode means adding its row.
fn body_decoder(opcode: Opcode) -> Option<BodyDecoder> {
    let decode: BodyDecoder = match opcode {
        Opcode::HELLO => |r, _| msg::hello::decode_request(r),
        Opcode::PING => msg::ping::decode_request,
        Opcode::STATS => |r, _| msg::stats::decode_request(r),
        Opcode::GET => msg::get::decode_request,
        Opcode::PUT => msg::put::decode_request,
        Opcode::DELETE => msg::delete::decode_request,
        Opcode::CAS => msg::cas::decode_request,
        Opcode::SCAN => msg::scan::decode_request,
        Opcode::SUBSCRIBE => msg::subscribe::decode_request,
        Opcode::UNSUBSCRIBE => |r, _| msg::subscribe::decode_unsubscribe(r),
        Opcode::PUBLISH => msg::publish::decode_request,
        _ => return None,
    };
    Some(decode)
}

impl Request {
    /// The opcode this request travels under.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Hello { .. } => Opcode::HELLO,
            Request::Ping { .. } => Opcode::PING,
            Request::Stats => Opcode::STATS,
            Request::Get { .. } => Opcode::GET,
            Request::Put { .. } => Opcode::PUT,
            Request::Delete { .. } => Opcode::DELETE,
            Request::Cas { .. } => Opcode::CAS,
            Request::Scan { .. } => Opcode::SCAN,
            Request::Subscribe { .. } => Opcode::SUBSCRIBE,
            Request::Unsubscribe { .. } => Opcode::UNSUBSCRIBE,
            Request::Publish { .. } => Opcode::PUBLISH,
        }
    }

    /// True for requests that change the store.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Put { .. } | Request::Delete { .. } | Request::Cas { .. }
        )
    }

    /// Parses a request out of a whole frame.
    ///
    /// # Errors
    /// `UNKNOWN_OPCODE` for opcodes this version does not serve (including reserved
    /// ones); `BAD_REQUEST` for a set flag, a non-zero status byte or a body that does
    /// not match the layout; `KEY_TOO_LARGE` and `VALUE_TOO_LARGE` past the limits.
    /// None of these break the stream: the next frame decodes as usual.
    pub fn decode(frame: &Frame, limits: &Limits) -> Result<Request, RequestError> {
        Request::decode_parts(&frame.header, frame.body.clone(), limits)
    }

    /// [`decode`](Self::decode), taking the frame: its body's reference becomes the
    /// request's last byte string (a GET's key, a PUT's value) instead of being counted
    /// up and down again. Servers decoding every frame once should use this one.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn decode_owned(frame: Frame, limits: &Limits) -> Result<Request, RequestError> {
        Request::decode_parts(&frame.header, frame.body, limits)
    }

    fn decode_parts(h: &Header, body: Bytes, limits: &Limits) -> Result<Request, RequestError> {
        let Some(decode) = body_decoder(h.opcode) else {
            return Err(RequestError::new(Status::UNKNOWN_OPCODE, "unknown opcode"));
        };
        if h.flags != Flags::NONE {
            return Err(RequestError::bad("requests must not set flags"));
        }
        if h.status != Status::OK {
            return Err(RequestError::bad("requests must have status 0"));
        }
        decode(&mut Reader::new(body), limits)
    }

    /// Appends this request as one whole frame.
    ///
    /// Lengths are written as the layout says; a key over 65,535 bytes cannot be
    /// expressed and is the caller's bug (every server limit is far below it).
    pub fn encode(&self, id: RequestId, buf: &mut BytesMut) {
        match self {
            Request::Hello {
                max_version,
                features,
                token,
            } => msg::hello::encode_request(buf, id, *max_version, *features, token),
            Request::Ping { payload } => msg::ping::encode_request(buf, id, payload),
            Request::Stats => msg::stats::encode_request(buf, id),
            Request::Get { key } => msg::get::encode_request(buf, id, key),
            Request::Put { key, value, ttl_ms } => {
                msg::put::encode_request(buf, id, key, value, *ttl_ms)
            }
            Request::Delete { key, expected } => {
                msg::delete::encode_request(buf, id, key, *expected)
            }
            Request::Cas {
                key,
                expected,
                value,
                ttl_ms,
            } => msg::cas::encode_request(buf, id, key, *expected, value, *ttl_ms),
            Request::Scan {
                prefix,
                cursor,
                limit,
            } => msg::scan::encode_request(buf, id, prefix, cursor, *limit),
            Request::Subscribe {
                prefix,
                resume,
                progress_ms,
            } => msg::subscribe::encode_request(buf, id, prefix, *resume, *progress_ms),
            Request::Unsubscribe { sub_id } => msg::subscribe::encode_unsubscribe(buf, id, *sub_id),
            Request::Publish { subject, payload } => {
                msg::publish::encode_request(buf, id, subject, payload)
            }
        }
    }
}
