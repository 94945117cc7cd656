//! A soak: minutes of mixed load against the real server binary — clients doing PUT,
//! GET, DELETE, SCAN and PUBLISH in pipelines, subscribers following changes, and
//! connections dropped mid-pipeline (closed, reset, or cut inside a frame) and made
//! again — after which the server must be back where it started: every descriptor
//! returned, and its resident memory near what it held after a warm-up.
//!
//! Ignored by default, for its length. Run it with
//!
//! ```text
//! SOAK_SECS=120 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! `SOAK_SECS` (default 120) is the loaded time after a warm-up of [`WARMUP`];
//! `SOAK_SEED` changes the clients' random choices (each run prints its seed).

mod common;

use bytes::Bytes;
use common::{frame, open_descriptors, rss, RawConn, ServerProcess, WAIT};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use switchboard::client::{stat, Client};
use switchboard::protocol::msg::subscribe::Resume;
use switchboard::protocol::{features, Push, Request, ResponseBody, MAX_VERSION};

/// Load before the baseline is measured: long enough to fill the store's key space and
/// the change log to their steady sizes, and the allocator's arenas with them.
const WARMUP: Duration = Duration::from_secs(5);

/// Threads doing store requests.
const STORE_CLIENTS: u64 = 4;
/// Threads following changes.
const SUBSCRIBERS: u64 = 2;
/// Keys in play: a bounded key space keeps the store's size steady after the warm-up.
const KEYS: u64 = 1000;
/// Largest value written.
const MAX_VALUE: u64 = 2048;

/// How far the server's resident memory may stay above the post-warm-up baseline once
/// the load has gone. Not zero, for reasons that are not leaks: the records differ
/// from the baseline's (up to 1,000 keys of at most 2 KiB: 2 MiB of values, plus the
/// table's per-record overhead); the change log is full at both readings but holds
/// other values; and malloc keeps freed chunks in its per-thread arenas (the reactor's
/// and each worker's) and on fragmented heap pages rather than returning them.
/// Together these moved the reading by under 2 MiB either way in runs of 20 s and of
/// 120 s; 8 MiB leaves room for other machines. A leak of about 200 bytes per
/// connection over the 45,000 connections a default run makes, or of the pushes or
/// answers cut off, exceeds it.
const RSS_TOLERANCE: u64 = 8 << 20;

/// A small seeded generator (xorshift64*), so that a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Spread small seeds over the state; xorshift must not start at zero.
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the clients did, summed over threads and phases.
#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    connections: AtomicU64,
    /// Connections dropped with requests unanswered, or inside a frame.
    abandoned: AtomicU64,
    pushes: AtomicU64,
    gaps: AtomicU64,
}

fn key(rng: &mut Rng) -> Bytes {
    format!("k:{}", rng.below(KEYS)).into()
}

/// A random store request, with the answers it may get.
fn request(rng: &mut Rng, tag: u64) -> Request {
    match rng.below(100) {
        0..=39 => {
            let len = rng.below(MAX_VALUE + 1) as usize;
            Request::Put {
                key: key(rng),
                value: vec![b'a' + (tag % 26) as u8; len].into(),
                ttl_ms: 0,
            }
        }
        40..=74 => Request::Get { key: key(rng) },
        75..=89 => Request::Delete {
            key: key(rng),
            expected: 0,
        },
        90..=96 => Request::Scan {
            // One to three digits of key: pages from a handful of records to all.
            prefix: format!("k:{}", rng.below(100)).into(),
            cursor: Bytes::new(),
            limit: 1 + rng.below(200) as u16,
        },
        _ => Request::Publish {
            subject: format!("k:chat.{}", rng.below(10)).into(),
            payload: vec![b'p'; rng.below(512) as usize].into(),
        },
    }
}

