//! The rate search: the highest open-loop rate whose corrected latency meets a target.
//!
//! The rate steps up by doubling from a start (or down by halving) until one rate
//! misses and one meets, then bisects between them until they are within 5%. Every
//! trial is a whole run with its own warm-up, so the server is judged in steady state.
//!
//! One noisy trial must not decide the answer (a single slow second at 4,000/s once
//! ended a search at 3,830/s for a server that met the target at 20,000/s), so a rate
//! that misses is tried again: it misses only when two trials of it miss, a third
//! deciding when the first two disagree. The report says how sure the result is: how
//! many trials at the answer met the target, and how many at the rate above it missed.

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
    /// The lowest rate judged to miss, if one was.
    pub failed_rate: Option<f64>,
}

impl Search {
    /// Trials at `rate`: (met, run).
    fn tally(&self, rate: f64) -> (usize, usize) {
        let at: Vec<&Trial> = self.trials.iter().filter(|t| t.rate == rate).collect();
        (at.iter().filter(|t| t.ok).count(), at.len())
    }

    /// How sure the answer is, in words.
    pub fn certainty(&self) -> String {
        let Some(max) = self.max_rate else {
            return "no rate met the target".into();
        };
        let (met, run) = self.tally(max);
        let mut s = format!("{max:.0} ops/s met the target in {met} of {run} trial(s)");
        if let Some(fail) = self.failed_rate {
            let (met_above, run_above) = self.tally(fail);
            s += &format!(
                "; {fail:.0} ops/s ({:+.0}%) missed it in {} of {run_above}",
                (fail / max - 1.0) * 100.0,
                run_above - met_above
            );
        } else {
            s += "; no higher rate was found to miss it";
        }
        s
    }
}

impl Search {
    /// The search as the JSON report's `find_max_rate` member.
    pub fn to_json(&self, slo: &Slo) -> Value {
        json!({
            "slo": slo.text,
            "quantile": slo.quantile,
            "target_us": slo.max_ns as f64 / 1e3,
            "max_rate_ops_per_sec": self.max_rate,
            "failed_rate_ops_per_sec": self.failed_rate,
            "certainty": self.certainty(),
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
    // A rate misses only when two of its trials do (the third decides a split).
    let mut judge_rate = |rate: f64, trials: &mut Vec<Trial>| -> Result<bool, Error> {
        if run_trial(rate, trials)? {
            return Ok(true);
        }
        if interrupted.load(Ordering::Relaxed) || !run_trial(rate, trials)? {
            return Ok(false);
        }
        if interrupted.load(Ordering::Relaxed) {
            return Ok(false);
        }
        run_trial(rate, trials)
    };
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let mut rate = settings.rate.unwrap_or(DEFAULT_START_RATE);
    let stop = || interrupted.load(Ordering::Relaxed);
    // Step up by doubling until a rate misses (or step down by halving until one meets).
    for _ in 0..MAX_STEPS {
        if stop() {
            break;
        }
        if judge_rate(rate, &mut trials)? {
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
            if judge_rate(mid, &mut trials)? {
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
        failed_rate: hi.is_finite().then_some(hi),
    })
}
