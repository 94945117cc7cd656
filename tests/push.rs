//! Subscriptions, change events, published messages, resume and GAP, against the real
//! server binary over loopback.

mod common;

use bytes::Bytes;
use common::push::{event, next, quiet, subscriber};
use common::{ServerProcess, WAIT};
use switchboard::client::{Client, ClientError, Subscribed, Subscriber, Watch, WatchEvent};
use switchboard::protocol::msg::subscribe::Resume;
use switchboard::protocol::{features, EventKind, Push, Status};

#[test]
fn change_events_carry_the_operation_and_the_version() {
    let server = ServerProcess::start(&[]);
    let mut s = subscriber(&server);
    let Subscribed { sub_id, .. } = s.subscribe("user:", None, 0).unwrap();
    let mut w = server.client();
    let v1 = w.put("user:1", "alice").unwrap();
    let v2 = w.cas("user:1", v1, "bob").unwrap();
    w.put("other", "x").unwrap();
    let d = w.delete("user:1", 0).unwrap().unwrap();
    assert!(
        w.cas("user:1", 99, "no").is_err(),
        "a failed CAS is no event"
    );
    assert_eq!(
        event(next(&mut s)),
        (sub_id, v1, EventKind::Put, "user:1".into(), "alice".into())
    );
    assert_eq!(
        event(next(&mut s)),
        (sub_id, v2, EventKind::Put, "user:1".into(), "bob".into())
    );
    assert_eq!(
        event(next(&mut s)),
        (sub_id, d, EventKind::Delete, "user:1".into(), Bytes::new())
    );
    quiet(&mut s);
}

#[test]
fn requests_and_pushes_share_one_connection() {
    let server = ServerProcess::start(&[]);
    let mut s = subscriber(&server);
    let sub = s.subscribe("", None, 0).unwrap();
    // The subscriber's own writes come back as events, between its answers.
    let v1 = s.put("k", "1").unwrap();
    let v2 = s.put("k", "2").unwrap();
    assert_eq!(s.get("k").unwrap().unwrap().version, v2);
    assert_eq!(event(next(&mut s)).1, v1);
    assert_eq!(event(next(&mut s)).1, v2);
    assert!(s.unsubscribe(sub.sub_id).unwrap());
    assert!(!s.unsubscribe(sub.sub_id).unwrap(), "already gone");
    s.put("k", "3").unwrap();
    quiet(&mut s);
}

#[test]
fn overlapping_subscriptions_each_get_their_copy_once() {
    let server = ServerProcess::start(&[]);
    let mut s = subscriber(&server);
    let all = s.subscribe("", None, 0).unwrap().sub_id;
    let orders = s.subscribe("order:", None, 0).unwrap().sub_id;
    let one = s.subscribe("order:1", None, 0).unwrap().sub_id;
    let mut w = server.client();
    let v = w.put("order:12", "paid").unwrap();
    w.put("user:1", "x").unwrap();
    let mut got: Vec<(u32, u64)> = (0..4)
        .map(|_| {
            let (sub, seq, ..) = event(next(&mut s));
            (sub, seq)
        })
        .collect();
    got.sort_unstable();
    let mut want = vec![(all, v), (orders, v), (one, v), (all, v + 1)];
    want.sort_unstable();
    assert_eq!(got, want);
    quiet(&mut s);
}

#[test]
fn published_messages_reach_every_matching_connection_in_order() {
    let server = ServerProcess::start(&[]);
    let mut a = subscriber(&server);
    let mut b = subscriber(&server);
    let sa = a.subscribe("chat.", None, 0).unwrap().sub_id;
    let sb = b.subscribe("chat.room", None, 0).unwrap().sub_id;
    b.subscribe("chat.", None, 0).unwrap();
    let mut p = server.client();
    assert_eq!(
        p.publish("chat.room1", "hello").unwrap(),
        2,
        "two connections"
    );
    assert_eq!(p.publish("chat.other", "x").unwrap(), 2, "both hold chat.");
    assert_eq!(p.publish("news", "y").unwrap(), 0);
    for i in 0..100 {
        p.publish("chat.room1", format!("m{i}")).unwrap();
    }
    let message = |push: Push| match push {
        Push::Message {
            sub_id,
            subject,
            payload,
        } => (sub_id, subject, payload),
        other => panic!("expected a MESSAGE, got {other:?}"),
    };
    assert_eq!(
        message(next(&mut a)),
        (sa, "chat.room1".into(), "hello".into())
    );
    assert_eq!(message(next(&mut a)).2, "x");
    for i in 0..100 {
        assert_eq!(message(next(&mut a)).2, format!("m{i}"));
    }
    // b holds two matching subscriptions: a copy on each, per subscription in order.
    let mut on_room = Vec::new();
    for _ in 0..(2 + 1 + 200) {
        let (sub, _, payload) = message(next(&mut b));
        if sub == sb {
            on_room.push(payload);
        }
    }
    assert_eq!(on_room.len(), 101);
    assert_eq!(on_room[0], "hello");
    for i in 0..100 {
        assert_eq!(on_room[i + 1], format!("m{i}"));
    }
}

