//! Recovery: reads every segment in order, replays each valid entry, and at the first
//! damage decides between cutting a torn tail, refusing, and (with repair) moving the
//! rest aside. See the parent module for the rules.

use super::format::{
    check_header, decode_body, entry_crc, header, parse_segment_name, segment_name, EntryHeader,
    HeaderCheck, Record, ENTRY_HEADER_LEN, HEADER_LEN,
};
use super::fs::{Fs, FsFile};
use super::{RecoveryReport, WalConfig, WalError};
use std::io;
use std::path::{Path, PathBuf};

/// Bytes read from a segment at a time.
const CHUNK: usize = 1 << 20;

/// Most body bytes the search for valid entries after damage checksums in one
/// recovery. Headers are filtered first (length bound, seq, op), so garbage rarely
/// gets this far; past the budget the damage is reported rather than cut.
const SCAN_BUDGET: u64 = 1 << 30;

/// Name of the directory, inside the log's, where repair moves what it does not keep.
pub(crate) const DAMAGED_DIR: &str = "damaged";

/// What the writer continues from.
pub(crate) struct Recovered<File> {
    pub(crate) file: File,
    pub(crate) file_first_seq: u64,
    pub(crate) file_len: u64,
    pub(crate) last_seq: u64,
    pub(crate) bytes: u64,
    pub(crate) report: RecoveryReport,
}

struct Segment {
    first_seq: u64,
    name: String,
    path: PathBuf,
}

/// The first thing wrong in a segment.
struct Damage {
    /// Where the valid prefix ends (0: nothing of the segment is kept).
    offset: u64,
    reason: String,
    /// Whether it may be a torn tail; a header of another format version is not.
    tornable: bool,
    /// The seq the entry at `offset` should have had.
    next_seq: u64,
}

/// Reads a file through a window, so memory stays bounded by one chunk or one entry
/// whatever the file's size.
pub(crate) struct Reader<'f, F> {
    file: &'f F,
    pub(crate) len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'f, F: FsFile> Reader<'f, F> {
    pub(crate) fn new(file: &'f F) -> io::Result<Self> {
        Ok(Reader {
            file,
            len: file.size()?,
            start: 0,
            buf: Vec::new(),
        })
    }

    /// `n` bytes at `off`; the caller has checked they are within the file, and `n`
    /// against the entry bound.
    pub(crate) fn get(&mut self, off: u64, n: usize) -> io::Result<&[u8]> {
        let end = off + n as u64;
        if off < self.start || end > self.start + self.buf.len() as u64 {
            let want = (n.max(CHUNK) as u64).min(self.len - off) as usize;
            self.buf.clear();
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, off)?;
            self.start = off;
        }
        let at = (off - self.start) as usize;
        Ok(&self.buf[at..at + n])
    }
}

