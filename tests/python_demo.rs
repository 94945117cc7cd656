//! Runs the Python demo client against a real server: HELLO, PUT, GET, a CAS conflict,
//! SCAN, DELETE and a pipelined batch, each answer checked by the client.
//!
//! The server is started on an ephemeral port and announces it on stdout as
//! `listening on HOST:PORT`; the test waits for that line (with a timeout) rather than
//! sleeping, and kills the server when it ends, pass or fail.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The server process; killed and reaped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the switchboard server");
        let stdout = child.stdout.take().expect("server stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the server's stdout until it closes (the server exits or is killed),
        // passing on the address once and draining the rest so the pipe never fills.
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_string());
                    }
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => server.addr = addr,
            Err(e) => panic!("the server did not print `listening on HOST:PORT`: {e}"),
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_demo_round_passes_against_the_server() {
    let server = Server::start();
    let root = env!("CARGO_MANIFEST_DIR");
    // The client sets a 10 s timeout on its socket, so it cannot hang on a silent server.
    let output = match Command::new("python3")
        .args([
            "clients/python/switchboard_client.py",
            "--addr",
            &server.addr,
        ])
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: python3 is not installed; skipping the Python demo");
            return;
        }
        Err(e) => panic!("could not run python3: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo client failed ({}) against {}:\n{stdout}{stderr}",
        output.status,
        server.addr
    );
    assert!(
        stdout.contains("checks passed"),
        "unexpected output:\n{stdout}"
    );
}
