//! The reactor against a real socket: frames held back by a limit must still be
//! answered when the client has nothing more to send.

use super::Server;
use crate::config::Config;
use crate::protocol::{Decoder, Limits, Request, RequestId, Response, ResponseBody};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Pipelines `count` GETs of a 20 kB value in one write, waits without reading so that
/// output passes its limit, then reads every answer.
fn pipelined_gets_are_all_answered(workers: usize) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers,
        max_output: 64 << 10,
        max_in_flight: 16,
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    server.context().store.put(b"big", &[7; 20_000]).unwrap();
    let reactor = std::thread::spawn(move || server.run());

    let count = 300;
    let mut wire = BytesMut::new();
    for id in 0..count {
        let get = Request::Get { key: "big".into() };
        get.encode(RequestId(id), &mut wire);
    }
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(&wire).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let mut decoder = Decoder::new(Limits::default().max_frame);
    let mut input = BytesMut::new();
    let mut ids = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while ids.len() < count as usize {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("stalled after {} answers: {e}", ids.len()));
        assert!(n > 0, "closed after {} answers", ids.len());
        input.extend_from_slice(&buf[..n]);
        while let Some(frame) = decoder.decode(&mut input).unwrap() {
            let response = Response::decode(&frame).unwrap();
            assert!(matches!(response.body, ResponseBody::Value { .. }));
            ids.push(response.request_id.0);
        }
    }
    assert_eq!(ids, (0..count).collect::<Vec<_>>());
    stop.shutdown();
    reactor.join().unwrap().unwrap();
}

#[test]
fn held_frames_are_answered_when_executing_inline() {
    pipelined_gets_are_all_answered(0);
}

#[test]
fn held_frames_are_answered_with_workers() {
    pipelined_gets_are_all_answered(1);
}

/// What the reactor runs itself: up to the count limit of cheap requests, and no
/// batch that would copy more than the payload budget however few requests it has.
#[test]
fn batches_run_inline_only_within_count_cost_and_bytes() {
    use super::{fits_inline, INLINE_MAX_PAYLOAD};
    use crate::job::{ConnId, Job, JobOp};
    use bytes::Bytes;

    let job = |request: Request| Job {
        conn: ConnId {
            index: 3,
            generation: 1,
        },
        id: RequestId(1),
        op: JobOp::Request(request),
    };
    let get = || job(Request::Get { key: "k".into() });
    let put = |len: usize| {
        job(Request::Put {
            key: "k".into(),
            value: Bytes::from(vec![b'v'; len]),
            ttl_ms: 0,
        })
    };
    let gets = |n: usize| (0..n).map(|_| get()).collect::<Vec<_>>();

    assert!(!fits_inline(&[], 1024), "nothing to run");
    assert!(fits_inline(&gets(1024), 1024));
    assert!(!fits_inline(&gets(1025), 1024), "over the count");
    assert!(
        !fits_inline(&gets(10), 0),
        "a limit of 0 hands every batch off"
    );

    let small = 16 << 10;
    let under: Vec<Job> = (0..INLINE_MAX_PAYLOAD / small)
        .map(|_| put(small))
        .collect();
    assert!(fits_inline(&under, 1024));
    let mut over = under.clone();
    over.push(put(1));
    assert!(!fits_inline(&over, 1024), "over the payload budget");
    assert!(!fits_inline(&[put(small + 1)], 1024), "one large value");

    let mut with_scan = gets(3);
    with_scan.push(job(Request::Scan {
        prefix: Bytes::new(),
        cursor: Bytes::new(),
        limit: 10,
    }));
    assert!(!fits_inline(&with_scan, 1024), "an expensive request");
}
