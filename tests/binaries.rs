//! The server binary as a user runs it: its flags, start-up line and shutdown.

mod common;

use common::ServerProcess;
use std::process::{Command, Output};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn sigterm_stops_the_server_with_status_zero() {
    let mut server = ServerProcess::start(&[]);
    let mut c = server.client();
    c.put("k", "v").unwrap();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    // The connection was closed by the shutdown.
    assert!(c.ping().is_err());
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&out);
    for flag in [
        "--listen",
        "--workers",
        "--max-frame",
        "--max-connections",
        "--max-memory",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("127.0.0.1:7420"));
}

#[test]
fn bad_listen_address_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "203.0.113.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on 203.0.113.1:1"));
}
