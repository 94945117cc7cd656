//! Server-wide counters, and the STATS response built from them.
//!
//! Counters are `Relaxed` atomics: each is an independent tally read for reporting,
//! never used to order other memory. Workers add to the request counters; the reactor
//! adds to the connection counters, and alone sets the queue depths and records request
//! latency ([`latency`]).

pub mod latency;

use crate::protocol::encode::ReplyTo;
use crate::protocol::msg::stats::StatsWriter;
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// Every counter the server keeps. Each is reported by STATS under its field name.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// One thread's not yet published additions to [`Counters`]: plain integers, so
        /// counting a request costs an add, not an atomic read-modify-write (three per
        /// GET were each a full barrier, keeping one request's cache misses from
        /// overlapping the next one's). The owner publishes them with
        /// [`Counters::absorb`] once per batch.
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct Tally {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Adds a thread's tally to the shared counters and zeroes it.
            pub fn absorb(&self, tally: &mut Tally) {
                $(
                    if tally.$name != 0 {
                        self.$name.fetch_add(tally.$name, Relaxed);
                        tally.$name = 0;
                    }
                )*
            }

            fn write(&self, w: &mut StatsWriter, buf: &mut BytesMut) {
                $( w.counter(buf, stringify!($name), self.$name.load(Relaxed)); )*
            }

            /// Every counter as `(name, value)`, for tests and logs.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name.load(Relaxed)), )*]
            }
        }
    };
}

counters! {
    /// Connections accepted since start.
    connections_total,
    /// Connections open now.
    connections_current,
    /// Connections refused with SERVER_FULL.
    connections_rejected,
    /// Connections refused because their address held `--max-connections-per-ip`.
    connections_rejected_per_ip,
    /// Connections refused with DENIED: not from loopback, in protected mode.
    connections_rejected_protected,
    /// Times `accept` failed for lack of descriptors or memory (accepting pauses).
    accept_errors,
    /// Connections closed because the peer closed or reset.
    closed_by_peer,
    /// Connections closed after a fatal protocol error.
    closed_protocol_error,
    /// Connections closed for being idle.
    closed_idle,
    /// Connections closed because a frame took longer than `--frame-timeout`.
    closed_frame_timeout,
    /// Connections closed for taking none of their answers for `--write-timeout`.
    closed_write_timeout,
    /// Connections closed by shutdown.
    closed_shutdown,
    /// Connections closed because client buffers passed `--max-client-memory` and
    /// they held the most (counted when the close completes).
    closed_client_memory,
    /// Connections chosen to be closed for `--max-client-memory` (counted at once;
    /// their memory is freed at once, their last frame and close may take longer).
    client_memory_evictions,
    /// Connections closed after a socket error.
    closed_io_error,
    /// Connections closed because their first frame was not a HELLO with the right
    /// token (AUTH_REQUIRED or AUTH_FAILED).
    closed_auth_failed,
    /// Connections closed for not authenticating within `--auth-timeout`.
    closed_auth_timeout,
    /// TLS connections whose handshake failed (a client not speaking TLS, a refused
    /// certificate) or was not finished within `--tls-handshake-timeout`.
    closed_tls_handshake,
    /// TLS connections closed for a TLS error after the handshake.
    closed_tls_error,
    /// TLS handshakes completed, full or resumed.
    tls_handshakes,
    /// TLS handshakes that resumed an earlier session.
    tls_resumed,
    /// Certificate reloads on SIGHUP that succeeded.
    tls_reloads,
    /// Certificate reloads on SIGHUP that failed (the old certificate stays).
    tls_reload_errors,
    /// Requests answered, whatever the outcome.
    requests_total,
    /// HELLO requests.
    cmd_hello,
    /// PING requests.
    cmd_ping,
    /// STATS requests.
    cmd_stats,
    /// GET requests.
    cmd_get,
    /// PUT requests.
    cmd_put,
    /// DELETE requests.
    cmd_delete,
    /// CAS requests.
    cmd_cas,
    /// SCAN requests.
    cmd_scan,
    /// SUBSCRIBE requests.
    cmd_subscribe,
    /// UNSUBSCRIBE requests.
    cmd_unsubscribe,
    /// PUBLISH requests.
    cmd_publish,
    /// GETs that found a record.
    get_hits,
    /// GETs that found none.
    get_misses,
    /// CAS and conditional DELETEs refused with VERSION_CONFLICT.
    version_conflicts,
    /// Writes refused with MEMORY_LIMIT.
    writes_refused_memory,
    /// Writes refused with STORAGE_FULL.
    writes_refused_storage,
    /// Requests answered with an error status (bad body, unknown opcode, limits).
    request_errors,
    /// Fatal protocol errors (malformed frame, bad version, frame too large).
    protocol_errors,
    /// Requests answered INTERNAL_ERROR because executing them panicked.
    internal_errors,
    /// Runs of requests whose answers filled their connection's output to its limit:
    /// the client asks faster than it reads, and its further requests wait (and its
    /// input is not read) until it has read some.
    output_limit_reached,
    /// Bytes read from clients (over TLS: the protocol's bytes, decrypted).
    bytes_read,
    /// Bytes written to clients (over TLS: the protocol's bytes, before encryption).
    bytes_written,
}

