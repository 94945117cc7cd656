//! The write-ahead log: every committed change, appended to files in sequence order,
//! so a restart can rebuild the store and a power cut loses nothing that was synced.
//!
//! This module is the log alone: the file format, the writer ([`Wal`]), recovery
//! ([`Wal::open`]), the file-system operations it needs ([`Fs`], with [`RealFs`]), and
//! a simulated disk that loses unsynced data on a power cut ([`faulty::FaultyFs`]).
//!
//! # Files
//! A log is a directory DIR holding segment files named `wal-<first_seq>.log`, with
//! `first_seq` in decimal, zero-padded to 20 digits (`wal-00000000000000000001.log`):
//! the seq of the segment's first entry or, for a segment with no entries, the seq
//! its first entry will have. Other names in DIR are ignored; `DIR/damaged/` is where
//! repair moves what it does not keep.
//!
//! Segments are read in order of `first_seq`. The writer appends to the last one and
//! starts a new one (named after the next seq) when the current one holds
//! [`WalConfig::segment_bytes`] or more.
//!
//! # Segment layout
//! All integers are big-endian.
//! ```text
//! header   magic [u8; 8] = "SWBWAL\0\0" | version u32 = 1 | reserved u32 = 0     16 bytes
//! entry    len u32 | crc u32 | seq u64 | body (len bytes)                      16 + len
//! body     op u8 | key_len u16 | key (key_len bytes) | value (the rest)
//! ```
//! then entries back to back up to the end of the file.
//!
//! * `len` counts the body only. A valid body has `3 <= len <=`
//!   [`MAX_BODY`] (3 + [`MAX_KEY`] + [`MAX_VALUE`], that is 3 + 65,535 + 2^30 bytes);
//!   a `len` outside that is damage, found before anything is allocated or read.
//! * `crc` is CRC-32C (Castagnoli, as in iSCSI and ext4; `crc32c("123456789") =
//!   0xE3069283`) over the 8 bytes of `seq` followed by the body. Covering `seq`
//!   means an entry read at the wrong place in the sequence fails its check.
//! * `seq` is one more than the previous entry's, across segments; the first
//!   segment's first entry has the seq its name gives (1 for a new log). Seq 0 and
//!   `u64::MAX` are never used.
//! * `op`: 1 = put (the key now holds the value), 2 = delete (value empty), 3 = hole
//!   (the seq was taken by a write that failed, nothing changed: key and value
//!   empty). Any other op is damage.
//!
//! # Durability
//! [`Wal::write`] appends without syncing, except that a segment is synced before
//! the next one is started, so only the last segment can hold unsynced entries.
//! [`Wal::sync`] makes everything written so far durable: the current segment
//! (`fdatasync`), then, if a segment was created since, the directory. A new segment
//! is created with its header, and its file and its directory entry are synced before
//! any entry in it is acknowledged, that is, within the next `sync`. Its space
//! ([`WalConfig::segment_bytes`]) is reserved when it is created, without changing
//! its length (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so a disk fills when a
//! segment is started, not part way through a batch. A failed `sync` fails
//! the log for good ([`Wal::is_failed`]).
//!
//! # Recovery
//! [`Wal::open`] reads every segment in order and checks each entry: `len` in bounds,
//! the entry whole, its `crc`, and its `seq` the one expected. Each valid entry is
//! replayed. The first check that fails is *damage* at that file and offset; a header
//! that is short, has the wrong magic or a reserved field set, and a segment whose
//! name does not continue the sequence, are damage at offset 0 of that segment. Then
//! recovery searches everything after the damage for a *valid entry*: an offset where
//! a whole entry with a `len` in bounds and a correct `crc` begins (in the damaged
//! segment, also with a seq at least the expected one). This search runs only on
//! damage, and its checksumming is bounded (1 GiB); past that, it counts as found.
//!
//! * **Torn tail**: nothing valid after the damage. This is what a crash leaves
//!   while a write was under way: a partial entry, zeros, garbage, or a segment
//!   created just before and still empty. The damaged segment is truncated at the
//!   end of its last valid entry (or removed, if its header is what is damaged), any
//!   later segments (which hold no valid entry) are removed, and the cut is synced and
//!   reported in [`RecoveryReport::torn_bytes`]; the log goes on from there.
//! * **Damage followed by valid data**: entries after the damage may have been
//!   acknowledged, so recovery refuses with [`WalError::Damaged`] (file, offset,
//!   reason). So does a segment of another format version, which is never cut. With
//!   [`WalConfig::repair`], it instead keeps the longest valid prefix and moves the
//!   rest aside: the rest of the damaged segment is copied to
//!   `DIR/damaged/<segment-name>.from-<offset>` and the segment truncated (or the
//!   whole segment moved there, if nothing of it is kept), and later segments are
//!   renamed into `DIR/damaged/` (a name already taken gets `.1`, `.2`, ...).
//!   Everything moved is synced before anything is cut; [`RecoveryReport::repaired`]
//!   says what went where. Data is never dropped silently.
//!
//! An empty or absent DIR is a new log at seq 0: the first entry is seq 1.
//!
//! # Snapshots
//! A snapshot (`snapshot`) holds every live record as of a seq, so the segments
//! before it can go: recovery loads the newest snapshot ([`load_snapshot`]) and then
//! the log after it ([`Wal::open_after`]); [`Wal::remove_through`] removes what a
//! snapshot covers once it is in place.
//!
//! A crash can also leave a later part of an unsynced write on disk without an
//! earlier part (disks need not write pages in order). Recovery cannot tell that from
//! a damaged disk, so it refuses, and `--repair` keeps what came before: only entries
//! never acknowledged are moved aside.

