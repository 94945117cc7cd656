//! The store's behaviour: versions, CAS, DELETE, limits, SCAN, holes and replay.
//! Also run under Miri (README, "Checking the unsafe code"), with less work each.

use super::*;

/// `n` natively; under Miri, which interprets every instruction some thousand times
/// slower, a fiftieth of it (at least one): still enough to grow, wrap and collide
/// the table's index.
pub(crate) fn scaled(n: usize) -> usize {
    if cfg!(miri) {
        (n / 50).max(1)
    } else {
        n
    }
}

/// A new key whose write panics after taking its number, standing in for a bug.
pub(crate) const FAIL_AFTER_NUMBERING: &[u8] = b"\xfffail-after-numbering";

pub(super) fn maybe_fail_after_numbering(key: &[u8]) {
    if key == FAIL_AFTER_NUMBERING {
        panic!("injected failure after numbering");
    }
}

#[test]
fn a_write_that_fails_after_numbering_leaves_a_known_hole() {
    let s = Store::new(0);
    s.put(b"a", b"1").unwrap();
    let failed = std::panic::catch_unwind(|| s.put(FAIL_AFTER_NUMBERING, b"x"));
    assert!(failed.is_err());
    assert_eq!(change::take_uncommitted(), Some(2));
    assert_eq!(change::take_uncommitted(), None, "taken once");
    assert_eq!(s.put(b"b", b"2").unwrap().seq, 3);
    assert_eq!(
        change::take_uncommitted(),
        None,
        "a committed write leaves nothing"
    );
}

#[test]
fn restoring_changes_rebuilds_the_store() {
    let s = Store::new(0);
    let mut changes = vec![
        s.put(b"a", b"1").unwrap(),
        s.put(b"b", &[7; 500]).unwrap(),
        s.put(b"a", b"2").unwrap(),
        s.delete(b"b", 0).unwrap(),
        s.put(b"c", b"3").unwrap(),
    ];
    changes.push(Change::hole(s.seq() + 1));
    let rebuilt = Store::new(0);
    for c in &changes {
        rebuilt.apply_change(c);
    }
    assert_eq!(rebuilt.seq(), 6);
    assert_eq!(
        rebuilt.scan(b"", b"", 10),
        Page {
            seq: 6,
            ..s.scan(b"", b"", 10)
        }
    );
    assert_eq!(rebuilt.memory_used(), s.memory_used());
    // Restoring at a version sets exactly that version.
    rebuilt.restore(b"z", 40, Some(b"zz"));
    assert_eq!(rebuilt.get(b"z").unwrap().version, 40);
    assert_eq!(rebuilt.seq(), 40);
    rebuilt.restore(b"z", 41, None);
    assert_eq!(rebuilt.get(b"z"), None);
}

#[test]
fn versions_rise_and_never_repeat_across_delete() {
    let s = Store::new(0);
    let v1 = s.put(b"k", b"a").unwrap().seq;
    let v2 = s.put(b"k", b"b").unwrap().seq;
    assert!(v2 > v1);
    let d = s.delete(b"k", 0).unwrap().seq;
    assert!(d > v2);
    assert_eq!(s.get(b"k"), None);
    let v3 = s.put(b"k", b"c").unwrap().seq;
    assert!(v3 > d);
    // A CAS holding the pre-delete version cannot match the re-created record.
    assert_eq!(
        s.cas(b"k", v2, b"x"),
        Err(WriteError::VersionConflict { current: v3 })
    );
    assert_eq!(s.seq(), v3);
}

#[test]
fn cas_semantics() {
    let s = Store::new(0);
    assert_eq!(
        s.cas(b"k", 5, b"x"),
        Err(WriteError::VersionConflict { current: 0 })
    );
    let v = s.cas(b"k", 0, b"x").unwrap().seq;
    assert_eq!(
        s.cas(b"k", 0, b"y"),
        Err(WriteError::VersionConflict { current: v })
    );
    let v2 = s.cas(b"k", v, b"y").unwrap().seq;
    assert_eq!(s.get(b"k").unwrap().value, Bytes::from_static(b"y"));
    assert_eq!(s.get(b"k").unwrap().version, v2);
}

