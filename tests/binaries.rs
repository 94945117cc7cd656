//! The binaries as a user runs them: the server's flags, start-up line and shutdown,
//! and the CLI's commands, output and exit statuses.

mod common;

use common::ServerProcess;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn cli(server: &ServerProcess, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .arg("--addr")
        .arg(server.addr.to_string())
        .args(args)
        .output()
        .expect("run switchboard-cli")
}

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

#[test]
fn cli_commands_print_plainly_and_exit_with_meaning() {
    let server = ServerProcess::start(&[]);
    let o = cli(&server, &["ping"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "PONG\n"));

    let o = cli(&server, &["put", "user:1", "alice"]);
    assert_eq!(stdout(&o), "OK (version 1)\n");
    let o = cli(&server, &["get", "user:1"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "alice\n(version 1)\n")
    );

    let o = cli(&server, &["get", "nobody"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(1), "not found\n")
    );

    let o = cli(&server, &["cas", "user:1", "1", "bob"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "OK (version 2)\n")
    );
    let o = cli(&server, &["cas", "user:1", "1", "carol"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("version conflict: the current version is 2")
    );

    cli(&server, &["put", "user:2", "with space"]);
    let o = cli(&server, &["put", "user:3", "tab\there"]);
    assert!(o.status.success());
    let o = cli(&server, &["scan", "user:"]);
    assert_eq!(
        stdout(&o),
        "user:1\t2\tbob\nuser:2\t3\twith space\nuser:3\t4\t\"tab\\there\"\n(3 records, sequence 4)\n"
    );

    let o = cli(&server, &["del", "user:1"]);
    assert_eq!(stdout(&o), "deleted (sequence 5)\n");
    let o = cli(&server, &["del", "user:1"]);
    assert_eq!(o.status.code(), Some(1));

    let o = cli(&server, &["stats"]);
    assert!(stdout(&o).contains("cmd_cas 2\n"), "{}", stdout(&o));
}

#[test]
fn cli_reports_a_refused_connection() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &format!("127.0.0.1:{port}"), "ping"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot connect"));
}

#[test]
fn cli_prompt_runs_commands_from_its_input() {
    let server = ServerProcess::start(&[]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.addr.to_string()])
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"put greeting \"hello world\"\nget greeting\nbogus\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("OK (version 1)"), "{text}");
    assert!(text.contains("hello world\n(version 1)"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'bogus'"));
}
