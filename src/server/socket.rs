//! Socket reads and writes, with every `io::Error` classified in one place.
//!
//! `Interrupted` is retried here and never reaches the reactor; a reset, a broken pipe
//! or an aborted connection is the peer going away, not a server failure.

use crate::conn::CloseReason;
use std::io::{self, Read, Write};

/// What one read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadOutcome {
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
pub(super) enum WriteOutcome {
    /// The socket took this many bytes.
    Wrote(usize),
    /// The socket's buffer is full; wait for writability.
    WouldBlock,
    /// The socket failed.
    Failed(CloseReason),
}

/// Reads once into `buf`, retrying on `Interrupted`.
pub(super) fn read(stream: &mut impl Read, buf: &mut [u8]) -> ReadOutcome {
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

/// Writes once from `bufs` in order (one `writev`), retrying on `Interrupted`.
pub(super) fn write_vectored(
    stream: &mut impl Write,
    bufs: &[std::io::IoSlice<'_>],
) -> WriteOutcome {
    write_with(|| stream.write_vectored(bufs))
}

/// Writes once from `buf`, retrying on `Interrupted`.
pub(super) fn write(stream: &mut impl Write, buf: &[u8]) -> WriteOutcome {
    write_with(|| stream.write(buf))
}

/// Classifies one write, retrying it on `Interrupted`.
fn write_with(mut write: impl FnMut() -> io::Result<usize>) -> WriteOutcome {
    loop {
        return match write() {
            Ok(0) => WriteOutcome::Failed(CloseReason::Reset),
            Ok(n) => WriteOutcome::Wrote(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
            Err(e) => WriteOutcome::Failed(classify(&e)),
        };
    }
}

pub(super) fn classify(e: &io::Error) -> CloseReason {
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
pub(super) fn is_resource_exhaustion(e: &io::Error) -> bool {
    is_descriptor_exhaustion(e) || matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM))
}

/// True for `accept` errors that mean "out of descriptors", for the process or the
/// system: releasing one descriptor lets one accept succeed.
pub(super) fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
