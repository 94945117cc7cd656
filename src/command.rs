//! Executing a job: one `match` from request to store call to encoded response.
//!
//! [`apply`] is the only place a request meets the store. The batch executor
//! ([`exec::run_batch`](crate::exec::run_batch)) calls it for each job, with a
//! [`Sink`] that is either a worker's batch buffer or, when the reactor runs the
//! request, the connection's own output queue. Nothing is allocated per request
//! except the stored copy of a written value; long values are answered by reference
//! (see [`exec::sink`](crate::exec::sink)), never copied.

use crate::config::{DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT};
use crate::conn::SUPPORTED_FEATURES;
use crate::exec::sink::Sink;
use crate::job::{Job, JobOp};
use crate::protocol::encode::ReplyTo;
use crate::protocol::msg::{self, hello::HelloReply, scan::SizedScanWriter};
use crate::protocol::{encode, Limits, Opcode, Request, Status, MAX_VERSION};
use crate::stats::{Stats, Tally};
use crate::store::{Store, WriteError};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

/// The server's name and version, as HELLO reports it.
pub const SERVER_NAME: &str = concat!("switchboard ", env!("CARGO_PKG_VERSION"));

/// Everything a job executes against; shared by the reactor and every worker.
#[derive(Debug)]
pub struct Context {
    /// The records.
    pub store: Store,
    /// The counters.
    pub stats: Stats,
    /// The protocol limits, reported by HELLO and used to size SCAN pages.
    pub limits: Limits,
    /// Worker threads, reported by STATS.
    pub workers: usize,
    /// Set when the server stops executing requests (a shutdown's deadline is near, or
    /// a second signal came): no job starts after it, and jobs not started are
    /// answered SHUTTING_DOWN.
    pub cancel: AtomicBool,
}

impl Context {
    /// A context with an empty store.
    pub fn new(limits: Limits, max_memory: u64, workers: usize) -> Context {
        Context {
            store: Store::new(max_memory),
            stats: Stats::default(),
            limits,
            workers,
            cancel: AtomicBool::new(false),
        }
    }

    /// True once work is being cancelled (see [`cancel`](Self::cancel)).
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Jobs per prefetch group (see [`prefetch_ahead`]).
pub const PREFETCH_GROUP: usize = 8;

/// Call before running `jobs[i]`, for every `i` in order: it keeps the store's memory
/// loads two stages ahead of the jobs being run. Entering group `n`, it asks for the
/// index lines of group `n + 2` and for the records of group `n + 1`, whose index
/// lines were asked for one group earlier; by the time a job runs, its index line and
/// record have had a whole group's execution to arrive (see
/// [`Store::prefetch_index`]). Both stages over 32 jobs just before running them left
/// the second waiting for index lines; this pipeline took the server's CPU per
/// pipelined GET from 0.52–0.57 to 0.50–0.51 µs (BENCHMARKS.md). A hint only:
/// skipping it changes no result.
pub fn prefetch_ahead(ctx: &Context, jobs: &[Job], i: usize) {
    if i % PREFETCH_GROUP != 0 {
        return;
    }
    let keys = |n: usize| {
        let start = (n * PREFETCH_GROUP).min(jobs.len());
        let end = (start + PREFETCH_GROUP).min(jobs.len());
        jobs[start..end].iter().filter_map(point_key)
    };
    let n = i / PREFETCH_GROUP;
    if n == 0 {
        ctx.store.prefetch_index(keys(0));
        ctx.store.prefetch_index(keys(1));
        ctx.store.prefetch_records(keys(0));
    }
    ctx.store.prefetch_index(keys(n + 2));
    ctx.store.prefetch_records(keys(n + 1));
}

/// The key a single-record request looks up.
fn point_key(job: &Job) -> Option<&[u8]> {
    match &job.op {
        JobOp::Request(
            Request::Get { key }
            | Request::Put { key, .. }
            | Request::Delete { key, .. }
            | Request::Cas { key, .. },
        ) => Some(key),
        _ => None,
    }
}

/// Executes one job, appends its response frame to `out`, and publishes its counts at
/// once. Hot paths use [`apply_counted`] and publish once per batch.
pub fn apply<S: Sink + ?Sized>(ctx: &Context, job: &Job, out: &mut S) {
    let mut tally = Tally::default();
    apply_counted(ctx, job, out, &mut tally);
    ctx.stats.counters.absorb(&mut tally);
}

/// Executes one job and appends its response frame to `out`, counting it in `tally`,
/// which the caller publishes with [`Counters::absorb`](crate::stats::Counters::absorb).
///
/// A panic while executing (a bug, never an input the protocol allows) is contained
/// here: whatever the job had written is discarded, the client gets INTERNAL_ERROR,
/// the event is counted, and the thread (the reactor, or a worker holding other
/// connections' answers) lives on. The store stays usable: its locks recover from
/// poisoning, and a write either happened or did not.
pub fn apply_counted<S: Sink + ?Sized>(ctx: &Context, job: &Job, out: &mut S, tally: &mut Tally) {
    let before = out.len();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        execute(ctx, job, out, tally)
    }));
    if result.is_err() {
        out.rollback(before);
        tally.internal_errors += 1;
        let opcode = match &job.op {
            JobOp::Request(r) => r.opcode(),
            JobOp::Reject { opcode, .. } => *opcode,
        };
        encode::error(
            out.buf(),
            opcode,
            job.reply_to(),
            Status::INTERNAL_ERROR,
            b"internal error; the request may or may not have been applied",
        );
    }
}

