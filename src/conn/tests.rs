//! The connection state machine driven directly: no socket, no thread, virtual time.

use super::*;
use crate::exec::Context;
use crate::job::ConnId;
use crate::protocol::{RequestId, Response, ResponseBody};

/// A connection plus an inline executor and a virtual clock.
struct ConnHarness {
    conn: Connection,
    ctx: Context,
    now: Instant,
    /// The run handed out and not yet executed.
    jobs: Vec<Job>,
    wire: BytesMut,
}

fn limits() -> ConnLimits {
    ConnLimits {
        protocol: Limits::default(),
        max_output: 64 << 10,
        max_in_flight: 8,
        idle_timeout: Some(Duration::from_secs(30)),
        linger: Duration::from_secs(2),
        closing_timeout: Duration::from_secs(10),
        frame_timeout: Some(Duration::from_secs(10)),
        write_timeout: Some(Duration::from_secs(60)),
        auth: None,
        auth_timeout: Duration::from_secs(5),
    }
}

impl ConnHarness {
    fn new(limits: ConnLimits) -> ConnHarness {
        let now = Instant::now();
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        ConnHarness {
            ctx: Context::new(limits.protocol, 0, 0),
            conn: Connection::new(id, limits, now),
            now,
            jobs: Vec::new(),
            wire: BytesMut::new(),
        }
    }

    /// Delivers bytes and takes the next run if one can go out; returns its size.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        self.conn.feed(self.now, bytes, &mut self.jobs)
    }

    /// Executes the run handed out, as the reactor would with its output credit;
    /// jobs that do not fit the credit go back to the connection. Returns how many ran.
    fn execute(&mut self) -> usize {
        let mut batch = crate::exec::Batch {
            jobs: std::mem::take(&mut self.jobs),
            runs: Vec::new(),
        };
        crate::exec::run_on(
            &self.ctx,
            &mut self.conn,
            &mut batch,
            self.now,
            &mut crate::exec::Budget::UNLIMITED.clone(),
            &mut crate::stats::Tally::default(),
            &mut Vec::new(),
        )
    }

    /// Takes the next run, if one may go out.
    fn poll(&mut self) -> usize {
        self.conn.poll_jobs(&mut self.jobs)
    }

    /// Takes everything the connection wants to write.
    fn drain_output(&mut self) -> Vec<Response> {
        while self.conn.wants_write() {
            let n = self.conn.poll_transmit().len();
            self.wire.extend_from_slice(self.conn.poll_transmit());
            self.conn.advance_transmit(self.now, n);
        }
        let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut self.wire).unwrap() {
            out.push(Response::decode(&frame).unwrap());
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
            self.conn.handle_timeout(self.now);
        }
    }
}

fn encode(request: Request, id: u32) -> BytesMut {
    let mut b = BytesMut::new();
    request.encode(RequestId(id), &mut b);
    b
}

fn get(key: &str, id: u32) -> BytesMut {
    encode(
        Request::Get {
            key: key.to_string().into(),
        },
        id,
    )
}

#[test]
fn frames_split_anywhere_give_the_same_jobs() {
    let mut stream = BytesMut::new();
    for i in 0..5 {
        stream.extend_from_slice(&get(&format!("k{i}"), i));
    }
    for split in 1..stream.len() {
        let mut h = ConnHarness::new(limits());
        let mut ids = Vec::new();
        for part in [&stream[..split], &stream[split..]] {
            h.feed(part);
            ids.extend(h.jobs.iter().map(|j| j.id.0));
            h.execute();
        }
        assert_eq!(ids, vec![0, 1, 2, 3, 4], "split at {split}");
        assert_eq!(h.conn.buffered_input(), 0);
    }
}

