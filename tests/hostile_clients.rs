//! Clients that behave badly on purpose, against the real server binary over loopback:
//! what one of them does must never stop the server from answering everyone else.

mod common;

use common::{frame, rss, ServerProcess};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client};
use switchboard::protocol::Request;

/// How long a well-behaved client may wait for a PING next to a hostile one.
const PING_BOUND: Duration = Duration::from_millis(250);

/// The tests here measure latency and memory: they run one at a time, so that they do
/// not measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A client with a short read timeout, for latency checks.
fn pinger(server: &ServerProcess) -> Client {
    let mut c = Client::connect(server.addr).expect("connect");
    c.set_timeout(Some(PING_BOUND)).unwrap();
    c
}

/// Pipelines `count` GETs of `key` in one write and never reads the answers.
fn non_reader(server: &ServerProcess, key: &str, count: u32) -> TcpStream {
    let mut wire = Vec::new();
    for id in 0..count {
        wire.extend_from_slice(&frame(
            &Request::Get {
                key: bytes::Bytes::copy_from_slice(key.as_bytes()),
            },
            id,
        ));
    }
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.write_all(&wire).expect("pipeline");
    stream
}

/// Pings every 50 ms for `span`, failing if any PING takes longer than [`PING_BOUND`].
fn keeps_answering(client: &mut Client, span: Duration, what: &str) {
    let end = Instant::now() + span;
    let mut worst = Duration::ZERO;
    for _ in 0..1000 {
        if Instant::now() >= end {
            break;
        }
        let start = Instant::now();
        client
            .ping()
            .unwrap_or_else(|e| panic!("{what}: a PING went unanswered: {e}"));
        worst = worst.max(start.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(worst <= PING_BOUND, "{what}: worst PING took {worst:?}");
}

/// An idle deadline that passes while answers are still unsent must not freeze the
/// network thread: other clients keep being answered, and the stuck client is closed.
fn idle_deadline_with_unsent_answers(workers: &str) {
    let _serial = serial();
    let server = ServerProcess::start(&["--idle-timeout", "1", "--workers", workers]);
    server
        .client()
        .put("big", vec![b'v'; 512 << 10])
        .expect("PUT");
    let _stuck = non_reader(&server, "big", 300);
    let mut client = pinger(&server);
    // Past the stuck client's idle deadline, and past the one that closes it.
    keeps_answering(&mut client, Duration::from_millis(2500), "idle deadline");
    common::wait_until("the stuck client is closed as idle", || {
        stat(&server.stats(), "closed_idle").unwrap_or(0) >= 1
    });
    // The pinger was busy all along; it must still be open and answered.
    client.ping().expect("the active client stays open");
}

#[test]
fn idle_deadline_with_unsent_answers_inline() {
    idle_deadline_with_unsent_answers("0");
}

#[test]
fn idle_deadline_with_unsent_answers_with_workers() {
    idle_deadline_with_unsent_answers("1");
}

/// Fills the store with `count` records of `value_len` bytes under `prefix`.
fn fill(server: &ServerProcess, prefix: &str, count: u32, value_len: usize) {
    let mut client = server.client();
    let value = vec![b'v'; value_len];
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut p = client.pipeline();
        for i in chunk {
            p = p.put(format!("{prefix}{i:08}"), value.clone());
        }
        p.send().expect("fill");
    }
}

/// Pipelines `count` SCANs of `prefix` with a page limit of 1,000 and never reads.
fn non_reading_scanner(server: &ServerProcess, prefix: &str, count: u32) -> TcpStream {
    let mut wire = Vec::new();
    for id in 0..count {
        let scan = Request::Scan {
            prefix: bytes::Bytes::copy_from_slice(prefix.as_bytes()),
            cursor: bytes::Bytes::new(),
            limit: 1000,
        };
        wire.extend_from_slice(&frame(&scan, id));
    }
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.write_all(&wire).expect("pipeline");
    stream
}

/// Waits until the server's resident memory stops growing (two readings 200 ms apart
/// within 1 MiB), bounded; returns the last reading.
fn settled_rss(pid: u32) -> u64 {
    let mut last = rss(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = rss(pid);
        if now.abs_diff(last) < 1 << 20 {
            return now;
        }
        last = now;
    }
    last
}

/// Clients that never read hold at most about the output limit plus one answer each,
/// whatever they pipelined; other clients stay answered; memory comes back after.
#[test]
fn clients_that_never_read_hold_bounded_memory_that_returns() {
    let _serial = serial();
    let server = ServerProcess::start(&["--max-output", "1m", "--workers", "1"]);
    let pid = server.child.id();
    server
        .client()
        .put("big", vec![b'v'; 512 << 10])
        .expect("PUT");
    // SCAN pages of 1,000 records of 200 bytes: about 230 kB each, encoded per page.
    fill(&server, "scan:", 20_000, 200);
    let baseline = settled_rss(pid);

    let mut stuck = Vec::new();
    for _ in 0..8 {
        stuck.push(non_reader(&server, "big", 300));
        stuck.push(non_reading_scanner(&server, "scan:", 300));
    }
    let mut client = pinger(&server);
    keeps_answering(
        &mut client,
        Duration::from_millis(1500),
        "beside non-readers",
    );
    let during = settled_rss(pid);
    // Each client: 1 MiB of output plus one answer, plus buffers; 16 clients.
    let bound = 16 * ((1 << 20) + (512 << 10)) + (24 << 20);
    assert!(
        during.saturating_sub(baseline) < bound,
        "RSS grew by {} MiB with 16 non-reading clients (bound {} MiB)",
        (during - baseline) >> 20,
        bound >> 20
    );

    drop(stuck);
    // Left: the pinger and the connection asking.
    common::wait_until("the non-readers are gone", || {
        stat(&server.stats(), "connections_current") == Some(2)
    });
    let after = settled_rss(pid);
    assert!(
        after < baseline + (8 << 20),
        "RSS {} MiB after the clients left, {} MiB before",
        after >> 20,
        baseline >> 20
    );
}

/// Past `--max-client-memory`, the connections holding the most are closed, each told
/// why in a last frame after the answers it had already been sent.
#[test]
fn the_server_wide_client_memory_limit_closes_the_largest_holders() {
    let _serial = serial();
    let server = ServerProcess::start(&[
        "--max-output",
        "1m",
        "--max-client-memory",
        "4m",
        "--workers",
        "1",
    ]);
    fill(&server, "scan:", 20_000, 200);
    let mut stuck: Vec<TcpStream> = (0..8)
        .map(|_| non_reading_scanner(&server, "scan:", 100))
        .collect();
    let mut client = pinger(&server);
    keeps_answering(
        &mut client,
        Duration::from_millis(500),
        "beside the evictions",
    );
    common::wait_until("connections closed for client memory", || {
        stat(&server.stats(), "client_memory_evictions").unwrap_or(0) >= 4
    });
    let memory = stat(&server.stats(), "client_memory_bytes").unwrap();
    assert!(memory <= 4 << 20, "{memory} bytes held after evictions");

    // An evicted client, reading at last, finds answers and then the reason.
    let mut evicted = 0;
    for stream in &mut stuck {
        let mut raw = common::RawConn::from_stream(stream.try_clone().unwrap());
        let mut last = None;
        // At most its 100 answers, then either the reason and the close, or nothing
        // more (it was not evicted).
        for _ in 0..100 {
            match raw.try_recv() {
                Some(r) => {
                    last = Some(r.body.status());
                    if r.body.status().is_fatal() {
                        break;
                    }
                }
                None => break,
            }
        }
        if last == Some(switchboard::protocol::Status::CLIENT_MEMORY_LIMIT) {
            evicted += 1;
        }
    }
    assert!(
        evicted >= 4,
        "{evicted} clients saw CLIENT_MEMORY_LIMIT last"
    );
}

/// GETs of large values are answered by reference: four clients pipelining GETs of a
/// 1 MB value do not hold the network thread, so a PING on a fresh connection is
/// answered quickly.
#[test]
fn large_answers_do_not_stall_other_clients() {
    let _serial = serial();
    let server = ServerProcess::start(&["--workers", "1"]);
    server
        .client()
        .put("big", vec![b'v'; 1 << 20])
        .expect("PUT");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let mut c = server.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && rounds < 10_000 {
                    let mut p = c.pipeline();
                    for _ in 0..16 {
                        p = p.get("big");
                    }
                    p.send().expect("GETs answered");
                    rounds += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let start = Instant::now();
        let mut fresh = pinger(&server);
        fresh.ping().expect("PING");
        worst = worst.max(start.elapsed());
        std::thread::sleep(Duration::from_millis(25));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        l.join().unwrap();
    }
    assert!(
        worst <= Duration::from_millis(40),
        "a PING on a fresh connection took {worst:?} beside four large-value readers"
    );
}

#[test]
fn a_client_trickling_a_frame_is_closed_by_the_frame_timeout() {
    use std::io::{Read, Write};
    let server = ServerProcess::start(&["--frame-timeout", "0.3"]);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(common::WAIT)).unwrap();
    let frame = common::frame(
        &switchboard::protocol::Request::Ping {
            payload: "x".into(),
        },
        1,
    );
    let started = std::time::Instant::now();
    // One byte every 50 ms: the frame would take more than twice the timeout.
    let mut closed = false;
    for byte in &frame[..frame.len() - 1] {
        if s.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !closed {
        let mut buf = [0u8; 64];
        closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(closed, "still open after the frame timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    common::wait_until("the close counted", || {
        switchboard::client::stat(&server.stats(), "closed_frame_timeout") == Some(1)
    });
}

#[test]
fn a_client_that_takes_none_of_its_answers_is_closed_by_the_write_timeout() {
    let server = ServerProcess::start(&["--write-timeout", "0.3"]);
    let mut c = server.client();
    c.put("big", vec![b'v'; 512 << 10]).unwrap();
    // Many times what the socket buffers hold in answers, and never a read.
    let mut s = TcpStream::connect(server.addr).unwrap();
    let mut burst = Vec::new();
    for i in 0..60 {
        burst.extend_from_slice(&frame(&Request::Get { key: "big".into() }, i));
    }
    s.write_all(&burst).unwrap();
    common::wait_until("the non-reader closed by the write timeout", || {
        stat(&server.stats(), "closed_write_timeout") == Some(1)
    });
}
