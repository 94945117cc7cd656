//! Power-cut tests on the simulated disk: whatever a seeded run of writes, syncs and
//! rotations is cut at (between calls, or inside a sync, a rotation or a recovery),
//! every acknowledged entry comes back and what comes back is exactly a prefix of
//! what was written. Also the recovery timing measurement (ignored by default).

use super::faulty::{Cut, FaultyFs, XorShift};
use super::tests::{append, config, dir, open, Owned};
use super::*;

const SEEDS: u64 = 200;

/// What recovery gave back must be `written[..n]` for some `n >= acked`.
fn check(got: &[(u64, Owned)], written: &[Owned], acked: usize) -> Result<(), String> {
    if got.len() < acked {
        return Err(format!(
            "lost acknowledged entries: recovered {}, {acked} were synced",
            got.len()
        ));
    }
    for (i, (seq, r)) in got.iter().enumerate() {
        if *seq != i as u64 + 1 {
            return Err(format!("entry {i} has seq {seq}"));
        }
        if written.get(i) != Some(r) {
            return Err(format!(
                "entry {seq} is {r:?}, but {:?} was written",
                written.get(i)
            ));
        }
    }
    Ok(())
}

/// What a run saw.
#[derive(Debug, Default)]
struct Seen {
    /// Entries written in all.
    written: usize,
    /// Recoveries that found fewer entries than were written (never acknowledged).
    short: usize,
    /// Crashes that landed inside an operation rather than between calls.
    mid_op: usize,
}

/// What a run does besides writing.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Syncs now and then (else never, as with `--fsync off`).
    sync: bool,
    /// Sometimes cuts the power inside an operation rather than between calls.
    mid_op_crashes: bool,
    /// Sometimes ends a round with only the process dying, not the power.
    process_crashes: bool,
}

/// One seeded run: rounds of (recover, check, random writes and syncs, crash).
fn run(seed: u64, plan: Plan) -> Seen {
    let fs = FaultyFs::new(seed);
    let mut rng = XorShift::new(seed.wrapping_mul(31).wrapping_add(17));
    let segment_bytes = 64 + rng.below(400);
    let cut = [Cut::Drop, Cut::Tear, Cut::Zeros][(seed % 3) as usize];
    let mut written: Vec<Owned> = Vec::new();
    let mut acked = 0;
    let mut seen = Seen::default();
    const ROUNDS: u32 = 4;
    for round in 0..=ROUNDS {
        if plan.mid_op_crashes && rng.below(3) > 0 {
            fs.crash_after(rng.below(60), cut);
        }
        let opened = loop {
            match open(fs.clone(), &dir(), config(segment_bytes)) {
                Ok(o) => break o,
                // Cut inside recovery itself: power back on and recover again.
                Err(_) if fs.is_down() => {
                    seen.mid_op += 1;
                    fs.restart();
                }
                Err(e) => panic!("seed {seed} round {round}: {e}"),
            }
        };
        let (mut wal, report, got) = opened;
        if let Err(e) = check(&got, &written, acked) {
            panic!("seed {seed} round {round} ({cut:?}, segments of {segment_bytes}): {e}");
        }
        if got.len() < written.len() {
            seen.short += 1;
        }
        assert_eq!(
            report.last_seq,
            got.len() as u64,
            "seed {seed} round {round}"
        );
        // What was recovered is the log now; recovery synced it.
        written.truncate(got.len());
        acked = got.len();
        if round == ROUNDS {
            break;
        }

        for _ in 0..rng.below(40) {
            if plan.sync && rng.below(4) == 0 {
                if let Err(e) = wal.sync() {
                    assert!(fs.is_down(), "seed {seed} round {round}: {e}");
                    break;
                }
                acked = written.len();
            } else {
                let batch: Vec<Owned> = (0..1 + rng.below(4))
                    .map(|_| Owned::random(&mut rng))
                    .collect();
                if let Err(e) = append(&mut wal, &batch) {
                    assert!(fs.is_down(), "seed {seed} round {round}: {e}");
                    break;
                }
                seen.written += batch.len();
                written.extend(batch);
            }
        }
        drop(wal);
        if fs.is_down() {
            seen.mid_op += 1;
        } else if plan.process_crashes && rng.below(4) == 0 {
            // Only the process dies: nothing is lost now, but what the next run
            // recovers counts as acknowledged, so it must make it durable.
        } else {
            fs.power_cut(cut);
        }
        fs.restart();
    }
    seen
}

