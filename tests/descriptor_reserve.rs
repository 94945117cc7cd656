//! Descriptors run out although the connection limit was fitted to them (something
//! else in the process used them): the listener spends its reserve descriptor to tell
//! each waiting client SERVER_FULL instead of leaving it in the kernel's queue.
//!
//! This binary holds a single test: it lowers its own process's descriptor limit.

use std::process::{Command, Stdio};
use std::time::Duration;
use switchboard::config::Config;
use switchboard::server::Server;

fn set_soft_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain structs owned here.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn exhausted_descriptors_refuse_clients_with_server_full() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ..Config::default()
    };
    let server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let ctx = server.context();
    let reactor = std::thread::spawn(move || server.run());
    // Room for three more descriptors in this process: three connections, then none.
    set_soft_limit(open_descriptors() + 3);

    // The clients live in another process, with descriptors of their own: each
    // connects, reads the first bytes the server sends (or times out) and prints the
    // status byte it got, or "none".
    let script = format!(
        r#"
import socket, sys
held = []
for i in range(8):
    s = socket.create_connection(("{ip}", {port}))
    s.settimeout(1)
    held.append(s)
for s in held:
    try:
        data = s.recv(64)
        print(data[7] if len(data) >= 8 else "closed")
    except socket.timeout:
        print("served")
"#,
        ip = addr.ip(),
        port = addr.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("python3 runs");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    // The first few are served (they send nothing, so they hear nothing); every later
    // one is told SERVER_FULL (0x21 = 33) at once: none is left waiting.
    assert_eq!(lines.len(), 8, "{lines:?}");
    let served = lines.iter().take_while(|l| *l == "served").count();
    assert!((1..=5).contains(&served), "{lines:?}");
    for line in &lines[served..] {
        assert_eq!(
            line, "33",
            "status 0x21 SERVER_FULL expected, got {lines:?}"
        );
    }
    let counters = &ctx.stats.counters;
    let errors = counters
        .accept_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(errors >= (8 - served) as u64, "{errors} accept errors");
    set_soft_limit(4096);
    stop.shutdown();
    std::thread::sleep(Duration::from_millis(10));
    reactor.join().unwrap().unwrap();
}