pub(crate) fn recover<F: Fs>(
    fs: &F,
    dir: &Path,
    config: &WalConfig,
    after: u64,
    replay: &mut dyn FnMut(u64, Record<'_>),
) -> Result<Recovered<F::File>, WalError> {
    create_dir_durably(fs, dir)?;
    let mut segments: Vec<Segment> = fs
        .list_dir(dir)?
        .into_iter()
        .filter_map(|name| {
            let name = name.into_string().ok()?;
            let first_seq = parse_segment_name(&name)?;
            Some(Segment {
                first_seq,
                path: dir.join(&name),
                name,
            })
        })
        .collect();
    segments.sort_by_key(|s| s.first_seq);
    let after_snapshot = after.checked_add(1).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "snapshot at the largest seq")
    })?;
    // Segments wholly covered by the snapshot: a crash came between putting it in
    // place and removing them.
    let covered = segments
        .windows(2)
        .take_while(|w| w[1].first_seq <= after_snapshot)
        .count();
    for seg in segments.drain(..covered) {
        fs.remove_file(&seg.path)?;
    }
    if covered > 0 {
        fs.sync_dir(dir)?;
    }
    if let Some(first) = segments.first() {
        if first.first_seq > after_snapshot {
            return Err(WalError::Damaged {
                file: first.path.clone(),
                offset: 0,
                reason: format!(
                    "the log starts at change {} but the snapshot ends at {after}: the \
                     changes between are missing",
                    first.first_seq
                ),
            });
        }
    }

    let mut report = RecoveryReport::default();
    // The seq the next entry must have; the first segment's name sets it.
    let mut next_seq = segments
        .first()
        .map_or(after_snapshot, |s| s.first_seq.max(1));
    // Segments kept whole, with their lengths.
    let mut kept: Vec<(usize, u64)> = Vec::new();
    let mut damage = None;
    for (i, seg) in segments.iter().enumerate() {
        let mut file = fs.open(&seg.path)?;
        let mut reader = Reader::new(&file)?;
        let len = reader.len;
        match read_segment(
            &mut reader,
            seg,
            next_seq,
            after,
            replay,
            &mut report.entries,
        )? {
            Ok(next) => {
                next_seq = next;
                // What is replayed is made durable, in case the last run wrote it
                // without syncing: nothing derived from it may be lost later.
                file.sync_data()?;
                kept.push((i, len));
            }
            Err(d) => {
                damage = Some((i, d));
                break;
            }
        }
    }

    if let Some((i, d)) = damage {
        next_seq = d.next_seq;
        let later = valid_data_after(fs, &segments, i, &d)?;
        if d.tornable && later.is_none() {
            cut_torn_tail(fs, dir, &segments, i, &d, &mut kept, &mut report)?;
        } else if config.repair {
            repair(fs, dir, &segments, i, &d, &mut kept, &mut report)?;
        } else {
            let seg = &segments[i];
            let reason = match later {
                Some(at) => format!("{}; valid entries follow ({at})", d.reason),
                None => d.reason,
            };
            return Err(WalError::Damaged {
                file: seg.path.clone(),
                offset: d.offset,
                reason,
            });
        }
    }

    let last_seq = next_seq - 1;
    if last_seq < after && !kept.is_empty() {
        let (i, len) = kept[kept.len() - 1];
        return Err(WalError::Damaged {
            file: segments[i].path.clone(),
            offset: len,
            reason: format!(
                "the log ends at change {last_seq} but the snapshot is at {after}: the disk \
                 lost synced data"
            ),
        });
    }
    let (next_seq, last_seq) = if kept.is_empty() {
        (next_seq.max(after_snapshot), last_seq.max(after))
    } else {
        (next_seq, last_seq)
    };
    let mut bytes: u64 = kept.iter().map(|&(_, len)| len).sum();
    report.segments = kept.len();
    let (file, file_first_seq, file_len) = match kept.last() {
        Some(&(i, len)) => (fs.open(&segments[i].path)?, segments[i].first_seq, len),
        None => {
            let path = dir.join(segment_name(next_seq));
            let mut file = fs.create_new(&path)?;
            // Best effort: a disk too full to reserve a segment still starts, and
            // refuses writes when they do not fit.
            let _ = file.preallocate(config.segment_bytes);
            file.append(&header())?;
            file.sync_data()?;
            bytes += HEADER_LEN;
            report.segments += 1;
            (file, next_seq, HEADER_LEN)
        }
    };
    // The segments' names too: a run that crashed after starting a segment, before
    // its sync, left one whose entries were replayed but whose name is not durable.
    fs.sync_dir(dir)?;
    report.last_seq = last_seq;
    Ok(Recovered {
        file,
        file_first_seq,
        file_len,
        last_seq,
        bytes,
        report,
    })
}

