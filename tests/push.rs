//! Subscriptions, change events, published messages, resume and GAP, against the real
//! server binary over loopback.

mod common;

use bytes::Bytes;
use common::{ServerProcess, WAIT};
use switchboard::client::{Client, ClientError, Subscribed, Subscriber, Watch, WatchEvent};
use switchboard::protocol::msg::subscribe::Resume;
use switchboard::protocol::{features, EventKind, Push, Status};

fn subscriber(server: &ServerProcess) -> Client {
    let mut c = server.client();
    let hello = c.hello(features::PUSH).expect("HELLO");
    assert_eq!(hello.features & features::PUSH, features::PUSH);
    c
}

fn next(c: &mut Client) -> Push {
    c.next_push(Some(WAIT))
        .expect("a push")
        .expect("a push in time")
}

fn event(push: Push) -> (u32, u64, EventKind, Bytes, Bytes) {
    match push {
        Push::Event {
            sub_id,
            seq,
            kind,
            key,
            value,
        } => (sub_id, seq, kind, key, value),
        other => panic!("expected an EVENT, got {other:?}"),
    }
}

/// Nothing more arrives for a moment (used only where something arriving is the bug).
fn quiet(c: &mut Client) {
    let got = c
        .next_push(Some(std::time::Duration::from_millis(200)))
        .expect("no error");
    assert!(got.is_none(), "unexpected push {got:?}");
}

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
    let server = ServerProcess::start(&["--max-subscriptions-per-connection", "2"]);
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
        let (_, seq, ..) = event(push);
        assert_eq!(seq, expect, "in order, none missing, none twice");
        expect += 1;
    }
    assert!(matches!(next(&mut s), Push::Progress { seq, .. } if seq == last));
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
