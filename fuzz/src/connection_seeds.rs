//! The `connection` target's seeds: scripts of operations, written with [`Ops`], that
//! reach each lifecycle path (pipelining, limits, fatal errors, lingering, returned
//! runs, authentication), and [`regressions`], the reproducers of fixed bugs.

use super::connection::{Config, Op, TOKEN};
use super::seeds::{connection_input, frame, invalid_streams, requests, Seed};
use bytes::Bytes;
use switchboard_protocol::{Request, RequestId};

/// Builds a list of connection operations.
pub(crate) struct Ops {
    config: Config,
    ops: Vec<Op>,
}

impl Ops {
    /// Configuration: output limit, in-flight limit, idle (×10 ms), linger (×10 ms),
    /// store memory (×256 bytes); zero idle and memory mean none.
    fn new(max_output: u16, max_in_flight: u8, idle: u8, linger: u8, memory: u8) -> Ops {
        let config = Config {
            max_output: max_output - 1,
            max_in_flight: max_in_flight - 1,
            idle,
            linger,
            memory,
        };
        Ops {
            config,
            ops: Vec::new(),
        }
    }
    fn then(&mut self, op: Op) -> &mut Ops {
        self.ops.push(op);
        self
    }
    fn request(&mut self, id: u32, r: &Request) -> &mut Ops {
        self.then(Op::PushRequest(RequestId(id), r.clone()))
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Ops {
        self.then(Op::PushRaw(bytes.to_vec()))
    }
    fn send(&mut self, n: u16) -> &mut Ops {
        self.then(Op::Send(n))
    }
    fn execute(&mut self, jobs: u8, batched: bool) -> &mut Ops {
        self.then(Op::Execute { jobs, batched })
    }
    fn drain(&mut self, n: u16) -> &mut Ops {
        self.then(Op::Drain(n))
    }
    fn advance(&mut self, ms: u16) -> &mut Ops {
        self.then(Op::Advance(ms))
    }
    fn done(&mut self) -> Vec<u8> {
        connection_input(self.config, &std::mem::take(&mut self.ops))
    }
}

pub(crate) fn connection_seeds(out: &mut Vec<Seed>) {
    let mut add = |name: &str, bytes: Vec<u8>| out.push(("connection", name.into(), bytes));
    let reqs = requests();

    let mut o = Ops::new(4096, 8, 0, 10, 0);
    for (i, r) in reqs.iter().enumerate() {
        o.request(i as u32, r);
    }
    add("every_opcode", o.send(0).execute(0, false).drain(0).done());

    let mut o = Ops::new(4096, 4, 0, 10, 0);
    for i in 0..6 {
        o.request(i, &Request::Get { key: "k".into() });
    }
    o.send(5)
        .send(7)
        .send(0)
        .execute(2, true)
        .drain(30)
        .execute(0, false);
    add("pipelined_split_in_flight_limit", o.drain(0).done());

    // A client that never reads: many small requests for one large value, more of
    // them buffered than the in-flight limit lets out at once.
    let mut o = Ops::new(64, 2, 0, 10, 0);
    o.request(
        1,
        &Request::Put {
            key: "big".into(),
            value: Bytes::from(vec![7; 1000]),
            ttl_ms: 0,
        },
    );
    o.send(0).execute(0, false).drain(0);
    for i in 2..12 {
        o.request(i, &Request::Get { key: "big".into() });
    }
    o.send(0)
        .execute(0, false)
        .execute(0, true)
        .execute(0, false);
    add("slow_reader", o.execute(0, false).drain(100).done());

    let mut o = Ops::new(4096, 8, 0, 10, 0);
    let (_, stream) = invalid_streams()
        .into_iter()
        .find(|(n, _)| *n == "pipelined_then_short")
        .expect("seed exists");
    o.raw(&stream)
        .send(0)
        .execute(0, false)
        .drain(0)
        .advance(200);
    add("fatal_error_then_linger", o.done());

    let mut o = Ops::new(4096, 8, 0, 10, 0);
    o.request(1, &reqs[3])
        .request(2, &reqs[3])
        .send(20)
        .then(Op::PeerClosed);
    add("peer_closed_mid_frame", o.execute(0, false).drain(0).done());

    let mut o = Ops::new(4096, 8, 5, 10, 0);
    o.request(1, &reqs[1])
        .send(0)
        .execute(0, false)
        .drain(0)
        .advance(40);
    add("idle_timeout", o.advance(20).advance(200).done());

    let mut o = Ops::new(4096, 8, 0, 50, 0);
    o.request(1, &reqs[4])
        .request(2, &reqs[3])
        .send(0)
        .then(Op::Shutdown);
    add(
        "shutdown_with_pending",
        o.execute(1, false).then(Op::Reset { io: false }).done(),
    );

    let mut o = Ops::new(4096, 8, 0, 10, 1);
    o.request(1, &reqs[0]).request(2, &reqs[0]);
    o.request(
        3,
        &Request::Put {
            key: "k".into(),
            value: Bytes::from(vec![1; 600]),
            ttl_ms: 5,
        },
    );
    o.request(
        4,
        &Request::Put {
            key: "k".into(),
            value: Bytes::from(vec![1; 600]),
            ttl_ms: 0,
        },
    );
    o.send(0).execute(0, true).drain(0);
    add("hello_twice_ttl_memory_limit", o.done());

    let mut o = Ops::new(4096, 8, 0, 10, 0);
    let mut bad = frame(&reqs[3], 1);
    bad[4] = 2;
    o.raw(&bad)
        .send(3)
        .send(0)
        .then(Op::Timeout)
        .execute(0, false);
    add(
        "bad_version_in_pieces",
        o.drain(0).then(Op::PeerClosed).done(),
    );

    // The server stops executing with a run in flight, jobs held and frames buffered.
    let mut o = Ops::new(4096, 2, 0, 10, 0);
    for i in 0..5 {
        o.request(i, &Request::Get { key: "k".into() });
    }
    o.raw(&frame(&reqs[3], 9)[..6]).send(0).execute(1, false);
    o.then(Op::Return { cancelled: false })
        .then(Op::Cancel)
        .execute(0, true);
    add("cancel_with_held_and_buffered", o.drain(0).done());

    // A client holding the most memory is evicted while a worker runs its request.
    let mut o = Ops::new(3000, 8, 0, 10, 0);
    o.request(
        1,
        &Request::Put {
            key: "big".into(),
            value: Bytes::from(vec![7; 1500]),
            ttl_ms: 0,
        },
    );
    for i in 2..8 {
        o.request(i, &Request::Get { key: "big".into() });
    }
    o.send(0).execute(0, true).execute(0, false);
    o.then(Op::Evict).execute(0, true);
    add("evict_with_run_in_flight", o.drain(0).advance(500).done());

    // An executor hands a run back unstarted; it goes out again, first.
    let mut o = Ops::new(4096, 4, 0, 10, 0);
    for i in 0..6 {
        o.request(i, &reqs[3]);
    }
    o.send(0)
        .then(Op::Return { cancelled: false })
        .execute(2, true);
    add(
        "returned_run_goes_out_again",
        o.execute(0, false).drain(0).done(),
    );

    // Authentication (the top bit of the in-flight draw): the right token, then a
    // request; a wrong one with a request pipelined behind it; and silence past the
    // deadline.
    let hello = |token: &[u8]| Request::Hello {
        max_version: 1,
        features: 0,
        token: Bytes::copy_from_slice(token),
    };
    let mut o = Ops::new(4096, 0x88, 0, 10, 0);
    o.request(1, &hello(TOKEN)).request(2, &reqs[3]);
    add(
        "auth_right_token",
        o.send(0).execute(0, false).drain(0).done(),
    );
    let mut o = Ops::new(4096, 0x88, 0, 10, 0);
    o.request(1, &hello(b"wrong")).request(2, &reqs[3]);
    add(
        "auth_wrong_token",
        o.send(0).execute(0, false).drain(0).advance(200).done(),
    );
    let mut o = Ops::new(4096, 0x88, 0, 10, 0);
    o.request(1, &hello(TOKEN)).send(5);
    add("auth_deadline", o.advance(2000).drain(0).done());
}

/// The reproducers of fixed bugs, for `fuzz/regressions/<target>/`: each failed its
/// target on the code before its fix.
pub fn regressions() -> Vec<Seed> {
    let mut out = Vec::new();
    // Once closing begins the close reason is fixed: a reset during a shutdown's
    // linger used to replace it.
    let mut o = Ops::new(2049, 12, 97, 8, 59);
    o.then(Op::Shutdown).then(Op::Reset { io: false });
    out.push((
        "connection",
        "reset_while_closing_keeps_reason".into(),
        o.done(),
    ));
    // Frames held back by the in-flight limit used to be decoded once a job finished,
    // even with its large answer still unread past `max_output`.
    let mut o = Ops::new(214, 1, 0, 10, 0);
    for id in 1..4 {
        o.request(id, &Request::Stats);
    }
    o.send(0).execute(0, false);
    out.push((
        "connection",
        "decoding_pauses_at_the_output_limit".into(),
        o.done(),
    ));
    // An idle deadline that passed while answers were unread made the timer fire
    // without effect and re-arm at the same past deadline: the reactor spun on it.
    let mut o = Ops::new(4096, 8, 5, 10, 0);
    o.request(
        1,
        &Request::Put {
            key: "big".into(),
            value: Bytes::from(vec![7; 1500]),
            ttl_ms: 0,
        },
    );
    o.request(2, &Request::Get { key: "big".into() })
        .request(3, &Request::Get { key: "big".into() });
    o.send(0).execute(0, false).drain(10).advance(100);
    out.push((
        "connection",
        "due_timer_with_unread_answers_makes_progress".into(),
        o.done(),
    ));
    // A run's answers went on past the output limit: every decoded job ran, so a
    // client that never read held the answers to its whole pipeline.
    let mut o = Ops::new(2000, 16, 0, 10, 0);
    o.request(
        1,
        &Request::Put {
            key: "big".into(),
            value: Bytes::from(vec![7; 1500]),
            ttl_ms: 0,
        },
    );
    o.send(0).execute(0, false).drain(0);
    for i in 2..14 {
        o.request(i, &Request::Get { key: "big".into() });
    }
    o.send(0).execute(0, true);
    out.push(("connection", "a_run_stops_at_its_credit".into(), o.done()));
    // A second eviction while the first one's error frame was half written queued a
    // second fatal frame after it.
    let mut o = Ops::new(4096, 6, 0, 10, 0);
    o.then(Op::Evict).drain(30).then(Op::Evict);
    out.push(("connection", "evicted_once".into(), o.done()));
    // Evicting a connection closing for a protocol error, its error frame half
    // written, queued a second fatal frame after it.
    let mut o = Ops::new(4096, 8, 0, 10, 0);
    let mut bad = frame(&Request::Get { key: "k".into() }, 1);
    bad[4] = 2;
    o.raw(&bad)
        .send(0)
        .execute(0, false)
        .drain(1)
        .then(Op::Evict);
    out.push((
        "connection",
        "only_open_connections_are_evicted".into(),
        o.done(),
    ));
    out
}
