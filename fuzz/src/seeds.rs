//! The seed corpus, generated from the codec itself so that it cannot drift from it.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` rewrites
//! `fuzz/corpus/<target>/` from [`all`]. Seeds cover a valid frame of every opcode and
//! response kind, pipelined streams, and each way a stream can be invalid (truncated,
//! oversized length, length under a header, unknown opcode, bad version, bad flags).
//! The connection seeds are scripts of operations that reach each lifecycle path.
//!
//! The `roundtrip` and `connection` inputs are derived `Arbitrary` values, so their
//! seeds are written by [`Writer`], which lays values out the way
//! `arbitrary::Unstructured` reads them back; every such seed is parsed again by its
//! target's own `parse` and compared with the values it was written from, so a change
//! in the types or in `arbitrary` cannot silently turn the seeds into noise.
//! [`regressions`] writes the reproducers of fixed bugs the same way.

use super::connection::{self, Config, Op};
pub use super::connection_seeds::regressions;
use super::roundtrip::{self, Input, Item};
use bytes::{Bytes, BytesMut};
use switchboard_protocol::msg::hello::HelloReply;
use switchboard_protocol::msg::scan::{ScanEntry, ScanPage};
use switchboard_protocol::msg::subscribe::Resume;
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
        Request::Subscribe {
            prefix: "user:".into(),
            resume: Some(Resume {
                from: 7,
                history: 0,
            }),
            progress_ms: 1000,
        },
        Request::Subscribe {
            prefix: Bytes::new(),
            resume: None,
            progress_ms: 0,
        },
        Request::Unsubscribe { sub_id: 1 },
        Request::Publish {
            subject: "chat".into(),
            payload: "hi".into(),
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
                history: 0x5eed,
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
            12,
            Opcode::SUBSCRIBE,
            ResponseBody::Subscribed {
                sub_id: 1,
                history: 0x5eed,
                seq: 9,
            },
        ),
        r(13, Opcode::UNSUBSCRIBE, ResponseBody::Unsubscribed),
        r(
            14,
            Opcode::PUBLISH,
            ResponseBody::Published { receivers: 2 },
        ),
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

