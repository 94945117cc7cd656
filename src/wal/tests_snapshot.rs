//! Snapshot tests: the file round-trips and refuses damage; a log opened after a
//! snapshot replays only what follows it; and power cuts at every step of a
//! compaction (each write, sync, rename and removal), over seeded runs, lose no
//! acknowledged change and recover exactly the state of a prefix of the log.

use super::faulty::{Cut, FaultyFs, XorShift};
use super::tests::{append, config, dir, Owned};
use super::*;
use std::collections::BTreeMap;

/// key -> (version, value): the state a log or snapshot stands for.
type State = BTreeMap<Vec<u8>, (u64, Vec<u8>)>;

fn apply(state: &mut State, seq: u64, r: &Owned) {
    match r {
        Owned::Put(k, v) => {
            state.insert(k.clone(), (seq, v.clone()));
        }
        Owned::Delete(k) => {
            state.remove(k);
        }
        Owned::Hole => {}
    }
}

/// The state the first `n` written changes make.
fn state_of(written: &[Owned], n: u64) -> State {
    let mut s = State::new();
    for (i, r) in written.iter().take(n as usize).enumerate() {
        apply(&mut s, i as u64 + 1, r);
    }
    s
}

/// Recovers as the server does: the newest snapshot, then the log after it.
fn recover(fs: &FaultyFs, segment_bytes: u64) -> Result<(Wal<FaultyFs>, State), WalError> {
    let mut state = State::new();
    let after = load_snapshot(fs, &dir(), |k, version, v| {
        state.insert(k.to_vec(), (version, v.to_vec()));
    })?
    .unwrap_or(0);
    let (wal, report) = Wal::open_after(fs.clone(), &dir(), config(segment_bytes), after, {
        let state = &mut state;
        move |seq, r| apply(state, seq, &Owned::of(r))
    })?;
    assert_eq!(wal.last_seq(), report.last_seq);
    assert!(report.last_seq >= after);
    Ok((wal, state))
}

/// A change to one of a few keys, so writes overwrite each other as in a store.
fn change(rng: &mut XorShift) -> Owned {
    let key = format!("k{}", rng.below(6)).into_bytes();
    match rng.below(10) {
        0 => Owned::Hole,
        1 | 2 => Owned::Delete(key),
        _ => Owned::Put(key, vec![rng.below(256) as u8; rng.below(40) as usize]),
    }
}

#[test]
fn a_snapshot_round_trips_and_replaces_older_ones() {
    let fs = FaultyFs::new(1);
    fs.create_dir_all(&dir()).unwrap();
    for seq in [5, 9] {
        let mut w = SnapshotWriter::create(&fs, &dir(), seq).unwrap();
        for i in 0..300u64 {
            w.add(
                format!("key{i}").as_bytes(),
                seq + i,
                &vec![i as u8; i as usize % 50],
            )
            .unwrap();
        }
        let info = w.finish().unwrap();
        assert_eq!((info.seq, info.records), (seq, 300));
    }
    let names: Vec<_> = fs.list_dir(&dir()).unwrap();
    assert_eq!(names, vec![std::ffi::OsString::from(snapshot_name(9))]);
    let mut got = Vec::new();
    let seq = load_snapshot(&fs, &dir(), |k, v, val| {
        got.push((k.to_vec(), v, val.len()))
    });
    assert_eq!(seq.unwrap(), Some(9));
    assert_eq!(got.len(), 300);
    assert_eq!(got[7], (b"key7".to_vec(), 16, 7));

    // An unfinished snapshot is ignored and removed.
    let w = SnapshotWriter::create(&fs, &dir(), 20).unwrap();
    drop(w);
    assert_eq!(load_snapshot(&fs, &dir(), |_, _, _| {}).unwrap(), Some(9));
    assert_eq!(fs.list_dir(&dir()).unwrap().len(), 1);
}

