//! The push workloads: `pubsub` (publishers and subscribers) and `watch` (writers and
//! watchers of their keys).
//!
//! Each publisher has a thread of its own with blocking I/O; subscribers share
//! `--threads` event loops, so a burst of deliveries to many subscribers wakes one
//! thread once rather than one thread each (waking ten blocked threads for every
//! write cost the server more in the kernel than the delivery itself, whichever server
//! it was). Each payload carries a stamp (its source, its number there, its send
//! time), so a subscriber measures end-to-end delivery latency and checks that every
//! source's messages arrive once each and in order. When the measured time is over,
//! sources stop and every subscriber drains what is still on its way before anything
//! is counted missing.
//!
//! * `pubsub`: `--publishers` connections PUBLISH stamped payloads of `--value-size`
//!   bytes to one subject, `--pipeline` in flight each; `--subscribers` connections
//!   subscribe to it. With `--protocol resp` the same against Redis's PUBLISH and
//!   SUBSCRIBE; a subscriber Redis disconnects (its output buffer limit) is reported as
//!   such.
//! * `watch` (switchboard only): `--publishers` writers PUT stamped values over
//!   `--keys` keys, and `--subscribers` watchers subscribe to the keys' prefix; every
//!   watcher must see every successful write's change, in sequence order, or a GAP
//!   naming what it missed.

mod setup;
mod sink;
mod source;
pub mod wire;

use crate::clock::{self, now_ns};
use crate::dialect::Protocol;
use crate::report::new_histogram;
use crate::report::percentiles_us;
use crate::settings::{Error, Settings};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// The subject publishers publish on, and the prefix watchers watch.
const SUBJECT: &[u8] = b"bench.pubsub";
const WATCH_PREFIX: &[u8] = b"key:";

/// How long subscribers wait for deliveries still in flight once sending stopped.
const DRAIN: Duration = Duration::from_secs(5);

/// How often a blocked subscriber looks up from its socket to check the flags.
const TICK: Duration = Duration::from_millis(50);

/// Which push workload.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Requests against records (the default).
    Kv,
    /// Publishers and subscribers.
    Pubsub,
    /// Writers and watchers of their keys.
    Watch,
}

/// What a push run measured.
#[derive(Debug)]
pub struct PushOutcome {
    pub workload: Workload,
    pub duration_s: f64,
    /// Messages (or writes) sent within the measured time.
    pub published: u64,
    /// Deliveries of those, summed over subscribers.
    pub deliveries: u64,
    /// Delivery latency of those, from the send time in their stamp (ns).
    pub latency: Histogram<u64>,
    /// Deliveries that never came (and were not announced by LOST or GAP).
    pub missing: u64,
    /// Deliveries that came twice.
    pub duplicated: u64,
    /// Deliveries that came after a later one from the same source.
    pub out_of_order: u64,
    /// Messages the server said it dropped (LOST), or changes it said it no longer
    /// had (GAP), per subscriber, summed.
    pub announced_losses: u64,
    /// Subscribers the server disconnected.
    pub disconnected: u64,
    /// Deliveries those subscribers did not get because they were disconnected.
    pub lost_to_disconnect: u64,
    /// Failed publishes or writes.
    pub errors: u64,
    /// Stalled watchers that, reading at last, got every change or a GAP for it; and
    /// those that did not.
    pub stalled_resumed_whole: u64,
    pub stalled_resumed_broken: u64,
    /// The generator's own CPU time: user, system (ns).
    pub cpu_ns: (u64, u64),
    /// The server's CPU time over the measured window, when its pid was given (ns).
    pub server_cpu_ns: Option<u64>,
}

impl PushOutcome {
    pub fn published_per_sec(&self) -> f64 {
        self.published as f64 / self.duration_s.max(1e-9)
    }

    pub fn deliveries_per_sec(&self) -> f64 {
        self.deliveries as f64 / self.duration_s.max(1e-9)
    }

    /// Anything wrong that the server did not announce.
    pub fn silent_errors(&self) -> u64 {
        self.missing
            + self.duplicated
            + self.out_of_order
            + self.errors
            + self.stalled_resumed_broken
    }

