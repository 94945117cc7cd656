//! Durability with `--data-dir`: the data directory's lock and history file, recovery
//! of the store from the write-ahead log at start, and the log thread that writes the
//! change stream to the log and syncs it (group commit), off the reactor.
//!
//! The reactor encodes each change it emits, in sequence order, into a pending buffer
//! ([`Durability::append`], then [`Durability::submit`] once per batch of changes)
//! and goes on. The log thread takes everything pending at once, writes it with one
//! `write` and, under `--fsync always`, one `fdatasync`, then publishes the durable
//! sequence and wakes the reactor, which releases the answers and change events that
//! waited for it. While one sync runs, the next batch gathers: the more writers, the
//! more changes each sync covers, and a lone writer waits for exactly one sync.
//!
//! What each mode can lose in a crash or power cut:
//! * `always` (the default): nothing acknowledged. No answer or event that reveals a
//!   change leaves before the change is on disk.
//! * `everysec`: the changes of the last second or so (one sync interval plus one
//!   sync); answers do not wait.
//! * `off`: whatever the operating system had not written back (tens of seconds on
//!   Linux by default); the log syncs only as each segment fills, for a compaction,
//!   and at a clean stop.
//!
//! A failed `fdatasync` stops the server (exit status 1): after one the kernel may
//! have dropped the unwritten pages, so retrying could report as durable what is lost
//! (PostgreSQL, Redis and etcd stop here too).

mod backup;
mod compact;
mod history;
mod log_thread;
mod replay;

pub use backup::{backup, BackupError, BackupReport};
pub use compact::COMPACT_RATIO;
pub use history::History;

use crate::stats::latency;
use crate::store::{Change, ChangeOp, Store};
use crate::wal::{self, Record, RecoveryReport, Wal, WalConfig, WalError};
use bytes::BytesMut;
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When the log is synced, and so what a crash can lose (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncMode {
    /// Before any answer or event reveals a change.
    #[default]
    Always,
    /// About once a second.
    EverySec,
    /// Never while running; at a clean stop.
    Off,
}

impl FsyncMode {
    /// The mode's name, as the flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            FsyncMode::Always => "always",
            FsyncMode::EverySec => "everysec",
            FsyncMode::Off => "off",
        }
    }
}

impl std::str::FromStr for FsyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<FsyncMode, String> {
        match s {
            "always" => Ok(FsyncMode::Always),
            "everysec" => Ok(FsyncMode::EverySec),
            "off" => Ok(FsyncMode::Off),
            _ => Err(format!("--fsync takes always, everysec or off, not {s:?}")),
        }
    }
}

/// How to keep the data.
#[derive(Clone, Debug)]
pub struct DurabilityConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// When to sync.
    pub fsync: FsyncMode,
    /// Keep the longest valid prefix of a damaged log, moving the rest aside.
    pub repair: bool,
    /// Log segments are rotated past this size.
    pub segment_bytes: u64,
    /// Test hook: every sync takes at least this much longer.
    pub sync_delay: Duration,
    /// The log is compacted only past this size (and past [`COMPACT_RATIO`] times
    /// the newest snapshot's size).
    pub compact_min_bytes: u64,
    /// The file system `dir` is on: the real one, or a simulated disk a test can
    /// cut the power to.
    pub disk: wal::Disk,
}

impl DurabilityConfig {
    /// `dir` with the defaults: `--fsync always`, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> DurabilityConfig {
        DurabilityConfig {
            dir: dir.into(),
            fsync: FsyncMode::Always,
            repair: false,
            segment_bytes: 64 << 20,
            sync_delay: Duration::ZERO,
            compact_min_bytes: 64 << 20,
            disk: wal::Disk::Real,
        }
    }
}

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    /// Another process holds the directory.
    #[error(
        "{0} is in use by another switchboard (its LOCK file is locked); stop that \
         server or give this one another --data-dir"
    )]
    Locked(PathBuf),
    /// The log is damaged, or unreadable.
    #[error("{0}")]
    Wal(#[from] WalError),
    /// The directory or its files could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What a start found in the data directory.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The log's own account: entries replayed, torn bytes cut, repairs.
    pub report: RecoveryReport,
    /// The history id to serve: the previous one, or a new one when the previous run
    /// may have lost acknowledged changes.
    pub history: u64,
    /// A new history began (and why), when it did.
    pub new_history: Option<&'static str>,
    /// How long recovery took.
    pub took: Duration,
    /// The last changes of the log, oldest first, for the in-memory change log, so
    /// that subscribers resume across a restart without a GAP.
    pub tail: VecDeque<Change>,
    /// Every change numbered after this is in `tail`.
    pub tail_base: u64,
}