#[test]
fn a_damaged_snapshot_is_refused_with_its_file_and_offset() {
    let fs = FaultyFs::new(2);
    fs.create_dir_all(&dir()).unwrap();
    let mut w = SnapshotWriter::create(&fs, &dir(), 3).unwrap();
    for i in 0..10u8 {
        w.add(&[b'k', i], 1, b"value").unwrap();
    }
    let path = w.finish().unwrap().path;
    let good = fs.read(&path).unwrap();
    let damaged = |bytes: Vec<u8>| {
        fs.overwrite(&path, bytes).unwrap();
        match load_snapshot(&fs, &dir(), |_, _, _| {}) {
            Err(WalError::Damaged { file, offset, .. }) => {
                assert_eq!(file, path);
                offset
            }
            other => panic!("{other:?}"),
        }
    };
    let mut flipped = good.clone();
    flipped[60] ^= 1;
    assert!(damaged(flipped) > 24);
    assert!(damaged(good[..good.len() - 1].to_vec()) > 0);
    let mut extra = good.clone();
    extra.push(0);
    damaged(extra);
    let mut magic = good.clone();
    magic[0] = b'X';
    assert_eq!(damaged(magic), 0);
    fs.overwrite(&path, good).unwrap();
    assert_eq!(load_snapshot(&fs, &dir(), |_, _, _| {}).unwrap(), Some(3));
}