    pub fn to_text(&self, header: &str) -> String {
        let l = |q: f64| self.latency.value_at_quantile(q) as f64 / 1e3;
        let mut s = format!("{header}\n");
        s += &format!(
            "  sent {:.0}/s, delivered {:.0}/s over {:.1} s\n",
            self.published_per_sec(),
            self.deliveries_per_sec(),
            self.duration_s
        );
        if !self.latency.is_empty() {
            s += &format!(
                "  delivery latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n",
                l(0.5),
                l(0.9),
                l(0.99),
                l(0.999),
                self.latency.max() as f64 / 1e3
            );
        }
        s += &format!(
            "  missing {}, duplicated {}, out of order {}, announced by the server {}, \
             failed sends {}\n",
            self.missing, self.duplicated, self.out_of_order, self.announced_losses, self.errors
        );
        if let Some(ns) = self.server_cpu_ns {
            s += &format!(
                "  server CPU {:.3} us per delivery, {:.3} us per send\n",
                ns as f64 / 1e3 / self.deliveries.max(1) as f64,
                ns as f64 / 1e3 / self.published.max(1) as f64
            );
        }
        if self.stalled_resumed_whole + self.stalled_resumed_broken > 0 {
            s += &format!(
                "  stalled watchers resumed with every change or a GAP: {} of {}\n",
                self.stalled_resumed_whole,
                self.stalled_resumed_whole + self.stalled_resumed_broken
            );
        }
        if self.disconnected > 0 {
            s += &format!(
                "  the server disconnected {} subscriber(s), which missed {} deliveries\n",
                self.disconnected, self.lost_to_disconnect
            );
        }
        s
    }

    pub fn to_json(&self, params: Value) -> Value {
        json!({
            "workload": match self.workload { Workload::Watch => "watch", _ => "pubsub" },
            "duration_s": self.duration_s,
            "published": self.published,
            "published_per_sec": self.published_per_sec(),
            "deliveries": self.deliveries,
            "deliveries_per_sec": self.deliveries_per_sec(),
            "latency_us": percentiles_us(&self.latency),
            "missing": self.missing,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "announced_losses": self.announced_losses,
            "subscribers_disconnected": self.disconnected,
            "lost_to_disconnect": self.lost_to_disconnect,
            "stalled_resumed_whole": self.stalled_resumed_whole,
            "stalled_resumed_broken": self.stalled_resumed_broken,
            "errors": self.errors,
            "server_cpu_s": self.server_cpu_ns.map(|ns| ns as f64 / 1e9),
            "server_cpu_us_per_delivery": self.server_cpu_ns
                .map(|ns| ns as f64 / 1e3 / self.deliveries.max(1) as f64),
            "server_cpu_us_per_send": self.server_cpu_ns
                .map(|ns| ns as f64 / 1e3 / self.published.max(1) as f64),
            "client_cpu_user_s": self.cpu_ns.0 as f64 / 1e9,
            "client_cpu_system_s": self.cpu_ns.1 as f64 / 1e9,
            "params": params,
        })
    }
}

/// What every thread shares.
struct Shared {
    /// The token subscribers' HELLOs carry (empty for none).
    token: Vec<u8>,
    proto: Protocol,
    workload: Workload,
    value_size: usize,
    pipeline: usize,
    keys: u64,
    /// Measured window, monotonic ns (set once everyone is connected).
    window: AtomicU64,
    window_end: AtomicU64,
    /// Sources stop sending.
    stop: AtomicBool,
    /// Sources are done: `last[p]` is final.
    sources_done: AtomicBool,
    /// Per source: the last number it sent (pubsub) or wrote (watch, a sequence).
    last: Vec<AtomicU64>,
    start: Barrier,
}

/// What one source thread did.
#[derive(Default)]
struct SourceResult {
    in_window: u64,
    errors: u64,
    /// For watch: the sequence numbers of its successful writes.
    written: Vec<u64>,
}

