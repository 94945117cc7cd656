//! Turning the threads' measurements into one result: text for people, JSON for
//! scripts, and an SVG latency spectrum.
//!
//! Latencies are recorded in nanoseconds and reported in microseconds. "Response time"
//! is measured from each request's intended send time (the schedule's, in open loop),
//! so a stall that delays later sends is charged to them too; "service time" is
//! measured from the moment the request was actually written.

use crate::conn::{new_histogram, ErrorCounts, ThreadResult};
use crate::workload::Op;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

/// Generator lag (p90) above which an open-loop run is reported client-bound: past
/// this the generator, not the server, decides when requests go out.
pub const CLIENT_LAG_LIMIT_NS: u64 = 1_000_000;

/// Everything one run measured, merged over threads.
#[derive(Debug)]
pub struct Outcome {
    pub corrected: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub generator_lag: Histogram<u64>,
    pub ops: u64,
    pub sent: u64,
    /// Measured requests the schedule offered (open loop only).
    pub offered: Option<u64>,
    pub rate: Option<f64>,
    pub misses: u64,
    pub cas_conflicts: u64,
    pub errors: ErrorCounts,
    pub warmup_errors: u64,
    pub answered_all: u64,
    pub slot_waits: u64,
    pub per_op: [u64; 5],
    /// The measured window in seconds.
    pub duration_s: f64,
    /// The generator's own CPU time over the whole run (warm-up included), ns.
    pub cpu_user_ns: u64,
    pub cpu_sys_ns: u64,
    pub first_error: Option<String>,
    /// Why some thread stopped early (connections lost), if one did.
    pub gave_up: Option<String>,
    pub reconnects: u64,
    pub client_bound: Option<String>,
}

impl Outcome {
    /// Merges the threads' results. `fixed_window_s` is the measured window when the
    /// run was bounded by time; otherwise (and in open loop when the last response
    /// came later) the window runs from the first intended send to the last response.
    pub fn merge(
        results: Vec<ThreadResult>,
        rate: Option<f64>,
        fixed_window_s: Option<f64>,
        cpu_ns: (u64, u64),
    ) -> Outcome {
        let mut o = Outcome {
            corrected: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            generator_lag: new_histogram(),
            ops: 0,
            sent: 0,
            offered: rate.map(|_| 0),
            rate,
            misses: 0,
            cas_conflicts: 0,
            errors: ErrorCounts::default(),
            warmup_errors: 0,
            answered_all: 0,
            slot_waits: 0,
            per_op: [0; 5],
            duration_s: 0.0,
            cpu_user_ns: cpu_ns.0,
            cpu_sys_ns: cpu_ns.1,
            first_error: None,
            gave_up: None,
            reconnects: 0,
            client_bound: None,
        };
        let mut window: Option<(u64, u64)> = None;
        for r in results {
            let _ = o.corrected.add(&r.corrected);
            let _ = o.service.add(&r.service);
            let _ = o.lag.add(&r.lag);
            let _ = o.generator_lag.add(&r.generator_lag);
            o.ops += r.ops;
            o.sent += r.sent;
            if let Some(off) = o.offered.as_mut() {
                *off += r.offered;
            }
            o.misses += r.misses;
            o.cas_conflicts += r.cas_conflicts;
            o.errors.add(&r.errors);
            o.warmup_errors += r.warmup_errors;
            o.answered_all += r.answered_all;
            o.slot_waits += r.slot_waits;
            o.reconnects += r.reconnects;
            for (a, b) in o.per_op.iter_mut().zip(r.per_op) {
                *a += b;
            }
            if o.first_error.is_none() {
                o.first_error = r.first_error;
            }
            if o.gave_up.is_none() {
                o.gave_up = r.gave_up;
            }
            if let Some((a, b)) = r.window {
                window = Some(match window {
                    Some((x, y)) => (x.min(a), y.max(b)),
                    None => (a, b),
                });
            }
        }
        let span_s = window.map_or(0.0, |(a, b)| (b - a) as f64 / 1e9);
        o.duration_s = match (fixed_window_s, rate) {
            // Open loop: a server that falls behind answers the window's requests after
            // it ends; the rate it really achieved is over the time it took.
            (Some(fixed), Some(_)) => fixed.max(span_s),
            (Some(fixed), None) => fixed,
            (None, _) => span_s,
        };
        o.client_bound = o.judge_client_bound();
        o
    }

