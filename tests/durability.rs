//! `--data-dir`, with the real binary: acknowledged writes survive SIGKILL in the
//! middle of load, versions, sequences and the history id go on across restarts, a
//! torn tail is cut, damage refuses to start (and `--repair` recovers the prefix), a
//! second server on the directory is refused, and no answer or event leaves before
//! its change is synced.
//!
//! Power loss (unsynced bytes dropped, not only the process killed) is simulated in
//! the write-ahead log's own tests, with a file system that forgets what was not
//! synced.

mod common;

use common::ServerProcess;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard::protocol::{features, Push};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(dir: &TempDir, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--data-dir", dir.arg(), "--workers", "1"];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

/// The log's segment files, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wal-") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    files
}

/// Runs the server binary to completion with `args`; its exit status and stderr.
fn run_to_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn acknowledged_writes_survive_sigkill_mid_load_and_versions_go_on() {
    let dir = TempDir::new("kill");
    let mut server = start(&dir, &[]);
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, addr) = (acked.clone(), stop.clone(), server.addr);
            std::thread::spawn(move || {
                let Ok(mut c) = switchboard::client::Client::connect(addr) else {
                    return;
                };
                c.set_timeout(Some(common::WAIT)).unwrap();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Pipelines of mixed size: several changes per sync.
                    let keys: Vec<String> = (0..8).map(|j| format!("w{w}:{i}:{j}")).collect();
                    let mut p = c.pipeline();
                    for k in &keys {
                        p = p.put(k.clone(), k.clone());
                    }
                    let Ok(answers) = p.send() else {
                        return;
                    };
                    let mut acked = acked.lock().unwrap();
                    for (k, a) in keys.into_iter().zip(answers) {
                        if let switchboard::protocol::ResponseBody::Written { version } = a {
                            acked.push((k, version));
                        }
                    }
                }
            })
        })
        .collect();
    common::wait_until("writes are acknowledged", || {
        acked.lock().unwrap().len() >= 2_000
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    let server = start(&dir, &[]);
    let mut c = server.client();
    let mut highest = 0;
    for (key, version) in &acked {
        let record = c
            .get(key.clone())
            .unwrap()
            .unwrap_or_else(|| panic!("{key} was acknowledged at {version} and is gone"));
        assert_eq!(record.version, *version, "{key}");
        assert_eq!(record.value, key.as_bytes());
        highest = highest.max(*version);
    }
    // Sequences go on from the recovered history, never reusing a number.
    let next = c.put("after", "restart").unwrap();
    assert!(next > highest, "{next} after {highest}");
}

#[test]
fn a_restart_keeps_the_history_and_resume_goes_on_without_a_gap() {
    let dir = TempDir::new("history");
    let mut server = start(&dir, &[]);
    let mut c = server.client();
    let hello = c.hello(features::PUSH).unwrap();
    let v1 = c.put("k", "1").unwrap();
    let v2 = c.put("k", "2").unwrap();
    server.terminate();

    let server = start(&dir, &[]);
    let mut c = server.client();
    let again = c.hello(features::PUSH).unwrap();
    assert_eq!(again.history, hello.history, "the history goes on");
    assert_eq!(c.get("k").unwrap().unwrap().version, v2);
    // A subscriber that had v1 resumes after it: recovery refilled the change log from
    // the write-ahead log, so it gets v2, then v3 live, and no GAP.
    c.subscribe(
        "k",
        Some(switchboard::protocol::msg::subscribe::Resume {
            from: v1,
            history: hello.history,
        }),
        0,
    )
    .unwrap();
    let v3 = server.client().put("k", "3").unwrap();
    assert_eq!(v3, v2 + 1, "sequences go on");
    let mut events = Vec::new();
    while events.last() != Some(&v3) {
        match c.next_push(Some(common::WAIT)).unwrap().expect("a push") {
            Push::Event { seq, .. } => events.push(seq),
            Push::Progress { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(events, [v2, v3]);
}

#[test]
fn a_torn_tail_is_cut_and_damage_refuses_to_start_unless_repaired() {
    let dir = TempDir::new("damage");
    let mut server = start(&dir, &[]);
    let mut c = server.client();
    for i in 0..100 {
        c.put(format!("k{i:03}"), format!("value {i}")).unwrap();
    }
    server.terminate();
    let segment = segments(&dir.0).pop().expect("a log segment");
    let whole = std::fs::read(&segment).unwrap();

    // A torn last write: the file ends inside the last entry.
    std::fs::write(&segment, &whole[..whole.len() - 5]).unwrap();
    let mut server = start(&dir, &[]);
    let mut c = server.client();
    assert!(c.get("k098").unwrap().is_some());
    assert!(c.get("k099").unwrap().is_none(), "the torn entry is cut");
    let again = c.put("k099", "rewritten").unwrap();
    server.terminate();
    let _ = again;

    // A flipped byte in the middle, with valid entries after it: refused.
    let whole = std::fs::read(&segment).unwrap();
    let mut bad = whole.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&segment, &bad).unwrap();
    let (status, stderr) = run_to_exit(&["--data-dir", dir.arg()]);
    assert!(!status.success(), "a damaged log must not start");
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "names the file: {stderr}");
    assert!(stderr.contains("--repair"), "says what to do: {stderr}");

    // --repair keeps the prefix and moves the rest aside.
    let mut server = start(&dir, &["--repair"]);
    let mut c = server.client();
    assert!(c.get("k000").unwrap().is_some(), "the prefix is kept");
    server.terminate();
    assert!(
        dir.0.join("damaged").read_dir().unwrap().next().is_some(),
        "what followed the damage was moved aside, not dropped"
    );
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let _first = start(&dir, &[]);
    let (status, stderr) = run_to_exit(&["--data-dir", dir.arg()]);
    assert!(!status.success());
    assert!(stderr.contains("in use by another switchboard"), "{stderr}");
}

#[test]
fn no_answer_or_event_leaves_before_its_sync() {
    let dir = TempDir::new("held");
    let server = start(&dir, &["--test-sync-delay-ms", "300"]);
    let mut sub = server.client();
    sub.hello(features::PUSH).unwrap();
    sub.subscribe("k", None, 0).unwrap();
    let mut reader = server.client();
    let addr = server.addr;
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut c = switchboard::client::Client::connect(addr).unwrap();
        c.set_timeout(Some(common::WAIT)).unwrap();
        let v = c.put("k", "v").unwrap();
        (v, t0.elapsed())
    });
    let event = loop {
        match sub.next_push(Some(common::WAIT)).unwrap() {
            Some(Push::Event { seq, .. }) => break (seq, t0.elapsed()),
            Some(_) => {}
            None => panic!("no event"),
        }
    };
    let (version, answered) = writer.join().unwrap();
    assert_eq!(event.0, version);
    let delay = Duration::from_millis(300);
    assert!(answered >= delay, "the PUT was answered after {answered:?}");
    assert!(event.1 >= delay, "the event came after {:?}", event.1);
    // A read of a record already on disk does not wait.
    let t1 = Instant::now();
    let record = reader.get("k").unwrap().unwrap();
    assert_eq!(record.version, version);
    assert!(t1.elapsed() < delay, "a durable record was read at once");
}