/// Fails the test unless `body` is a possible answer to `request` on a healthy server.
fn check_answer(request: &Request, body: &ResponseBody) {
    let fits = matches!(
        (request, body),
        (Request::Put { .. }, ResponseBody::Written { .. })
            | (
                Request::Get { .. },
                ResponseBody::Value { .. } | ResponseBody::NotFound
            )
            | (
                Request::Delete { .. },
                ResponseBody::Written { .. } | ResponseBody::NotFound
            )
            | (Request::Scan { .. }, ResponseBody::Scan(_))
            | (Request::Publish { .. }, ResponseBody::Published { .. })
    );
    assert!(fits, "{request:?} was answered {body:?}");
}

/// One connection that sends pipelines and checks every answer.
fn orderly_session(addr: SocketAddr, rng: &mut Rng, end: Instant, totals: &Totals) {
    let mut client = Client::connect(addr).expect("connect");
    client.set_timeout(Some(WAIT)).unwrap();
    totals.connections.fetch_add(1, Relaxed);
    for _ in 0..1 + rng.below(100) {
        if Instant::now() >= end {
            return;
        }
        let requests: Vec<Request> = (0..1 + rng.below(32))
            .map(|_| request(rng, totals.requests.load(Relaxed)))
            .collect();
        let mut pipeline = client.pipeline();
        for r in &requests {
            pipeline = pipeline.request(r);
        }
        let answers = pipeline.send().expect("a pipeline's answers");
        assert_eq!(answers.len(), requests.len());
        for (r, a) in requests.iter().zip(&answers) {
            check_answer(r, a);
        }
        totals.requests.fetch_add(requests.len() as u64, Relaxed);
    }
}

