//! Request latency inside the server, as a histogram: from the reactor loop iteration
//! that handed a request out for execution to the moment its answer was in its
//! connection's output queue. A request is handed out in the iteration that read it,
//! unless its connection still had a run executing (a pipelining client's requests
//! wait their turn, one run at a time), and jobs an executor gave back unstarted keep
//! their first stamp, so their wait counts. Time in the kernel's socket buffers, either
//! way, is outside what the server measures.
//!
//! Timing every request would cost a clock read and a histogram update each, a real
//! share of a pipelined GET's ~0.7 µs. Requests are handed out and answered in runs and
//! batches, so time is taken per batch instead. A run is stamped when it is handed out
//! with a clock reading the reactor already has (the iteration's, or a later one taken
//! for an earlier batch: [`Tally::stamp`]); once a batch's answers are queued the
//! reactor reads the clock once and files each of its runs' requests together in the
//! bucket of that run's elapsed time.
//!
//! Buckets double from 10 µs to about 1.3 s: finding one is a division by a constant
//! and a count of leading zeros. Only the reactor records, into a plain [`Tally`]; it
//! publishes into the shared [`Latency`] once per loop iteration, like the counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Finite buckets; one more counts what is beyond the last bound.
pub const BUCKETS: usize = 18;

// Each bucket, +Inf included, has a bit in `Tally::touched`.
const _: () = assert!(BUCKETS < u32::BITS as usize);

/// The first bucket's upper bound, in nanoseconds; each next one is twice the last.
const FIRST_BOUND_NS: u64 = 10_000;

/// The upper bound of finite bucket `i`, in nanoseconds.
pub const fn bound_ns(i: usize) -> u64 {
    FIRST_BOUND_NS << i
}

/// The bucket a duration of `ns` nanoseconds belongs to: the first whose bound is at
/// least `ns`, or [`BUCKETS`] (beyond the last bound).
#[inline]
pub fn bucket_of(ns: u64) -> usize {
    // For ns in (bound(i-1), bound(i)], (ns - 1) / FIRST is in [2^(i-1), 2^i): i bits.
    let q = ns.saturating_sub(1) / FIRST_BOUND_NS;
    ((u64::BITS - q.leading_zeros()) as usize).min(BUCKETS)
}

/// Counts per bucket (not cumulative), the last beyond every bound, and the sum of the
/// durations counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Requests per bucket.
    pub counts: [u64; BUCKETS + 1],
    /// Their durations added up, in nanoseconds.
    pub sum_ns: u64,
}

impl Snapshot {
    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound, in microseconds, of the bucket holding quantile `q` (0..=1) of
    /// the requests counted: no request in it took longer. 0 when nothing was counted;
    /// past the last bound, the last bound (as Prometheus's `histogram_quantile` does).
    pub fn quantile_bound_us(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        // The rank of the request at quantile q, from 1.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bound_ns(i.min(BUCKETS - 1)) / 1000;
            }
        }
        bound_ns(BUCKETS - 1) / 1000
    }

    /// `(upper bound in seconds, count)` per bucket, the last bound `f64::MAX` (which
    /// the exposition writes as `+Inf`), as Prometheus histograms are given.
    pub fn buckets_seconds(&self) -> [(f64, u64); BUCKETS + 1] {
        let mut out = [(f64::MAX, 0); BUCKETS + 1];
        for (i, (slot, n)) in out.iter_mut().zip(self.counts).enumerate() {
            if i < BUCKETS {
                slot.0 = bound_ns(i) as f64 / 1e9;
            }
            slot.1 = n;
        }
        out
    }

    /// The sum in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }
}