#[test]
fn subscribing_needs_push_and_limits_are_enforced() {
    let server = ServerProcess::start(&[
        "--max-subscriptions-per-connection",
        "2",
        "--max-subject",
        "8",
        "--max-payload",
        "16",
    ]);
    let mut plain = server.client();
    match plain.subscribe("x", None, 0) {
        Err(ClientError::Server { status, .. }) => assert_eq!(status, Status::UNSUPPORTED),
        other => panic!("{other:?}"),
    }
    let mut s = subscriber(&server);
    s.subscribe("a", None, 0).unwrap();
    s.subscribe("b", None, 0).unwrap();
    match s.subscribe("c", None, 0) {
        Err(ClientError::Server { status, .. }) => {
            assert_eq!(status, Status::SUBSCRIPTION_LIMIT)
        }
        other => panic!("{other:?}"),
    }
    let refused = |r: Result<u32, ClientError>| match r {
        Err(ClientError::Server { status, .. }) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refused(s.publish("a-long-subject", "x")),
        Status::KEY_TOO_LARGE
    );
    assert_eq!(
        refused(s.publish("short", vec![b'p'; 17])),
        Status::VALUE_TOO_LARGE
    );
    assert_eq!(
        refused(s.subscribe("a-long-prefix", None, 0).map(|s| s.sub_id)),
        Status::KEY_TOO_LARGE
    );
    assert_eq!(s.publish("short", vec![b'p'; 16]).unwrap(), 0);
    s.ping().unwrap();
}

#[test]
fn resume_replays_without_gap_or_duplicate_then_progress_then_live() {
    let server = ServerProcess::start(&[]);
    let mut w = server.client();
    let history = w.hello(0).unwrap().history;
    let versions: Vec<u64> = (0..10)
        .map(|i| w.put(format!("k{}", i % 3), format!("{i}")).unwrap())
        .collect();
    let mut s = subscriber(&server);
    let from = versions[3];
    s.subscribe("k", Some(Resume { from, history }), 0).unwrap();
    for &v in &versions[4..] {
        assert_eq!(event(next(&mut s)).1, v);
    }
    match next(&mut s) {
        Push::Progress {
            seq, history: h, ..
        } => {
            assert_eq!((seq, h), (versions[9], history));
        }
        other => panic!("expected PROGRESS, got {other:?}"),
    }
    let live = w.put("k1", "live").unwrap();
    assert_eq!(event(next(&mut s)).1, live);
    quiet(&mut s);
}