/// Figures for STATS and the metrics endpoint.
#[derive(Debug, Default)]
pub struct LogStats {
    /// The last change sequence synced to disk.
    pub durable: AtomicU64,
    /// The last change sequence written to the log (synced or not).
    pub written: AtomicU64,
    /// Bytes in the log's segments.
    pub bytes: AtomicU64,
    /// Syncs done.
    pub syncs: AtomicU64,
    /// Changes those syncs covered.
    pub synced_changes: AtomicU64,
    /// Time spent in them, in microseconds.
    pub sync_micros: AtomicU64,
    /// The longest one, in microseconds.
    pub sync_micros_max: AtomicU64,
    /// Syncs by how long they took (the buckets of `stats::latency`), and their sum
    /// in nanoseconds.
    sync_buckets: [AtomicU64; latency::BUCKETS + 1],
    sync_ns: AtomicU64,
    /// Set while the log cannot be written for lack of space: writes are refused.
    storage_full: std::sync::atomic::AtomicBool,
    /// Times the log found the disk full.
    pub storage_full_events: AtomicU64,
    /// Compactions done.
    pub compactions: AtomicU64,
    /// The size of the newest snapshot (0: none): the live data as of that snapshot,
    /// which the log is measured against for the next compaction.
    pub snapshot_bytes: AtomicU64,
    /// Changes replayed from the log at start.
    pub recovered: AtomicU64,
    /// How long recovery took, in microseconds.
    pub recovery_micros: AtomicU64,
}

impl LogStats {
    /// True while the log cannot be written for lack of space (writes are refused
    /// with STORAGE_FULL until it can).
    pub fn storage_full(&self) -> bool {
        self.storage_full.load(Ordering::Relaxed)
    }

