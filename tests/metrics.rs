//! The Prometheus endpoint: a scrape parses with a Prometheus text parser and its
//! figures follow what the server did.

use std::io::{Read, Write};
use std::net::TcpStream;
use switchboard::config::Config;
use switchboard::server::Server;

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
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let metrics = server.metrics_addr().expect("an endpoint");
    let server = server.spawn().unwrap();
    let mut c = switchboard::client::Client::connect(server.local_addr()).unwrap();
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