#[test]
fn in_flight_limit_pauses_decoding_until_answers_arrive() {
    let mut h = ConnHarness::new(limits());
    let mut stream = BytesMut::new();
    for i in 0..20 {
        stream.extend_from_slice(&get("k", i));
    }
    assert_eq!(h.feed(&stream), 8);
    assert_eq!(h.poll(), 0, "one run at a time");
    assert!(!h.conn.wants_decode());
    h.execute();
    assert!(
        h.conn.wants_decode(),
        "the rest is decodable without new input"
    );
    assert_eq!(h.poll(), 8);
    h.execute();
    assert_eq!(h.poll(), 4);
    h.execute();
    let ids: Vec<u32> = h.drain_output().iter().map(|r| r.request_id.0).collect();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
}

#[test]
fn output_past_the_limit_stops_reading_until_drained() {
    let mut h = ConnHarness::new(limits());
    h.ctx.store.put(b"big", &[7; 20_000]).unwrap();
    for i in 0..4 {
        h.feed(&get("big", i));
        h.execute();
    }
    assert!(h.conn.pending_output() > 64 << 10);
    assert!(!h.conn.wants_read());
    assert_eq!(h.drain_output().len(), 4);
    assert!(h.conn.wants_read());
}

#[test]
fn a_run_stops_at_its_credit_so_output_is_the_limit_plus_one_answer() {
    // A peer that pipelines many requests for a large value and never reads: however
    // many are decoded, execution stops once the answers reach the output limit.
    let mut l = limits();
    l.max_in_flight = 64;
    let mut h = ConnHarness::new(l.clone());
    let value = 20_000;
    h.ctx.store.put(b"big", &vec![7; value]).unwrap();
    let mut stream = BytesMut::new();
    for i in 0..40 {
        stream.extend_from_slice(&get("big", i));
    }
    assert_eq!(h.feed(&stream), 40);
    let ran = h.execute();
    let pending = h.conn.pending_output();
    assert_eq!(ran, 4, "the fourth answer crosses 64 KiB");
    assert!(pending >= l.max_output && pending < l.max_output + value + 100);
    assert_eq!(h.conn.held(), 36, "the rest is held, in order");
    assert!(!h.conn.wants_decode(), "held until output drains");
    assert!(!h.conn.wants_read());
    // Draining lifts the limit: the held jobs run with no new input, in order.
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(h.drain_output().iter().map(|r| r.request_id.0));
        if ids.len() == 40 {
            break;
        }
        assert!(h.conn.wants_decode());
        h.poll();
        h.execute();
        assert!(h.conn.pending_output() < l.max_output + value + 100);
    }
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    assert!(!h.conn.wants_decode(), "nothing left to decode");
}

#[test]
fn decoded_requests_are_bounded_in_bytes_as_well_as_count() {
    let mut l = limits();
    l.max_in_flight = 256;
    let mut h = ConnHarness::new(l);
    let put = |i: u32| {
        encode(
            Request::Put {
                key: format!("k{i}").into(),
                value: vec![1u8; 30_000].into(),
                ttl_ms: 0,
            },
            i,
        )
    };
    let mut stream = BytesMut::new();
    for i in 0..6 {
        stream.extend_from_slice(&put(i));
    }
    // 64 KiB of requests per run: the third PUT passes it and ends the run.
    assert_eq!(h.feed(&stream), 3);
    assert!(h.conn.memory() >= 90_000);
    h.execute();
    assert_eq!(h.poll(), 3);
}

#[test]
fn jobs_given_back_go_out_again_first_or_are_refused_when_cancelled() {
    let mut h = ConnHarness::new(limits());
    let mut stream = BytesMut::new();
    for i in 0..3 {
        stream.extend_from_slice(&get("k", i));
    }
    h.feed(&stream);
    // An executor hands all three back unstarted: held, then handed out again.
    let run = std::mem::take(&mut h.jobs);
    h.conn.handle_unrun(&mut run.into_iter(), false);
    assert_eq!(h.conn.in_flight(), 0);
    assert_eq!(h.conn.held(), 3);
    h.feed(&get("k", 3));
    let ids: Vec<u32> = h.jobs.iter().map(|j| j.id.0).collect();
    assert_eq!(ids, [0, 1, 2, 3], "held jobs first, then the new frame");

    // The server stops executing: what comes back is answered SHUTTING_DOWN.
    let run = std::mem::take(&mut h.jobs);
    h.conn.handle_unrun(&mut run.into_iter(), true);
    let out = h.drain_output();
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|r| matches!(
        r.body,
        ResponseBody::Error {
            status: Status::SHUTTING_DOWN,
            ..
        }
    )));
}