    /// Counts one sync that took `took`.
    fn synced(&self, took: Duration) {
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.sync_buckets[latency::bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sync_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The syncs' durations, as a histogram.
    pub fn sync_latency(&self) -> latency::Snapshot {
        let mut s = latency::Snapshot {
            sum_ns: self.sync_ns.load(Ordering::Relaxed),
            ..latency::Snapshot::default()
        };
        for (n, b) in s.counts.iter_mut().zip(&self.sync_buckets) {
            *n = b.load(Ordering::Relaxed);
        }
        s
    }

    /// The figures STATS reports.
    pub fn figures(&self) -> [(&'static str, u64); 14] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let syncs = get(&self.syncs);
        let h = self.sync_latency();
        [
            ("log_sync_us_p50", h.quantile_bound_us(0.5)),
            ("log_sync_us_p99", h.quantile_bound_us(0.99)),
            ("durable_seq", get(&self.durable)),
            ("log_bytes", get(&self.bytes)),
            ("log_syncs", syncs),
            (
                "log_changes_per_sync",
                get(&self.synced_changes) / syncs.max(1),
            ),
            ("log_sync_us_mean", get(&self.sync_micros) / syncs.max(1)),
            ("log_sync_us_max", get(&self.sync_micros_max)),
            ("storage_full", u64::from(self.storage_full())),
            ("storage_full_events", get(&self.storage_full_events)),
            ("log_compactions", get(&self.compactions)),
            ("snapshot_bytes", get(&self.snapshot_bytes)),
            ("recovered_changes", get(&self.recovered)),
            ("recovery_us", get(&self.recovery_micros)),
        ]
    }
}

/// What the reactor hands the log thread: whole encoded entries, the last one's
/// sequence, and whether the server is stopping.
#[derive(Debug, Default)]
struct Pending {
    buf: BytesMut,
    last: u64,
    closing: bool,
    /// Sync up to here even if the mode would not (a compaction waits for it).
    sync_until: u64,
    /// A snapshot covers every change up to here: remove the segments it makes
    /// useless.
    remove_through: Option<u64>,
    /// The log thread sleeps until `last` reaches this (`u64::MAX`: it is not
    /// waiting for changes). A submit wakes it only then: waking it for every batch
    /// of a group it is still gathering cost a futex call and a context switch each.
    wake_at: u64,
}

/// State shared by the reactor and the log thread.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
    stats: Arc<LogStats>,
    /// The log thread stopped with changes it could not write (the disk stayed full).
    abandoned: std::sync::atomic::AtomicBool,
}

/// The reactor's handle on durability.
#[derive(Debug)]
pub struct Durability {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    history: History,
    mode: FsyncMode,
    config: DurabilityConfig,
    compactor: compact::Compactor,
    /// Entries encoded since the last submit, and the last one's sequence.
    local: BytesMut,
    local_last: u64,
    /// The directory's lock: released when the process ends, however it ends.
    _lock: Option<File>,
}

impl Durability {
    /// Locks `config.dir`, recovers `store` from its log, and starts the log thread,
    /// which wakes the reactor through `wake` whenever the durable sequence advances.
    ///
    /// # Errors
    /// See [`DurabilityError`].
    /// The last `keep` changes are kept for the in-memory change log.
    pub fn open(
        config: &DurabilityConfig,
        store: &Store,
        keep: usize,
        wake: Arc<mio::Waker>,
    ) -> Result<(Durability, Recovered), DurabilityError> {
        let start = Instant::now();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DurabilityError::Io { path, source }
        };
        let disk = &config.disk;
        wal::Fs::create_dir_all(disk, &config.dir).map_err(io(&config.dir))?;
        // A simulated disk has no real directory to lock, and no other process.
        let lock = match disk {
            wal::Disk::Real => Some(lock_dir(&config.dir)?),
            wal::Disk::Simulated(_) => None,
        };
        let mut snapshot_records = 0u64;
        let mut bulk = store.bulk_load();
        let snapshot = wal::load_snapshot(disk, &config.dir, |key, version, value| {
            bulk.add(key, version, value);
            snapshot_records += 1;
        })?
        .unwrap_or(0);
        bulk.finish();
        store.restore_seq(snapshot);
        let mut replay = replay::Replay::new(store, keep);
        let (wal, report) = Wal::open_after(
            disk.clone(),
            &config.dir,
            WalConfig {
                segment_bytes: config.segment_bytes,
                repair: config.repair,
            },
            snapshot,
            |seq, record| replay.add(seq, record),
        )?;
        let (tail, tail_base) = replay.finish(report.last_seq);
        store.restore_seq(report.last_seq);
        if snapshot > 0 {
            tracing::info!(
                "loaded a snapshot of {snapshot_records} record(s) at change {snapshot}"
            );
        }
        let (history, new_history) =
            History::start(disk, &config.dir, config.fsync).map_err(io(&config.dir))?;
        let stats = Arc::new(LogStats::default());
        stats.durable.store(report.last_seq, Ordering::Relaxed);
        stats.written.store(report.last_seq, Ordering::Relaxed);
        stats.bytes.store(wal.bytes(), Ordering::Relaxed);
        if snapshot > 0 {
            let path = config.dir.join(wal::snapshot_name(snapshot));
            let bytes = wal::Fs::open(disk, &path)
                .and_then(|f| wal::FsFile::size(&f))
                .map_err(io(&path))?;
            stats.snapshot_bytes.store(bytes, Ordering::Relaxed);
        }
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                last: report.last_seq,
                ..Pending::default()
            }),
            ready: Condvar::new(),
            stats,
            abandoned: std::sync::atomic::AtomicBool::new(false),
        });
        let thread = log_thread::start(
            wal,
            shared.clone(),
            config.fsync,
            config.sync_delay,
            wake,
            disk.is_simulated(),
        )
        .map_err(io(&config.dir))?;
        let recovered = Recovered {
            report,
            history: history.id(),
            new_history,
            took: start.elapsed(),
            tail,
            tail_base,
        };
        let stats = &shared.stats;
        stats
            .recovered
            .store(recovered.report.entries, Ordering::Relaxed);
        stats
            .recovery_micros
            .store(recovered.took.as_micros() as u64, Ordering::Relaxed);
        Ok((
            Durability {
                shared,
                thread: Some(thread),
                history,
                mode: config.fsync,
                config: config.clone(),
                compactor: compact::Compactor::default(),
                local: BytesMut::new(),
                local_last: 0,
                _lock: lock,
            },
            recovered,
        ))
    }

    /// True when answers and events wait for their changes to be durable.
    pub fn holds(&self) -> bool {
        self.mode == FsyncMode::Always
    }

    /// The figures the log thread keeps.
    pub fn stats(&self) -> Arc<LogStats> {
        self.shared.stats.clone()
    }

    /// The last change sequence on disk.
    pub fn durable(&self) -> u64 {
        self.shared.stats.durable.load(Ordering::Acquire)
    }

    /// Encodes `change` for the log; [`submit`](Self::submit) hands it over.
    pub fn append(&mut self, change: &Change) {
        let key = change.key.as_bytes();
        let record = match &change.op {
            ChangeOp::Put(value) => Record::Put {
                key,
                value: value.as_bytes(),
            },
            ChangeOp::Delete => Record::Delete { key },
            ChangeOp::Hole => Record::Hole,
        };
        wal::encode_entry(&mut self.local, change.seq, record);
        self.local_last = change.seq;
    }

    /// Hands what was appended to the log thread.
    pub fn submit(&mut self) {
        if self.local.is_empty() {
            return;
        }
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pending.buf.is_empty() {
            std::mem::swap(&mut pending.buf, &mut self.local);
        } else {
            pending.buf.extend_from_slice(&self.local);
            self.local.clear();
        }
        pending.last = self.local_last;
        let wake = pending.last >= pending.wake_at;
        drop(pending);
        if wake {
            self.shared.ready.notify_one();
        }
    }

    /// Stops the log thread after it has written and synced everything submitted, and
    /// marks the stop clean. Returns the last durable sequence.
    pub fn close(mut self) -> u64 {
        self.finish();
        let durable = self.durable();
        if self.shared.abandoned.load(Ordering::Relaxed) {
            return durable;
        }
        if let Err(e) = self.history.mark_clean() {
            tracing::warn!("cannot record the clean stop in the data directory: {e}");
        }
        durable
    }

    /// Starts a compaction if the log is due one (see `compact`); cheap otherwise.
    pub fn maybe_compact(&mut self, ctx: &Arc<crate::exec::Context>) {
        self.compactor.maybe_start(&self.config, &self.shared, ctx);
    }

    /// Lets the log thread write and sync what is pending, and waits for it to end.
    fn finish(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.submit();
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pending.closing = true;
        }
        self.shared.ready.notify_one();
        let _ = thread.join();
        self.compactor.join();
    }
}

/// Asks the log thread to sync up to `seq` whatever its mode.
fn request_sync(shared: &Shared, seq: u64) {
    let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
    pending.sync_until = pending.sync_until.max(seq);
    drop(pending);
    shared.ready.notify_one();
}

/// Asks the log thread to remove the segments a snapshot at `seq` covers.
fn remove_through(shared: &Shared, seq: u64) {
    let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
    pending.remove_through = Some(seq);
    drop(pending);
    shared.ready.notify_one();
}

/// True once the server has asked the log to stop.
fn is_closing(shared: &Shared) -> bool {
    shared
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .closing
}

impl Drop for Durability {
    /// A run that ended without [`close`](Durability::close) (a second signal) still
    /// syncs what was submitted, but is not marked clean.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Takes the directory's lock (`flock` on `DIR/LOCK`), which the kernel drops when
/// the process ends, so a restart after a crash just works.
fn lock_dir(dir: &Path) -> Result<File, DurabilityError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DurabilityError::Io {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.kind() == std::io::ErrorKind::WouldBlock {
            DurabilityError::Locked(dir.to_path_buf())
        } else {
            DurabilityError::Io { path, source: err }
        });
    }
    Ok(file)
}
