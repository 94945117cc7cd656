//! switchboard-load: a load generator for switchboard, Redis and memcached.
//!
//! It drives a server closed-loop (each connection sends again as soon as a pipeline
//! slot frees: the server's throughput) or open-loop at a fixed rate decided before the
//! run (`--rate`: latency measured from each request's intended send time, so a stalled
//! server cannot hide the requests it delayed), checks every response, and reports
//! percentiles as text, JSON and an SVG spectrum.
//!
//! Threads each run their own mio loop over their share of the connections
//! ([`conn`]); the open-loop schedule is pure arithmetic ([`schedule`]); what is sent
//! and how it is checked is in [`workload`] and the protocol modules.

mod clock;
mod conn;
mod memcache;
mod proto;
mod report;
mod resp;
mod schedule;
mod workload;

use clap::Parser;
use conn::{Plan, Progress};
use proto::Protocol;
use schedule::Stop;
use serde_json::{json, Value};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::{KeyDist, Mix, Ring, ValueSize};

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
    /// Server address; repeat to shard keys over several servers by consistent hashing.
    #[arg(long = "addr", value_name = "HOST:PORT", required = true)]
    addrs: Vec<String>,

    /// Wire protocol to speak.
    #[arg(long, value_enum, default_value = "switchboard")]
    protocol: Protocol,

    /// TCP connections in total (spread over threads, then servers).
    #[arg(long, default_value_t = 50)]
    connections: usize,

    /// Generator threads, each with its own event loop over its share of connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,

    /// Measured time, e.g. 10s, 500ms, 2m [default: 10s unless --requests].
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,

    /// Measured requests instead of a measured time.
    #[arg(long)]
    requests: Option<u64>,

    /// Time before measuring starts; its requests are sent and checked, not reported.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    warmup: Duration,

    /// A request unanswered this long is an error (and its connection is closed).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,

    /// Operation weights over get, put, del, cas, ping.
    #[arg(long, value_parser = Mix::parse, default_value = "get=9,put=1")]
    mix: Mix,

    /// Number of distinct keys (key:000000000000 up to keys-1).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,

    /// Key popularity: uniform, zipf:EXPONENT (key 0 hottest), or sequential (every key
    /// in turn: with --requests equal to --keys and --mix put=1, a preload).
    #[arg(long, value_parser = KeyDist::parse, default_value = "uniform")]
    key_dist: KeyDist,

    /// Value size in bytes, or a range like 64-1024 (each key has its own size in it).
    #[arg(long, value_parser = ValueSize::parse, default_value = "64")]
    value_size: ValueSize,

    /// Open loop at this many requests per second over all connections.
    #[arg(long, value_name = "OPS_PER_SEC")]
    rate: Option<f64>,

    /// Search for the highest --rate whose corrected latency meets --slo: step the rate
    /// up (from --rate, or 1000) until it fails, then bisect. Each trial lasts
    /// --warmup + --duration.
    #[arg(long)]
    find_max_rate: bool,

    /// Latency target for --find-max-rate, as pNN=TIME (p50, p90, p99, p999, ...).
    #[arg(long, value_parser = parse_slo, default_value = "p99=1ms")]
    slo: Slo,

    /// Write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Draw the latency percentile spectrum to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    /// Exit 0 even when some responses were wrong or missing.
    #[arg(long)]
    allow_errors: bool,

    /// Re-open a connection the server closed or that timed out (after 100 ms,
    /// doubling up to 2 s), instead of going on without it. Requests it had in flight
    /// still count as errors.
    #[arg(long)]
    reconnect: bool,

    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,

    /// Seed for key and operation choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A latency target: the `quantile` of corrected response time at most `max_ns`.
#[derive(Clone, Debug)]
struct Slo {
    text: String,
    quantile: f64,
    max_ns: u64,
}

fn parse_slo(s: &str) -> Result<Slo, String> {
    let (p, t) = s
        .split_once('=')
        .ok_or_else(|| format!("SLO {s:?} is not pNN=TIME, e.g. p99=1ms"))?;
    let digits = p
        .strip_prefix('p')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("percentile {p:?} is not like p50, p99 or p999"))?;
    // p99 -> 0.99, p999 -> 0.999, p9999 -> 0.9999, p50 -> 0.5.
    let quantile: f64 = format!("0.{digits}")
        .parse()
        .map_err(|_| "bad percentile")?;
    if !(quantile > 0.0 && quantile < 1.0) {
        return Err(format!("percentile {p:?} is out of range"));
    }
    let max = parse_duration(t)?;
    Ok(Slo {
        text: s.to_string(),
        quantile,
        max_ns: max.as_nanos() as u64,
    })
}