#[test]
fn a_log_opened_after_a_snapshot_replays_only_what_follows_it() {
    let fs = FaultyFs::new(3);
    let mut rng = XorShift::new(3);
    let (mut wal, _) = Wal::open(fs.clone(), &dir(), config(200), |_, _| {}).unwrap();
    let written: Vec<Owned> = (0..100).map(|_| change(&mut rng)).collect();
    for chunk in written.chunks(3) {
        append(&mut wal, chunk).unwrap();
    }
    wal.sync().unwrap();
    let segments_before = wal_segments(&fs);
    assert!(segments_before > 5);

    let mut w = SnapshotWriter::create(&fs, &dir(), 60).unwrap();
    for (k, (version, v)) in state_of(&written, 60) {
        w.add(&k, version, &v).unwrap();
    }
    w.finish().unwrap();
    let removed = wal.remove_through(60).unwrap();
    assert!(removed > 0);
    assert!(wal_segments(&fs) < segments_before);
    drop(wal);

    let mut replayed = Vec::new();
    let after = load_snapshot(&fs, &dir(), |_, _, _| {}).unwrap().unwrap();
    let (wal, report) = Wal::open_after(fs.clone(), &dir(), config(200), after, |seq, _| {
        replayed.push(seq)
    })
    .unwrap();
    assert_eq!(replayed, (61..=100).collect::<Vec<_>>());
    assert_eq!((report.last_seq, report.entries), (100, 40));
    drop(wal);
    let (_, state) = recover(&fs, 200).unwrap();
    assert_eq!(state, state_of(&written, 100));

    // A snapshot at the log's end: the next run removes every older segment and
    // goes on at the next seq.
    let mut w = SnapshotWriter::create(&fs, &dir(), 100).unwrap();
    for (k, (version, v)) in state_of(&written, 100) {
        w.add(&k, version, &v).unwrap();
    }
    w.finish().unwrap();
    let (mut wal, state) = recover(&fs, 200).unwrap();
    assert_eq!(state, state_of(&written, 100));
    assert_eq!(wal.last_seq(), 100);
    append(&mut wal, &[Owned::Hole]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_eq!(recover(&fs, 200).unwrap().0.last_seq(), 101);
}

#[test]
fn a_log_that_does_not_reach_its_snapshot_is_refused() {
    let fs = FaultyFs::new(4);
    let (mut wal, _) = Wal::open(fs.clone(), &dir(), config(1 << 20), |_, _| {}).unwrap();
    append(&mut wal, &[Owned::Hole, Owned::Hole]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    // A snapshot at 10 over a log that ends at 2: changes 3 to 10 are missing.
    SnapshotWriter::create(&fs, &dir(), 10)
        .unwrap()
        .finish()
        .unwrap();
    match recover(&fs, 1 << 20) {
        Err(WalError::Damaged { reason, .. }) => assert!(reason.contains("snapshot"), "{reason}"),
        other => panic!("{:?}", other.map(|(_, s)| s)),
    }
}

fn wal_segments(fs: &FaultyFs) -> usize {
    fs.list_dir(&dir())
        .unwrap()
        .iter()
        .filter(|n| n.to_str().and_then(parse_segment_name).is_some())
        .count()
}

/// Steps of a compaction a crash is placed before, by seed: more than a compaction
/// of this size takes, so every step is hit, and some crashes land after it.
const COMPACTION_STEPS: u64 = 40;
const SEEDS: u64 = 3 * COMPACTION_STEPS;

/// One seeded run: changes (some synced), a compaction whose snapshot is read while
/// changes go on, with the power cut before the `n`th disk operation from its start;
/// then recovery must give the state of a prefix of the log that holds every synced
/// change, with every version.
fn compaction_run(seed: u64) -> Result<bool, String> {
    let fs = FaultyFs::new(seed);
    let mut rng = XorShift::new(seed ^ 0x5eed);
    let cut = [Cut::Drop, Cut::Tear, Cut::Zeros][(seed % 3) as usize];
    let segment_bytes = 100 + rng.below(300);
    let (mut wal, _) = Wal::open(fs.clone(), &dir(), config(segment_bytes), |_, _| {})
        .map_err(|e| e.to_string())?;
    let mut written: Vec<Owned> = Vec::new();
    let mut acked = 0u64;
    let write = |wal: &mut Wal<FaultyFs>, written: &mut Vec<Owned>, rng: &mut XorShift| {
        let batch: Vec<Owned> = (0..1 + rng.below(4)).map(|_| change(rng)).collect();
        append(wal, &batch).map(|()| written.extend(batch))
    };
    for _ in 0..40 {
        write(&mut wal, &mut written, &mut rng).map_err(|e| e.to_string())?;
    }
    wal.sync().map_err(|e| e.to_string())?;
    acked = acked.max(wal.last_seq());

    fs.crash_after(seed / 3 % COMPACTION_STEPS, cut);
    let result = (|| -> std::io::Result<()> {
        let s0 = wal.last_seq();
        let mut w = SnapshotWriter::create(&fs, &dir(), s0)?;
        // Fuzzy: each key is read as it is when the snapshot gets to it, while
        // changes go on.
        let keys: Vec<Vec<u8>> = (0..6).map(|k| format!("k{k}").into_bytes()).collect();
        for key in &keys {
            if rng.below(2) == 0 {
                write(&mut wal, &mut written, &mut rng)?;
            }
            if let Some((version, value)) = state_of(&written, wal.last_seq()).get(key) {
                w.add(key, *version, value)?;
            }
        }
        // The snapshot goes in place only once the log holds all it read.
        wal.sync()?;
        acked = acked.max(wal.last_seq());
        w.finish()?;
        wal.remove_through(s0)?;
        for _ in 0..5 {
            write(&mut wal, &mut written, &mut rng)?;
        }
        wal.sync()?;
        acked = acked.max(wal.last_seq());
        Ok(())
    })();
    if let Err(e) = result {
        if !fs.is_down() {
            return Err(format!("failed without a crash: {e}"));
        }
    }
    drop(wal);
    let crashed = fs.is_down();
    if !crashed {
        fs.power_cut(cut);
    }
    fs.restart();
    let (wal, state) = recover(&fs, segment_bytes).map_err(|e| e.to_string())?;
    let last = wal.last_seq();
    if last < acked {
        return Err(format!("recovered up to {last}, {acked} were synced"));
    }
    if last > written.len() as u64 {
        return Err(format!(
            "recovered up to {last}, only {} written",
            written.len()
        ));
    }
    let want = state_of(&written, last);
    if state != want {
        return Err(format!(
            "recovered state at {last} differs:\n got {state:?}\nwant {want:?}"
        ));
    }
    Ok(crashed)
}

#[test]
fn a_power_cut_anywhere_in_a_compaction_loses_no_synced_change() {
    let mut inside = 0;
    for seed in 0..SEEDS {
        match compaction_run(seed) {
            Ok(crashed) => inside += u64::from(crashed),
            Err(e) => panic!(
                "seed {seed} ({:?}): {e}",
                [Cut::Drop, Cut::Tear, Cut::Zeros][(seed % 3) as usize]
            ),
        }
    }
    // Most crash points fall inside the compaction, not after it.
    assert!(
        inside >= SEEDS / 2,
        "{inside} of {SEEDS} runs crashed inside"
    );
}
