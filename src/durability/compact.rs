//! Compaction: when the log has grown past [`COMPACT_RATIO`] times the live data
//! (and past the configured minimum, and two segments), a background thread writes a snapshot of the
//! live records and the log thread then removes the segments it covers.
//!
//! The live data is measured as the newest snapshot's size: what the records took on
//! disk, in the log's own terms, when it was written (Redis sizes its AOF rewrites
//! against the last rewrite the same way). The store's memory charge is no measure:
//! it counts a fixed 240 bytes a record where a small record's log entry takes about
//! a hundred, so a log compacted at twice it grew to five times its snapshot. With no
//! snapshot yet, the minimum alone decides.
//!
//! The snapshot is *fuzzy*: it starts at sequence `s0` and reads the store a page at
//! a time while writes go on, so each record is as of some moment after `s0`.
//! Recovery loads it and then replays every log entry after `s0`, in order, which
//! brings every key to its latest state whatever the snapshot caught: a key's last
//! change after `s0` overwrites it, and a key with none was stable while it was read.
//! The snapshot is put in place only once the log is durable up to the sequence at
//! its end, so it never holds a change the log could lose; and only once it is in
//! place (synced, renamed, directory synced) are segments wholly at or before `s0`
//! removed. A crash at any point leaves either the old snapshot with the old
//! segments, or the new one with at least the segments after `s0`.
//!
//! Memory: one page of records (at most 1,000) and the writer's buffer. The store's
//! shard locks are held one page at a time, as a SCAN holds them.

use super::{DurabilityConfig, Shared};
use crate::exec::Context;
use crate::wal::{Disk, SnapshotWriter};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The log may grow to this many times the live data (the newest snapshot's size)
/// before it is compacted.
pub const COMPACT_RATIO: u64 = 2;

/// Records read from the store per page.
const PAGE: usize = 1000;

/// How often the snapshot thread looks whether the log has caught up.
const POLL: Duration = Duration::from_millis(1);

/// A compaction in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Compactor {
    running: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts a compaction when the log is due one and none is running.
    pub(super) fn maybe_start(
        &mut self,
        config: &DurabilityConfig,
        shared: &Arc<Shared>,
        ctx: &Arc<Context>,
    ) {
        if let Some(running) = &self.running {
            if !running.is_finished() {
                return;
            }
            if let Some(done) = self.running.take() {
                let _ = done.join();
            }
        }
        let stats = &shared.stats;
        if !is_due(
            stats.bytes.load(Ordering::Relaxed),
            stats.snapshot_bytes.load(Ordering::Relaxed),
            config,
        ) {
            return;
        }
        let (disk, dir) = (config.disk.clone(), config.dir.clone());
        let (shared, ctx) = (shared.clone(), ctx.clone());
        match std::thread::Builder::new()
            .name("switchboard-compact".into())
            .spawn(move || compact(&disk, &dir, &shared, &ctx))
        {
            Ok(handle) => self.running = Some(handle),
            Err(e) => tracing::warn!("cannot start a compaction: {e}"),
        }
    }

    /// Waits for a compaction in progress to end.
    pub(super) fn join(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.join();
        }
    }
}

/// Whether a log of `log` bytes is due a compaction, the newest snapshot holding
/// `snapshot` bytes (0: none).
fn is_due(log: u64, snapshot: u64, config: &DurabilityConfig) -> bool {
    // Two segments at least, so one that is not being written can go: otherwise a
    // snapshot would remove nothing, and the next would start at once.
    let floor = config
        .compact_min_bytes
        .max(config.segment_bytes.saturating_mul(2));
    log >= floor && log >= snapshot.saturating_mul(COMPACT_RATIO)
}

/// Writes a snapshot of the store and asks the log thread to remove what it covers.
fn compact(disk: &Disk, dir: &Path, shared: &Arc<Shared>, ctx: &Context) {
    let start = Instant::now();
    let s0 = ctx.store.seq();
    let result = (|| -> std::io::Result<_> {
        let mut writer = SnapshotWriter::create(disk, dir, s0)?;
        let mut cursor: Vec<u8> = Vec::new();
        let mut last = s0;
        loop {
            let page = ctx.store.scan(b"", &cursor, PAGE);
            for r in &page.records {
                writer.add(r.key(), r.version(), r.value())?;
                last = last.max(r.version());
            }
            match page.records.last() {
                Some(r) if page.more => cursor = r.key().to_vec(),
                _ => break,
            }
        }
        // Nothing in the snapshot may be newer than what the log holds for sure.
        let end = ctx.store.seq().max(last);
        if !wait_durable(shared, end) {
            return Ok(None);
        }
        writer.finish().map(Some)
    })();
    match result {
        Ok(Some(info)) => {
            shared.stats.compactions.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .snapshot_bytes
                .store(info.bytes, Ordering::Relaxed);
            tracing::info!(
                "compacted the log: a snapshot of {} record(s) at change {s0} ({} B) in \
                 {:.2} s",
                info.records,
                info.bytes,
                start.elapsed().as_secs_f64()
            );
            super::remove_through(shared, s0);
        }
        Ok(None) => {}
        Err(e) => tracing::error!("compaction failed, the log keeps growing: {e}"),
    }
}

/// Waits until the log is durable up to `seq` (asking it to sync, whatever its
/// mode); false when the server stops first.
fn wait_durable(shared: &Shared, seq: u64) -> bool {
    if shared.stats.durable.load(Ordering::Acquire) >= seq {
        return true;
    }
    super::request_sync(shared, seq);
    loop {
        if shared.stats.durable.load(Ordering::Acquire) >= seq {
            return true;
        }
        if super::is_closing(shared) {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_due_past_the_floor_and_twice_the_last_snapshot() {
        let mut config = DurabilityConfig::new("unused");
        config.compact_min_bytes = 64 << 20;
        config.segment_bytes = 64 << 20;
        // The floor is two segments when that is more than the minimum.
        assert!(!is_due((128 << 20) - 1, 0, &config));
        assert!(is_due(128 << 20, 0, &config));
        // Past the floor, the log must also be twice the newest snapshot.
        assert!(!is_due(199 << 20, 100 << 20, &config));
        assert!(is_due(200 << 20, 100 << 20, &config));
        // A small snapshot leaves the floor in charge.
        assert!(!is_due(100 << 20, 1 << 20, &config));
        config.segment_bytes = 1 << 20;
        assert!(is_due(64 << 20, 1 << 20, &config));
        assert!(!is_due(63 << 20, 1 << 20, &config));
    }
}