/// Queue depths, as the reactor last published them (once per loop iteration).
#[derive(Debug, Default)]
pub struct Queues {
    /// Requests handed to the worker pool and not yet back: in a worker's queue,
    /// executing, or kept by the reactor while that worker's queue is full.
    pub worker_requests: AtomicU64,
    /// Batches sent to workers and not yet back.
    pub worker_batches: AtomicU64,
    /// Connections with answers left after their last write turn: waiting for the
    /// client to read.
    pub output_waiting: AtomicU64,
    /// Changes the sequencer holds until an earlier one, still executing, arrives.
    pub sequencer_held: AtomicU64,
}

/// The counters plus the facts STATS reports beside them.
#[derive(Debug)]
pub struct Stats {
    /// The counters.
    pub counters: Counters,
    /// Memory all connections hold for their clients, as the reactor last summed it.
    pub client_memory: AtomicU64,
    /// Queue depths.
    pub queues: Queues,
    /// Request latency.
    pub latency: latency::Latency,
    started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: Counters::default(),
            client_memory: AtomicU64::new(0),
            queues: Queues::default(),
            latency: latency::Latency::default(),
            started: Instant::now(),
        }
    }
}

impl Stats {
    /// Adds one to a counter.
    #[inline]
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Appends a whole STATS response: uptime, the counters, the reactor's gauges,
    /// request latency, and the `extra` gauges (store size, memory, sequence) the
    /// caller reads at the same moment.
    ///
    /// Latency is given as its count and sum and, for people reading the CLI, two
    /// quantiles as the upper bound of their bucket (the histogram itself is on the
    /// metrics endpoint).
    pub fn encode(&self, buf: &mut BytesMut, id: ReplyTo, extra: &[(&str, u64)]) {
        let mut w = StatsWriter::begin(buf, id);
        w.counter(buf, "uptime_seconds", self.started.elapsed().as_secs());
        self.counters.write(&mut w, buf);
        w.counter(buf, "client_memory_bytes", self.client_memory.load(Relaxed));
        let q = &self.queues;
        for (name, value) in [
            ("worker_queue_requests", &q.worker_requests),
            ("worker_queue_batches", &q.worker_batches),
            ("connections_output_waiting", &q.output_waiting),
            ("sequencer_held_changes", &q.sequencer_held),
        ] {
            w.counter(buf, name, value.load(Relaxed));
        }
        let latency = self.latency.snapshot();
        w.counter(buf, "request_latency_count", latency.count());
        w.counter(buf, "request_latency_sum_us", latency.sum_ns / 1000);
        w.counter(
            buf,
            "request_latency_p50_us",
            latency.quantile_bound_us(0.5),
        );
        w.counter(
            buf,
            "request_latency_p99_us",
            latency.quantile_bound_us(0.99),
        );
        for (name, value) in extra {
            w.counter(buf, name, *value);
        }
        w.finish(buf);
    }
}
