//! The hot path allocates nothing per request: a connection decoding pipelined GETs,
//! PUTs of small values and PINGs, executing them and encoding the answers, measured
//! with a counting global allocator once buffers have warmed up.
//!
//! This binary holds a single test so no other thread allocates while it counts.

use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchboard::command::{apply, Context};
use switchboard::conn::{ConnLimits, Connection};
use switchboard::job::ConnId;
use switchboard::protocol::{Limits, Request, RequestId};

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
        } else {
            Request::Get {
                key: format!("key:{:012}", i * 5).into(),
            }
        };
        request.encode(RequestId(i), &mut wire);
    }
    let mut jobs = Vec::with_capacity(64);
    let round = |conn: &mut Connection, jobs: &mut Vec<_>| {
        conn.handle_input(now, &wire);
        conn.poll_jobs(jobs);
        for job in jobs.drain(..) {
            conn.complete(1, |out| apply(&ctx, &job, out));
        }
        let n = conn.poll_transmit().len();
        conn.advance_transmit(n);
    };
    for _ in 0..100 {
        round(&mut conn, &mut jobs);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let rounds = 1000;
    for _ in 0..rounds {
        round(&mut conn, &mut jobs);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {} requests",
        rounds * 16
    );
}
