//! A small switchboard server written for the tests (std threads, the protocol crate
//! for framing) that can answer correctly, stall once for a known time, run at a known
//! capacity, drop connections, or answer wrongly.

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::protocol::{encode, msg, Decoder, Opcode, Request, RequestId, Status};

/// The token `TokenThenCloseEachAfter` requires.
pub const TOKEN: &[u8] = b"fake-token";

/// Connections a test server accepts before its accept loop ends.
const MAX_ACCEPTS: usize = 256;

#[derive(Clone, Copy)]
pub enum Behavior {
    /// A working key-value store.
    Correct,
    /// Like `Correct`, but the request with this ordinal holds every connection for
    /// this long before anyone is answered again.
    StallAt(u64, Duration),
    /// Like `Correct`, but every request holds the server for this long: a server
    /// with a known capacity.
    Slow(Duration),
    /// Like `Slow`, and the request with this ordinal holds it this long once: one
    /// noisy moment in a server of known capacity.
    SlowStallingAt(Duration, u64, Duration),
    /// Closes every connection once this many requests have arrived in all.
    CloseAfter(u64),
    /// Closes each connection when its own request count passes this.
    CloseEachAfter(u64),
    /// Like `CloseEachAfter`, and each connection must begin with a HELLO carrying
    /// [`TOKEN`] (which does not count), as a server with `--auth-token-file`.
    TokenThenCloseEachAfter(u64),
    /// Answers with the wrong request id.
    BadId,
    /// Answers every GET with a value that belongs to no key.
    BadValue,
}

struct Shared {
    store: Mutex<HashMap<Bytes, (u64, Bytes)>>,
    seen: AtomicU64,
    version: AtomicU64,
}

/// Starts a server on a free loopback port; its threads end with the test process.
pub fn serve(behavior: Behavior) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shared = Arc::new(Shared {
        store: Mutex::new(HashMap::new()),
        seen: AtomicU64::new(0),
        version: AtomicU64::new(0),
    });
    std::thread::spawn(move || {
        // Bounded: no test opens more connections than this to one server.
        for stream in listener.incoming().take(MAX_ACCEPTS) {
            let Ok(stream) = stream else { return };
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || connection(stream, behavior, &shared));
        }
    });
    addr
}

fn connection(mut stream: TcpStream, behavior: Behavior, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let limits = Default::default();
    let mut decoder = Decoder::new(1 << 21);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut chunk = [0u8; 64 * 1024];
    let mut on_this_connection = 0u64;
    let mut authenticated = !matches!(behavior, Behavior::TokenThenCloseEachAfter(_));
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = decoder.decode(&mut inbuf) {
            let id = frame.header.request_id;
            let Ok(req) = Request::decode(&frame, &limits) else {
                return;
            };
            if !authenticated {
                // As the real server: anything but the right HELLO ends the connection.
                match &req {
                    Request::Hello { token, .. } if &token[..] == TOKEN => {
                        authenticated = true;
                        let reply = msg::hello::HelloReply {
                            version: 1,
                            features: 0,
                            max_frame: 1 << 21,
                            max_key: 1024,
                            max_value: 1 << 20,
                            history: 1,
                            server: Bytes::from_static(b"fake"),
                        };
                        msg::hello::encode_response(&mut out, id, &reply);
                        continue;
                    }
                    _ => return,
                }
            }
            let ordinal = shared.seen.fetch_add(1, Ordering::Relaxed) + 1;
            on_this_connection += 1;
            if matches!(behavior, Behavior::CloseAfter(n) if ordinal > n)
                || matches!(behavior, Behavior::CloseEachAfter(n) | Behavior::TokenThenCloseEachAfter(n) if on_this_connection > n)
            {
                return;
            }
            // Every answer is computed under the store lock, so one request that
            // sleeps while holding it stalls every connection.
            let mut store = shared.store.lock().unwrap();
            match behavior {
                Behavior::StallAt(at, pause) if ordinal == at => std::thread::sleep(pause),
                Behavior::Slow(each) => std::thread::sleep(each),
                Behavior::SlowStallingAt(each, at, pause) => {
                    std::thread::sleep(if ordinal == at { pause } else { each })
                }
                _ => {}
            }
            answer(&req, id, behavior, &mut store, shared, &mut out);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
        out.clear();
    }
}

fn answer(
    req: &Request,
    id: RequestId,
    behavior: Behavior,
    store: &mut HashMap<Bytes, (u64, Bytes)>,
    shared: &Shared,
    out: &mut BytesMut,
) {
    let id = match behavior {
        Behavior::BadId => RequestId(id.0.wrapping_add(1000)),
        _ => id,
    };
    let next = || shared.version.fetch_add(1, Ordering::Relaxed) + 1;
    match req {
        Request::Get { .. } if matches!(behavior, Behavior::BadValue) => {
            msg::get::encode_response(out, id, 1, b"this value belongs to no key")
        }
        Request::Get { key } => match store.get(key) {
            Some((v, value)) => msg::get::encode_response(out, id, *v, value),
            None => encode::not_found(out, Opcode::GET, id),
        },
        Request::Put { key, value, .. } => {
            let v = next();
            store.insert(key.clone(), (v, value.clone()));
            encode::written(out, Opcode::PUT, id, v);
        }
        Request::Delete { key, .. } => match store.remove(key) {
            Some(_) => encode::written(out, Opcode::DELETE, id, next()),
            None => encode::not_found(out, Opcode::DELETE, id),
        },
        Request::Cas {
            key,
            expected,
            value,
            ..
        } => {
            let current = store.get(key).map_or(0, |r| r.0);
            if current == *expected {
                let v = next();
                store.insert(key.clone(), (v, value.clone()));
                encode::written(out, Opcode::CAS, id, v);
            } else {
                encode::version_conflict(out, Opcode::CAS, id, current);
            }
        }
        Request::Ping { payload } => msg::ping::encode_response(out, id, payload),
        other => encode::error(out, other.opcode(), id, Status::UNKNOWN_OPCODE, b"no"),
    }
}
