//! The connection state machine driven directly: no socket, no thread, virtual time.

use super::*;
use crate::command::{apply, Context};
use crate::job::ConnId;
use crate::protocol::{RequestId, Response, ResponseBody};

/// A connection plus an inline executor and a virtual clock.
struct ConnHarness {
    conn: Connection,
    ctx: Context,
    now: Instant,
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
            conn: Connection::new(id, limits, now),
            ctx: Context::new(limits.protocol, 0, 0),
            now,
            jobs: Vec::new(),
            wire: BytesMut::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> usize {
        self.conn.feed(self.now, bytes, &mut self.jobs)
    }

    /// Executes every queued job and answers the connection, one job at a time.
    fn execute(&mut self) {
        for job in self.jobs.drain(..) {
            self.conn.complete(1, |out| apply(&self.ctx, &job, out));
        }
    }

    /// Takes everything the connection wants to write.
    fn drain_output(&mut self) -> Vec<Response> {
        let n = self.conn.poll_transmit().len();
        self.wire.extend_from_slice(self.conn.poll_transmit());
        self.conn.advance_transmit(n);
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
        h.feed(&stream[..split]);
        h.feed(&stream[split..]);
        let ids: Vec<u32> = h.jobs.iter().map(|j| j.id.0).collect();
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
    assert!(!h.conn.wants_read());
    assert_eq!(h.conn.poll_jobs(&mut h.jobs), 0, "still at the limit");
    h.execute();
    assert_eq!(h.conn.poll_jobs(&mut h.jobs), 8);
    h.execute();
    assert_eq!(h.conn.poll_jobs(&mut h.jobs), 4);
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
    assert!(h.conn.poll_transmit().len() > 64 << 10);
    assert!(!h.conn.wants_read());
    assert_eq!(h.drain_output().len(), 4);
    assert!(h.conn.wants_read());
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
fn peer_eof_answers_what_was_read_then_closes_without_lingering() {
    let mut h = ConnHarness::new(limits());
    let mut bytes = get("a", 1);
    bytes.extend_from_slice(&get("b", 2)[..5]); // half a frame
    h.feed(&bytes);
    h.conn.handle_peer_closed();
    h.conn.poll_jobs(&mut h.jobs);
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
    h.feed(&encode(hello.clone(), 1));
    h.feed(&encode(hello, 2));
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
        ResponseBody::Hello(reply) => assert_eq!((reply.version, reply.features), (1, 0)),
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
fn buffered_input_never_exceeds_the_frame_limit_plus_a_read() {
    let mut l = limits();
    l.protocol = Limits::with_max_frame(Limits::MIN_MAX_FRAME);
    let mut h = ConnHarness::new(l);
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
