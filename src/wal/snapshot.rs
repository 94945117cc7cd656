//! Snapshots: every live record at one point of the log, in one file, so the
//! segments before that point can be removed.
//!
//! # Files
//! `snap-<seq>.snap` in the log's directory, `seq` zero-padded to 20 digits as in
//! segment names: the snapshot was started when the log's last change was `seq`, and
//! recovery replays the log's entries after `seq` on top of it. While it is written
//! it is `snap-<seq>.snap.tmp`; only a finished, synced file is renamed to its name,
//! and the directory synced, before anything relies on it. Leftover `.tmp` files are
//! unfinished snapshots of a crashed run, removed at the next recovery. The newest
//! snapshot is the one used; [`SnapshotWriter::finish`] removes older ones.
//!
//! # Layout
//! All integers are big-endian.
//! ```text
//! header   magic [u8; 8] = "SWBSNAP\0" | version u32 = 1 | reserved u32 = 0 | seq u64   24 bytes
//! record   len u32 | crc u32 | body (len bytes)                                  8 + len
//! body     version u64 | key_len u16 | key (key_len bytes) | value (the rest)
//! trailer  len u32 = 0 | count u64 | crc u32                                      16 bytes
//! ```
//! * `len` counts the body: `10 <= len <= 10 +` [`MAX_KEY`] `+` [`MAX_VALUE`]; it is
//!   checked before anything is allocated. A `len` of 0 marks the trailer.
//! * `crc` is CRC-32C over the body; the trailer's over the 8 bytes of `count`, the
//!   number of records. A snapshot ends exactly after its trailer.
//! * A record's `version` is the record's version when it was read, which may be past
//!   `seq`: the snapshot is read while writes go on, so it is *fuzzy*. Replaying the
//!   log after `seq` in order fixes that up, since every key's last change after `seq`
//!   is in the log, and a key with none was stable while it was read. Nothing in a
//!   snapshot is newer than what the log held durably when it was put in place.
//!
//! A snapshot is written once and synced before it is named, so damage in one is not
//! a torn write but a failing disk: recovery refuses it with the file and offset, and
//! `--repair` does not cut it (the entries it stands for are no longer in the log).

use super::format::{MAX_KEY, MAX_VALUE};
use super::fs::{Fs, FsFile};
use super::recover::Reader;
use super::WalError;
use bytes::{BufMut, BytesMut};
use std::io;
use std::path::{Path, PathBuf};

/// First 8 bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SWBSNAP\0";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes of the snapshot header.
const HEADER_LEN: u64 = 24;
/// Bytes of a record body before its key: `version u64`, `key_len u16`.
const BODY_FIXED: usize = 10;
/// Largest body a valid record can have.
const MAX_RECORD_BODY: u64 = (BODY_FIXED + MAX_KEY + MAX_VALUE) as u64;
/// Bytes of the trailer.
const TRAILER_LEN: u64 = 16;
/// The writer hands its buffer to the file once it holds this much.
const FLUSH_AT: usize = 1 << 20;

/// `snap-<seq:020>.snap`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

/// The seq a snapshot's file name gives, or `None` for any other name (a `.tmp`
/// included).
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A snapshot written and put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its file.
    pub path: PathBuf,
    /// The log's last change when it was started.
    pub seq: u64,
    /// Records in it.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Writes a snapshot: [`create`](Self::create), [`add`](Self::add) every record,
/// then [`finish`](Self::finish). Dropped unfinished, it leaves a `.tmp` file that
/// the next recovery removes.
pub struct SnapshotWriter<'a, F: Fs> {
    fs: &'a F,
    dir: PathBuf,
    seq: u64,
    tmp: PathBuf,
    file: F::File,
    buf: BytesMut,
    records: u64,
    bytes: u64,
}

