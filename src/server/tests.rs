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
