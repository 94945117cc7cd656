//! The log thread: takes what the reactor submitted, writes it to the log, syncs it
//! as the fsync mode says, and publishes the durable sequence.
//!
//! Group commit: each round takes *everything* pending at that moment, so one write
//! and one sync cover every change that arrived while the previous sync ran. Under
//! `always`, a round may wait a moment for its group to gather (see `take`); a lone
//! writer never waits. The reactor wakes this thread only when what it submits is
//! worth a round (`Pending::wake_at`), not for every batch of a group still gathering.

use super::{FsyncMode, Shared};
use crate::wal::{Disk, Wal};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often `everysec` syncs.
const EVERY: Duration = Duration::from_secs(1);

/// The longest a round waits for its group to gather (see `LogThread::take`).
const GATHER_MAX: Duration = Duration::from_millis(1);

/// How often a write that found the disk full is tried again.
const FULL_RETRY: Duration = Duration::from_millis(200);

/// Starts the thread.
pub(super) fn start(
    wal: Wal<Disk>,
    shared: Arc<Shared>,
    mode: FsyncMode,
    delay: Duration,
    wake: Arc<mio::Waker>,
    simulated: bool,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("switchboard-log".into())
        .spawn(move || {
            LogThread {
                wal,
                shared,
                mode,
                delay,
                wake,
                synced_at: Instant::now(),
                simulated,
                gather: None,
            }
            .run();
        })
}

/// What one round of the log thread has to do.
struct Round {
    /// The sequence of the last entry taken.
    last: u64,
    /// The server is stopping: sync everything, then end.
    closing: bool,
    /// Sync up to here whatever the mode.
    sync_until: u64,
    /// Remove the segments a snapshot at this sequence covers.
    remove_through: Option<u64>,
}

struct LogThread {
    wal: Wal<Disk>,
    shared: Arc<Shared>,
    mode: FsyncMode,
    delay: Duration,
    wake: Arc<mio::Waker>,
    synced_at: Instant,
    /// The log is on a simulated disk (see `fail`).
    simulated: bool,
    /// Under `always`, after a sync: how many changes it covered, and until when the
    /// next round may wait for that many to gather (see `take`).
    gather: Option<(u64, Instant)>,
}

