//! Helpers for the push tests: a subscriber connection and the pushes it reads.

use super::{ServerProcess, WAIT};
use bytes::Bytes;
use switchboard::client::Client;
use switchboard::protocol::{features, EventKind, Push};

/// A client that asked for PUSH (and got it).
pub fn subscriber(server: &ServerProcess) -> Client {
    let mut c = server.client();
    let hello = c.hello(features::PUSH).expect("HELLO");
    assert_eq!(hello.features & features::PUSH, features::PUSH);
    c
}

/// The next push, in time.
pub fn next(c: &mut Client) -> Push {
    c.next_push(Some(WAIT))
        .expect("a push")
        .expect("a push in time")
}

/// The parts of an EVENT (any other push fails the test).
pub fn event(push: Push) -> (u32, u64, EventKind, Bytes, Bytes) {
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
pub fn quiet(c: &mut Client) {
    let got = c
        .next_push(Some(std::time::Duration::from_millis(200)))
        .expect("no error");
    assert!(got.is_none(), "unexpected push {got:?}");
}
