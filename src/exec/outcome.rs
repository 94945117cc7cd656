//! Running one request: a [`Job`] in, a typed [`Outcome`] out, and for a successful
//! write its [`Change`] appended to the batch's changes. Nothing here encodes: that is
//! [`encode`](super::encode), a separate step, so what a request did is known as data
//! (to hold an answer until its change is durable, to publish the change) before any
//! byte of its answer exists.
//!
//! The outcome is handed to a continuation rather than returned: a found record's
//! value is lent to it while its shard is locked, so the answer is encoded from the
//! stored bytes without copying them first, and the compiler can fuse the two steps
//! into one pass (a returned outcome cost about 100 instructions per GET more,
//! measured with callgrind).

use super::Context;
use crate::config::{DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT};
use crate::job::{Job, JobOp};
use crate::protocol::{Opcode, Request, Status};
use crate::stats::Tally;
use crate::store::{Change, Page, Value, WriteError};

/// What executing one job came to. A found record's value is borrowed from the store,
/// whose shard is locked while the outcome lives (see [`execute`]).
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
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
        /// Its value, lent by the store.
        value: Value<'a>,
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
    Page(&'a Page),
    /// PING: echo its payload.
    Pong,
    /// STATS: the counters, read when encoded.
    Stats,
    /// HELLO: the negotiated version and features, derived from the request.
    Hello,
    /// SUBSCRIBE took effect.
    Subscribed {
        /// The subscription's id on its connection.
        sub_id: u32,
        /// The server's sequence when it began.
        seq: u64,
    },
    /// UNSUBSCRIBE ended the subscription.
    Unsubscribed,
    /// PUBLISH queued the message for this many connections.
    Published {
        /// Connections with a matching subscription.
        receivers: u32,
    },
}

/// Executes `job` against the store, counting it in `tally`; a successful write's
/// change goes to `changes`. Returns what `then` makes of the outcome, which it gets
/// while any record it names is still locked: keep `then` short (encoding the answer).
#[inline]
pub fn execute<R>(
    ctx: &Context,
    job: &Job,
    tally: &mut Tally,
    changes: &mut Vec<Change>,
    then: impl FnOnce(Outcome<'_>) -> R,
) -> R {
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
            return then(Outcome::Refused {
                opcode: *opcode,
                status: *status,
                reason,
            });
        }
    };
    if matches!(
        request,
        Request::Put { .. } | Request::Cas { .. } | Request::Delete { .. }
    ) && ctx.log.as_ref().is_some_and(|log| log.storage_full())
    {
        c.writes_refused_storage += 1;
        return then(Outcome::Refused {
            opcode: request.opcode(),
            status: Status::STORAGE_FULL,
            reason: "write refused: the disk that holds the data is full (reads go on)",
        });
    }
    match request {
        Request::Get { key } => {
            #[cfg(test)]
            tests::maybe_panic(key);
            c.cmd_get += 1;
            // `then` runs under the lock when the record is there, after it otherwise.
            let mut then = Some(then);
            let found = ctx.store.read(key, |version, value| {
                let then = then.take().expect("called once");
                then(Outcome::Found { version, value })
            });
            match found {
                Some(answer) => {
                    c.get_hits += 1;
                    answer
                }
                None => {
                    c.get_misses += 1;
                    let then = then.take().expect("not called");
                    then(Outcome::NotFound)
                }
            }
        }
        Request::Put { key, value, .. } => {
            c.cmd_put += 1;
            then(written(
                c,
                ctx.store.put_with(key, value, |ch| changes.push(ch)),
            ))
        }
        Request::Cas {
            key,
            expected,
            value,
            ..
        } => {
            c.cmd_cas += 1;
            let result = ctx
                .store
                .cas_with(key, *expected, value, |ch| changes.push(ch));
            then(written(c, result))
        }
        Request::Delete { key, expected } => {
            c.cmd_delete += 1;
            let result = ctx.store.delete_with(key, *expected, |ch| changes.push(ch));
            then(written(c, result))
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
            let page = ctx.store.scan(prefix, cursor, usize::from(limit));
            then(Outcome::Page(&page))
        }
        Request::Ping { .. } => {
            c.cmd_ping += 1;
            then(Outcome::Pong)
        }
        Request::Stats => {
            c.cmd_stats += 1;
            // Publish this thread's counts first, so a client sees its own requests.
            ctx.stats.counters.absorb(c);
            then(Outcome::Stats)
        }
        Request::Hello { .. } => {
            c.cmd_hello += 1;
            then(Outcome::Hello)
        }
        Request::Subscribe {
            prefix,
            resume,
            progress_ms,
        } => {
            c.cmd_subscribe += 1;
            let seq = ctx.store.seq();
            let subscribed = ctx.push.subscribe(
                job.conn,
                prefix.clone(),
                *resume,
                *progress_ms,
                seq,
                std::time::Instant::now(),
            );
            match subscribed {
                Ok(sub_id) => then(Outcome::Subscribed { sub_id, seq }),
                Err((status, reason)) => {
                    c.request_errors += 1;
                    then(Outcome::Refused {
                        opcode: Opcode::SUBSCRIBE,
                        status,
                        reason,
                    })
                }
            }
        }
        Request::Unsubscribe { sub_id } => {
            c.cmd_unsubscribe += 1;
            if ctx.push.unsubscribe(job.conn, *sub_id) {
                then(Outcome::Unsubscribed)
            } else {
                then(Outcome::NotFound)
            }
        }
        Request::Publish { subject, payload } => {
            c.cmd_publish += 1;
            match ctx.push.publish(subject.clone(), payload.clone()) {
                Ok(receivers) => then(Outcome::Published { receivers }),
                Err((status, reason)) => {
                    c.request_errors += 1;
                    then(Outcome::Refused {
                        opcode: Opcode::PUBLISH,
                        status,
                        reason,
                    })
                }
            }
        }
    }
}

/// The outcome of a write (whose change, if it committed, is already with the batch's).
fn written(c: &mut Tally, result: Result<u64, WriteError>) -> Outcome<'static> {
    match result {
        Ok(version) => Outcome::Written { version },
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
