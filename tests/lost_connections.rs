//! What a client may assume about its unanswered requests when its connection is lost,
//! on every execution path: the requests the server carried out are a prefix of what
//! was sent, in order (the rule in protocol-spec.md, "Closing").

mod common;

use common::{frame, ServerProcess};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use switchboard::client::stat;
use switchboard::protocol::Request;

const ROUNDS: usize = 12;

/// Pipelines `writes` PUTs of `value_len` bytes and resets the connection at once, for
/// `ROUNDS` rounds; after each, the keys written must be the first m of them, with
/// rising versions.
fn carried_out_requests_are_a_prefix(flags: &[&str], writes: usize, value_len: usize) {
    let server = ServerProcess::start(flags);
    let mut client = server.client();
    let mut partial = 0;
    for round in 0..ROUNDS {
        let keys: Vec<String> = (0..writes).map(|i| format!("r{round}:{i:04}")).collect();
        let mut wire = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let put = Request::Put {
                key: bytes::Bytes::copy_from_slice(key.as_bytes()),
                value: vec![b'v'; value_len].into(),
                ttl_ms: 0,
            };
            wire.extend_from_slice(&frame(&put, i as u32));
        }
        let mut stream = TcpStream::connect(server.addr).unwrap();
        // The write may fail part-way once the server resets; what it sent counts.
        let _ = stream.write_all(&wire);
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream); // a reset, not a close
        common::wait_until("the server noticed the reset", || {
            // This client's own connection is the only one left.
            stat(&client.stats().unwrap(), "connections_current") == Some(1)
        });

        let mut p = client.pipeline();
        for key in &keys {
            p = p.get(key.clone());
        }
        let found: Vec<Option<u64>> = p
            .send()
            .unwrap()
            .into_iter()
            .map(|body| match body {
                switchboard::protocol::ResponseBody::Value { version, .. } => Some(version),
                _ => None,
            })
            .collect();
        let carried = found.iter().take_while(|v| v.is_some()).count();
        assert!(
            found[carried..].iter().all(Option::is_none),
            "round {round}: a request ran after one that did not: {:?}",
            found.iter().map(Option::is_some).collect::<Vec<_>>()
        );
        let versions: Vec<u64> = found[..carried].iter().map(|v| v.unwrap()).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "round {round}: carried out out of order"
        );
        if carried > 0 && carried < writes {
            partial += 1;
        }
    }
    // Not an assertion of the rule, a note on the test's reach: a round where the
    // reset cut the pipeline short shows the rule at its edge.
    eprintln!("{flags:?}: {partial} of {ROUNDS} rounds were cut short by the reset");
}

#[test]
fn no_workers() {
    carried_out_requests_are_a_prefix(&["--workers", "0"], 4000, 64);
}

#[test]
fn cheap_runs_on_the_reactor() {
    carried_out_requests_are_a_prefix(&["--workers", "1"], 4000, 64);
}

#[test]
fn large_writes_at_a_worker() {
    carried_out_requests_are_a_prefix(&["--workers", "1"], 120, 40_000);
}
