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

/// Starts the binary with `args`, reads its first `lines` lines of stdout, stops it.
fn first_lines(args: &[&str], lines: usize) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(lines)
        .map(|l| l.unwrap())
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn the_server_says_what_it_runs_with_and_names_what_it_changed() {
    let lines = first_lines(
        &[
            "--listen",
            "localhost:0",
            "--max-frame",
            "1",
            "--workers",
            "0",
        ],
        7,
    );
    // The address stays the first line: scripts read it.
    assert!(lines[0].starts_with("listening on 127.0.0.1:"), "{lines:?}");
    assert!(lines[1].starts_with("switchboard ") && lines[1].contains("0 worker thread(s)"));
    assert!(lines[2].contains("frames 8192 B"), "{lines:?}");
    assert!(
        lines[4].contains("in memory only (no --data-dir)"),
        "{lines:?}"
    );
    assert!(lines[5].contains("protected mode"), "{lines:?}");
    assert!(
        lines[6].contains("--max-frame 1 was raised to 8192 B"),
        "{lines:?}"
    );
}

#[test]
fn values_that_make_the_server_useless_are_refused() {
    for (flag, why) in [
        ("--max-output", "--max-output 0 would stop every connection"),
        (
            "--max-connections",
            "--max-connections 0 would refuse every client",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(["--listen", "127.0.0.1:0", flag, "0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{out:?}"
        );
    }
}
