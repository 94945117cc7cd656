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

/// An idle deadline that passes while a client has answers it is not reading must not
/// freeze the loop: another client keeps being answered, and the stuck one is closed.
fn idle_deadline_with_unread_answers(workers: usize) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers,
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let ctx = server.context();
    ctx.store.put(b"big", &[7; 256 << 10]).unwrap();
    let reactor = std::thread::spawn(move || server.run());

    let mut wire = BytesMut::new();
    for id in 0..100 {
        Request::Get { key: "big".into() }.encode(RequestId(id), &mut wire);
    }
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck.write_all(&wire).unwrap();

    let mut other = crate::client::Client::connect(addr).unwrap();
    other.set_timeout(Some(Duration::from_millis(250))).unwrap();
    // Past the stuck client's idle deadline several times over.
    for round in 0..40 {
        other
            .ping()
            .unwrap_or_else(|e| panic!("PING {round} unanswered: {e}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let closed_idle = || {
        ctx.stats
            .counters
            .closed_idle
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(closed_idle() >= 1, "the stuck client was closed");
    // Its socket is closed: reading ends (after whatever the kernel still held).
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 1 << 16];
    let mut total = 0usize;
    loop {
        match stuck.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(
            total < 100 * (256 << 10),
            "the stuck client got every answer"
        );
    }
    stop.shutdown();
    reactor.join().unwrap().unwrap();
}

#[test]
fn idle_deadline_with_unread_answers_inline() {
    idle_deadline_with_unread_answers(0);
}

#[test]
fn idle_deadline_with_unread_answers_with_workers() {
    idle_deadline_with_unread_answers(1);
}

/// Bursts of connects wait in the listen backlog rather than being dropped: with the
/// default backlog (511) 400 connects complete before the server accepts any.
#[test]
fn the_listen_backlog_holds_a_burst_of_connects() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 0,
        ..Config::default()
    };
    assert_eq!(config.listen_backlog, 511);
    let server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    // The server does not run: only the kernel's queue takes these.
    let streams: Vec<TcpStream> = (0..400)
        .map(|i| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .unwrap_or_else(|e| panic!("connect {i} not queued: {e}"))
        })
        .collect();
    assert_eq!(streams.len(), 400);
    drop(server);
}

#[test]
fn a_spawned_server_serves_until_stopped_and_stop_waits_for_it() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let running = Server::bind(&config).unwrap().spawn().unwrap();
    let mut client = crate::client::Client::connect(running.local_addr()).unwrap();
    client.set_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(client.put("k", "v").unwrap(), 1);
    let addr = running.local_addr();
    running.stop().expect("a clean stop");
    // Stopped means gone: the connection was closed and nothing listens any more.
    assert!(client.ping().is_err());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn dropping_a_spawned_server_stops_it() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let running = Server::bind(&config).unwrap().spawn().unwrap();
    let addr = running.local_addr();
    drop(running);
    assert!(TcpStream::connect(addr).is_err());
}