/// Parses `10s`, `500ms`, `250us`, `2m`, `1.5s`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s or 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (h, m, s, ms, us, ns)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a usable duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Fails with a message for people, and the exit code to leave with.
struct Fatal(String, u8);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(Fatal(msg, code)) => {
            eprintln!("switchboard-load: {msg}");
            ExitCode::from(code)
        }
    }
}

fn usage(msg: impl Into<String>) -> Fatal {
    Fatal(msg.into(), 2)
}

fn validate(args: &Args) -> Result<Vec<SocketAddr>, Fatal> {
    if args.threads == 0 || args.connections == 0 || args.pipeline == 0 || args.keys == 0 {
        return Err(usage(
            "--threads, --connections, --pipeline and --keys must be at least 1",
        ));
    }
    if args.pipeline > 65_536 {
        return Err(usage("--pipeline is at most 65536"));
    }
    if args.connections < args.threads * args.addrs.len() {
        return Err(usage(format!(
            "--connections ({}) must be at least --threads x servers ({} x {}), so that \
             every thread reaches every server",
            args.connections,
            args.threads,
            args.addrs.len()
        )));
    }
    if args.keys > 999_999_999_999 {
        return Err(usage(
            "--keys is at most 999999999999 (twelve-digit key names)",
        ));
    }
    if args.value_size.max > 1 << 20 {
        return Err(usage("--value-size is at most 1048576 bytes"));
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(usage(
                "--rate must be a positive number of requests per second",
            ));
        }
    }
    if args.requests == Some(0) {
        return Err(usage("--requests must be at least 1"));
    }
    if args.duration.is_some_and(|d| d.is_zero()) || args.timeout.is_zero() {
        return Err(usage("--duration and --timeout must be longer than zero"));
    }
    for op in workload::Op::ALL {
        if args.mix.contains(op) {
            if let Some(why) = args.protocol.unsupported(op) {
                return Err(usage(why));
            }
        }
    }
    let mut addrs = Vec::new();
    for a in &args.addrs {
        let resolved = a
            .to_socket_addrs()
            .map_err(|e| usage(format!("cannot resolve {a}: {e}")))?
            .next()
            .ok_or_else(|| usage(format!("{a} resolves to no address")))?;
        addrs.push(resolved);
    }
    Ok(addrs)
}

fn run(args: &Args) -> Result<u8, Fatal> {
    let addrs = validate(args)?;
    // The first Ctrl-C (or SIGTERM) ends the run early with a report of what was
    // measured; a second one exits at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupted))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&interrupted)))
            .map_err(|e| Fatal(format!("installing a signal handler: {e}"), 1))?;
    }
    let was_interrupted = || interrupted.load(Ordering::Relaxed);
    if !args.find_max_rate {
        let (outcome, params) = run_once(args, &addrs, args.rate, &interrupted)?;
        let code = finish(args, &outcome, params, None)?;
        return Ok(if was_interrupted() { 130 } else { code });
    }
    let (shown, params, search) = find_max_rate(args, &addrs, &interrupted)?;
    let code = finish(args, &shown, params, Some(search.clone()))?;
    if was_interrupted() {
        return Ok(130);
    }
    if search["max_rate_ops_per_sec"].is_null() {
        let lowest = search["trials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["rate"].as_f64())
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "switchboard-load: no rate met {} (lowest tried {lowest:.0} ops/s)",
            args.slo.text
        );
        return Ok(1);
    }
    Ok(code)
}

