//! The units that cross between the reactor and a worker: one batch of jobs per loop
//! iteration going out, one batch of encoded responses coming back.
//!
//! Both are recycled: a worker returns the emptied job `Vec` inside its `DoneBatch`, and
//! the reactor returns each `DoneBatch` after copying its responses out, so a steady
//! load allocates no batches at all.

use crate::job::{ConnId, Job};
use bytes::BytesMut;

/// Responses for a run of consecutive jobs of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The connection.
    pub conn: ConnId,
    /// Bytes of `DoneBatch::out` the run's responses take.
    pub len: usize,
    /// How many jobs the run answers.
    pub count: u32,
}

/// Encoded responses for one batch of jobs, grouped by connection in job order.
#[derive(Debug, Default)]
pub struct DoneBatch {
    /// Every response, back to back.
    pub out: BytesMut,
    /// Which bytes belong to which connection, in order.
    pub spans: Vec<Span>,
    /// The job batch's `Vec`, emptied, for the reactor to fill again.
    pub jobs: Vec<Job>,
}

impl DoneBatch {
    /// Records that the last `len` bytes of `out` answer one job of `conn`, merging with
    /// the previous span when it is the same connection.
    pub fn record(&mut self, conn: ConnId, len: usize) {
        match self.spans.last_mut() {
            Some(span) if span.conn == conn => {
                span.len += len;
                span.count += 1;
            }
            _ => self.spans.push(Span {
                conn,
                len,
                count: 1,
            }),
        }
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.out.clear();
        self.spans.clear();
        self.jobs.clear();
    }

    /// Yields each span with its bytes.
    pub fn iter(&self) -> impl Iterator<Item = (Span, &[u8])> + '_ {
        let mut at = 0;
        self.spans.iter().map(move |span| {
            let bytes = &self.out[at..at + span.len];
            at += span.len;
            (*span, bytes)
        })
    }
}
