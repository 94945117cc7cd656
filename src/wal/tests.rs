//! Tests of the log's format, writer and recovery rules: round trips, torn tails,
//! damage with and without repair. Power cuts are in `tests_crash`.

use super::faulty::{FaultyFs, XorShift};
use super::*;
use bytes::BytesMut;
use std::path::{Path, PathBuf};

/// An owned copy of a replayed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Owned {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Hole,
}

impl Owned {
    pub(super) fn of(r: Record<'_>) -> Owned {
        match r {
            Record::Put { key, value } => Owned::Put(key.to_vec(), value.to_vec()),
            Record::Delete { key } => Owned::Delete(key.to_vec()),
            Record::Hole => Owned::Hole,
        }
    }

    pub(super) fn record(&self) -> Record<'_> {
        match self {
            Owned::Put(key, value) => Record::Put { key, value },
            Owned::Delete(key) => Record::Delete { key },
            Owned::Hole => Record::Hole,
        }
    }

    /// A record of random kind and sizes.
    pub(super) fn random(rng: &mut XorShift) -> Owned {
        let bytes = |rng: &mut XorShift, n| (0..n).map(|_| rng.next_u64() as u8).collect();
        match rng.below(10) {
            0 => Owned::Hole,
            1 | 2 => {
                let n = 1 + rng.below(20);
                Owned::Delete(bytes(rng, n))
            }
            _ => {
                let (k, v) = (1 + rng.below(20), rng.below(60));
                Owned::Put(bytes(rng, k), bytes(rng, v))
            }
        }
    }
}

pub(super) fn dir() -> PathBuf {
    PathBuf::from("/data/wal")
}

pub(super) fn config(segment_bytes: u64) -> WalConfig {
    WalConfig {
        segment_bytes,
        repair: false,
    }
}

pub(super) type Opened<F> = (Wal<F>, RecoveryReport, Vec<(u64, Owned)>);

pub(super) fn open<F: Fs>(fs: F, dir: &Path, config: WalConfig) -> Result<Opened<F>, WalError> {
    let mut got = Vec::new();
    let (wal, report) = Wal::open(fs, dir, config, |seq, r| got.push((seq, Owned::of(r))))?;
    Ok((wal, report, got))
}

/// Writes `records` as one batch numbered on from the log's last seq.
pub(super) fn append<F: Fs>(wal: &mut Wal<F>, records: &[Owned]) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    let mut seq = wal.last_seq();
    for r in records {
        seq += 1;
        encode_entry(&mut buf, seq, r.record());
    }
    wal.write(&buf, seq)
}

fn numbered(records: &[Owned], from: u64) -> Vec<(u64, Owned)> {
    (from..).zip(records.iter().cloned()).collect()
}

fn put(i: usize) -> Owned {
    Owned::Put(format!("key-{i}").into_bytes(), vec![i as u8; i % 7])
}

/// Segment files in `dir`, in order, with their content.
fn segments(fs: &FaultyFs, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut names: Vec<String> = fs
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| parse_segment_name(n).is_some())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let p = dir.join(n);
            let data = fs.read(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// Offsets where each entry of a segment begins, and the segment's end.
fn entry_offsets(data: &[u8]) -> Vec<usize> {
    let mut offs = vec![HEADER_LEN as usize];
    let mut off = HEADER_LEN as usize;
    while off < data.len() {
        let len = u32::from_be_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        off += 16 + len;
        offs.push(off);
    }
    offs
}

#[test]
fn crc_is_crc32c() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn round_trip_across_segments() {
    let fs = FaultyFs::new(1);
    let (mut wal, report, got) = open(fs.clone(), &dir(), config(200)).unwrap();
    assert_eq!(
        (report.last_seq, report.entries, report.segments),
        (0, 0, 1)
    );
    assert!(got.is_empty());
    let mut rng = XorShift::new(1);
    let records: Vec<Owned> = (0..100).map(|_| Owned::random(&mut rng)).collect();
    for batch in records.chunks(3) {
        append(&mut wal, batch).unwrap();
        wal.sync().unwrap();
    }
    assert_eq!(wal.last_seq(), 100);
    let on_disk: u64 = segments(&fs, &dir())
        .iter()
        .map(|(_, d)| d.len() as u64)
        .sum();
    assert_eq!(wal.bytes(), on_disk);
    drop(wal);

    let (mut wal, report, got) = open(fs.clone(), &dir(), config(200)).unwrap();
    assert_eq!(got, numbered(&records, 1));
    assert_eq!(report.last_seq, 100);
    assert_eq!(report.entries, 100);
    assert!(report.segments > 5, "{report:?}");
    assert_eq!(report.segments, segments(&fs, &dir()).len());
    assert_eq!((report.torn_bytes, report.repaired.clone()), (0, None));
    assert_eq!(wal.bytes(), on_disk);

    append(&mut wal, &[put(1), put(2)]).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.last_seq(), 102);
    drop(wal);
    let (wal, _, got) = open(fs, &dir(), config(200)).unwrap();
    assert_eq!(got.len(), 102);
    assert_eq!(got[101], (102, put(2)));
    assert_eq!(wal.last_seq(), 102);
}

