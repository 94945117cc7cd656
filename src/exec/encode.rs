//! Encoding an [`Outcome`] as the job's answer, into a [`Sink`]: the second step after
//! [`execute`](super::outcome::execute). Long values (a GET's, or a SCAN page's) go
//! into the answer by reference; everything else is encoded into the sink's buffer.

use super::outcome::Outcome;
use super::sink::Sink;
use super::Context;
use crate::conn::SUPPORTED_FEATURES;
use crate::job::{Job, JobOp};
use crate::protocol::encode::ReplyTo;
use crate::protocol::msg::{self, hello::HelloReply, scan::SizedScanWriter};
use crate::protocol::{encode, Request, Status, MAX_VERSION};
use crate::store::Page;
use bytes::Bytes;

/// The server's name and version, as HELLO reports it.
pub const SERVER_NAME: &str = concat!("switchboard ", env!("CARGO_PKG_VERSION"));

/// The change sequence an answer reveals: it may not reach the client before that
/// sequence is durable (a write's version, a version read, the sequence a SCAN or a
/// NOT_FOUND reflects). 0 when it reveals none.
fn observed(ctx: &Context, outcome: &Outcome<'_>) -> u64 {
    match outcome {
        Outcome::Found { version, .. } | Outcome::Written { version } => *version,
        Outcome::Conflict { current } => *current,
        // The absence may be a deletion's doing: the store's sequence covers it.
        // (STATS reports the sequence beside the durable one, and must answer while
        // the log is stuck, so it does not wait.)
        Outcome::NotFound => ctx.store.seq(),
        Outcome::Page(page) => page.seq,
        Outcome::Subscribed { seq, .. } => *seq,
        _ => 0,
    }
}

/// Appends `job`'s answer, given what executing it came to.
#[inline]
pub fn encode<S: Sink + ?Sized>(ctx: &Context, job: &Job, outcome: &Outcome<'_>, out: &mut S) {
    let durable = out.durable();
    if durable != u64::MAX {
        let seen = observed(ctx, outcome);
        if seen > durable {
            out.hold_for(seen);
        }
    }
    let to = job.reply_to();
    // Only some answers echo the opcode from the request itself.
    let opcode = || match &job.op {
        JobOp::Request(r) => r.opcode(),
        JobOp::Reject { opcode, .. } => *opcode,
    };
    match outcome {
        Outcome::Refused {
            opcode,
            status,
            reason,
        } => encode::error(out.buf(), *opcode, to, *status, reason.as_bytes()),
        Outcome::Found { version, value } => {
            msg::get::encode_response_head(out.buf(), to, *version, value.len());
            out.value(value, value.shared());
        }
        Outcome::NotFound => encode::not_found(out.buf(), opcode(), to),
        Outcome::Written { version } => encode::written(out.buf(), opcode(), to, *version),
        Outcome::Conflict { current } => {
            encode::version_conflict(out.buf(), opcode(), to, *current)
        }
        Outcome::MemoryLimit => encode::error(
            out.buf(),
            opcode(),
            to,
            Status::MEMORY_LIMIT,
            b"write refused: the store is at its memory limit",
        ),
        Outcome::Page(page) => scan_page(ctx, to, page, out),
        Outcome::Pong => {
            let payload: &[u8] = match &job.op {
                JobOp::Request(Request::Ping { payload }) => payload,
                _ => &[],
            };
            msg::ping::encode_response(out.buf(), to, payload);
        }
        Outcome::Stats => {
            let store = &ctx.store;
            let push = ctx.push.lock();
            let c = push.counts;
            let extra = [
                ("keys", store.len()),
                ("memory_used_bytes", store.memory_used()),
                ("memory_limit_bytes", store.max_memory()),
                ("seq", store.seq()),
                ("workers", ctx.workers as u64),
                ("subscriptions_current", push.subscriptions() as u64),
                (
                    "subscribed_connections",
                    push.subscribed_connections() as u64,
                ),
                ("change_log_events", push.log.len() as u64),
                ("change_log_bytes", push.log.bytes() as u64),
                ("change_log_oldest", push.log.base() + 1),
                ("push_events_sent", c.events_sent),
                ("push_messages_sent", c.messages_sent),
                ("push_messages_lost", c.messages_lost),
                ("push_gaps_sent", c.gaps_sent),
                ("push_subscriptions_fell_behind", c.fell_behind),
                ("push_pings_sent", c.pings_sent),
                ("push_keepalive_closes", c.keepalive_closes),
                ("published_total", c.published),
            ];
            drop(push);
            match &ctx.log {
                Some(log) => {
                    let mut all = extra.to_vec();
                    all.extend(log.figures());
                    ctx.stats.encode(out.buf(), to, &all);
                }
                None => ctx.stats.encode(out.buf(), to, &extra),
            }
        }
        Outcome::Hello => {
            let (max_version, features) = match &job.op {
                JobOp::Request(Request::Hello {
                    max_version,
                    features,
                    ..
                }) => (*max_version, *features),
                _ => (MAX_VERSION, 0),
            };
            let reply = HelloReply {
                version: max_version.min(MAX_VERSION),
                features: features & SUPPORTED_FEATURES,
                max_frame: ctx.limits.max_frame,
                max_key: ctx.limits.max_key,
                max_value: ctx.limits.max_value,
                history: ctx.push.history,
                server: Bytes::from_static(SERVER_NAME.as_bytes()),
            };
            msg::hello::encode_response(out.buf(), to, &reply);
        }
        Outcome::Subscribed { sub_id, seq } => {
            msg::subscribe::encode_response(out.buf(), to, *sub_id, ctx.push.history, *seq)
        }
        Outcome::Unsubscribed => msg::subscribe::encode_unsubscribed(out.buf(), to),
        Outcome::Published { receivers } => {
            msg::publish::encode_response(out.buf(), to, *receivers)
        }
    }
}

/// Encodes a SCAN page, stopping early rather than passing the frame limit.
fn scan_page<S: Sink + ?Sized>(ctx: &Context, to: ReplyTo, page: &Page, out: &mut S) {
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
    SizedScanWriter::begin(out.buf(), to, page.seq, count as u32, body);
    for entry in &page.records[..count] {
        let value = entry.value_ref();
        SizedScanWriter::entry_head(out.buf(), entry.key(), entry.version(), value.len());
        out.value(&value, value.shared());
    }
    SizedScanWriter::finish(out.buf(), next);
}