impl<F: Fs> std::fmt::Debug for SnapshotWriter<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("tmp", &self.tmp)
            .field("seq", &self.seq)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<'a, F: Fs> SnapshotWriter<'a, F> {
    /// Starts the snapshot of the log in `dir` as of change `seq`.
    pub fn create(fs: &'a F, dir: &Path, seq: u64) -> io::Result<Self> {
        let tmp = dir.join(format!("{}.tmp", snapshot_name(seq)));
        if fs.exists(&tmp)? {
            fs.remove_file(&tmp)?;
        }
        let file = fs.create_new(&tmp)?;
        let mut buf = BytesMut::with_capacity(FLUSH_AT + 4096);
        buf.put_slice(&SNAPSHOT_MAGIC);
        buf.put_u32(SNAPSHOT_VERSION);
        buf.put_u32(0);
        buf.put_u64(seq);
        Ok(SnapshotWriter {
            fs,
            dir: dir.to_path_buf(),
            seq,
            tmp,
            file,
            buf,
            records: 0,
            bytes: 0,
        })
    }

    /// Adds one record. A key over [`MAX_KEY`] or a value over [`MAX_VALUE`] bytes is
    /// refused (`InvalidInput`): the store holds none.
    pub fn add(&mut self, key: &[u8], version: u64, value: &[u8]) -> io::Result<()> {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "record too large for a snapshot: key {} bytes, value {} bytes",
                    key.len(),
                    value.len()
                ),
            ));
        }
        let len = BODY_FIXED + key.len() + value.len();
        self.buf.reserve(8 + len);
        self.buf.put_u32(len as u32);
        let crc_at = self.buf.len();
        self.buf.put_u32(0);
        let body_at = self.buf.len();
        self.buf.put_u64(version);
        self.buf.put_u16(key.len() as u16);
        self.buf.put_slice(key);
        self.buf.put_slice(value);
        let crc = crc32c::crc32c(&self.buf[body_at..]);
        self.buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
        self.records += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.append(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the trailer, syncs the file, renames it into place, syncs the
    /// directory, and then removes older snapshots. Once this returns, recovery
    /// uses this snapshot.
    pub fn finish(mut self) -> io::Result<SnapshotInfo> {
        self.buf.put_u32(0);
        self.buf.put_u64(self.records);
        self.buf
            .put_u32(crc32c::crc32c(&self.records.to_be_bytes()));
        self.flush()?;
        self.file.sync_data()?;
        let path = self.dir.join(snapshot_name(self.seq));
        self.fs.rename(&self.tmp, &path)?;
        self.fs.sync_dir(&self.dir)?;
        let mut removed = false;
        for (seq, name) in snapshots(self.fs, &self.dir)? {
            if seq < self.seq {
                self.fs.remove_file(&self.dir.join(name))?;
                removed = true;
            }
        }
        if removed {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(SnapshotInfo {
            path,
            seq: self.seq,
            records: self.records,
            bytes: self.bytes,
        })
    }
}

/// The snapshots in `dir`, as (seq, name), in no order.
fn snapshots<F: Fs>(fs: &F, dir: &Path) -> io::Result<Vec<(u64, String)>> {
    Ok(fs
        .list_dir(dir)?
        .into_iter()
        .filter_map(|name| {
            let name = name.into_string().ok()?;
            Some((parse_snapshot_name(&name)?, name))
        })
        .collect())
}

/// Loads the newest snapshot in `dir`, calling `load(key, version, value)` for each of
/// its records, and returns the seq it stands at; `Ok(None)` when there is none (or no
/// `dir`). Removes unfinished (`.tmp`) snapshots left by a crash. A damaged snapshot
/// is [`WalError::Damaged`]; the records passed to `load` before the damage was found
/// should then be discarded with the rest.
pub fn load_snapshot<F: Fs>(
    fs: &F,
    dir: &Path,
    mut load: impl FnMut(&[u8], u64, &[u8]),
) -> Result<Option<u64>, WalError> {
    if !fs.exists(dir)? {
        return Ok(None);
    }
    let mut removed = false;
    for name in fs.list_dir(dir)? {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("snap-") && name.ends_with(".snap.tmp") {
            fs.remove_file(&dir.join(name))?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir)?;
    }
    let Some((seq, name)) = snapshots(fs, dir)?.into_iter().max() else {
        return Ok(None);
    };
    let path = dir.join(&name);
    let damaged = |offset: u64, reason: String| WalError::Damaged {
        file: path.clone(),
        offset,
        reason,
    };
    let file = fs.open(&path)?;
    let mut reader = Reader::new(&file)?;
    let len = reader.len;
    if len < HEADER_LEN + TRAILER_LEN {
        return Err(damaged(0, format!("snapshot of {len} bytes is too short")));
    }
    let h = reader.get(0, HEADER_LEN as usize)?;
    if h[..8] != SNAPSHOT_MAGIC {
        return Err(damaged(0, "not a snapshot (wrong magic)".into()));
    }
    let version = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(damaged(
            0,
            format!("snapshot of format version {version}; this build reads version 1"),
        ));
    }
    let header_seq = u64::from_be_bytes(h[16..24].try_into().unwrap_or([0; 8]));
    if h[12..16] != [0; 4] || header_seq != seq {
        return Err(damaged(
            0,
            format!("header says change {header_seq}, the name {seq}, or reserved bits set"),
        ));
    }
    let mut off = HEADER_LEN;
    let mut count = 0u64;
    loop {
        if len - off < 8 {
            return Err(damaged(off, "cut short before its trailer".into()));
        }
        let b = reader.get(off, 8)?;
        let body_len = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let crc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if body_len == 0 {
            break;
        }
        if !(BODY_FIXED as u64..=MAX_RECORD_BODY).contains(&body_len) {
            return Err(damaged(
                off,
                format!("record length {body_len} is out of bounds"),
            ));
        }
        if body_len > len - off - 8 {
            return Err(damaged(off, "record cut short".into()));
        }
        let body = &reader.get(off, 8 + body_len as usize)?[8..];
        if crc32c::crc32c(body) != crc {
            return Err(damaged(off, "record checksum mismatch".into()));
        }
        let version = u64::from_be_bytes(body[..8].try_into().unwrap_or([0; 8]));
        let key_len = usize::from(u16::from_be_bytes([body[8], body[9]]));
        if key_len > body.len() - BODY_FIXED {
            return Err(damaged(off, "key longer than its record".into()));
        }
        let (key, value) = body[BODY_FIXED..].split_at(key_len);
        load(key, version, value);
        count += 1;
        off += 8 + body_len;
    }
    if len - off != TRAILER_LEN {
        return Err(damaged(
            off,
            format!("trailer of {} bytes, not {TRAILER_LEN}", len - off),
        ));
    }
    let t = reader.get(off, TRAILER_LEN as usize)?;
    let stated = u64::from_be_bytes(t[4..12].try_into().unwrap_or([0; 8]));
    let crc = u32::from_be_bytes(t[12..16].try_into().unwrap_or([0; 4]));
    if crc32c::crc32c(&t[4..12]) != crc || stated != count {
        return Err(damaged(
            off,
            format!("trailer counts {stated} records, {count} were read"),
        ));
    }
    Ok(Some(seq))
}
