//! switchboard-cli as a user runs it: its commands, output and exit statuses, and the
//! prompt reading commands from its input, against an in-process server.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use switchboard::config::Config;
use switchboard::server::{Running, Server};

/// A server on a free loopback port in this process, stopped when dropped.
fn start_server() -> Running {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let server = Server::bind(&config).expect("bind a loopback port");
    server.spawn().expect("start the reactor thread")
}

fn cli(server: &Running, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .arg("--addr")
        .arg(server.local_addr().to_string())
        .args(args)
        .output()
        .expect("run switchboard-cli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cli_commands_print_plainly_and_exit_with_meaning() {
    let server = start_server();
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
    let server = start_server();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.local_addr().to_string()])
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

#[test]
fn cli_sub_watch_and_pub_print_each_line_and_stop_at_the_count() {
    let server = start_server();
    cli(&server, &["put", "order:1", "new"]);
    cli(&server, &["put", "order:1", "paid"]);
    cli(&server, &["del", "order:1"]);
    cli(&server, &["put", "user:1", "\u{1}"]);
    cli(&server, &["put", "order:2", "new"]);

    // From the start of the history: the kept changes, in order, then stop.
    let o = cli(&server, &["sub", "order:", "--from", "0", "--count", "4"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        stdout(&o),
        "EVENT\t1\torder:1\tput\t1\tnew\n\
         EVENT\t2\torder:1\tput\t2\tpaid\n\
         EVENT\t3\torder:1\tdelete\t3\t\"\"\n\
         EVENT\t5\torder:2\tput\t5\tnew\n"
    );

    let o = cli(&server, &["watch", "order:", "--count", "1"]);
    assert_eq!(stdout(&o), "PUT\torder:2\t5\tnew\n");

    // Nobody listens: published to no one.
    let o = cli(&server, &["pub", "chat", "hi"]);
    assert_eq!(stdout(&o), "delivered to 0 connection(s)\n");

    // A live subscriber sees a message published after it started; its first line
    // tells the test it is subscribed.
    let mut sub = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.local_addr().to_string()])
        .args(["sub", "", "--from", "5", "--count", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run switchboard-cli sub");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "(up to date at sequence 5)");
    let o = cli(&server, &["pub", "chat", "\u{ff}hi"]);
    assert_eq!(stdout(&o), "delivered to 1 connection(s)\n");
    cli(&server, &["put", "k", "v"]);
    assert_eq!(lines.next().unwrap().unwrap(), "MESSAGE\tchat\tÿhi");
    assert_eq!(lines.next().unwrap().unwrap(), "EVENT\t6\tk\tput\t6\tv");
    assert!(sub.wait().unwrap().success());
}

/// A listener on a free port whose accepted connections get `reply` (if any) and are
/// then held open; for a peer that is not a switchboard server.
fn foreign_peer(reply: &'static [u8]) -> std::net::SocketAddr {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        // Bounded: each test makes one connection.
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                if stream.read(&mut buf).is_ok() && !reply.is_empty() {
                    let _ = stream.write_all(reply);
                }
                // Hold the connection until the client leaves.
                let _ = stream.read(&mut buf);
            });
        }
    });
    addr
}

#[test]
fn cli_times_out_on_a_silent_peer_and_names_a_foreign_one() {
    let silent = foreign_peer(b"");
    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["ping", "--addr", &silent.to_string(), "--timeout", "0.5"])
        .output()
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is it a switchboard server?"), "{err}");

    let redis = foreign_peer(b"-ERR unknown command\r\n");
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &redis.to_string(), "get", "k"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a switchboard frame"), "{err}");
}

