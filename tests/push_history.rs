//! Push under change: watchers that reconnect at random points while writers write and
//! the change log rolls, a replay longer than a reactor turn, and a Watch the log
//! rolled past. Every history must be whole, or say (GAP) what it missed.

mod common;

use bytes::Bytes;
use common::push::{event, next, subscriber};
use common::{ServerProcess, WAIT};
use switchboard::client::{Client, Watch, WatchEvent};
use switchboard::protocol::msg::subscribe::Resume;
use switchboard::protocol::{features, EventKind, Push};

/// One watcher's view: every push it received, across reconnects, and the state it
/// rebuilt from them (re-listing after each GAP, as the spec's recipe says).
struct Watcher {
    events: Vec<u64>,
    gaps: Vec<(u64, u64)>,
    state: std::collections::BTreeMap<Bytes, (u64, Bytes)>,
}

fn watch_with_reconnects(
    addr: std::net::SocketAddr,
    history: u64,
    seed: u64,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Watcher {
    let mut rng = seed;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut w = Watcher {
        events: Vec::new(),
        gaps: Vec::new(),
        state: Default::default(),
    };
    let mut seen: std::collections::HashMap<Bytes, u64> = Default::default();
    let mut floor = 0;
    let mut last = 0;
    'connection: loop {
        let mut c = Client::connect(addr).unwrap();
        c.set_timeout(Some(WAIT)).unwrap();
        c.hello(features::PUSH).unwrap();
        c.subscribe(
            "h",
            Some(Resume {
                from: last,
                history,
            }),
            0,
        )
        .unwrap();
        let mut until_drop = 20 + rand(300);
        let mut waited = std::time::Duration::ZERO;
        loop {
            let final_seq = done.load(std::sync::atomic::Ordering::SeqCst);
            if final_seq != 0 && last >= final_seq {
                return w;
            }
            let tick = std::time::Duration::from_millis(50);
            let Some(push) = c.next_push(Some(tick)).unwrap() else {
                waited += tick;
                assert!(waited < WAIT, "the stream stalled at {last}");
                continue;
            };
            waited = std::time::Duration::ZERO;
            match push {
                Push::Event {
                    seq,
                    kind,
                    key,
                    value,
                    ..
                } => {
                    assert!(
                        seq > last,
                        "event {seq} after {last}: out of order or twice"
                    );
                    w.events.push(seq);
                    last = seq;
                    let newer = seen.get(&key).is_none_or(|&v| v < seq);
                    if seq > floor && newer {
                        seen.insert(key.clone(), seq);
                        match kind {
                            EventKind::Put => {
                                w.state.insert(key, (seq, value));
                            }
                            EventKind::Delete => {
                                w.state.remove(&key);
                            }
                        }
                    }
                }
                Push::Gap { after, oldest, .. } => {
                    assert_eq!(after, last, "a GAP starts where the stream was");
                    w.gaps.push((after, oldest));
                    last = oldest - 1;
                    // Re-list, and drop whatever the stream replays at or below it.
                    let (entries, seq) = c.scan_all("h").unwrap();
                    floor = seq;
                    seen.clear();
                    w.state = entries
                        .into_iter()
                        .map(|e| {
                            seen.insert(e.key.clone(), e.version);
                            (e.key, (e.version, e.value))
                        })
                        .collect();
                }
                Push::Progress { seq, .. } => last = last.max(seq),
                other => panic!("{other:?}"),
            }
            until_drop -= 1;
            if until_drop == 0 {
                // Vanish, stay away a moment (the log may roll meanwhile), come back.
                drop(c);
                std::thread::sleep(std::time::Duration::from_millis(rand(30)));
                continue 'connection;
            }
        }
    }
}