#[test]
fn cancelling_answers_held_jobs_and_buffered_frames_then_closes() {
    let mut l = limits();
    l.max_in_flight = 2;
    let mut h = ConnHarness::new(l);
    let mut stream = BytesMut::new();
    for i in 0..5 {
        stream.extend_from_slice(&get("k", i));
    }
    stream.extend_from_slice(&get("k", 5)[..4]); // and a partial frame
    assert_eq!(h.feed(&stream), 2);
    h.execute();
    h.conn.handle_cancel(h.now);
    assert_eq!(h.poll(), 0, "nothing runs after a cancel");
    let out = h.drain_output();
    let ids: Vec<u32> = out.iter().map(|r| r.request_id.0).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert!(matches!(out[0].body, ResponseBody::NotFound));
    for r in &out[2..] {
        assert!(matches!(
            r.body,
            ResponseBody::Error {
                status: Status::SHUTTING_DOWN,
                ..
            }
        ));
    }
    assert!(h.conn.poll_shutdown(h.now));
    assert_eq!(h.conn.close_reason(), Some(CloseReason::Shutdown));
}

#[test]
fn eviction_replaces_pending_output_with_one_error_frame() {
    let mut h = ConnHarness::new(limits());
    h.ctx.store.put(b"big", &[7; 20_000]).unwrap();
    for i in 0..3 {
        h.feed(&get("big", i));
        h.execute();
    }
    h.feed(&get("big", 9));
    assert_eq!(h.jobs.len(), 1, "a run in flight");
    h.conn.handle_evict(h.now);
    assert!(h.conn.memory() < 1024, "{} bytes left", h.conn.memory());
    h.execute(); // its answer arrives and is dropped
    let out = h.drain_output();
    assert_eq!(out.len(), 1);
    assert!(matches!(
        out[0].body,
        ResponseBody::Error {
            status: Status::CLIENT_MEMORY_LIMIT,
            ..
        }
    ));
    assert!(h.conn.poll_shutdown(h.now));
    assert_eq!(h.conn.close_reason(), Some(CloseReason::ClientMemoryLimit));
}

#[test]
fn fatal_error_comes_after_earlier_answers_then_lingers_and_closes() {
    let mut h = ConnHarness::new(limits());
    let mut bytes = get("k", 1);
    bytes.extend_from_slice(&[0, 0, 0, 2, 0xff, 0xff]); // declared length 2 < header
    bytes.extend_from_slice(&get("k", 3)); // never decoded
    h.feed(&bytes);
    assert_eq!(h.jobs.len(), 2);
    assert_eq!(
        h.conn.state(),
        State::Closing(CloseReason::ProtocolViolation(Status::MALFORMED_FRAME))
    );
    assert!(!h.conn.wants_read());
    assert!(!h.conn.poll_shutdown(h.now), "answers still owed");
    h.execute();
    let out = h.drain_output();
    assert_eq!(out.len(), 2);
    assert!(matches!(out[0].body, ResponseBody::NotFound));
    assert!(matches!(
        out[1].body,
        ResponseBody::Error {
            status: Status::MALFORMED_FRAME,
            ..
        }
    ));
    assert!(h.conn.poll_shutdown(h.now));
    // Lingering discards input and ends at the deadline (or at the peer's EOF).
    h.feed(&get("k", 4));
    assert!(h.jobs.is_empty());
    h.advance(Duration::from_secs(1));
    assert!(!h.conn.is_closed());
    h.advance(Duration::from_secs(1));
    assert!(h.conn.is_closed());
}