/// The published histogram, read by STATS and scrapes. Each figure is a `Relaxed`
/// atomic added to once per reactor iteration: a reader may see a bucket a moment
/// ahead of the sum, never a count going down.
#[derive(Debug, Default)]
pub struct Latency {
    counts: [AtomicU64; BUCKETS + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    /// Adds the reactor's tally and zeroes it.
    pub fn absorb(&self, tally: &mut Tally) {
        if tally.touched == 0 {
            return;
        }
        // Only the buckets this iteration touched: usually one or two of nineteen.
        let mut touched = tally.touched;
        while touched != 0 {
            let i = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            self.counts[i].fetch_add(tally.counts[i], Relaxed);
            tally.counts[i] = 0;
        }
        self.sum_ns.fetch_add(tally.sum_ns, Relaxed);
        tally.sum_ns = 0;
        tally.touched = 0;
    }

    /// The figures now.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            sum_ns: self.sum_ns.load(Relaxed),
            ..Snapshot::default()
        };
        for (n, shared) in s.counts.iter_mut().zip(&self.counts) {
            *n = shared.load(Relaxed);
        }
        s
    }
}

/// A point in time as this tally counts it: nanoseconds since its epoch. Stamps are
/// plain integers so that filing a run is a subtraction, not `Instant` arithmetic (a
/// call into the standard library and a normalisation, a third of the cost).
pub type Stamp = u64;

/// The reactor's recording: runs whose answers were queued since the last clock
/// reading, then their requests filed by elapsed time, until published.
#[derive(Debug)]
pub struct Tally {
    counts: [u64; BUCKETS + 1],
    sum_ns: u64,
    /// Bit `i` set when bucket `i` has counts not yet published.
    touched: u32,
    /// Runs answered and not yet filed: when each was stamped and how many requests,
    /// consecutive runs of one stamp merged (an inline batch's runs mostly share one).
    answered: Vec<(Stamp, u64)>,
    /// Where stamps count from.
    epoch: Instant,
    /// The last loop-iteration reading turned into a stamp, and that stamp: the
    /// iteration's runs share one conversion.
    converted: (Instant, Stamp),
    /// The latest clock reading taken here.
    latest: Stamp,
}

impl Default for Tally {
    fn default() -> Self {
        let epoch = Instant::now();
        Tally {
            counts: [0; BUCKETS + 1],
            sum_ns: 0,
            touched: 0,
            answered: Vec::new(),
            epoch,
            converted: (epoch, 0),
            latest: 0,
        }
    }
}

impl Tally {
    /// `n` requests handed out at `since` have their answers queued; they are filed at
    /// the next [`delivered`](Self::delivered).
    #[inline]
    pub fn answered(&mut self, since: Stamp, n: u32) {
        match self.answered.last_mut() {
            Some((at, count)) if *at == since => *count += u64::from(n),
            _ => self.answered.push((since, u64::from(n))),
        }
    }

    /// True when answered runs wait for [`delivered`](Self::delivered).
    #[inline]
    pub fn has_answered(&self) -> bool {
        !self.answered.is_empty()
    }

