//! The two kinds of failure: fatal for the connection, or confined to one request.
//!
//! Both are small `Copy` values whose reasons are `&'static str`, so reporting an error
//! allocates nothing. Each maps to exactly one wire [`Status`].

use crate::header::RequestId;
use crate::opcode::{Opcode, Status};
use std::fmt;

/// A frame could not be taken off the stream. The frame boundary is lost or cannot be
/// trusted, so the connection must close after reporting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The declared length is smaller than a header.
    TooShort {
        /// The length the peer declared.
        declared: u32,
    },
    /// The declared length, plus the length field, is over the frame limit. Raised as
    /// soon as the 4-byte length is read: nothing of the body is buffered.
    TooLarge {
        /// The frame size the peer declared, length field included.
        declared: u64,
        /// The limit in force.
        limit: u32,
        /// The opcode, if the header had already arrived.
        opcode: Option<Opcode>,
        /// The request id, if the header had already arrived.
        request_id: Option<RequestId>,
    },
    /// The frame's version byte is not one the decoder accepts.
    UnsupportedVersion {
        /// The version byte the peer sent.
        version: u8,
        /// The frame's opcode.
        opcode: Opcode,
        /// The frame's request id.
        request_id: RequestId,
    },
}

impl DecodeError {
    /// The wire status that reports this error.
    pub fn status(self) -> Status {
        Status::from(self)
    }

    /// The request id to put in the error frame, when the header got far enough.
    pub fn request_id(self) -> Option<RequestId> {
        match self {
            DecodeError::TooShort { .. } => None,
            DecodeError::TooLarge { request_id, .. } => request_id,
            DecodeError::UnsupportedVersion { request_id, .. } => Some(request_id),
        }
    }

    /// The opcode to put in the error frame, when the header got far enough. An error
    /// frame without one carries opcode 0.
    pub fn opcode(self) -> Option<Opcode> {
        match self {
            DecodeError::TooShort { .. } => None,
            DecodeError::TooLarge { opcode, .. } => opcode,
            DecodeError::UnsupportedVersion { opcode, .. } => Some(opcode),
        }
    }

    /// A short explanation for people; never allocates.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::TooShort { .. } => "declared frame length is shorter than a header",
            DecodeError::TooLarge { .. } => "declared frame length is over the frame limit",
            DecodeError::UnsupportedVersion { .. } => "unsupported protocol version",
        }
    }
}

impl From<DecodeError> for Status {
    fn from(e: DecodeError) -> Status {
        match e {
            DecodeError::TooShort { .. } => Status::MALFORMED_FRAME,
            DecodeError::TooLarge { .. } => Status::FRAME_TOO_LARGE,
            DecodeError::UnsupportedVersion { .. } => Status::UNSUPPORTED_VERSION,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::TooShort { declared } => write!(f, "{} ({declared})", self.reason()),
            DecodeError::TooLarge {
                declared, limit, ..
            } => write!(f, "{} ({declared} > {limit})", self.reason()),
            DecodeError::UnsupportedVersion { version, .. } => {
                write!(f, "{} ({version})", self.reason())
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A whole frame arrived, but this one request cannot be carried out as sent. The
/// connection stays open: the server answers with [`status`](Self::status) and reads on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestError {
    /// The status to answer with.
    pub status: Status,
    /// A short explanation for people, sent as the error body.
    pub reason: &'static str,
}

impl RequestError {
    pub(crate) const fn new(status: Status, reason: &'static str) -> RequestError {
        RequestError { status, reason }
    }

    pub(crate) const fn bad(reason: &'static str) -> RequestError {
        RequestError::new(Status::BAD_REQUEST, reason)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for RequestError {}
