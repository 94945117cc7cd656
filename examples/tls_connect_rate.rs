//! New TLS connections per second against a server: each connects, finishes the
//! handshake, exchanges one PING (switchboard's frame, or Redis's `PING` with
//! `--resp`), and closes. With `--resume` the connections share one client
//! configuration and so resume the session a previous one received; without it every
//! handshake is a full one.
//!
//! ```text
//! cargo run --release --example tls_connect_rate -- ADDR CAFILE SECONDS [--resume] [--resp]
//! ```
//!
//! Prints connections per second and how many of the handshakes resumed. One client
//! thread: what one core of handshakes costs both sides, for comparing servers under
//! the same client, not a server's ceiling.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A switchboard PING with id 1 and no payload, and its answer.
const PING: [u8; 12] = [0, 0, 0, 8, 1, 2, 0, 0, 0, 0, 0, 1];
const RESP_PING: &[u8] = b"PING\r\n";
const RESP_PONG: &[u8] = b"+PONG\r\n";

fn config(ca: &str, resume: bool) -> Arc<ClientConfig> {
    let roots = switchboard::tls::load_roots(ca.as_ref()).expect("CA file");
    let mut config = ClientConfig::builder_with_provider(switchboard::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: tls_connect_rate ADDR CAFILE SECONDS [--resume] [--resp]");
        std::process::exit(2);
    }
    let (addr, ca) = (&args[0], &args[1]);
    let seconds: f64 = args[2].parse().expect("SECONDS");
    let resume = args.iter().any(|a| a == "--resume");
    let resp = args.iter().any(|a| a == "--resp");
    let name = ServerName::try_from("localhost").unwrap();
    let config = config(ca, resume);
    let (request, answer): (&[u8], &[u8]) = if resp {
        (RESP_PING, RESP_PONG)
    } else {
        (&PING, &PING)
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let (mut done, mut resumed) = (0u64, 0u64);
    let mut buf = vec![0u8; answer.len()];
    while Instant::now() < deadline {
        let tcp = TcpStream::connect(addr.as_str()).expect("connect");
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = ClientConnection::new(config.clone(), name.clone()).expect("session");
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(request).expect("write");
        tls.read_exact(&mut buf).expect("answer");
        assert_eq!(&buf[..], answer, "unexpected answer");
        if matches!(
            tls.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed)
        ) {
            resumed += 1;
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        done += 1;
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "{done} connections in {took:.2} s: {:.0} per second, {resumed} resumed",
        done as f64 / took
    );
}
