//! Warming a batch's records before running it: the store's two prefetch stages, kept
//! a group or two of jobs ahead of execution.

use super::Context;
use crate::job::{Job, JobOp};
use crate::protocol::Request;

/// Jobs per prefetch group (see [`prefetch_ahead`]).
pub const PREFETCH_GROUP: usize = 8;

/// Call before running `jobs[i]`, for every `i` in order: it keeps the store's memory
/// loads two stages ahead of the jobs being run. Entering group `n`, it asks for the
/// index lines of group `n + 2` and for the records of group `n + 1`, whose index
/// lines were asked for one group earlier; by the time a job runs, its index line and
/// record have had a whole group's execution to arrive (see
/// [`Store::prefetch_index`]). Both stages over 32 jobs just before running them left
/// the second waiting for index lines; this pipeline took the server's CPU per
/// pipelined GET from 0.52–0.57 to 0.50–0.51 µs (BENCHMARKS.md). A hint only:
/// skipping it changes no result.
pub fn prefetch_ahead(ctx: &Context, jobs: &[Job], i: usize) {
    if i % PREFETCH_GROUP != 0 {
        return;
    }
    let keys = |n: usize| {
        let start = (n * PREFETCH_GROUP).min(jobs.len());
        let end = (start + PREFETCH_GROUP).min(jobs.len());
        jobs[start..end].iter().filter_map(point_key)
    };
    let n = i / PREFETCH_GROUP;
    if n == 0 {
        ctx.store.prefetch_index(keys(0));
        ctx.store.prefetch_index(keys(1));
        ctx.store.prefetch_records(keys(0));
    }
    ctx.store.prefetch_index(keys(n + 2));
    ctx.store.prefetch_records(keys(n + 1));
}

/// The key a single-record request looks up.
fn point_key(job: &Job) -> Option<&[u8]> {
    match &job.op {
        JobOp::Request(
            Request::Get { key }
            | Request::Put { key, .. }
            | Request::Delete { key, .. }
            | Request::Cas { key, .. },
        ) => Some(key),
        _ => None,
    }
}
