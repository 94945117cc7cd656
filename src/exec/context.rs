//! `Context`: everything a request executes against, shared by the reactor and every
//! worker: the store, the counters, the limits, and the flag that cancels work.

use crate::protocol::Limits;
use crate::push::{Hub, PushConfig};
use crate::stats::Stats;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Everything a job executes against; shared by the reactor and every worker.
#[derive(Debug)]
pub struct Context {
    /// The records.
    pub store: Store,
    /// The counters.
    pub stats: Stats,
    /// The protocol limits, reported by HELLO and used to size SCAN pages.
    pub limits: Limits,
    /// Worker threads, reported by STATS.
    pub workers: usize,
    /// Subscriptions, the change log and what waits to be pushed.
    pub push: Hub,
    /// Set when the server stops executing requests (a shutdown's deadline is near, or
    /// a second signal came): no job starts after it, and jobs not started are
    /// answered SHUTTING_DOWN.
    pub cancel: AtomicBool,
    /// Set when the server begins to stop: it accepts no one and is not ready (the
    /// metrics endpoint's `/readyz` says so).
    pub draining: AtomicBool,
    /// The last change sequence known to be on disk, as far as answers go: an answer
    /// that reveals a later one (a write's version, a version read, a SCAN's sequence)
    /// is held until it is. `u64::MAX` when answers are never held (no data
    /// directory, or an fsync mode that does not wait).
    pub durable: AtomicU64,
    /// The write-ahead log's figures, with a data directory.
    pub log: Option<std::sync::Arc<crate::durability::LogStats>>,
}

impl Context {
    /// A context with an empty store.
    pub fn new(limits: Limits, max_memory: u64, workers: usize) -> Context {
        Context {
            store: Store::new(max_memory),
            stats: Stats::default(),
            limits,
            workers,
            push: Hub::new(PushConfig::default(), 0),
            cancel: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            durable: AtomicU64::new(u64::MAX),
            log: None,
        }
    }

    /// True once work is being cancelled (see [`cancel`](Self::cancel)).
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}
