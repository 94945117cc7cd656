//! Shared helpers for integration tests: start the real server binary on a free port,
//! talk raw bytes to it, and wait with deadlines instead of sleeps.
#![allow(dead_code)]

pub mod push;
pub mod tls;

use bytes::BytesMut;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use switchboard::protocol::{Decoder, Flags, Frame, Limits, Push, Response};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `done` until it holds, failing the test with `what` after [`WAIT`].
/// For conditions the server reaches asynchronously (a close noticed, a slot freed).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running server process, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// What the server printed on stdout after its `listening on` line (the limits it
    /// runs with), line by line.
    stdout: Mutex<mpsc::Receiver<String>>,
}

impl ServerProcess {
    /// Starts `switchboard --listen 127.0.0.1:0` with extra flags and waits for its
    /// `listening on` line.
    pub fn start(extra: &[&str]) -> ServerProcess {
        ServerProcess::start_on("127.0.0.1:0", extra)
    }

    /// Starts `switchboard --listen LISTEN` with extra flags and waits for its
    /// `listening on` line.
    pub fn start_on(listen: &str, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--listen", listen])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Every line is passed on (the test may have stopped listening), and the
            // pipe is drained to its end so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(WAIT).expect("server printed its address");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .expect("an address");
        ServerProcess {
            child,
            addr,
            stdout: Mutex::new(rx),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line the server printed at start (after its address) that starts
    /// with `prefix`, such as `"limits:"`; fails the test when none comes in time.
    pub fn startup_line(&self, prefix: &str) -> String {
        let rx = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the server printed no line starting {prefix:?}"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    pub fn client(&self) -> switchboard::client::Client {
        let mut c = switchboard::client::Client::connect(self.addr).expect("connect");
        c.set_timeout(Some(WAIT)).unwrap();
        c
    }

    /// The server's counters, over a fresh connection.
    pub fn stats(&self) -> Vec<(String, u64)> {
        self.client().stats().expect("STATS")
    }

    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.addr)
    }

    /// Sends SIGTERM and returns the exit status, failing the test after `WAIT`.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process (VmRSS), in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib << 10
}

/// Descriptors a process holds open now (its entries in `/proc/PID/fd`).
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptor table")
        .count()
}

/// A socket speaking raw bytes, for tests of framing and bad input.
pub struct RawConn {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps a connected socket.
    pub fn from_stream(stream: TcpStream) -> RawConn {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::MAX_MAX_FRAME),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next response; panics on timeout or close.
    pub fn recv(&mut self) -> Response {
        self.try_recv()
            .expect("a response before the connection closed")
    }

    /// The next response, or `None` when the server closed the connection.
    pub fn try_recv(&mut self) -> Option<Response> {
        let frame = self.next_frame()?;
        Some(Response::decode(&frame).expect("valid response"))
    }

    /// The next frame, which must be a push; `None` when the server closed.
    pub fn next_push(&mut self) -> Option<Push> {
        let frame = self.next_frame()?;
        assert!(frame.header.flags.contains(Flags::PUSH), "{frame:?}");
        Some(Push::decode(&frame).expect("valid push"))
    }

    /// The next frame, or `None` when the server closed the connection.
    fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Asserts the server closes the connection without sending anything more.
    pub fn expect_closed(&mut self) {
        assert!(self.try_recv().is_none(), "expected the server to close");
    }
}

/// Encodes one request as bytes.
pub fn frame(request: &switchboard::protocol::Request, id: u32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    request.encode(switchboard::protocol::RequestId(id), &mut buf);
    buf.to_vec()
}
