//! Running out of file descriptors: the server pauses accepting instead of spinning,
//! keeps serving the connections it has, and admits the waiting ones once descriptors
//! free up.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use switchboard::client::{stat, Client};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn emfile_pauses_accepts_without_spinning_and_recovers() {
    // A descriptor limit of 24 leaves room for about a dozen connections.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 24 && exec {} --listen 127.0.0.1:0 --workers 1",
            env!("CARGO_BIN_EXE_switchboard")
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(common::WAIT).expect("listening line");
    let addr: std::net::SocketAddr = line.strip_prefix("listening on ").unwrap().parse().unwrap();

    // Connect more clients than descriptors allow; the kernel queues the extra ones.
    let mut clients: Vec<Client> = (0..40)
        .map(|_| {
            let mut c = Client::connect(addr).unwrap();
            c.set_timeout(Some(common::WAIT)).unwrap();
            c
        })
        .collect();
    clients[0].ping().unwrap();

    // While accept keeps failing, the server must be idle, not spinning.
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks(child.id()) - before;
    assert!(
        used <= 10,
        "server used {used} ticks of CPU in 500 ms while out of descriptors"
    );

    let accept_errors = stat(&clients[0].stats().unwrap(), "accept_errors").unwrap();
    assert!(accept_errors > 0, "the limit was never hit");

    // Close the early clients: the queued ones get accepted and served.
    let late = clients.split_off(20);
    drop(clients);
    for mut c in late {
        c.ping()
            .expect("a queued client is served once descriptors free up");
    }
    let _ = child.kill();
    let _ = child.wait();
}
