//! Socket reads and writes, with every `io::Error` classified in one place.
//!
//! `Interrupted` is retried here and never reaches the reactor; a reset, a broken pipe
//! or an aborted connection is the peer going away, not a server failure.

use crate::conn::CloseReason;
use std::io::{self, Read, Write};

/// What one read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes arrived (never 0).
    Data(usize),
    /// Nothing to read now; wait for the next readiness event.
    WouldBlock,
    /// The peer closed its write side.
    Eof,
    /// The socket failed.
    Failed(CloseReason),
}

/// What one write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The socket took this many bytes.
    Wrote(usize),
    /// The socket's buffer is full; wait for writability.
    WouldBlock,
    /// The socket failed.
    Failed(CloseReason),
}

/// Reads once into `buf`, retrying on `Interrupted`.
pub fn read(stream: &mut impl Read, buf: &mut [u8]) -> ReadOutcome {
    loop {
        return match stream.read(buf) {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
            Err(e) => ReadOutcome::Failed(classify(&e)),
        };
    }
}

/// Writes once from `buf`, retrying on `Interrupted`.
pub fn write(stream: &mut impl Write, buf: &[u8]) -> WriteOutcome {
    loop {
        return match stream.write(buf) {
            Ok(0) => WriteOutcome::Failed(CloseReason::Reset),
            Ok(n) => WriteOutcome::Wrote(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
            Err(e) => WriteOutcome::Failed(classify(&e)),
        };
    }
}

fn classify(e: &io::Error) -> CloseReason {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected => CloseReason::Reset,
        _ => CloseReason::Io,
    }
}

/// True for `accept` errors that mean "out of descriptors or memory": retrying at once
/// would fail the same way, so the listener pauses instead of spinning.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_codes::EMFILE | libc_codes::ENFILE | libc_codes::ENOBUFS | libc_codes::ENOMEM)
    )
}

/// The Linux error numbers `accept` reports when resources run out.
mod libc_codes {
    pub(super) const ENOMEM: i32 = 12;
    pub(super) const ENFILE: i32 = 23;
    pub(super) const EMFILE: i32 = 24;
    pub(super) const ENOBUFS: i32 = 105;
}