pub(crate) fn frame(request: &Request, id: u32) -> Vec<u8> {
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

/// Writes values as `arbitrary::Unstructured` reads them: integers little-endian,
/// `bool` as 0 or 1, an enum's variant as the `u32` the derive maps to its index, each
/// element of a sequence after a continuation byte (1, then 0 to end it), and byte
/// strings as the protocol's and [`values::raw`](super::values::raw) read them: a
/// `u16` length, then the bytes.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Writer {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Writer {
        self.u8(u8::from(v))
    }
    /// Variant `index` of an enum of `count` variants: the derive picks
    /// `(u32 × count) >> 32`, so the smallest `u32` that lands on `index`.
    fn variant(&mut self, index: u64, count: u64) -> &mut Writer {
        let v = (index << 32).div_ceil(count);
        self.u32(u32::try_from(v).expect("index below count"))
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Writer {
        self.u16(u16::try_from(b.len()).expect("seed strings fit a u16 length"));
        self.0.extend_from_slice(b);
        self
    }

    fn request(&mut self, r: &Request) -> &mut Writer {
        let v = |w: &mut Writer, i| {
            w.variant(i, 11);
        };
        match r {
            Request::Hello {
                max_version,
                features,
                token,
            } => {
                v(self, 0);
                self.u8(*max_version).u32(*features).bytes(token)
            }
            Request::Ping { payload } => {
                v(self, 1);
                self.bytes(payload)
            }
            Request::Stats => self.variant(2, 11),
            Request::Get { key } => {
                v(self, 3);
                self.bytes(key)
            }
            Request::Put { key, value, ttl_ms } => {
                v(self, 4);
                self.bytes(key).bytes(value).u32(*ttl_ms)
            }
            Request::Delete { key, expected } => {
                v(self, 5);
                self.bytes(key).u64(*expected)
            }
            Request::Cas {
                key,
                expected,
                value,
                ttl_ms,
            } => {
                v(self, 6);
                self.bytes(key).u64(*expected).bytes(value).u32(*ttl_ms)
            }
            Request::Scan {
                prefix,
                cursor,
                limit,
            } => {
                v(self, 7);
                self.bytes(prefix).bytes(cursor).u16(*limit)
            }
            Request::Subscribe {
                prefix,
                resume,
                progress_ms,
            } => {
                v(self, 8);
                self.bytes(prefix);
                match resume {
                    Some(r) => self.bool(true).u64(r.from).u64(r.history),
                    None => self.bool(false),
                };
                self.u32(*progress_ms)
            }
            Request::Unsubscribe { sub_id } => {
                v(self, 9);
                self.u32(*sub_id)
            }
            Request::Publish { subject, payload } => {
                v(self, 10);
                self.bytes(subject).bytes(payload)
            }
        }
    }

    fn response(&mut self, r: &Response) -> &mut Writer {
        self.u32(r.request_id.0).u8(r.opcode.0);
        let v = |w: &mut Writer, i| {
            w.variant(i, 12);
        };
        match &r.body {
            ResponseBody::Hello(h) => {
                v(self, 0);
                self.u8(h.version)
                    .u32(h.features)
                    .u32(h.max_frame)
                    .u32(h.max_key)
                    .u32(h.max_value)
                    .u64(h.history)
                    .bytes(&h.server)
            }
            ResponseBody::Pong(p) => {
                v(self, 1);
                self.bytes(p)
            }
            ResponseBody::Stats(t) => {
                v(self, 2);
                self.bytes(t)
            }
            ResponseBody::Value { version, value } => {
                v(self, 3);
                self.u64(*version).bytes(value)
            }
            ResponseBody::Written { version } => {
                v(self, 4);
                self.u64(*version)
            }
            ResponseBody::Scan(page) => {
                v(self, 5);
                self.u64(page.seq);
                for e in &page.entries {
                    self.bool(true).bytes(&e.key).u64(e.version).bytes(&e.value);
                }
                self.bool(false).bytes(&page.next_cursor)
            }
            ResponseBody::Subscribed {
                sub_id,
                history,
                seq,
            } => {
                v(self, 6);
                self.u32(*sub_id).u64(*history).u64(*seq)
            }
            ResponseBody::Unsubscribed => self.variant(7, 12),
            ResponseBody::Published { receivers } => {
                v(self, 8);
                self.u32(*receivers)
            }
            ResponseBody::NotFound => self.variant(9, 12),
            ResponseBody::VersionConflict { current } => {
                v(self, 10);
                self.u64(*current)
            }
            ResponseBody::Error { status, message } => {
                v(self, 11);
                self.u8(status.0).bytes(message)
            }
        }
    }

    fn item(&mut self, item: &Item) -> &mut Writer {
        match item {
            Item::Request(id, r) => self.variant(0, 2).u32(id.0).request(r),
            Item::Response {
                canonical,
                response,
            } => self.variant(1, 2).bool(*canonical).response(response),
        }
    }

    fn op(&mut self, op: &Op) -> &mut Writer {
        const VARIANTS: u64 = 13;
        let v = |w: &mut Writer, i| {
            w.variant(i, VARIANTS);
        };
        match op {
            Op::PushRaw(b) => {
                v(self, 0);
                self.bytes(b)
            }
            Op::PushRequest(id, r) => {
                v(self, 1);
                self.u32(id.0).request(r)
            }
            Op::Send(n) => {
                v(self, 2);
                self.u16(*n)
            }
            Op::Execute { jobs, batched } => {
                v(self, 3);
                self.u8(*jobs).bool(*batched)
            }
            Op::Drain(n) => {
                v(self, 4);
                self.u16(*n)
            }
            Op::Advance(ms) => {
                v(self, 5);
                self.u16(*ms)
            }
            Op::PeerClosed => self.variant(6, VARIANTS),
            Op::Shutdown => self.variant(7, VARIANTS),
            Op::Reset { io } => {
                v(self, 8);
                self.bool(*io)
            }
            Op::Timeout => self.variant(9, VARIANTS),
            Op::Return { cancelled } => {
                v(self, 10);
                self.bool(*cancelled)
            }
            Op::Cancel => self.variant(11, VARIANTS),
            Op::Evict => self.variant(12, VARIANTS),
        }
    }
}

/// A `roundtrip` input, checked to read back as `input`.
pub fn roundtrip_input(input: &Input) -> Vec<u8> {
    let mut w = Writer::default();
    w.bool(input.small_frames);
    for item in &input.items {
        w.bool(true).item(item);
    }
    let bytes = w.0;
    assert_eq!(
        &roundtrip::parse(&bytes),
        input,
        "a roundtrip seed reads back"
    );
    bytes
}

/// A `connection` input, checked to read back as `config` and `ops`.
pub fn connection_input(config: Config, ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u16(config.max_output)
        .u8(config.max_in_flight)
        .u8(config.idle)
        .u8(config.linger)
        .u8(config.memory);
    for op in ops {
        w.bool(true).op(op);
    }
    let bytes = w.0;
    assert_eq!(
        connection::parse(&bytes),
        (config, ops.to_vec()),
        "a connection seed reads back"
    );
    bytes
}

fn roundtrip_seeds(out: &mut Vec<Seed>) {
    let items = requests()
        .into_iter()
        .enumerate()
        .map(|(i, r)| Item::Request(RequestId(i as u32), r))
        .collect();
    let input = Input {
        small_frames: true,
        items,
    };
    out.push(("roundtrip", "all_requests".into(), roundtrip_input(&input)));
    let items = responses()
        .into_iter()
        .map(|response| Item::Response {
            canonical: true,
            response,
        })
        .collect();
    let input = Input {
        small_frames: false,
        items,
    };
    out.push(("roundtrip", "all_responses".into(), roundtrip_input(&input)));
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    decode_seeds(&mut out);
    roundtrip_seeds(&mut out);
    super::connection_seeds::connection_seeds(&mut out);
    out
}