fn execute<S: Sink + ?Sized>(ctx: &Context, job: &Job, out: &mut S, c: &mut Tally) {
    c.requests_total += 1;
    let id = job.reply_to();
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
            encode::error(out.buf(), *opcode, id, *status, reason.as_bytes());
            return;
        }
    };
    match request {
        Request::Get { key } => {
            #[cfg(test)]
            tests::maybe_panic(key);
            c.cmd_get += 1;
            let found = ctx.store.read(key, |version, value| {
                msg::get::encode_response_head(out.buf(), id, version, value.len());
                out.value(&value, value.shared());
            });
            match found {
                Some(()) => c.get_hits += 1,
                None => {
                    c.get_misses += 1;
                    encode::not_found(out.buf(), Opcode::GET, id);
                }
            }
        }
        Request::Put { key, value, .. } => {
            c.cmd_put += 1;
            written(c, Opcode::PUT, id, ctx.store.put(key, value), out);
        }
        Request::Cas {
            key,
            expected,
            value,
            ..
        } => {
            c.cmd_cas += 1;
            let result = ctx.store.cas(key, *expected, value);
            written(c, Opcode::CAS, id, result, out);
        }
        Request::Delete { key, expected } => {
            c.cmd_delete += 1;
            let result = ctx.store.delete(key, *expected);
            written(c, Opcode::DELETE, id, result, out);
        }
        Request::Scan {
            prefix,
            cursor,
            limit,
        } => {
            c.cmd_scan += 1;
            scan(ctx, id, prefix, cursor, *limit, out);
        }
        Request::Ping { payload } => {
            c.cmd_ping += 1;
            msg::ping::encode_response(out.buf(), id, payload);
        }
        Request::Stats => {
            c.cmd_stats += 1;
            // Publish this thread's counts first, so a client sees its own requests.
            ctx.stats.counters.absorb(c);
            let store = &ctx.store;
            ctx.stats.encode(
                out.buf(),
                id,
                &[
                    ("keys", store.len()),
                    ("memory_used_bytes", store.memory_used()),
                    ("memory_limit_bytes", store.max_memory()),
                    ("seq", store.seq()),
                    ("workers", ctx.workers as u64),
                ],
            );
        }
        Request::Hello {
            max_version,
            features,
            ..
        } => {
            c.cmd_hello += 1;
            let reply = HelloReply {
                version: (*max_version).min(MAX_VERSION),
                features: features & SUPPORTED_FEATURES,
                max_frame: ctx.limits.max_frame,
                max_key: ctx.limits.max_key,
                max_value: ctx.limits.max_value,
                server: Bytes::from_static(SERVER_NAME.as_bytes()),
            };
            msg::hello::encode_response(out.buf(), id, &reply);
        }
    }
}

