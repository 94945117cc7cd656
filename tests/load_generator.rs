//! switchboard-load against small servers written here (std threads, the protocol
//! crate for framing): one that answers correctly, one that stalls once for a known
//! time, and ones that answer wrongly. Each test runs the real binary for a second
//! or two and reads its JSON.

mod common;

use bytes::{Bytes, BytesMut};
use common::{run_load, RUN_LIMIT};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use switchboard::protocol::{encode, msg, Decoder, Opcode, Request, RequestId, Status};

/// Longest any one run of the generator may take before the test fails.
/// Connections a test server accepts before its accept loop ends.
const MAX_ACCEPTS: usize = 256;

/// Timing tests run one at a time: on a small machine, parallel runs would measure
/// each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy)]
enum Behavior {
    /// A working key-value store.
    Correct,
    /// Like `Correct`, but the request with this ordinal holds every connection for
    /// this long before anyone is answered again.
    StallAt(u64, Duration),
    /// Like `Correct`, but every request holds the server for this long: a server
    /// with a known capacity.
    Slow(Duration),
    /// Closes every connection once this many requests have arrived in all.
    CloseAfter(u64),
    /// Closes each connection when its own request count passes this.
    CloseEachAfter(u64),
    /// Answers with the wrong request id.
    BadId,
    /// Answers every GET with a value that belongs to no key.
    BadValue,
}

struct Shared {
    store: Mutex<HashMap<Bytes, (u64, Bytes)>>,
    seen: AtomicU64,
    version: AtomicU64,
}

/// Starts a server on a free loopback port; its threads end with the test process.
fn serve(behavior: Behavior) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shared = Arc::new(Shared {
        store: Mutex::new(HashMap::new()),
        seen: AtomicU64::new(0),
        version: AtomicU64::new(0),
    });
    std::thread::spawn(move || {
        // Bounded: no test opens more connections than this to one server.
        for stream in listener.incoming().take(MAX_ACCEPTS) {
            let Ok(stream) = stream else { return };
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || connection(stream, behavior, &shared));
        }
    });
    addr
}

