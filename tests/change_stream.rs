//! The ordered change stream, end to end: many clients write concurrently over
//! overlapping keys through every execution path, and the stream the server emits is
//! every number exactly once, in order, and rebuilds the store when replayed.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::client::Client;
use switchboard::config::Config;
use switchboard::server::Server;
use switchboard::store::{Change, Store};

const WRITERS: usize = 50;
const WRITES: usize = 60;
const KEYS: usize = 20;

/// Runs the writers against a server with `workers` and `inline_max_batch`, and
/// checks the stream it emitted.
fn stream_is_every_change_in_order(workers: usize, inline_max_batch: usize) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers,
        inline_max_batch,
        ..Config::default()
    };
    let mut server = Server::bind(&config).unwrap();
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let ctx = server.context();
    let stream: Arc<Mutex<Vec<Change>>> = Arc::default();
    let sink = stream.clone();
    server.on_change(move |c| sink.lock().unwrap().push(c.clone()));
    let reactor = std::thread::spawn(move || server.run());

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                c.set_timeout(Some(Duration::from_secs(10))).unwrap();
                for i in 0..WRITES {
                    let key = format!("k{}", (w * 7 + i) % KEYS);
                    // PUTs (some of them large enough for a worker), CASes that may
                    // lose their race, and deletes that may find nothing: only what
                    // commits is a change.
                    match i % 5 {
                        0 | 1 => {
                            let len = if i % 10 == 0 { 20_000 } else { 16 };
                            c.put(key, vec![w as u8; len]).unwrap();
                        }
                        2 => {
                            let current = c.get(key.clone()).unwrap().map_or(0, |r| r.version);
                            let _ = c.cas(key, current, format!("cas {w} {i}"));
                        }
                        3 => {
                            let _ = c.delete(key, 0);
                        }
                        _ => {
                            // Pipelined writes go out as one run.
                            c.pipeline()
                                .put(key.clone(), "p1")
                                .put(key, "p2")
                                .send()
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    // Every answer was read, so every change has reached the reactor; a PING makes sure
    // the reactor has been round its loop since.
    Client::connect(addr).unwrap().ping().unwrap();
    stop.shutdown();
    reactor.join().unwrap().unwrap();

    let stream = stream.lock().unwrap();
    let last = ctx.store.seq();
    assert!(
        last > (WRITERS * WRITES) as u64 / 2,
        "only {last} writes committed"
    );
    let seqs: Vec<u64> = stream.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "the stream is every number once, in order"
    );
    let replayed = Store::new(0);
    for change in stream.iter() {
        replayed.apply_change(change);
    }
    assert_eq!(replayed.seq(), last);
    let all = |s: &Store| s.scan(b"", b"", 1000).records;
    assert_eq!(
        all(&replayed),
        all(&ctx.store),
        "the replay rebuilds the store"
    );
}

#[test]
fn four_workers_everything_handed_off() {
    stream_is_every_change_in_order(4, 0);
}

#[test]
fn four_workers_cheap_writes_on_the_reactor() {
    stream_is_every_change_in_order(4, 1024);
}

#[test]
fn no_workers() {
    stream_is_every_change_in_order(0, 1024);
}