#[test]
fn closing_is_sticky() {
    let mut h = ConnHarness::new(limits());
    h.feed(&[0, 0, 0, 1]);
    let reason = h.conn.close_reason();
    h.conn.handle_peer_closed();
    h.conn.handle_shutdown();
    h.feed(&get("k", 2));
    assert_eq!(h.conn.close_reason(), reason);
}

#[test]
fn a_reset_while_closing_keeps_the_close_reason() {
    let mut h = ConnHarness::new(limits());
    h.conn.handle_input(h.now, &get("k", 1));
    h.conn.handle_shutdown();
    h.poll();
    assert_eq!(h.conn.close_reason(), Some(CloseReason::Shutdown));
    h.conn.handle_reset(CloseReason::Reset);
    assert_eq!(h.conn.state(), State::Closed(CloseReason::Shutdown));

    // Lingering after a protocol error, then the peer resets: still that error.
    let mut h = ConnHarness::new(limits());
    h.feed(&[0, 0, 0, 1]);
    h.execute();
    h.drain_output();
    assert!(h.conn.poll_shutdown(h.now));
    h.conn.handle_reset(CloseReason::Reset);
    let violation = CloseReason::ProtocolViolation(Status::MALFORMED_FRAME);
    assert_eq!(h.conn.state(), State::Closed(violation));

    // An open connection takes the reset's reason.
    let mut h = ConnHarness::new(limits());
    h.conn.handle_reset(CloseReason::Io);
    assert_eq!(h.conn.state(), State::Closed(CloseReason::Io));
}

#[test]
fn idle_connections_close_after_the_timeout_in_virtual_time() {
    let mut h = ConnHarness::new(limits());
    h.advance(Duration::from_secs(20));
    h.feed(&get("k", 1));
    h.execute();
    h.drain_output();
    h.advance(Duration::from_secs(20));
    assert_eq!(
        h.conn.state(),
        State::Open,
        "activity resets the idle clock"
    );
    h.advance(Duration::from_secs(11));
    assert_eq!(h.conn.state(), State::Closing(CloseReason::IdleTimeout));
    assert!(h.conn.poll_shutdown(h.now));
}

#[test]
fn held_answers_wait_without_reordering_and_without_counting_as_idle() {
    let mut h = ConnHarness::new(limits());
    h.feed(&get("k", 1));
    h.execute();
    h.conn.hold_output_until(5);
    h.feed(&get("k", 2));
    h.execute();
    // The first answer may go; the second waits for sequence 5.
    assert_eq!(h.drain_output().len(), 1);
    assert!(!h.conn.wants_write());
    assert_eq!(h.conn.poll_timeout(), None, "the server's turn: not idle");
    h.feed(&get("k", 3));
    h.execute();
    assert!(!h.conn.wants_write(), "behind the held answer");
    h.conn.handle_released(5);
    let ids: Vec<u32> = h.drain_output().iter().map(|r| r.request_id.0).collect();
    assert_eq!(ids, [2, 3]);
    assert!(h.conn.poll_timeout().is_some());
}

#[test]
fn a_run_in_flight_suspends_the_idle_timeout() {
    let mut h = ConnHarness::new(limits());
    h.feed(&get("k", 1));
    assert_eq!(h.conn.poll_timeout(), None, "the server's turn: not idle");
    h.now += Duration::from_secs(100);
    h.execute();
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "the answer's arrival restarts the clock"
    );
}

