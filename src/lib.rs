//! switchboard: a versioned in-memory record store served over a compact binary protocol.
#![warn(missing_docs)]

pub use switchboard_protocol as protocol;