#[test]
fn round_trip_on_the_real_file_system() {
    let dir = std::env::temp_dir().join(format!("switchboard-wal-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let records: Vec<Owned> = (0..50).map(put).collect();
    let (mut wal, _, _) = open(RealFs, &dir.join("log"), config(300)).unwrap();
    for batch in records.chunks(4) {
        append(&mut wal, batch).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let (wal, report, got) = open(RealFs, &dir.join("log"), config(300)).unwrap();
    assert_eq!(got, numbered(&records, 1));
    assert_eq!(wal.last_seq(), 50);
    assert!(report.segments > 3);
    assert_eq!(
        wal.bytes(),
        std::fs::read_dir(dir.join("log"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_are_preallocated_without_growing_their_length() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("switchboard-wal-prealloc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let segment_bytes = 1 << 20;
    let (mut wal, _, _) = open(RealFs, &dir, config(segment_bytes)).unwrap();
    append(&mut wal, &[put(1)]).unwrap();
    wal.sync().unwrap();
    let meta = std::fs::metadata(dir.join(segment_name(1))).unwrap();
    assert!(
        meta.len() < 100,
        "the length is what was written: {}",
        meta.len()
    );
    // Where the file system can reserve space (ext4, xfs, btrfs, tmpfs), it has.
    let reserved = meta.blocks() * 512;
    let fs_type = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if ["ext2/ext3", "xfs", "btrfs", "tmpfs"].contains(&fs_type.as_str()) {
        assert!(
            reserved >= segment_bytes,
            "{fs_type}: {reserved} bytes reserved"
        );
    } else {
        eprintln!("{fs_type}: cannot tell whether it reserves ({reserved} bytes allocated)");
    }
    drop(wal);
    let (_, _, got) = open(RealFs, &dir, config(segment_bytes)).unwrap();
    assert_eq!(got, numbered(&[put(1)], 1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Builds a log of `n` entries (`put(1..=n)`) across segments of `segment_bytes`.
fn build(n: usize, segment_bytes: u64) -> FaultyFs {
    let fs = FaultyFs::new(7);
    let (mut wal, _, _) = open(fs.clone(), &dir(), config(segment_bytes)).unwrap();
    for i in 1..=n {
        append(&mut wal, &[put(i)]).unwrap();
    }
    wal.sync().unwrap();
    fs
}

#[test]
fn a_cut_anywhere_in_the_last_three_entries_is_a_torn_tail() {
    let n = 12;
    let segs = segments(&build(n, 120), &dir());
    assert!(segs.len() >= 3, "the test needs several segments");
    let (last, data) = segs.last().unwrap().clone();
    let offs = entry_offsets(&data);
    assert!(
        offs.len() >= 4,
        "the last segment needs 3 entries: {offs:?}"
    );
    let in_last = offs.len() - 1;
    let first_of_last = n - in_last + 1;
    let from = offs[offs.len() - 4];
    for cut in from..data.len() {
        let fs = build(n, 120);
        fs.overwrite(&last, data[..cut].to_vec()).unwrap();
        let (mut wal, report, got) =
            open(fs.clone(), &dir(), config(120)).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let whole = offs.iter().filter(|&&o| o <= cut).count() - 1;
        let expect = first_of_last - 1 + whole;
        let want: Vec<(u64, Owned)> = (1..=expect).map(|i| (i as u64, put(i))).collect();
        assert_eq!(got, want, "cut at {cut}");
        assert_eq!(report.last_seq, expect as u64, "cut at {cut}");
        assert_eq!(
            report.torn_bytes,
            (cut - offs[whole]) as u64,
            "cut at {cut}"
        );
        assert_eq!(fs.read(&last).unwrap().len(), offs[whole], "cut at {cut}");

        append(&mut wal, &[put(100)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, report, got) = open(fs, &dir(), config(120)).unwrap();
        assert_eq!(got.len(), expect + 1, "cut at {cut}");
        assert_eq!(got[expect], (expect as u64 + 1, put(100)), "cut at {cut}");
        assert_eq!((wal.last_seq(), report.torn_bytes), (expect as u64 + 1, 0));
    }
}

#[test]
fn garbage_or_zeros_after_the_last_entry_are_a_torn_tail() {
    let mut rng = XorShift::new(3);
    for tail in [
        vec![0u8; 100],
        (0..333).map(|_| rng.next_u64() as u8).collect(),
        vec![0xFF; 17],
    ] {
        let fs = build(10, 1 << 20);
        let (last, mut data) = segments(&fs, &dir()).pop().unwrap();
        let end = data.len() as u64;
        data.extend_from_slice(&tail);
        fs.overwrite(&last, data).unwrap();
        let (_, report, got) = open(fs.clone(), &dir(), config(1 << 20)).unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(report.torn_bytes, tail.len() as u64);
        assert_eq!(report.torn_at, Some((last.clone(), end)));
        assert_eq!(fs.read(&last).unwrap().len() as u64, end);
    }
}

#[test]
fn a_huge_len_is_damage_not_an_allocation() {
    for len in [u32::MAX, MAX_BODY + 1, MAX_BODY, 2] {
        // At the end: a torn tail.
        let fs = build(5, 1 << 20);
        let (last, mut data) = segments(&fs, &dir()).pop().unwrap();
        let end = data.len();
        let mut bogus = BytesMut::new();
        encode_entry(&mut bogus, 6, put(6).record());
        bogus[..4].copy_from_slice(&len.to_be_bytes());
        data.extend_from_slice(&bogus);
        fs.overwrite(&last, data.clone()).unwrap();
        let (_, report, got) = open(fs.clone(), &dir(), config(1 << 20)).unwrap();
        assert_eq!(
            (got.len(), report.torn_bytes),
            (5, bogus.len() as u64),
            "len {len}"
        );

        // Followed by a valid entry: damage.
        encode_entry(&mut bogus, 7, put(7).record());
        data.truncate(end);
        data.extend_from_slice(&bogus);
        fs.overwrite(&last, data).unwrap();
        match open(fs, &dir(), config(1 << 20)) {
            Err(WalError::Damaged { file, offset, .. }) => {
                assert_eq!((file, offset), (last, end as u64), "len {len}")
            }
            other => panic!("len {len}: {:?}", other.map(|o| o.1)),
        }
    }
}

#[test]
fn a_flipped_byte_before_valid_entries_is_damage_and_repair_moves_the_rest_aside() {
    let n = 20;
    let fs = build(n, 1 << 20);
    let (seg, data) = segments(&fs, &dir()).pop().unwrap();
    let offs = entry_offsets(&data);
    let at = offs[9]; // entry 10
    for flip in [at, at + 5, at + 12, at + 18, offs[10] - 1] {
        let fs = build(n, 1 << 20);
        let mut bad = data.clone();
        bad[flip] ^= 0x40;
        fs.overwrite(&seg, bad.clone()).unwrap();
        let err = open(fs.clone(), &dir(), config(1 << 20))
            .map(|o| o.1)
            .unwrap_err();
        let WalError::Damaged { file, offset, .. } = &err else {
            panic!("flip at {flip}: {err}")
        };
        assert_eq!((file, *offset), (&seg, at as u64), "flip at {flip}");
        let text = err.to_string();
        assert!(text.contains(&seg.display().to_string()), "{text}");
        assert!(text.contains(&format!("byte {at}")), "{text}");
        assert!(text.contains("--repair"), "{text}");
        // Refusing changed nothing.
        assert_eq!(fs.read(&seg).unwrap(), bad);

        let repair = WalConfig {
            repair: true,
            ..config(1 << 20)
        };
        let (mut wal, report, got) = open(fs.clone(), &dir(), repair).unwrap();
        assert_eq!(got, (1..=9).map(|i| (i as u64, put(i))).collect::<Vec<_>>());
        assert_eq!(wal.last_seq(), 9);
        let aside = dir().join("damaged").join(format!(
            "{}.from-{at}",
            seg.file_name().unwrap().to_str().unwrap()
        ));
        assert_eq!(fs.read(&aside).unwrap(), bad[at..], "flip at {flip}");
        let said = report.repaired.unwrap();
        assert!(said.contains(&aside.display().to_string()), "{said}");
        assert_eq!(fs.read(&seg).unwrap(), data[..at]);

        append(&mut wal, &[put(50)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, report, got) = open(fs, &dir(), config(1 << 20)).unwrap();
        assert_eq!((got.len(), wal.last_seq(), report.repaired), (10, 10, None));
        assert_eq!(got[9], (10, put(50)));
    }
}

#[test]
fn damage_in_an_earlier_segment_moves_the_later_ones_aside_on_repair() {
    let fs = build(30, 150);
    let segs = segments(&fs, &dir());
    assert!(segs.len() >= 4);
    let (seg, mut data) = segs[1].clone();
    let offs = entry_offsets(&data);
    let first = parse_segment_name(seg.file_name().unwrap().to_str().unwrap()).unwrap();
    // The last entry of the segment: nothing valid follows in the segment itself.
    let at = offs[offs.len() - 2];
    let last_flip = data.len() - 1;
    data[last_flip] ^= 1;
    fs.overwrite(&seg, data).unwrap();
    let err = open(fs.clone(), &dir(), config(150))
        .map(|o| o.1)
        .unwrap_err();
    assert!(
        matches!(&err, WalError::Damaged { file, offset, .. } if *file == seg && *offset == at as u64),
        "{err}"
    );
    let repair = WalConfig {
        repair: true,
        ..config(150)
    };
    let (_, report, got) = open(fs.clone(), &dir(), repair).unwrap();
    let kept = first as usize + offs.len() - 3;
    assert_eq!(got.len(), kept);
    assert_eq!(report.segments, 2);
    let aside = fs.list_dir(&dir().join("damaged")).unwrap();
    assert_eq!(aside.len(), 1 + segs.len() - 2, "{aside:?}");
    for (path, content) in &segs[2..] {
        let moved = dir().join("damaged").join(path.file_name().unwrap());
        assert_eq!(&fs.read(&moved).unwrap(), content);
    }
    let (wal, _, got) = open(fs, &dir(), config(150)).unwrap();
    assert_eq!((got.len(), wal.last_seq()), (kept, kept as u64));
}

#[test]
fn a_missing_segment_is_damage_not_a_torn_tail() {
    let fs = build(30, 150);
    let segs = segments(&fs, &dir());
    assert!(segs.len() >= 4);
    fs.remove_file(&segs[1].0).unwrap();
    let err = open(fs, &dir(), config(150)).map(|o| o.1).unwrap_err();
    assert!(
        matches!(&err, WalError::Damaged { file, offset: 0, .. } if *file == segs[2].0),
        "{err}"
    );
}

#[test]
fn headers() {
    // A torn header on the newest segment, with nothing after it: torn.
    for content in [
        vec![],
        b"SWBW".to_vec(),
        vec![0; 16],
        b"garbage, not a wal segment".to_vec(),
    ] {
        let fs = build(10, 100);
        let (last, _) = segments(&fs, &dir()).pop().unwrap();
        let first = parse_segment_name(last.file_name().unwrap().to_str().unwrap()).unwrap();
        fs.overwrite(&last, content.clone()).unwrap();
        let (mut wal, report, got) = open(fs.clone(), &dir(), config(100)).unwrap();
        assert_eq!(got.len() as u64, first - 1, "{content:?}");
        assert_eq!(report.torn_bytes, content.len() as u64);
        append(&mut wal, &[put(1)]).unwrap();
        wal.sync().unwrap();
        let (_, _, got) = open(fs.clone(), &dir(), config(100)).unwrap();
        assert_eq!(got.len() as u64, first, "{content:?}");
    }
    // A bad header followed by valid entries is damage.
    let fs = build(10, 1 << 20);
    let (seg, mut data) = segments(&fs, &dir()).pop().unwrap();
    data[0] = b'X';
    fs.overwrite(&seg, data.clone()).unwrap();
    let err = open(fs, &dir(), config(1 << 20)).map(|o| o.1).unwrap_err();
    assert!(matches!(&err, WalError::Damaged { offset: 0, .. }), "{err}");
    // Another format version is never cut, even with nothing readable after it.
    let fs = build(10, 100);
    let (seg, mut data) = segments(&fs, &dir()).pop().unwrap();
    data.truncate(16);
    data[11] = 2;
    fs.overwrite(&seg, data.clone()).unwrap();
    let err = open(fs.clone(), &dir(), config(100))
        .map(|o| o.1)
        .unwrap_err();
    assert!(err.to_string().contains("format version 2"), "{err}");
    let repair = WalConfig {
        repair: true,
        ..config(100)
    };
    let (_, report, _) = open(fs.clone(), &dir(), repair).unwrap();
    assert!(report.repaired.is_some());
    let name = seg.file_name().unwrap().to_str().unwrap();
    let moved = dir().join("damaged").join(format!("{name}.from-0"));
    assert_eq!(fs.read(&moved).unwrap(), data);
}

#[test]
fn an_absent_or_empty_directory_is_a_new_log() {
    let fs = FaultyFs::new(0);
    let (mut wal, report, got) = open(fs.clone(), &dir(), config(100)).unwrap();
    assert!(got.is_empty());
    assert_eq!(
        (report.last_seq, wal.last_seq(), wal.bytes()),
        (0, 0, HEADER_LEN)
    );
    let first = dir().join(segment_name(1));
    assert_eq!(fs.read(&first).unwrap(), format::header());
    append(&mut wal, &[Owned::Hole]).unwrap();
    wal.sync().unwrap();
    // The directory and the segment were made durable.
    fs.power_cut(faulty::Cut::Drop);
    let (_, _, got) = open(fs, &dir(), config(100)).unwrap();
    assert_eq!(got, vec![(1, Owned::Hole)]);
}

#[test]
fn write_refuses_entries_that_do_not_continue_the_log() {
    let fs = FaultyFs::new(0);
    let (mut wal, _, _) = open(fs.clone(), &dir(), config(100)).unwrap();
    let mut buf = BytesMut::new();
    encode_entry(&mut buf, 2, put(2).record());
    assert!(wal.write(&buf, 2).is_err(), "a gap");
    buf.clear();
    encode_entry(&mut buf, 1, put(1).record());
    assert!(wal.write(&buf, 2).is_err(), "the wrong last seq");
    assert!(wal.write(&buf[..buf.len() - 1], 1).is_err(), "a cut entry");
    assert!(wal.write(&[], 0).is_ok());
    wal.write(&buf, 1).unwrap();
    assert!(wal.write(&buf, 1).is_err(), "a repeat");
    assert_eq!(wal.last_seq(), 1);
    assert!(!wal.is_failed());
}

#[test]
fn a_failed_write_is_cut_back_and_a_failed_sync_fails_the_log() {
    let fs = FaultyFs::new(5);
    let (mut wal, _, _) = open(fs.clone(), &dir(), config(1 << 20)).unwrap();
    append(&mut wal, &[put(1)]).unwrap();
    fs.fail_next_writes(1);
    assert!(append(&mut wal, &[put(2), put(3)]).is_err());
    assert_eq!(wal.last_seq(), 1);
    append(&mut wal, &[put(2)]).unwrap();
    wal.sync().unwrap();
    fs.fail_next_syncs(1);
    append(&mut wal, &[put(3)]).unwrap();
    assert!(wal.sync().is_err());
    assert!(wal.is_failed());
    assert!(wal.sync().is_err() && append(&mut wal, &[put(4)]).is_err());
    drop(wal);
    let (_, _, got) = open(fs, &dir(), config(1 << 20)).unwrap();
    assert_eq!(got, vec![(1, put(1)), (2, put(2)), (3, put(3))]);
}