#[test]
fn a_rolled_log_or_a_foreign_history_gives_a_gap_then_what_is_held() {
    let server = ServerProcess::start(&["--change-log-events", "5"]);
    let mut w = server.client();
    let history = w.hello(0).unwrap().history;
    let versions: Vec<u64> = (0..20)
        .map(|i| w.put(format!("k{i}"), "v").unwrap())
        .collect();
    let mut s = subscriber(&server);
    s.subscribe("", Some(Resume { from: 2, history }), 0)
        .unwrap();
    match next(&mut s) {
        Push::Gap {
            after,
            oldest,
            current,
            ..
        } => assert_eq!((after, oldest, current), (2, versions[15], versions[19])),
        other => panic!("expected GAP, got {other:?}"),
    }
    for &v in &versions[15..] {
        assert_eq!(event(next(&mut s)).1, v);
    }
    assert!(matches!(next(&mut s), Push::Progress { .. }));
    // Another history's sequence is never read as this one's.
    let mut t = subscriber(&server);
    t.subscribe(
        "",
        Some(Resume {
            from: 18,
            history: history ^ 1,
        }),
        0,
    )
    .unwrap();
    match next(&mut t) {
        Push::Gap { after, oldest, .. } => assert_eq!((after, oldest), (18, versions[15])),
        other => panic!("expected GAP, got {other:?}"),
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_caught_up_from_the_log_when_it_reads_again() {
    // A small output limit: the subscriber falls behind after a few events.
    let server = ServerProcess::start(&["--max-output", "16k", "--change-log-events", "100000"]);
    let mut s = subscriber(&server);
    s.subscribe("k", None, 0).unwrap();
    let mut w = server.client();
    // Far more than the socket buffers hold, so the subscriber falls behind.
    let value = Bytes::from(vec![b'v'; 10 << 10]);
    let mut last = 0;
    for i in 0..3000 {
        last = w.put(format!("k{}", i % 50), value.clone()).unwrap();
    }
    // Writers were never held up; now the subscriber reads everything, in order.
    let mut expect = last - 2999;
    while expect <= last {
        let Some(push) = s.next_push(Some(WAIT)).unwrap() else {
            panic!("stalled at {expect} of {last}: {:?}", server.stats());
        };
        // Each time it fell behind and caught up, a PROGRESS says so.
        if let Push::Progress { seq, .. } = push {
            assert_eq!(seq, expect - 1, "a PROGRESS covers what came before it");
            continue;
        }
        let (_, seq, ..) = event(push);
        assert_eq!(seq, expect, "in order, none missing, none twice");
        expect += 1;
    }
    // A live subscription gets a PROGRESS only when a replay catches up: this one fell
    // behind, and was caught up from the log.
    assert!(matches!(next(&mut s), Push::Progress { seq, .. } if seq == last));
    // And the slow subscriber is counted.
    let fell = switchboard::client::stat(&server.stats(), "push_subscriptions_fell_behind");
    assert!(fell >= Some(1), "{fell:?}");
}

#[test]
fn messages_that_do_not_fit_are_counted_and_announced_by_lost() {
    let server = ServerProcess::start(&["--max-output", "16k"]);
    let mut s = subscriber(&server);
    let sub = s.subscribe("m", None, 0).unwrap().sub_id;
    let mut p = server.client();
    // Far more than the socket buffers and the output limit hold.
    let payload = Bytes::from(vec![b'p'; 16 << 10]);
    let mut pipeline = p.pipeline();
    for _ in 0..2000 {
        pipeline = pipeline.request(&switchboard::protocol::Request::Publish {
            subject: "m".into(),
            payload: payload.clone(),
        });
    }
    pipeline.send().unwrap();
    let mut delivered = 0u64;
    let mut lost = 0u64;
    // Read what fitted, until nothing more comes; the next message then finds room,
    // and the count of those that did not comes just before it.
    while let Some(push) = s
        .next_push(Some(std::time::Duration::from_millis(300)))
        .unwrap()
    {
        match push {
            Push::Message { .. } => delivered += 1,
            Push::Lost { count, .. } => lost += count,
            other => panic!("{other:?}"),
        }
    }
    assert!(delivered < 2000, "the output limit dropped some");
    p.publish("m", "last").unwrap();
    loop {
        match next(&mut s) {
            Push::Message { payload, .. } if payload == "last" => break,
            Push::Message { .. } => delivered += 1,
            Push::Lost { sub_id, count } => {
                assert_eq!(sub_id, sub);
                lost += count;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(delivered + lost, 2000, "every message delivered or counted");
}

#[test]
fn watch_lists_then_follows_and_a_subscriber_resumes_after_reconnect() {
    let server = ServerProcess::start(&[]);
    let mut w = server.client();
    for i in 0..5 {
        w.put(format!("w:{i}"), "0").unwrap();
    }
    let mut watch = Watch::start(server.addr, "w:").unwrap();
    let mut records = std::collections::BTreeMap::new();
    loop {
        match watch.next(Some(WAIT)).unwrap().expect("in time") {
            WatchEvent::Put { key, value, .. } => {
                records.insert(key, value);
            }
            WatchEvent::Synced { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(records.len(), 5);
    w.delete("w:0", 0).unwrap();
    w.put("w:9", "new").unwrap();
    assert!(matches!(
        watch.next(Some(WAIT)).unwrap(),
        Some(WatchEvent::Delete { key, .. }) if key == "w:0"
    ));
    assert!(matches!(
        watch.next(Some(WAIT)).unwrap(),
        Some(WatchEvent::Put { key, .. }) if key == "w:9"
    ));

    let mut sub = Subscriber::connect(server.addr, "w:", None, 0).unwrap();
    let v = w.put("w:1", "a").unwrap();
    assert!(matches!(sub.next(Some(WAIT)).unwrap(), Some(Push::Event { seq, .. }) if seq == v));
    assert_eq!(sub.last_seq(), v);
}

#[test]
fn keepalive_keeps_a_quiet_subscriber_and_closes_a_silent_one() {
    use std::io::{Read, Write};
    let server = ServerProcess::start(&["--keepalive", "0.2", "--idle-timeout", "1"]);
    // Alive but quiet: the client answers each PING push by itself.
    let mut alive = subscriber(&server);
    alive.subscribe("q", None, 0).unwrap();
    // Silent: reads everything (so its output drains) and never sends a byte.
    let mut silent = std::net::TcpStream::connect(server.addr).unwrap();
    let mut hello = bytes::BytesMut::new();
    switchboard::protocol::Request::Hello {
        max_version: 1,
        features: features::PUSH,
        token: Bytes::new(),
    }
    .encode(switchboard::protocol::RequestId(1), &mut hello);
    switchboard::protocol::Request::Subscribe {
        prefix: "q".into(),
        resume: None,
        progress_ms: 0,
    }
    .encode(switchboard::protocol::RequestId(2), &mut hello);
    silent.write_all(&hello).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let silent = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match silent.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the silent subscriber was not closed: {e}"),
            }
        }
        (started.elapsed(), received)
    });
    // Meanwhile the quiet one reads (answering PINGs) and, past the keepalive
    // deadline and its idle timeout too, is still served.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let got = alive
            .next_push(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        assert_eq!(got, None, "nothing was written");
    }
    let (waited, received) = silent.join().unwrap();
    assert!(
        waited >= std::time::Duration::from_millis(600),
        "closed after {waited:?}, before three intervals"
    );
    // It was sent PINGs (push frames with opcode 0x02) before being closed.
    assert!(received.windows(4).any(|w| w == [0x01, 0x02, 0x01, 0x00]));
    let mut w = server.client();
    let v = w.put("q1", "x").unwrap();
    assert_eq!(event(next(&mut alive)).1, v);
    let stats = server.stats();
    assert!(switchboard::client::stat(&stats, "push_pings_sent").unwrap() >= 2);
    assert_eq!(
        switchboard::client::stat(&stats, "push_keepalive_closes"),
        Some(1)
    );
}

#[test]
fn progress_is_sent_while_nothing_else_is_when_asked() {
    let server = ServerProcess::start(&[]);
    let mut s = subscriber(&server);
    let sub = s.subscribe("p", None, 100).unwrap();
    let mut w = server.client();
    let v = w.put("p1", "x").unwrap();
    assert_eq!(event(next(&mut s)).1, v);
    let w2 = w.put("elsewhere", "y").unwrap();
    // Quiet for the interval: a PROGRESS covering everything up to the last change.
    match next(&mut s) {
        Push::Progress { sub_id, seq, .. } => {
            assert_eq!(sub_id, sub.sub_id);
            assert_eq!(seq, w2);
        }
        other => panic!("expected PROGRESS, got {other:?}"),
    }
}

#[test]
fn concurrent_publishers_each_keep_their_order_at_every_subscriber() {
    let server = ServerProcess::start(&[]);
    let mut subs: Vec<Client> = (0..3).map(|_| subscriber(&server)).collect();
    for s in &mut subs {
        s.subscribe("t", None, 0).unwrap();
    }
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let mut c = server.client();
            std::thread::spawn(move || {
                for i in 0..200 {
                    assert_eq!(c.publish("t", format!("{p}:{i}")).unwrap(), 3);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for s in &mut subs {
        let mut next_of = [0usize; 4];
        for _ in 0..800 {
            let Push::Message { payload, .. } = next(s) else {
                panic!("a message")
            };
            let text = std::str::from_utf8(&payload).unwrap();
            let (p, i) = text.split_once(':').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next_of[p], "publisher {p} out of order");
            next_of[p] += 1;
        }
        assert_eq!(next_of, [200; 4]);
    }
}

#[test]
fn a_subscriber_that_disconnects_mid_fan_out_costs_the_others_nothing() {
    let server = ServerProcess::start(&[]);
    let mut stay = subscriber(&server);
    stay.subscribe("f", None, 0).unwrap();
    let mut leave = subscriber(&server);
    leave.subscribe("f", None, 0).unwrap();
    let mut p = server.client();
    let payload = Bytes::from(vec![b'x'; 4096]);
    let publisher = std::thread::spawn(move || {
        for _ in 0..500 {
            p.publish("f", payload.clone()).unwrap();
        }
        p
    });
    // Read a little, then vanish in the middle of the stream.
    for _ in 0..10 {
        next(&mut leave);
    }
    drop(leave);
    let mut p = publisher.join().unwrap();
    for _ in 0..500 {
        assert!(matches!(next(&mut stay), Push::Message { .. }));
    }
    common::wait_until("the leaver's subscription is forgotten", || {
        switchboard::client::stat(&server.stats(), "subscriptions_current") == Some(1)
    });
    assert_eq!(p.publish("f", "after").unwrap(), 1);
}
