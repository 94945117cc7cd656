//! Token authentication against the real server binary: the right token, a wrong
//! one, none, a first frame that is not HELLO, a large frame before authentication,
//! the authentication deadline, the counts in STATS, a token reloaded on SIGHUP while
//! connections stay up, and the Python client with a token.

mod common;

use common::{frame, wait_until, RawConn, ServerProcess};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client, ClientError};
use switchboard::protocol::{Request, ResponseBody, Status};

/// A token file, removed when dropped.
struct TokenFile(PathBuf);

impl TokenFile {
    fn new(token: &str) -> TokenFile {
        let path = std::env::temp_dir().join(format!(
            "switchboard-token-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        TokenFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn start(token: &TokenFile) -> ServerProcess {
    ServerProcess::start(&["--auth-token-file", token.arg(), "--auth-timeout", "0.5"])
}

fn authenticated(server: &ServerProcess, token: &str) -> Client {
    let mut c = Client::connect(server.addr).unwrap();
    c.set_timeout(Some(common::WAIT)).unwrap();
    c.set_token(token.as_bytes().to_vec());
    c.hello(0).unwrap();
    c
}

fn status_of(e: ClientError) -> Status {
    match e {
        ClientError::Server { status, .. } => status,
        other => panic!("{other}"),
    }
}

/// The fatal error the server answers `bytes` with, and that it closes after.
fn refused(server: &ServerProcess, bytes: &[u8]) -> Status {
    let mut raw = server.raw();
    raw.send(bytes);
    let status = match raw.recv().body {
        ResponseBody::Error { status, .. } => status,
        other => panic!("{other:?}"),
    };
    raw.expect_closed();
    status
}

fn hello(token: &str) -> Vec<u8> {
    frame(
        &Request::Hello {
            max_version: 1,
            features: 0,
            token: token.as_bytes().to_vec().into(),
        },
        1,
    )
}

fn counts(server: &ServerProcess, token: &str) -> (u64, u64) {
    let stats = authenticated(server, token).stats().unwrap();
    (
        stat(&stats, "closed_auth_failed").unwrap(),
        stat(&stats, "closed_auth_timeout").unwrap(),
    )
}

#[test]
fn only_a_hello_with_the_right_token_opens_a_connection() {
    let token = TokenFile::new("s3cret");
    let server = start(&token);
    let mut c = authenticated(&server, "s3cret");
    let version = c.put("k", "v").unwrap();
    assert_eq!(c.get("k").unwrap().unwrap().version, version);

    // A wrong token, through the client.
    let mut wrong = Client::connect(server.addr).unwrap();
    wrong.set_token(b"s3cre".to_vec());
    assert_eq!(status_of(wrong.hello(0).unwrap_err()), Status::AUTH_FAILED);
    // No token, and no HELLO at all.
    let mut none = Client::connect(server.addr).unwrap();
    assert_eq!(status_of(none.ping().unwrap_err()), Status::AUTH_REQUIRED);
    assert_eq!(refused(&server, &hello("")), Status::AUTH_REQUIRED);
    // A request pipelined behind a wrong HELLO is not carried out.
    let mut bytes = hello("nope");
    bytes.extend(frame(
        &Request::Put {
            key: "k".into(),
            value: "stolen".into(),
            ttl_ms: 0,
        },
        2,
    ));
    assert_eq!(refused(&server, &bytes), Status::AUTH_FAILED);
    assert_eq!(&c.get("k").unwrap().unwrap().value[..], b"v");

    // Before authenticating, a frame of more than 4 KiB is refused from its header:
    // a client that has proven nothing cannot make the server buffer a megabyte.
    let mut big = (1u32 << 20).to_be_bytes().to_vec();
    big.extend_from_slice(&[1, 0x04, 0, 0, 0, 0, 0, 9]);
    assert_eq!(refused(&server, &big), Status::FRAME_TOO_LARGE);

    // Each is counted once its close completes.
    drop((wrong, none));
    wait_until("four closes counted as authentication failures", || {
        counts(&server, "s3cret").0 >= 4
    });
}

#[test]
fn a_connection_that_does_not_authenticate_in_time_is_told_and_closed() {
    let token = TokenFile::new("s3cret");
    let server = start(&token);
    let start = Instant::now();
    let mut raw: RawConn = server.raw();
    // Half a HELLO, then silence.
    raw.send(&hello("s3cret")[..6]);
    match raw.recv().body {
        ResponseBody::Error { status, .. } => assert_eq!(status, Status::AUTH_REQUIRED),
        other => panic!("{other:?}"),
    }
    raw.expect_closed();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "closed after {took:?} with a 0.5 s deadline"
    );
    drop(raw);
    wait_until("the close counted as an authentication timeout", || {
        counts(&server, "s3cret").1 == 1
    });
}

#[test]
fn sighup_rereads_the_token_and_keeps_connections() {
    let token = TokenFile::new("first");
    let server = start(&token);
    let mut old = authenticated(&server, "first");
    std::fs::write(&token.0, "second\n").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("the new token is accepted", || {
        let mut c = Client::connect(server.addr).unwrap();
        c.set_token(b"second".to_vec());
        c.hello(0).is_ok()
    });
    let mut c = Client::connect(server.addr).unwrap();
    c.set_token(b"first".to_vec());
    assert_eq!(status_of(c.hello(0).unwrap_err()), Status::AUTH_FAILED);
    // The connection authenticated with the old token is still served.
    old.ping().unwrap();

    // A token file that cannot be used keeps the token in force.
    std::fs::write(&token.0, "").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    old.ping().unwrap();
    let mut again = authenticated(&server, "second");
    again.ping().unwrap();
}

#[test]
fn the_python_client_authenticates_with_a_token() {
    let token = TokenFile::new("py-s3cret");
    let server = start(&token);
    let script = format!(
        "import sys\n\
         sys.path.insert(0, 'clients/python')\n\
         from switchboard_client.client import Client\n\
         from switchboard_client.codec import ServerError, status_name\n\
         c = Client('{addr}', token='py-s3cret')\n\
         c.put(b'py', b'yes')\n\
         assert c.get(b'py')[1] == b'yes'\n\
         try:\n    Client('{addr}', token=b'wrong')\n    sys.exit('a wrong token was accepted')\n\
         except ServerError as e:\n    assert status_name(e.response.status) == 'AUTH_FAILED', e\n\
         print('ok')\n",
        addr = server.addr
    );
    let out = match Command::new("python3")
        .args(["-c", &script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: python3 is not installed; skipping");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(
        out.status.success() && out.stdout.starts_with(b"ok"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = authenticated(&server, "py-s3cret");
    assert_eq!(&c.get("py").unwrap().unwrap().value[..], b"yes");
}

#[test]
fn without_a_token_the_server_starts_in_protected_mode_and_says_so() {
    let server = ServerProcess::start(&[]);
    let line = server.startup_line("auth:");
    assert!(line.contains("protected mode"), "{line}");
    // Loopback clients are served.
    server.client().ping().unwrap();
    let server = ServerProcess::start(&["--protected-mode", "no"]);
    let line = server.startup_line("auth:");
    assert!(line.contains("protected mode is off"), "{line}");
}

#[test]
fn a_bare_metrics_port_binds_loopback() {
    let server = ServerProcess::start(&["--metrics-listen", "0"]);
    let line = server.startup_line("metrics on");
    assert!(line.starts_with("metrics on http://127.0.0.1:"), "{line}");
}