/// One complete run at `rate` (closed loop when `None`).
fn run_once(
    args: &Args,
    addrs: &[SocketAddr],
    rate: Option<f64>,
    interrupted: &Arc<AtomicBool>,
) -> Result<(report::Outcome, Value), Fatal> {
    let stop = match (args.requests, args.duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(d)) => Stop::Duration(d.as_nanos() as u64),
        (None, None) => Stop::Duration(10_000_000_000),
    };
    let plan = Plan {
        proto: args.protocol,
        mix: args.mix.clone(),
        key_dist: args.key_dist.clone(),
        keys: args.keys,
        value_size: args.value_size,
        pipeline: args.pipeline,
        timeout_ns: args.timeout.as_nanos() as u64,
        warmup_ns: args.warmup.as_nanos() as u64,
        stop,
        rate,
        threads: args.threads,
        ring: Ring::new(&args.addrs),
        seed: args.seed,
        reconnect: args.reconnect,
        addrs: addrs.to_vec(),
    };
    let per_thread = connect_all(args, addrs)?;
    let progress = Progress::new(Arc::clone(interrupted));
    let cpu_before = clock::cpu_time_ns();
    let start = conn::StartLine::new(args.threads);
    let wall = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .enumerate()
            .map(|(t, streams)| {
                let (plan, progress, start) = (&plan, &progress, &start);
                std::thread::Builder::new()
                    .name(format!("load-{t}"))
                    .spawn_scoped(scope, move || {
                        conn::run_thread(plan, t, streams, addrs.len(), start, progress)
                    })
                    .expect("spawn generator thread")
            })
            .collect();
        show_progress(args, &handles, &progress, wall);
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|e| Fatal(format!("event loop failed: {e}"), 1))?;
    let cpu_after = clock::cpu_time_ns();
    let cpu = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    let fixed_window = match stop {
        Stop::Duration(ns) => Some(ns as f64 / 1e9),
        Stop::Requests(_) => None,
    };
    let outcome = report::Outcome::merge(results, rate, fixed_window, cpu);
    let params = json!({
        "protocol": args.protocol.name(),
        "addrs": args.addrs,
        "connections": args.connections,
        "threads": args.threads,
        "pipeline": args.pipeline,
        "mix": args.mix.to_string(),
        "keys": args.keys,
        "key_dist": args.key_dist.to_string(),
        "value_size": args.value_size.to_string(),
        "rate": rate,
        "duration_s": match stop { Stop::Duration(ns) => Some(ns as f64 / 1e9), _ => None },
        "requests": match stop { Stop::Requests(n) => Some(n), _ => None },
        "warmup_s": args.warmup.as_secs_f64(),
        "timeout_s": args.timeout.as_secs_f64(),
        "seed": args.seed,
    });
    Ok((outcome, params))
}

/// Opens every connection before the clock starts, blocking, so an unreachable server
/// fails the run at once with the reason. Thread `t` gets its share, and its `j`-th
/// connection goes to server `j % servers`.
fn connect_all(args: &Args, addrs: &[SocketAddr]) -> Result<Vec<Vec<(TcpStream, usize)>>, Fatal> {
    let connect_timeout = args.timeout.min(Duration::from_secs(3));
    let mut per_thread = Vec::with_capacity(args.threads);
    for t in 0..args.threads {
        let n = args.connections / args.threads + usize::from(t < args.connections % args.threads);
        let mut streams = Vec::with_capacity(n);
        for j in 0..n {
            let server = j % addrs.len();
            let s = TcpStream::connect_timeout(&addrs[server], connect_timeout).map_err(|e| {
                Fatal(
                    format!(
                        "cannot connect to {} ({}): {e}",
                        args.addrs[server], addrs[server]
                    ),
                    2,
                )
            })?;
            // Requests are batched by the generator itself; Nagle would only delay them.
            s.set_nodelay(true)
                .map_err(|e| Fatal(format!("setting TCP_NODELAY: {e}"), 2))?;
            streams.push((s, server));
        }
        per_thread.push(streams);
    }
    Ok(per_thread)
}

/// Prints one progress line a second until every generator thread is done.
fn show_progress<T>(
    args: &Args,
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    progress: &Progress,
    wall: Instant,
) {
    let mut next = Duration::from_secs(1);
    let mut last_ops = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        // The main thread only watches; sleeping here costs the generator nothing.
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = wall.elapsed();
        if args.quiet || elapsed < next {
            continue;
        }
        next += Duration::from_secs(1);
        let ops = progress.completed.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let (p50, p99) = match progress.latency.lock() {
            Ok(h) if !h.is_empty() => (
                h.value_at_quantile(0.5) as f64 / 1e3,
                h.value_at_quantile(0.99) as f64 / 1e3,
            ),
            _ => (0.0, 0.0),
        };
        let phase = if elapsed < args.warmup {
            " (warm-up)"
        } else {
            ""
        };
        eprintln!(
            "[{:>5.1}s] {:>9} ops/s  p50 {:>8.1} us  p99 {:>8.1} us  errors {}{phase}",
            elapsed.as_secs_f64(),
            ops - last_ops,
            p50,
            p99,
            errors
        );
        last_ops = ops;
    }
}

/// The outcome of one trial of the rate search.
struct Trial {
    rate: f64,
    latency_us: f64,
    ok: bool,
    note: String,
}

fn trial_ok(args: &Args, o: &report::Outcome) -> (bool, f64, String) {
    let lat = o.corrected.value_at_quantile(args.slo.quantile);
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
    if o.offered
        .is_some_and(|off| (o.sent as f64) < 0.99 * off as f64)
    {
        return (false, lat_us, o.client_bound.clone().unwrap_or_default());
    }
    if o.corrected.is_empty() {
        return (false, lat_us, "no responses".into());
    }
    let ok = lat <= args.slo.max_ns;
    (ok, lat_us, o.client_bound.clone().unwrap_or_default())
}

