//! The fixed 12-byte frame prefix: the length field and the 8-byte header after it.
//!
//! ```text
//! offset  size  field
//!      0     4  length      bytes after this field (header + body), big-endian
//!      4     1  version     protocol version the frame is written in
//!      5     1  opcode      what the frame asks for (a response echoes it)
//!      6     1  flags       bit 0 PUSH (server to client, unsolicited); others zero
//!      7     1  status      0 in requests; the outcome in responses
//!      8     4  request_id  chosen by the client, echoed by the response
//!     12     -  body        opcode-specific
//! ```

use crate::opcode::{Opcode, Status};
use byteorder::{BigEndian, ByteOrder};
use std::fmt;

/// Size of the length field that starts every frame.
pub const LENGTH_LEN: usize = 4;
/// Size of the header that follows the length field.
pub const HEADER_LEN: usize = 8;
/// Length field plus header: the smallest possible frame.
pub const PREFIX_LEN: usize = LENGTH_LEN + HEADER_LEN;

/// A client-chosen number that the matching response echoes. The server never
/// interprets it, so pipelining clients may use any scheme (a counter is usual).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct RequestId(pub u32);

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The header's flag byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Flags(pub u8);

impl Flags {
    /// No flag set: an ordinary request or response.
    pub const NONE: Flags = Flags(0);
    /// Set on frames the server sends without a request (events, messages, GOAWAY).
    /// Their request id is 0. Reserved: this version of the server sends none.
    pub const PUSH: Flags = Flags(0x01);
    /// Every bit this version defines.
    pub const KNOWN: Flags = Flags(0x01);

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when a bit outside [`Flags::KNOWN`] is set.
    pub fn has_unknown(self) -> bool {
        self.0 & !Self::KNOWN.0 != 0
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({:#04x})", self.0)
    }
}

/// The 8 bytes after the length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Header {
    /// Protocol version the frame is written in.
    pub version: u8,
    /// The operation; a response carries its request's opcode.
    pub opcode: Opcode,
    /// Flag bits; see [`Flags`].
    pub flags: Flags,
    /// Zero in requests; the outcome in responses.
    pub status: Status,
    /// Echoed from request to response.
    pub request_id: RequestId,
}

impl Header {
    /// Reads a header from the 8 bytes that follow the length field.
    ///
    /// Returns `None` when fewer than [`HEADER_LEN`] bytes are given.
    pub fn read(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..HEADER_LEN)?;
        Some(Header {
            version: b[0],
            opcode: Opcode(b[1]),
            flags: Flags(b[2]),
            status: Status(b[3]),
            request_id: RequestId(BigEndian::read_u32(&b[4..8])),
        })
    }

    /// Writes the header into 8 bytes.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.version;
        out[1] = self.opcode.0;
        out[2] = self.flags.0;
        out[3] = self.status.0;
        BigEndian::write_u32(&mut out[4..8], self.request_id.0);
    }
}
