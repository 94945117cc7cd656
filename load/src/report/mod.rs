//! Turning the threads' measurements into one result: text for people, JSON for
//! scripts, and an SVG latency spectrum.
//!
//! Latencies are recorded in nanoseconds and reported in microseconds. "Response time"
//! is measured from each request's intended send time (the schedule's, in open loop),
//! so a stall that delays later sends is charged to them too; "service time" is
//! measured from the moment the request was actually written.

mod json;
pub mod plot;
mod text;

pub use json::{percentiles_us, to_json};
pub use text::to_text;

use hdrhistogram::Histogram;

/// Generator lag (p90) above which an open-loop run is reported client-bound: past
/// this the generator, not the server, decides when requests go out.
pub const CLIENT_LAG_LIMIT_NS: u64 = 1_000_000;

/// Nanosecond histogram from 1 ns to one hour at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Why requests failed, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// A response whose request id matches no request in flight.
    pub wrong_id: u64,
    /// A status (or layout) the request does not allow.
    pub wrong_status: u64,
    /// A GET value that is not the one derived from its key.
    pub wrong_value: u64,
    /// No response within `--timeout`.
    pub timeout: u64,
    /// The connection failed or closed with the request in flight.
    pub connection: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.wrong_id + self.wrong_status + self.wrong_value + self.timeout + self.connection
    }

    pub fn add(&mut self, o: &ErrorCounts) {
        self.wrong_id += o.wrong_id;
        self.wrong_status += o.wrong_status;
        self.wrong_value += o.wrong_value;
        self.timeout += o.timeout;
        self.connection += o.connection;
    }
}

/// What a run measured: each generator thread fills one, and the run's is their
/// [`absorb`](Outcome::absorb)ed sum, [`finish`](Outcome::finish)ed with the window,
/// the generator's CPU time and the client-bound verdict.
#[derive(Debug)]
pub struct Outcome {
    /// Response time from the intended send time (ns).
    pub corrected: Histogram<u64>,
    /// Response time from the actual send time (ns).
    pub service: Histogram<u64>,
    /// Actual minus intended send time (ns).
    pub lag: Histogram<u64>,
    /// Lag of sends that did not wait for a pipeline slot: the generator's own delay.
    pub generator_lag: Histogram<u64>,
    /// Measured requests answered without error (misses included).
    pub ops: u64,
    /// Measured requests sent.
    pub sent: u64,
    /// Measured requests the open-loop schedule offered (0 in closed loop).
    pub offered: u64,
    /// The offered rate in requests per second; `None` for a closed-loop run.
    pub rate: Option<f64>,
    pub misses: u64,
    pub cas_conflicts: u64,
    pub errors: ErrorCounts,
    /// Errors during the warm-up (not in `errors`, but still a failed check).
    pub warmup_errors: u64,
    /// Every request answered, warm-up included (for CPU per request).
    pub answered_all: u64,
    /// Measured sends that had to wait because every slot was busy.
    pub slot_waits: u64,
    /// First measured send's intended time and last measured response, ns since start.
    pub window: Option<(u64, u64)>,
    /// Measured answers by operation, in [`Op::ALL`](crate::workload::Op::ALL) order.
    pub per_op: [u64; 5],
    /// The measured window in seconds.
    pub duration_s: f64,
    /// The generator's own CPU time over the whole run (warm-up included), ns.
    pub cpu_user_ns: u64,
    pub cpu_sys_ns: u64,
    /// The first wrong response seen, for the report.
    pub first_error: Option<String>,
    /// Why some thread stopped before its share was done, if one did.
    pub gave_up: Option<String>,
    /// The run was interrupted (SIGINT, SIGTERM): it measured until then, not for the
    /// planned time.
    pub interrupted: bool,
    /// Connections re-opened after a loss (`--reconnect`).
    pub reconnects: u64,
    /// Why the numbers describe the generator rather than the server, if they do.
    pub client_bound: Option<String>,
}

