//! Bad input over real sockets: each case gets its clear error, and nothing else is
//! lost (the offending connection's earlier answers, and every other connection).

mod common;

use common::{frame, RawConn, ServerProcess};
use switchboard::client::stat;
use switchboard::protocol::{features, Opcode, Request, RequestId, ResponseBody, Status};

fn error_status(body: &ResponseBody) -> Status {
    match body {
        ResponseBody::Error { status, .. } => *status,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A bystander connection with a record, checked again after each bad input.
fn bystander(server: &ServerProcess) -> switchboard::client::Client {
    let mut c = server.client();
    c.put("bystander", "still here").unwrap();
    c
}

fn assert_unharmed(c: &mut switchboard::client::Client) {
    assert_eq!(
        &c.get("bystander").unwrap().unwrap().value[..],
        b"still here"
    );
}

#[test]
fn unknown_opcode_gets_an_error_and_the_connection_stays_open() {
    let server = ServerProcess::start(&[]);
    let mut raw = server.raw();
    // Version 1, opcode 0x7f, no flags, status 0, id 9, empty body.
    raw.send(&[0, 0, 0, 8, 1, 0x7f, 0, 0, 0, 0, 0, 9]);
    let r = raw.recv();
    assert_eq!((r.request_id, r.opcode), (RequestId(9), Opcode(0x7f)));
    assert_eq!(error_status(&r.body), Status::UNKNOWN_OPCODE);
    raw.send(&frame(
        &Request::Ping {
            payload: "after".into(),
        },
        10,
    ));
    assert!(matches!(raw.recv().body, ResponseBody::Pong(p) if p == "after"));
}

#[test]
fn malformed_bodies_are_refused_without_closing() {
    let server = ServerProcess::start(&[]);
    let mut raw = server.raw();
    let cases: Vec<(Vec<u8>, Status)> = vec![
        // GET whose key length runs past the body.
        (
            vec![0, 0, 0, 11, 1, 0x10, 0, 0, 0, 0, 0, 1, 0, 9, b'k'],
            Status::BAD_REQUEST,
        ),
        // GET with an empty key.
        (
            vec![0, 0, 0, 10, 1, 0x10, 0, 0, 0, 0, 0, 2, 0, 0],
            Status::BAD_REQUEST,
        ),
        // GET with a trailing byte.
        (
            vec![0, 0, 0, 12, 1, 0x10, 0, 0, 0, 0, 0, 3, 0, 1, b'k', b'!'],
            Status::BAD_REQUEST,
        ),
        // PING with the reserved PUSH flag set.
        (
            vec![0, 0, 0, 8, 1, 0x02, 1, 0, 0, 0, 0, 4],
            Status::BAD_REQUEST,
        ),
        // A reserved opcode (GOAWAY, which only servers will send).
        (
            vec![0, 0, 0, 8, 1, 0x32, 0, 0, 0, 0, 0, 5],
            Status::UNKNOWN_OPCODE,
        ),
        // SUBSCRIBE on a connection that did not ask for PUSH.
        (
            vec![
                0, 0, 0, 31, 1, 0x20, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            Status::UNSUPPORTED,
        ),
    ];
    for (bytes, status) in &cases {
        raw.send(bytes);
        assert_eq!(error_status(&raw.recv().body), *status);
    }
    // PUT with a TTL, which was not negotiated.
    raw.send(&frame(
        &Request::Put {
            key: "t".into(),
            value: "v".into(),
            ttl_ms: 1000,
        },
        6,
    ));
    assert_eq!(error_status(&raw.recv().body), Status::UNSUPPORTED);
    // A key over the limit.
    raw.send(&frame(
        &Request::Get {
            key: vec![b'k'; 2000].into(),
        },
        7,
    ));
    assert_eq!(error_status(&raw.recv().body), Status::KEY_TOO_LARGE);
    // A second HELLO.
    raw.send(&frame(
        &Request::Hello {
            max_version: 1,
            features: 0,
            token: "".into(),
        },
        8,
    ));
    assert_eq!(error_status(&raw.recv().body), Status::BAD_REQUEST);
    raw.send(&frame(&Request::Ping { payload: "".into() }, 9));
    assert!(matches!(raw.recv().body, ResponseBody::Pong(_)));
}

#[test]
fn value_over_the_limit_is_refused() {
    let server = ServerProcess::start(&["--max-frame", "64k"]);
    let mut raw = server.raw();
    // Fits the frame, but not the value limit (frame minus 4096).
    let value = vec![b'v'; 64 * 1024 - 4096 + 1];
    raw.send(&frame(
        &Request::Put {
            key: "k".into(),
            value: value.into(),
            ttl_ms: 0,
        },
        1,
    ));
    assert_eq!(error_status(&raw.recv().body), Status::VALUE_TOO_LARGE);
    raw.send(&frame(&Request::Get { key: "k".into() }, 2));
    assert!(matches!(raw.recv().body, ResponseBody::NotFound));
}

#[test]
fn hello_negotiates_and_reports_limits() {
    let server = ServerProcess::start(&["--max-frame", "64k"]);
    let mut c = server.client();
    let reply = c.hello(u32::MAX).unwrap();
    assert_eq!(reply.version, 1);
    assert_eq!(
        reply.features,
        features::PUSH,
        "PUSH is granted, TTL is not yet"
    );
    assert_ne!(reply.history, 0);
    assert_eq!(reply.max_frame, 64 * 1024);
    assert_eq!(reply.max_value, 64 * 1024 - 4096);
    assert!(reply.server.starts_with(b"switchboard "));
    c.ping().unwrap();
}

#[test]
fn oversized_length_gets_an_error_frame_then_close() {
    let server = ServerProcess::start(&[]);
    let mut c = bystander(&server);
    let mut raw = server.raw();
    // A good request first: its answer must still arrive, before the error.
    raw.send(&frame(
        &Request::Ping {
            payload: "first".into(),
        },
        1,
    ));
    // Declares 2 GiB with a complete header (opcode GET, id 77) and no body.
    raw.send(&[0x80, 0, 0, 0, 1, 0x10, 0, 0, 0, 0, 0, 77]);
    assert!(matches!(raw.recv().body, ResponseBody::Pong(p) if p == "first"));
    let r = raw.recv();
    assert_eq!((r.request_id, r.opcode), (RequestId(77), Opcode::GET));
    assert_eq!(error_status(&r.body), Status::FRAME_TOO_LARGE);
    raw.expect_closed();
    assert_unharmed(&mut c);
    let stats = c.stats().unwrap();
    assert_eq!(stat(&stats, "protocol_errors"), Some(1));
}

#[test]
fn short_length_and_bad_version_close_only_the_offender() {
    let server = ServerProcess::start(&[]);
    let mut c = bystander(&server);

    let mut raw = server.raw();
    raw.send(&[0, 0, 0, 3, 1, 2, 3]);
    let r = raw.recv();
    assert_eq!((r.request_id, r.opcode), (RequestId(0), Opcode(0)));
    assert_eq!(error_status(&r.body), Status::MALFORMED_FRAME);
    raw.expect_closed();
    assert_unharmed(&mut c);

    let mut raw = server.raw();
    // Version 9, PING, id 5 — followed by more bytes the server must not act on.
    raw.send(&[0, 0, 0, 8, 9, 0x02, 0, 0, 0, 0, 0, 5]);
    raw.send(&frame(
        &Request::Put {
            key: "bystander".into(),
            value: "overwritten".into(),
            ttl_ms: 0,
        },
        6,
    ));
    let r = raw.recv();
    assert_eq!((r.request_id, r.opcode), (RequestId(5), Opcode::PING));
    assert_eq!(error_status(&r.body), Status::UNSUPPORTED_VERSION);
    raw.expect_closed();
    assert_unharmed(&mut c);
}

#[test]
fn garbage_closes_the_connection_without_harm() {
    let server = ServerProcess::start(&[]);
    let mut c = bystander(&server);
    let mut raw = server.raw();
    raw.send(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    // "GET " read as a length is far over the limit.
    assert_eq!(error_status(&raw.recv().body), Status::FRAME_TOO_LARGE);
    raw.expect_closed();
    assert_unharmed(&mut c);
}

#[test]
fn a_client_vanishing_mid_frame_is_cleaned_up() {
    let server = ServerProcess::start(&[]);
    let mut c = bystander(&server);
    {
        let mut raw = RawConn::connect(server.addr);
        let bytes = frame(
            &Request::Put {
                key: "half".into(),
                value: vec![1; 1000].into(),
                ttl_ms: 0,
            },
            1,
        );
        raw.send(&bytes[..500]);
    } // dropped: the socket closes with half a frame sent
      // The server notices and closes its side; nothing was written.
    common::wait_until("the half-sent connection to be cleaned up", || {
        stat(&c.stats().unwrap(), "connections_current") == Some(1)
    });
    assert_eq!(c.get("half").unwrap(), None);
    assert_unharmed(&mut c);
}

#[test]
fn half_close_still_gets_every_answer() {
    let server = ServerProcess::start(&[]);
    let mut raw = server.raw();
    let mut bytes = Vec::new();
    for i in 0..50 {
        bytes.extend(frame(
            &Request::Put {
                key: format!("h{i}").into(),
                value: "v".into(),
                ttl_ms: 0,
            },
            i,
        ));
    }
    raw.send(&bytes);
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 0..50 {
        assert_eq!(raw.recv().request_id, RequestId(i));
    }
    raw.expect_closed();
}

#[test]
fn server_full_reaches_a_client_that_writes_at_once() {
    use std::io::{Read, Write};
    let server = ServerProcess::start(&["--max-connections", "1"]);
    let mut first = server.client();
    first.ping().unwrap();
    // Clients in a row connect and at once write a megabyte of requests before
    // reading anything; each must still read SERVER_FULL, not a reset.
    for _ in 0..5 {
        let mut burst = Vec::new();
        for i in 0..20_000u32 {
            burst.extend_from_slice(&frame(
                &Request::Put {
                    key: "k".into(),
                    value: vec![b'v'; 40].into(),
                    ttl_ms: 0,
                },
                i,
            ));
        }
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(common::WAIT)).unwrap();
        stream.set_write_timeout(Some(common::WAIT)).unwrap();
        // A naive client: it writes everything, and only then reads. The server must
        // take (and discard) the megabyte rather than reset the connection under it.
        stream
            .write_all(&burst)
            .expect("the write completes: no reset while the client is writing");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < 12 {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("a reset instead of SERVER_FULL: {e}"),
            }
        }
        assert!(got.len() >= 12, "closed without a frame");
        assert_eq!(got[7], Status::SERVER_FULL.0, "{got:?}");
    }
    first.ping().unwrap();
}

#[test]
fn one_address_past_its_limit_is_told_so_and_counted() {
    let server = ServerProcess::start(&["--max-connections-per-ip", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    a.ping().unwrap();
    b.ping().unwrap();
    let mut third = server.raw();
    let r = third.recv();
    assert_eq!(error_status(&r.body), Status::SERVER_FULL);
    match &r.body {
        ResponseBody::Error { message, .. } => assert!(
            String::from_utf8_lossy(message).contains("--max-connections-per-ip"),
            "{message:?}"
        ),
        other => panic!("{other:?}"),
    }
    third.expect_closed();
    drop(b);
    // The address's count falls when a connection closes (noticed asynchronously).
    common::wait_until("the address to be admitted again", || {
        let mut c = switchboard::client::Client::connect(server.addr).unwrap();
        c.set_timeout(Some(common::WAIT)).unwrap();
        c.ping().is_ok()
    });
    assert!(stat(&a.stats().unwrap(), "connections_rejected_per_ip").unwrap() >= 1);
}

#[test]
fn connections_past_the_limit_are_told_server_full() {
    let server = ServerProcess::start(&["--max-connections", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    a.ping().unwrap();
    b.ping().unwrap();
    let mut third = server.raw();
    let r = third.recv();
    assert_eq!(error_status(&r.body), Status::SERVER_FULL);
    third.expect_closed();
    drop(b);
    // Once a slot frees up, a new client gets in (the close is noticed asynchronously).
    common::wait_until("a freed slot to admit a new client", || {
        let mut c = switchboard::client::Client::connect(server.addr).unwrap();
        c.set_timeout(Some(common::WAIT)).unwrap();
        c.ping().is_ok()
    });
    assert_eq!(
        stat(&a.stats().unwrap(), "connections_rejected").map(|n| n >= 1),
        Some(true)
    );
}
