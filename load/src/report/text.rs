//! The text report, for people: one header, the counts, a latency table, and a line
//! for every error, early stop or warning a reader should not miss.

use super::Outcome;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

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
    if let (Some(rate), Some(offered)) = (o.rate, o.offered()) {
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