/// Unmounts a file system the test mounted, once everything using it is gone.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_until_there_is_room_and_loses_nothing() {
    let dir = TempDir::new("full");
    std::fs::create_dir_all(&dir.0).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir.arg()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    }
    let _unmount = Mounted(dir.0.clone());
    // Leave the log about 600 KiB.
    let filler = dir.0.join("filler");
    std::fs::write(&filler, vec![0u8; (4 << 20) - (600 << 10)]).unwrap();

    let mut server = start(&dir, &[]);
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), server.addr);
        std::thread::spawn(move || {
            let mut c = switchboard::client::Client::connect(addr).unwrap();
            c.set_timeout(Some(Duration::from_secs(30))).unwrap();
            for i in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let key = format!("big{i:05}");
                match c.put(key.clone(), vec![b'x'; 4096]) {
                    Ok(version) => acked.lock().unwrap().push((key, version)),
                    Err(switchboard::client::ClientError::Server { status, .. })
                        if status == switchboard::protocol::Status::STORAGE_FULL => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    common::wait_until("the server finds the disk full", || {
        switchboard::client::stat(&server.stats(), "storage_full") == Some(1)
    });
    // Writes are refused, with the status; reads go on.
    let mut probe = server.client();
    match probe.put("probe", "v") {
        Err(switchboard::client::ClientError::Server { status, .. }) => {
            assert_eq!(status, switchboard::protocol::Status::STORAGE_FULL)
        }
        other => panic!("a write while the disk is full: {other:?}"),
    }
    let (first, version) = acked.lock().unwrap()[0].clone();
    assert_eq!(probe.get(first).unwrap().unwrap().version, version);

    // Room again: the write that waited is acknowledged, and writes go on.
    std::fs::remove_file(&filler).unwrap();
    common::wait_until("writes are accepted again", || {
        probe.put("probe", "v").is_ok()
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(server.terminate().success());

    let server = start(&dir, &[]);
    let mut c = server.client();
    let acked = acked.lock().unwrap();
    assert!(!acked.is_empty());
    for (key, version) in acked.iter() {
        let record = c.get(key.clone()).unwrap().expect("an acknowledged write");
        assert_eq!(record.version, *version, "{key}");
    }
    drop(c);
    drop(server);
}

#[test]
fn compaction_bounds_the_log_and_a_restart_keeps_every_latest_value() {
    let dir = TempDir::new("compact");
    let mut server = start(
        &dir,
        &["--compact-min", "256k", "--test-segment-bytes", "65536"],
    );
    let mut c = server.client();
    let mut latest = std::collections::HashMap::new();
    // 100 keys written over and over: the log grows far past the live data.
    for round in 0..100 {
        let mut p = c.pipeline();
        for k in 0..100 {
            p = p.put(format!("k{k:03}"), format!("{round:04}{}", "v".repeat(200)));
        }
        for (k, a) in p.send().unwrap().into_iter().enumerate() {
            match a {
                switchboard::protocol::ResponseBody::Written { version } => {
                    latest.insert(format!("k{k:03}"), version);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    common::wait_until("a compaction has removed old segments", || {
        let stats = server.stats();
        let stat = |n| switchboard::client::stat(&stats, n).unwrap_or(0);
        stat("log_compactions") >= 1 && stat("log_bytes") < 1 << 20
    });
    let written: u64 = 100 * 100 * 200;
    let stats = server.stats();
    let log_bytes = switchboard::client::stat(&stats, "log_bytes").unwrap();
    assert!(log_bytes < written / 2, "the log holds {log_bytes} B");
    // The newest snapshot's size is what the next compaction measures the log by:
    // about the live data (100 records of some 220 bytes), not the memory charge.
    let snapshot_bytes = switchboard::client::stat(&stats, "snapshot_bytes").unwrap();
    assert!(
        (100 * 210..100 * 300).contains(&snapshot_bytes),
        "snapshot of {snapshot_bytes} B"
    );
    server.terminate();

    let server = start(&dir, &[]);
    let stats = server.stats();
    assert_eq!(
        switchboard::client::stat(&stats, "snapshot_bytes"),
        Some(snapshot_bytes),
        "a restart measures the snapshot it loaded"
    );
    let mut c = server.client();
    for (key, version) in &latest {
        let record = c.get(key.clone()).unwrap().expect("a record");
        assert_eq!(record.version, *version, "{key}");
    }
    let next = c.put("after", "restart").unwrap();
    assert_eq!(next, 100 * 100 + 1, "sequences go on after a snapshot");
}

#[test]
fn a_backup_taken_while_writing_holds_every_write_acknowledged_before_it() {
    let dir = TempDir::new("backup-src");
    let dest = TempDir::new("backup-dest");
    let server = start(
        &dir,
        &["--compact-min", "64k", "--test-segment-bytes", "32768"],
    );
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), server.addr);
        std::thread::spawn(move || {
            let mut c = switchboard::client::Client::connect(addr).unwrap();
            c.set_timeout(Some(common::WAIT)).unwrap();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Some keys over and over (compactions), some new ones.
                let key = if i % 2 == 0 {
                    format!("hot{}", i % 50)
                } else {
                    format!("new{i}")
                };
                let version = c.put(key.clone(), vec![b'v'; 100]).unwrap();
                acked.lock().unwrap().push((key, version));
            }
        })
    };
    common::wait_until("writes are acknowledged", || {
        acked.lock().unwrap().len() >= 3_000
    });
    let before: Vec<(String, u64)> = acked.lock().unwrap().clone();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--data-dir", dir.arg(), "--backup-to", dest.arg()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let history = server.client().hello(0).unwrap().history;

    let copy = ServerProcess::start(&["--data-dir", dest.arg(), "--workers", "1"]);
    let mut c = copy.client();
    assert_ne!(
        c.hello(0).unwrap().history,
        history,
        "a copy starts a new history"
    );
    // The latest acknowledged version of each key before the backup, at least.
    let mut want = std::collections::HashMap::new();
    for (key, version) in before {
        want.insert(key, version);
    }
    for (key, version) in &want {
        let record = c
            .get(key.clone())
            .unwrap()
            .expect("a record acknowledged before");
        assert!(
            record.version >= *version,
            "{key}: {} < {version}",
            record.version
        );
    }
}
