//! Stopping the real server with clients mid-pipeline: everything it read is answered
//! (carried out, or SHUTTING_DOWN when the deadline leaves no time), a GOAWAY counting
//! what was carried out comes last, the deadline holds, the exit status is 0, idle
//! connections do not hold the stop up, and a second signal ends it at once.

mod common;

use common::{frame, ServerProcess};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchboard::protocol::{Decoder, Flags, Limits, Push, Request, Response, Status};

const CLIENTS: usize = 50;

/// The tests here time the server: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
const SCANS: u32 = 100;

/// Fills the store with `count` small records under `scan:`.
fn fill(server: &ServerProcess, count: u32) {
    let mut client = server.client();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut p = client.pipeline();
        for i in chunk {
            p = p.put(format!("scan:{i:08}"), "v");
        }
        p.send().expect("fill");
    }
}

/// What one client saw: the status of each answer, in order, whether the ids came in
/// order, and the GOAWAY's count if one came (and nothing after it).
struct Seen {
    statuses: Vec<Status>,
    ids_in_order: bool,
    goaway: Option<u64>,
}

/// Starts `CLIENTS` clients that each pipeline `SCANS` SCANs and read every answer
/// until the server closes. Returns once each has its first answer (so the server has
/// read its requests), with a receiver for what each saw.
fn start_clients(server: &ServerProcess) -> mpsc::Receiver<Seen> {
    let (first_tx, first_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..CLIENTS {
        let addr = server.addr;
        let first_tx = first_tx.clone();
        let done_tx = done_tx.clone();
        std::thread::spawn(move || {
            let mut wire = Vec::new();
            for id in 0..SCANS {
                let scan = Request::Scan {
                    prefix: "scan:".into(),
                    cursor: bytes::Bytes::new(),
                    limit: 1000,
                };
                wire.extend_from_slice(&frame(&scan, id));
            }
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_read_timeout(Some(common::WAIT)).unwrap();
            stream.write_all(&wire).expect("pipeline");
            let mut decoder = Decoder::new(Limits::MAX_MAX_FRAME);
            let mut buf = bytes::BytesMut::new();
            let mut chunk = vec![0u8; 1 << 16];
            let mut seen = Seen {
                statuses: Vec::new(),
                ids_in_order: true,
                goaway: None,
            };
            loop {
                while let Some(f) = decoder.decode(&mut buf).expect("valid frames") {
                    assert!(seen.goaway.is_none(), "a frame after the GOAWAY");
                    if f.header.flags.contains(Flags::PUSH) {
                        match Push::decode(&f).expect("valid push") {
                            Push::GoAway { count, .. } => seen.goaway = Some(count),
                            other => panic!("unexpected push {other:?}"),
                        }
                        continue;
                    }
                    let r = Response::decode(&f).expect("valid response");
                    seen.ids_in_order &= r.request_id.0 == seen.statuses.len() as u32;
                    if seen.statuses.is_empty() {
                        let _ = first_tx.send(());
                    }
                    seen.statuses.push(r.body.status());
                }
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = done_tx.send(seen);
        });
    }
    for _ in 0..CLIENTS {
        first_rx
            .recv_timeout(common::WAIT)
            .expect("every client got a first answer");
    }
    done_rx
}

fn signal(server: &ServerProcess) {
    let pid = server.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
}

/// Waits for the server to exit, failing after `limit`; returns how long it took.
fn exit_within(
    server: &mut ServerProcess,
    limit: Duration,
) -> (Duration, std::process::ExitStatus) {
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return (start.elapsed(), status);
        }
        assert!(
            start.elapsed() < limit,
            "the server still ran {limit:?} after the signal"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_stop_answers_everything_read_within_its_deadline() {
    let _serial = serial();
    let mut server = ServerProcess::start(&["--workers", "1", "--shutdown-timeout", "2"]);
    fill(&server, 20_000);
    let done = start_clients(&server);
    signal(&server);
    let (took, status) = exit_within(&mut server, Duration::from_secs(4));
    assert!(status.success(), "exit status {status:?}");
    assert!(took <= Duration::from_millis(2500), "stop took {took:?}");

    let (mut executed, mut refused) = (0, 0);
    for _ in 0..CLIENTS {
        let seen = done.recv_timeout(common::WAIT).expect("a client finished");
        assert!(seen.ids_in_order, "answers out of order");
        assert_eq!(
            seen.statuses.len(),
            SCANS as usize,
            "every request read is answered: {:?}",
            &seen.statuses[seen.statuses.len().saturating_sub(3)..]
        );
        // What ran is a prefix: once the server refuses, it refuses the rest.
        let ran = seen
            .statuses
            .iter()
            .take_while(|s| **s == Status::OK)
            .count();
        assert!(
            seen.statuses[ran..]
                .iter()
                .all(|s| *s == Status::SHUTTING_DOWN),
            "{:?}",
            seen.statuses
        );
        assert_eq!(
            seen.goaway,
            Some(ran as u64),
            "the GOAWAY counts exactly the requests carried out"
        );
        executed += ran;
        refused += SCANS as usize - ran;
    }
    assert!(executed > 0, "requests ran before the deadline");
    assert!(
        refused > 0,
        "the deadline cut work short (the test's premise)"
    );
}

#[test]
fn a_second_signal_stops_at_once() {
    let _serial = serial();
    let mut server = ServerProcess::start(&["--workers", "1", "--shutdown-timeout", "30"]);
    fill(&server, 20_000);
    let _done = start_clients(&server);
    signal(&server);
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.child.try_wait().unwrap().is_none(), "still stopping");
    signal(&server);
    let (took, status) = exit_within(&mut server, Duration::from_secs(2));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_millis(500),
        "a second signal took {took:?}"
    );
}

/// Raises this process's descriptor limit as far as `want` allows; returns the limit.
/// A server started after it inherits it.
fn raise_descriptor_limit(want: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain structs owned here.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.max(want.min(limit.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

#[test]
fn idle_connections_get_goaway_and_do_not_hold_the_stop_up() {
    let _serial = serial();
    let limit = raise_descriptor_limit(4096);
    let idle = 2000.min(limit.saturating_sub(100) as usize);
    assert!(
        idle >= 500,
        "a descriptor limit of {limit} leaves too few for the test"
    );
    let mut server = ServerProcess::start(&["--workers", "1", "--shutdown-timeout", "30"]);
    let mut conns: Vec<_> = (0..idle)
        .map(|_| common::RawConn::connect(server.addr))
        .collect();
    // One of them has had a request answered: its GOAWAY counts it.
    conns[0].send(&frame(
        &Request::Ping {
            payload: "x".into(),
        },
        7,
    ));
    assert_eq!(conns[0].recv().body.status(), Status::OK);
    common::wait_until("the server has every connection", || {
        switchboard::client::stat(&server.stats(), "connections_current") == Some(idle as u64 + 1)
    });
    signal(&server);
    for (i, conn) in conns.iter_mut().enumerate() {
        let push = conn.next_push().expect("a GOAWAY before the close");
        let expected = if i == 0 { 1 } else { 0 };
        assert!(
            matches!(push, Push::GoAway { count, .. } if count == expected),
            "{push:?}"
        );
        conn.expect_closed();
    }
    // Not the 30 s stop timeout: nothing was in flight.
    let (took, status) = exit_within(&mut server, Duration::from_secs(3));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
}
