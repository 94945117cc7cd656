//! Store operations: GET hits and misses, PUT over existing keys, CAS, and SCAN pages,
//! over 100k records with 64-byte values (the shapes the load comparisons use), and
//! reads spread over all 100k or a million records, where cache misses dominate (and
//! where prefetching a batch's records pays).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
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

    // Every key once, in an order no cache or prefetcher follows: what a pipelined GET
    // load over the whole key space asks of memory. Groups of 32 as the server runs
    // them, with and without warming each group first.
    let all: Vec<Vec<u8>> = (0..KEYS).map(|i| key(i * 7_919 % KEYS)).collect();
    let mut g = c.benchmark_group("store_cold");
    g.throughput(Throughput::Elements(all.len() as u64));
    let read = |group: &[Vec<u8>]| {
        for k in group {
            black_box(store.read(k, |v, value| v + value.len() as u64));
        }
    };
    g.bench_function("read_hit", |b| b.iter(|| all.chunks(32).for_each(read)));
    g.bench_function("read_hit_prefetched", |b| {
        b.iter(|| {
            for group in all.chunks(32) {
                store.prefetch(group.iter().map(|k| &k[..]));
                read(group);
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

criterion_group!(benches, bench);
criterion_main!(benches);