#[test]
fn a_power_cut_loses_no_synced_entry() {
    let plan = Plan {
        sync: true,
        mid_op_crashes: false,
        process_crashes: true,
    };
    for seed in 0..SEEDS {
        run(seed, plan);
    }
}

#[test]
fn a_power_cut_inside_a_sync_rotation_or_recovery_loses_no_synced_entry() {
    let plan = Plan {
        sync: true,
        mid_op_crashes: true,
        process_crashes: true,
    };
    let mid_op: usize = (0..SEEDS).map(|seed| run(seed, plan).mid_op).sum();
    // The test is only worth its name if the crashes do land inside operations.
    assert!(
        mid_op > SEEDS as usize,
        "{mid_op} crashes inside an operation"
    );
}

/// Without syncs (as with `--fsync off`) the same runs do lose entries, so the
/// checks above would see a loss if the log lost synced entries.
#[test]
fn without_syncs_entries_are_lost() {
    let plan = Plan {
        sync: false,
        mid_op_crashes: false,
        process_crashes: false,
    };
    let (mut lost_runs, mut runs) = (0, 0);
    for seed in 0..SEEDS {
        let seen = run(seed, plan);
        if seen.written > 0 {
            runs += 1;
            if seen.short > 0 {
                lost_runs += 1;
            }
        }
    }
    assert!(runs > SEEDS / 2);
    assert_eq!(
        lost_runs, runs,
        "every run that wrote without syncing lost some"
    );

    // And the check itself fires when unsynced entries are claimed as acknowledged.
    let fs = FaultyFs::new(1);
    let (mut wal, _, _) = open(fs.clone(), &dir(), config(100)).unwrap();
    let written: Vec<Owned> = (0..10).map(|_| Owned::Hole).collect();
    append(&mut wal, &written).unwrap();
    drop(wal);
    fs.power_cut(Cut::Drop);
    let (_, _, got) = open(fs, &dir(), config(100)).unwrap();
    assert!(check(&got, &written, written.len()).is_err());
}

/// Recovery time for 1,000,000 entries with ~16-byte keys and 64-byte values, on
/// the real file system in the temporary directory. Run with
/// `cargo test --release --lib wal::tests_crash::recovery_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn recovery_timing() {
    use std::time::Instant;
    let dir = std::env::temp_dir().join(format!("switchboard-wal-timing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let n: u64 = 1_000_000;
    let (mut wal, _, _) = open(RealFs, &dir, WalConfig::default()).unwrap();
    let start = Instant::now();
    let mut buf = bytes::BytesMut::new();
    let value = [0x5Au8; 64];
    for seq in 1..=n {
        let key = format!("key-{seq:012}");
        encode_entry(
            &mut buf,
            seq,
            Record::Put {
                key: key.as_bytes(),
                value: &value,
            },
        );
        if seq % 1000 == 0 {
            wal.write(&buf, seq).unwrap();
            buf.clear();
        }
    }
    wal.sync().unwrap();
    let bytes = wal.bytes();
    drop(wal);
    println!("wrote {n} entries, {bytes} bytes, in {:?}", start.elapsed());

    for _ in 0..3 {
        let start = Instant::now();
        let (mut count, mut sum) = (0u64, 0u64);
        let (wal, report) = Wal::open(RealFs, &dir, WalConfig::default(), |seq, r| {
            count += 1;
            if let Record::Put { key, value } = r {
                sum += seq + key.len() as u64 + value.len() as u64;
            }
        })
        .unwrap();
        let took = start.elapsed();
        assert_eq!((count, wal.last_seq(), report.segments), (n, n, 2));
        println!(
            "recovered {count} entries ({} segments, {bytes} bytes) in {took:?} ({:.0} MB/s), checksum {sum}",
            report.segments,
            bytes as f64 / took.as_secs_f64() / 1e6
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
