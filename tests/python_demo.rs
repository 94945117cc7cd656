//! Runs the Python demo client against a real server: HELLO, PUT, GET, a CAS conflict,
//! SCAN, DELETE and a pipelined batch, each answer checked by the client.
//!
//! The server is started on an ephemeral port and announces it on stdout as
//! `listening on HOST:PORT`; the test waits for that line (with a timeout) rather than
//! sleeping, and kills the server when it ends, pass or fail.

mod common;

use std::process::Command;

#[test]
fn python_demo_round_passes_against_the_server() {
    let server = common::ServerProcess::start(&[]);
    let addr = server.addr.to_string();
    let root = env!("CARGO_MANIFEST_DIR");
    // The client sets a 10 s timeout on its socket, so it cannot hang on a silent server.
    let output = match Command::new("python3")
        .args(["-m", "switchboard_client", "--addr", &addr])
        .current_dir(std::path::Path::new(root).join("clients/python"))
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
