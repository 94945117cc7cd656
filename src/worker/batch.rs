//! What crosses back from a worker to the reactor: one [`DoneBatch`] per job batch.
//!
//! Both directions are recycled: the reactor sends a [`Batch`] and gets it back inside
//! the `DoneBatch`, holding the jobs the worker did not start (none, unless the server
//! is cancelling work or a connection's output credit ran out); it returns each
//! `DoneBatch` after delivering its answers, so a steady load allocates no batches.

use crate::exec::sink::Answers;
use crate::exec::Batch;
use crate::store::Change;

/// Recycled answer buffers larger than this are dropped rather than kept, so a burst
/// of large answers does not leave every pooled batch holding its peak for good.
pub(crate) const KEEP_ANSWER_BYTES: usize = 64 << 10;

/// A worker's answers to one job batch, and what it did not run.
#[derive(Debug, Default)]
pub(crate) struct DoneBatch {
    /// The answers, in spans by connection, in job order.
    pub answers: Answers,
    /// The jobs not started, in order, as runs; empty otherwise, and the reactor reuses
    /// it as its next job batch.
    pub unrun: Batch,
    /// The changes the batch's writes made, in the order they ran.
    pub changes: Vec<Change>,
    /// Jobs the batch held when the worker took it, run or not: what the reactor
    /// counts as queued for the pool until it gets this back.
    pub jobs: usize,
}

impl DoneBatch {
    /// Empties the batch, keeping its allocations up to [`KEEP_ANSWER_BYTES`].
    pub(crate) fn clear(&mut self) {
        self.answers.clear(KEEP_ANSWER_BYTES);
        self.unrun.clear();
        self.changes.clear();
        self.jobs = 0;
    }
}
