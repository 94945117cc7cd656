//! The switchboard wire protocol as a sans-IO codec.
//!
//! This crate turns bytes into frames and frames into bytes. It owns no socket, no
//! thread and no clock, so it can be embedded in any client or server, fuzzed, and
//! tested in microseconds. Its only dependencies are `bytes` and `byteorder`.
//!
//! ```text
//!              bytes from the peer                      bytes to the peer
//!                      │                                        ▲
//!                      ▼                                        │
//!   ┌──────────────────────────────────┐   ┌──────────────────────────────────┐
//!   │ Decoder::decode(&mut BytesMut)   │   │ Request::encode / Response::encode│
//!   │   Ok(None)   need more bytes     │   │ encode::* (server hot path)      │
//!   │   Ok(Frame)  one whole frame     │   │   writes straight into BytesMut  │
//!   │   Err(DecodeError)  fatal        │   └──────────────────────────────────┘
//!   └──────────────────────────────────┘                    ▲
//!                      │                                    │
//!                      ▼                                    │
//!   Request::decode(&Frame, &Limits)  ──►  your code  ──────┘
//!   Response::decode(&Frame)
//! ```
//!
//! # Frames
//! Every frame is a 4-byte big-endian length (of everything after it), an 8-byte
//! [`Header`] (version, opcode, flags, status, request id) and a body whose layout
//! depends on the opcode. `protocol-spec.md` at the repository root is the normative
//! description, and its test vectors are checked against this crate.
//!
//! # Errors, in two layers
//! * [`DecodeError`] is fatal for the connection: the frame boundary is lost or the peer
//!   speaks another version. A server answers with an error frame (when the request id
//!   is known) and closes.
//! * [`RequestError`] is confined to one request: the frame was whole, but its body is
//!   wrong or its opcode unknown. A server answers with that status and carries on.
//!
//! "Need more bytes" is neither: it is `Ok(None)`.
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use switchboard_protocol::{Decoder, Limits, Request, RequestId};
//!
//! // A client encodes a request...
//! let mut wire = BytesMut::new();
//! Request::Get { key: "user:1".into() }.encode(RequestId(7), &mut wire);
//!
//! // ...and a server decodes it, possibly from several partial reads.
//! let limits = Limits::default();
//! let mut decoder = Decoder::new(limits.max_frame);
//! let frame = decoder.decode(&mut wire).unwrap().expect("a whole frame");
//! assert_eq!(frame.header.request_id, RequestId(7));
//! let request = Request::decode(&frame, &limits).unwrap();
//! assert_eq!(request, Request::Get { key: "user:1".into() });
//! ```
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]
#![forbid(unsafe_code)]

#[cfg(feature = "arbitrary")]
mod arb;
mod decode;
pub mod encode;
mod error;
mod header;
mod limits;
pub mod msg;
mod opcode;
pub mod push;
mod request;
mod response;

pub use decode::{Decoder, Frame};
pub use error::{DecodeError, RequestError};
pub use header::{Flags, Header, RequestId, HEADER_LEN, LENGTH_LEN, PREFIX_LEN};
pub use limits::{Limits, VALUE_RESERVE};
pub use opcode::{Opcode, Status};
pub use push::{EventKind, Push};
pub use request::Request;
pub use response::{Response, ResponseBody};

/// The protocol version every server speaks and every client may assume without HELLO.
pub const BASE_VERSION: u8 = 1;

/// The highest protocol version this crate implements.
pub const MAX_VERSION: u8 = 1;

/// Feature bits negotiated by HELLO. A server grants the intersection of what the
/// client asks for and what it supports.
pub mod features {
    /// Subscriptions and server pushes (SUBSCRIBE, UNSUBSCRIBE; EVENT, MESSAGE, GAP,
    /// PROGRESS, LOST and PING pushes).
    pub const PUSH: u32 = 1 << 0;
    /// Time-to-live on PUT and CAS. Reserved: without it a non-zero TTL is refused.
    pub const TTL: u32 = 1 << 1;
    /// Every feature bit this version of the crate knows by name.
    pub const KNOWN: u32 = PUSH | TTL;
}
