//! switchboard-load against the real switchboard server: the number of requests the
//! generator reports is the number the server counted, and its checks pass on a real
//! store.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard::client::{stat, Client};

const WAIT: Duration = Duration::from_secs(10);
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Timing tests run one at a time: on a small machine, parallel runs would measure
/// each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server binary on a free port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(workers: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--listen", "127.0.0.1:0", "--workers", workers])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start switchboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("switchboard printed no address within {WAIT:?}");
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .expect("an address");
        Server { child, addr }
    }

    fn stats(&self) -> Vec<(String, u64)> {
        let mut c = Client::connect(self.addr).expect("connect");
        c.set_timeout(Some(WAIT)).unwrap();
        c.stats().expect("STATS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(args: &[&str]) -> Output {
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

fn json_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "switchboard-load-real-{}-{name}.json",
        std::process::id()
    ))
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).expect("JSON written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("valid JSON")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn counter(stats: &[(String, u64)], name: &str) -> u64 {
    stat(stats, name).unwrap_or_else(|| panic!("STATS has no {name}"))
}

/// Runs a fixed number of requests and compares with the server's own counters.
fn requests_match_server_counters(workers: &str, pipeline: &str) {
    let server = Server::start(workers);
    let addr = server.addr.to_string();
    let before = server.stats();
    let path = json_path(&format!("count-{workers}-{pipeline}"));
    let out = load(&[
        "--addr",
        &addr,
        "--requests",
        "3000",
        "--warmup",
        "0s",
        "--connections",
        "6",
        "--threads",
        "2",
        "--pipeline",
        pipeline,
        "--mix",
        "get=4,put=3,del=1,cas=1,ping=1",
        "--keys",
        "200",
        "--quiet",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let after = server.stats();
    let j = read_json(&path);
    assert_eq!(j["ops"], 3000);
    assert_eq!(j["errors"], 0);
    // The STATS request of `before` is the one extra request.
    let total = counter(&after, "requests_total") - counter(&before, "requests_total");
    assert_eq!(total, 3000 + 1, "{}", text(&out));
    for (op, name) in [
        ("get", "cmd_get"),
        ("put", "cmd_put"),
        ("del", "cmd_delete"),
        ("cas", "cmd_cas"),
        ("ping", "cmd_ping"),
    ] {
        let served = counter(&after, name) - counter(&before, name);
        assert_eq!(Some(served), j["ops_by_type"][op].as_u64(), "{op}: {j}");
    }
}

#[test]
fn closed_loop_request_count_matches_the_server_inline() {
    let _serial = serial();
    requests_match_server_counters("0", "1");
}

#[test]
fn pipelined_request_count_matches_the_server_with_workers() {
    let _serial = serial();
    requests_match_server_counters("1", "16");
}

#[test]
fn open_loop_against_the_server_sends_the_schedule() {
    let _serial = serial();
    let server = Server::start("1");
    let addr = server.addr.to_string();
    let before = server.stats();
    let path = json_path("open");
    let out = load(&[
        "--addr",
        &addr,
        "--rate",
        "1000",
        "--duration",
        "1500ms",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--quiet",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = read_json(&path);
    assert_eq!(j["sent"], 1500);
    assert_eq!(j["ops"], 1500);
    let after = server.stats();
    let total = counter(&after, "requests_total") - counter(&before, "requests_total");
    assert_eq!(total, 1500 + 1);
}