/// What one subscriber thread saw.
struct SinkResult {
    deliveries: u64,
    latency: Histogram<u64>,
    missing: u64,
    duplicated: u64,
    out_of_order: u64,
    announced: u64,
    disconnected: bool,
    /// For watch: every sequence it received, and the ranges GAPs covered.
    seen: Vec<u64>,
    gaps: Vec<(u64, u64)>,
}

/// Runs a push workload against `addrs[0]`.
pub fn run(
    settings: &Settings,
    addrs: &[SocketAddr],
    interrupted: &Arc<AtomicBool>,
) -> Result<(PushOutcome, Value), Error> {
    let workload = settings.workload;
    if workload == Workload::Watch && settings.protocol != Protocol::Switchboard {
        return Err(Error::Usage(
            "--workload watch needs --protocol switchboard".into(),
        ));
    }
    if settings.protocol == Protocol::Memcache {
        return Err(Error::Usage("memcached has no publish/subscribe".into()));
    }
    let (subs, pubs) = (settings.subscribers, settings.publishers);
    if subs == 0 || pubs == 0 {
        return Err(Error::Usage(
            "--subscribers and --publishers must be at least 1".into(),
        ));
    }
    let addr = addrs[0];
    let connect = |what: &str| {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| Error::Connect(format!("cannot connect {what} to {addr}: {e}")))?;
        s.set_nodelay(true)
            .map_err(|e| Error::Connect(format!("setting TCP_NODELAY: {e}")))?;
        Ok::<TcpStream, Error>(s)
    };
    let idle = setup::idle_subscriptions(settings, &connect)?;
    let stalled = setup::stalled_subscribers(settings, &connect)?;
    let sink_streams = (0..subs)
        .map(|_| connect("a subscriber"))
        .collect::<Result<Vec<_>, _>>()?;
    let token = settings.token()?;
    let source_streams = (0..pubs)
        .map(|_| {
            let mut s = connect("a publisher")?;
            if !token.is_empty() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                crate::auth::authenticate(&mut s, &token)?;
                let _ = s.set_read_timeout(None);
            }
            Ok(s)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let shared = Shared {
        token,
        proto: settings.protocol,
        workload,
        value_size: settings.value_size.max.max(wire::STAMP_LEN),
        pipeline: settings.pipeline,
        keys: settings.keys,
        window: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        sources_done: AtomicBool::new(false),
        last: (0..pubs).map(|_| AtomicU64::new(0)).collect(),
        start: Barrier::new(settings.threads.clamp(1, subs) + pubs + 1),
    };
    let warmup = settings.warmup.as_nanos() as u64;
    let measured = settings
        .duration
        .unwrap_or(Duration::from_secs(10))
        .as_nanos() as u64;
    let cpu_before = clock::cpu_time_ns();
    let (sources, sinks, server_cpu_ns) = std::thread::scope(|scope| {
        // Subscribers spread over --threads event loops.
        let groups = settings.threads.clamp(1, subs);
        let mut grouped: Vec<Vec<TcpStream>> = (0..groups).map(|_| Vec::new()).collect();
        for (i, stream) in sink_streams.into_iter().enumerate() {
            grouped[i % groups].push(stream);
        }
        let sinks: Vec<_> = grouped
            .into_iter()
            .map(|streams| {
                let shared = &shared;
                scope.spawn(move || sink::group(shared, streams))
            })
            .collect();
        let sources: Vec<_> = source_streams
            .into_iter()
            .enumerate()
            .map(|(p, s)| {
                let shared = &shared;
                scope.spawn(move || source::source(shared, p as u32, s))
            })
            .collect();
        // Everyone connected and subscribed: the clock starts.
        shared.start.wait();
        let t0 = now_ns();
        shared.window.store(t0 + warmup, Ordering::SeqCst);
        shared
            .window_end
            .store(t0 + warmup + measured, Ordering::SeqCst);
        let mut server_cpu = None;
        while now_ns() < t0 + warmup + measured && !interrupted.load(Ordering::Relaxed) {
            if server_cpu.is_none() && now_ns() >= t0 + warmup {
                server_cpu = settings.server_pid.and_then(process_cpu_ns);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let end = now_ns().min(t0 + warmup + measured);
        let server_cpu_ns = server_cpu
            .zip(settings.server_pid.and_then(process_cpu_ns))
            .map(|(before, after)| after.saturating_sub(before));
        shared.window_end.store(end, Ordering::SeqCst);
        shared.stop.store(true, Ordering::SeqCst);
        let sources: Vec<SourceResult> = sources
            .into_iter()
            .map(|h| h.join().expect("source thread"))
            .collect();
        shared.sources_done.store(true, Ordering::SeqCst);
        let sinks: Vec<SinkResult> = sinks
            .into_iter()
            .flat_map(|h| h.join().expect("subscriber thread"))
            .collect();
        (sources, sinks, server_cpu_ns)
    });
    let cpu_after = clock::cpu_time_ns();
    drop(idle);
    let last_written = shared
        .last
        .iter()
        .map(|l| l.load(Ordering::SeqCst))
        .max()
        .unwrap_or(0);
    let (resumed_whole, resumed_broken) = match workload {
        Workload::Watch => setup::resume_stalled(stalled, last_written),
        _ => (0, 0),
    };
    let window = shared.window.load(Ordering::SeqCst);
    let window_end = shared.window_end.load(Ordering::SeqCst);
    let mut o = PushOutcome {
        workload,
        duration_s: window_end.saturating_sub(window) as f64 / 1e9,
        published: sources.iter().map(|s| s.in_window).sum(),
        deliveries: 0,
        latency: new_histogram(),
        missing: 0,
        duplicated: 0,
        out_of_order: 0,
        announced_losses: 0,
        disconnected: 0,
        lost_to_disconnect: 0,
        stalled_resumed_whole: resumed_whole,
        stalled_resumed_broken: resumed_broken,
        errors: sources.iter().map(|s| s.errors).sum(),
        cpu_ns: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
        server_cpu_ns,
    };
    let mut written: Vec<u64> = sources.into_iter().flat_map(|s| s.written).collect();
    written.sort_unstable();
    for sink in sinks {
        o.deliveries += sink.deliveries;
        let _ = o.latency.add(&sink.latency);
        o.duplicated += sink.duplicated;
        o.out_of_order += sink.out_of_order;
        o.announced_losses += sink.announced;
        o.disconnected += u64::from(sink.disconnected);
        let missing = match workload {
            Workload::Watch => missing_changes(&written, &sink.seen, &sink.gaps),
            _ => sink.missing,
        };
        if sink.disconnected {
            o.lost_to_disconnect += missing;
        } else {
            o.missing += missing;
        }
    }
    let params = json!({
        "protocol": settings.protocol.name(),
        "addrs": settings.addrs,
        "workload": match workload { Workload::Watch => "watch", _ => "pubsub" },
        "subscribers": subs,
        "publishers": pubs,
        "pipeline": settings.pipeline,
        "value_size": shared.value_size,
        "keys": settings.keys,
        "warmup_s": settings.warmup.as_secs_f64(),
        "idle_subscriptions": settings.idle_subscriptions,
        "idle_connections": settings.idle_connections,
        "stalled_subscribers": settings.stalled_subscribers,
    });
    Ok((o, params))
}

/// Reads what the socket has (at least one byte), into `input`.
pub(super) fn read_more(stream: &mut TcpStream, input: &mut BytesMut) -> io::Result<usize> {
    input.reserve(64 << 10);
    let start = input.len();
    input.resize(input.capacity(), 0);
    let n = loop {
        match stream.read(&mut input[start..]) {
            Ok(0) => {
                input.truncate(start);
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                input.truncate(start);
                return Err(e);
            }
        }
    };
    input.truncate(start + n);
    Ok(n)
}

/// A process's CPU time (user + system) from /proc, in ns.
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing paren.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000_000 / per_sec)
}

/// Counts the successful writes whose change a watcher neither received nor was told
/// (by a GAP) it missed.
fn missing_changes(written: &[u64], seen: &[u64], gaps: &[(u64, u64)]) -> u64 {
    written
        .iter()
        .filter(|&&seq| {
            seen.binary_search(&seq).is_err()
                && !gaps
                    .iter()
                    .any(|&(after, oldest)| after < seq && seq < oldest)
        })
        .count() as u64
}
