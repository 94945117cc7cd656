//! GOAWAY, checked against the store: clients keep writing while the server stops,
//! and on every connection the requests the GOAWAY counts are exactly the writes the
//! server carried out, on each execution path; subscribers get a final PROGRESS that
//! holds; and the Rust client fails exactly the requests after the count.

mod common;

use bytes::{Bytes, BytesMut};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::client::{Client, ClientError};
use switchboard::config::Config;
use switchboard::protocol::{
    features, Decoder, Flags, Limits, Push, Request, RequestId, Response, ResponseBody, Status,
};
use switchboard::server::Server;
use switchboard::store::{Change, ChangeOp};

const CONNECTIONS: usize = 12;
/// Requests a writer sends at most: far more than a stop leaves time for.
const MAX_REQUESTS: u32 = 200_000;
/// Requests per write.
const CHUNK: u32 = 64;

/// What one connection saw until the server closed it.
#[derive(Debug, Default)]
struct Seen {
    statuses: Vec<Status>,
    goaway: Option<u64>,
    frames_after_goaway: usize,
}

/// A connection that writes PUTs of `c{conn}:{i}` as fast as the server takes them,
/// on one thread, and reads every frame until the close on another. `answered`
/// counts answers so far, for the test to wait on.
fn writer(
    addr: std::net::SocketAddr,
    conn: usize,
    value_len: usize,
    answered: Arc<std::sync::atomic::AtomicUsize>,
) -> std::thread::JoinHandle<Seen> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(common::WAIT)).unwrap();
    stream.set_write_timeout(Some(common::WAIT)).unwrap();
    let mut out = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let value = Bytes::from(vec![b'v'; value_len]);
        let mut i = 0;
        while i < MAX_REQUESTS {
            let mut wire = BytesMut::new();
            for _ in 0..CHUNK {
                Request::Put {
                    key: format!("c{conn}:{i}").into(),
                    value: value.clone(),
                    ttl_ms: 0,
                }
                .encode(RequestId(i), &mut wire);
                i += 1;
            }
            // The server stops reading, then closes: the write fails or blocks
            // until the close, and either ends the writer.
            if out.write_all(&wire).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        let mut stream = stream;
        let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 1 << 16];
        let mut seen = Seen::default();
        loop {
            while let Some(f) = decoder.decode(&mut buf).expect("valid frames") {
                if seen.goaway.is_some() {
                    seen.frames_after_goaway += 1;
                }
                if f.header.flags.contains(Flags::PUSH) {
                    match Push::decode(&f).expect("valid push") {
                        Push::GoAway { count, .. } => seen.goaway = Some(count),
                        other => panic!("unexpected push {other:?}"),
                    }
                    continue;
                }
                let r = Response::decode(&f).expect("valid response");
                assert_eq!(r.request_id.0 as usize, seen.statuses.len(), "in order");
                seen.statuses.push(r.body.status());
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        seen
    })
}

/// Stops a server while `CONNECTIONS` clients write, and checks every connection's
/// GOAWAY against the writes the server emitted as changes.
fn the_goaway_counts_exactly_what_ran(workers: usize, inline_max_batch: usize, value_len: usize) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers,
        inline_max_batch,
        // Long enough that the stop finishes every request read even on a loaded
        // machine: this test checks the count, `tests/shutdown.rs` the deadline.
        shutdown_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let mut server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let written: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = written.clone();
    server.on_change(move |c| sink.lock().unwrap().push(c.clone()));
    let reactor = std::thread::spawn(move || server.run());

    let answered: Vec<_> = (0..CONNECTIONS).map(|_| Arc::default()).collect();
    let readers: Vec<_> = (0..CONNECTIONS)
        .map(|c| writer(addr, c, value_len, Arc::clone(&answered[c])))
        .collect();
    common::wait_until("every connection has answers", || {
        answered
            .iter()
            .all(|a| a.load(std::sync::atomic::Ordering::Relaxed) >= 50)
    });
    stop.shutdown();
    reactor.join().unwrap().unwrap();

    // The keys each connection's writes created, by the stream the server emitted.
    let mut ran: HashMap<usize, BTreeSet<u32>> = HashMap::new();
    for change in written.lock().unwrap().iter() {
        assert!(matches!(change.op, ChangeOp::Put(_)), "{change:?}");
        let key = std::str::from_utf8(change.key.as_bytes()).unwrap();
        let (conn, i) = key[1..].split_once(':').unwrap();
        ran.entry(conn.parse().unwrap())
            .or_default()
            .insert(i.parse().unwrap());
    }
    for (c, reader) in readers.into_iter().enumerate() {
        let seen = reader.join().unwrap();
        let count = seen.goaway.unwrap_or_else(|| {
            panic!(
                "connection {c} got no GOAWAY after {} answers, the last {:?}",
                seen.statuses.len(),
                seen.statuses.last()
            )
        });
        assert_eq!(seen.frames_after_goaway, 0, "the GOAWAY is the last frame");
        let count = usize::try_from(count).unwrap();
        assert!(
            count <= seen.statuses.len(),
            "every counted request is answered"
        );
        assert!(
            seen.statuses[..count].iter().all(|s| *s == Status::OK),
            "the counted requests ran"
        );
        assert!(
            seen.statuses[count..]
                .iter()
                .all(|s| *s == Status::SHUTTING_DOWN),
            "the answers after the count say the request did not run"
        );
        let expected: BTreeSet<u32> = (0..count as u32).collect();
        let got = ran.remove(&c).unwrap_or_default();
        assert_eq!(
            got.len(),
            expected.len(),
            "connection {c}: {} writes ran, its GOAWAY counts {count}",
            got.len()
        );
        assert_eq!(got, expected, "connection {c}: the writes that ran");
    }
}

