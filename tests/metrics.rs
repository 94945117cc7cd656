//! The Prometheus endpoint: a scrape parses with a Prometheus text parser and its
//! figures follow what the server did.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client};
use switchboard::config::Config;
use switchboard::protocol::Request;
use switchboard::server::{Running, Server};

/// A server on loopback with its metrics endpoint, and where that listens.
fn start(workers: usize) -> (Running, std::net::SocketAddr) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        workers,
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let metrics = server.metrics_addr().expect("an endpoint");
    (server.spawn().unwrap(), metrics)
}

/// A scrape of `/metrics`, parsed as Prometheus would.
fn parsed(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let (head, body) = scrape(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus parses the scrape")
}

/// Scrapes until `done` holds of a scrape, for figures published once per reactor
/// iteration; panics after 10 s.
fn scrape_until(
    addr: std::net::SocketAddr,
    what: &str,
    mut done: impl FnMut(&prometheus_parse::Scrape) -> bool,
) -> prometheus_parse::Scrape {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = parsed(addr);
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The latency histogram's cumulative buckets, its count and its sum, checked to be
/// one well-formed histogram: bounds rising to +Inf, counts never falling, the +Inf
/// bucket equal to the count.
fn latency(scrape: &prometheus_parse::Scrape) -> (Vec<(f64, f64)>, f64, f64) {
    let name = "switchboard_request_duration_seconds";
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no {name} in the scrape"));
    let prometheus_parse::Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram: {:?}", sample.value);
    };
    let buckets: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    let count = value(scrape, &format!("{name}_count"), None);
    let sum = value(scrape, &format!("{name}_sum"), None);
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert!(
        buckets[0].0 <= 20e-6,
        "the first bound is some microseconds: {buckets:?}"
    );
    let last = buckets.last().unwrap();
    assert!(
        last.0.is_infinite() && last.1 == count,
        "{buckets:?} count {count}"
    );
    let finite = buckets[buckets.len() - 2].0;
    assert!(
        (0.5..=10.0).contains(&finite),
        "the last bound is about a second: {finite}"
    );
    (buckets, count, sum)
}

fn scrape(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    (head.to_string(), body.to_string())
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no {name} {label:?} in the scrape"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_scrape_parses_and_counts_what_the_server_did() {
    let (server, metrics) = start(Config::default_workers());
    let mut c = Client::connect(server.local_addr()).unwrap();
    c.put("a", "1").unwrap();
    c.put("b", "2").unwrap();
    assert!(c.get("a").unwrap().is_some());
    assert!(c.get("zz").unwrap().is_none());
    // Counters are published once per reactor iteration: a STATS round trip has
    // passed at least one since the requests above.
    c.stats().unwrap();

    let (head, body) = scrape(metrics, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus parses the scrape");
    assert_eq!(
        value(
            &parsed,
            "switchboard_requests_total",
            Some(("opcode", "PUT"))
        ),
        2.0
    );
    assert_eq!(
        value(
            &parsed,
            "switchboard_requests_total",
            Some(("opcode", "GET"))
        ),
        2.0
    );
    assert_eq!(
        value(
            &parsed,
            "switchboard_request_outcomes_total",
            Some(("outcome", "get_miss"))
        ),
        1.0
    );
    assert_eq!(value(&parsed, "switchboard_connections", None), 1.0);
    assert_eq!(value(&parsed, "switchboard_records", None), 2.0);
    assert!(value(&parsed, "switchboard_received_bytes_total", None) > 0.0);

    // The four requests before STATS were answered and published: each is in the
    // latency histogram, which took some time for them, and not an hour.
    let (buckets, count, sum) = latency(&parsed);
    assert!(count >= 4.0, "{buckets:?}");
    assert!(sum > 0.0 && sum / count < 1.0, "sum {sum} count {count}");
    // Nothing is queued once the answers are back: the gauges say so after the
    // iteration that delivered the last one is published.
    let idle = scrape_until(metrics, "the queues are empty", |s| {
        value(s, "switchboard_worker_queue_requests", None) == 0.0
            && value(s, "switchboard_worker_queue_batches", None) == 0.0
    });
    for gauge in [
        "switchboard_connections_output_waiting",
        "switchboard_sequencer_held_changes",
    ] {
        assert_eq!(value(&idle, gauge, None), 0.0, "{gauge}");
    }
    for counter in [
        "switchboard_output_limit_reached_total",
        "switchboard_subscriptions_fell_behind_total",
    ] {
        assert_eq!(value(&idle, counter, None), 0.0, "{counter}");
    }

    let (head, _) = scrape(metrics, "/elsewhere");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, body) = scrape(metrics, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200") && body == "ok\n", "{head}");
    let (head, _) = scrape(metrics, "/readyz");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(server);
    // Stopped with the server.
    assert!(TcpStream::connect(metrics).is_err() || scrape_fails(metrics));
}

/// True when a connection to the stopped endpoint gets no answer.
fn scrape_fails(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return true;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut buf = [0u8; 16];
    !matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// A client that pipelines large GETs and never reads: the server stops at its output
/// limit, counts that, and shows the connection waiting on its client; the worker
/// pool's queue empties (the jobs it did not run are the connection's to hold), and
/// STATS reports the same figures.
#[test]
fn a_client_that_does_not_read_shows_in_the_output_figures() {
    let (server, metrics) = start(1);
    let mut c = Client::connect(server.local_addr()).unwrap();
    c.put("big", vec![b'v'; 256 << 10]).unwrap();
    let mut stuck = Client::connect(server.local_addr()).unwrap();
    for _ in 0..200 {
        stuck
            .send(&Request::Get {
                key: bytes::Bytes::from_static(b"big"),
            })
            .unwrap();
    }
    stuck.flush().unwrap();

    let scrape = scrape_until(metrics, "the non-reader waits at its limit", |s| {
        value(s, "switchboard_output_limit_reached_total", None) >= 1.0
            && value(s, "switchboard_connections_output_waiting", None) == 1.0
            && value(s, "switchboard_worker_queue_requests", None) == 0.0
    });
    assert_eq!(
        value(&scrape, "switchboard_worker_queue_batches", None),
        0.0
    );
    let (_, count, _) = latency(&scrape);
    assert!(count >= 2.0, "the PUT and the GETs that ran: {count}");

    let stats = c.stats().unwrap();
    let figure = |name| stat(&stats, name).unwrap_or_else(|| panic!("no {name} in STATS"));
    assert!(figure("output_limit_reached") >= 1);
    assert_eq!(figure("connections_output_waiting"), 1);
    assert!(figure("request_latency_count") >= 2);
    let (p50, p99) = (
        figure("request_latency_p50_us"),
        figure("request_latency_p99_us"),
    );
    assert!(p50 >= 10 && p50 <= p99, "p50 {p50} µs, p99 {p99} µs");
    for name in [
        "worker_queue_requests",
        "worker_queue_batches",
        "sequencer_held_changes",
        "request_latency_sum_us",
        "push_subscriptions_fell_behind",
    ] {
        figure(name);
    }
    drop(stuck);
}

#[test]
fn with_a_data_directory_the_log_is_in_the_scrape() {
    let dir = std::env::temp_dir().join(format!("switchboard-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        workers: 1,
        durability: Some(switchboard::durability::DurabilityConfig::new(&dir)),
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let metrics = server.metrics_addr().expect("an endpoint");
    let running = server.spawn().unwrap();
    let mut c = switchboard::client::Client::connect(running.local_addr()).unwrap();
    for i in 0..5 {
        c.put(format!("k{i}"), "v").unwrap();
    }
    // Every answer came after its sync, so the scrape sees them all durable.
    let scrape = parsed(metrics);
    assert_eq!(value(&scrape, "switchboard_durable_sequence", None), 5.0);
    assert!(value(&scrape, "switchboard_log_bytes", None) > 0.0);
    assert_eq!(
        value(&scrape, "switchboard_log_synced_changes_total", None),
        5.0
    );
    assert_eq!(
        value(&scrape, "switchboard_log_compactions_total", None),
        0.0
    );
    assert_eq!(value(&scrape, "switchboard_snapshot_bytes", None), 0.0);
    assert_eq!(
        value(&scrape, "switchboard_storage_full_events_total", None),
        0.0
    );
    let syncs = scrape
        .samples
        .iter()
        .find(|s| s.metric == "switchboard_log_sync_duration_seconds")
        .expect("the sync histogram");
    match &syncs.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let total = buckets.last().expect("buckets").count;
            assert!((1.0..=5.0).contains(&total), "{total} syncs for 5 writes");
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}
