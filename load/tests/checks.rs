//! switchboard-load's checks against fake servers that answer wrongly or go away:
//! wrong ids and values fail the run, values written by one run are checked by the
//! next, lost connections and interrupts end a run with a report, and --reconnect
//! re-opens what was lost.

mod common;

use common::fake::{serve, Behavior};
use common::{f, run_load, serial, text, u, TempJson, RUN_LIMIT};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("CLIENT-BOUND"),
        "an interrupt is not the generator's fault: {stdout}"
    );
    let j = json.read();
    let ops = u(&j, &["ops"]);
    assert!(ops > 0 && ops < 30_000, "{ops}");
    assert_eq!(u(&j, &["errors"]), 0);
    assert_eq!(j["interrupted"], true);
    // The time actually measured, not the 30 s planned, so the rate is the real one.
    let measured = f(&j, &["duration_s"]);
    assert!(measured > 0.5 && measured < 15.0, "duration_s {measured}");
    let rate = f(&j, &["throughput_ops_per_sec"]);
    assert!(
        (rate - 1000.0).abs() < 200.0,
        "{rate} ops/s at an offered 1000/s"
    );
    assert_eq!(j["client_bound"], false);
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

#[test]
fn output_paths_are_checked_before_the_run() {
    let out = run_load(&[
        "--addr",
        "127.0.0.1:1",
        "--json",
        "/nonexistent-directory/out.json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot write /nonexistent-directory/out.json"));
    let out = run_load(&["--addr", "127.0.0.1:1", "--plot", "latency.png"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--plot writes SVG"), "{}", text(&out));
}

#[test]
fn a_server_of_another_protocol_gets_a_hint_and_the_address_defaults_by_protocol() {
    use std::io::{Read, Write};
    let _serial = serial();
    // Something that answers every request with a Redis error line.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(b"-ERR unknown command\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let out = run_load(&[
        "--addr",
        &addr,
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--timeout",
        "1s",
        "--connections",
        "1",
        "--quiet",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not one answer was right: is"),
        "{}",
        text(&out)
    );
    for (protocol, addr) in [
        ("switchboard", "127.0.0.1:7420"),
        ("resp", "127.0.0.1:6379"),
        ("memcache", "127.0.0.1:11211"),
    ] {
        let s = switchboard_load::Settings::from_args(["--protocol", protocol]).unwrap();
        assert_eq!(s.addrs, [addr]);
    }
}

#[test]
fn plots_show_the_parameters_the_target_and_several_runs_and_export_hdr_text() {
    let _serial = serial();
    let addr = serve(Behavior::Correct).to_string();
    let dir = std::env::temp_dir().join(format!("switchboard-load-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    for (json, rate) in [("a.json", "500"), ("b.json", "1000")] {
        let out = run_load(&[
            "--addr",
            &addr,
            "--rate",
            rate,
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--quiet",
            "--slo",
            "p99=5ms",
            "--json",
            &file(json),
            "--plot",
            &file("run.svg"),
            "--hdr",
            &file("run.hdr"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let svg = std::fs::read_to_string(file("run.svg")).unwrap();
    assert!(svg.contains("target p99=5ms"), "the SLO line");
    assert!(svg.contains("µs"), "latency labelled in µs");
    assert!(
        svg.contains("2 connections, pipeline 1"),
        "the parameters in the title"
    );
    let hdr = std::fs::read_to_string(file("run.hdr")).unwrap();
    assert!(hdr.lines().next().unwrap().contains("Percentile"));
    assert!(hdr.contains("#[Max     ="));
    let out = run_load(&[
        "--plot-json",
        &file("a.json"),
        &file("b.json"),
        "--plot",
        &file("both.svg"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let both = std::fs::read_to_string(file("both.svg")).unwrap();
    assert!(
        both.contains("a.json") && both.contains("b.json"),
        "a series per run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reconnected_connections_authenticate_before_their_first_request() {
    let _serial = serial();
    let addr = serve(Behavior::TokenThenCloseEachAfter(50)).to_string();
    let file = std::env::temp_dir().join(format!("sb-load-fake-token-{}", std::process::id()));
    std::fs::write(&file, common::fake::TOKEN).unwrap();
    let json = TempJson::new("reconnect-token");
    let out = run_load(&[
        "--addr",
        &addr,
        "--auth-token-file",
        file.to_str().unwrap(),
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
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    let (ops, errors) = (u(&j, &["ops"]), u(&j, &["errors"]));
    // The HELLOs are not requests: every request is an answer or one lost per close,
    // and a reconnected connection that skipped its HELLO would be closed at once.
    assert_eq!(ops + errors, 400, "{j}");
    assert!(errors >= 6 && ops >= 300, "{j}");
    assert!(u(&j, &["reconnects"]) >= 6, "{j}");
}
