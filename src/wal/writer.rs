//! `Wal`: the writer. Appends encoded entries to the current segment, starts a new
//! segment when it is full, and makes what was written durable on `sync`.

use super::format::{parse_segment_name, segment_name, EntryHeader, ENTRY_HEADER_LEN, HEADER_LEN};
use super::fs::{Fs, FsFile, RealFs};
use super::recover::recover;
use super::{format::header, Record, RecoveryReport, WalConfig, WalError};
use std::io;
use std::path::{Path, PathBuf};

/// A write-ahead log opened for appending; see the module documentation.
pub struct Wal<F: Fs = RealFs> {
    fs: F,
    dir: PathBuf,
    config: WalConfig,
    /// The segment being appended to.
    file: F::File,
    file_first_seq: u64,
    file_len: u64,
    last_seq: u64,
    bytes: u64,
    /// Whether the current segment was written since the last sync.
    dirty: bool,
    /// Whether a segment was created since the directory was last synced.
    dir_dirty: bool,
    /// Set when a sync failed or a failed write could not be undone: the log's
    /// state on disk is unknown, so every later call fails.
    failed: Option<String>,
}

impl<F: Fs> std::fmt::Debug for Wal<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("file_first_seq", &self.file_first_seq)
            .field("file_len", &self.file_len)
            .field("last_seq", &self.last_seq)
            .field("bytes", &self.bytes)
            .field("dirty", &self.dirty)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<F: Fs> Wal<F> {
    /// Recovers DIR (creating it if absent): calls `replay(seq, record)` for every
    /// valid entry in order, truncates a torn tail, refuses damage followed by valid
    /// data unless `config.repair`; returns the writer positioned after the last
    /// entry.
    ///
    /// Everything replayed is synced before this returns, so state rebuilt from it
    /// cannot be lost later. On an error, the entries replayed so far were valid,
    /// but the log was not opened.
    pub fn open(
        fs: F,
        dir: &Path,
        config: WalConfig,
        replay: impl FnMut(u64, Record<'_>),
    ) -> Result<(Wal<F>, RecoveryReport), WalError> {
        Self::open_after(fs, dir, config, 0, replay)
    }

    /// [`open`](Self::open) for a log whose changes up to `after` are in a snapshot
    /// (see `load_snapshot`): entries up to `after` are checked but not replayed,
    /// segments wholly at or before it are removed, and a log with no entries after
    /// it goes on at `after + 1`. A log that starts after `after + 1`, or ends before
    /// `after`, is missing changes and is refused as damaged.
    pub fn open_after(
        fs: F,
        dir: &Path,
        config: WalConfig,
        after: u64,
        mut replay: impl FnMut(u64, Record<'_>),
    ) -> Result<(Wal<F>, RecoveryReport), WalError> {
        let r = recover(&fs, dir, &config, after, &mut replay)?;
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            config,
            file: r.file,
            file_first_seq: r.file_first_seq,
            file_len: r.file_len,
            last_seq: r.last_seq,
            bytes: r.bytes,
            dirty: false,
            dir_dirty: false,
            failed: None,
        };
        Ok((wal, r.report))
    }

    /// Writes whole encoded entries (from `encode_entry`) whose last seq is
    /// `last_seq`; rotates to a new segment first when the current one is past
    /// `segment_bytes`. Does not sync.
    ///
    /// `encoded` must hold entries numbered on from [`last_seq`](Self::last_seq) + 1
    /// to `last_seq`: anything else is refused (`InvalidInput`) before a byte is
    /// written, as it would make the log unreadable. If writing fails part way, the
    /// segment is cut back to where it was and the error returned: none of
    /// `encoded` was logged, and it may be written again. If it cannot be cut back
    /// the log is failed (see [`is_failed`](Self::is_failed)).
    pub fn write(&mut self, encoded: &[u8], last_seq: u64) -> io::Result<()> {
        self.check_failed()?;
        check_entries(encoded, self.last_seq, last_seq)?;
        if encoded.is_empty() {
            return Ok(());
        }
        if self.file_len >= self.config.segment_bytes && self.file_len > HEADER_LEN {
            self.rotate()?;
        }
        let before = self.file_len;
        self.dirty = true;
        if let Err(e) = self.file.append(encoded) {
            if let Err(e2) = self.file.set_len(before) {
                self.failed = Some(format!(
                    "a write failed ({e}) and cutting it back failed too ({e2})"
                ));
            }
            return Err(e);
        }
        let n = encoded.len() as u64;
        self.file_len += n;
        self.bytes += n;
        self.last_seq = last_seq;
        Ok(())
    }

    /// Starts the segment whose first entry is `last_seq + 1`: created with its
    /// header here, made durable (file, then directory) by the next `sync`.
    fn rotate(&mut self) -> io::Result<()> {
        let first_seq = self.last_seq.checked_add(1).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seq reached its largest value")
        })?;
        // A segment is whole on disk before the next one exists, whatever the sync
        // policy: otherwise a power cut could keep a later segment's entries and tear
        // an earlier one, which recovery must treat as damage, not as a torn tail.
        if self.dirty {
            self.sync()?;
        }
        let path = self.dir.join(segment_name(first_seq));
        let mut file = self.fs.create_new(&path)?;
        // Reserved up front so the disk fills at a rotation, where nothing has been
        // half written, rather than in the middle of a batch.
        if let Err(e) = file
            .preallocate(self.config.segment_bytes)
            .and_then(|()| file.append(&header()))
        {
            // Left behind, the file would make every later rotation fail on its name.
            if let Err(e2) = self.fs.remove_file(&path) {
                self.failed = Some(format!(
                    "starting {} failed ({e}) and removing it failed too ({e2})",
                    path.display()
                ));
            }
            return Err(e);
        }
        self.file = file;
        self.file_first_seq = first_seq;
        self.file_len = HEADER_LEN;
        self.bytes += HEADER_LEN;
        self.dirty = true;
        self.dir_dirty = true;
        Ok(())
    }

    /// `fdatasync` of what was written (and, after a rotation, of the new segment
    /// and the directory).
    ///
    /// A failed sync fails the log for good: after a failed `fsync` the kernel may
    /// have dropped the unwritten pages and marked them clean, so a retry could
    /// report success for data that is gone. The caller should stop acknowledging
    /// writes and restart, which recovers what did reach the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.check_failed()?;
        let result = self.sync_inner();
        if let Err(e) = &result {
            self.failed = Some(format!("a sync failed: {e}"));
        }
        result
    }

    fn sync_inner(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        if self.dir_dirty {
            self.fs.sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some(why) => Err(io::Error::other(format!(
                "write-ahead log failed earlier and needs a restart: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Removes the segments whose entries are all at or before `seq`, which a
    /// snapshot at `seq` or later holds, and syncs the directory; never the segment
    /// being written. Returns the bytes removed.
    ///
    /// Call it only once that snapshot is in place and the log is synced past `seq`.
    pub fn remove_through(&mut self, seq: u64) -> io::Result<u64> {
        self.check_failed()?;
        let mut firsts: Vec<u64> = self
            .fs
            .list_dir(&self.dir)?
            .into_iter()
            .filter_map(|n| parse_segment_name(n.to_str()?))
            .filter(|&first| first < self.file_first_seq)
            .collect();
        firsts.sort_unstable();
        // A segment ends where the next begins; the current one bounds the last.
        let mut removed = 0;
        for (i, &first) in firsts.iter().enumerate() {
            let next = firsts.get(i + 1).copied().unwrap_or(self.file_first_seq);
            if next > seq.saturating_add(1) {
                break;
            }
            let path = self.dir.join(segment_name(first));
            removed += self.fs.open(&path)?.size()?;
            self.fs.remove_file(&path)?;
        }
        if removed > 0 {
            self.fs.sync_dir(&self.dir)?;
            self.bytes = self.bytes.saturating_sub(removed);
        }
        Ok(removed)
    }

    /// The last seq written (not necessarily synced).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Total bytes of all segments.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether a failed sync, or a failed write that could not be undone, has made
    /// every further `write` and `sync` fail.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Checks that `encoded` is whole entries numbered `after + 1` to `last`, walking
/// only their headers (the checksums are the encoder's).
fn check_entries(encoded: &[u8], after: u64, last: u64) -> io::Result<()> {
    let bad = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    let mut rest = encoded;
    let mut seq = after;
    while !rest.is_empty() {
        if rest.len() < ENTRY_HEADER_LEN {
            return bad(format!("{} bytes left over after entry {seq}", rest.len()));
        }
        let h = EntryHeader::parse(rest);
        if h.seq != seq.wrapping_add(1) || h.seq == u64::MAX {
            return bad(format!(
                "entry {} where {} was next",
                h.seq,
                seq.wrapping_add(1)
            ));
        }
        let size = ENTRY_HEADER_LEN + h.len as usize;
        if !h.len_ok() || size > rest.len() {
            return bad(format!("entry {} has a bad length {}", h.seq, h.len));
        }
        seq = h.seq;
        rest = &rest[size..];
    }
    if seq != last {
        return bad(format!("entries end at {seq}, not at the given {last}"));
    }
    Ok(())
}