impl LogThread {
    fn run(mut self) {
        let mut batch = BytesMut::new();
        loop {
            let Round {
                last,
                closing,
                sync_until,
                remove_through,
            } = self.take(&mut batch);
            if !batch.is_empty() {
                if !self.write(&batch, last) {
                    // Stopping with the disk still full (or a simulated disk failed):
                    // these changes were never synced, so under `always` never
                    // acknowledged either.
                    self.shared.abandoned.store(true, Ordering::Relaxed);
                    tracing::error!(
                        "the log stops: changes up to {last} after {} are not in it",
                        self.wal.last_seq()
                    );
                    return;
                }
                batch.clear();
                let stats = &self.shared.stats;
                stats.written.store(last, Ordering::Release);
                stats.bytes.store(self.wal.bytes(), Ordering::Relaxed);
            }
            let written = self.wal.last_seq();
            let durable = self.shared.stats.durable.load(Ordering::Relaxed);
            let due = match self.mode {
                FsyncMode::Always => true,
                FsyncMode::EverySec => self.synced_at.elapsed() >= EVERY,
                FsyncMode::Off => false,
            };
            if written > durable
                && (due || closing || durable < sync_until)
                && !self.sync(written, durable)
            {
                return;
            }
            if let Some(seq) = remove_through {
                match self.wal.remove_through(seq) {
                    Ok(_) => {
                        let bytes = self.wal.bytes();
                        self.shared.stats.bytes.store(bytes, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("cannot remove log segments a snapshot covers: {e}"),
                }
            }
            if closing {
                return;
            }
        }
    }

    /// Writes `batch`, waiting for space when the disk is full (the write is cut back
    /// and tried again; meanwhile new writes are refused with STORAGE_FULL). False
    /// when the server stops before space comes back.
    fn write(&mut self, batch: &[u8], last: u64) -> bool {
        let stats = &self.shared.stats;
        loop {
            match self.wal.write(batch, last) {
                Ok(()) => {
                    if stats.storage_full.swap(false, Ordering::Relaxed) {
                        tracing::warn!("the disk has room again: writes are accepted");
                    }
                    return true;
                }
                Err(e) if is_out_of_space(&e) => {
                    if !stats.storage_full.swap(true, Ordering::Relaxed) {
                        stats.storage_full_events.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "the disk that holds the data is full ({e}): writes are refused \
                             with STORAGE_FULL until there is room; reads go on"
                        );
                    }
                    if self.closing() {
                        return false;
                    }
                    std::thread::sleep(FULL_RETRY);
                }
                Err(e) => return self.fail("writing the write-ahead log", &e),
            }
        }
    }

    /// True once the server has asked the log to stop.
    fn closing(&self) -> bool {
        super::is_closing(&self.shared)
    }

    /// Waits until there is work (something pending, a sync asked for or due, a
    /// removal, or the stop), and takes it all; pending entries go into `batch`.
    fn take(&mut self, batch: &mut BytesMut) -> Round {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            let durable = self.shared.stats.durable.load(Ordering::Relaxed);
            let unsynced = self.wal.last_seq() > durable;
            let asked = pending.closing
                || pending.remove_through.is_some()
                || (unsynced && pending.sync_until > durable);
            if asked {
                break;
            }
            // What to wait for, and until when (`None`: until something happens), and
            // how many changes are worth waking for.
            let mut wake_at = pending.last.saturating_add(1);
            let until = if !pending.buf.is_empty() {
                // Group commit: with many writers, those whose answers the last sync
                // released write again while the next sync runs, and the writers
                // split into two groups taking turns, each synced alone. Waiting a
                // moment (up to half the last sync's time) for as many changes as the
                // last sync covered plus those that arrived while it ran joins them,
                // and a sync costs far less than twice one half its size. A lone
                // writer's change is that many at once, so it never waits.
                let waiting = pending.last.saturating_sub(self.wal.last_seq());
                match self.gather {
                    Some((expect, until)) if waiting < expect => {
                        wake_at = self.wal.last_seq().saturating_add(expect);
                        Some(until)
                    }
                    _ => break,
                }
            } else if self.mode == FsyncMode::EverySec && unsynced {
                Some(self.synced_at + EVERY)
            } else {
                None
            };
            pending.wake_at = wake_at;
            pending = match until {
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.shared
                        .ready
                        .wait_timeout(pending, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .shared
                    .ready
                    .wait(pending)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
        // Busy from here until the next wait: submits need not wake it.
        pending.wake_at = u64::MAX;
        self.gather = None;
        std::mem::swap(batch, &mut pending.buf);
        Round {
            last: pending.last,
            closing: pending.closing,
            sync_until: pending.sync_until,
            remove_through: pending.remove_through.take(),
        }
    }

    /// Syncs the log up to `written` and publishes it as durable; false when the
    /// log has failed (on a simulated disk; on a real one the process stops).
    fn sync(&mut self, written: u64, durable: u64) -> bool {
        let start = Instant::now();
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if let Err(e) = self.wal.sync() {
            return self.fail("syncing the write-ahead log (fdatasync)", &e);
        }
        self.synced_at = Instant::now();
        let took = start.elapsed();
        let micros = took.as_micros() as u64;
        let stats = &self.shared.stats;
        stats.synced(took);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats
            .synced_changes
            .fetch_add(written - durable, Ordering::Relaxed);
        stats.sync_micros.fetch_add(micros, Ordering::Relaxed);
        stats.sync_micros_max.fetch_max(micros, Ordering::Relaxed);
        stats.durable.store(written, Ordering::Release);
        let _ = self.wake.wake();
        if self.mode == FsyncMode::Always {
            // The writers this sync releases will write again, and those that wrote
            // while it ran are waiting already: the next group is both.
            let arrived = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last
                .saturating_sub(written);
            let expect = (written - durable) + arrived;
            self.gather = Some((expect, self.synced_at + (took / 2).min(GATHER_MAX)));
        }
        true
    }

    /// The log cannot be trusted from here on. On a real disk the process stops
    /// (see [`fatal`]); on a simulated one, whose power a test has cut, only the log
    /// does: nothing more becomes durable, so nothing more is acknowledged, and the
    /// test goes on to recover from the same disk.
    fn fail(&self, what: &str, e: &std::io::Error) -> bool {
        if !self.simulated {
            fatal(what, e);
        }
        tracing::error!("{what} failed on the simulated disk: {e}; the log stops");
        self.shared.abandoned.store(true, Ordering::Relaxed);
        false
    }
}

/// True for the errors of a full disk or an exhausted quota.
fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// The log cannot be trusted from here on: stop the process, saying why, rather
/// than acknowledge writes that may not be on disk.
fn fatal(what: &str, e: &std::io::Error) -> ! {
    tracing::error!("{what} failed: {e}; stopping, since later writes could not be trusted");
    eprintln!("switchboard: {what} failed: {e}; stopping");
    std::process::exit(1);
}
