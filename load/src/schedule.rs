//! The open-loop schedule: when each request is due, decided before the run starts.
//!
//! Send `k` (counting from 0 over the whole run, all threads together) is due at
//! `k / rate` seconds after the start. Thread `t` of `T` owns the sends with
//! `k % T == t`, so the threads together keep exactly the global schedule and none of
//! them needs to talk to another. The first sends fall in the warm-up; the measured
//! ones follow. Everything here is arithmetic on integers and one `f64` period: no
//! clock, so it is tested without one.

/// Where the measured part of a run ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// Sends due within this many nanoseconds after the warm-up are measured.
    Duration(u64),
    /// This many sends after the warm-up are measured.
    Requests(u64),
}

/// A fixed-rate schedule split over threads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    period_ns: f64,
    /// First send whose due time is at or after the warm-up's end.
    measured_begin: u64,
    /// One past the last send of the run.
    end: u64,
    thread: u64,
    threads: u64,
}

impl Schedule {
    /// `rate` sends per second over all threads; this is the share of `thread`.
    ///
    /// # Panics
    /// When `rate` is not positive and finite, or `thread >= threads`.
    pub fn new(rate: f64, warmup_ns: u64, stop: Stop, thread: usize, threads: usize) -> Schedule {
        assert!(rate.is_finite() && rate > 0.0, "rate must be positive");
        assert!(thread < threads, "thread index out of range");
        let period_ns = 1e9 / rate;
        // Sends due before the warm-up ends: k * period < warmup  <=>  k < warmup / period.
        let measured_begin = count_before(warmup_ns as f64, period_ns);
        let end = match stop {
            Stop::Duration(ns) => count_before(warmup_ns as f64 + ns as f64, period_ns),
            Stop::Requests(n) => measured_begin + n,
        };
        Schedule {
            period_ns,
            measured_begin,
            end,
            thread: thread as u64,
            threads: threads as u64,
        }
    }

    /// Due time of global send `k`, in nanoseconds after the start.
    pub fn due_ns(&self, k: u64) -> u64 {
        (k as f64 * self.period_ns).round() as u64
    }

    /// True when global send `k` is measured (not warm-up).
    pub fn is_measured(&self, k: u64) -> bool {
        k >= self.measured_begin && k < self.end
    }

    /// The first global send this thread owns, or `None` when it owns none.
    pub fn first(&self) -> Option<u64> {
        self.at_or_after(0)
    }

    /// The send this thread owns after `k`.
    pub fn next(&self, k: u64) -> Option<u64> {
        self.at_or_after(k + 1)
    }

    fn at_or_after(&self, k: u64) -> Option<u64> {
        let rem = k % self.threads;
        let k = if rem <= self.thread {
            k - rem + self.thread
        } else {
            k - rem + self.threads + self.thread
        };
        (k < self.end).then_some(k)
    }

    /// Measured sends this thread owns.
    pub fn measured_for_thread(&self) -> u64 {
        owned_below(self.end, self.thread, self.threads)
            - owned_below(self.measured_begin, self.thread, self.threads)
    }

    /// Measured sends over all threads: what the run offers the server.
    #[cfg(test)]
    pub fn measured_total(&self) -> u64 {
        self.end - self.measured_begin
    }

    /// Due time of the first measured send, in nanoseconds after the start.
    #[cfg(test)]
    pub fn measured_start_ns(&self) -> u64 {
        self.due_ns(self.measured_begin)
    }

    /// Due time of the last send of the run, in nanoseconds after the start.
    pub fn last_due_ns(&self) -> u64 {
        self.due_ns(self.end.saturating_sub(1))
    }
}

/// How many `k >= 0` have `k * period < t`.
fn count_before(t: f64, period: f64) -> u64 {
    if t <= 0.0 {
        return 0;
    }
    let n = (t / period).ceil() as u64;
    // Guard the float division: the definition, not the rounding, decides.
    if n > 0 && ((n - 1) as f64 * period) >= t {
        n - 1
    } else {
        n
    }
}

/// How many `k < n` have `k % threads == thread`.
fn owned_below(n: u64, thread: u64, threads: u64) -> u64 {
    n / threads + u64::from(n % threads > thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn owned(s: &Schedule) -> Vec<u64> {
        let mut out = Vec::new();
        let mut k = s.first();
        while let Some(x) = k {
            out.push(x);
            k = s.next(x);
        }
        out
    }

    #[test]
    fn due_times_are_k_over_rate() {
        let s = Schedule::new(1000.0, 0, Stop::Duration(SEC), 0, 1);
        assert_eq!(s.due_ns(0), 0);
        assert_eq!(s.due_ns(1), 1_000_000);
        assert_eq!(s.due_ns(999), 999_000_000);
        assert_eq!(s.measured_total(), 1000);
        assert_eq!(s.last_due_ns(), 999_000_000);
    }

    #[test]
    fn warmup_sends_come_first_and_are_not_measured() {
        let s = Schedule::new(100.0, 2 * SEC, Stop::Duration(SEC), 0, 1);
        // 200 sends due in [0, 2s), then 100 measured in [2s, 3s).
        assert!(!s.is_measured(199));
        assert!(s.is_measured(200));
        assert!(s.is_measured(299));
        assert!(!s.is_measured(300));
        assert_eq!(s.measured_total(), 100);
        assert_eq!(s.measured_start_ns(), 2 * SEC);
        assert_eq!(owned(&s).len(), 300);
    }

    #[test]
    fn request_count_stop_measures_exactly_n() {
        let s = Schedule::new(333.0, SEC, Stop::Requests(1000), 0, 1);
        assert_eq!(s.measured_total(), 1000);
        assert_eq!(
            owned(&s).iter().filter(|&&k| s.is_measured(k)).count(),
            1000
        );
    }

    #[test]
    fn threads_partition_the_global_schedule() {
        for threads in 1..6 {
            let mut all = Vec::new();
            let mut measured = 0;
            for t in 0..threads {
                let s = Schedule::new(777.0, SEC / 3, Stop::Duration(SEC), t, threads);
                let mine = owned(&s);
                assert!(mine.iter().all(|k| k % threads as u64 == t as u64));
                assert!(mine.windows(2).all(|w| w[0] < w[1]));
                assert_eq!(
                    mine.iter().filter(|&&k| s.is_measured(k)).count() as u64,
                    s.measured_for_thread()
                );
                measured += s.measured_for_thread();
                all.extend(mine);
            }
            all.sort_unstable();
            let total = Schedule::new(777.0, SEC / 3, Stop::Duration(SEC), 0, 1);
            assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
            assert_eq!(measured, total.measured_total());
            assert_eq!(measured, 777);
        }
    }

    #[test]
    fn fractional_rates_keep_the_count() {
        // 2.5 per second for 4 seconds: due at 0, 0.4, ..., 3.6 s.
        let s = Schedule::new(2.5, 0, Stop::Duration(4 * SEC), 0, 1);
        assert_eq!(s.measured_total(), 10);
        assert_eq!(s.due_ns(9), 3_600_000_000);
    }

    #[test]
    fn a_thread_with_no_share_owns_nothing() {
        let s = Schedule::new(1.0, 0, Stop::Requests(2), 3, 4);
        assert_eq!(s.first(), None);
        assert_eq!(s.measured_for_thread(), 0);
    }

    #[test]
    fn count_before_is_exact_at_boundaries() {
        assert_eq!(count_before(0.0, 10.0), 0);
        assert_eq!(count_before(10.0, 10.0), 1);
        assert_eq!(count_before(10.5, 10.0), 2);
        assert_eq!(count_before(1e9, 1e6), 1000);
    }
}
