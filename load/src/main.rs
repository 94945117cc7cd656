//! The `switchboard-load` binary: flags in, report out. The work is in the library.

use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_load::engine::Progress;
use switchboard_load::pubsub::{self, Workload};
use switchboard_load::report::plot;
use switchboard_load::search::{self, Search, Trial};
use switchboard_load::settings::parse_slo;
use switchboard_load::{report, run, Error, Outcome, Run, Settings, Slo};

/// Load generator for switchboard, Redis (RESP) and memcached (text protocol).
///
/// Closed loop by default: every connection keeps --pipeline requests in flight and
/// the result is the server's throughput. With --rate the run is open loop: request k
/// is due at start + k/rate whatever the server does, and latency is measured from
/// that intended time (corrected for coordinated omission).
///
/// Keys are named key:000000000042 like redis-benchmark's; values are derived from
/// key and length, so any GET of a key any run wrote is checked byte for byte.
#[derive(Parser, Debug)]
#[command(name = "switchboard-load", version, verbatim_doc_comment)]
struct Args {
    #[command(flatten)]
    settings: Settings,

    /// Search for the highest --rate whose corrected latency meets --slo: step the rate
    /// up (from --rate, or 1000) until it fails, then bisect. Each trial lasts
    /// --warmup + --duration.
    #[arg(long)]
    find_max_rate: bool,

    /// Latency target, as pNN=TIME (p50, p90, p99, p999, ...): what --find-max-rate
    /// searches for (p99=1ms when not given), and a line on --plot.
    #[arg(long, value_parser = parse_slo)]
    slo: Option<Slo>,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Draw the latency percentile spectrum to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// Instead of running, draw the spectra of these earlier runs' --json files on one
    /// --plot, for comparison.
    #[arg(long, value_name = "RUN.json", num_args = 1.., requires = "plot")]
    plot_json: Vec<PathBuf>,

    /// Write the corrected latency histogram in HdrHistogram's percentile-distribution
    /// text format (microseconds) to this file, for the standard tools.
    #[arg(long, value_name = "FILE")]
    hdr: Option<PathBuf>,

