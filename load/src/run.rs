//! One complete run: connect every connection, start the generator threads at one
//! start line, watch them, and merge what they measured.

use crate::clock;
use crate::engine::{self, Progress, StartLine};
use crate::report::Outcome;
use crate::schedule::Stop;
use crate::settings::{Error, Settings};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the watcher sees the progress counters while the threads run.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// What one run measured, and the parameters it was made with (for the JSON).
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub params: Value,
}

/// Runs once at `rate` (closed loop when `None`) against `addrs` (from
/// [`Settings::resolve`]). Setting `interrupted` stops sending early; the threads then
/// drain what is in flight and the result covers what was sent. `watch` is called
/// every few milliseconds, on this thread, with the live counters and the time since
/// the threads started.
pub fn run(
    settings: &Settings,
    addrs: &[SocketAddr],
    rate: Option<f64>,
    interrupted: &Arc<AtomicBool>,
    watch: &mut dyn FnMut(&Progress, Duration),
) -> Result<Run, Error> {
    let mut plan = settings.plan(addrs, rate);
    let token = settings.token()?;
    if !token.is_empty() {
        plan.hello = Some(crate::auth::hello_frame(&token));
    }
    let per_thread = connect_all(settings, addrs)?;
    let progress = Progress::new(Arc::clone(interrupted));
    let cpu_before = clock::cpu_time_ns();
    let start = StartLine::new(settings.threads);
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
                        engine::run_thread(plan, t, streams, addrs.len(), start, progress)
                    })
                    .expect("spawn generator thread")
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            // This thread only watches; sleeping here costs the generator nothing.
            std::thread::sleep(WATCH_EVERY);
            watch(&progress, wall.elapsed());
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("generator thread panicked"))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|e| Error::Failed(format!("event loop failed: {e}")))?;
    let cpu_after = clock::cpu_time_ns();
    let stop = plan.stop;
    let fixed_window = match stop {
        Stop::Duration(ns) => Some(ns as f64 / 1e9),
        Stop::Requests(_) => None,
    };
    let mut outcome = Outcome::new(rate);
    for r in results {
        outcome.absorb(r);
    }
    outcome.finish(
        fixed_window,
        (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
    );
    let params = json!({
        "protocol": settings.protocol.name(),
        "addrs": settings.addrs,
        "connections": settings.connections,
        "threads": settings.threads,
        "pipeline": settings.pipeline,
        "mix": settings.mix.to_string(),
        "keys": settings.keys,
        "key_dist": settings.key_dist.to_string(),
        "value_size": settings.value_size.to_string(),
        "rate": rate,
        "duration_s": fixed_window,
        "requests": match stop { Stop::Requests(n) => Some(n), _ => None },
        "warmup_s": settings.warmup.as_secs_f64(),
        "timeout_s": settings.timeout.as_secs_f64(),
        "seed": settings.seed,
    });
    Ok(Run { outcome, params })
}

/// Opens every connection before the clock starts, blocking, so an unreachable server
/// fails the run at once with the reason. Thread `t` gets its share, and its `j`-th
/// connection goes to server `j % servers`.
fn connect_all(
    settings: &Settings,
    addrs: &[SocketAddr],
) -> Result<Vec<Vec<engine::Opened>>, Error> {
    let connect_timeout = settings.timeout.min(Duration::from_secs(3));
    let token = settings.token()?;
    let tls = settings.tls_config()?;
    let (threads, connections) = (settings.threads, settings.connections);
    let mut per_thread = Vec::with_capacity(threads);
    for t in 0..threads {
        let n = connections / threads + usize::from(t < connections % threads);
        let mut streams = Vec::with_capacity(n);
        for j in 0..n {
            let server = j % addrs.len();
            let mut s =
                TcpStream::connect_timeout(&addrs[server], connect_timeout).map_err(|e| {
                    Error::Connect(format!(
                        "cannot connect to {} ({}): {e}",
                        settings.addrs[server], addrs[server]
                    ))
                })?;
            // Requests are batched by the generator itself; Nagle would only delay them.
            s.set_nodelay(true)
                .map_err(|e| Error::Connect(format!("setting TCP_NODELAY: {e}")))?;
            let session = match &tls {
                Some(tls) => {
                    // Blocking, before the clock starts, bounded like the connect.
                    let _ = s.set_read_timeout(Some(connect_timeout));
                    let _ = s.set_write_timeout(Some(connect_timeout));
                    let session = tls.handshake(&mut s).map_err(|e| {
                        Error::Connect(format!(
                            "TLS handshake with {} ({}): {e}",
                            settings.addrs[server], addrs[server]
                        ))
                    })?;
                    let _ = s.set_read_timeout(None);
                    let _ = s.set_write_timeout(None);
                    Some(session)
                }
                None => None,
            };
            let mut session = session;
            if !token.is_empty() {
                let _ = s.set_read_timeout(Some(settings.timeout));
                match &mut session {
                    Some(tls) => crate::auth::authenticate(
                        &mut rustls::Stream::new(&mut **tls, &mut s),
                        &token,
                    )?,
                    None => crate::auth::authenticate(&mut s, &token)?,
                }
                let _ = s.set_read_timeout(None);
            }
            streams.push((s, session, server));
        }
        per_thread.push(streams);
    }
    Ok(per_thread)
}
