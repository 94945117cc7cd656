//! switchboard-load against a real switchboard server running in this process: the
//! number of requests the generator reports is the number the server counted, and its
//! checks pass on a real store. Driven both through the binary and through the
//! library's engine directly.

mod common;

use common::{run_load, serial, text, TempJson, TestServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_load::{Error, Settings};

/// Runs a fixed number of requests through the binary and compares with the server's
/// own counters.
fn requests_match_server_counters(workers: usize, pipeline: &str) {
    let server = TestServer::start(workers);
    let addr = server.addr.to_string();
    let before = server.stats();
    let json = TempJson::new(&format!("count-{workers}-{pipeline}"));
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
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let after = server.stats();
    let j = json.read();
    assert_eq!(j["ops"], 3000);
    assert_eq!(j["errors"], 0);
    // The STATS request of `before` is the one extra request.
    let counted = |name| server.counter(&after, name) - server.counter(&before, name);
    assert_eq!(counted("requests_total"), 3000 + 1, "{}", text(&out));
    for (op, name) in [
        ("get", "cmd_get"),
        ("put", "cmd_put"),
        ("del", "cmd_delete"),
        ("cas", "cmd_cas"),
        ("ping", "cmd_ping"),
    ] {
        assert_eq!(
            Some(counted(name)),
            j["ops_by_type"][op].as_u64(),
            "{op}: {j}"
        );
    }
}

#[test]
fn closed_loop_request_count_matches_the_server_inline() {
    let _serial = serial();
    requests_match_server_counters(0, "1");
}

#[test]
fn pipelined_request_count_matches_the_server_with_workers() {
    let _serial = serial();
    requests_match_server_counters(1, "16");
}

#[test]
fn open_loop_against_the_server_sends_the_schedule() {
    let _serial = serial();
    let server = TestServer::start(1);
    let addr = server.addr.to_string();
    let before = server.stats();
    let json = TempJson::new("open");
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
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(j["sent"], 1500);
    assert_eq!(j["ops"], 1500);
    let after = server.stats();
    let total =
        server.counter(&after, "requests_total") - server.counter(&before, "requests_total");
    assert_eq!(total, 1500 + 1);
}

/// Settings for an in-process run against `server`, from command-line words.
fn settings(server: &TestServer, words: &[&str]) -> Settings {
    let addr = server.addr.to_string();
    let mut all = vec!["--addr", &addr];
    all.extend_from_slice(words);
    Settings::from_args(all).expect("valid settings")
}

#[test]
fn the_engine_runs_in_process_and_its_outcome_matches_the_server() {
    let _serial = serial();
    let server = TestServer::start(1);
    let s = settings(
        &server,
        &[
            "--requests",
            "2000",
            "--warmup",
            "0s",
            "--connections",
            "4",
            "--threads",
            "2",
            "--pipeline",
            "8",
            "--mix",
            "get=2,put=2,cas=1",
            "--keys",
            "50",
        ],
    );
    let addrs = s.resolve().unwrap();
    let before = server.stats();
    let mut last_elapsed = Duration::ZERO;
    let run = switchboard_load::run(
        &s,
        &addrs,
        None,
        &Arc::new(AtomicBool::new(false)),
        &mut |progress, elapsed| {
            // The watcher sees a clock that only moves forward and live counters.
            assert!(elapsed >= last_elapsed);
            last_elapsed = elapsed;
            assert!(progress.completed.load(Ordering::Relaxed) <= 2000);
        },
    )
    .expect("the run completes");
    let o = &run.outcome;
    assert_eq!(
        (o.ops, o.sent, o.errors(), o.warmup_errors),
        (2000, 2000, 0, 0)
    );
    assert_eq!(o.answered_all, 2000);
    assert_eq!(o.per_op.iter().sum::<u64>(), 2000);
    assert!(o.gave_up.is_none() && o.first_error.is_none(), "{o:?}");
    assert!(o.rate.is_none() && o.offered().is_none());
    assert_eq!(o.corrected.len(), 2000, "one latency per measured answer");
    assert!(o.duration_s > 0.0 && o.throughput() > 0.0);
    assert_eq!(run.params["pipeline"], 8);
    let after = server.stats();
    let counted = |name| server.counter(&after, name) - server.counter(&before, name);
    assert_eq!(counted("cmd_cas"), o.per_op[3]);
    assert_eq!(counted("cmd_put"), o.per_op[1]);
}

#[test]
fn an_interrupt_ends_an_in_process_run_early_with_what_was_measured() {
    let _serial = serial();
    let server = TestServer::start(0);
    let s = settings(
        &server,
        &[
            "--duration",
            "60s",
            "--warmup",
            "0s",
            "--connections",
            "2",
            "--rate",
            "2000",
        ],
    );
    let addrs = s.resolve().unwrap();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    let started = Instant::now();
    let run = switchboard_load::run(&s, &addrs, s.rate, &interrupted, &mut |p, _| {
        if p.completed.load(Ordering::Relaxed) >= 200 {
            flag.store(true, Ordering::Relaxed);
        }
    })
    .expect("the run completes");
    assert!(started.elapsed() < Duration::from_secs(20), "stopped early");
    let o = &run.outcome;
    assert!(
        o.gave_up.as_deref().unwrap_or("").contains("interrupted"),
        "{o:?}"
    );
    assert!(o.ops >= 200 && o.errors() == 0, "{o:?}");
    assert_eq!(o.ops, o.sent, "what was sent was drained and answered");
}

#[test]
fn an_unreachable_server_is_a_connect_error_before_anything_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s =
        Settings::from_args(["--addr", &format!("127.0.0.1:{port}"), "--requests", "10"]).unwrap();
    let addrs = s.resolve().unwrap();
    let err = switchboard_load::run(&s, &addrs, None, &Arc::default(), &mut |_, _| {})
        .expect_err("nothing listens there");
    assert!(
        matches!(err, Error::Connect(ref m) if m.contains("cannot connect")),
        "{err}"
    );
    assert_eq!(err.exit_code(), 2);
}

