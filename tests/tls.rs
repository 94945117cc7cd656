//! TLS on the real server binary over loopback: round trips through the Rust client
//! and Python, client certificates, certificates the clients must refuse, stalled
//! handshakes, plaintext on the TLS port, SIGHUP reload, and `openssl s_client`.
//!
//! Certificates are made at test time (`common::tls`). Each server also listens in
//! plaintext (`--plaintext-listen`) so the test can read STATS without TLS.

mod common;

use common::tls::{client_trusting, Certs};
use common::{ServerProcess, WAIT};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client, ClientTls};

/// A PING request with id 7 and payload "hi" (protocol-spec.md sections 3, 4, 7.2),
/// and its answer: the same bytes, status OK.
const PING: [u8; 14] = [0, 0, 0, 10, 1, 2, 0, 0, 0, 0, 0, 7, b'h', b'i'];
const PONG: [u8; 14] = PING;

/// A TLS server with a plaintext listener beside it.
struct TlsServer {
    process: ServerProcess,
    plaintext: SocketAddr,
}

impl TlsServer {
    fn start(certs: &Certs, extra: &[&str]) -> TlsServer {
        let mut flags = certs.server_flags("server");
        flags.extend(["--plaintext-listen".to_string(), "127.0.0.1:0".to_string()]);
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let process = ServerProcess::start(&flags);
        let line = process.startup_line("plaintext listening on ");
        let plaintext = line["plaintext listening on ".len()..].parse().unwrap();
        TlsServer { process, plaintext }
    }

    fn addr(&self) -> SocketAddr {
        self.process.addr
    }

    fn stat(&self, name: &str) -> u64 {
        let mut c = Client::connect(self.plaintext).expect("plaintext listener");
        c.set_timeout(Some(WAIT)).unwrap();
        stat(&c.stats().expect("STATS"), name).unwrap_or_else(|| panic!("no stat {name}"))
    }

    fn tls_client(&self, tls: &ClientTls) -> switchboard::client::Result<Client> {
        let mut c = Client::connect_tls(self.addr(), tls)?;
        c.set_timeout(Some(WAIT))?;
        Ok(c)
    }
}

/// Reads until the server closes; returns what arrived and how long it took. Fails
/// the test if the connection is still open after `WAIT`.
fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (got, start.elapsed())
}

#[test]
fn rust_client_round_trips_over_tls_and_plaintext_is_only_on_its_own_port() {
    let certs = Certs::new("roundtrip");
    let server = TlsServer::start(&certs, &[]);
    let mut c = server.tls_client(&certs.client()).expect("TLS connect");
    c.ping().unwrap();
    let v = c.put("greeting", "hello").unwrap();
    let r = c.get("greeting").unwrap().expect("just written");
    assert_eq!((r.version, &r.value[..]), (v, &b"hello"[..]));
    // A pipeline whose answers span several TLS records.
    let big = vec![b'x'; 100_000];
    c.put("big", big.clone()).unwrap();
    let mut p = c.pipeline();
    for _ in 0..16 {
        p = p.get("big");
    }
    let answers = p.send().unwrap();
    assert_eq!(answers.len(), 16);
    // The same store over the plaintext listener.
    let mut plain = Client::connect(server.plaintext).unwrap();
    assert_eq!(&plain.get("greeting").unwrap().unwrap().value[..], b"hello");
    assert!(server.stat("tls_handshakes") >= 1);
}

#[test]
fn client_certificates_required_present_is_served_missing_is_refused() {
    let certs = Certs::new("mtls");
    let ca = certs.path("ca.pem");
    let server = TlsServer::start(&certs, &["--tls-client-ca", &ca]);
    let mut with = server.tls_client(&certs.client_with_cert()).unwrap();
    with.ping().expect("a client with a certificate is served");

    // TLS 1.3 lets the client finish its side first: the refusal arrives with the
    // first read, as an error, never as an answer.
    let refused = server
        .tls_client(&certs.client())
        .and_then(|mut c| c.ping());
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    common::wait_until("the refusal is counted", || {
        server.stat("closed_tls_handshake") >= 1
    });
}