impl Outcome {
    /// Nothing measured yet, for a run at `rate` (closed loop when `None`).
    pub fn new(rate: Option<f64>) -> Outcome {
        Outcome {
            corrected: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            generator_lag: new_histogram(),
            ops: 0,
            sent: 0,
            offered: 0,
            rate,
            misses: 0,
            cas_conflicts: 0,
            errors: ErrorCounts::default(),
            warmup_errors: 0,
            answered_all: 0,
            slot_waits: 0,
            window: None,
            per_op: [0; 5],
            duration_s: 0.0,
            cpu_user_ns: 0,
            cpu_sys_ns: 0,
            first_error: None,
            gave_up: None,
            interrupted: false,
            reconnects: 0,
            client_bound: None,
        }
    }

    /// Adds another thread's measurements to these.
    pub fn absorb(&mut self, r: Outcome) {
        let _ = self.corrected.add(&r.corrected);
        let _ = self.service.add(&r.service);
        let _ = self.lag.add(&r.lag);
        let _ = self.generator_lag.add(&r.generator_lag);
        self.ops += r.ops;
        self.sent += r.sent;
        self.offered += r.offered;
        self.misses += r.misses;
        self.cas_conflicts += r.cas_conflicts;
        self.errors.add(&r.errors);
        self.warmup_errors += r.warmup_errors;
        self.answered_all += r.answered_all;
        self.slot_waits += r.slot_waits;
        self.reconnects += r.reconnects;
        for (a, b) in self.per_op.iter_mut().zip(r.per_op) {
            *a += b;
        }
        self.first_error = self.first_error.take().or(r.first_error);
        self.gave_up = self.gave_up.take().or(r.gave_up);
        self.interrupted |= r.interrupted;
        if let Some((a, b)) = r.window {
            self.window = Some(match self.window {
                Some((x, y)) => (x.min(a), y.max(b)),
                None => (a, b),
            });
        }
    }

    /// Closes the run: `fixed_window_s` is the measured window when the run was
    /// bounded by time; otherwise (and in open loop when the last response came later)
    /// the window runs from the first intended send to the last response. `cpu_ns` is
    /// the generator's (user, system) CPU time.
    pub fn finish(&mut self, fixed_window_s: Option<f64>, cpu_ns: (u64, u64)) {
        let span_s = self.window.map_or(0.0, |(a, b)| (b - a) as f64 / 1e9);
        self.duration_s = match (fixed_window_s, self.rate) {
            // Open loop: a server that falls behind answers the window's requests after
            // it ends; the rate it really achieved is over the time it took.
            (Some(fixed), Some(_)) => fixed.max(span_s),
            (Some(fixed), None) => fixed,
            (None, _) => span_s,
        };
        (self.cpu_user_ns, self.cpu_sys_ns) = cpu_ns;
        if self.interrupted {
            // Measured until the interrupt, not for the planned time; and what was
            // scheduled after it was never due, so it says nothing of the generator.
            self.duration_s = span_s;
            if let Some(rate) = self.rate {
                let due = (rate * span_s).round() as u64;
                self.offered = self.offered.min(due.max(self.sent));
            }
            self.client_bound = None;
            return;
        }
        self.client_bound = self.judge_client_bound();
    }

    /// The measured requests an open-loop schedule offered; `None` in closed loop.
    pub fn offered(&self) -> Option<u64> {
        self.rate.map(|_| self.offered)
    }

    fn judge_client_bound(&self) -> Option<String> {
        let offered = self.offered()?;
        if (self.sent as f64) < 0.99 * offered as f64 {
            let why = if self.slot_waits * 2 > self.sent {
                "every pipeline slot was busy: the server is saturated at this rate, or \
                 --connections x --pipeline is too small for it"
            } else {
                "the generator could not send fast enough"
            };
            return Some(format!(
                "only {} of {} scheduled requests were sent: {why}",
                self.sent, offered
            ));
        }
        // Judged at p90, not p99: a generator too slow for the rate lags on most sends,
        // while a busy machine descheduling it now and then only moves the tail (which
        // the corrected latencies then show, and the text report notes).
        let p90 = self.generator_lag.value_at_quantile(0.9);
        if !self.generator_lag.is_empty() && p90 > CLIENT_LAG_LIMIT_NS {
            return Some(format!(
                "dispatch lag p90 was {:.0} us while pipeline slots were free: the generator \
                 did not keep the schedule",
                p90 as f64 / 1e3
            ));
        }
        None
    }