    /// The stamp of `t`.
    fn stamp_of(&self, t: Instant) -> Stamp {
        let d = t.saturating_duration_since(self.epoch);
        d.as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(d.subsec_nanos()))
    }

    /// A stamp for a run handed out now: the later of `now` (the loop iteration's
    /// clock reading) and the last reading taken here. It costs no clock reading and
    /// is never later than the truth; runs handed out after a batch was delivered in
    /// the same iteration (with `--workers 0`, or after a worker's answers) are not
    /// charged the time that batch took.
    #[inline]
    pub fn stamp(&mut self, now: Instant) -> Stamp {
        if now != self.converted.0 {
            self.converted = (now, self.stamp_of(now));
        }
        self.converted.1.max(self.latest)
    }

    /// Every run answered since the last call was queued by `at`: files its requests.
    pub fn delivered(&mut self, at: Stamp) {
        self.latest = self.latest.max(at);
        for &(since, n) in &self.answered {
            let ns = at.saturating_sub(since);
            let b = bucket_of(ns);
            self.counts[b] += n;
            self.touched |= 1 << b;
            self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(n));
        }
        self.answered.clear();
    }

    /// Reads the clock and files the runs answered since the last call, if any: the
    /// one clock reading a batch costs.
    #[inline]
    pub fn delivered_now(&mut self) {
        if self.has_answered() {
            let at = self.stamp_of(Instant::now());
            self.delivered(at);
        }
    }

    /// What is filed and not yet published.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self.counts,
            sum_ns: self.sum_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_duration_goes_to_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(10_000), 0);
        assert_eq!(bucket_of(10_001), 1);
        assert_eq!(bucket_of(20_000), 1);
        assert_eq!(bucket_of(20_001), 2);
        for i in 0..BUCKETS {
            assert_eq!(bucket_of(bound_ns(i)), i, "at bound {i}");
            assert_eq!(bucket_of(bound_ns(i) + 1), i + 1, "past bound {i}");
        }
        assert_eq!(bucket_of(bound_ns(BUCKETS - 1) + 1), BUCKETS);
        assert_eq!(bucket_of(u64::MAX), BUCKETS);
        // From 10 µs to past a second.
        assert_eq!(bound_ns(0), 10_000);
        assert!(bound_ns(BUCKETS - 1) > 1_000_000_000);
    }

    #[test]
    fn a_batch_files_each_run_by_its_own_stamp_with_one_clock_reading() {
        let mut tally = Tally::default();
        let t0 = 1_000_000;
        tally.answered(t0, 3);
        tally.answered(t0, 2);
        tally.answered(t0 + 450_000, 4);
        assert_eq!(tally.answered.len(), 2, "runs of one stamp merge");
        tally.delivered(t0 + 500_000);
        assert!(!tally.has_answered());
        let s = tally.snapshot();
        // 5 requests at 500 µs (bucket 640 µs), 4 at 50 µs (bucket 80 µs).
        assert_eq!(s.counts[bucket_of(500_000)], 5);
        assert_eq!(s.counts[bucket_of(50_000)], 4);
        assert_eq!(bound_ns(bucket_of(500_000)), 640_000);
        assert_eq!(bound_ns(bucket_of(50_000)), 80_000);
        assert_eq!(s.count(), 9);
        assert_eq!(s.sum_ns, 5 * 500_000 + 4 * 50_000);
        assert_eq!(s.quantile_bound_us(0.5), 640);
        assert_eq!(s.quantile_bound_us(0.4), 80);
        assert_eq!(s.quantile_bound_us(0.99), 640);

        let shared = Latency::default();
        shared.absorb(&mut tally);
        assert_eq!(shared.snapshot(), s);
        assert_eq!(tally.snapshot(), Snapshot::default(), "absorbing zeroes");
        shared.absorb(&mut tally);
        assert_eq!(shared.snapshot(), s, "nothing new, nothing added");
    }

    #[test]
    fn stamps_follow_the_clock_and_never_go_back() {
        let mut tally = Tally::default();
        let now = tally.epoch + Duration::from_micros(100);
        assert_eq!(tally.stamp(now), 100_000);
        // A reading taken for a batch later in the iteration serves the runs after it.
        tally.answered(100_000, 1);
        tally.delivered(250_000);
        assert_eq!(tally.stamp(now), 250_000);
        // The next iteration's reading is later still.
        assert_eq!(tally.stamp(now + Duration::from_micros(200)), 300_000);
        // A run answered before it was stamped (which cannot happen) counts as none.
        tally.answered(400_000, 1);
        tally.delivered(300_000);
        assert_eq!(tally.snapshot().counts[0], 1);
    }

    #[test]
    fn exposition_buckets_end_at_infinity_and_quantiles_past_the_last_bound_hold() {
        let mut s = Snapshot::default();
        assert_eq!(s.quantile_bound_us(0.99), 0, "nothing counted");
        s.counts[BUCKETS] = 1;
        let b = s.buckets_seconds();
        assert_eq!(b[0], (1e-5, 0));
        assert_eq!(b[BUCKETS], (f64::MAX, 1));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s.quantile_bound_us(0.5), bound_ns(BUCKETS - 1) / 1000);
    }
}