/// Over TLS the binary's counts match the server's, and a certificate it was not told
/// to trust stops the run before the clock starts.
#[test]
fn the_generator_speaks_tls_and_checks_the_certificate() {
    let dir = std::env::temp_dir().join(format!("switchboard-load-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let config = switchboard::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        tls: Some(switchboard::tls::TlsConfig::new(&cert, &key)),
        ..switchboard::config::Config::default()
    };
    let server = switchboard::server::Server::bind(&config)
        .unwrap()
        .spawn()
        .unwrap();
    let addr = server.local_addr().to_string();
    let json = TempJson::new("tls");
    let common = [
        "--addr",
        &addr,
        "--requests",
        "2000",
        "--warmup",
        "0s",
        "--connections",
        "4",
        "--pipeline",
        "16",
        "--mix",
        "get=1,put=1",
        "--keys",
        "100",
        "--quiet",
    ];
    let mut args = common.to_vec();
    let ca = cert.to_str().unwrap();
    args.extend([
        "--tls-ca",
        ca,
        "--tls-server-name",
        "localhost",
        "--json",
        json.path(),
    ]);
    let out = run_load(&args);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    assert_eq!(
        (j["ops"].as_u64(), j["errors"].as_u64()),
        (Some(2000), Some(0))
    );

    // Not trusted (the name does not match): refused at the handshake.
    let mut args = common.to_vec();
    args.extend(["--tls-ca", ca, "--tls-server-name", "other.example"]);
    let out = run_load(&args);
    assert!(!out.status.success());
    assert!(text(&out).contains("TLS handshake"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_connection_authenticates_with_the_token_file() {
    let server = TestServer::start_with(switchboard::config::Config {
        workers: 1,
        auth: Some(Arc::new(switchboard::auth::TokenCheck::from_token(
            b"load-s3cret",
        ))),
        ..switchboard::config::Config::default()
    });
    let addr = server.addr.to_string();
    let file = std::env::temp_dir().join(format!("sb-load-token-{}", std::process::id()));
    std::fs::write(&file, "load-s3cret\n").unwrap();
    let token = file.to_str().unwrap();
    let base = [
        "--addr",
        &addr,
        "--auth-token-file",
        token,
        "--warmup",
        "0s",
    ];
    let out = run_load(
        &[
            &base[..],
            &["--requests", "500", "--connections", "4", "--quiet"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    // Publishers and subscribers too.
    let out = run_load(
        &[
            &base[..],
            &[
                "--workload",
                "pubsub",
                "--subscribers",
                "2",
                "--publishers",
                "1",
                "--duration",
                "300ms",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    // Without the token the run cannot start, and says why.
    std::fs::write(&file, "wrong\n").unwrap();
    let out = run_load(&[&base[..], &["--requests", "10", "--quiet"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("AUTH_FAILED"), "{}", text(&out));
    let _ = std::fs::remove_file(&file);
}
