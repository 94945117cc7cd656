//! Record semantics over a real socket: CRUD, versions, CAS, SCAN and the memory limit.

mod common;

use common::ServerProcess;
use switchboard::client::{stat, ClientError};
use switchboard::protocol::Status;

#[test]
fn create_read_update_delete() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client();
    assert_eq!(c.get("k").unwrap(), None);
    let v1 = c.put("k", "one").unwrap();
    let r = c.get("k").unwrap().unwrap();
    assert_eq!((r.version, &r.value[..]), (v1, &b"one"[..]));
    let v2 = c.put("k", "two").unwrap();
    assert!(v2 > v1);
    assert_eq!(&c.get("k").unwrap().unwrap().value[..], b"two");
    let d = c.delete("k", 0).unwrap().expect("deleted");
    assert!(d > v2);
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.delete("k", 0).unwrap(), None);
}

#[test]
fn versions_never_repeat_across_delete_and_recreate() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client();
    let v1 = c.put("k", "a").unwrap();
    c.delete("k", 0).unwrap();
    let v2 = c.put("k", "a").unwrap();
    assert!(v2 > v1);
    // A CAS holding the old version cannot match the re-created record.
    match c.cas("k", v1, "b") {
        Err(ClientError::VersionConflict { current }) => assert_eq!(current, v2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(&c.get("k").unwrap().unwrap().value[..], b"a");
}

#[test]
fn cas_create_only_and_conflicts() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client();
    assert!(matches!(
        c.cas("k", 7, "x"),
        Err(ClientError::VersionConflict { current: 0 })
    ));
    let v = c.cas("k", 0, "x").unwrap();
    assert!(matches!(
        c.cas("k", 0, "y"),
        Err(ClientError::VersionConflict { current }) if current == v
    ));
    let v2 = c.cas("k", v, "y").unwrap();
    assert!(v2 > v);
    // Conditional delete.
    assert!(matches!(
        c.delete("k", v),
        Err(ClientError::VersionConflict { current }) if current == v2
    ));
    assert!(c.delete("k", v2).unwrap().is_some());
}

#[test]
fn scan_pages_by_prefix_in_key_order() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client();
    for i in (0..250).rev() {
        c.put(format!("user:{i:03}"), format!("v{i}")).unwrap();
    }
    c.put("users", "not under the prefix").unwrap();
    c.put("admin:1", "x").unwrap();
    let first = c.scan("user:", "", 100).unwrap();
    assert_eq!(first.entries.len(), 100);
    assert_eq!(&first.entries[0].key[..], b"user:000");
    assert_eq!(&first.next_cursor[..], b"user:099");
    assert_eq!(first.seq, 252);
    let (all, seq) = c.scan_all("user:").unwrap();
    assert!(seq >= 252);
    let keys: Vec<String> = all
        .iter()
        .map(|e| String::from_utf8(e.key.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..250).map(|i| format!("user:{i:03}")).collect();
    assert_eq!(keys, expected);
    for e in &all {
        let index: u32 = std::str::from_utf8(&e.key[5..]).unwrap().parse().unwrap();
        assert_eq!(e.value, format!("v{index}"));
    }
    let last = c.scan("user:", "user:249", 10).unwrap();
    assert!(last.entries.is_empty() && last.next_cursor.is_empty());
    // The default page is 100; a huge limit is capped at 1000.
    assert_eq!(c.scan("", "", 0).unwrap().entries.len(), 100);
    assert_eq!(c.scan("", "", u16::MAX).unwrap().entries.len(), 252);
}

#[test]
fn scan_pages_stop_at_the_frame_limit() {
    // 64 KiB frames hold fewer than ten 10 KiB values.
    let server = ServerProcess::start(&["--max-frame", "64k"]);
    let mut c = server.client();
    for i in 0..20 {
        c.put(format!("big:{i:02}"), vec![b'x'; 10_000]).unwrap();
    }
    let page = c.scan("big:", "", 1000).unwrap();
    assert!(page.entries.len() < 10 && !page.entries.is_empty());
    assert!(!page.next_cursor.is_empty());
    let (all, _) = c.scan_all("big:").unwrap();
    assert_eq!(all.len(), 20);
}

#[test]
fn memory_limit_refuses_writes_and_keeps_reads_and_deletes() {
    let server = ServerProcess::start(&["--max-memory", "64k"]);
    let mut c = server.client();
    let mut written = 0;
    let refused = loop {
        match c.put(format!("k{written}"), vec![b'v'; 1000]) {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1000, "the limit never applied");
    };
    match refused {
        ClientError::Server { status, message } => {
            assert_eq!(status, Status::MEMORY_LIMIT);
            assert!(message.contains("memory limit"), "{message}");
        }
        other => panic!("expected MEMORY_LIMIT, got {other:?}"),
    }
    assert!(written > 40, "only {written} records fit in 64 KiB");
    // Reads still work, and so do deletes, which make room again.
    assert_eq!(c.get("k0").unwrap().unwrap().value.len(), 1000);
    c.delete("k0", 0).unwrap().unwrap();
    c.put("k-after-delete", vec![b'v'; 1000]).unwrap();
    let stats = c.stats().unwrap();
    assert_eq!(stat(&stats, "writes_refused_memory"), Some(1));
    assert!(stat(&stats, "memory_used_bytes").unwrap() <= 64 * 1024);
}

#[test]
fn concurrent_cas_increments_end_with_the_exact_count() {
    let server = ServerProcess::start(&["--workers", "2"]);
    let clients = 16;
    let per_client = 50;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let mut c = server.client();
            std::thread::spawn(move || {
                let mut done = 0;
                let mut attempts = 0;
                while done < per_client {
                    attempts += 1;
                    assert!(attempts < 100_000, "CAS never made progress");
                    let (version, n) = match c.get("counter").unwrap() {
                        Some(r) => (
                            r.version,
                            std::str::from_utf8(&r.value)
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                        ),
                        None => (0, 0),
                    };
                    match c.cas("counter", version, (n + 1).to_string()) {
                        Ok(_) => done += 1,
                        Err(ClientError::VersionConflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let value = server.client().get("counter").unwrap().unwrap().value;
    assert_eq!(&value[..], (clients * per_client).to_string().as_bytes());
}