#[test]
fn goaway_counts_exactly_what_ran_with_no_workers() {
    the_goaway_counts_exactly_what_ran(0, 1024, 16);
}

#[test]
fn goaway_counts_exactly_what_ran_on_the_reactor() {
    the_goaway_counts_exactly_what_ran(2, 1024, 16);
}

#[test]
fn goaway_counts_exactly_what_ran_at_workers() {
    // Values this large make every run a worker's.
    the_goaway_counts_exactly_what_ran(2, 1024, 20_000);
}

#[test]
fn a_subscriber_gets_a_final_progress_that_holds_then_goaway() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ..Config::default()
    };
    let mut server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let written: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = written.clone();
    server.on_change(move |c| sink.lock().unwrap().push(c.clone()));
    let reactor = std::thread::spawn(move || server.run());

    let mut sub = Client::connect(addr).unwrap();
    sub.set_timeout(Some(common::WAIT)).unwrap();
    sub.hello(features::PUSH).unwrap();
    let subscribed = sub.subscribe("", None, 0).unwrap();
    let answered: Vec<_> = (0..4).map(|_| Arc::default()).collect();
    let writers: Vec<_> = (0..4)
        .map(|c| writer(addr, c, 16, Arc::clone(&answered[c])))
        .collect();
    common::wait_until("writes are under way", || {
        answered
            .iter()
            .all(|a| a.load(std::sync::atomic::Ordering::Relaxed) >= 100)
    });
    stop.shutdown();

    let mut events = BTreeSet::new();
    let mut last = None;
    let end = loop {
        match sub.next_push(Some(common::WAIT)) {
            Ok(Some(Push::Event { sub_id, seq, .. })) => {
                assert_eq!(sub_id, subscribed.sub_id);
                assert!(events.insert(seq), "event {seq} twice");
                last = None;
            }
            Ok(Some(Push::Progress { seq, .. })) => last = Some(seq),
            Ok(Some(other)) => panic!("unexpected push {other:?}"),
            Ok(None) => panic!("no GOAWAY within {:?}", common::WAIT),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(end, ClientError::GoingAway { handled: 2 }),
        "the subscriber's HELLO and SUBSCRIBE were handled: {end:?}"
    );
    let progress = last.expect("a PROGRESS just before the GOAWAY");
    reactor.join().unwrap().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let upto: BTreeSet<u64> = written
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .filter(|s| *s <= progress)
        .collect();
    assert!(!upto.is_empty(), "changes were made before the PROGRESS");
    let missing: Vec<_> = upto.difference(&events).take(5).collect();
    assert!(
        missing.is_empty(),
        "the PROGRESS at {progress} claims changes that were not delivered: {missing:?}"
    );
}

/// A peer that reads `expect` requests, answers the first `answer` with OK PINGs,
/// sends a GOAWAY counting them, and closes.
fn scripted_stop(expect: usize, answer: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(common::WAIT)).unwrap();
        let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut chunk = [0u8; 4096];
        while frames.len() < expect {
            if let Some(f) = decoder.decode(&mut buf).unwrap() {
                frames.push(f);
                continue;
            }
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed early");
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut out = BytesMut::new();
        for f in &frames[..answer] {
            Response {
                opcode: f.header.opcode,
                request_id: f.header.request_id,
                body: ResponseBody::Pong(Bytes::new()),
            }
            .encode(&mut out);
        }
        Push::GoAway {
            count: answer as u64,
            message: Bytes::from_static(b"stopping"),
        }
        .encode(1, &mut out);
        stream.write_all(&out).unwrap();
    });
    addr
}

#[test]
fn the_client_fails_exactly_the_requests_after_the_count() {
    let addr = scripted_stop(5, 2);
    let mut client = Client::connect(addr).unwrap();
    client.set_timeout(Some(common::WAIT)).unwrap();
    let bodies = client
        .pipeline()
        .ping()
        .ping()
        .ping()
        .ping()
        .ping()
        .send()
        .unwrap();
    let statuses: Vec<Status> = bodies.iter().map(ResponseBody::status).collect();
    assert_eq!(
        statuses,
        [
            Status::OK,
            Status::OK,
            Status::SHUTTING_DOWN,
            Status::SHUTTING_DOWN,
            Status::SHUTTING_DOWN
        ]
    );
    assert_eq!(client.going_away(), Some(2));
    let e = client.ping().unwrap_err();
    assert!(matches!(e, ClientError::GoingAway { handled: 2 }), "{e:?}");
    assert!(e.not_carried_out());
}

#[test]
fn a_single_call_after_the_count_fails_as_not_carried_out() {
    let addr = scripted_stop(1, 0);
    let mut client = Client::connect(addr).unwrap();
    client.set_timeout(Some(common::WAIT)).unwrap();
    let e = client.put("k", "v").unwrap_err();
    assert!(matches!(e, ClientError::GoingAway { handled: 0 }), "{e:?}");
    assert!(e.not_carried_out());
}
