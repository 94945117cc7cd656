//! The JSON document of a run, for scripts: every result with its unit in its name,
//! then the parameters the run was made with.

use super::Outcome;
use crate::workload::Op;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

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
        // (1/(1-p), µs) points of the corrected latency, for --plot-json.
        "latency_spectrum_us": super::plot::spectrum(&o.corrected)
            .into_iter()
            .map(|(x, us)| json!([x, us]))
            .collect::<Vec<_>>(),
        "service_time_us": percentiles_us(&o.service),
        "dispatch_lag_us": percentiles_us(&o.lag),
        "client_bound": o.client_bound.is_some(),
        "client_bound_reason": o.client_bound,
        "mode": if o.rate.is_some() { "open" } else { "closed" },
        "offered_rate_ops_per_sec": o.rate,
        "offered": o.offered(),
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
        "interrupted": o.interrupted,
        "reconnects": o.reconnects,
        "client_cpu_us_per_request": (o.cpu_us_per_request() * 1000.0).round() / 1000.0,
        "client_cpu_user_s": o.cpu_user_ns as f64 / 1e9,
        "client_cpu_sys_s": o.cpu_sys_ns as f64 / 1e9,
        "params": params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::new_histogram;

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