/// Steps the rate up (doubling) until the SLO fails, then bisects between the last
/// rate that met it and the first that did not. Returns the best passing trial (or,
/// when none passed, the last one) and the search record.
fn find_max_rate(
    args: &Args,
    addrs: &[SocketAddr],
    interrupted: &Arc<AtomicBool>,
) -> Result<(report::Outcome, Value, Value), Fatal> {
    let mut trials: Vec<Trial> = Vec::new();
    let mut best: Option<(report::Outcome, Value)> = None;
    let mut last: Option<(report::Outcome, Value)> = None;
    let mut run_trial = |rate: f64,
                         trials: &mut Vec<Trial>,
                         best: &mut Option<(report::Outcome, Value)>|
     -> Result<bool, Fatal> {
        let (o, params) = run_once(args, addrs, Some(rate), interrupted)?;
        let (ok, latency_us, note) = trial_ok(args, &o);
        eprintln!(
            "find-max-rate: {rate:.0} ops/s -> {} {latency_us:.1} us: {}{}",
            args.slo.text.split('=').next().unwrap_or("p99"),
            if ok { "meets" } else { "misses" },
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        );
        trials.push(Trial {
            rate,
            latency_us,
            ok,
            note,
        });
        if ok {
            *best = Some((o, params));
        } else {
            last = Some((o, params));
        }
        Ok(ok)
    };
    let start = args.rate.unwrap_or(1000.0);
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let mut rate = start;
    // Step up by doubling until a rate misses (or step down by halving until one meets).
    let stop = || interrupted.load(Ordering::Relaxed);
    for _ in 0..24 {
        if stop() {
            break;
        }
        if run_trial(rate, &mut trials, &mut best)? {
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
    // Bisect until the bracket is within 5%.
    if lo > 0.0 && hi.is_finite() {
        for _ in 0..8 {
            if hi / lo <= 1.05 || stop() {
                break;
            }
            let mid = (lo * hi).sqrt();
            if run_trial(mid, &mut trials, &mut best)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    let search = json!({
        "slo": args.slo.text,
        "quantile": args.slo.quantile,
        "target_us": args.slo.max_ns as f64 / 1e3,
        "max_rate_ops_per_sec": if lo > 0.0 { Some(lo) } else { None },
        "trials": trials.iter().map(|t| json!({
            "rate": t.rate, "latency_us": t.latency_us, "ok": t.ok, "note": t.note,
        })).collect::<Vec<_>>(),
    });
    if best.is_some() {
        eprintln!(
            "find-max-rate: highest rate meeting {} is {:.0} ops/s",
            args.slo.text, lo
        );
    }
    let (o, params) = best
        .or(last)
        .ok_or_else(|| Fatal("the rate search ran no trial".into(), 1))?;
    Ok((o, params, search))
}

fn finish(
    args: &Args,
    o: &report::Outcome,
    params: Value,
    search: Option<Value>,
) -> Result<u8, Fatal> {
    let mode = match o.rate {
        Some(r) => format!("open loop at {r:.0} ops/s"),
        None => "closed loop".to_string(),
    };
    let header = format!(
        "switchboard-load: {} {}, {} connections, {} thread(s), pipeline {}, {}\n  mix {}, {} keys {}, values {} B",
        args.protocol.name(),
        args.addrs.join(","),
        args.connections,
        args.threads,
        args.pipeline,
        mode,
        args.mix,
        args.keys,
        args.key_dist,
        args.value_size
    );
    print!("{}", report::to_text(o, &header));
    if let Some(rate) = search
        .as_ref()
        .and_then(|s| s["max_rate_ops_per_sec"].as_f64())
    {
        println!("  max rate meeting {}: {rate:.0} ops/s", args.slo.text);
    }
    if let Some(path) = &args.json {
        let mut doc = report::to_json(o, params);
        if let Some(s) = search {
            doc["find_max_rate"] = s;
        }
        let text = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
        std::fs::write(path, text + "\n")
            .map_err(|e| Fatal(format!("writing {}: {e}", path.display()), 1))?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{} {} — {}",
            args.protocol.name(),
            args.addrs.join(","),
            mode
        );
        report::plot(o, path, &title).map_err(|e| Fatal(e, 1))?;
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
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn slos_parse_percentile_and_time() {
        let s = parse_slo("p99=1ms").unwrap();
        assert_eq!(s.quantile, 0.99);
        assert_eq!(s.max_ns, 1_000_000);
        assert_eq!(parse_slo("p999=250us").unwrap().quantile, 0.999);
        assert_eq!(parse_slo("p50=1s").unwrap().quantile, 0.5);
        assert!(parse_slo("99=1ms").is_err());
        assert!(parse_slo("p99").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