    fn judge_client_bound(&self) -> Option<String> {
        let offered = self.offered?;
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
        let offered = self.offered?;
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

/// Percentiles of a nanosecond histogram, in microseconds.
pub fn percentiles_us(h: &Histogram<u64>) -> Value {
    let q = |q: f64| us(h.value_at_quantile(q));
    if h.is_empty() {
        return json!({"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "mean": 0.0});
    }
    json!({
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p999": q(0.999),
        "max": us(h.max()),
        "mean": (h.mean() / 1e3 * 1000.0).round() / 1000.0,
    })
}

fn us(ns: u64) -> f64 {
    // Three decimals: the histogram's own resolution is ~0.1% anyway.
    (ns as f64 / 1e3 * 1000.0).round() / 1000.0
}

/// The JSON document: results first, then how the run was made (`params`).
pub fn to_json(o: &Outcome, params: Value) -> Value {
    let per_op: serde_json::Map<String, Value> = Op::ALL
        .iter()
        .zip(o.per_op)
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| (op.name().to_string(), json!(n)))
        .collect();
    json!({
        "ops": o.ops,
        "duration_s": o.duration_s,
        "throughput_ops_per_sec": o.throughput(),
        "errors": o.errors(),
        "misses": o.misses,
        "latency_us": percentiles_us(&o.corrected),
        "service_time_us": percentiles_us(&o.service),
        "dispatch_lag_us": percentiles_us(&o.lag),
        "client_bound": o.client_bound.is_some(),
        "client_bound_reason": o.client_bound,
        "mode": if o.rate.is_some() { "open" } else { "closed" },
        "offered_rate_ops_per_sec": o.rate,
        "offered": o.offered,
        "sent": o.sent,
        "slot_waits": o.slot_waits,
        "cas_conflicts": o.cas_conflicts,
        "ops_by_type": per_op,
        "error_kinds": {
            "wrong_id": o.errors.wrong_id,
            "wrong_status": o.errors.wrong_status,
            "wrong_value": o.errors.wrong_value,
            "timeout": o.errors.timeout,
            "connection": o.errors.connection,
        },
        "warmup_errors": o.warmup_errors,
        "answered_total": o.answered_all,
        "first_error": o.first_error,
        "stopped_early": o.gave_up,
        "reconnects": o.reconnects,
        "client_cpu_us_per_request": (o.cpu_us_per_request() * 1000.0).round() / 1000.0,
        "client_cpu_user_s": o.cpu_user_ns as f64 / 1e9,
        "client_cpu_sys_s": o.cpu_sys_ns as f64 / 1e9,
        "params": params,
    })
}

fn fmt_us(ns: u64) -> String {
    let us = ns as f64 / 1e3;
    if us >= 10_000.0 {
        format!("{:.1}ms", us / 1e3)
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

/// The text report.
pub fn to_text(o: &Outcome, header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}");
    let _ = writeln!(
        s,
        "  measured {:.2} s: {} ops, {:.0} ops/s, {} errors, {} misses{}",
        o.duration_s,
        o.ops,
        o.throughput(),
        o.errors(),
        o.misses,
        if o.cas_conflicts > 0 {
            format!(", {} cas conflicts", o.cas_conflicts)
        } else {
            String::new()
        }
    );
    if let (Some(rate), Some(offered)) = (o.rate, o.offered) {
        let _ = writeln!(
            s,
            "  offered {rate:.0} ops/s: {} of {offered} scheduled requests sent",
            o.sent
        );
    }
    let _ = writeln!(
        s,
        "  {:<28}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (us)", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, h: &Histogram<u64>| {
        if h.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "  {:<28}{:>9}{:>9}{:>9}{:>9}{:>9}",
            name,
            fmt_us(h.value_at_quantile(0.5)),
            fmt_us(h.value_at_quantile(0.9)),
            fmt_us(h.value_at_quantile(0.99)),
            fmt_us(h.value_at_quantile(0.999)),
            fmt_us(h.max()),
        );
    };
    if o.rate.is_some() {
        row("response (from intended)", &o.corrected);
        row("service (from actual send)", &o.service);
        row("dispatch lag", &o.lag);
    } else {
        row("response (closed loop)", &o.corrected);
    }
    let _ = writeln!(
        s,
        "  generator CPU: {:.2} us per request",
        o.cpu_us_per_request()
    );
    if o.errors() > 0 || o.warmup_errors > 0 {
        let e = &o.errors;
        let _ = writeln!(
            s,
            "  errors: {} wrong id, {} wrong status, {} wrong value, {} timeout, {} connection; {} during warm-up",
            e.wrong_id, e.wrong_status, e.wrong_value, e.timeout, e.connection, o.warmup_errors
        );
    }
    if let Some(why) = &o.gave_up {
        let _ = writeln!(s, "  STOPPED EARLY: {why}");
    }
    if o.reconnects > 0 {
        let _ = writeln!(s, "  connections re-opened: {}", o.reconnects);
    }
    if let Some(first) = &o.first_error {
        let _ = writeln!(s, "  first error: {first}");
    }
    for note in [o.saturation_note(), o.lag_note()].into_iter().flatten() {
        let _ = writeln!(s, "  {note}");
    }
    if let Some(why) = &o.client_bound {
        let _ = writeln!(
            s,
            "  CLIENT-BOUND: {why}; these numbers describe the generator, not the server"
        );
    }
    s
}

/// Label of x = 1/(1-p) as a percentile: 1 -> 0%, 10 -> 90%, 1000 -> 99.9%.
fn percentile_label(x: f64) -> String {
    if x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

/// One line of the plot: its legend, its (1/(1-p), µs) points and its colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, plotters::style::RGBColor);

/// Draws the latency percentile spectrum of the corrected and service-time
/// histograms: x is 1/(1-p) on a log scale, as HdrHistogram's plotter draws it.
pub fn plot(o: &Outcome, path: &Path, title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let mut series: Vec<Series> = Vec::new();
    let named: [(&str, &Histogram<u64>, RGBColor); 2] = if o.rate.is_some() {
        [
            ("response time (from intended send)", &o.corrected, RED),
            ("service time (from actual send)", &o.service, BLUE),
        ]
    } else {
        [
            ("response time (closed loop)", &o.corrected, RED),
            ("", &o.service, BLUE),
        ]
    };
    for (name, h, color) in named {
        if name.is_empty() || h.is_empty() {
            continue;
        }
        // Points up to the percentile the sample count can still resolve.
        let x_max = (h.len() as f64).max(10.0);
        let mut pts = Vec::new();
        let mut i = 0;
        loop {
            let x = 10f64.powf(i as f64 / 20.0);
            if x > x_max {
                break;
            }
            let q = 1.0 - 1.0 / x;
            pts.push((x, h.value_at_quantile(q) as f64 / 1e3));
            i += 1;
        }
        pts.push((x_max, h.max() as f64 / 1e3));
        series.push((name, pts, color));
    }
    if series.is_empty() {
        return Err("no latencies were recorded, nothing to plot".into());
    }
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(10.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (name, pts, color) in series {
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
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
        let r = ThreadResult {
            corrected: new_histogram(),
            service: new_histogram(),
            lag: new_histogram(),
            generator_lag,
            ops: sent,
            sent,
            offered,
            misses: 0,
            cas_conflicts: 0,
            errors: ErrorCounts::default(),
            warmup_errors: 0,
            answered_all: sent,
            slot_waits,
            window: None,
            per_op: [0; 5],
            first_error: None,
            gave_up: None,
            reconnects: 0,
        };
        Outcome::merge(vec![r], Some(1000.0), Some(1.0), (0, 0))
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

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(10000.0), "99.99%");
    }

    #[test]
    fn percentiles_are_in_microseconds() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = percentiles_us(&h);
        let p50 = p["p50"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        let max = p["max"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&max), "{max}");
    }
}
