//! switchboard-load against the real switchboard server: the number of requests the
//! generator reports is the number the server counted, and its checks pass on a real
//! store.

mod common;

use common::run_load;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use switchboard::client::stat;

/// Timing tests run one at a time: on a small machine, parallel runs would measure
/// each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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
    let server = common::ServerProcess::start(&["--workers", workers]);
    let addr = server.addr.to_string();
    let before = server.stats();
    let path = json_path(&format!("count-{workers}-{pipeline}"));
    let out = run_load(&[
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
    let server = common::ServerProcess::start(&["--workers", "1"]);
    let addr = server.addr.to_string();
    let before = server.stats();
    let path = json_path("open");
    let out = run_load(&[
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
