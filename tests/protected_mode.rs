//! Protected mode against the real binary, with a client that really is on another
//! address: the test makes a network namespace joined to this one by a veth pair
//! (private addresses, on this machine only), and runs a small Python client inside
//! it. A server with no token refuses that client with DENIED and counts it; with
//! `--protected-mode no`, or with a token, it serves it. Where a namespace cannot be
//! made (not root, no `ip`, no python3), the test says so and skips.
//!
//! Also: a dual-stack listener sees an IPv4 loopback client as `::ffff:127.0.0.1`,
//! which is loopback too.

mod common;

use common::ServerProcess;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// A network namespace and the veth pair into it, removed when dropped.
struct Namespace {
    name: String,
    host_if: String,
    /// The host's address on the pair; the namespace's is the next one.
    host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Namespace {
    /// Makes the namespace, or says why it cannot.
    fn create() -> Result<Namespace, String> {
        let id = std::process::id() % 60_000;
        let net = (id % 250) + 1;
        let ns = Namespace {
            name: format!("sbtest{id}"),
            host_if: format!("sbh{id}"),
            host_ip: format!("10.213.{net}.1"),
            ns_ip: format!("10.213.{net}.2"),
        };
        let peer_if = format!("sbn{id}");
        if !ip(&["netns", "add", &ns.name]) {
            return Err("cannot create a network namespace (needs root and iproute2)".into());
        }
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
            ],
            &["link", "set", &peer_if, "netns", &ns.name],
            &[
                "addr",
                "add",
                &format!("{}/30", ns.host_ip),
                "dev",
                &ns.host_if,
            ],
            &["link", "set", &ns.host_if, "up"],
            &[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{}/30", ns.ns_ip),
                "dev",
                &peer_if,
            ],
            &["-n", &ns.name, "link", "set", &peer_if, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if !ip(step) {
                return Err(format!("`ip {}` failed", step.join(" ")));
            }
        }
        Ok(ns)
    }

    /// Runs a Python client inside the namespace: connects to `addr`, sends `send`
    /// (hex), and prints the status byte of the first frame it gets back.
    fn first_status(&self, addr: SocketAddr, send: &str) -> String {
        let script = format!(
            "import socket, sys\n\
             s = socket.create_connection(('{}', {}), timeout=10)\n\
             s.sendall(bytes.fromhex('{send}'))\n\
             buf = b''\n\
             while len(buf) < 12:\n    chunk = s.recv(4096)\n    if not chunk: break\n    buf += chunk\n\
             print(buf[7:8].hex() if len(buf) >= 8 else 'closed', buf[12:].decode('utf-8', 'replace'))\n",
            addr.ip(),
            addr.port()
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", &script])
            .output()
            .expect("run the client in the namespace");
        assert!(
            out.status.success(),
            "client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the pair's end in it, and so the pair.
        ip(&["netns", "del", &self.name]);
        ip(&["link", "del", &self.host_if]);
    }
}

/// The server's port on IPv4 loopback, whatever address it listens on.
fn loopback(server: &ServerProcess) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.addr.port()))
}

const PING: &str = "0000000801020000000000 05";

fn ping_hex() -> String {
    PING.replace(' ', "")
}

fn hello_hex(token: &str) -> String {
    let mut frame = Vec::new();
    let body_len = 1 + 4 + 2 + token.len();
    frame.extend_from_slice(&((8 + body_len) as u32).to_be_bytes());
    frame.extend_from_slice(&[1, 0x01, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]);
    frame.extend_from_slice(&(token.len() as u16).to_be_bytes());
    frame.extend_from_slice(token.as_bytes());
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn protected_mode_refuses_a_client_from_another_address_and_tells_it_why() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("note: python3 is not installed; skipping the namespace test");
        return;
    }
    let ns = match Namespace::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("note: {why}; skipping the protected-mode namespace test");
            return;
        }
    };
    let host: std::net::IpAddr = ns.host_ip.parse().unwrap();
    assert!(!ns.ns_ip.is_empty());

    // No token, protected mode on (the default): DENIED, with what to change.
    let server = ServerProcess::start_on("0.0.0.0:0", &[]);
    let answer = ns.first_status(SocketAddr::new(host, server.addr.port()), &ping_hex());
    assert!(answer.starts_with("25 "), "expected DENIED: {answer}");
    assert!(answer.contains("--auth-token-file"), "{answer}");
    // Counted; and a loopback client is still served.
    let mut local = switchboard::client::Client::connect(loopback(&server)).unwrap();
    local.set_timeout(Some(common::WAIT)).unwrap();
    let stats = local.stats().unwrap();
    assert_eq!(
        switchboard::client::stat(&stats, "connections_rejected_protected"),
        Some(1)
    );

    // Protected mode off: served.
    let open = ServerProcess::start_on("0.0.0.0:0", &["--protected-mode", "no"]);
    let answer = ns.first_status(SocketAddr::new(host, open.addr.port()), &ping_hex());
    assert!(answer.starts_with("00"), "expected a PONG: {answer}");

    // A token: the client is let in to authenticate.
    let token = std::env::temp_dir().join(format!("sb-protected-{}", std::process::id()));
    std::fs::write(&token, "netns-token\n").unwrap();
    let authed =
        ServerProcess::start_on("0.0.0.0:0", &["--auth-token-file", token.to_str().unwrap()]);
    let answer = ns.first_status(
        SocketAddr::new(host, authed.addr.port()),
        &hello_hex("netns-token"),
    );
    assert!(answer.starts_with("00"), "expected HELLO OK: {answer}");
    let answer = ns.first_status(SocketAddr::new(host, authed.addr.port()), &ping_hex());
    assert!(answer.starts_with("19"), "expected AUTH_REQUIRED: {answer}");
    let _ = std::fs::remove_file(&token);
}

#[test]
fn a_dual_stack_listener_serves_ipv4_loopback_clients_in_protected_mode() {
    let Ok(probe) = std::net::TcpListener::bind("[::]:0") else {
        eprintln!("note: no IPv6 on this machine; skipping");
        return;
    };
    drop(probe);
    let server = ServerProcess::start_on("[::]:0", &[]);
    // Seen by the server as ::ffff:127.0.0.1.
    let mut c = switchboard::client::Client::connect(loopback(&server)).unwrap();
    c.set_timeout(Some(common::WAIT)).unwrap();
    c.ping().unwrap();
    let mut c6 = switchboard::client::Client::connect(("::1", server.addr.port())).unwrap();
    c6.set_timeout(Some(common::WAIT)).unwrap();
    c6.ping().unwrap();
}