fn connection(mut stream: TcpStream, behavior: Behavior, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let limits = Default::default();
    let mut decoder = Decoder::new(1 << 21);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut chunk = [0u8; 64 * 1024];
    let mut on_this_connection = 0u64;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = decoder.decode(&mut inbuf) {
            let id = frame.header.request_id;
            let Ok(req) = Request::decode(&frame, &limits) else {
                return;
            };
            let ordinal = shared.seen.fetch_add(1, Ordering::Relaxed) + 1;
            on_this_connection += 1;
            if matches!(behavior, Behavior::CloseAfter(n) if ordinal > n)
                || matches!(behavior, Behavior::CloseEachAfter(n) if on_this_connection > n)
            {
                return;
            }
            // Every answer is computed under the store lock, so one request that
            // sleeps while holding it stalls every connection.
            let mut store = shared.store.lock().unwrap();
            match behavior {
                Behavior::StallAt(at, pause) if ordinal == at => std::thread::sleep(pause),
                Behavior::Slow(each) => std::thread::sleep(each),
                _ => {}
            }
            answer(&req, id, behavior, &mut store, shared, &mut out);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn answer(
    req: &Request,
    id: RequestId,
    behavior: Behavior,
    store: &mut HashMap<Bytes, (u64, Bytes)>,
    shared: &Shared,
    out: &mut BytesMut,
) {
    let id = match behavior {
        Behavior::BadId => RequestId(id.0.wrapping_add(1000)),
        _ => id,
    };
    let next = || shared.version.fetch_add(1, Ordering::Relaxed) + 1;
    match req {
        Request::Get { .. } if matches!(behavior, Behavior::BadValue) => {
            msg::get::encode_response(out, id, 1, b"this value belongs to no key")
        }
        Request::Get { key } => match store.get(key) {
            Some((v, value)) => msg::get::encode_response(out, id, *v, value),
            None => encode::not_found(out, Opcode::GET, id),
        },
        Request::Put { key, value, .. } => {
            let v = next();
            store.insert(key.clone(), (v, value.clone()));
            encode::written(out, Opcode::PUT, id, v);
        }
        Request::Delete { key, .. } => match store.remove(key) {
            Some(_) => encode::written(out, Opcode::DELETE, id, next()),
            None => encode::not_found(out, Opcode::DELETE, id),
        },
        Request::Cas {
            key,
            expected,
            value,
            ..
        } => {
            let current = store.get(key).map_or(0, |r| r.0);
            if current == *expected {
                let v = next();
                store.insert(key.clone(), (v, value.clone()));
                encode::written(out, Opcode::CAS, id, v);
            } else {
                encode::version_conflict(out, Opcode::CAS, id, current);
            }
        }
        Request::Ping { payload } => msg::ping::encode_response(out, id, payload),
        other => encode::error(out, other.opcode(), id, Status::UNKNOWN_OPCODE, b"no"),
    }
}

struct TempJson(PathBuf);

impl TempJson {
    fn new(name: &str) -> TempJson {
        TempJson(std::env::temp_dir().join(format!(
            "switchboard-load-{}-{name}.json",
            std::process::id()
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    fn read(&self) -> Value {
        let text = std::fs::read_to_string(&self.0).expect("JSON written");
        serde_json::from_str(&text).expect("valid JSON")
    }
}

impl Drop for TempJson {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not an unsigned integer: {x}"))
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

#[test]
fn open_loop_sends_rate_times_duration() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("rate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let sent = u(&j, &["sent"]);
    assert!((3960..=4040).contains(&sent), "sent {sent}\n{}", text(&out));
    assert_eq!(u(&j, &["offered"]), 4000);
    assert_eq!(u(&j, &["ops"]), sent);
    assert_eq!(u(&j, &["errors"]), 0);
    let tput = f(&j, &["throughput_ops_per_sec"]);
    assert!((1960.0..=2040.0).contains(&tput), "{tput}");
}

#[test]
fn json_has_every_field_with_its_type() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("fields");
    let out = run_load(&[
        "--addr",
        &addr,
        "--requests",
        "400",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--pipeline",
        "4",
        "--mix",
        "get=4,put=3,del=1,cas=1,ping=1",
        "--keys",
        "50",
        "--value-size",
        "10-200",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["ops"]), 400);
    assert_eq!(u(&j, &["errors"]), 0);
    assert!(u(&j, &["misses"]) <= 400);
    assert!(f(&j, &["duration_s"]) > 0.0);
    assert!(f(&j, &["throughput_ops_per_sec"]) > 0.0);
    assert!(j["client_bound"].is_boolean());
    for hist in ["latency_us", "service_time_us", "dispatch_lag_us"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            assert!(j[hist][p].is_number(), "{hist}.{p} missing: {j}");
        }
    }
    let lat = &j["latency_us"];
    assert!(f(lat, &["p50"]) > 0.0);
    assert!(f(lat, &["p50"]) <= f(lat, &["p99"]) && f(lat, &["p99"]) <= f(lat, &["max"]));
    assert!(f(&j, &["client_cpu_us_per_request"]) > 0.0);
    assert_eq!(j["mode"], "closed");
    let by_type: u64 = j["ops_by_type"]
        .as_object()
        .expect("ops_by_type")
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_type, 400);
    let params = &j["params"];
    assert_eq!(params["protocol"], "switchboard");
    assert_eq!(u(params, &["connections"]), 4);
    assert_eq!(u(params, &["pipeline"]), 4);
    assert_eq!(params["mix"], "get=4,put=3,del=1,cas=1,ping=1");
    assert_eq!(params["value_size"], "10-200");
    assert_eq!(u(params, &["requests"]), 400);
}

#[test]
fn a_stall_shows_in_corrected_latency_but_not_in_service_time() {
    let _serial = serial();
    // 2000/s for 2 s over 10 connections; request 1000 (about 0.5 s in) holds the
    // server for 300 ms. About 600 requests fall due during the stall: corrected
    // latency charges each its wait. Only the ~10 requests already in flight see it in
    // service time: 0.25% of them, under the 1% that p99 looks at.
    let addr = serve(Behavior::StallAt(1000, Duration::from_millis(300))).to_string();
    let json = TempJson::new("stall");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2000",
        "--duration",
        "2s",
        "--warmup",
        "0s",
        "--connections",
        "10",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let corrected_p99 = f(&j, &["latency_us", "p99"]);
    let corrected_p90 = f(&j, &["latency_us", "p90"]);
    let service_p99 = f(&j, &["service_time_us", "p99"]);
    let service_max = f(&j, &["service_time_us", "max"]);
    assert!(
        corrected_p99 >= 200_000.0,
        "corrected p99 {corrected_p99} us\n{}",
        text(&out)
    );
    assert!(
        corrected_p90 >= 20_000.0,
        "corrected p90 {corrected_p90} us"
    );
    assert!(
        service_p99 < 100_000.0,
        "service p99 {service_p99} us\n{}",
        text(&out)
    );
    // The requests in flight during the stall did wait: the stall is real.
    assert!(service_max >= 250_000.0, "service max {service_max} us");
}

#[test]
fn a_server_that_falls_behind_shows_in_throughput_and_corrected_latency() {
    let _serial = serial();
    // Capacity about 950/s, offered 2500/s for 1 s: the 2500 requests take ~2.6 s.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("behind");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "2500",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["ops"]), 2500);
    let tput = f(&j, &["throughput_ops_per_sec"]);
    assert!(
        tput < 1200.0,
        "throughput {tput} is what was offered, not achieved"
    );
    assert!(f(&j, &["duration_s"]) > 2.0);
    // The last requests were due at 1 s and answered near 2.6 s.
    assert!(f(&j, &["latency_us", "p99"]) > 1_000_000.0, "{j}");
    // Each request still took only a few ms once it was on the wire.
    assert!(f(&j, &["service_time_us", "p50"]) < 50_000.0, "{j}");
    assert_eq!(j["client_bound"], false, "{}", text(&out));
    assert!(u(&j, &["slot_waits"]) > 1000);
    assert!(String::from_utf8_lossy(&out.stdout).contains("waited for a free pipeline slot"));
}

#[test]
fn an_unreachable_rate_is_reported_client_bound() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("bound");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "20000000",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--timeout",
        "1s",
        "--connections",
        "4",
        "--pipeline",
        "256",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(j["client_bound"], true, "{}", text(&out));
    assert!(u(&j, &["sent"]) < u(&j, &["offered"]));
    assert!(j["client_bound_reason"].is_string());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CLIENT-BOUND"));
}

#[test]
fn a_reachable_rate_is_not_client_bound() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("notbound");
    let out = run_load(&[
        "--addr",
        &addr,
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["sent"]), 500);
    // Generator lag is judged at p90 against 1 ms; at 500/s it is far below.
    assert_eq!(j["client_bound"], false, "{}", text(&out));
}

#[test]
fn find_max_rate_finds_the_capacity_of_a_slow_server() {
    let _serial = serial();
    // 1 ms per request under one lock: about 900-1000 requests a second at most.
    // Above that the queue grows by hundreds in a 400 ms trial, far past 50 ms; the
    // lower bound is loose because a busy machine adds its own delays.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("maxrate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--find-max-rate",
        "--slo",
        "p99=50ms",
        "--rate",
        "250",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--connections",
        "8",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let max = f(&j, &["find_max_rate", "max_rate_ops_per_sec"]);
    assert!(
        (300.0..=1200.0).contains(&max),
        "max rate {max}\n{}",
        text(&out)
    );
    let trials = j["find_max_rate"]["trials"].as_array().expect("trials");
    assert!(
        trials.iter().any(|t| t["ok"] == false),
        "no trial failed: {j}"
    );
    assert!(trials.iter().any(|t| t["ok"] == true));
    // The reported run is the best passing one.
    assert_eq!(f(&j, &["offered_rate_ops_per_sec"]), max);
}

#[test]
fn an_unmeetable_target_fails_the_search_but_still_reports() {
    let _serial = serial();
    // Every request takes at least 1 ms: p99 = 100 us cannot be met at any rate.
    let addr = serve(Behavior::Slow(Duration::from_millis(1))).to_string();
    let json = TempJson::new("nomaxrate");
    let out = run_load(&[
        "--addr",
        &addr,
        "--find-max-rate",
        "--slo",
        "p99=100us",
        "--rate",
        "50",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rate met p99=100us"));
    let j = json.read();
    assert!(j["find_max_rate"]["max_rate_ops_per_sec"].is_null(), "{j}");
    let trials = j["find_max_rate"]["trials"].as_array().expect("trials");
    assert!(
        trials.len() >= 2 && trials.iter().all(|t| t["ok"] == false),
        "{j}"
    );
    assert!(f(&j, &["latency_us", "p99"]) >= 1000.0);
}

#[test]
fn wrong_request_ids_are_errors_and_fail_the_run() {
    let _serial = serial();
    let addr = serve(Behavior::BadId).to_string();
    let json = TempJson::new("badid");
    let out = run_load(&[
        "--addr",
        &addr,
        "--requests",
        "50",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--mix",
        "get=1",
        "--timeout",
        "2s",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let j = json.read();
    assert!(u(&j, &["error_kinds", "wrong_id"]) > 0, "{j}");
    assert_eq!(u(&j, &["errors"]), 50);
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed their checks"));
}

#[test]
fn wrong_values_are_errors_unless_allowed() {
    let _serial = serial();
    let addr = serve(Behavior::BadValue).to_string();
    let json = TempJson::new("badvalue");
    let args = [
        "--addr",
        &addr,
        "--requests",
        "40",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--mix",
        "get=1",
        "--quiet",
        "--json",
        json.path(),
    ];
    let out = run_load(&args);
    assert!(!out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(u(&j, &["error_kinds", "wrong_value"]), 40, "{j}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not the one derived from its key"));
    let mut allowed = args.to_vec();
    allowed.push("--allow-errors");
    let out = run_load(&allowed);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn values_written_by_one_run_are_checked_by_the_next() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("verify");
    let write = run_load(&[
        "--addr",
        &addr,
        "--requests",
        "500",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--mix",
        "put=1",
        "--keys",
        "100",
        "--value-size",
        "1-3000",
        "--quiet",
    ]);
    assert!(write.status.success(), "{}", text(&write));
    // Read back with another size setting: every key was written, none may mismatch.
    let read = run_load(&[
        "--addr",
        &addr,
        "--requests",
        "500",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--mix",
        "get=1",
        "--keys",
        "100",
        "--value-size",
        "64",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(read.status.success(), "{}", text(&read));
    let j = json.read();
    assert_eq!(u(&j, &["errors"]), 0);
    assert!(u(&j, &["misses"]) < 5, "{j}");
}

#[test]
fn losing_every_connection_stops_the_run_and_fails_it() {
    let _serial = serial();
    let addr = serve(Behavior::CloseAfter(100)).to_string();
    let json = TempJson::new("closed");
    let started = Instant::now();
    let out = run_load(&[
        "--addr",
        &addr,
        "--duration",
        "5s",
        "--warmup",
        "0s",
        "--connections",
        "3",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success(), "{}", text(&out));
    let j = json.read();
    assert!(j["stopped_early"].is_string(), "{j}");
    // The requests in flight when the connections closed are counted as errors.
    assert_eq!(u(&j, &["error_kinds", "connection"]), 3, "{j}");
    assert_eq!(u(&j, &["ops"]), 100);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped early"));
}

#[test]
fn an_interrupt_ends_the_run_with_a_report() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let json = TempJson::new("interrupt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-load"))
        .args([
            "--addr",
            &addr,
            "--duration",
            "30s",
            "--warmup",
            "0s",
            "--connections",
            "2",
        ])
        .args(["--rate", "1000", "--json", json.path()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchboard-load");
    // The first progress line (after about a second) says the run is under way.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(RUN_LIMIT);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    assert!(first.is_ok(), "no progress line");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let out = match done_rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!("switchboard-load did not stop after SIGINT");
        }
    };
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stdout).contains("STOPPED EARLY: interrupted"));
    let j = json.read();
    let ops = u(&j, &["ops"]);
    assert!(ops > 0 && ops < 30_000, "{ops}");
    assert_eq!(u(&j, &["errors"]), 0);
}

#[test]
fn reconnect_reopens_closed_connections_and_the_run_completes() {
    let _serial = serial();
    let addr = serve(Behavior::CloseEachAfter(50)).to_string();
    let json = TempJson::new("reconnect");
    let out = run_load(&[
        "--addr",
        &addr,
        "--reconnect",
        "--requests",
        "400",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--mix",
        "get=1",
        "--allow-errors",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let (ops, errors) = (u(&j, &["ops"]), u(&j, &["errors"]));
    // Each connection serves 50 requests, then drops the 51st: one error per close.
    assert_eq!(ops + errors, 400, "{j}");
    assert_eq!(u(&j, &["error_kinds", "connection"]), errors);
    assert!(errors >= 6 && ops >= 300, "{j}");
    assert!(u(&j, &["reconnects"]) >= 6, "{j}");
    assert!(j["stopped_early"].is_null(), "{j}");
}

#[test]
fn reconnect_gives_up_when_the_server_is_gone_for_longer_than_the_timeout() {
    let _serial = serial();
    // Serves 20 requests in all, then closes every connection, new ones included.
    let addr = serve(Behavior::CloseAfter(20)).to_string();
    let json = TempJson::new("gone");
    let started = Instant::now();
    let out = run_load(&[
        "--addr",
        &addr,
        "--reconnect",
        "--requests",
        "100000",
        "--warmup",
        "0s",
        "--connections",
        "2",
        "--timeout",
        "1s",
        "--quiet",
        "--json",
        json.path(),
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    let j = json.read();
    assert!(j["stopped_early"].is_string(), "{j}");
    assert_eq!(u(&j, &["ops"]), 20);
}

#[test]
fn an_unreachable_address_fails_fast_and_says_why() {
    let _serial = serial();
    // Bind, note the port, close: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = run_load(&["--addr", &addr, "--duration", "5s", "--quiet"]);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn cas_over_resp_is_refused_with_a_reason() {
    let _serial = serial();
    let out = run_load(&[
        "--addr",
        "127.0.0.1:9",
        "--protocol",
        "resp",
        "--mix",
        "cas=1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cas is not supported"));
}
