//! Store operations: GET hits and misses, PUT over existing keys, CAS, and SCAN pages,
//! over 100k records with 64-byte values (the shapes the load comparisons use), and
//! reads spread over all 100k or a million records, where cache misses dominate (and
//! where prefetching a batch's records pays).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use switchboard::exec::{self, Context};
use switchboard::job::{ConnId, Job, JobOp};
use switchboard::protocol::{Limits, Request, RequestId};
use switchboard::store::Store;

const KEYS: usize = 100_000;

fn key(i: usize) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

fn filled() -> Store {
    let store = Store::new(0);
    for i in 0..KEYS {
        store.put(&key(i), &[b'v'; 64]).unwrap();
    }
    store
}

fn bench(c: &mut Criterion) {
    let store = filled();
    let keys: Vec<Vec<u8>> = (0..1024).map(|i| key(i * 97 % KEYS)).collect();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(keys.len() as u64));
    // `read` is what a GET executes: the value is lent under the lock, not cloned.
    g.bench_function("read_hit", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(store.read(k, |v, value| v + value.len() as u64));
            }
        })
    });
    g.bench_function("read_miss", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(store.read(&k[1..], |v, _| v));
            }
        })
    });
    g.bench_function("put_replace", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(store.put(k, &[b'w'; 64]).unwrap());
            }
        })
    });
    g.bench_function("cas_success", |b| {
        b.iter(|| {
            for k in &keys {
                let v = store.get(k).unwrap().version;
                black_box(store.cas(k, v, &[b'c'; 64]).unwrap());
            }
        })
    });
    g.finish();

    drop(store);
    let big = Store::new(0);
    let n = 1_000_000;
    for i in 0..n {
        big.put(&key(i), &[b'v'; 64]).unwrap();
    }
    // A multiplicative stride visits the keys in an order no cache or prefetcher follows.
    let spread: Vec<Vec<u8>> = (0..4096).map(|i| key(i * 7_919 % n)).collect();
    let mut g = c.benchmark_group("store_1m");
    g.throughput(Throughput::Elements(spread.len() as u64));
    g.bench_function("read_hit", |b| {
        b.iter(|| {
            for k in &spread {
                black_box(big.read(k, |v, value| v + value.len() as u64));
            }
        })
    });
    g.finish();
    let store = big;

    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(100));
    g.bench_function("page_of_100", |b| {
        b.iter_batched(
            || key(4242),
            |cursor| black_box(store.scan(b"key:", &cursor, 100)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Every key once, in an order no cache or prefetcher follows: what a pipelined GET
/// load over the whole key space asks of memory. Run as the server runs a batch, with
/// and without `exec::prefetch_ahead` before each job.
fn cold(c: &mut Criterion) {
    let ctx = Context::new(Limits::default(), 0, 0);
    for i in 0..KEYS {
        ctx.store.put(&key(i), &[b'v'; 64]).unwrap();
    }
    let jobs: Vec<Job> = (0..KEYS)
        .map(|i| Job {
            conn: ConnId {
                index: 0,
                generation: 0,
            },
            id: RequestId(i as u32),
            version: switchboard::protocol::BASE_VERSION,
            op: JobOp::Request(Request::Get {
                key: key(i * 7_919 % KEYS).into(),
            }),
        })
        .collect();
    let read = |job: &Job| {
        if let JobOp::Request(Request::Get { key }) = &job.op {
            black_box(ctx.store.read(key, |v, value| v + value.len() as u64));
        }
    };
    let mut g = c.benchmark_group("store_cold");
    g.throughput(Throughput::Elements(jobs.len() as u64));
    g.bench_function("read_hit", |b| b.iter(|| jobs.iter().for_each(read)));
    g.bench_function("read_hit_prefetched", |b| {
        b.iter(|| {
            for (i, job) in jobs.iter().enumerate() {
                exec::prefetch_ahead(&ctx, &jobs, i);
                read(job);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, cold);
criterion_main!(benches);