#[test]
fn unread_answers_past_the_idle_timeout_close_at_once() {
    let mut h = ConnHarness::new(limits());
    h.feed(&get("k", 1));
    h.execute();
    let sent = h.conn.pending_output();
    // The socket takes part of it, then nothing for the whole timeout.
    h.conn.advance_transmit(h.now, sent / 2);
    h.advance(Duration::from_secs(29));
    assert_eq!(h.conn.state(), State::Open, "taking bytes is activity");
    h.advance(Duration::from_secs(2));
    assert_eq!(h.conn.state(), State::Closed(CloseReason::IdleTimeout));
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn a_closing_connection_whose_client_takes_nothing_is_dropped() {
    let mut l = limits();
    l.idle_timeout = None;
    let mut h = ConnHarness::new(l);
    h.feed(&get("k", 1));
    h.execute();
    h.conn.handle_shutdown();
    h.poll();
    assert_eq!(h.conn.state(), State::Closing(CloseReason::Shutdown));
    h.advance(Duration::from_secs(9));
    assert!(!h.conn.is_closed());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.conn.state(), State::Closed(CloseReason::Shutdown));
}

/// The property the reactor's timer loop relies on: whatever the state, handling the
/// timeouts due at a deadline leaves no deadline at or before it.
#[test]
fn handling_a_due_timeout_never_leaves_a_deadline_in_the_past() {
    let mut h = ConnHarness::new(limits());
    h.ctx.store.put(b"big", &[7; 20_000]).unwrap();
    let mut stream = BytesMut::new();
    for i in 0..20 {
        stream.extend_from_slice(&get("big", i));
    }
    h.feed(&stream);
    h.execute();
    for step in 0..1000 {
        let Some(at) = h.conn.poll_timeout() else {
            break;
        };
        assert!(step < 10, "still armed after {step} timeouts");
        h.now = h.now.max(at);
        let before = h.conn.state();
        h.conn.handle_timeout(h.now);
        assert_ne!(h.conn.state(), before, "a due timer changed nothing");
        assert!(h.conn.poll_timeout().is_none_or(|t| t > h.now));
        let _ = h.conn.poll_shutdown(h.now);
    }
    assert!(h.conn.is_closed());
}

#[test]
fn peer_eof_answers_what_was_read_then_closes_without_lingering() {
    let mut h = ConnHarness::new(limits());
    let mut bytes = get("a", 1);
    bytes.extend_from_slice(&get("b", 2)[..5]); // half a frame
    h.feed(&bytes);
    h.conn.handle_peer_closed();
    h.execute();
    h.poll();
    assert_eq!(h.conn.state(), State::Closing(CloseReason::PeerClosed));
    h.execute();
    assert_eq!(h.drain_output().len(), 1);
    assert!(!h.conn.poll_shutdown(h.now));
    assert!(h.conn.is_closed());
}

#[test]
fn hello_is_only_allowed_first_and_ttl_needs_the_feature() {
    let mut h = ConnHarness::new(limits());
    let hello = Request::Hello {
        max_version: 200,
        features: u32::MAX,
        token: "".into(),
    };
    h.conn.handle_input(h.now, &encode(hello.clone(), 1));
    h.conn.handle_input(h.now, &encode(hello, 2));
    h.feed(&encode(
        Request::Put {
            key: "k".into(),
            value: "v".into(),
            ttl_ms: 5,
        },
        3,
    ));
    h.execute();
    let out = h.drain_output();
    match &out[0].body {
        ResponseBody::Hello(reply) => {
            assert_eq!((reply.version, reply.features), (1, features::PUSH))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        out[1].body,
        ResponseBody::Error {
            status: Status::BAD_REQUEST,
            ..
        }
    ));
    assert!(matches!(
        out[2].body,
        ResponseBody::Error {
            status: Status::UNSUPPORTED,
            ..
        }
    ));
    assert_eq!(h.conn.state(), State::Open);
}