/// One connection that sends a pipeline and leaves before its answers are all read:
/// closing after reading none or some, resetting, or cutting the last frame short.
fn abandoned_session(addr: SocketAddr, rng: &mut Rng, totals: &Totals) {
    let mut conn = RawConn::connect(addr);
    totals.connections.fetch_add(1, Relaxed);
    totals.abandoned.fetch_add(1, Relaxed);
    let count = 1 + rng.below(64) as u32;
    let mut wire = Vec::new();
    for id in 0..count {
        wire.extend_from_slice(&frame(&request(rng, u64::from(id)), id));
    }
    match rng.below(4) {
        // Cut inside the pipeline, possibly inside a frame.
        0 => {
            let cut = 1 + rng.below(wire.len() as u64 - 1) as usize;
            conn.send(&wire[..cut]);
        }
        // Read some of the answers (not all), then close.
        1 => {
            conn.send(&wire);
            for _ in 0..rng.below(u64::from(count)) {
                conn.recv();
            }
        }
        // Reset rather than close.
        2 => {
            conn.send(&wire);
            socket2::SockRef::from(&conn.stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        // Close at once, answers unread.
        _ => conn.send(&wire),
    }
}

/// A store client: orderly sessions with some abandoned ones between, until `end`.
fn store_client(addr: SocketAddr, seed: u64, end: Instant, totals: &Totals) {
    let mut rng = Rng::new(seed);
    while Instant::now() < end {
        if rng.chance(15) {
            abandoned_session(addr, &mut rng, totals);
        } else {
            orderly_session(addr, &mut rng, end, totals);
        }
    }
}

/// A subscriber: subscribes to a slice of the keys (and the chat subjects under it),
/// half the time resuming after the last change its previous connection saw (a
/// replay from the change log, or a GAP where the log rolled past it); reads a random
/// number of pushes, checking their order, now and then pausing so that its output
/// fills and the subscription falls behind; then leaves, unsubscribing first or not.
/// Returns where it got to, for the next connection to resume from.
fn orderly_subscriber(
    addr: SocketAddr,
    rng: &mut Rng,
    end: Instant,
    totals: &Totals,
    resume: Option<Resume>,
) -> Option<Resume> {
    let mut c = Client::connect(addr).expect("connect");
    c.set_timeout(Some(WAIT)).unwrap();
    totals.connections.fetch_add(1, Relaxed);
    c.hello(features::PUSH).expect("HELLO");
    let resume = resume.filter(|_| rng.chance(50));
    let subscribed = c
        .subscribe(subscription_prefix(rng), resume, 0)
        .expect("SUBSCRIBE");
    let sub = subscribed.sub_id;
    let mut last_seq = resume.map_or(subscribed.seq, |r| r.from);
    for _ in 0..1 + rng.below(20_000) {
        if Instant::now() >= end {
            break;
        }
        if rng.below(500) == 0 {
            // A subscriber that falls behind for a moment.
            std::thread::sleep(Duration::from_millis(20));
        }
        let Some(push) = c
            .next_push(Some(Duration::from_millis(50)))
            .expect("a subscriber's connection stays healthy")
        else {
            continue;
        };
        totals.pushes.fetch_add(1, Relaxed);
        match push {
            Push::Event { sub_id, seq, .. } => {
                assert_eq!(sub_id, sub);
                assert!(seq > last_seq, "event {seq} after {last_seq}");
                last_seq = seq;
            }
            Push::Gap { sub_id, oldest, .. } => {
                assert_eq!(sub_id, sub);
                totals.gaps.fetch_add(1, Relaxed);
                last_seq = last_seq.max(oldest.saturating_sub(1));
            }
            Push::Message { sub_id, .. }
            | Push::Lost { sub_id, .. }
            | Push::Progress { sub_id, .. } => assert_eq!(sub_id, sub),
            Push::Ping => {}
            Push::GoAway { .. } => panic!("the client keeps GOAWAY to itself"),
        }
    }
    if rng.chance(50) {
        assert!(c.unsubscribe(sub).expect("UNSUBSCRIBE"));
    } else {
        // Closed with pushes unread.
        totals.abandoned.fetch_add(1, Relaxed);
    }
    Some(Resume {
        from: last_seq,
        history: subscribed.history,
    })
}

/// A subscriber that asks for pushes, takes a few reads' worth without looking at
/// them, and resets its connection with the rest unread.
fn abandoned_subscriber(addr: SocketAddr, rng: &mut Rng, totals: &Totals) {
    let mut conn = RawConn::connect(addr);
    totals.connections.fetch_add(1, Relaxed);
    totals.abandoned.fetch_add(1, Relaxed);
    let mut wire = frame(
        &Request::Hello {
            max_version: MAX_VERSION,
            features: features::PUSH,
            token: Bytes::new(),
        },
        1,
    );
    wire.extend_from_slice(&frame(
        &Request::Subscribe {
            prefix: subscription_prefix(rng).into(),
            resume: None,
            progress_ms: 0,
        },
        2,
    ));
    conn.send(&wire);
    conn.stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut chunk = [0u8; 4096];
    for _ in 0..rng.below(20) {
        if matches!(conn.stream.read(&mut chunk), Ok(0) | Err(_)) {
            break;
        }
    }
    socket2::SockRef::from(&conn.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// All the keys, or a tenth of them and the chat subjects among them.
fn subscription_prefix(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => "k:".to_string(),
        _ => format!("k:{}", rng.below(10)),
    }
}

/// A subscriber thread: orderly subscribers and some abandoned ones, until `end`.
fn subscriber(addr: SocketAddr, seed: u64, end: Instant, totals: &Totals) {
    let mut rng = Rng::new(seed);
    let mut resume = None;
    while Instant::now() < end {
        if rng.chance(30) {
            abandoned_subscriber(addr, &mut rng, totals);
        } else {
            resume = orderly_subscriber(addr, &mut rng, end, totals, resume);
        }
    }
}

/// Runs the clients until `span` has passed, and waits for them.
fn load(addr: SocketAddr, seed: u64, span: Duration, totals: &Totals) {
    let end = Instant::now() + span;
    std::thread::scope(|s| {
        for i in 0..STORE_CLIENTS {
            s.spawn(move || store_client(addr, seed.wrapping_add(i), end, totals));
        }
        for i in 0..SUBSCRIBERS {
            s.spawn(move || subscriber(addr, seed.wrapping_add(100 + i), end, totals));
        }
    });
}

#[test]
#[ignore = "minutes long; run by hand (see the module documentation)"]
fn the_server_returns_to_its_baseline_after_a_soak() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("SOAK_SECS: whole seconds"))
        .unwrap_or(120);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("SOAK_SEED: a number"))
        .unwrap_or(0x50A4);
    eprintln!("soak: {secs} s after a warm-up of {WARMUP:?}, seed {seed}");

    // A change log small enough to fill during the warm-up, so that it holds as much
    // at the baseline as at the end.
    let server =
        ServerProcess::start(&["--change-log-events", "20000", "--change-log-bytes", "4m"]);
    let pid = server.pid();
    let mut monitor = server.client();
    let connections = |monitor: &mut Client| {
        stat(&monitor.stats().expect("STATS"), "connections_current").unwrap()
    };

    let warmup = Totals::default();
    load(server.addr, seed, WARMUP, &warmup);
    // Only the monitor left.
    common::wait_until("the warm-up's connections are closed", || {
        connections(&mut monitor) == 1
    });
    let base_fds = open_descriptors(pid);
    let base_rss = rss(pid);
    eprintln!(
        "baseline after the warm-up: RSS {} KiB, {base_fds} descriptors",
        base_rss >> 10
    );

    let totals = Totals::default();
    let started = Instant::now();
    let mut peak_rss = base_rss;
    let mut worst_ping = Duration::ZERO;
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            load(
                server.addr,
                seed ^ 0xFFFF,
                Duration::from_secs(secs),
                &totals,
            )
        });
        // While the load runs: the server keeps answering a bystander, and its memory
        // is sampled. Bounded by the load's own end (plus the wait for its threads).
        let bound = Instant::now() + Duration::from_secs(secs) + WAIT;
        while !loader.is_finished() {
            assert!(Instant::now() < bound, "the load did not stop");
            let t = Instant::now();
            monitor.ping().expect("the server answers during the soak");
            worst_ping = worst_ping.max(t.elapsed());
            peak_rss = peak_rss.max(rss(pid));
            std::thread::sleep(Duration::from_millis(200));
        }
        loader.join().expect("the clients");
    });
    let loaded = started.elapsed();

    common::wait_until("the soak's connections are closed", || {
        connections(&mut monitor) == 1
    });
    let mut fds = open_descriptors(pid);
    common::wait_until("the server's descriptors return to the baseline", || {
        fds = open_descriptors(pid);
        fds == base_fds
    });
    let mut after = rss(pid);
    let deadline = Instant::now() + WAIT;
    while after > base_rss + RSS_TOLERANCE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss(pid);
    }
    let stats = monitor.stats().expect("STATS");
    eprintln!(
        "soak: {loaded:.1?} loaded; {} requests answered, {} connections ({} abandoned), \
         {} pushes ({} GAPs); server: {} connections in all, {} requests, {} keys, worst \
         bystander PING {worst_ping:?}",
        totals.requests.load(Relaxed),
        totals.connections.load(Relaxed),
        totals.abandoned.load(Relaxed),
        totals.pushes.load(Relaxed),
        totals.gaps.load(Relaxed),
        stat(&stats, "connections_total").unwrap(),
        stat(&stats, "requests_total").unwrap(),
        stat(&stats, "keys").unwrap(),
    );
    eprintln!(
        "RSS: baseline {} KiB, peak {} KiB, after {} KiB ({:+} KiB); descriptors: \
         baseline {base_fds}, after {fds}",
        base_rss >> 10,
        peak_rss >> 10,
        after >> 10,
        (after as i64 - base_rss as i64) >> 10,
    );
    assert!(
        after <= base_rss + RSS_TOLERANCE,
        "RSS {} KiB after the soak, {} KiB at the baseline (tolerance {} KiB)",
        after >> 10,
        base_rss >> 10,
        RSS_TOLERANCE >> 10
    );
    for counter in ["internal_errors", "protocol_errors", "accept_errors"] {
        // Cut frames close connections mid-frame, which is no protocol error.
        assert_eq!(stat(&stats, counter), Some(0), "{counter}");
    }
}
