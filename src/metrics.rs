//! Prometheus metrics: `--metrics-listen ADDR` serves `GET /metrics` in the text
//! exposition format, written by the official Rust client library
//! (`prometheus-client`) rather than by hand.
//!
//! The figures are the server's own counters and gauges (the ones STATS reports),
//! read when a scrape asks, through a `Collector`: nothing is counted twice and the
//! request path pays nothing for metrics. Request latency is a histogram the reactor
//! keeps per batch rather than per request (`stats::latency`). Names follow Prometheus
//! conventions: a `switchboard_` prefix, base units, `_total` on counters, labels for
//! the variants of one quantity (close reasons, opcodes).
//!
//! A scrape is served on a thread of its own, one connection at a time, with a read
//! deadline and a bound on the request's size, so a scrape never holds the reactor
//! and a slow or hostile scraper holds only this thread.
//!
//! The same listener answers orchestrators: `GET /healthz` is 200 while the process
//! serves, `GET /readyz` 200 while it accepts clients and 503 once it is draining.

use crate::exec::Context;
use crate::stats::latency;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a scraper may take to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// Largest request accepted, in bytes.
const MAX_REQUEST: usize = 8 << 10;

/// Reads the server's figures at scrape time.
#[derive(Debug)]
struct Figures(Arc<Context>);

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(v as i64);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &latency::Snapshot,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Histogram,
    )?;
    // The count is the buckets' total, so the two agree within one scrape.
    m.encode_histogram::<NoLabelSet>(h.sum_seconds(), h.count(), &h.buckets_seconds(), None)
}