    /// A note when sends waited for a free pipeline slot: the server fell behind.
    pub fn saturation_note(&self) -> Option<String> {
        let offered = self.offered()?;
        (self.slot_waits * 100 > self.sent.max(1) && self.client_bound.is_none()).then(|| {
            format!(
                "note: {:.1}% of {} sends waited for a free pipeline slot: the server did not \
                 keep up with {:.0} ops/s (or --connections x --pipeline is too small for it)",
                100.0 * self.slot_waits as f64 / self.sent.max(1) as f64,
                offered,
                self.rate.unwrap_or(0.0)
            )
        })
    }

    /// A note when rare sends were late although slots were free.
    pub fn lag_note(&self) -> Option<String> {
        let p99 = self.generator_lag.value_at_quantile(0.99);
        (self.client_bound.is_none() && p99 > CLIENT_LAG_LIMIT_NS).then(|| {
            format!(
                "note: 1% of sends left over {:.0} us late with slots free (generator \
                 descheduled: a busy machine?); corrected latencies include that delay",
                p99 as f64 / 1e3
            )
        })
    }

    pub fn errors(&self) -> u64 {
        self.errors.total()
    }

    pub fn throughput(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.ops as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Generator CPU per answered request, warm-up included, in microseconds.
    pub fn cpu_us_per_request(&self) -> f64 {
        if self.answered_all == 0 {
            return 0.0;
        }
        (self.cpu_user_ns + self.cpu_sys_ns) as f64 / 1e3 / self.answered_all as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open-loop result with these counts and generator lags (ns).
    fn open_loop(sent: u64, offered: u64, slot_waits: u64, lags: &[u64]) -> Outcome {
        let mut generator_lag = new_histogram();
        for &l in lags {
            generator_lag.record(l).unwrap();
        }
        let thread = Outcome {
            generator_lag,
            ops: sent,
            sent,
            offered,
            answered_all: sent,
            slot_waits,
            ..Outcome::new(Some(1000.0))
        };
        let mut run = Outcome::new(Some(1000.0));
        run.absorb(thread);
        run.finish(Some(1.0), (0, 0));
        run
    }

    #[test]
    fn unsent_requests_make_a_run_client_bound_and_say_why() {
        let busy = open_loop(900, 1000, 800, &[1000; 100]);
        let why = busy.client_bound.expect("client-bound");
        assert!(
            why.contains("900 of 1000") && why.contains("pipeline slot"),
            "{why}"
        );
        let slow = open_loop(900, 1000, 0, &[1000; 900]);
        assert!(slow
            .client_bound
            .unwrap()
            .contains("generator could not send"));
        assert!(open_loop(995, 1000, 0, &[1000; 995]).client_bound.is_none());
    }

    #[test]
    fn lag_on_most_sends_is_client_bound_but_a_late_tail_is_only_noted() {
        let mut lags = vec![10_000u64; 850];
        lags.extend([5_000_000; 150]);
        let lagging = open_loop(1000, 1000, 0, &lags);
        assert!(lagging.client_bound.unwrap().contains("dispatch lag p90"));
        let mut lags = vec![10_000u64; 980];
        lags.extend([5_000_000; 20]);
        let tail = open_loop(1000, 1000, 0, &lags);
        assert!(tail.client_bound.is_none());
        assert!(tail.lag_note().unwrap().contains("late"));
        assert!(open_loop(1000, 1000, 0, &[10_000; 1000])
            .lag_note()
            .is_none());
    }
}