#[test]
fn delete_semantics() {
    let s = Store::new(0);
    assert_eq!(s.delete(b"k", 0), Err(WriteError::NotFound));
    assert_eq!(s.delete(b"k", 3), Err(WriteError::NotFound));
    let v = s.put(b"k", b"x").unwrap().seq;
    assert_eq!(
        s.delete(b"k", v + 7),
        Err(WriteError::VersionConflict { current: v })
    );
    assert!(s.delete(b"k", v).is_ok());
    assert!(s.is_empty());
}

#[test]
fn memory_limit_refuses_writes_but_not_deletes() {
    let cost = record_cost(b"k1", &[0; 100]);
    let s = Store::new(2 * cost);
    s.put(b"k1", &[0; 100]).unwrap();
    s.put(b"k2", &[0; 100]).unwrap();
    assert_eq!(s.memory_used(), 2 * cost);
    assert_eq!(s.put(b"k3", &[0; 100]), Err(WriteError::MemoryLimit));
    // Replacing with something no larger still works at the limit.
    s.put(b"k1", &[1; 50]).unwrap();
    assert_eq!(s.get(b"k3"), None);
    s.delete(b"k2", 0).unwrap();
    s.put(b"k3", &[0; 100]).unwrap();
    assert!(s.memory_used() <= 2 * cost);
}

