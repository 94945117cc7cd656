//! Delivering pushes, on the reactor: change events as the sequencer emits them,
//! published messages, replays of subscriptions that are behind, and the periodic
//! PROGRESS and keepalive PING.
//!
//! Every push is appended to its connection's one ordered output queue, after the
//! answers already there, and counts against the same output limit. A long value (an
//! event's or a message's) is never copied: every subscriber's queue shares the one
//! buffer. Short bodies are written into each queue, which costs what copying a
//! pre-encoded body would.

use super::log::ChangeLog;
use super::{PushCounts, State, Sub, KEEPALIVE_MISSES};
use crate::conn::{Connection, Outgoing};
use crate::exec::sink::Sink;
use crate::job::ConnId;
use crate::protocol::push::{
    encode_event_body, encode_message_body, encode_prefix, EventKind, Push, EVENT_OVERHEAD,
};
use crate::protocol::Opcode;
use crate::store::{Change, ChangeOp};
use bytes::{Bytes, BytesMut};
use std::time::Instant;

/// Bodies at least this long are shared between subscribers' queues, not copied.
const SHARE_BYTES: usize = 1024;

/// The connections pushes go to.
pub trait Targets {
    /// The connection, if it is still there.
    fn conn(&mut self, id: ConnId) -> Option<&mut Connection>;
    /// Something was queued on `id`, which needs writing.
    fn touched(&mut self, id: ConnId);
}

/// How a replay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every subscription of the connection is live.
    Caught,
    /// The output is full; the connection resumes when it drains.
    NoRoom,
    /// The budget ran out; call again.
    Budget,
}

/// Appends a body shared by subscribers: copied when short, by reference when long.
fn put_body(out: &mut Outgoing, parts: &[&Bytes]) {
    for part in parts {
        if part.len() >= SHARE_BYTES {
            out.share((*part).clone());
        } else {
            out.buf().extend_from_slice(part);
        }
    }
}

/// Encodes the body of `change`'s EVENT after its `sub_id` into `scratch`, once for
/// all its subscribers: the sequence, kind and key, and a short value. Returns a long
/// value, which each subscriber's queue shares instead. `change` is never a hole.
fn encode_event(scratch: &mut BytesMut, change: &Change) -> Option<Bytes> {
    let (kind, value, shared) = match &change.op {
        ChangeOp::Put(stored) => (
            EventKind::Put,
            stored.as_bytes(),
            stored.shared().filter(|v| v.len() >= SHARE_BYTES),
        ),
        ChangeOp::Delete | ChangeOp::Hole => (EventKind::Delete, &[][..], None),
    };
    scratch.clear();
    let inline = if shared.is_some() { &[][..] } else { value };
    encode_event_body(scratch, change.seq, kind, change.key.as_bytes(), inline);
    shared.cloned()
}

/// Appends an EVENT frame for subscription `sub_id` from a body [`encode_event`] made.
fn write_encoded(
    out: &mut Outgoing,
    version: u8,
    sub_id: u32,
    head: &[u8],
    shared: Option<&Bytes>,
) {
    let len = head.len() + shared.map_or(0, |v| v.len());
    encode_prefix(out.buf(), Opcode::EVENT, version, sub_id, len);
    out.buf().extend_from_slice(head);
    if let Some(value) = shared {
        out.share(value.clone());
    }
}

/// Appends an EVENT for `change` (never a hole), encoding it in place: a replay's,
/// for one subscriber.
fn write_event(out: &mut Outgoing, version: u8, sub_id: u32, change: &Change) {
    let (kind, value, shared) = match &change.op {
        ChangeOp::Put(stored) => (
            EventKind::Put,
            stored.as_bytes(),
            stored.shared().filter(|v| v.len() >= SHARE_BYTES),
        ),
        ChangeOp::Delete | ChangeOp::Hole => (EventKind::Delete, &[][..], None),
    };
    let key = change.key.as_bytes();
    let body_len = EVENT_OVERHEAD + key.len() + value.len();
    encode_prefix(out.buf(), Opcode::EVENT, version, sub_id, body_len);
    match shared {
        Some(value) => {
            encode_event_body(out.buf(), change.seq, kind, key, &[]);
            out.share(value.clone());
        }
        None => encode_event_body(out.buf(), change.seq, kind, key, value),
    }
}