    /// Exit 0 even when some responses were wrong or missing.
    #[arg(long)]
    allow_errors: bool,

    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Exit status after an interrupt, as a shell reports a SIGINT'd program.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.settings.default_addr();
    match main_with(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The target --find-max-rate searches for when --slo is not given.
fn default_slo() -> Slo {
    parse_slo("p99=1ms").expect("a valid default")
}

/// The target of this search.
fn search_slo(args: &Args) -> Slo {
    args.slo.clone().unwrap_or_else(default_slo)
}

/// --plot-json: several earlier runs' spectra on one plot; nothing runs.
fn plot_runs(args: &Args, out: &Path) -> Result<u8, Error> {
    let mut series = Vec::new();
    for file in &args.plot_json {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::Usage(format!("reading {}: {e}", file.display())))?;
        let doc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{} is not JSON: {e}", file.display())))?;
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        series.push(plot::json_series(&doc, &name).map_err(Error::Usage)?);
    }
    let line = args
        .slo
        .as_ref()
        .map(|s| (s.text.as_str(), s.max_ns as f64 / 1e3));
    let title = format!("{} runs compared", series.len());
    plot::draw(&series, out, &title, line).map_err(Error::Failed)?;
    Ok(0)
}

fn main_with(args: &Args) -> Result<u8, Error> {
    check_outputs(args)?;
    if let (false, Some(out)) = (args.plot_json.is_empty(), &args.plot) {
        return plot_runs(args, out);
    }
    let addrs = args.settings.resolve()?;
    // The first Ctrl-C (or SIGTERM) ends the run early with a report of what was
    // measured; a second one exits at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            INTERRUPTED.into(),
            Arc::clone(&interrupted),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&interrupted)))
        .map_err(|e| Error::Failed(format!("installing a signal handler: {e}")))?;
    }
    let mut printer = ProgressLine::new(args);
    let mut watch = |p: &Progress, elapsed: Duration| printer.show(p, elapsed);
    let was_interrupted = || interrupted.load(Ordering::Relaxed);
    if args.settings.workload != Workload::Kv {
        let (outcome, params) = pubsub::run(&args.settings, &addrs, &interrupted)?;
        let s = &args.settings;
        let header = format!(
            "switchboard-load: {} {}, {} {}, {} {}, pipeline {}, payload {} B",
            s.protocol.name(),
            s.addrs.join(","),
            s.publishers,
            if s.workload == Workload::Watch {
                "writer(s)"
            } else {
                "publisher(s)"
            },
            s.subscribers,
            if s.workload == Workload::Watch {
                "watcher(s)"
            } else {
                "subscriber(s)"
            },
            s.pipeline,
            s.value_size,
        );
        print!("{}", outcome.to_text(&header));
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&outcome.to_json(params))
                .expect("JSON of plain values");
            std::fs::write(path, text + "\n")
                .map_err(|e| Error::Failed(format!("writing {}: {e}", path.display())))?;
        }
        if was_interrupted() {
            return Ok(INTERRUPTED);
        }
        let silent = outcome.silent_errors();
        if silent > 0 && !args.allow_errors {
            eprintln!(
                "switchboard-load: {silent} deliveries were missing, duplicated or out of \
                 order, or sends failed (--allow-errors to accept)"
            );
            return Ok(1);
        }
        return Ok(0);
    }
    if !args.find_max_rate {
        let r = run(
            &args.settings,
            &addrs,
            args.settings.rate,
            &interrupted,
            &mut watch,
        )?;
        let code = finish(args, &r, None)?;
        return Ok(if was_interrupted() { INTERRUPTED } else { code });
    }
    let slo = args.slo.clone().unwrap_or_else(default_slo);
    let quantile = slo.text.split('=').next().unwrap_or("p99").to_string();
    let mut on_trial = |t: &Trial| {
        let note = if t.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.note)
        };
        eprintln!(
            "find-max-rate: {:.0} ops/s -> {quantile} {:.1} us: {}{note}",
            t.rate,
            t.latency_us,
            if t.ok { "meets" } else { "misses" },
        );
    };
    let s = search::find_max_rate(
        &args.settings,
        &addrs,
        &slo,
        &interrupted,
        &mut on_trial,
        &mut watch,
    )?;
    if let Some(rate) = s.max_rate {
        eprintln!(
            "find-max-rate: highest rate meeting {} is {rate:.0} ops/s ({})",
            slo.text,
            s.certainty()
        );
    }
    let code = finish(args, &s.shown, Some(&s))?;
    if was_interrupted() {
        return Ok(INTERRUPTED);
    }
    if s.max_rate.is_none() {
        let lowest = s
            .trials
            .iter()
            .map(|t| t.rate)
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "switchboard-load: no rate met {} (lowest tried {lowest:.0} ops/s)",
            slo.text
        );
        return Ok(1);
    }
    Ok(code)
}