#[test]
fn clients_refuse_expired_and_wrong_host_certificates() {
    let certs = Certs::new("refuse");
    for (pair, why) in [("expired", "expired"), ("wronghost", "for another host")] {
        let mut flags = certs.server_flags(pair);
        flags.extend(["--plaintext-listen".to_string(), "127.0.0.1:0".to_string()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = ServerProcess::start(&flags);
        let err = Client::connect_tls(server.addr, &certs.client())
            .err()
            .unwrap_or_else(|| panic!("the Rust client accepted a certificate {why}"));
        let text = err.to_string().to_lowercase();
        assert!(
            text.contains("certificate") || text.contains("name"),
            "{why}: {text}"
        );
        // Python's ssl module refuses it too.
        let outcome = python(&format!(
            "import ssl, switchboard_client as sb\n\
             try:\n    sb.Client('{}', ca_file={:?}, server_hostname='localhost')\n    print('ACCEPTED')\n\
             except ssl.SSLError as e:\n    print('REFUSED', e)\n",
            server.addr,
            certs.path("ca.pem")
        ));
        if let Some(out) = outcome {
            assert!(
                out.starts_with("REFUSED"),
                "Python accepted a certificate {why}: {out}"
            );
        }
    }
}

#[test]
fn stalled_handshakes_are_closed_at_the_deadline() {
    let certs = Certs::new("stall");
    let server = TlsServer::start(&certs, &["--tls-handshake-timeout", "0.3"]);
    let start = Instant::now();
    // Connects and sends nothing.
    let mut silent = TcpStream::connect(server.addr()).unwrap();
    // Sends the first half of a ClientHello's record: a header announcing 512 bytes
    // and a few of them.
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(&[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ])
    .unwrap();
    for stream in [&mut silent, &mut half] {
        let (got, _) = read_to_close(stream);
        let took = start.elapsed();
        assert!(
            got.is_empty() || got[0] == 0x15,
            "only an alert may come: {got:?}"
        );
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "closed after {took:?}, not at the 0.3 s deadline"
        );
    }
    common::wait_until("both are counted", || {
        server.stat("closed_tls_handshake") == 2
    });
}

#[test]
fn a_plaintext_frame_on_the_tls_port_gets_no_frame_and_a_prompt_close() {
    let certs = Certs::new("plain");
    let server = TlsServer::start(&certs, &[]);
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(&PING).unwrap();
    let (got, took) = read_to_close(&mut raw);
    // At most a TLS alert record (content type 21), never a switchboard frame.
    assert!(
        got.is_empty() || got[0] == 0x15,
        "answered in clear: {got:?}"
    );
    assert!(!got.windows(PONG.len()).any(|w| w == PONG));
    assert!(took < Duration::from_secs(2), "closed only after {took:?}");
    common::wait_until("the close is counted", || {
        server.stat("closed_tls_handshake") == 1
    });
    // The same frame on the plaintext listener is answered.
    let mut plain = TcpStream::connect(server.plaintext).unwrap();
    plain.write_all(&PING).unwrap();
    let mut answer = [0u8; 14];
    plain.set_read_timeout(Some(WAIT)).unwrap();
    plain.read_exact(&mut answer).unwrap();
    assert_eq!(answer, PONG);
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_go_on() {
    let certs = Certs::new("reload");
    let server = TlsServer::start(&certs, &[]);
    let mut old = server.tls_client(&certs.client()).unwrap();
    old.put("k", "v").unwrap();

    // A certificate from another CA replaces the files in place.
    let other = common::tls::Ca::new("another CA");
    certs.write("other-ca.pem", &other.pem());
    certs.write_pair(
        "server",
        other.issue(&["localhost", "127.0.0.1"], false, false),
    );
    let status = Command::new("kill")
        .args(["-HUP", &server.process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    common::wait_until("the reload is counted", || server.stat("tls_reloads") == 1);

    let trusting_new = client_trusting(&certs.dir.join("other-ca.pem"), None);
    let mut new = server
        .tls_client(&trusting_new)
        .expect("the new certificate");
    new.ping().unwrap();
    assert!(
        server.tls_client(&certs.client()).is_err(),
        "a new handshake still used the old certificate"
    );
    // The connection made before the reload is untouched.
    assert_eq!(&old.get("k").unwrap().unwrap().value[..], b"v");

    // A reload that fails keeps the certificate in force.
    certs.write("server.key", "not a key");
    Command::new("kill")
        .args(["-HUP", &server.process.pid().to_string()])
        .status()
        .unwrap();
    common::wait_until("the failed reload is counted", || {
        server.stat("tls_reload_errors") == 1
    });
    server
        .tls_client(&trusting_new)
        .and_then(|mut c| c.ping())
        .expect("the certificate in force before the failed reload");
}

#[test]
fn python_client_round_trips_over_tls_with_a_client_certificate() {
    let certs = Certs::new("python");
    let ca = certs.path("ca.pem");
    let server = TlsServer::start(&certs, &["--tls-client-ca", &ca]);
    let script = format!(
        "import switchboard_client as sb\n\
         c = sb.Client('{}', ca_file={:?}, cert_file={:?}, key_file={:?}, server_hostname='localhost')\n\
         c.put(b'py', b'tls')\n\
         print(c.get(b'py'))\n\
         rs = c.pipeline([sb.Request('PING', payload=b'x')] * 50)\n\
         print(len(rs))\n",
        server.addr(),
        ca,
        certs.path("client.pem"),
        certs.path("client.key"),
    );
    let Some(out) = python(&script) else {
        return;
    };
    assert!(
        out.contains("tls") && out.trim_end().ends_with("50"),
        "{out}"
    );
}

#[test]
fn openssl_s_client_exchanges_a_ping() {
    let certs = Certs::new("openssl");
    let server = TlsServer::start(&certs, &[]);
    let mut child = match Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(server.addr().to_string())
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(certs.path("ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: openssl is not installed; skipping the interop test");
            return;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    child.stdin.as_mut().unwrap().write_all(&PING).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = [0u8; 14];
        let _ = tx.send(stdout.read_exact(&mut answer).map(|()| answer));
    });
    let answer = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let _ = child.wait();
    let answer = answer.expect("openssl printed an answer in time").unwrap();
    assert_eq!(answer, PONG);
}

/// Runs a Python snippet with the client package importable; `None` (with a note)
/// when python3 is not installed.
fn python(script: &str) -> Option<String> {
    let output = match Command::new("python3")
        .args(["-c", script])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: python3 is not installed; skipping the Python part");
            return None;
        }
        Err(e) => panic!("python3: {e}"),
    };
    assert!(
        output.status.success(),
        "python3 failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Idle TLS connections keep little beyond their rustls session: each costs the
/// server at most this much resident memory after its handshake and one PING
/// (benches/idle_memory.py measures about 8.5 KiB in release; rustls itself states
/// about 13 KiB per session).
const MAX_TLS_BYTES_PER_CONNECTION: u64 = 16 << 10;

#[test]
fn idle_tls_connections_hold_little_memory() {
    const CONNECTIONS: usize = 300;
    let certs = Certs::new("idle");
    let server = TlsServer::start(&certs, &[]);
    let pid = server.process.pid();
    let tls = certs.client();
    // Warm the allocator's arenas with a first batch, closed again, so the figure is
    // what connections hold, not the heap's first growth.
    let warm: Vec<Client> = (0..50).map(|_| server.tls_client(&tls).unwrap()).collect();
    drop(warm);
    common::wait_until("the warm-up connections are closed", || {
        server.stat("connections_current") <= 1
    });
    let before = common::rss(pid);
    let mut held = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut c = server.tls_client(&tls).unwrap();
        c.ping().unwrap();
        held.push(c);
    }
    let after = common::rss(pid);
    let per_connection = after.saturating_sub(before) / CONNECTIONS as u64;
    eprintln!("{CONNECTIONS} idle TLS connections: {per_connection} bytes of RSS each");
    assert!(
        per_connection <= MAX_TLS_BYTES_PER_CONNECTION,
        "{per_connection} bytes per idle TLS connection"
    );
    // They are all still live.
    for c in &mut held {
        c.ping().unwrap();
    }
}

#[test]
fn a_client_that_closes_first_gets_every_answer_then_the_close() {
    let certs = Certs::new("halfclose");
    let server = TlsServer::start(&certs, &[]);
    let roots = switchboard::tls::load_roots(&certs.dir.join("ca.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(switchboard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // 50,000 PINGs (700 KB of answers, more than the socket buffers hold, so the last
    // ones wait encrypted in rustls after the client has closed its side) in one go, then close_notify and the end of the client's side.
    let pings: Vec<u8> = PING
        .iter()
        .copied()
        .cycle()
        .take(PING.len() * 50_000)
        .collect();
    tls.write_all(&pings).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    match tls.read_to_end(&mut got) {
        Ok(_) => {}
        // The server may close without close_notify after the client's side ended.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the answers: {e}"),
    }
    assert_eq!(got.len(), PONG.len() * 50_000);
    assert!(got.chunks(PONG.len()).all(|c| c == PONG));
}

#[test]
fn a_stopping_server_ends_tls_connections_with_goaway_and_close_notify() {
    let certs = Certs::new("goaway");
    let mut server = TlsServer::start(&certs, &[]);
    let mut c = server.tls_client(&certs.client()).unwrap();
    c.ping().unwrap();
    assert!(server.process.terminate().success());
    // The GOAWAY says the one request was handled; the stream then ends cleanly.
    let err = c.ping().expect_err("the server stopped");
    assert!(
        matches!(
            err,
            switchboard::client::ClientError::GoingAway { handled: 1 }
        ),
        "{err:?}"
    );
}

#[test]
fn a_full_server_refuses_on_the_tls_port_without_a_plaintext_frame() {
    let certs = Certs::new("full");
    let server = TlsServer::start(&certs, &["--max-connections", "1"]);
    let mut held = server.tls_client(&certs.client()).unwrap();
    held.ping().unwrap();
    let mut refused = TcpStream::connect(server.addr()).unwrap();
    refused.write_all(&PING).unwrap();
    let (got, took) = read_to_close(&mut refused);
    assert!(
        got.is_empty(),
        "a refusal on the TLS port sent bytes: {got:?}"
    );
    assert!(took < Duration::from_secs(3), "refused only after {took:?}");
    held.ping().expect("the connection held goes on");
}

#[test]
fn a_watch_lists_and_follows_changes_over_tls_through_the_endpoint() {
    let certs = Certs::new("watch");
    let server = TlsServer::start(&certs, &[]);
    let mut writer = server.tls_client(&certs.client()).unwrap();
    writer.put("order:1", "new").unwrap();
    let endpoint = writer.endpoint().unwrap();
    assert!(
        endpoint.tls.is_some(),
        "the endpoint keeps the TLS configuration"
    );
    let mut watch = switchboard::client::Watch::start_at(endpoint, "order:").unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut wrote = false;
    while Instant::now() < deadline && seen.len() < 3 {
        match watch.next(Some(Duration::from_millis(200))).unwrap() {
            Some(event) => {
                if matches!(event, switchboard::client::WatchEvent::Synced { .. }) && !wrote {
                    writer.put("order:2", "paid").unwrap();
                    wrote = true;
                }
                seen.push(event);
            }
            None => continue,
        }
    }
    let keys: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            switchboard::client::WatchEvent::Put { key, .. } => {
                Some(String::from_utf8_lossy(key).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["order:1", "order:2"], "{seen:?}");
}