impl State {
    /// A change the sequencer emitted, in order: delivered to the live subscriptions
    /// it matches, then logged.
    pub fn on_change(&mut self, change: Change, now: Instant, t: &mut impl Targets) {
        if !self.index.is_empty() && !matches!(change.op, ChangeOp::Hole) {
            let (subs, counts) = (&mut self.subs, &mut self.counts);
            let scratch = &mut self.scratch_event;
            // Encoded at the first subscriber it goes to, then copied to the others.
            let mut encoded = false;
            let mut shared = None;
            self.index.for_each_match(change.key.as_bytes(), |key| {
                let Some(sub) = subs.get_mut(&key) else {
                    return;
                };
                if sub.behind || change.seq <= sub.cursor {
                    return;
                }
                let Some(conn) = t.conn(key.0) else {
                    return;
                };
                if !conn.push_room() {
                    // Behind from here: the log has this change for the replay, which
                    // ends with a PROGRESS like any other.
                    sub.behind = true;
                    sub.progress_owed = true;
                    conn.set_push_behind();
                    counts.fell_behind += 1;
                    return;
                }
                let version = conn.version();
                let Some(out) = conn.push_out() else {
                    return;
                };
                if !encoded {
                    shared = encode_event(scratch, &change);
                    encoded = true;
                }
                write_encoded(out, version, key.1, scratch, shared.as_ref());
                sub.cursor = change.seq;
                sub.last_sent = now;
                counts.events_sent += 1;
                t.touched(key.0);
            });
        }
        self.log.push(change);
    }

    /// Work executing left: connections whose subscriptions changed (applied through
    /// `notice`), published messages, and replays to start.
    pub fn deliver_pending(
        &mut self,
        now: Instant,
        t: &mut impl Targets,
        mut notice: impl FnMut(ConnId, bool),
        ready: &mut Vec<ConnId>,
    ) {
        for (conn, subscribed) in self.notices.drain(..) {
            notice(conn, subscribed);
        }
        ready.append(&mut self.ready);
        let outbox = std::mem::take(&mut self.outbox);
        for message in &outbox {
            self.deliver_message(&message.subject, &message.payload, now, t);
        }
        let mut outbox = outbox;
        outbox.clear();
        if self.outbox.is_empty() {
            self.outbox = outbox;
        }
    }

    fn deliver_message(
        &mut self,
        subject: &Bytes,
        payload: &Bytes,
        now: Instant,
        t: &mut impl Targets,
    ) {
        let mut body = BytesMut::with_capacity(2 + subject.len() + payload.len().min(SHARE_BYTES));
        let shared_payload = payload.len() >= SHARE_BYTES;
        encode_message_body(
            &mut body,
            subject,
            if shared_payload { &[] } else { payload },
        );
        let head = body.freeze();
        let body_len = head.len() + if shared_payload { payload.len() } else { 0 };
        let (subs, counts) = (&mut self.subs, &mut self.counts);
        self.index.for_each_match(subject, |key| {
            let Some(sub) = subs.get_mut(&key) else {
                return;
            };
            let Some(conn) = t.conn(key.0) else {
                return;
            };
            if !conn.push_room() {
                sub.lost += 1;
                counts.messages_lost += 1;
                return;
            }
            let version = conn.version();
            let Some(out) = conn.push_out() else {
                return;
            };
            if sub.lost > 0 {
                Push::Lost {
                    sub_id: key.1,
                    count: sub.lost,
                }
                .encode(version, out.buf());
                sub.lost = 0;
            }
            encode_prefix(out.buf(), Opcode::MESSAGE, version, key.1, body_len);
            if shared_payload {
                put_body(out, &[&head, payload]);
            } else {
                out.buf().extend_from_slice(&head);
            }
            sub.last_sent = now;
            counts.messages_sent += 1;
            t.touched(key.0);
        });
    }

    /// Replays the log to `conn`'s subscriptions that are behind, looking at no more
    /// than `budget` log entries (and taking what it looked at from it).
    pub fn catch_up(
        &mut self,
        conn_id: ConnId,
        now: Instant,
        t: &mut impl Targets,
        budget: &mut usize,
    ) -> Replay {
        let Some(subs) = self.conns.get(&conn_id) else {
            return Replay::Caught;
        };
        let Some(conn) = t.conn(conn_id) else {
            return Replay::Caught;
        };
        let mut result = Replay::Caught;
        for &id in &subs.ids {
            let Some(sub) = self.subs.get_mut(&(conn_id, id)) else {
                continue;
            };
            if !sub.behind {
                continue;
            }
            let replay = ReplayTo {
                log: &self.log,
                history: self.history,
                counts: &mut self.counts,
                now,
            };
            match replay.run(sub, id, conn, budget) {
                Replay::Caught => {}
                other => {
                    result = other;
                    break;
                }
            }
        }
        if result == Replay::NoRoom {
            conn.set_push_behind();
        }
        t.touched(conn_id);
        result
    }

