//! Subscribers (pubsub) and watchers (watch): a group of them per thread, on one mio
//! event loop, so a burst of deliveries to many subscribers wakes one thread once
//! rather than one thread each. Each reads and checks every delivery until the
//! sources are done and everything they sent has arrived (or the drain time is up).

use super::wire::{Incoming, Stamp, Wire};
use super::{read_more, Shared, SinkResult, Workload, DRAIN, SUBJECT, TICK, WATCH_PREFIX};
use crate::clock::now_ns;
use crate::dialect::Protocol;
use crate::report::new_histogram;
use bytes::BytesMut;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;

/// One subscriber's connection and what it has seen.
struct Sink {
    stream: mio::net::TcpStream,
    wire: Wire,
    input: BytesMut,
    out: BytesMut,
    r: SinkResult,
    /// Next number expected from each source (pubsub).
    next: Vec<u64>,
    /// The last change sequence received (watch).
    last_seq: u64,
    closed: bool,
}

/// Subscribes every stream of the group, waits for the start, then reads them all on
/// one event loop.
pub(super) fn group(shared: &Shared, streams: Vec<TcpStream>) -> Vec<SinkResult> {
    let poll = Poll::new().expect("an event loop");
    let mut sinks: Vec<Sink> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let (stream, wire, input) = subscribe(shared, stream);
            let _ = stream.set_nonblocking(true);
            let mut stream = mio::net::TcpStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .expect("register a subscriber");
            Sink {
                stream,
                wire,
                input,
                out: BytesMut::new(),
                r: SinkResult {
                    deliveries: 0,
                    latency: new_histogram(),
                    missing: 0,
                    duplicated: 0,
                    out_of_order: 0,
                    announced: 0,
                    disconnected: false,
                    seen: Vec::new(),
                    gaps: Vec::new(),
                },
                next: vec![1; shared.last.len()],
                last_seq: 0,
                closed: false,
            }
        })
        .collect();
    let mut poll = poll;
    let mut events = Events::with_capacity(256);
    shared.start.wait();
    let mut drain_deadline = None;
    loop {
        if shared.sources_done.load(Ordering::SeqCst) {
            let deadline =
                *drain_deadline.get_or_insert_with(|| now_ns() + DRAIN.as_nanos() as u64);
            if sinks.iter().all(|s| s.closed || s.all_in(shared)) || now_ns() > deadline {
                break;
            }
        }
        if poll.poll(&mut events, Some(TICK)).is_err() {
            continue;
        }
        for event in events.iter() {
            if let Some(sink) = sinks.get_mut(event.token().0) {
                sink.on_readable(shared);
            }
        }
    }
    sinks.into_iter().map(|s| s.finish(shared)).collect()
}

