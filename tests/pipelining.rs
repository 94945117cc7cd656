//! Framing and concurrency over real sockets: pipelines, many clients, frames split
//! across reads, and the same answers with and without worker threads.

mod common;

use common::{frame, ServerProcess, WAIT};
use std::io::Write;
use switchboard::protocol::{Request, RequestId, ResponseBody};

#[test]
fn a_thousand_pipelined_requests_are_answered_in_order() {
    for workers in ["0", "1", "4"] {
        let server = ServerProcess::start(&["--workers", workers, "--inline-max-batch", "0"]);
        let mut raw = server.raw();
        let mut bytes = Vec::new();
        for i in 0..1000u32 {
            let request = if i % 2 == 0 {
                Request::Put {
                    key: format!("p{}", i / 2).into(),
                    value: format!("value {i}").into(),
                    ttl_ms: 0,
                }
            } else {
                Request::Get {
                    key: format!("p{}", i / 2).into(),
                }
            };
            bytes.extend(frame(&request, 10_000 + i));
        }
        // One write for the whole pipeline.
        raw.send(&bytes);
        for i in 0..1000u32 {
            let r = raw.recv();
            assert_eq!(r.request_id, RequestId(10_000 + i), "workers={workers}");
            if i % 2 == 1 {
                match r.body {
                    ResponseBody::Value { value, .. } => {
                        assert_eq!(value, format!("value {}", i - 1));
                    }
                    other => panic!("workers={workers}: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn two_hundred_concurrent_clients() {
    let server = ServerProcess::start(&[]);
    let threads: Vec<_> = (0..200)
        .map(|n| {
            let mut c = server.client();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let key = format!("client{n}:{i}");
                    let v = c.put(key.clone(), format!("{n}/{i}")).unwrap();
                    let r = c.get(key).unwrap().unwrap();
                    assert_eq!(r.version, v);
                    assert_eq!(r.value, format!("{n}/{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = server.client().stats().unwrap();
    assert_eq!(switchboard::client::stat(&stats, "keys"), Some(4000));
}

#[test]
fn frames_arriving_one_byte_at_a_time() {
    let server = ServerProcess::start(&[]);
    let mut raw = server.raw();
    let mut bytes = frame(
        &Request::Put {
            key: "slow".into(),
            value: "drip".into(),
            ttl_ms: 0,
        },
        1,
    );
    bytes.extend(frame(&Request::Get { key: "slow".into() }, 2));
    for b in &bytes {
        raw.stream.write_all(&[*b]).unwrap();
        raw.stream.flush().unwrap();
    }
    assert!(matches!(raw.recv().body, ResponseBody::Written { .. }));
    let r = raw.recv();
    assert_eq!(r.request_id, RequestId(2));
    assert!(matches!(r.body, ResponseBody::Value { value, .. } if value == "drip"));
}

#[test]
fn a_frame_split_across_reads() {
    let server = ServerProcess::start(&[]);
    let mut raw = server.raw();
    let value = vec![b'z'; 200_000];
    let bytes = frame(
        &Request::Put {
            key: "big".into(),
            value: value.clone().into(),
            ttl_ms: 0,
        },
        1,
    );
    // Header split from the body, and the body in uneven pieces with pauses between.
    for piece in [
        &bytes[..3],
        &bytes[3..17],
        &bytes[17..70_000],
        &bytes[70_000..],
    ] {
        raw.send(piece);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(matches!(raw.recv().body, ResponseBody::Written { .. }));
    let mut c = server.client();
    assert_eq!(c.get("big").unwrap().unwrap().value, value);
}

/// The same script run with requests on the reactor, on four workers (every batch
/// handed off), and on four workers with small batches kept on the reactor.
#[test]
fn workers_zero_and_four_give_the_same_answers() {
    fn script(flags: &[&str]) -> Vec<String> {
        let server = ServerProcess::start(flags);
        let mut c = server.client();
        let mut out = Vec::new();
        for i in 0..50 {
            out.push(format!(
                "{:?}",
                c.put(format!("k{}", i % 7), format!("v{i}"))
            ));
            out.push(format!("{:?}", c.get(format!("k{}", i % 5))));
            out.push(format!("{:?}", c.cas(format!("k{}", i % 3), i, "c")));
            if i % 4 == 0 {
                out.push(format!("{:?}", c.delete(format!("k{}", i % 6), 0)));
            }
        }
        out.push(format!("{:?}", c.scan("k", "", 0)));
        let answers = c
            .pipeline()
            .get("k1")
            .put("k1", "p")
            .get("k1")
            .ping()
            .send()
            .unwrap();
        out.push(format!("{answers:?}"));
        out
    }
    let inline = script(&["--workers", "0"]);
    assert_eq!(
        inline,
        script(&["--workers", "4", "--inline-max-batch", "0"])
    );
    assert_eq!(inline, script(&["--workers", "4"]));
}

#[test]
fn pipelined_responses_wait_for_a_slow_reader() {
    // A client that writes a deep pipeline before reading anything: the server must
    // stop reading once its output passes the limit, and lose nothing.
    let server = ServerProcess::start(&["--max-output", "64k"]);
    let mut c = server.client();
    c.put("v", vec![b'x'; 4000]).unwrap();
    let mut raw = server.raw();
    let requests = 2000u32;
    let mut bytes = Vec::new();
    for i in 0..requests {
        bytes.extend(frame(&Request::Get { key: "v".into() }, i));
    }
    // Written from another thread: the server may stop reading until we read.
    let mut writer = raw.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    let deadline = std::time::Instant::now() + WAIT;
    for i in 0..requests {
        assert!(std::time::Instant::now() < deadline);
        let r = raw.recv();
        assert_eq!(r.request_id, RequestId(i));
        assert!(matches!(r.body, ResponseBody::Value { ref value, .. } if value.len() == 4000));
    }
    t.join().unwrap();
}

/// Pipelining clients against one worker with small batches kept on the reactor: a
/// connection's batch may run inline only when none of its earlier requests are still
/// at the worker, so every client still sees its answers in order.
#[test]
fn inline_and_handed_off_batches_keep_each_connection_in_order() {
    let server = ServerProcess::start(&["--workers", "1", "--inline-max-batch", "8"]);
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let mut raw = server.raw();
            let mut writer = raw.stream.try_clone().unwrap();
            std::thread::spawn(move || {
                // Deep pipelines (handed off) and shallow ones (small enough to run
                // inline) written back to back without waiting for answers, so shallow
                // batches arrive while deep ones are still at the worker.
                let mut total = 0u32;
                let mut rounds = Vec::new();
                for round in 0..60u32 {
                    let depth = if round % 2 == 0 { 200 } else { 1 + round % 4 };
                    let mut bytes = Vec::new();
                    for i in total..total + depth {
                        let key = format!("t{t}:{}", i % 7);
                        let request = if i % 3 == 0 {
                            Request::Put {
                                key: key.into(),
                                value: i.to_string().into(),
                                ttl_ms: 0,
                            }
                        } else {
                            Request::Get { key: key.into() }
                        };
                        bytes.extend(frame(&request, i));
                    }
                    rounds.push(bytes);
                    total += depth;
                }
                let sender = std::thread::spawn(move || {
                    for bytes in rounds {
                        writer.write_all(&bytes).unwrap();
                        std::thread::sleep(std::time::Duration::from_micros(5));
                    }
                });
                for i in 0..total {
                    assert_eq!(raw.recv().request_id, RequestId(i), "client {t}");
                }
                sender.join().unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