mod disk;
mod format;
mod fs;
mod recover;
mod snapshot;
mod writer;

pub mod faulty;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_snapshot;

pub use disk::{Disk, DiskFile};
pub use format::{
    encode_entry, parse_segment_name, segment_name, try_encode_entry, Record, RecordTooLarge,
    ENTRY_HEADER_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_BODY, MAX_KEY, MAX_VALUE,
};
pub use fs::{Fs, FsFile, RealFs};
pub use snapshot::{
    load_snapshot, parse_snapshot_name, snapshot_name, SnapshotInfo, SnapshotWriter,
    SNAPSHOT_MAGIC, SNAPSHOT_VERSION,
};
pub use writer::Wal;

use std::path::PathBuf;

/// How a log is written and recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// A write starts a new segment once the current one holds this many bytes or
    /// more (so a segment exceeds it by less than one write).
    pub segment_bytes: u64,
    /// On damage followed by valid data, keep the entries before it and move the
    /// rest to `DIR/damaged/` instead of refusing to open.
    pub repair: bool,
}

impl WalConfig {
    /// Default [`segment_bytes`](Self::segment_bytes): 64 MiB, as RocksDB's default
    /// write buffer, so recovery reads few files and a segment is quick to copy.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            repair: false,
        }
    }
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The last seq in the log (0 for an empty log).
    pub last_seq: u64,
    /// Entries replayed.
    pub entries: u64,
    /// Segment files in the log after recovery.
    pub segments: usize,
    /// Bytes of torn tail removed (truncated, or in removed segments with no valid
    /// entry).
    pub torn_bytes: u64,
    /// Where the torn tail began (file, offset), if there was one.
    pub torn_at: Option<(PathBuf, u64)>,
    /// What repair moved aside, and where; `None` if nothing was repaired.
    pub repaired: Option<String>,
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The file system failed.
    #[error("write-ahead log: {0}")]
    Io(#[from] std::io::Error),
    /// The log is damaged and something after the damage may be data: it is not cut
    /// without being asked.
    #[error(
        "write-ahead log damaged: {} at byte {offset}: {reason}. Entries after it may have \
         been acknowledged, so it is not cut by itself; start with --repair to keep the entries \
         before it and move the rest to the log's damaged/ directory",
        file.display()
    )]
    Damaged {
        /// The segment file.
        file: PathBuf,
        /// Where in it the valid prefix ends.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
}
