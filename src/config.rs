//! `Config`: every limit and knob of a server, with its default and unit.
//!
//! Limits live here and nowhere else: the binary builds a `Config` from its flags and
//! hands it to [`Server`](crate::server::Server), which passes the pieces down to the
//! decoder, the connections, the workers and the store.

use crate::conn::ConnLimits;
use crate::protocol::Limits;
use crate::push::PushConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// Default listen address: loopback only, as Redis binds by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";
/// Default connection limit (Redis's default `maxclients`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Output a connection may have pending before the server stops reading from it:
/// large enough for a deep pipeline of small values, small enough that 10,000 stuck
/// clients cannot hold more than a few GiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 4 << 20;
/// Requests in one run of a connection's jobs (see `conn`): bounds the frames a
/// pipelining client can have decoded at once. Executing stops at the output limit
/// whatever this is, so it does not bound output. 256 is far deeper than pipelines need
/// to fill a link.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 256;
/// Default limit on the memory all connections together hold for their clients
/// (buffered input, pending output, decoded requests): 1 GiB, room for 250 clients
/// each at the default output limit.
pub const DEFAULT_MAX_CLIENT_MEMORY: usize = 1 << 30;
/// Bytes read from one connection per loop iteration before the others get a turn.
pub const READ_BUDGET_BYTES: usize = 256 << 10;
/// Bytes written to one connection per loop iteration before the others get a turn:
/// about a quarter of a millisecond of copying into the kernel.
pub const WRITE_BUDGET_BYTES: usize = 512 << 10;
/// Default listen backlog: Redis's default. The kernel caps it at
/// `net.core.somaxconn` (4096 on current Linux).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 511;
/// Size of the reactor's read buffer: one `read` call takes at most this much.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// How long a closing connection keeps discarding input so its last frame is not lost
/// to a reset (see `conn::state`).
pub const LINGER: Duration = Duration::from_secs(2);
/// How long a closing connection whose client takes none of its pending output is
/// kept before it is dropped (see `conn::timers`).
pub const CLOSING_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest batch of cheap requests the reactor runs itself instead of handing it to a
/// worker (see `server::execute`). A cheap request costs about 0.1 µs to execute
/// against a prefetched store, and handing a batch of a few hundred to a worker was
/// measured at about as much again (wake-ups, cross-core cache traffic), plus
/// milliseconds of tail latency when the worker waits for a core. At 1024 such requests
/// (~100 µs) running beside the reactor's I/O starts to pay.
pub const DEFAULT_INLINE_MAX_BATCH: usize = 1024;
/// How long a frame may take to arrive whole from its first byte, by default: a client
/// trickling one byte at a time (slowloris) is closed after this, idle timeout or not.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take none of the answers it is owed, by default, before it is
/// closed: it is not reading, and they cannot reach it.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// SCAN page size when the request asks for 0.
pub const DEFAULT_SCAN_LIMIT: u16 = 100;
/// Largest SCAN page the server returns, whatever the request asks.
pub const MAX_SCAN_LIMIT: u16 = 1000;
/// How long a graceful stop may take: requests keep executing for most of it (see
/// `server::shutdown`), and the rest is for telling clients.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a [`Server`](crate::server::Server) needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The listen backlog: connections the kernel queues before they are accepted.
    pub listen_backlog: u32,
    /// Worker threads; 0 executes requests on the reactor thread.
    pub workers: usize,
    /// Frame, key and value limits.
    pub limits: Limits,
    /// Most simultaneous client connections; more are told SERVER_FULL and closed.
    pub max_connections: usize,
    /// Store memory limit in bytes (keys, values and per-record overhead); 0 = none.
    pub max_memory: u64,
    /// Pending output past which the server stops reading a connection and executing
    /// its requests.
    pub max_output: usize,
    /// Requests in one run of a connection's jobs.
    pub max_in_flight: u32,
    /// Memory all connections together may hold for their clients; past it the ones
    /// holding the most are closed. 0 = no limit.
    pub max_client_memory: usize,
    /// How long a graceful stop may take.
    pub shutdown_timeout: Duration,
    /// Close connections idle this long; `None` = never (Redis's default).
    pub idle_timeout: Option<Duration>,
    /// Batches of at most this many cheap requests run on the reactor even when there
    /// are workers; 0 sends every batch to a worker.
    pub inline_max_batch: usize,
    /// Subscription limits, the change log's bounds and keepalive.
    pub push: PushConfig,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` = nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Most connections from one IP address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// How long a frame may take to arrive whole; `None` = for ever.
    pub frame_timeout: Option<Duration>,
    /// How long a client may take none of its answers; `None` = for ever.
    pub write_timeout: Option<Duration>,
    /// Where and how to keep the data; `None` keeps it in memory only, and a restart
    /// forgets everything.
    pub durability: Option<crate::durability::DurabilityConfig>,
    /// The token every connection's first frame, a HELLO, must carry; `None` = no
    /// authentication.
    pub auth: Option<std::sync::Arc<crate::auth::TokenCheck>>,
    /// How long a connection may take to authenticate.
    pub auth_timeout: Duration,
    /// With no `auth`, serve only loopback clients (others get DENIED).
    pub protected_mode: bool,
    /// With a certificate, `listen` speaks TLS only; `None` = plaintext.
    pub tls: Option<crate::tls::TlsConfig>,
    /// A second, plaintext listener beside a TLS `listen` (only with `tls`).
    pub plaintext_listen: Option<SocketAddr>,
}

impl Config {
    /// The default worker count: one per core beyond the one the reactor uses.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1)
    }

    /// The limits each connection enforces.
    pub fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            protocol: self.limits,
            max_output: self.max_output,
            max_in_flight: self.max_in_flight,
            idle_timeout: self.idle_timeout,
            linger: LINGER,
            closing_timeout: CLOSING_TIMEOUT,
            frame_timeout: self.frame_timeout,
            write_timeout: self.write_timeout,
            auth: self.auth.clone(),
            auth_timeout: self.auth_timeout,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            workers: Config::default_workers(),
            limits: Limits::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_memory: 0,
            max_output: DEFAULT_MAX_OUTPUT_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_client_memory: DEFAULT_MAX_CLIENT_MEMORY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            idle_timeout: None,
            inline_max_batch: DEFAULT_INLINE_MAX_BATCH,
            push: PushConfig::default(),
            metrics_listen: None,
            max_connections_per_ip: 0,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            write_timeout: Some(DEFAULT_WRITE_TIMEOUT),
            durability: None,
            auth: None,
            auth_timeout: crate::auth::DEFAULT_AUTH_TIMEOUT,
            protected_mode: true,
            tls: None,
            plaintext_listen: None,
        }
    }
}

/// Parses a byte count such as `1048576`, `64k`, `512MiB` or `2g` (powers of 1024).
///
/// # Errors
/// A message naming the problem, for the command line.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a byte count (try 1048576, 64k, 512MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown unit '{other}' in '{text}'")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("99999999999t").is_err());
    }
}
