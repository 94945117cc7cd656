//! Codec throughput: encoding and decoding every request and response type, and the
//! decoder taking a buffer of many pipelined frames apart.
//!
//! Inputs are built outside the timed section (`iter_batched`), so decode timings
//! are the codec's work and not the cost of refilling a buffer. Keys are named and
//! sized as switchboard-load sends them (16 bytes, 64-byte values by default).
//!
//! ```text
//! cargo bench --bench codec
//! ```

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use switchboard::protocol::msg::hello::HelloReply;
use switchboard::protocol::msg::scan::{ScanEntry, ScanPage};
use switchboard::protocol::{
    Decoder, Frame, Limits, Opcode, Request, RequestId, Response, ResponseBody, Status,
};

const KEY: &[u8] = b"key:000000000042";

fn value(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

fn requests() -> Vec<(&'static str, Request)> {
    let key = Bytes::from_static(KEY);
    vec![
        (
            "hello",
            Request::Hello {
                max_version: 1,
                features: 0,
                token: Bytes::new(),
            },
        ),
        (
            "ping",
            Request::Ping {
                payload: Bytes::new(),
            },
        ),
        ("stats", Request::Stats),
        ("get", Request::Get { key: key.clone() }),
        (
            "put_64",
            Request::Put {
                key: key.clone(),
                value: value(64),
                ttl_ms: 0,
            },
        ),
        (
            "put_4096",
            Request::Put {
                key: key.clone(),
                value: value(4096),
                ttl_ms: 0,
            },
        ),
        (
            "delete",
            Request::Delete {
                key: key.clone(),
                expected: 0,
            },
        ),
        (
            "cas_64",
            Request::Cas {
                key: key.clone(),
                expected: 7,
                value: value(64),
                ttl_ms: 0,
            },
        ),
        (
            "scan",
            Request::Scan {
                prefix: Bytes::from_static(b"key:"),
                cursor: Bytes::new(),
                limit: 100,
            },
        ),
    ]
}

fn responses() -> Vec<(&'static str, Response)> {
    let r = |opcode, body| Response {
        request_id: RequestId(42),
        opcode,
        body,
    };
    let page = ScanPage {
        seq: 99,
        entries: (0..10)
            .map(|i| ScanEntry {
                key: Bytes::from(format!("key:{i:012}")),
                version: i,
                value: value(64),
            })
            .collect(),
        next_cursor: Bytes::from_static(b"key:000000000009"),
    };
    vec![
        (
            "hello",
            r(
                Opcode::HELLO,
                ResponseBody::Hello(HelloReply {
                    version: 1,
                    features: 0,
                    max_frame: Limits::DEFAULT_MAX_FRAME,
                    max_key: Limits::DEFAULT_MAX_KEY,
                    max_value: Limits::default().max_value,
                    history: 0x5eed,
                    server: Bytes::from_static(b"switchboard 0.1.0"),
                }),
            ),
        ),
        ("pong", r(Opcode::PING, ResponseBody::Pong(Bytes::new()))),
        (
            "stats",
            r(
                Opcode::STATS,
                ResponseBody::Stats(Bytes::from_static(
                    b"requests_total 123456\ncmd_get 100000\ncmd_put 23456\n",
                )),
            ),
        ),
        (
            "get_value_64",
            r(
                Opcode::GET,
                ResponseBody::Value {
                    version: 3,
                    value: value(64),
                },
            ),
        ),
        (
            "get_value_4096",
            r(
                Opcode::GET,
                ResponseBody::Value {
                    version: 3,
                    value: value(4096),
                },
            ),
        ),
        ("get_not_found", r(Opcode::GET, ResponseBody::NotFound)),
        (
            "put_written",
            r(Opcode::PUT, ResponseBody::Written { version: 4 }),
        ),
        (
            "cas_conflict",
            r(Opcode::CAS, ResponseBody::VersionConflict { current: 5 }),
        ),
        (
            "error",
            r(
                Opcode::PUT,
                ResponseBody::Error {
                    status: Status::VALUE_TOO_LARGE,
                    message: Bytes::from_static(b"value is over the value limit"),
                },
            ),
        ),
        ("scan_page_10", r(Opcode::SCAN, ResponseBody::Scan(page))),
    ]
}

fn encode_requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_request");
    g.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(8192);
    for (name, req) in requests() {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&req).encode(RequestId(1), &mut buf);
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

fn decode_requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_request");
    g.throughput(Throughput::Elements(1));
    let limits = Limits::default();
    for (name, req) in requests() {
        let mut wire = BytesMut::new();
        req.encode(RequestId(1), &mut wire);
        g.bench_function(name, |b| {
            let mut decoder = Decoder::new(limits.max_frame);
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let frame = decoder.decode(&mut buf).unwrap().unwrap();
                    black_box(Request::decode(&frame, &limits).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn encode_responses(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_response");
    g.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(8192);
    for (name, resp) in responses() {
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                black_box(&resp).encode(&mut buf);
                black_box(buf.len())
            })
        });
    }
    g.finish();
}

fn decode_responses(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_response");
    g.throughput(Throughput::Elements(1));
    for (name, resp) in responses() {
        let mut wire = BytesMut::new();
        resp.encode(&mut wire);
        g.bench_function(name, |b| {
            let mut decoder = Decoder::new(Limits::default().max_frame);
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let frame = decoder.decode(&mut buf).unwrap().unwrap();
                    black_box(Response::decode(&frame).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A read buffer full of pipelined requests (9 GET : 1 PUT, as the default mix),
/// taken apart frame by frame the way a server's read loop does.
fn decode_pipelined(c: &mut Criterion) {
    const FRAMES: usize = 1000;
    let mut g = c.benchmark_group("decode_pipelined");
    g.throughput(Throughput::Elements(FRAMES as u64));
    let limits = Limits::default();
    let mut wire = BytesMut::new();
    for i in 0..FRAMES {
        let key = Bytes::from(format!("key:{i:012}"));
        let req = if i % 10 == 9 {
            Request::Put {
                key,
                value: value(64),
                ttl_ms: 0,
            }
        } else {
            Request::Get { key }
        };
        req.encode(RequestId(i as u32), &mut wire);
    }
    let frames = |g: &mut BenchmarkGroup<'_, WallTime>, name: &str, each: &dyn Fn(Frame)| {
        g.bench_function(name, |b| {
            let mut decoder = Decoder::new(limits.max_frame);
            b.iter_batched(
                || wire.clone(),
                |mut buf| {
                    let mut n = 0;
                    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                        each(frame);
                        n += 1;
                    }
                    assert_eq!(n, FRAMES);
                },
                BatchSize::SmallInput,
            )
        });
    };
    frames(&mut g, "get9_put1_x1000", &|frame| {
        black_box(Request::decode(&frame, &limits).unwrap());
    });
    // As the server decodes: taking each frame, so its body becomes the last field.
    frames(&mut g, "get9_put1_x1000_owned", &|frame| {
        black_box(Request::decode_owned(frame, &limits).unwrap());
    });
    frames(&mut g, "frames_only_x1000", &|frame| {
        black_box(frame.header.request_id);
    });
    g.finish();
}

criterion_group!(
    codec,
    encode_requests,
    decode_requests,
    encode_responses,
    decode_responses,
    decode_pipelined
);
criterion_main!(codec);
