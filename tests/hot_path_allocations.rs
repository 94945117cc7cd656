//! The hot path allocates nothing per request: a connection decoding pipelined GETs,
//! PUTs of small values and PINGs, executing them through the batch executor and
//! encoding the answers, measured with a counting global allocator once buffers have
//! warmed up.
//!
//! This binary holds a single test so no other thread allocates while it counts.

use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard::conn::{ConnLimits, Connection};
use switchboard::exec::Context;
use switchboard::exec::{run_on, Batch, Budget, REACTOR_BUDGET_UNITS};
use switchboard::job::ConnId;
use switchboard::protocol::{Limits, Request, RequestId};
use switchboard::stats::Tally;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn pipelined_gets_and_small_puts_allocate_nothing_per_request() {
    let limits = ConnLimits {
        protocol: Limits::default(),
        max_output: 4 << 20,
        max_in_flight: 1024,
        idle_timeout: None,
        linger: Duration::from_secs(1),
        closing_timeout: Duration::from_secs(1),
        frame_timeout: None,
        write_timeout: None,
        auth: None,
        auth_timeout: Duration::from_secs(5),
    };
    let ctx = Context::new(limits.protocol, 0, 0);
    for i in 0..100 {
        ctx.store
            .put(format!("key:{i:012}").as_bytes(), &[b'v'; 64])
            .unwrap();
    }
    let now = Instant::now();
    let mut conn = Connection::new(
        ConnId {
            index: 0,
            generation: 0,
        },
        limits,
        now,
    );
    // One pipeline of 16 requests, as a client would send it in one write.
    let mut wire = BytesMut::new();
    for i in 0..16u32 {
        let request = if i % 8 == 7 {
            Request::Ping {
                payload: "p".into(),
            }
        } else if i % 4 == 1 {
            // A small PUT: its value is stored inline, and its change shares it.
            Request::Put {
                key: format!("key:{:012}", i * 5).into(),
                value: vec![b'w'; 64].into(),
                ttl_ms: 0,
            }
        } else {
            Request::Get {
                key: format!("key:{:012}", i * 5).into(),
            }
        };
        request.encode(RequestId(i), &mut wire);
    }
    let mut batch = Batch::default();
    batch.jobs.reserve(64);
    batch.runs.reserve(1);
    let mut tally = Tally::default();
    let mut changes = Vec::with_capacity(64);
    let mut round = |conn: &mut Connection, batch: &mut Batch| {
        conn.handle_input(now, &wire);
        conn.poll_jobs(&mut batch.jobs);
        let mut budget = Budget::new(REACTOR_BUDGET_UNITS);
        let ran = run_on(
            &ctx,
            conn,
            batch,
            now,
            &mut budget,
            &mut tally,
            &mut changes,
        );
        changes.clear();
        assert_eq!(ran, 16, "every job ran");
        let n = conn.poll_transmit().len();
        conn.advance_transmit(now, n);
    };
    for _ in 0..100 {
        round(&mut conn, &mut batch);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let rounds = 1000;
    for _ in 0..rounds {
        round(&mut conn, &mut batch);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {} requests",
        rounds * 16
    );
}
