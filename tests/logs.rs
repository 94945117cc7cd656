//! The server's logs: connections closed for cause are logged with the client's
//! address and the reason, at a bounded rate, and --log-level quiets them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Starts the server with `args`; its address, and its stderr lines as they come.
fn start(args: &[&str]) -> (Child, SocketAddr, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    std::thread::spawn(move || for _ in stdout {});
    let addr = first
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, addr, rx)
}

/// Opens a connection, breaks the protocol (a frame of version 9), and reads the
/// error frame and the close; returns its local address.
fn misbehave(addr: SocketAddr) -> SocketAddr {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&[0, 0, 0, 8, 9, 2, 0, 0, 0, 0, 0, 1]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    s.local_addr().unwrap()
}

/// The lines that arrive within `wait`.
fn lines_within(rx: &Receiver<String>, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    lines
}

#[test]
fn a_close_for_cause_is_logged_with_the_peer_and_why_at_a_bounded_rate() {
    let (mut child, addr, rx) = start(&[]);
    let peer = misbehave(addr);
    let lines = lines_within(&rx, Duration::from_millis(500));
    let close = lines
        .iter()
        .find(|l| l.contains("closed a connection"))
        .unwrap_or_else(|| panic!("no close line in {lines:?}"));
    assert!(close.contains(&peer.to_string()), "{close}");
    assert!(
        close.contains("protocol error (UNSUPPORTED_VERSION)"),
        "{close}"
    );

    // A flood: at most ten lines a second, then one saying how many were left out.
    for _ in 0..60 {
        misbehave(addr);
    }
    let flood = lines_within(&rx, Duration::from_millis(500));
    let logged = flood
        .iter()
        .filter(|l| l.contains("closed a connection"))
        .count();
    assert!(logged <= 10, "{logged} close lines in under a second");
    // The next close after the second has passed reports the ones left out.
    std::thread::sleep(Duration::from_millis(1100));
    misbehave(addr);
    let after = lines_within(&rx, Duration::from_millis(500));
    assert!(
        after.iter().any(|l| l.contains("were not logged")),
        "{after:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn log_level_error_keeps_closes_and_start_out_of_the_log() {
    let (mut child, addr, rx) = start(&["--log-level", "error"]);
    misbehave(addr);
    let lines = lines_within(&rx, Duration::from_millis(300));
    assert!(lines.is_empty(), "{lines:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn each_deadline_close_is_logged_with_its_reason() {
    let (mut child, addr, rx) = start(&[
        "--idle-timeout",
        "1",
        "--frame-timeout",
        "0.3",
        "--write-timeout",
        "0.3",
    ]);
    // Records whose listing is far more than the socket buffers hold.
    let mut client = switchboard::client::Client::connect(addr).unwrap();
    for chunk in 0..8 {
        let mut p = client.pipeline();
        for i in 0..128 {
            p = p.put(format!("big:{chunk}:{i}"), vec![b'x'; 16 << 10]);
        }
        p.send().unwrap();
    }
    drop(client);

    // Idle: connects and sends nothing.
    let idle = TcpStream::connect(addr).unwrap();
    // Slowloris: the start of a frame, and nothing more.
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(&[0, 0, 0, 20, 1]).unwrap();
    // Write-stalled: asks for 16 MiB listings and reads none of them.
    let mut stalled = TcpStream::connect(addr).unwrap();
    let mut wire = Vec::new();
    for id in 0..64 {
        let scan = switchboard::protocol::Request::Scan {
            prefix: "big:".into(),
            cursor: bytes::Bytes::new(),
            limit: 1000,
        };
        let mut buf = bytes::BytesMut::new();
        scan.encode(switchboard::protocol::RequestId(id), &mut buf);
        wire.extend_from_slice(&buf);
    }
    stalled.write_all(&wire).unwrap();

    let peers = [
        (idle.local_addr().unwrap(), "idle timeout"),
        (partial.local_addr().unwrap(), "--frame-timeout"),
        (stalled.local_addr().unwrap(), "--write-timeout"),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < peers.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("close lines seen: {seen:?}"));
        if !line.contains("closed a connection") {
            continue;
        }
        let (peer, why) = peers
            .iter()
            .find(|(peer, _)| line.contains(&peer.to_string()))
            .unwrap_or_else(|| panic!("a close line for another peer: {line}"));
        assert!(line.contains(why), "{peer} closed for {why}: {line}");
        seen.push(line);
    }
    drop((idle, partial, stalled));
    let _ = child.kill();
    let _ = child.wait();
}