/// Encodes the outcome of a write.
fn written<S: Sink + ?Sized>(
    c: &mut Tally,
    opcode: Opcode,
    id: ReplyTo,
    result: Result<u64, WriteError>,
    out: &mut S,
) {
    let out = out.buf();
    match result {
        Ok(version) => encode::written(out, opcode, id, version),
        Err(WriteError::NotFound) => encode::not_found(out, opcode, id),
        Err(WriteError::VersionConflict { current }) => {
            c.version_conflicts += 1;
            encode::version_conflict(out, opcode, id, current);
        }
        Err(WriteError::MemoryLimit) => {
            c.writes_refused_memory += 1;
            encode::error(
                out,
                opcode,
                id,
                Status::MEMORY_LIMIT,
                b"write refused: the store is at its memory limit",
            );
        }
    }
}

/// Encodes one SCAN page, stopping early rather than passing the frame limit. Long
/// values go into the answer by reference, as GET's do.
fn scan<S: Sink + ?Sized>(
    ctx: &Context,
    id: ReplyTo,
    prefix: &[u8],
    cursor: &[u8],
    limit: u16,
    out: &mut S,
) {
    let limit = match limit {
        0 => DEFAULT_SCAN_LIMIT,
        n => n.min(MAX_SCAN_LIMIT),
    };
    let page = ctx.store.scan(prefix, cursor, usize::from(limit));
    let max_body = ctx.limits.max_body() as usize;
    // First decide how many entries fit, so the frame's length is known before any of
    // it is written: always one (the limits guarantee any single record fits a frame),
    // then more while the body, with the last key as the next cursor, stays in bounds.
    let mut count = 0;
    let mut entries_len = 0;
    for entry in &page.records {
        let with =
            entries_len + msg::scan::ENTRY_OVERHEAD + entry.key().len() + entry.value().len();
        if count > 0 && msg::scan::RESPONSE_OVERHEAD + with + entry.key().len() > max_body {
            break;
        }
        entries_len = with;
        count += 1;
    }
    let cut_short = count < page.records.len();
    let next: &[u8] = match count.checked_sub(1).map(|i| &page.records[i]) {
        Some(last) if cut_short || page.more => last.key(),
        _ => &[],
    };
    let body = msg::scan::RESPONSE_OVERHEAD + entries_len + next.len();
    SizedScanWriter::begin(out.buf(), id, page.seq, count as u32, body);
    for entry in &page.records[..count] {
        let value = entry.value_ref();
        SizedScanWriter::entry_head(out.buf(), entry.key(), entry.version(), value.len());
        out.value(&value, value.shared());
    }
    SizedScanWriter::finish(out.buf(), next);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ConnId;
    use crate::protocol::{Decoder, RequestId, Response, ResponseBody};

    /// The key that makes a GET panic, standing in for a bug.
    const PANIC_KEY: &[u8] = b"\xffpanic";

    pub(super) fn maybe_panic(key: &[u8]) {
        if key == PANIC_KEY {
            panic!("injected failure");
        }
    }

    fn job(id: u32, request: Request) -> Job {
        Job {
            conn: ConnId {
                index: 0,
                generation: 0,
            },
            id: RequestId(id),
            version: crate::protocol::BASE_VERSION,
            op: JobOp::Request(request),
        }
    }

    #[test]
    fn a_panic_becomes_internal_error_and_the_next_job_runs() {
        let ctx = Context::new(Limits::default(), 0, 1);
        let mut out = crate::exec::sink::Answers::default();
        apply(
            &ctx,
            &job(
                1,
                Request::Put {
                    key: "k".into(),
                    value: "v".into(),
                    ttl_ms: 0,
                },
            ),
            &mut out,
        );
        apply(
            &ctx,
            &job(
                2,
                Request::Get {
                    key: Bytes::from_static(PANIC_KEY),
                },
            ),
            &mut out,
        );
        apply(&ctx, &job(3, Request::Get { key: "k".into() }), &mut out);
        let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut out.buf).unwrap() {
            bodies.push(Response::decode(&frame).unwrap());
        }
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[1].request_id, RequestId(2));
        assert!(matches!(
            bodies[1].body,
            ResponseBody::Error {
                status: Status::INTERNAL_ERROR,
                ..
            }
        ));
        assert!(matches!(&bodies[2].body, ResponseBody::Value { value, .. } if value == "v"));
        assert_eq!(
            ctx.stats
                .counters
                .internal_errors
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
