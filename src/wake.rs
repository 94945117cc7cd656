//! `ReactorWake`: wakes the reactor when another thread (a worker with answers) has
//! something for it, at most once per sleep. It lives apart from the reactor so the
//! threads that wake it need not know the reactor's module.
//!
//! A `mio::Waker::wake` is a system call (~0.35 µs) and rouses a blocked reactor
//! (~9 µs). Workers finishing many batches while the reactor is already awake need not
//! pay either, so the reactor announces when it is about to block and workers wake it
//! only then.
//!
//! The handshake (a Dekker-style pair of sequentially consistent operations):
//! * reactor: `prepare_sleep()` stores `sleeping = true`, then checks the done queue;
//!   if it is empty it blocks in `poll`, else it calls `cancel_sleep()` and carries on.
//! * worker: pushes its batch, then `wake()` swaps `sleeping` to false and calls the
//!   waker only if it was true.
//!
//! Either the reactor sees the batch, or the worker sees `sleeping` and wakes it: a
//! wake-up cannot be lost. At worst a reactor that saw the batch also gets a spurious
//! wake, which `poll` tolerates.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

/// The reactor's wake-up flag and waker, shared by every worker through an `Arc`.
#[derive(Debug)]
pub(crate) struct ReactorWake {
    sleeping: AtomicBool,
    waker: Arc<mio::Waker>,
}

impl ReactorWake {
    /// Wraps the reactor's single `mio::Waker`.
    pub(crate) fn new(waker: Arc<mio::Waker>) -> ReactorWake {
        ReactorWake {
            sleeping: AtomicBool::new(false),
            waker,
        }
    }

    /// Reactor: about to block; the caller must check its queues after this.
    pub(crate) fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Reactor: awake again (after `poll` returns, or instead of blocking).
    pub(crate) fn cancel_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Worker: answers were pushed; wake the reactor if it is blocked or about to be.
    pub(crate) fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // A failed wake means the reactor's poll is gone: it is shutting down.
            let _ = self.waker.wake();
        }
    }
}
