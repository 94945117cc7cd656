//! The seed corpus, generated from the codec itself so that it cannot drift from it.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` rewrites
//! `fuzz/corpus/<target>/` from [`all`]. Seeds cover a valid frame of every opcode and
//! response kind, pipelined streams, and each way a stream can be invalid (truncated,
//! oversized length, length under a header, unknown opcode, bad version, bad flags).
//! The connection seeds are scripts of operations that reach each lifecycle path.

use super::connection::Op;
use super::source::Script;
use super::values::{script_request, script_response};
use bytes::{Bytes, BytesMut};
use switchboard_protocol::msg::hello::HelloReply;
use switchboard_protocol::msg::scan::{ScanEntry, ScanPage};
use switchboard_protocol::{Opcode, Request, RequestId, Response, ResponseBody, Status};

/// One seed: target, file name, contents.
pub type Seed = (&'static str, String, Vec<u8>);

/// One request of every opcode, with small keys and values.
pub fn requests() -> Vec<Request> {
    vec![
        Request::Hello {
            max_version: 1,
            features: 0b11,
            token: "tok".into(),
        },
        Request::Ping {
            payload: "ping".into(),
        },
        Request::Stats,
        Request::Get {
            key: "user:1".into(),
        },
        Request::Put {
            key: "user:1".into(),
            value: "alice".into(),
            ttl_ms: 0,
        },
        Request::Delete {
            key: "user:1".into(),
            expected: 2,
        },
        Request::Cas {
            key: "user:1".into(),
            expected: 0,
            value: "bob".into(),
            ttl_ms: 0,
        },
        Request::Scan {
            prefix: "user:".into(),
            cursor: "user:0".into(),
            limit: 10,
        },
    ]
}

/// One response of every body kind.
pub fn responses() -> Vec<Response> {
    let r = |id, opcode, body| Response {
        request_id: RequestId(id),
        opcode,
        body,
    };
    vec![
        r(
            1,
            Opcode::HELLO,
            ResponseBody::Hello(HelloReply {
                version: 1,
                features: 0,
                max_frame: 1 << 20,
                max_key: 1024,
                max_value: 1 << 19,
                server: "switchboard".into(),
            }),
        ),
        r(2, Opcode::PING, ResponseBody::Pong("ping".into())),
        r(
            3,
            Opcode::STATS,
            ResponseBody::Stats("keys 1\nseq 2\n".into()),
        ),
        r(
            4,
            Opcode::GET,
            ResponseBody::Value {
                version: 2,
                value: "alice".into(),
            },
        ),
        r(5, Opcode::PUT, ResponseBody::Written { version: 3 }),
        r(6, Opcode::DELETE, ResponseBody::Written { version: 4 }),
        r(7, Opcode::CAS, ResponseBody::Written { version: 5 }),
        r(
            8,
            Opcode::SCAN,
            ResponseBody::Scan(ScanPage {
                seq: 9,
                entries: vec![
                    ScanEntry {
                        key: "user:1".into(),
                        version: 2,
                        value: "alice".into(),
                    },
                    ScanEntry {
                        key: "user:2".into(),
                        version: 3,
                        value: Bytes::new(),
                    },
                ],
                next_cursor: "user:2".into(),
            }),
        ),
        r(9, Opcode::GET, ResponseBody::NotFound),
        r(
            10,
            Opcode::CAS,
            ResponseBody::VersionConflict { current: 7 },
        ),
        r(
            11,
            Opcode(0x7f),
            ResponseBody::Error {
                status: Status::UNKNOWN_OPCODE,
                message: "unknown opcode".into(),
            },
        ),
    ]
}

fn frame(request: &Request, id: u32) -> Vec<u8> {
    let mut b = BytesMut::new();
    request.encode(RequestId(id), &mut b);
    b.to_vec()
}

fn response_frame(response: &Response) -> Vec<u8> {
    let mut b = BytesMut::new();
    response.encode(&mut b);
    b.to_vec()
}

fn name(r: &Request) -> String {
    r.opcode().to_string().to_lowercase()
}

/// Streams that break the framing or the header rules, by name.
pub fn invalid_streams() -> Vec<(&'static str, Vec<u8>)> {
    let get = frame(&Request::Get { key: "k".into() }, 1);
    let with = |at: usize, byte: u8| {
        let mut f = get.clone();
        f[at] = byte;
        f
    };
    let mut pipelined_then_short = get.clone();
    pipelined_then_short.extend_from_slice(&[0, 0, 0, 2, 0xff, 0xff]);
    pipelined_then_short.extend_from_slice(&get);
    vec![
        ("truncated", get[..get.len() - 1].to_vec()),
        ("truncated_header", get[..7].to_vec()),
        (
            "oversized_length",
            vec![0xff, 0xff, 0xff, 0xff, 1, 0x10, 0, 0],
        ),
        (
            "length_under_header",
            vec![0, 0, 0, 7, 1, 0x10, 0, 0, 0, 0, 0, 1],
        ),
        ("pipelined_then_short", pipelined_then_short),
        ("unknown_opcode", with(5, 0x7f)),
        ("reserved_opcode", with(5, 0x20)),
        ("bad_version", with(4, 2)),
        ("version_zero", with(4, 0)),
        ("bad_flags", with(6, 0x02)),
        ("push_flag", with(6, 0x01)),
        ("request_status", with(7, 0x10)),
        ("key_length_past_body", with(13, 9)),
    ]
}

fn decode_seeds(out: &mut Vec<Seed>) {
    // [frame limit selector, read size selector, stream...]: 0xff is the default limit.
    let mut add = |name: String, limit: u8, read: u8, stream: &[u8]| {
        let mut bytes = vec![limit, read];
        bytes.extend_from_slice(stream);
        out.push(("decode", name, bytes));
    };
    for (i, r) in requests().iter().enumerate() {
        add(
            format!("request_{}", name(r)),
            0xff,
            0xff,
            &frame(r, i as u32),
        );
    }
    for r in responses() {
        let status = r.body.status().to_string().to_lowercase();
        let opcode = r.opcode.name().unwrap_or("unknown").to_lowercase();
        let name = format!("response_{opcode}_{status}");
        add(name, 0xff, 0xff, &response_frame(&r));
    }
    let pipelined: Vec<u8> = requests()
        .iter()
        .enumerate()
        .flat_map(|(i, r)| frame(r, i as u32))
        .collect();
    add("pipelined_one_byte_reads".into(), 0xff, 0, &pipelined);
    add("pipelined_small_limit".into(), 1, 6, &pipelined);
    for (name, stream) in invalid_streams() {
        add(format!("invalid_{name}"), 0xff, 4, &stream);
    }
}

fn roundtrip_seeds(out: &mut Vec<Seed>) {
    let mut s = Script::new();
    s.u8(0);
    for (i, r) in requests().iter().enumerate() {
        s.u8(0).u32(i as u32);
        script_request(&mut s, r);
    }
    out.push(("roundtrip", "all_requests".into(), s.into_bytes()));
    let mut s = Script::new();
    s.u8(1);
    for r in responses() {
        s.u8(1);
        script_response(&mut s, &r);
    }
    out.push(("roundtrip", "all_responses".into(), s.into_bytes()));
}

/// Writes connection operations.
struct Ops(Script);

impl Ops {
    /// Configuration: output limit, in-flight limit, idle (×10 ms), linger (×10 ms),
    /// store memory (×256 bytes); zero idle and memory mean none.
    fn new(max_output: u16, max_in_flight: u8, idle: u8, linger: u8, memory: u8) -> Ops {
        let mut s = Script::new();
        s.u16(max_output - 1)
            .u8(max_in_flight - 1)
            .u8(idle)
            .u8(linger)
            .u8(memory);
        Ops(s)
    }
    fn op(&mut self, op: Op) -> &mut Script {
        self.0.u8(op as u8)
    }
    fn request(&mut self, id: u32, r: &Request) -> &mut Ops {
        self.op(Op::PushRequest).u32(id);
        script_request(&mut self.0, r);
        self
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Ops {
        self.op(Op::PushRaw).bytes(bytes);
        self
    }
    fn send(&mut self, n: u16) -> &mut Ops {
        self.op(Op::Send).u16(n);
        self
    }
    fn execute(&mut self, k: u8, batched: bool) -> &mut Ops {
        self.op(Op::Execute).u8(k).u8(u8::from(batched));
        self
    }
    fn drain(&mut self, n: u16) -> &mut Ops {
        self.op(Op::Drain).u16(n);
        self
    }
    fn advance(&mut self, ms: u16) -> &mut Ops {
        self.op(Op::Advance).u16(ms);
        self
    }
    fn then(&mut self, op: Op) -> &mut Ops {
        self.op(op);
        self
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0).into_bytes()
    }
}

fn connection_seeds(out: &mut Vec<Seed>) {
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
        o.execute(1, false).then(Op::Reset).done(),
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
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    decode_seeds(&mut out);
    roundtrip_seeds(&mut out);
    connection_seeds(&mut out);
    out
}
