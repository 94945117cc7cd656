//! `Response`: every answer a server may send, typed, for clients and tests.
//!
//! Servers on a hot path write responses with the encoders in [`crate::msg`] and
//! [`crate::encode`] directly; this type is the readable form of the same bytes.

use crate::decode::Frame;
use crate::encode;
use crate::error::RequestError;
use crate::header::{Flags, RequestId};
use crate::msg::hello::HelloReply;
use crate::msg::scan::ScanPage;
use crate::msg::{self, Reader};
use crate::opcode::{Opcode, Status};
use bytes::{Bytes, BytesMut};

/// A response: which request it answers, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Response {
    /// The id of the request answered.
    pub request_id: RequestId,
    /// The opcode of the request answered.
    pub opcode: Opcode,
    /// The outcome.
    pub body: ResponseBody,
}

/// The outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum ResponseBody {
    /// OK to HELLO.
    Hello(HelloReply),
    /// OK to PING: the echoed payload.
    Pong(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))] Bytes),
    /// OK to STATS: `name value` lines.
    Stats(#[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))] Bytes),
    /// OK to GET.
    Value {
        /// The record's version.
        version: u64,
        /// The record's value.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
        value: Bytes,
    },
    /// OK to PUT, CAS or DELETE.
    Written {
        /// The new version (for DELETE, the sequence number of the deletion).
        version: u64,
    },
    /// OK to SCAN.
    Scan(ScanPage),
    /// OK to SUBSCRIBE.
    Subscribed {
        /// The subscription's id on this connection.
        sub_id: u32,
        /// The server's history id.
        history: u64,
        /// The server's change sequence when the subscription began.
        seq: u64,
    },
    /// OK to UNSUBSCRIBE.
    Unsubscribed,
    /// OK to PUBLISH.
    Published {
        /// Connections the message was delivered to.
        receivers: u32,
    },
    /// NOT_FOUND.
    NotFound,
    /// VERSION_CONFLICT.
    VersionConflict {
        /// The record's current version; 0 when there is none.
        current: u64,
    },
    /// Any error status, with its message.
    Error {
        /// The status.
        status: Status,
        /// The server's explanation (UTF-8).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::arb::bytes))]
        message: Bytes,
    },
}

impl ResponseBody {
    /// The status this body travels under.
    pub fn status(&self) -> Status {
        match self {
            ResponseBody::NotFound => Status::NOT_FOUND,
            ResponseBody::VersionConflict { .. } => Status::VERSION_CONFLICT,
            ResponseBody::Error { status, .. } => *status,
            _ => Status::OK,
        }
    }
}

impl Response {
    /// Parses a response out of a whole frame.
    ///
    /// # Errors
    /// A push frame (not a response), a status this version does not know outside the
    /// error range, an OK for an opcode with no OK layout, or a body that does not
    /// match its layout.
    pub fn decode(frame: &Frame) -> Result<Response, RequestError> {
        let h = &frame.header;
        if h.flags.contains(Flags::PUSH) {
            return Err(RequestError::bad(
                "push frame where a response was expected",
            ));
        }
        let r = &mut Reader::new(frame.body.clone());
        let body = match h.status {
            Status::OK => match h.opcode {
                Opcode::HELLO => msg::hello::decode_response(r)?,
                Opcode::PING => msg::ping::decode_response(r)?,
                Opcode::STATS => msg::stats::decode_response(r)?,
                Opcode::GET => msg::get::decode_response(r)?,
                Opcode::PUT => msg::put::decode_response(r)?,
                Opcode::DELETE => msg::delete::decode_response(r)?,
                Opcode::CAS => msg::cas::decode_response(r)?,
                Opcode::SCAN => msg::scan::decode_response(r)?,
                Opcode::SUBSCRIBE => msg::subscribe::decode_response(r)?,
                Opcode::UNSUBSCRIBE => msg::subscribe::decode_unsubscribed(r)?,
                Opcode::PUBLISH => msg::publish::decode_response(r)?,
                _ => return Err(RequestError::bad("OK response to an unknown opcode")),
            },
            Status::NOT_FOUND => {
                r.finish()?;
                ResponseBody::NotFound
            }
            Status::VERSION_CONFLICT => {
                let current = r.u64()?;
                r.finish()?;
                ResponseBody::VersionConflict { current }
            }
            status if status.is_error() => ResponseBody::Error {
                status,
                message: r.rest(),
            },
            _ => return Err(RequestError::bad("unknown non-error status")),
        };
        Ok(Response {
            request_id: h.request_id,
            opcode: h.opcode,
            body,
        })
    }

    /// Appends this response as one whole frame.
    pub fn encode(&self, buf: &mut BytesMut) {
        let (id, op) = (self.request_id, self.opcode);
        match &self.body {
            ResponseBody::Hello(reply) => msg::hello::encode_response(buf, id, reply),
            ResponseBody::Pong(payload) => msg::ping::encode_response(buf, id, payload),
            ResponseBody::Stats(text) => msg::stats::encode_response(buf, id, text),
            ResponseBody::Value { version, value } => {
                msg::get::encode_response(buf, id, *version, value)
            }
            ResponseBody::Written { version } => encode::written(buf, op, id, *version),
            ResponseBody::Scan(page) => msg::scan::encode_response(buf, id, page),
            ResponseBody::Subscribed {
                sub_id,
                history,
                seq,
            } => msg::subscribe::encode_response(buf, id, *sub_id, *history, *seq),
            ResponseBody::Unsubscribed => msg::subscribe::encode_unsubscribed(buf, id),
            ResponseBody::Published { receivers } => {
                msg::publish::encode_response(buf, id, *receivers)
            }
            ResponseBody::NotFound => encode::not_found(buf, op, id),
            ResponseBody::VersionConflict { current } => {
                encode::version_conflict(buf, op, id, *current)
            }
            ResponseBody::Error { status, message } => encode::error(buf, op, id, *status, message),
        }
    }
}
