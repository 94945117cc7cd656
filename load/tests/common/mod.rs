//! Shared helpers for the load generator's tests: run the binary with a time limit,
//! read its JSON, run a real switchboard server in this process, and a fake server
//! with known faults ([`fake`]).
#![allow(dead_code)]

pub mod fake;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard::client::{stat, Client};
use switchboard::config::Config;
use switchboard::server::{Running, Server};

/// How long one switchboard-load run may take before the test kills it and fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);

/// How long a test waits for the in-process server to answer.
const WAIT: Duration = Duration::from_secs(10);

/// Timing tests run one at a time: on a small machine, parallel runs would measure
/// each other.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs switchboard-load with `args` and returns its output, killing it (and failing
/// the test) after [`RUN_LIMIT`].
pub fn run_load(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchboard-load");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("switchboard-load output"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("switchboard-load {args:?} ran past {RUN_LIMIT:?}");
        }
    }
}

/// A switchboard server on a free loopback port in this process, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    _running: Running,
}

impl TestServer {
    pub fn start(workers: usize) -> TestServer {
        TestServer::start_with(Config {
            workers,
            ..Config::default()
        })
    }

    /// A server with `config`, on a free loopback port whatever it says.
    pub fn start_with(config: Config) -> TestServer {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..config
        };
        let server = Server::bind(&config).expect("bind a loopback port");
        let running = server.spawn().expect("start the reactor thread");
        TestServer {
            addr: running.local_addr(),
            _running: running,
        }
    }

    /// The server's counters, over a fresh connection.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let mut c = Client::connect(self.addr).expect("connect");
        c.set_timeout(Some(WAIT)).unwrap();
        c.stats().expect("STATS")
    }

    pub fn counter(&self, stats: &[(String, u64)], name: &str) -> u64 {
        stat(stats, name).unwrap_or_else(|| panic!("STATS has no {name}"))
    }
}

pub struct TempJson(PathBuf);

impl TempJson {
    pub fn new(name: &str) -> TempJson {
        TempJson(std::env::temp_dir().join(format!(
            "switchboard-load-{}-{name}.json",
            std::process::id()
        )))
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    pub fn read(&self) -> Value {
        let text = std::fs::read_to_string(&self.0).expect("JSON written");
        serde_json::from_str(&text).expect("valid JSON")
    }
}

impl Drop for TempJson {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not an unsigned integer: {x}"))
}

pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}
