//! switchboard-load's RESP and memcached dialects end to end, against minimal servers
//! written here (a map behind a lock, one thread per connection), so the test needs
//! neither Redis nor memcached installed. Values written by one run are read and
//! checked by the next, pipelined, which exercises framing across reads.

mod common;

use common::{run_load, serial};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Connections a test server accepts before its accept loop ends.
const MAX_ACCEPTS: usize = 256;

type Store = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

fn serve(handler: fn(TcpStream, Store)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let store: Store = Arc::default();
    std::thread::spawn(move || {
        // Bounded: no test opens more connections than this to one server.
        for stream in listener.incoming().take(MAX_ACCEPTS) {
            let Ok(stream) = stream else { return };
            let _ = stream.set_nodelay(true);
            let store = Arc::clone(&store);
            std::thread::spawn(move || handler(stream, store));
        }
    });
    addr
}

fn read_line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches("\r\n").to_string()),
    }
}

/// RESP: arrays of bulk strings in, the replies Redis gives to GET, SET, DEL, PING.
fn resp(stream: TcpStream, store: Store) {
    let mut r = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = BufWriter::new(stream);
    while let Some(head) = read_line(&mut r) {
        let n: usize = head
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .expect("array");
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let len: usize = read_line(&mut r)
                .and_then(|l| l.strip_prefix('$').and_then(|n| n.parse().ok()))
                .expect("bulk length");
            let mut arg = vec![0; len + 2];
            r.read_exact(&mut arg).expect("bulk");
            arg.truncate(len);
            args.push(arg);
        }
        let mut s = store.lock().unwrap();
        match args[0].as_slice() {
            b"GET" => match s.get(&args[1]) {
                Some(v) => {
                    write!(w, "${}\r\n", v.len()).unwrap();
                    w.write_all(v).unwrap();
                    w.write_all(b"\r\n").unwrap();
                }
                None => w.write_all(b"$-1\r\n").unwrap(),
            },
            b"SET" => {
                s.insert(args[1].clone(), args[2].clone());
                w.write_all(b"+OK\r\n").unwrap();
            }
            b"DEL" => {
                let n = usize::from(s.remove(&args[1]).is_some());
                write!(w, ":{n}\r\n").unwrap();
            }
            b"PING" => w.write_all(b"+PONG\r\n").unwrap(),
            _ => w.write_all(b"-ERR unknown command\r\n").unwrap(),
        }
        drop(s);
        // Answer a pipelined batch with one write once its last request is read.
        if r.buffer().is_empty() && w.flush().is_err() {
            return;
        }
    }
}

/// memcached text protocol: get, set, delete, version.
fn memcache(stream: TcpStream, store: Store) {
    let mut r = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = BufWriter::new(stream);
    while let Some(line) = read_line(&mut r) {
        let words: Vec<&str> = line.split(' ').collect();
        let mut s = store.lock().unwrap();
        match words[0] {
            "get" => {
                if let Some(v) = s.get(words[1].as_bytes()) {
                    write!(w, "VALUE {} 0 {}\r\n", words[1], v.len()).unwrap();
                    w.write_all(v).unwrap();
                    w.write_all(b"\r\n").unwrap();
                }
                w.write_all(b"END\r\n").unwrap();
            }
            "set" => {
                let len: usize = words[4].parse().expect("byte count");
                let mut data = vec![0; len + 2];
                r.read_exact(&mut data).expect("data block");
                data.truncate(len);
                s.insert(words[1].as_bytes().to_vec(), data);
                w.write_all(b"STORED\r\n").unwrap();
            }
            "delete" => match s.remove(words[1].as_bytes()) {
                Some(_) => w.write_all(b"DELETED\r\n").unwrap(),
                None => w.write_all(b"NOT_FOUND\r\n").unwrap(),
            },
            "version" => w.write_all(b"VERSION 1.6.0-test\r\n").unwrap(),
            _ => w.write_all(b"ERROR\r\n").unwrap(),
        }
        drop(s);
        if r.buffer().is_empty() && w.flush().is_err() {
            return;
        }
    }
}

/// Preloads every key, then runs a pipelined mix over them; returns the second JSON.
fn write_then_mix(protocol: &str, addr: &str) -> Value {
    let path = std::env::temp_dir().join(format!(
        "switchboard-load-proto-{}-{protocol}.json",
        std::process::id()
    ));
    let common = [
        "--addr",
        addr,
        "--protocol",
        protocol,
        "--keys",
        "300",
        "--warmup",
        "0s",
        "--connections",
        "3",
        "--quiet",
    ];
    let mut preload = common.to_vec();
    preload.extend([
        "--mix",
        "put=1",
        "--key-dist",
        "sequential",
        "--requests",
        "300",
        "--value-size",
        "1-5000",
        "--pipeline",
        "8",
    ]);
    let out = run_load(&preload);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut mix = common.to_vec();
    mix.extend([
        "--mix",
        "get=6,put=2,del=1,ping=1",
        "--requests",
        "2000",
        "--value-size",
        "100",
        "--pipeline",
        "16",
        "--json",
        path.to_str().unwrap(),
    ]);
    let out = run_load(&mix);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).expect("JSON written");
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&text).expect("valid JSON")
}

fn check(j: &Value) {
    assert_eq!(j["ops"], 2000, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    let by_type = &j["ops_by_type"];
    for op in ["get", "put", "del", "ping"] {
        assert!(by_type[op].as_u64().unwrap_or(0) > 0, "no {op}: {j}");
    }
    // Every key was written first, so misses come only from keys this run deleted
    // (a tenth of the requests, against a fifth that write keys back).
    let misses = j["misses"].as_u64().unwrap();
    let gets = by_type["get"].as_u64().unwrap();
    assert!(misses * 2 < gets, "{misses} misses for {gets} gets: {j}");
}

#[test]
fn resp_round_trips_and_checks_values() {
    let _serial = serial();
    let addr = serve(resp);
    check(&write_then_mix("resp", &addr));
}

#[test]
fn memcache_round_trips_and_checks_values() {
    let _serial = serial();
    let addr = serve(memcache);
    check(&write_then_mix("memcache", &addr));
}

#[test]
fn a_corrupted_resp_value_is_caught() {
    let _serial = serial();
    let addr = serve(resp);
    // Write key 0 as the generator would, then overwrite it by hand with bytes that
    // are no derived value.
    let out = run_load(&[
        "--addr",
        &addr,
        "--protocol",
        "resp",
        "--keys",
        "1",
        "--mix",
        "put=1",
        "--requests",
        "1",
        "--warmup",
        "0s",
        "--connections",
        "1",
        "--quiet",
    ]);
    assert!(out.status.success());
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000000\r\n$5\r\nhello\r\n")
        .unwrap();
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    let out = run_load(&[
        "--addr",
        &addr,
        "--protocol",
        "resp",
        "--keys",
        "1",
        "--mix",
        "get=1",
        "--requests",
        "5",
        "--warmup",
        "0s",
        "--connections",
        "1",
        "--quiet",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 wrong value"));
}
