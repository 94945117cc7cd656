//! Ten thousand connections held at once against the real server binary: the server
//! accepts every one, each costs it at most 512 bytes of resident memory while silent,
//! every one stays live (answers a PING) and other clients are still served, and the
//! server lets go of all of them when they leave.
//!
//! This binary holds a single test: it raises its own process's descriptor limit, and
//! the server it starts inherits the raised limit.

mod common;

use common::{frame, rss, RawConn, ServerProcess};
use std::net::TcpStream;
use std::time::Instant;
use switchboard::client::{stat, Client};
use switchboard::protocol::{Request, RequestId, ResponseBody};

/// Connections held at once.
const CONNECTIONS: usize = 10_000;

/// The server's connection limit: the held connections plus room for the test's own
/// (the STATS connection, a fresh PUT/GET client).
const MAX_CONNECTIONS: usize = CONNECTIONS + 100;

/// Descriptors each process needs: the server, one per connection it may hold plus
/// those open at its start (listener, poller, waker, signal pipe, reserve, stdio) and
/// the 16 it keeps spare, with room; the test fewer (its connections and a handful).
/// Below this the server would rightly lower its connection limit, so the test skips.
const NEEDED_DESCRIPTORS: u64 = MAX_CONNECTIONS as u64 + 64;

/// Resident memory a silent connection may cost the server.
const MAX_BYTES_PER_CONNECTION: u64 = 512;

/// Every `PING_EVERY`th held connection proves it is live with a PING.
const PING_EVERY: usize = 500;

/// Raises this process's soft descriptor limit to its hard limit (a process started
/// after this inherits it) and returns the soft limit now in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a plain struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0,
        "getrlimit: {}",
        std::io::Error::last_os_error()
    );
    // An unlimited hard limit still cannot take the soft one past the kernel's
    // per-process ceiling.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let wanted = limit.rlim_max.min(ceiling);
    if wanted > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // Raising the soft limit up to the hard one is always allowed: a failure here
        // is a fault to report, not a reason to skip.
        // SAFETY: setrlimit reads a plain struct we own.
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) },
            0,
            "setrlimit to {wanted}: {}",
            std::io::Error::last_os_error()
        );
    }
    wanted.max(limit.rlim_cur)
}

/// The server's current connection count, over the test's own STATS connection
/// (counted in it).
fn current(stats: &mut Client) -> u64 {
    stat(&stats.stats().expect("STATS"), "connections_current").expect("connections_current")
}

/// The connection limit a `limits:` startup line states ("…; N connections; …").
fn stated_connection_limit(line: &str) -> usize {
    line.split("; ")
        .find_map(|part| part.strip_suffix(" connections"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connection limit in {line:?}"))
}

#[test]
fn ten_thousand_silent_connections_are_held_cheaply_and_stay_live() {
    let started = Instant::now();
    let limit = raise_descriptor_limit();
    if limit < NEEDED_DESCRIPTORS {
        eprintln!(
            "SKIPPED: holding {CONNECTIONS} connections needs about {NEEDED_DESCRIPTORS} \
             file descriptors in this process and as many in the server's, but the hard \
             limit is {limit}; raise it (ulimit -Hn, LimitNOFILE=) to run this test"
        );
        return;
    }

    let server = ServerProcess::start(&[
        "--workers",
        "1",
        "--max-connections",
        &MAX_CONNECTIONS.to_string(),
        // Connects arrive faster than one reactor turn accepts them; a queue this long
        // (capped by net.core.somaxconn) spares the kernel dropping SYNs, which clients
        // would retry only after a second.
        "--listen-backlog",
        "4096",
    ]);
    // The descriptor limit allows it, so the server must not have lowered its own.
    let limits = server.startup_line("limits:");
    assert_eq!(
        stated_connection_limit(&limits),
        MAX_CONNECTIONS,
        "the server lowered its connection limit although {limit} descriptors allow \
         {MAX_CONNECTIONS}: {limits}"
    );
    let pid = server.pid();
    let mut stats = server.client();
    let baseline = current(&mut stats);

    // Measured from the first connection on: the registry's growth from its initial
    // capacity to 10,000 entries is part of what holding them costs.
    let rss_before = rss(pid);
    let mut held = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let stream = TcpStream::connect_timeout(&server.addr, common::WAIT)
            .unwrap_or_else(|e| panic!("connection {i} of {CONNECTIONS}: {e}"));
        held.push(stream);
    }
    let connected = started.elapsed();
    common::wait_until("the server accepted every connection", || {
        current(&mut stats) == baseline + CONNECTIONS as u64
    });
    let accepted = started.elapsed();
    let rss_after = rss(pid);
    let per_connection = rss_after.saturating_sub(rss_before) / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} silent connections: server RSS {} KiB -> {} KiB, {per_connection} \
         bytes each (connected after {connected:?}, all accepted after {accepted:?})",
        rss_before >> 10,
        rss_after >> 10,
    );
    let final_stats = stats.stats().expect("STATS");
    assert_eq!(
        stat(&final_stats, "connections_rejected"),
        Some(0),
        "a connection was refused"
    );
    assert!(
        per_connection <= MAX_BYTES_PER_CONNECTION,
        "{per_connection} bytes of server RSS per silent connection (at most \
         {MAX_BYTES_PER_CONNECTION})"
    );

    // Live, not merely counted: a sample across the whole range answers a PING. (After
    // the measurement, since a connection that speaks gets buffers.)
    for (i, stream) in held.iter().enumerate().step_by(PING_EVERY) {
        let mut conn = RawConn::from_stream(stream.try_clone().expect("clone the socket"));
        let payload = format!("held {i}");
        conn.send(&frame(
            &Request::Ping {
                payload: payload.clone().into(),
            },
            i as u32,
        ));
        let answer = conn.recv();
        assert_eq!(answer.request_id, RequestId(i as u32), "connection {i}");
        assert_eq!(
            answer.body,
            ResponseBody::Pong(payload.into()),
            "connection {i}"
        );
    }
    // And a newcomer is served as usual beside them.
    let mut fresh = server.client();
    let version = fresh.put("many:key", "value").expect("PUT");
    let record = fresh.get("many:key").expect("GET").expect("the record");
    assert_eq!(
        (record.version, &record.value[..]),
        (version, &b"value"[..])
    );
    drop(fresh);

    drop(held);
    common::wait_until("every held connection is closed", || {
        current(&mut stats) == baseline
    });
    eprintln!("done in {:?}", started.elapsed());
}
