//! The rate search: the highest open-loop rate whose corrected latency meets a target.
//!
//! The rate steps up by doubling from a start (or down by halving) until one trial
//! misses and one meets, then bisects between them until they are within 5%. Every
//! trial is a whole run with its own warm-up, so the server is judged in steady state.

use crate::engine::Progress;
use crate::report::Outcome;
use crate::run::{run, Run};
use crate::settings::{Error, Settings, Slo};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Rate of the first trial when the settings give none.
const DEFAULT_START_RATE: f64 = 1000.0;
/// Trials while stepping, and while bisecting, at most.
const MAX_STEPS: usize = 24;
const MAX_BISECTIONS: usize = 8;
/// The search ends when the passing and failing rates are this close.
const PRECISION: f64 = 1.05;

/// One trial of the search.
#[derive(Clone, Debug)]
pub struct Trial {
    pub rate: f64,
    /// The target's percentile of corrected latency, in microseconds.
    pub latency_us: f64,
    pub ok: bool,
    /// Why it failed apart from latency, or what it noticed (generator lag).
    pub note: String,
}

/// The search's result.
#[derive(Debug)]
pub struct Search {
    /// The best passing trial's run, or the last trial's when none passed.
    pub shown: Run,
    /// The highest rate that met the target, if any did.
    pub max_rate: Option<f64>,
    pub trials: Vec<Trial>,
}

impl Search {
    /// The search as the JSON report's `find_max_rate` member.
    pub fn to_json(&self, slo: &Slo) -> Value {
        json!({
            "slo": slo.text,
            "quantile": slo.quantile,
            "target_us": slo.max_ns as f64 / 1e3,
            "max_rate_ops_per_sec": self.max_rate,
            "trials": self.trials.iter().map(|t| json!({
                "rate": t.rate, "latency_us": t.latency_us, "ok": t.ok, "note": t.note,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Whether a trial's outcome meets `slo`, its latency at the target's percentile in
/// microseconds, and why it failed otherwise (or what was noticed).
pub fn judge(slo: &Slo, o: &Outcome) -> (bool, f64, String) {
    let lat = o.corrected.value_at_quantile(slo.quantile);
    let lat_us = lat as f64 / 1e3;
    if o.errors() > 0 {
        return (false, lat_us, format!("{} errors", o.errors()));
    }
    if let Some(why) = &o.gave_up {
        return (false, lat_us, why.clone());
    }
    // A rate that was not even sent fails. Generator lag alone does not: it is already
    // part of the corrected latency the target is judged on, so it can only make the
    // answer more conservative; it is noted with the trial.
    if o.offered()
        .is_some_and(|off| (o.sent as f64) < 0.99 * off as f64)
    {
        return (false, lat_us, o.client_bound.clone().unwrap_or_default());
    }
    if o.corrected.is_empty() {
        return (false, lat_us, "no responses".into());
    }
    let ok = lat <= slo.max_ns;
    (ok, lat_us, o.client_bound.clone().unwrap_or_default())
}

/// Searches for the highest rate meeting `slo`, starting from `settings.rate` (or
/// 1000/s). `on_trial` sees each trial as it ends; `watch` is passed to every run.
/// Setting `interrupted` ends the search after the trial under way.
pub fn find_max_rate(
    settings: &Settings,
    addrs: &[SocketAddr],
    slo: &Slo,
    interrupted: &Arc<AtomicBool>,
    on_trial: &mut dyn FnMut(&Trial),
    watch: &mut dyn FnMut(&Progress, Duration),
) -> Result<Search, Error> {
    let mut trials: Vec<Trial> = Vec::new();
    let mut best: Option<Run> = None;
    let mut last: Option<Run> = None;
    let mut run_trial = |rate: f64, trials: &mut Vec<Trial>| -> Result<bool, Error> {
        let r = run(settings, addrs, Some(rate), interrupted, watch)?;
        let (ok, latency_us, note) = judge(slo, &r.outcome);
        let trial = Trial {
            rate,
            latency_us,
            ok,
            note,
        };
        on_trial(&trial);
        trials.push(trial);
        if ok {
            best = Some(r);
        } else {
            last = Some(r);
        }
        Ok(ok)
    };
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let mut rate = settings.rate.unwrap_or(DEFAULT_START_RATE);
    let stop = || interrupted.load(Ordering::Relaxed);
    // Step up by doubling until a rate misses (or step down by halving until one meets).
    for _ in 0..MAX_STEPS {
        if stop() {
            break;
        }
        if run_trial(rate, &mut trials)? {
            lo = rate;
            if hi.is_finite() {
                break;
            }
            rate *= 2.0;
        } else {
            hi = rate;
            if lo > 0.0 {
                break;
            }
            rate /= 2.0;
            if rate < 1.0 {
                break;
            }
        }
    }
    if lo > 0.0 && hi.is_finite() {
        for _ in 0..MAX_BISECTIONS {
            if hi / lo <= PRECISION || stop() {
                break;
            }
            let mid = (lo * hi).sqrt();
            if run_trial(mid, &mut trials)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let shown = best
        .or(last)
        .ok_or_else(|| Error::Failed("the rate search ran no trial".into()))?;
    Ok(Search {
        shown,
        max_rate: (lo > 0.0).then_some(lo),
        trials,
    })
}
