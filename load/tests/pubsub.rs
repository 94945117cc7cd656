//! The push workloads against a real switchboard server in this process: every
//! published message and every change reaches every subscriber once, in order, and the
//! counts agree with the server's.

mod common;

use common::{run_load, serial, text, u, TempJson, TestServer};

#[test]
fn pubsub_delivers_every_message_to_every_subscriber() {
    let _serial = serial();
    let server = TestServer::start(1);
    let addr = server.addr.to_string();
    let json = TempJson::new("pubsub");
    let out = run_load(&[
        "--addr",
        &addr,
        "--workload",
        "pubsub",
        "--subscribers",
        "3",
        "--publishers",
        "2",
        "--pipeline",
        "8",
        "--value-size",
        "100",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    for field in ["missing", "duplicated", "out_of_order", "errors"] {
        assert_eq!(u(&j, &[field]), 0, "{field}: {j}");
    }
    let published = u(&j, &["published"]);
    assert!(published > 0);
    assert_eq!(
        u(&j, &["deliveries"]),
        3 * published,
        "each message measured reached all three subscribers: {j}"
    );
    assert!(j["deliveries_per_sec"].as_f64().unwrap() > 0.0);
    let stats = server.stats();
    assert!(server.counter(&stats, "cmd_publish") >= published);
    assert_eq!(server.counter(&stats, "push_messages_lost"), 0);
}

#[test]
fn watch_sees_every_change_of_every_writer() {
    let _serial = serial();
    let server = TestServer::start(1);
    let addr = server.addr.to_string();
    let json = TempJson::new("watch");
    let out = run_load(&[
        "--addr",
        &addr,
        "--workload",
        "watch",
        "--subscribers",
        "2",
        "--publishers",
        "3",
        "--pipeline",
        "4",
        "--keys",
        "50",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--json",
        json.path(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let j = json.read();
    for field in ["missing", "duplicated", "out_of_order", "errors"] {
        assert_eq!(u(&j, &[field]), 0, "{field}: {j}");
    }
    let stats = server.stats();
    let writes = server.counter(&stats, "cmd_put");
    assert!(writes > 0);
    assert_eq!(
        server.counter(&stats, "push_events_sent"),
        2 * writes,
        "two watchers, an event each per write"
    );
}

#[test]
fn memcached_has_no_pubsub_and_watch_needs_switchboard() {
    let out = run_load(&[
        "--addr",
        "127.0.0.1:1",
        "--workload",
        "watch",
        "--protocol",
        "resp",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--workload watch needs --protocol switchboard"));
}