/// Checks the files the report will be written to before anything runs, so a bad
/// path does not cost the whole run: each must be creatable, and the plot is SVG.
fn check_outputs(args: &Args) -> Result<(), Error> {
    if let Some(plot) = &args.plot {
        let svg = plot
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
        if !svg {
            return Err(Error::Usage(format!(
                "--plot writes SVG: name the file .svg (got {})",
                plot.display()
            )));
        }
    }
    for path in [&args.json, &args.plot, &args.hdr].into_iter().flatten() {
        let existed = path.exists();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
        if !existed {
            // Only a probe: the report writes it at the end.
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// The once-a-second progress line on stderr: that second's throughput and latency
/// percentiles (not the run's so far), labelled as such.
struct ProgressLine {
    quiet: bool,
    warmup: Duration,
    next: Duration,
    last_elapsed: Duration,
    last_ops: u64,
    /// The latency histogram as it was at the last line, to take this second's out.
    last_latency: Option<hdrhistogram::Histogram<u64>>,
}

impl ProgressLine {
    fn new(args: &Args) -> ProgressLine {
        ProgressLine {
            quiet: args.quiet,
            warmup: args.settings.warmup,
            next: Duration::from_secs(1),
            last_elapsed: Duration::ZERO,
            last_ops: 0,
            last_latency: None,
        }
    }

    fn show(&mut self, progress: &Progress, elapsed: Duration) {
        if elapsed < self.last_elapsed {
            // A new run (the next trial of a search) started its clock and counters.
            self.next = Duration::from_secs(1);
            self.last_ops = 0;
            self.last_latency = None;
        }
        self.last_elapsed = elapsed;
        if self.quiet || elapsed < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        let ops = progress.completed.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let per_second = ops.saturating_sub(self.last_ops);
        self.last_ops = ops;
        if elapsed < self.warmup {
            eprintln!(
                "[{:>5.1}s] warm-up: {per_second} ops in the last second, errors {errors}",
                elapsed.as_secs_f64()
            );
            return;
        }
        // This second's latencies: the run's histogram minus the one at the last line.
        let now = match progress.latency.lock() {
            Ok(h) => h.clone(),
            Err(_) => return,
        };
        let mut second = now.clone();
        if let Some(before) = &self.last_latency {
            if second.subtract(before).is_err() {
                second = now.clone();
            }
        }
        self.last_latency = Some(now);
        let (p50, p99) = if second.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                second.value_at_quantile(0.5) as f64 / 1e3,
                second.value_at_quantile(0.99) as f64 / 1e3,
            )
        };
        eprintln!(
            "[{:>5.1}s] last second: {per_second:>9} ops/s  p50 {p50:>8.1} us  p99 {p99:>8.1} us  \
             errors so far {errors}",
            elapsed.as_secs_f64(),
        );
    }
}

/// Prints the report, writes the files asked for, and decides the exit status.
fn finish(args: &Args, r: &Run, search: Option<&Search>) -> Result<u8, Error> {
    let s = &args.settings;
    let o: &Outcome = &r.outcome;
    let mode = match o.rate {
        Some(r) => format!("open loop at {r:.0} ops/s"),
        None => "closed loop".to_string(),
    };
    let header = format!(
        "switchboard-load: {} {}, {} connections, {} thread(s), pipeline {}, {}\n  mix {}, {} keys {}, values {} B",
        s.protocol.name(),
        s.addrs.join(","),
        s.connections,
        s.threads,
        s.pipeline,
        mode,
        s.mix,
        s.keys,
        s.key_dist,
        s.value_size
    );
    print!("{}", report::to_text(o, &header));
    if let Some(s) = search {
        if let Some(rate) = s.max_rate {
            println!(
                "  max rate meeting {}: {rate:.0} ops/s",
                search_slo(args).text
            );
        }
        println!("  how sure: {}", s.certainty());
    }
    if let Some(path) = &args.json {
        let mut doc = report::to_json(o, r.params.clone());
        if let Some(s) = search {
            doc["find_max_rate"] = s.to_json(&search_slo(args));
        }
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::Failed(format!("writing {}: {e}", path.display())))?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} {}: {mode}, {} connections, pipeline {}, mix {}, {} B values, {:.1} s, {} samples",
            s.protocol.name(),
            s.addrs.join(","),
            s.connections,
            s.pipeline,
            s.mix,
            s.value_size,
            o.duration_s,
            o.corrected.len()
        );
        let slo = args.slo.clone().or(search.map(|_| default_slo()));
        let line = slo
            .as_ref()
            .map(|s| (s.text.as_str(), s.max_ns as f64 / 1e3));
        plot::draw(&plot::run_series(o), path, &title, line).map_err(Error::Failed)?;
    }
    if let Some(path) = &args.hdr {
        std::fs::write(path, plot::percentile_distribution(&o.corrected))
            .map_err(|e| Error::Failed(format!("writing {}: {e}", path.display())))?;
    }
    if o.ops == 0 && o.errors() + o.warmup_errors > 0 {
        eprintln!(
            "switchboard-load: not one answer was right: is {} a {} server? (--protocol \
             switchboard, resp for Redis, memcache for memcached)",
            s.addrs.join(","),
            s.protocol.name()
        );
    }
    if let Some(why) = &o.gave_up {
        eprintln!("switchboard-load: the run stopped early: {why}");
        if !args.allow_errors {
            return Ok(1);
        }
    }
    let errors = o.errors() + o.warmup_errors;
    if errors > 0 && !args.allow_errors {
        eprintln!(
            "switchboard-load: {errors} requests failed their checks (--allow-errors to accept)"
        );
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
