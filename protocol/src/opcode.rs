//! Opcodes and status codes: open newtypes over one byte.
//!
//! Both are open: any byte decodes, so a server can answer an opcode it does not know
//! with `UNKNOWN_OPCODE` instead of dropping the connection, and a client can report a
//! status newer than itself. Names and values are generated together by one macro, so
//! the table below and `Debug`/`Display` cannot drift apart.

use std::fmt;

macro_rules! byte_codes {
    ($(#[$meta:meta])* $ty:ident { $( $(#[$doc:meta])* $name:ident = $value:expr, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $ty(pub u8);

        impl $ty {
            $( $(#[$doc])* pub const $name: $ty = $ty($value); )*

            /// Every code this version defines, in numeric order.
            pub const ALL: &'static [$ty] = &[$($ty::$name),*];

            /// The upper-case name of a defined code, or `None`.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// Looks a code up by its upper-case name.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name {
                    $( stringify!($name) => Some($ty::$name), )*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({:#04x})", stringify!($ty), self.0),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

byte_codes! {
    /// What a frame asks for. A response carries the opcode of its request.
    ///
    /// Ranges: `0x01..=0x0F` connection, `0x10..=0x1F` records, `0x20..=0x2F`
    /// subscribe/publish, `0x30..=0x3F` server pushes, `0x40..` unassigned.
    Opcode {
        /// Negotiate version and features; optional, and only as the first request.
        HELLO = 0x01,
        /// Liveness check; the payload is echoed. As a push: a keepalive.
        PING = 0x02,
        /// Server counters as text.
        STATS = 0x03,
        /// Read one record.
        GET = 0x10,
        /// Create or replace a record.
        PUT = 0x11,
        /// Remove a record, optionally only at an expected version.
        DELETE = 0x12,
        /// Write a record only if its version is the expected one (0 = absent).
        CAS = 0x13,
        /// List records by key prefix, in key order, a page at a time.
        SCAN = 0x14,
        /// Subscribe to changes and messages under a prefix (feature PUSH).
        SUBSCRIBE = 0x20,
        /// Cancel a subscription (feature PUSH).
        UNSUBSCRIBE = 0x21,
        /// Send a message to every subscriber of a subject.
        PUBLISH = 0x22,
        /// Push: a record changed.
        EVENT = 0x30,
        /// Push: a published message.
        MESSAGE = 0x31,
        /// Push: the server is stopping; the last frame on the connection.
        GOAWAY = 0x32,
        /// Push: changes a subscription could not be given.
        GAP = 0x33,
        /// Push: a subscription has everything up to a sequence.
        PROGRESS = 0x34,
        /// Push: published messages dropped for a subscription.
        LOST = 0x35,
    }
}

impl Opcode {
    /// True for opcodes only servers send, as pushes.
    pub fn is_push(self) -> bool {
        (0x30..=0x3F).contains(&self.0)
    }
}

byte_codes! {
    /// The outcome of a request, carried in a response's header.
    ///
    /// `0x00..=0x0F` are outcomes a client expects in normal operation; `0x10..` are
    /// errors, whose body is a UTF-8 message for people.
    Status {
        /// Success; the body depends on the opcode.
        OK = 0x00,
        /// The key has no record.
        NOT_FOUND = 0x01,
        /// The record's version is not the expected one; the body is the current version.
        VERSION_CONFLICT = 0x02,
        /// The body does not match the opcode's layout, a reserved flag is set, or the
        /// request is not allowed here (a second HELLO).
        BAD_REQUEST = 0x10,
        /// The opcode is not one this server implements.
        UNKNOWN_OPCODE = 0x11,
        /// Fatal: the frame's version is not the connection's.
        UNSUPPORTED_VERSION = 0x12,
        /// Fatal: the declared length is over the frame limit.
        FRAME_TOO_LARGE = 0x13,
        /// Fatal: the declared length is too short to hold a header.
        MALFORMED_FRAME = 0x14,
        /// The key is empty or longer than the key limit.
        KEY_TOO_LARGE = 0x15,
        /// The value is longer than the value limit.
        VALUE_TOO_LARGE = 0x16,
        /// A feature the request uses (a TTL, a subscription) was not negotiated.
        UNSUPPORTED = 0x17,
        /// The connection, or the server, holds as many subscriptions as it may.
        SUBSCRIPTION_LIMIT = 0x18,
        /// Fatal: the server requires a token and the connection's first frame was not
        /// a HELLO carrying one, or none came within the authentication deadline.
        AUTH_REQUIRED = 0x19,
        /// Fatal: the HELLO's token is not the server's.
        AUTH_FAILED = 0x1A,
        /// The write would take the store past its memory limit; reads and deletes work.
        MEMORY_LIMIT = 0x20,
        /// The server is at its connection limit; it closes after this frame.
        SERVER_FULL = 0x21,
        /// The server is shutting down and did not execute this request.
        SHUTTING_DOWN = 0x22,
        /// Fatal: the server's memory for client buffers is full and this connection
        /// held the most; the server closes it after this frame.
        CLIENT_MEMORY_LIMIT = 0x23,
        /// The server keeps its data on disk and the disk is full: the write was not
        /// carried out; reads go on.
        STORAGE_FULL = 0x24,
        /// Fatal: the server does not serve this client's address (protected mode:
        /// loopback only while no authentication is configured); sent unprompted.
        DENIED = 0x25,
        /// The server failed; the request may or may not have been applied.
        INTERNAL_ERROR = 0x30,
    }
}

impl Status {
    /// True for the error range (`0x10` and up), whose bodies are messages.
    pub fn is_error(self) -> bool {
        self.0 >= 0x10
    }

    /// True for statuses after which the server closes the connection.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Status::UNSUPPORTED_VERSION
                | Status::FRAME_TOO_LARGE
                | Status::MALFORMED_FRAME
                | Status::SERVER_FULL
                | Status::CLIENT_MEMORY_LIMIT
                | Status::AUTH_REQUIRED
                | Status::AUTH_FAILED
                | Status::DENIED
        )
    }
}