/// Creates `dir` if absent, with any missing parents, and syncs the parent of each
/// one created, and of `dir` in any case: a directory's own name must survive a power
/// cut too, and a run that crashed may have created it without syncing.
fn create_dir_durably<F: Fs>(fs: &F, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !fs.exists(p)? {
        missing.push(p);
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    if missing.is_empty() {
        missing.push(dir);
    } else {
        fs.create_dir_all(dir)?;
    }
    for created in missing.iter().rev() {
        match created.parent() {
            Some(p) if p.as_os_str().is_empty() => fs.sync_dir(Path::new("."))?,
            Some(p) => fs.sync_dir(p)?,
            None => {}
        }
    }
    Ok(())
}

/// Replays a segment's entries from `next_seq` on; `Ok(next)` is the seq after its
/// last entry, `Err` the first damage.
fn read_segment<F: FsFile>(
    reader: &mut Reader<'_, F>,
    seg: &Segment,
    mut next_seq: u64,
    after: u64,
    replay: &mut dyn FnMut(u64, Record<'_>),
    entries: &mut u64,
) -> io::Result<Result<u64, Damage>> {
    let damage = |offset, reason: String, tornable, next_seq| {
        Ok(Err(Damage {
            offset,
            reason,
            tornable,
            next_seq,
        }))
    };
    if seg.first_seq != next_seq {
        let reason = format!(
            "segment's name gives first seq {} but the log continues at {next_seq}",
            seg.first_seq
        );
        return damage(0, reason, true, next_seq);
    }
    let len = reader.len;
    let head = reader.get(0, len.min(HEADER_LEN) as usize)?;
    match check_header(head) {
        HeaderCheck::Ok => {}
        HeaderCheck::Bad(reason) => return damage(0, reason, true, next_seq),
        HeaderCheck::OtherVersion(v) => {
            let reason = format!("segment of format version {v}; this build reads version 1");
            return damage(0, reason, false, next_seq);
        }
    }
    let mut off = HEADER_LEN;
    loop {
        let left = len - off;
        if left == 0 {
            return Ok(Ok(next_seq));
        }
        if left < ENTRY_HEADER_LEN as u64 {
            let reason = format!("entry header cut short: {left} bytes");
            return damage(off, reason, true, next_seq);
        }
        let h = EntryHeader::parse(reader.get(off, ENTRY_HEADER_LEN)?);
        if !h.len_ok() {
            let reason = format!("entry length {} is out of bounds", h.len);
            return damage(off, reason, true, next_seq);
        }
        let size = ENTRY_HEADER_LEN as u64 + u64::from(h.len);
        if size > left {
            let reason = format!("entry of {size} bytes cut short at {left}");
            return damage(off, reason, true, next_seq);
        }
        let body = &reader.get(off, size as usize)?[ENTRY_HEADER_LEN..];
        if entry_crc(h.seq, body) != h.crc {
            return damage(off, "checksum mismatch".into(), true, next_seq);
        }
        if h.seq != next_seq {
            let reason = format!("entry has seq {} where {next_seq} was expected", h.seq);
            return damage(off, reason, true, next_seq);
        }
        if h.seq == u64::MAX {
            // Reserved so the seq after every entry exists; only a forged name gets here.
            return damage(off, "seq u64::MAX is reserved".into(), false, next_seq);
        }
        match decode_body(body) {
            // Entries the snapshot holds are checked, not replayed.
            Ok(_) if h.seq <= after => {}
            Ok(record) => {
                replay(h.seq, record);
                *entries += 1;
            }
            Err(reason) => return damage(off, reason, true, next_seq),
        }
        next_seq += 1;
        off += size;
    }
}

/// Where, after the damage, a valid entry begins (file and offset), if anywhere:
/// one with a bounded length and a correct checksum (and, in the damaged segment, a
/// seq at or past the one the damage took the place of: an entry wiped whole leaves
/// the next one with a higher seq, so it need not be the next one). A segment of
/// another format version counts, as it cannot be read to rule it out.
fn valid_data_after<F: Fs>(
    fs: &F,
    segments: &[Segment],
    i: usize,
    d: &Damage,
) -> io::Result<Option<String>> {
    let mut budget = SCAN_BUDGET;
    for (j, seg) in segments.iter().enumerate().skip(i) {
        let file = fs.open(&seg.path)?;
        let mut reader = Reader::new(&file)?;
        let from = if j == i { d.offset + 1 } else { 0 };
        // Past a damaged entry, an entry with a lower seq can only be a copy inside a
        // value; in any other place every valid entry is data to account for.
        let min_seq = if j == i && d.offset >= HEADER_LEN {
            d.next_seq
        } else {
            0
        };
        if j > i && reader.len >= HEADER_LEN {
            if let HeaderCheck::OtherVersion(v) = check_header(reader.get(0, 16)?) {
                return Ok(Some(format!("{} is of format version {v}", seg.name)));
            }
        }
        match find_entry(&mut reader, from, min_seq, &mut budget)? {
            Scan::Nothing => {}
            Scan::Found(at) => return Ok(Some(format!("{} at byte {at}", seg.name))),
            Scan::OverBudget(at) => {
                return Ok(Some(format!(
                    "too much to search to rule it out, from {} byte {at}",
                    seg.name
                )))
            }
        }
    }
    Ok(None)
}

enum Scan {
    Nothing,
    Found(u64),
    OverBudget(u64),
}

fn find_entry<F: FsFile>(
    reader: &mut Reader<'_, F>,
    from: u64,
    min_seq: u64,
    budget: &mut u64,
) -> io::Result<Scan> {
    let len = reader.len;
    let mut p = from;
    while p + ENTRY_HEADER_LEN as u64 + 3 <= len {
        let b = reader.get(p, ENTRY_HEADER_LEN + 3)?;
        let h = EntryHeader::parse(b);
        let (op, key_len) = (b[16], u32::from(u16::from_be_bytes([b[17], b[18]])));
        let size = ENTRY_HEADER_LEN as u64 + u64::from(h.len);
        if h.len_ok()
            && h.seq >= min_seq
            && (1..=3).contains(&op)
            && key_len + 3 <= h.len
            && size <= len - p
        {
            if *budget < u64::from(h.len) {
                return Ok(Scan::OverBudget(p));
            }
            *budget -= u64::from(h.len);
            let body = &reader.get(p, size as usize)?[ENTRY_HEADER_LEN..];
            if entry_crc(h.seq, body) == h.crc {
                return Ok(Scan::Found(p));
            }
        }
        p += 1;
    }
    Ok(Scan::Nothing)
}

/// Nothing valid follows the damage: cuts segment `i` at it (or removes it, if its
/// header is what is damaged) and removes the segments after it, which hold no valid
/// entry.
fn cut_torn_tail<F: Fs>(
    fs: &F,
    dir: &Path,
    segments: &[Segment],
    i: usize,
    d: &Damage,
    kept: &mut Vec<(usize, u64)>,
    report: &mut RecoveryReport,
) -> io::Result<()> {
    let seg = &segments[i];
    let mut file = fs.open(&seg.path)?;
    let len = file.size()?;
    let mut removed = false;
    if d.offset >= HEADER_LEN {
        file.set_len(d.offset)?;
        file.sync_data()?;
        kept.push((i, d.offset));
        report.torn_bytes += len - d.offset;
    } else {
        fs.remove_file(&seg.path)?;
        removed = true;
        report.torn_bytes += len;
    }
    for seg in &segments[i + 1..] {
        report.torn_bytes += fs.open(&seg.path)?.size()?;
        fs.remove_file(&seg.path)?;
        removed = true;
    }
    if removed {
        fs.sync_dir(dir)?;
    }
    report.torn_at = Some((seg.path.clone(), d.offset));
    Ok(())
}

/// Keeps the entries before the damage and moves the rest of the log into
/// `DIR/damaged/`: the rest of segment `i` copied (then cut off), or the whole file
/// moved if nothing of it is kept, and every later segment moved. Everything moved is
/// synced before anything is cut, so a crash part way through loses nothing.
fn repair<F: Fs>(
    fs: &F,
    dir: &Path,
    segments: &[Segment],
    i: usize,
    d: &Damage,
    kept: &mut Vec<(usize, u64)>,
    report: &mut RecoveryReport,
) -> io::Result<()> {
    let aside = dir.join(DAMAGED_DIR);
    fs.create_dir_all(&aside)?;
    fs.sync_dir(dir)?;
    let seg = &segments[i];
    let mut moved = Vec::new();
    let tail_name = format!("{}.from-{}", seg.name, d.offset);
    let mut file = fs.open(&seg.path)?;
    let len = file.size()?;
    if d.offset >= HEADER_LEN {
        let to = free_name(fs, &aside, &tail_name)?;
        let mut copy = fs.create_new(&to)?;
        let mut buf = vec![0u8; CHUNK];
        let mut off = d.offset;
        while off < len {
            let n = ((len - off) as usize).min(CHUNK);
            file.read_exact_at(&mut buf[..n], off)?;
            copy.append(&buf[..n])?;
            off += n as u64;
        }
        copy.sync_data()?;
        moved.push(to);
    } else {
        let to = free_name(fs, &aside, &tail_name)?;
        fs.rename(&seg.path, &to)?;
        moved.push(to);
    }
    for later in &segments[i + 1..] {
        let to = free_name(fs, &aside, &later.name)?;
        fs.rename(&later.path, &to)?;
        moved.push(to);
    }
    fs.sync_dir(&aside)?;
    fs.sync_dir(dir)?;
    if d.offset >= HEADER_LEN {
        file.set_len(d.offset)?;
        file.sync_data()?;
        kept.push((i, d.offset));
    }
    let moved: Vec<String> = moved.iter().map(|p| p.display().to_string()).collect();
    report.repaired = Some(format!(
        "{} damaged at byte {} ({}): kept the entries before it, moved {} bytes of it{} to {}",
        seg.path.display(),
        d.offset,
        d.reason,
        len - d.offset,
        match segments.len() - i - 1 {
            0 => String::new(),
            n => format!(" and the {n} later segment(s)"),
        },
        moved.join(", ")
    ));
    Ok(())
}

/// `name` in `dir`, or `name.1`, `name.2`, ... if taken (an earlier repair's).
fn free_name<F: Fs>(fs: &F, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let mut path = dir.join(name);
    let mut n = 0u32;
    while fs.exists(&path)? {
        n += 1;
        if n > 10_000 {
            return Err(io::Error::other(format!(
                "{}: no free name for {name}",
                dir.display()
            )));
        }
        path = dir.join(format!("{name}.{n}"));
    }
    Ok(path)
}
