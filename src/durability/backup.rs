//! Online backup: a consistent copy of a data directory, taken while a server runs on
//! it (`switchboard --data-dir DIR --backup-to DEST`).
//!
//! No cooperation from the server is needed. Every acknowledged write is already in
//! the log, synced, when the backup starts; copying the newest snapshot and then every
//! log segment, in order, therefore captures all of them. The server may be appending
//! meanwhile: the copy of the last segment may end inside an entry, which recovery
//! treats as the torn tail it is (it was not synced when read, so it was not
//! acknowledged then). A compaction may remove a segment between the listing and its
//! copy: then the copy starts again from a fresh listing. Finally the copy is opened
//! as a server would open it, which checks every entry and cuts a torn tail, and every
//! file and the directory are synced.

use crate::wal::{self, Fs, RealFs, WalConfig};
use std::io;
use std::path::{Path, PathBuf};

/// How many times a copy starts again when a compaction removed a file under it.
const ATTEMPTS: usize = 10;

/// What a backup holds.
#[derive(Debug)]
pub struct BackupReport {
    /// Where it is.
    pub dest: PathBuf,
    /// The last change sequence it holds.
    pub last_seq: u64,
    /// Records in its snapshot, if it has one.
    pub snapshot_records: u64,
    /// Log entries after the snapshot.
    pub entries: u64,
    /// Files copied.
    pub files: usize,
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists and is not an empty directory.
    #[error("{0} exists and is not empty: give a new directory")]
    NotEmpty(PathBuf),
    /// A file kept vanishing (compactions faster than the copy).
    #[error("the data directory kept changing under the copy; try again")]
    Unstable,
    /// The copy could not be read back as a valid data directory.
    #[error("the copy is not valid: {0}")]
    Invalid(wal::WalError),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Copies the data directory `dir` to `dest` (a new or empty directory).
///
/// # Errors
/// See [`BackupError`].
pub fn backup(dir: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { path, source }
    };
    if dest.exists() {
        let empty = std::fs::read_dir(dest).map_err(io(dest))?.next().is_none();
        if !empty {
            return Err(BackupError::NotEmpty(dest.to_path_buf()));
        }
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let mut files = None;
    for _ in 0..ATTEMPTS {
        match copy_once(dir, dest) {
            Ok(n) => {
                files = Some(n);
                break;
            }
            // A compaction removed a file: clear the copy and list again.
            Err((_, e)) if e.kind() == io::ErrorKind::NotFound => {
                for entry in std::fs::read_dir(dest).map_err(io(dest))? {
                    let path = entry.map_err(io(dest))?.path();
                    std::fs::remove_file(&path).map_err(io(&path))?;
                }
            }
            Err((path, e)) => return Err(io(&path)(e)),
        }
    }
    let files = files.ok_or(BackupError::Unstable)?;
    // Read the copy back as a server would: checks every entry, cuts a torn tail.
    let mut snapshot_records = 0;
    let after = wal::load_snapshot(&RealFs, dest, |_, _, _| snapshot_records += 1)
        .map_err(BackupError::Invalid)?
        .unwrap_or(0);
    let mut entries = 0;
    let (log, report) = wal::Wal::open_after(RealFs, dest, WalConfig::default(), after, |_, _| {
        entries += 1
    })
    .map_err(BackupError::Invalid)?;
    drop(log);
    RealFs.sync_dir(dest).map_err(io(dest))?;
    Ok(BackupReport {
        dest: dest.to_path_buf(),
        last_seq: report.last_seq.max(after),
        snapshot_records,
        entries,
        files,
    })
}

/// One pass: the newest snapshot and every segment, each copied and synced. A file
/// that vanished mid-pass fails it with `NotFound`.
///
/// The history file is not copied: a server started on the copy begins a new
/// history. The copy ends where the original went on, and if both went on under one
/// id, a client could resume on one with a sequence the other gave a different
/// change.
fn copy_once(dir: &Path, dest: &Path) -> Result<usize, (PathBuf, io::Error)> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| (dir.to_path_buf(), e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let snapshot = names
        .iter()
        .filter(|n| n.starts_with("snap-") && n.ends_with(".snap"))
        .max()
        .cloned();
    let mut segments: Vec<&String> = names
        .iter()
        .filter(|n| wal::parse_segment_name(n).is_some())
        .collect();
    segments.sort();
    let mut copied = 0;
    // The snapshot first: segments it depends on are removed only after it exists.
    for name in snapshot.iter().chain(segments) {
        copy_file(&dir.join(name), &dest.join(name))?;
        copied += 1;
    }
    Ok(copied)
}

fn copy_file(from: &Path, to: &Path) -> Result<(), (PathBuf, io::Error)> {
    std::fs::copy(from, to).map_err(|e| (from.to_path_buf(), e))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| (to.to_path_buf(), e))
}
