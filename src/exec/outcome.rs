//! Running one request: a [`Job`] in, a typed [`Outcome`] out, and for a successful
//! write its [`Change`] appended to the batch's changes. Nothing here encodes: that is
//! [`encode`](super::encode), a separate step, so what a request did is known as data
//! (to hold an answer until its change is durable, to publish the change) before any
//! byte of its answer exists.

use super::Context;
use crate::config::{DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT};
use crate::job::{Job, JobOp};
use crate::protocol::{Opcode, Request, Status};
use crate::stats::Tally;
use crate::store::{Change, Page, Stored, WriteError};

/// What executing one job came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The connection refused the frame before it could run: answered with this error.
    Refused {
        /// The opcode to echo.
        opcode: Opcode,
        /// The error.
        status: Status,
        /// Its message.
        reason: &'static str,
    },
    /// GET found the record.
    Found {
        /// Its version.
        version: u64,
        /// Its value, as the store holds it (no copy of a long value).
        value: Stored,
    },
    /// GET or DELETE found no record.
    NotFound,
    /// PUT, CAS or DELETE committed: its change is in the batch's changes.
    Written {
        /// The record's new version (the change's sequence number).
        version: u64,
    },
    /// CAS or DELETE expected another version.
    Conflict {
        /// The record's version now (0 when there is none).
        current: u64,
    },
    /// PUT or CAS would pass the store's memory limit; nothing was written.
    MemoryLimit,
    /// A SCAN page.
    Page(Page),
    /// PING: echo its payload.
    Pong,
    /// STATS: the counters, read when encoded.
    Stats,
    /// HELLO: the negotiated version and features, derived from the request.
    Hello,
}

/// Executes `job` against the store, counting it in `tally`; a successful write's
/// change goes to `changes`.
pub fn execute(ctx: &Context, job: &Job, tally: &mut Tally, changes: &mut Vec<Change>) -> Outcome {
    let c = tally;
    c.requests_total += 1;
    let request = match &job.op {
        JobOp::Request(request) => request,
        JobOp::Reject {
            opcode,
            status,
            reason,
        } => {
            if status.is_fatal() {
                c.protocol_errors += 1;
            } else {
                c.request_errors += 1;
            }
            return Outcome::Refused {
                opcode: *opcode,
                status: *status,
                reason,
            };
        }
    };
    match request {
        Request::Get { key } => {
            #[cfg(test)]
            tests::maybe_panic(key);
            c.cmd_get += 1;
            match ctx.store.lookup(key) {
                Some((version, value)) => {
                    c.get_hits += 1;
                    Outcome::Found { version, value }
                }
                None => {
                    c.get_misses += 1;
                    Outcome::NotFound
                }
            }
        }
        Request::Put { key, value, .. } => {
            c.cmd_put += 1;
            written(c, ctx.store.put(key, value), changes)
        }
        Request::Cas {
            key,
            expected,
            value,
            ..
        } => {
            c.cmd_cas += 1;
            written(c, ctx.store.cas(key, *expected, value), changes)
        }
        Request::Delete { key, expected } => {
            c.cmd_delete += 1;
            written(c, ctx.store.delete(key, *expected), changes)
        }
        Request::Scan {
            prefix,
            cursor,
            limit,
        } => {
            c.cmd_scan += 1;
            let limit = match *limit {
                0 => DEFAULT_SCAN_LIMIT,
                n => n.min(MAX_SCAN_LIMIT),
            };
            Outcome::Page(ctx.store.scan(prefix, cursor, usize::from(limit)))
        }
        Request::Ping { .. } => {
            c.cmd_ping += 1;
            Outcome::Pong
        }
        Request::Stats => {
            c.cmd_stats += 1;
            // Publish this thread's counts first, so a client sees its own requests.
            ctx.stats.counters.absorb(c);
            Outcome::Stats
        }
        Request::Hello { .. } => {
            c.cmd_hello += 1;
            Outcome::Hello
        }
    }
}

/// The outcome of a write; its change, if it committed, goes to `changes`.
fn written(
    c: &mut Tally,
    result: Result<Change, WriteError>,
    changes: &mut Vec<Change>,
) -> Outcome {
    match result {
        Ok(change) => {
            let version = change.seq;
            changes.push(change);
            Outcome::Written { version }
        }
        Err(WriteError::NotFound) => Outcome::NotFound,
        Err(WriteError::VersionConflict { current }) => {
            c.version_conflicts += 1;
            Outcome::Conflict { current }
        }
        Err(WriteError::MemoryLimit) => {
            c.writes_refused_memory += 1;
            Outcome::MemoryLimit
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// The key that makes a GET panic, standing in for a bug.
    pub(crate) const PANIC_KEY: &[u8] = b"\xffpanic";

    pub(super) fn maybe_panic(key: &[u8]) {
        if key == PANIC_KEY {
            panic!("injected failure");
        }
    }
}