/// Sends the subscription and waits (blocking) for its answers: switchboard answers
/// HELLO and SUBSCRIBE, Redis confirms once.
fn subscribe(shared: &Shared, mut stream: TcpStream) -> (TcpStream, Wire, BytesMut) {
    let mut wire = Wire::new(shared.proto).with_token(&shared.token);
    let mut out = BytesMut::new();
    let mut input = BytesMut::with_capacity(256 << 10);
    let prefix = match shared.workload {
        Workload::Watch => WATCH_PREFIX,
        _ => SUBJECT,
    };
    wire.subscribe(&mut out, prefix);
    let mut owed = match (stream.write_all(&out), shared.proto) {
        (Err(_), _) => 0,
        (Ok(()), Protocol::Resp) => 1,
        (Ok(()), _) => 2,
    };
    'confirm: while owed > 0 {
        if read_more(&mut stream, &mut input).is_err() {
            break;
        }
        loop {
            match wire.incoming(&mut input) {
                Ok(Some(Incoming::Other)) => {
                    owed -= 1;
                    if owed == 0 {
                        break 'confirm;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'confirm,
            }
        }
    }
    (stream, wire, input)
}

impl Sink {
    /// Everything the sources sent has arrived.
    fn all_in(&self, shared: &Shared) -> bool {
        let last = |p: usize| shared.last[p].load(Ordering::SeqCst);
        match shared.workload {
            Workload::Watch => (0..self.next.len()).all(|p| self.last_seq >= last(p)),
            _ => (0..self.next.len()).all(|p| self.next[p] > last(p)),
        }
    }

    /// Reads until the socket has nothing more, and checks every delivery.
    fn on_readable(&mut self, shared: &Shared) {
        if self.closed {
            return;
        }
        loop {
            self.input.reserve(64 << 10);
            let start = self.input.len();
            self.input.resize(self.input.capacity(), 0);
            match self.stream.read(&mut self.input[start..]) {
                Ok(0) => {
                    self.input.truncate(start);
                    self.r.disconnected = true;
                    self.closed = true;
                    return;
                }
                Ok(n) => {
                    self.input.truncate(start + n);
                    self.take_frames(shared);
                }
                Err(e) => {
                    self.input.truncate(start);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return,
                        io::ErrorKind::Interrupted => continue,
                        _ => {
                            self.r.disconnected = true;
                            self.closed = true;
                            return;
                        }
                    }
                }
            }
        }
    }

    fn take_frames(&mut self, shared: &Shared) {
        let now = now_ns();
        let window = shared.window.load(Ordering::Relaxed);
        let end = shared.window_end.load(Ordering::Relaxed);
        let r = &mut self.r;
        loop {
            let incoming = match self.wire.incoming(&mut self.input) {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return,
                Err(_) => {
                    r.disconnected = true;
                    self.closed = true;
                    return;
                }
            };
            let payload = match incoming {
                Incoming::Message(payload) => payload,
                Incoming::Event { seq, value } => {
                    if seq <= self.last_seq {
                        if r.seen.binary_search(&seq).is_ok() {
                            r.duplicated += 1;
                        } else {
                            r.out_of_order += 1;
                        }
                        continue;
                    }
                    self.last_seq = seq;
                    r.seen.push(seq);
                    value
                }
                Incoming::Lost(n) => {
                    r.announced += n;
                    continue;
                }
                Incoming::Gap { after, oldest } => {
                    r.announced += oldest.saturating_sub(after + 1);
                    r.gaps.push((after, oldest));
                    self.last_seq = self.last_seq.max(oldest.saturating_sub(1));
                    continue;
                }
                Incoming::Ping => {
                    // A keepalive: any frame answers it. Blocking briefly on a full
                    // socket is acceptable here; it never is in practice.
                    self.wire.ping(&mut self.out);
                    let _ = self.stream.write_all(&self.out);
                    self.out.clear();
                    continue;
                }
                Incoming::Other => continue,
            };
            let Some(stamp) = Stamp::read(&payload) else {
                continue;
            };
            if stamp.sent_ns >= window && stamp.sent_ns < end {
                r.deliveries += 1;
                let _ = r.latency.record(now.saturating_sub(stamp.sent_ns).max(1));
            }
            if shared.workload == Workload::Watch {
                continue;
            }
            let Some(expected) = self.next.get_mut(stamp.source as usize) else {
                continue;
            };
            if stamp.seq == *expected {
                *expected += 1;
            } else if stamp.seq > *expected {
                r.missing += stamp.seq - *expected;
                *expected = stamp.seq + 1;
            } else {
                r.out_of_order += 1;
            }
        }
    }

    /// What this subscriber saw, with what never came counted as missing.
    fn finish(mut self, shared: &Shared) -> SinkResult {
        if shared.workload != Workload::Watch {
            for (p, n) in self.next.iter().enumerate() {
                self.r.missing += shared.last[p].load(Ordering::SeqCst).saturating_sub(n - 1);
            }
            // Messages the server announced as dropped are not silent.
            self.r.missing = self.r.missing.saturating_sub(self.r.announced);
        }
        self.r
    }
}