    /// Periodic work: PROGRESS on quiet subscriptions that asked for it, keepalive
    /// PINGs to quiet subscribers, and closing those that answer none.
    pub fn tick(&mut self, now: Instant, t: &mut impl Targets) {
        let keepalive = self.config.keepalive;
        let last = self.log.last();
        for (&conn_id, cs) in self.conns.iter_mut() {
            if cs.ids.is_empty() {
                continue;
            }
            let Some(conn) = t.conn(conn_id) else {
                continue;
            };
            if cs.ping_sent.is_some_and(|sent| conn.last_input() >= sent) {
                cs.ping_sent = None;
            }
            let version = conn.version();
            match cs.ping_sent {
                None if now.saturating_duration_since(conn.last_activity()) >= keepalive => {
                    if let Some(out) = conn.push_out() {
                        Push::Ping.encode(version, out.buf());
                        cs.ping_sent = Some(now);
                        self.counts.pings_sent += 1;
                        t.touched(conn_id);
                    }
                }
                Some(sent)
                    if now.saturating_duration_since(sent) >= keepalive * KEEPALIVE_MISSES
                        && conn.pending_output() == 0 =>
                {
                    // The PING went out long ago and nothing came back: the peer is
                    // gone. (A peer that does not read is TCP's to judge.)
                    conn.handle_keepalive_timeout();
                    self.counts.keepalive_closes += 1;
                    t.touched(conn_id);
                    continue;
                }
                _ => {}
            }
            for &id in &cs.ids {
                let Some(sub) = self.subs.get_mut(&(conn_id, id)) else {
                    continue;
                };
                let Some(every) = sub.progress_every else {
                    continue;
                };
                if sub.behind || now.saturating_duration_since(sub.last_sent) < every {
                    continue;
                }
                let Some(conn) = t.conn(conn_id) else {
                    break;
                };
                if let Some(out) = conn.push_out() {
                    Push::Progress {
                        sub_id: id,
                        history: self.history,
                        seq: sub.cursor.max(last),
                    }
                    .encode(version, out.buf());
                    sub.last_sent = now;
                    t.touched(conn_id);
                }
            }
        }
    }
}

impl State {
    /// The server is stopping and `conn`'s GOAWAY is next: each of its subscriptions
    /// gets a last PROGRESS, for the sequence it has everything up to (where a
    /// subscription that fell behind stopped; for the others the log's last), so a
    /// client resuming elsewhere knows where to start.
    pub fn final_progress(&mut self, conn_id: ConnId, conn: &mut Connection) {
        let Some(cs) = self.conns.get(&conn_id) else {
            return;
        };
        let version = conn.version();
        let last = self.log.last();
        for &id in &cs.ids {
            let Some(sub) = self.subs.get(&(conn_id, id)) else {
                continue;
            };
            let seq = if sub.behind {
                sub.cursor
            } else {
                sub.cursor.max(last)
            };
            if let Some(out) = conn.push_out() {
                Push::Progress {
                    sub_id: id,
                    history: self.history,
                    seq,
                }
                .encode(version, out.buf());
            }
        }
    }
}

/// One subscription's replay from the log.
struct ReplayTo<'a> {
    log: &'a ChangeLog,
    history: u64,
    counts: &'a mut PushCounts,
    now: Instant,
}

impl ReplayTo<'_> {
    fn run(self, sub: &mut Sub, id: u32, conn: &mut Connection, budget: &mut usize) -> Replay {
        let version = conn.version();
        let log = self.log;
        if sub.gap_after.is_some() || sub.cursor < log.base() {
            if !conn.push_room() {
                return Replay::NoRoom;
            }
            let after = sub.gap_after.take().unwrap_or(sub.cursor);
            let Some(out) = conn.push_out() else {
                return Replay::Caught;
            };
            Push::Gap {
                sub_id: id,
                history: self.history,
                after,
                oldest: log.base() + 1,
                current: log.last(),
            }
            .encode(version, out.buf());
            self.counts.gaps_sent += 1;
            sub.cursor = log.base();
            sub.last_sent = self.now;
        }
        let mut position = log.position_after(sub.cursor);
        while let Some(entry) = log.get(position) {
            if *budget == 0 {
                return Replay::Budget;
            }
            *budget -= 1;
            if entry.key.as_bytes().starts_with(&sub.prefix) {
                if !conn.push_room() {
                    return Replay::NoRoom;
                }
                let Some(out) = conn.push_out() else {
                    return Replay::Caught;
                };
                write_event(out, version, id, entry);
                self.counts.events_sent += 1;
                sub.last_sent = self.now;
            }
            sub.cursor = entry.seq;
            position += 1;
        }
        sub.cursor = sub.cursor.max(log.last());
        sub.behind = false;
        if std::mem::take(&mut sub.progress_owed) {
            if let Some(out) = conn.push_out() {
                Push::Progress {
                    sub_id: id,
                    history: self.history,
                    seq: sub.cursor,
                }
                .encode(version, out.buf());
                sub.last_sent = self.now;
            }
        }
        Replay::Caught
    }
}