/// A counter with one label whose values are given with their counts.
fn labelled(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for &(value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Figures {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let ctx = &self.0;
        let c = &ctx.stats.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
        gauge(
            &mut e,
            "switchboard_connections",
            "Client connections open now.",
            get(&c.connections_current),
        )?;
        counter(
            &mut e,
            "switchboard_connections_accepted",
            "Client connections accepted.",
            get(&c.connections_total),
        )?;
        labelled(
            &mut e,
            "switchboard_connections_refused",
            "Connections refused, by reason.",
            "reason",
            &[
                ("full", get(&c.connections_rejected)),
                ("per_ip", get(&c.connections_rejected_per_ip)),
                ("protected_mode", get(&c.connections_rejected_protected)),
                ("accept_error", get(&c.accept_errors)),
            ],
        )?;
        labelled(
            &mut e,
            "switchboard_connections_closed",
            "Connections closed, by reason.",
            "reason",
            &[
                ("peer", get(&c.closed_by_peer)),
                ("protocol_error", get(&c.closed_protocol_error)),
                ("idle", get(&c.closed_idle)),
                ("frame_timeout", get(&c.closed_frame_timeout)),
                ("write_timeout", get(&c.closed_write_timeout)),
                ("shutdown", get(&c.closed_shutdown)),
                ("client_memory", get(&c.closed_client_memory)),
                ("io_error", get(&c.closed_io_error)),
                ("auth_failed", get(&c.closed_auth_failed)),
                ("auth_timeout", get(&c.closed_auth_timeout)),
                ("tls_handshake", get(&c.closed_tls_handshake)),
                ("tls_error", get(&c.closed_tls_error)),
            ],
        )?;
        labelled(
            &mut e,
            "switchboard_tls_handshakes",
            "TLS handshakes completed, by kind.",
            "kind",
            &[
                (
                    "full",
                    get(&c.tls_handshakes).saturating_sub(get(&c.tls_resumed)),
                ),
                ("resumed", get(&c.tls_resumed)),
            ],
        )?;
        labelled(
            &mut e,
            "switchboard_tls_reloads",
            "Certificate reloads on SIGHUP, by outcome.",
            "outcome",
            &[
                ("ok", get(&c.tls_reloads)),
                ("error", get(&c.tls_reload_errors)),
            ],
        )?;
        counter(
            &mut e,
            "switchboard_client_memory_evictions",
            "Connections chosen to be closed to keep client memory under its limit.",
            get(&c.client_memory_evictions),
        )?;
        labelled(
            &mut e,
            "switchboard_requests",
            "Requests answered, by opcode.",
            "opcode",
            &[
                ("HELLO", get(&c.cmd_hello)),
                ("PING", get(&c.cmd_ping)),
                ("STATS", get(&c.cmd_stats)),
                ("GET", get(&c.cmd_get)),
                ("PUT", get(&c.cmd_put)),
                ("DELETE", get(&c.cmd_delete)),
                ("CAS", get(&c.cmd_cas)),
                ("SCAN", get(&c.cmd_scan)),
                ("SUBSCRIBE", get(&c.cmd_subscribe)),
                ("UNSUBSCRIBE", get(&c.cmd_unsubscribe)),
                ("PUBLISH", get(&c.cmd_publish)),
            ],
        )?;
        labelled(
            &mut e,
            "switchboard_request_outcomes",
            "Answers other than success, by kind.",
            "outcome",
            &[
                ("get_miss", get(&c.get_misses)),
                ("version_conflict", get(&c.version_conflicts)),
                ("memory_limit", get(&c.writes_refused_memory)),
                ("storage_full", get(&c.writes_refused_storage)),
                ("request_error", get(&c.request_errors)),
                ("protocol_error", get(&c.protocol_errors)),
                ("internal_error", get(&c.internal_errors)),
            ],
        )?;
        histogram(
            &mut e,
            "switchboard_request_duration_seconds",
            "Time from the reactor handing a request out for execution to its answer being \
             queued for its connection, timed per batch.",
            &ctx.stats.latency.snapshot(),
        )?;
        counter(
            &mut e,
            "switchboard_output_limit_reached",
            "Runs of requests whose answers filled their connection's output to its limit: \
             the client's further requests wait until it reads.",
            get(&c.output_limit_reached),
        )?;
        counter(
            &mut e,
            "switchboard_received_bytes",
            "Bytes read from clients.",
            get(&c.bytes_read),
        )?;
        counter(
            &mut e,
            "switchboard_sent_bytes",
            "Bytes written to clients.",
            get(&c.bytes_written),
        )?;
        gauge(
            &mut e,
            "switchboard_client_memory_bytes",
            "Memory held for clients: input, unread answers, unanswered requests.",
            ctx.stats.client_memory.load(Relaxed),
        )?;
        let q = &ctx.stats.queues;
        gauge(
            &mut e,
            "switchboard_worker_queue_requests",
            "Requests handed to the worker pool and not yet back: queued, executing, or \
             waiting for room in a worker's queue.",
            get(&q.worker_requests),
        )?;
        gauge(
            &mut e,
            "switchboard_worker_queue_batches",
            "Batches of requests sent to workers and not yet back.",
            get(&q.worker_batches),
        )?;
        gauge(
            &mut e,
            "switchboard_connections_output_waiting",
            "Connections with answers left after their last write: waiting for the client \
             to read.",
            get(&q.output_waiting),
        )?;
        gauge(
            &mut e,
            "switchboard_sequencer_held_changes",
            "Changes held back until an earlier one, still executing, arrives.",
            get(&q.sequencer_held),
        )?;
        let store = &ctx.store;
        gauge(
            &mut e,
            "switchboard_records",
            "Records in the store.",
            store.len(),
        )?;
        gauge(
            &mut e,
            "switchboard_store_memory_bytes",
            "Memory the store's records take.",
            store.memory_used(),
        )?;
        counter(
            &mut e,
            "switchboard_sequence",
            "The last change sequence number handed out.",
            store.seq(),
        )?;
        let push = ctx.push.lock();
        let p = push.counts;
        gauge(
            &mut e,
            "switchboard_subscriptions",
            "Subscriptions held.",
            push.subscriptions() as u64,
        )?;
        gauge(
            &mut e,
            "switchboard_change_log_changes",
            "Changes kept for resuming subscribers.",
            push.log.len() as u64,
        )?;
        gauge(
            &mut e,
            "switchboard_change_log_bytes",
            "Bytes the kept changes take.",
            push.log.bytes() as u64,
        )?;
        labelled(
            &mut e,
            "switchboard_pushes",
            "Pushes sent, by kind.",
            "kind",
            &[
                ("event", p.events_sent),
                ("message", p.messages_sent),
                ("gap", p.gaps_sent),
                ("ping", p.pings_sent),
            ],
        )?;
        counter(
            &mut e,
            "switchboard_messages_lost",
            "Published messages dropped because a subscriber's output was full.",
            p.messages_lost,
        )?;
        counter(
            &mut e,
            "switchboard_subscriptions_fell_behind",
            "Subscriptions that fell behind because their connection's output was full; \
             each is caught up from the change log once it drains.",
            p.fell_behind,
        )?;
        counter(
            &mut e,
            "switchboard_published",
            "PUBLISH requests executed.",
            p.published,
        )?;
        counter(
            &mut e,
            "switchboard_keepalive_closes",
            "Subscribers closed for answering no keepalive.",
            p.keepalive_closes,
        )?;
        drop(push);
        if let Some(log) = &ctx.log {
            gauge(
                &mut e,
                "switchboard_durable_sequence",
                "The last change sequence synced to disk (compare switchboard_sequence).",
                get(&log.durable),
            )?;
            gauge(
                &mut e,
                "switchboard_log_bytes",
                "Bytes in the write-ahead log's segments.",
                get(&log.bytes),
            )?;
            gauge(
                &mut e,
                "switchboard_snapshot_bytes",
                "Bytes in the newest snapshot (0: none); the log is compacted past twice this.",
                get(&log.snapshot_bytes),
            )?;
            counter(
                &mut e,
                "switchboard_log_synced_changes",
                "Changes the log's syncs covered (divide by the syncs for changes per sync).",
                get(&log.synced_changes),
            )?;
            counter(
                &mut e,
                "switchboard_log_compactions",
                "Snapshots written to replace the log segments they cover.",
                get(&log.compactions),
            )?;
            counter(
                &mut e,
                "switchboard_storage_full_events",
                "Times the log found the disk full and refused writes until there was room.",
                get(&log.storage_full_events),
            )?;
            histogram(
                &mut e,
                "switchboard_log_sync_duration_seconds",
                "How long each sync (fdatasync) of the write-ahead log took.",
                &log.sync_latency(),
            )?;
        }
        Ok(())
    }
}

/// The metrics endpoint's thread; stopped (and joined) when dropped.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// Binds `addr` and serves scrapes of `ctx`'s figures.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn start(addr: SocketAddr, ctx: Arc<Context>) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Figures(ctx.clone())));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Relaxed) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &registry, &ctx);
                    }
                }
            })?;
        Ok(Endpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wake the thread from accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one HTTP request: the metrics for `GET /metrics`, the health checks, 404
/// otherwise.
fn serve(mut stream: TcpStream, registry: &Registry, ctx: &Context) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_DEADLINE))?;
    stream.set_write_timeout(Some(READ_DEADLINE))?;
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || request.len() + n > MAX_REQUEST {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next(), words.next());
    let (status, kind, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let mut body = String::new();
            prometheus_client::encoding::text::encode(&mut body, registry)
                .map_err(|_| io::Error::other("encoding the metrics"))?;
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            )
        }
        (Some(b"GET"), Some(b"/healthz")) => ("200 OK", "text/plain", "ok\n".into()),
        (Some(b"GET"), Some(b"/readyz")) if !ctx.draining.load(Relaxed) => {
            ("200 OK", "text/plain", "ready\n".into())
        }
        (Some(b"GET"), Some(b"/readyz")) => {
            ("503 Service Unavailable", "text/plain", "draining\n".into())
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "served here: GET /metrics, /healthz, /readyz\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Limits;

    /// One request through `serve`, over a loopback connection.
    fn answer(ctx: &Context, request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(request).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        serve(server_side, &Registry::default(), ctx).unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn readyz_turns_503_when_draining_and_healthz_stays_200() {
        let ctx = Context::new(Limits::default(), 0, 1);
        assert!(answer(&ctx, b"GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        ctx.draining.store(true, Relaxed);
        assert!(answer(&ctx, b"GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        assert!(answer(&ctx, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(answer(&ctx, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    }
}