#[test]
fn cli_output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let server = start_server();
    let mut c = switchboard::client::Client::connect(server.local_addr()).unwrap();
    for i in 0..2000 {
        c.put(format!("k{i:05}"), "value").unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.local_addr().to_string(), "scan", "k"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -2`: read two lines, then close the pipe.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "k00000\t1\tvalue");
    lines.next().unwrap().unwrap();
    drop(lines);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_writes_binary_and_large_values_from_stdin_and_escapes_at_the_prompt() {
    let server = start_server();
    let addr = server.local_addr().to_string();
    // Past the 128 KiB a single command-line argument may hold, with every byte value.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &addr, "put", "big", "-x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&big).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut c = switchboard::client::Client::connect(server.local_addr()).unwrap();
    assert_eq!(&c.get("big").unwrap().unwrap().value[..], &big[..]);

    // At the prompt: escapes in double quotes, any case for commands, a suggestion
    // for a typo.
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &addr])
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
        .write_all(b"PUT bin \"a\\tb\\x00\\xff\"\nGet bin\ngett bin\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(&c.get("bin").unwrap().unwrap().value[..], b"a\tb\x00\xff");
    assert!(
        stdout(&out).contains("\"a\\tb\\x00\\xff\""),
        "{}",
        stdout(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("similar subcommand exists: 'get'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_shows_what_a_full_server_says_and_scan_continues_after_a_key() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: 1,
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap().spawn().unwrap();
    let addr = server.local_addr().to_string();
    let mut first = switchboard::client::Client::connect(server.local_addr()).unwrap();
    for k in ["a", "b", "c"] {
        first.put(k, "v").unwrap();
    }
    let o = cli(&server, &["ping"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("SERVER_FULL"), "{err}");
    drop(first);
    // The slot frees once the server has seen the close.
    let mut out = None;
    for _ in 0..200 {
        let o = cli(
            &server,
            &["scan", "", "--limit", "1", "--page", "--after", "a"],
        );
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let o = out.expect("the server takes a connection again");
    assert_eq!(
        stdout(&o),
        "b\t2\tv\n(1 records, sequence 3)\n(more after b: scan \"\" --page --after b)\n"
    );
    let _ = addr;
}

#[test]
fn cli_prompt_reconnects_after_a_server_restart() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::Duration;
    let first = start_server();
    let addr = first.local_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &addr.to_string()])
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let expect = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).expect("a line in time");
            if line.contains(want) {
                return;
            }
        }
    };
    input.write_all(b"put a 1\n").unwrap();
    expect("OK (version 1)");
    // The server goes away and another starts on the same address.
    drop(first);
    let config = Config {
        listen: addr,
        ..Config::default()
    };
    let second = Server::bind(&config)
        .expect("the port again")
        .spawn()
        .unwrap();
    // The first command finds the connection gone; the next reconnects.
    input.write_all(b"ping\nping\nquit\n").unwrap();
    expect("PONG");
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(error)"),
        "the lost connection is reported: {err}"
    );
    drop(second);
}

#[test]
fn cli_speaks_tls_with_a_trusted_ca_and_refuses_an_untrusted_server() {
    let dir = std::env::temp_dir().join(format!("switchboard-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(switchboard::tls::TlsConfig::new(&cert, &key)),
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap().spawn().unwrap();
    let ca = cert.to_str().unwrap();
    let addr = server.local_addr().to_string();

    // The certificate names localhost; the address is 127.0.0.1.
    let o = cli(
        &server,
        &[
            "--tls-ca",
            ca,
            "--tls-server-name",
            "localhost",
            "put",
            "k",
            "v",
        ],
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "OK (version 1)\n")
    );
    let o = cli(&server, &["--tls-insecure", "get", "k"]);
    assert_eq!(stdout(&o), "v\n(version 1)\n");

    // Without trusting it, or in plaintext, nothing is served.
    let o = cli(
        &server,
        &["--tls", "--tls-server-name", "localhost", "ping"],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "an untrusted certificate was accepted"
    );
    let o = cli(&server, &["ping"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "plaintext was answered on the TLS port"
    );
    assert!(!stdout(&o).contains("PONG"));
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &addr, "--tls-ca", ca, "ping"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a certificate for another name was accepted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
#[test]
fn cli_authenticates_with_a_token_file_or_the_environment() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: Some(std::sync::Arc::new(
            switchboard::auth::TokenCheck::from_token(b"cli-s3cret"),
        )),
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap().spawn().unwrap();
    let file = std::env::temp_dir().join(format!("sb-cli-token-{}", std::process::id()));
    std::fs::write(&file, "cli-s3cret\n").unwrap();
    let file_arg = file.to_str().unwrap();

    let o = cli(&server, &["--auth-token-file", file_arg, "put", "k", "v"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "OK (version 1)\n")
    );
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.local_addr().to_string(), "get", "k"])
        .env("SWITCHBOARD_AUTH_TOKEN", "cli-s3cret")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "v\n(version 1)\n");
    // Subscriptions open connections of their own, with the token too.
    let o = cli(
        &server,
        &[
            "--auth-token-file",
            file_arg,
            "sub",
            "",
            "--from",
            "0",
            "--count",
            "1",
        ],
    );
    assert_eq!(stdout(&o), "EVENT\t1\tk\tput\t1\tv\n", "{o:?}");

    // No token, or a wrong one: refused, and the message says why.
    let o = cli(&server, &["get", "k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("AUTH_REQUIRED"),
        "{o:?}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_switchboard-cli"))
        .args(["--addr", &server.local_addr().to_string(), "get", "k"])
        .env("SWITCHBOARD_AUTH_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("AUTH_FAILED"),
        "{o:?}"
    );
    let _ = std::fs::remove_file(&file);
}
