//! The batch executor against a store, with answers into a worker's buffer.

use super::sink::Answers;
use super::*;
use crate::job::JobOp;
use crate::protocol::{Decoder, Limits, Request, RequestId, Response, ResponseBody};
use bytes::Bytes;
use std::sync::atomic::Ordering;

fn conn(index: u32) -> ConnId {
    ConnId {
        index,
        generation: 0,
    }
}

fn get(c: u32, id: u32, key: &'static str) -> Job {
    Job {
        conn: conn(c),
        id: RequestId(id),
        version: crate::protocol::BASE_VERSION,
        op: JobOp::Request(Request::Get {
            key: Bytes::from_static(key.as_bytes()),
        }),
    }
}

/// A batch of `runs`, each a connection with its GETs of `key` and a credit.
fn batch(runs: &[(u32, u32, usize)], key: &'static str) -> Batch {
    let mut b = Batch::default();
    for &(c, jobs, credit) in runs {
        let start = b.jobs.len();
        for id in 0..jobs {
            b.jobs.push(get(c, id, key));
        }
        b.end_run(conn(c), start, credit);
    }
    b
}

fn decoded(answers: &Answers) -> Vec<(u32, Response)> {
    let mut out = Vec::new();
    for (span, _, bytes, shared) in answers.iter() {
        let mut o = crate::conn::Outgoing::default();
        o.append(
            bytes,
            shared,
            bytes.as_ptr() as usize - answers.buf.as_ptr() as usize,
        );
        let mut wire = bytes::BytesMut::new();
        while !o.is_empty() {
            let n = o.front().len();
            wire.extend_from_slice(o.front());
            o.advance(n);
        }
        let mut d = Decoder::new(Limits::MAX_MAX_FRAME);
        while let Some(frame) = d.decode(&mut wire).unwrap() {
            out.push((span.conn.index, Response::decode(&frame).unwrap()));
        }
    }
    out
}

#[test]
fn a_run_stops_at_its_credit_and_the_rest_stays_in_order() {
    let ctx = Context::new(Limits::default(), 0, 1);
    ctx.store.put(b"big", &[1; 10_000]).unwrap();
    // Connection 1 may take 25 kB: three answers of 10 kB start (the third crosses).
    let mut b = batch(&[(1, 10, 25_000), (2, 2, usize::MAX), (3, 4, 0)], "big");
    let mut answers = Answers::default();
    let mut tally = Tally::default();
    run_batch(
        &ctx,
        &mut b,
        &mut IntoAnswers(&mut answers),
        &mut Budget::new(usize::MAX),
        &mut tally,
        &mut Vec::new(),
    );
    let spans: Vec<(u32, u32)> = answers
        .spans
        .iter()
        .map(|s| (s.conn.index, s.answered))
        .collect();
    assert_eq!(spans, [(1, 3), (2, 2)]);
    assert_eq!(tally.requests_total, 5);
    // Long values travel by reference.
    assert_eq!(answers.shared_len(), 50_000);
    assert!(answers.buf.len() < 200);
    let left: Vec<(u32, u32)> = b.jobs.iter().map(|j| (j.conn.index, j.id.0)).collect();
    let mut want: Vec<(u32, u32)> = (3..10).map(|id| (1, id)).collect();
    want.extend((0..4).map(|id| (3, id)));
    assert_eq!(left, want);
    assert_eq!(
        b.runs,
        [
            Run {
                conn: conn(1),
                jobs: 7,
                credit: 25_000
            },
            Run {
                conn: conn(3),
                jobs: 4,
                credit: 0
            },
        ]
    );
    let got = decoded(&answers);
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(
        |(_, r)| matches!(&r.body, ResponseBody::Value { value, .. } if value.len() == 10_000)
    ));
}

#[test]
fn a_spent_budget_stops_the_whole_batch() {
    let ctx = Context::new(Limits::default(), 0, 1);
    ctx.store.put(b"small", &[1; 3000]).unwrap();
    let mut b = batch(&[(1, 5, usize::MAX), (2, 5, usize::MAX)], "small");
    let mut answers = Answers::default();
    // Three 3 kB answers are copied (under the sharing threshold) before 8 kB is spent.
    run_batch(
        &ctx,
        &mut b,
        &mut IntoAnswers(&mut answers),
        &mut Budget::new(8_000),
        &mut Tally::default(),
        &mut Vec::new(),
    );
    assert_eq!(answers.spans.len(), 1);
    assert_eq!(answers.spans[0].answered, 3);
    assert_eq!(b.len(), 7);
    assert_eq!(b.runs.len(), 2);
}

#[test]
fn nothing_starts_once_work_is_cancelled() {
    let ctx = Context::new(Limits::default(), 0, 1);
    ctx.cancel.store(true, Ordering::Relaxed);
    let mut b = batch(&[(1, 5, usize::MAX)], "k");
    let mut answers = Answers::default();
    run_batch(
        &ctx,
        &mut b,
        &mut IntoAnswers(&mut answers),
        &mut Budget::UNLIMITED.clone(),
        &mut Tally::default(),
        &mut Vec::new(),
    );
    assert!(answers.spans.is_empty() && answers.buf.is_empty());
    assert_eq!(b.len(), 5);
}

#[test]
fn moving_runs_between_batches_keeps_jobs_and_credits_together() {
    let mut a = batch(&[(1, 2, 10), (2, 3, 20)], "k");
    let mut b = Batch::default();
    a.move_last_run(&mut b);
    assert_eq!((a.len(), b.len()), (2, 3));
    assert_eq!(
        b.runs,
        [Run {
            conn: conn(2),
            jobs: 3,
            credit: 20
        }]
    );
    assert!(b.jobs.iter().all(|j| j.conn == conn(2)));
    let mut seen = Vec::new();
    a.move_all(&mut b);
    b.drain_runs(|run, jobs| seen.push((run.conn.index, jobs.count())));
    assert_eq!(seen, [(2, 3), (1, 2)]);
    assert!(b.is_empty() && b.runs.is_empty());
}

#[test]
fn a_shared_budget_gives_every_run_a_turn_and_no_run_more_than_its_share() {
    let ctx = Context::new(Limits::default(), 0, 1);
    ctx.store.put(b"small", &[1; 3000]).unwrap();
    let runs: Vec<(u32, u32, usize)> = (0..10).map(|c| (c, 20, usize::MAX)).collect();
    let mut b = batch(&runs, "small");
    let mut answers = Answers::default();
    // 30 kB for 10 runs: 3 kB each, one 3 kB answer per run; the last run gets its turn
    // although the earlier ones have spent the total between them.
    run_batch(
        &ctx,
        &mut b,
        &mut IntoAnswers(&mut answers),
        &mut Budget::shared(30_000, 10, usize::MAX),
        &mut Tally::default(),
        &mut Vec::new(),
    );
    let answered: Vec<u32> = answers.spans.iter().map(|s| s.answered).collect();
    assert_eq!(answered, [1; 10]);
    assert_eq!(b.runs.len(), 10);
    // The cap binds when few runs share a large budget.
    let mut b = batch(&[(1, 20, usize::MAX)], "small");
    let mut answers = Answers::default();
    run_batch(
        &ctx,
        &mut b,
        &mut IntoAnswers(&mut answers),
        &mut Budget::shared(1 << 30, 1, 9_000),
        &mut Tally::default(),
        &mut Vec::new(),
    );
    assert_eq!(answers.spans[0].answered, 3);
}