#[test]
fn scan_pages_in_key_order_across_shards() {
    let s = Store::new(0);
    for i in 0..250u32 {
        s.put(format!("user:{i:04}").as_bytes(), b"v").unwrap();
        s.put(format!("other:{i}").as_bytes(), b"v").unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = Bytes::new();
    for _ in 0..10 {
        let page = s.scan(b"user:", &cursor, 100);
        seen.extend(page.records.iter().map(|e| Bytes::copy_from_slice(e.key())));
        if !page.more {
            break;
        }
        cursor = Bytes::copy_from_slice(page.records.last().unwrap().key());
    }
    let expected: Vec<Bytes> = (0..250u32)
        .map(|i| Bytes::from(format!("user:{i:04}")))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(s.scan(b"user:", b"user:0249", 10).records.len(), 0);
    assert!(!s.scan(b"nobody", b"", 10).more);
}

#[test]
fn scan_reports_seq_read_before_the_page() {
    let s = Store::new(0);
    s.put(b"a", b"1").unwrap();
    let v = s.put(b"b", b"2").unwrap().seq;
    let page = s.scan(b"", b"", 10);
    assert_eq!(page.seq, v);
    assert!(page.records.iter().all(|e| e.version() <= page.seq));
}

#[test]
fn concurrent_cas_increments_end_exact() {
    let s = std::sync::Arc::new(Store::new(0));
    let per_thread = scaled(500);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                while done < per_thread {
                    let (v, n) = match s.get(b"counter") {
                        Some(r) => (
                            r.version,
                            std::str::from_utf8(&r.value)
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                        ),
                        None => (0, 0),
                    };
                    if s.cas(b"counter", v, (n + 1).to_string().as_bytes()).is_ok() {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = (8 * per_thread).to_string();
    assert_eq!(&s.get(b"counter").unwrap().value[..], total.as_bytes());
}

/// SCAN against a plain ordered map, over many shapes: skewed and uniform key sets,
/// prefixes that match few or many keys, cursors anywhere, pages small and large.
#[test]
fn scan_pages_match_an_ordered_map() {
    use std::collections::BTreeMap;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..scaled(40) {
        let s = Store::new(0);
        let mut model = BTreeMap::new();
        let keys = 1 + next() % scaled(3000) as u64;
        for _ in 0..keys {
            // Some rounds crowd the keys under one prefix, which then fills a page from
            // few shards' shares.
            let p = if round % 3 == 0 {
                next() % 2
            } else {
                next() % 16
            };
            let key = format!("{p:x}/{:06}", next() % 100_000);
            let version = s.put(key.as_bytes(), b"v").unwrap().seq;
            model.insert(key, version);
        }
        for _ in 0..20 {
            let prefix = match next() % 3 {
                0 => String::new(),
                1 => format!("{:x}", next() % 16),
                _ => format!("{:x}/0", next() % 2),
            };
            let cursor = if next() % 2 == 0 {
                String::new()
            } else {
                format!("{prefix}{:06}", next() % 100_000)
            };
            let limit = [1, 2, 7, 100, 1000][(next() % 5) as usize];
            let page = s.scan(prefix.as_bytes(), cursor.as_bytes(), limit);
            let expected: Vec<(&String, &u64)> = model
                .range::<String, _>((
                    if cursor.is_empty() || cursor < prefix {
                        std::ops::Bound::Included(&prefix)
                    } else {
                        std::ops::Bound::Excluded(&cursor)
                    },
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(&prefix))
                .take(limit + 1)
                .collect();
            let got: Vec<(String, u64)> = page
                .records
                .iter()
                .map(|e| (String::from_utf8(e.key().to_vec()).unwrap(), e.version()))
                .collect();
            let want: Vec<(String, u64)> = expected
                .iter()
                .take(limit)
                .map(|(k, v)| ((*k).clone(), **v))
                .collect();
            assert_eq!(
                got, want,
                "prefix {prefix:?} cursor {cursor:?} limit {limit}"
            );
            assert_eq!(page.more, expected.len() > limit);
        }
    }
    assert!(Store::new(0).scan(b"", b"", 0).records.is_empty());
}

/// Every record as listed (key, version, value), the memory charged and the counter.
type Contents = (Vec<(Vec<u8>, u64, Vec<u8>)>, u64, u64);

/// Every record and the listing of `s`, to compare two stores.
fn contents(s: &Store) -> Contents {
    let mut all = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let page = s.scan(b"", &cursor, 100);
        for r in &page.records {
            let got = s.get(r.key()).expect("a listed key reads");
            assert_eq!(got.version, r.version());
            all.push((r.key().to_vec(), r.version(), got.value.to_vec()));
        }
        match page.records.last() {
            Some(r) if page.more => cursor = r.key().to_vec(),
            _ => break,
        }
    }
    (all, s.memory_used(), s.seq())
}

#[test]
fn a_bulk_load_gives_the_store_that_restoring_each_record_gives() {
    let n = scaled(3000);
    let key = |i: usize| format!("key:{i:08}").into_bytes();
    // Values past the inline size too, so their heap copies are charged.
    let value = |i: usize| vec![b'a' + (i % 26) as u8; i % 300];
    let one_by_one = Store::new(0);
    for i in 0..n {
        one_by_one.restore(&key(i), i as u64 + 1, Some(&value(i)));
    }
    let expected = contents(&one_by_one);
    assert_eq!(expected.0.len(), n);

    // In order into an empty store: the fast path.
    let bulk = Store::new(0);
    let mut load = bulk.bulk_load();
    for i in 0..n {
        load.add(&key(i), i as u64 + 1, &value(i));
    }
    load.finish();
    assert_eq!(contents(&bulk), expected);
    // Written to afterwards like any store: a new key lands in the listing.
    bulk.put(b"key:", b"first").unwrap();
    assert_eq!(bulk.scan(b"", b"", 1).records[0].key(), b"key:");

    // Out of order part way (and a key twice): restored one by one from there.
    let shuffled = Store::new(0);
    let mut load = shuffled.bulk_load();
    for i in (0..n / 2).chain([0]).chain(n / 2..n) {
        load.add(&key(i), i as u64 + 1, &value(i));
    }
    load.finish();
    assert_eq!(contents(&shuffled), expected);

    // Into a store that already holds records: never the fast path.
    let held = Store::new(0);
    held.restore(&key(n - 1), 1, Some(b"old"));
    let mut load = held.bulk_load();
    for i in 0..n {
        load.add(&key(i), i as u64 + 1, &value(i));
    }
    load.finish();
    assert_eq!(contents(&held), expected);
}