#[test]
fn watchers_that_reconnect_see_every_change_or_a_gap_and_end_equal_to_the_store() {
    let server = ServerProcess::start(&["--change-log-events", "300", "--workers", "2"]);
    let history = server.client().hello(0).unwrap().history;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watchers: Vec<_> = (0..3)
        .map(|i| {
            let (addr, done) = (server.addr, done.clone());
            std::thread::spawn(move || watch_with_reconnects(addr, history, 7 + i, done))
        })
        .collect();
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let mut c = server.client();
            std::thread::spawn(move || {
                let mut x = t + 1;
                for i in 0..1500u64 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = format!("h{}", (x >> 33) % 40);
                    if (x >> 20) % 5 == 0 {
                        let _ = c.delete(key, 0).unwrap();
                    } else {
                        c.put(key, format!("{t}:{i}")).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let final_seq = switchboard::client::stat(&server.stats(), "seq").unwrap();
    done.store(final_seq, std::sync::atomic::Ordering::SeqCst);
    let (store, _) = server.client().scan_all("h").unwrap();
    let store: std::collections::BTreeMap<Bytes, (u64, Bytes)> = store
        .into_iter()
        .map(|e| (e.key, (e.version, e.value)))
        .collect();
    let mut gaps = 0;
    for w in watchers {
        let w = w.join().unwrap();
        // Every change is an event or inside a GAP, never both, never twice.
        let mut covered = vec![0u8; final_seq as usize + 1];
        for &seq in &w.events {
            covered[seq as usize] += 1;
        }
        for &(after, oldest) in &w.gaps {
            for seq in after + 1..oldest {
                covered[seq as usize] += 1;
            }
        }
        assert!(
            covered[1..].iter().all(|&n| n == 1),
            "a change missed or repeated"
        );
        assert_eq!(w.state, store, "the rebuilt state is the store's");
        gaps += w.gaps.len();
    }
    assert!(gaps > 0, "the log rolled past some watcher at least once");
}

#[test]
fn a_replay_longer_than_a_turn_of_the_reactor_arrives_whole_and_in_order() {
    let server = ServerProcess::start(&[]);
    let mut w = server.client();
    let history = w.hello(0).unwrap().history;
    // More than the replays may look at in one iteration of the reactor.
    let n = 40_000u64;
    let value = Bytes::from_static(b"v");
    for chunk in 0..n / 1000 {
        let mut pipeline = w.pipeline();
        for i in 0..1000 {
            pipeline = pipeline.put(format!("r{}", (chunk * 1000 + i) % 97), value.clone());
        }
        pipeline.send().unwrap();
    }
    let mut s = subscriber(&server);
    s.subscribe("r", Some(Resume { from: 0, history }), 0)
        .unwrap();
    // Meanwhile the connection answers requests.
    s.ping().unwrap();
    for seq in 1..=n {
        assert_eq!(event(next(&mut s)).1, seq);
    }
    assert!(matches!(next(&mut s), Push::Progress { seq, .. } if seq == n));
}

#[test]
fn a_watch_that_falls_past_the_log_lists_again_and_ends_equal_to_the_store() {
    let server = ServerProcess::start(&["--max-output", "16k", "--change-log-events", "5"]);
    let mut w = server.client();
    for i in 0..10 {
        w.put(format!("g:{i}"), "0").unwrap();
    }
    let mut watch = Watch::start(server.addr, "g:").unwrap();
    let mut state = std::collections::BTreeMap::new();
    let apply =
        |event: WatchEvent, state: &mut std::collections::BTreeMap<Bytes, Bytes>| match event {
            WatchEvent::Put { key, value, .. } => {
                state.insert(key, value);
            }
            WatchEvent::Delete { key, .. } => {
                state.remove(&key);
            }
            WatchEvent::Reset => state.clear(),
            WatchEvent::Synced { .. } => {}
        };
    loop {
        let event = watch.next(Some(WAIT)).unwrap().expect("in time");
        let synced = matches!(event, WatchEvent::Synced { .. });
        apply(event, &mut state);
        if synced {
            break;
        }
    }
    // Far more than its output, the socket buffers and the log hold, while the watch
    // reads nothing.
    let big = Bytes::from(vec![b'x'; 8192]);
    for round in 0..40 {
        let mut pipeline = w.pipeline();
        for i in 0..100 {
            let key = format!("g:{}", (round + i) % 10);
            pipeline = if i % 7 == 3 {
                pipeline.request(&switchboard::protocol::Request::Delete {
                    key: key.into(),
                    expected: 0,
                })
            } else {
                pipeline.put(key, big.slice(..8192 - i))
            };
        }
        pipeline.send().unwrap();
    }
    let last = w.put("g:last", "end").unwrap();
    let mut reset = false;
    loop {
        let event = watch.next(Some(WAIT)).unwrap().expect("in time");
        reset |= event == WatchEvent::Reset;
        let done = matches!(&event, WatchEvent::Put { version, .. } if *version == last);
        apply(event, &mut state);
        if done {
            break;
        }
    }
    assert!(reset, "the log rolled past the watch, which listed again");
    let (records, _) = w.scan_all("g:").unwrap();
    let store: std::collections::BTreeMap<Bytes, Bytes> =
        records.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(state, store);
}