#[test]
fn subscribing_needs_the_push_feature() {
    let mut h = ConnHarness::new(limits());
    let subscribe = Request::Subscribe {
        prefix: "k".into(),
        resume: None,
        progress_ms: 0,
    };
    h.conn.handle_input(h.now, &encode(subscribe.clone(), 1));
    h.conn
        .handle_input(h.now, &encode(Request::Unsubscribe { sub_id: 1 }, 2));
    h.feed(&encode(
        Request::Publish {
            subject: "k".into(),
            payload: "hi".into(),
        },
        3,
    ));
    h.execute();
    let out = h.drain_output();
    for answer in &out[..2] {
        assert!(
            matches!(
                answer.body,
                ResponseBody::Error {
                    status: Status::UNSUPPORTED,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    assert_eq!(out[2].body, ResponseBody::Published { receivers: 0 });
}

#[test]
fn buffered_input_never_exceeds_the_frame_limit_plus_a_read() {
    let mut l = limits();
    l.protocol = Limits::with_max_frame(Limits::MIN_MAX_FRAME);
    let mut h = ConnHarness::new(l.clone());
    // A frame declaring the maximum size, sent in pieces: input grows to the frame
    // and no further, and reading stops once a frame limit's worth is buffered.
    let max = l.protocol.max_frame as usize;
    let mut bytes = (max as u32 - 4).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, 0x02, 0, 0, 0, 0, 0, 1]);
    bytes.resize(max - 1, 0);
    h.feed(&bytes);
    assert!(h.conn.wants_read());
    h.feed(&[0]);
    assert_eq!(h.jobs.len(), 1, "the whole frame decoded");
    assert_eq!(h.conn.buffered_input(), 0);
}

#[test]
fn a_frame_trickled_past_the_frame_timeout_closes_the_connection() {
    let mut h = ConnHarness::new(limits());
    let start = h.now;
    let get = encode(Request::Get { key: "k".into() }, 1);
    // Half a frame: the clock starts at its first byte.
    h.feed(&get[..5]);
    assert_eq!(h.conn.poll_timeout(), Some(start + Duration::from_secs(10)));
    // More bytes, still not a whole frame: the deadline does not move.
    h.now = start + Duration::from_secs(6);
    h.feed(&get[5..8]);
    assert_eq!(h.conn.poll_timeout(), Some(start + Duration::from_secs(10)));
    h.now = start + Duration::from_secs(10);
    h.conn.handle_timeout(h.now);
    assert_eq!(h.conn.state(), State::Closing(CloseReason::FrameTimeout));
    assert_eq!(h.conn.buffered_input(), 0, "the partial frame is dropped");
    assert!(!h.conn.wants_read());

    // A frame that completes in time clears the clock.
    let mut h = ConnHarness::new(limits());
    h.feed(&get[..5]);
    h.feed(&get[5..]);
    h.execute();
    assert_eq!(h.drain_output().len(), 1);
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "only the idle timer is left"
    );
}

#[test]
fn answers_left_untaken_past_the_write_timeout_close_the_connection() {
    // No idle timeout (the default): the write timeout alone judges a client that
    // does not read.
    let mut h = ConnHarness::new(ConnLimits {
        idle_timeout: None,
        ..limits()
    });
    let start = h.now;
    h.feed(&encode(
        Request::Ping {
            payload: "x".into(),
        },
        1,
    ));
    h.execute();
    // Owed and untaken: the write timer runs from the answer.
    assert_eq!(h.conn.poll_timeout(), Some(start + Duration::from_secs(60)));
    assert_eq!(
        h.conn.deadline(Timer::Write),
        Some(start + Duration::from_secs(60))
    );
    // The client takes a byte: the clock restarts.
    h.now = start + Duration::from_secs(50);
    h.conn.advance_transmit(h.now, 1);
    assert_eq!(
        h.conn.deadline(Timer::Write),
        Some(start + Duration::from_secs(110))
    );
    // A subscriber's pending output is not this timer's business.
    h.conn.set_subscribed(true);
    assert_eq!(h.conn.deadline(Timer::Write), None);
    h.conn.set_subscribed(false);
    h.now = start + Duration::from_secs(109);
    h.conn.handle_timeout(h.now);
    assert_eq!(h.conn.state(), State::Open, "not yet");
    h.now = start + Duration::from_secs(110);
    h.conn.handle_timeout(h.now);
    assert_eq!(h.conn.state(), State::Closed(CloseReason::WriteTimeout));
}
