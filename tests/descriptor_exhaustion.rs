//! Running out of file descriptors: a server whose descriptor limit is below its
//! connection limit fits the one to the other at startup and says so, refuses clients
//! past it with SERVER_FULL at once (none waits in the kernel's queue), does not spin,
//! and serves new clients once others leave.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client};
use switchboard::protocol::{Decoder, Limits, Response, Status};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads the first frame the server sends on a fresh connection, if any arrives
/// within `wait`: `Some(status)`, or `None` on timeout or a close without a frame.
fn first_status(stream: &mut TcpStream, wait: Duration) -> Option<Status> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut decoder = Decoder::new(Limits::default().max_frame);
    let mut buf = bytes::BytesMut::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Some(frame) = decoder.decode(&mut buf).ok()? {
            return Some(Response::decode(&frame).ok()?.body.status());
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn a_low_descriptor_limit_lowers_the_connection_limit_and_refuses_the_rest() {
    // A hard limit of 48 leaves room for a couple of dozen connections.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} --listen 127.0.0.1:0 --workers 1",
            env!("CARGO_BIN_EXE_switchboard")
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let mut addr = None;
    let mut note = None;
    let deadline = Instant::now() + common::WAIT;
    while addr.is_none() || note.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the listening line and the note");
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.parse::<std::net::SocketAddr>().unwrap());
        } else if line.contains("file descriptors") {
            note = Some(line);
        }
    }
    let (addr, note) = (addr.unwrap(), note.unwrap());
    assert!(note.contains("serving at most"), "{note}");
    let limit: usize = note
        .split("serving at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the fitted limit in the note");
    assert!((10..48).contains(&limit), "fitted limit {limit}");

    // Fill the server, then ask for more: each extra client is refused at once.
    let mut clients: Vec<Client> = (0..limit)
        .map(|_| {
            let mut c = Client::connect(addr).unwrap();
            c.set_timeout(Some(common::WAIT)).unwrap();
            c.ping().expect("served");
            c
        })
        .collect();
    for _ in 0..10 {
        let mut extra = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        assert_eq!(
            first_status(&mut extra, Duration::from_secs(2)),
            Some(Status::SERVER_FULL),
            "a client past the limit is told, not left waiting"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    // With clients waiting on nothing, the server is idle, not spinning.
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks(child.id()) - before;
    assert!(used <= 10, "server used {used} ticks of CPU in 500 ms");

    let refused = stat(&clients[0].stats().unwrap(), "connections_rejected").unwrap();
    assert!(refused >= 10, "refusals counted: {refused}");

    // Clients leaving make room for new ones.
    clients.truncate(limit - 5);
    common::wait_until("a freed slot is used", || {
        let Ok(mut c) = Client::connect(addr) else {
            return false;
        };
        c.set_timeout(Some(common::WAIT)).unwrap();
        c.ping().is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
}
