//! The switchboard server: flags in, `Config` out, then `Server::run`.

use clap::Parser;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use switchboard::config::{self, parse_bytes, Config};
use switchboard::durability::DurabilityConfig;
use switchboard::protocol::Limits;
use switchboard::push::{self, PushConfig};
use switchboard::server::Server;

/// A versioned in-memory record store over a compact binary protocol.
///
/// Prints `listening on HOST:PORT` once ready. SIGINT or SIGTERM stops it gracefully:
/// it stops accepting, answers what it has read (or, past most of
/// --shutdown-timeout, answers SHUTTING_DOWN to what it has not started), closes every
/// connection and exits 0. A second signal exits at once.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version)]
struct Flags {
    /// Address to listen on, HOST:PORT (a name such as localhost is resolved). Port 0
    /// picks a free port (printed at start). With --tls-cert it speaks TLS only.
    #[arg(long, default_value = config::DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,

    /// Connections the kernel queues for the server before it accepts them (capped
    /// by net.core.somaxconn).
    #[arg(long, default_value_t = config::DEFAULT_LISTEN_BACKLOG)]
    listen_backlog: u32,

    /// Worker threads executing requests (at most 256). 0 runs them on the network
    /// thread. [default: available cores - 1, at least 1]
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=256))]
    workers: Option<u16>,

    /// Largest frame accepted, in bytes, length field included (suffixes k, m, g).
    /// The largest value is this minus 4096. Clamped to 8 KiB..1 GiB.
    #[arg(long, default_value = "1052672", value_parser = parse_u32_bytes)]
    max_frame: u32,

    /// Most simultaneous client connections; more are refused with SERVER_FULL.
    /// Lowered at start (and said so) when the file descriptor limit cannot hold it.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Most simultaneous connections from one IP address; more are refused with
    /// SERVER_FULL (a message naming this limit) and counted. 0 = no limit.
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,

    /// Memory for records, in bytes (suffixes k, m, g): writes past it are refused
    /// with MEMORY_LIMIT while reads and deletes go on. 0 = no limit.
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    max_memory: u64,

    /// Pending output per connection, in bytes, past which the server stops reading
    /// that connection and executing its requests until the client catches up: a
    /// client that does not read holds at most this plus one answer.
    #[arg(long, default_value = "4m", value_parser = parse_bytes)]
    max_output: u64,

    /// Memory all connections together may hold for their clients (buffered requests
    /// and unread answers), in bytes (suffixes k, m, g). Past it, the connections
    /// holding the most are closed with a CLIENT_MEMORY_LIMIT error. 0 = no limit.
    #[arg(long, default_value = "1g", value_parser = parse_bytes)]
    max_client_memory: u64,

    /// With workers, a loop iteration's batch of at most this many cheap requests
    /// (GET, PUT, DELETE, CAS, PING under 16 KiB) runs on the network thread, where a
    /// hand-off would cost about as much as the work. 0 hands every batch off.
    #[arg(long, default_value_t = config::DEFAULT_INLINE_MAX_BATCH)]
    inline_max_batch: usize,

    /// Close connections that have nothing executing and moved no byte either way for
    /// this many seconds (one that has answers it is not reading is dropped at once;
    /// otherwise the close is graceful). 0 = never.
    #[arg(long, default_value_t = 0)]
    idle_timeout: u64,

    /// Seconds a frame may take to arrive whole from its first byte; a client trickling
    /// one (slowloris) is closed after this, idle timeout or not. 0 = no limit.
    #[arg(long, default_value_t = config::DEFAULT_FRAME_TIMEOUT.as_secs_f64())]
    frame_timeout: f64,

    /// Seconds a client may take none of the answers it is owed before it is closed
    /// (not for a subscriber's events, which TCP keepalive judges). 0 = no limit.
    #[arg(long, default_value_t = config::DEFAULT_WRITE_TIMEOUT.as_secs_f64())]
    write_timeout: f64,

    /// Seconds a stop (SIGINT, SIGTERM) may take. Requests read before it keep
    /// executing for most of this; the rest are answered SHUTTING_DOWN.
    #[arg(long, default_value_t = config::DEFAULT_SHUTDOWN_TIMEOUT.as_secs_f64())]
    shutdown_timeout: f64,

    /// Changes kept in memory for subscribers that resume from a sequence; one that
    /// resumes from before the oldest kept gets a GAP.
    #[arg(long, default_value_t = push::DEFAULT_CHANGE_LOG_EVENTS)]
    change_log_events: usize,

    /// Bytes the kept changes may hold (suffixes k, m, g); fewer changes are kept when
    /// this binds first.
    #[arg(long, default_value = "64m", value_parser = parse_bytes)]
    change_log_bytes: u64,

    /// Subscriptions one connection may hold; more are refused with SUBSCRIPTION_LIMIT.
    #[arg(long, default_value_t = push::DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    max_subscriptions_per_connection: usize,

    /// Subscriptions all connections together may hold.
    #[arg(long, default_value_t = push::DEFAULT_MAX_SUBSCRIPTIONS)]
    max_subscriptions: usize,

    /// Seconds with nothing sent either way after which a subscriber is sent a PING
    /// push; one that sends nothing for three of these after it is closed. Its
    /// socket also gets TCP keepalive probes on the same interval.
    #[arg(long, default_value_t = push::DEFAULT_KEEPALIVE.as_secs_f64())]
    keepalive: f64,

    /// Longest PUBLISH subject and SUBSCRIBE prefix in bytes; longer ones are refused
    /// with KEY_TOO_LARGE (the key limit, 1024, applies too).
    #[arg(long, default_value_t = push::DEFAULT_MAX_SUBJECT)]
    max_subject: usize,

    /// Largest PUBLISH payload in bytes (suffixes k, m, g); larger ones are refused with
    /// VALUE_TOO_LARGE (the value limit applies too).
    #[arg(long, default_value = "1m", value_parser = parse_bytes)]
    max_payload: u64,

    /// Least severe log lines written to stderr: error, warn, info (start, stop,
    /// configuration, connections closed for cause) or debug. The `listening on` line
    /// and the limits go to stdout whatever this says.
    #[arg(long, default_value = "info", value_parser = ["error", "warn", "info", "debug"])]
    log_level: String,

    /// Require every connection to begin with a HELLO carrying the token in FILE (the
    /// file's content, without a trailing line end; 1 to 256 bytes). A file, so the
    /// token is not in `ps` output; reread on SIGHUP. Clients: --auth-token-file or
    /// SWITCHBOARD_AUTH_TOKEN.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<std::path::PathBuf>,

    /// With --auth-token-file, how long a connection may take to send its HELLO
    /// before it is closed with AUTH_REQUIRED.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    auth_timeout: f64,

    /// Protected mode: with no --auth-token-file, serve only clients on this machine
    /// (loopback), whatever --listen says; others are refused with DENIED. "no" serves
    /// every client without authentication: only on a network you trust.
    #[arg(long, default_value = "yes", value_parser = ["yes", "no"])]
    protected_mode: String,

    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and /readyz
    /// beside it. A bare PORT (or :PORT) binds loopback, 127.0.0.1:PORT; keep it on
    /// loopback or a private network. Off unless given.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_listen)]
    metrics_listen: Option<SocketAddr>,

    /// Keep the records in DIR: every write is logged there before it is acknowledged
    /// (see --fsync), and a restart recovers them. Without it the server keeps
    /// everything in memory only, and a restart forgets it.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// With --data-dir, when the log is synced to disk. always: before any answer or
    /// change event reveals a write, so nothing acknowledged is lost in a crash or
    /// power cut. everysec: about once a second; a crash loses up to a second or so of
    /// acknowledged writes. off: only as each log segment fills, for a compaction,
    /// and at a clean stop; a crash loses what the operating system had not written
    /// back.
    #[arg(long, default_value = "always", value_parser = ["always", "everysec", "off"])]
    fsync: String,

    /// With --data-dir, start from a damaged log by keeping its longest valid prefix;
    /// the rest is moved aside into DIR/damaged/, never dropped.
    #[arg(long)]
    repair: bool,

    /// With --data-dir: copy DIR's data, consistently, into the new directory PATH
    /// and exit; works while a server runs on DIR. A server started on the copy holds
    /// every write acknowledged before the copy began, under a new history id.
    #[arg(long, value_name = "PATH", requires = "data_dir")]
    backup_to: Option<std::path::PathBuf>,

    /// With --data-dir, compact the log only once it is past this size (suffixes k,
    /// m, g) and past twice the live data, as the newest snapshot measured it: a
    /// snapshot of the records replaces the segments it covers.
    #[arg(long, default_value = "64m", value_parser = parse_bytes)]
    compact_min: u64,

    /// Test hook: log segments are rotated past this many bytes (default 64 MiB).
    #[arg(long, hide = true)]
    test_segment_bytes: Option<u64>,

    /// Test hook: every log sync takes this many milliseconds longer.
    /// TLS certificate chain (PEM, leaf first). With it and --tls-key, --listen speaks
    /// TLS only: no frame is ever answered in clear there. SIGHUP reloads both files;
    /// open connections keep the certificate they began with.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1), for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by a CA in FILE (PEM); a client without one
    /// fails the handshake. Off unless given.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// A TLS handshake not finished this long after connecting closes the connection
    /// (counted as closed_tls_handshake).
    #[arg(long, value_name = "SECS", default_value_t = switchboard::tls::DEFAULT_HANDSHAKE_TIMEOUT.as_secs_f64())]
    tls_handshake_timeout: f64,

    /// Also listen on ADDR in plaintext, beside the TLS --listen. Off by default: with
    /// a certificate nothing is served in clear unless asked for here.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen, requires = "tls_cert")]
    plaintext_listen: Option<SocketAddr>,

    #[arg(long, hide = true, default_value_t = 0)]
    test_sync_delay_ms: u64,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("'{text}' is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// `--metrics-listen`: HOST:PORT, or a bare PORT (or :PORT), which binds loopback.
fn parse_metrics_listen(text: &str) -> Result<SocketAddr, String> {
    match text.trim_start_matches(':').parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => parse_listen(text),
    }
}

fn parse_u32_bytes(text: &str) -> Result<u32, String> {
    let n = parse_bytes(text)?;
    u32::try_from(n).map_err(|_| format!("'{text}' is over 4 GiB"))
}

/// What the server says after its address: its version, its threads and the limits in
/// force, naming every value that was changed from what was asked.
fn summary(flags: &Flags, config: &Config, max_connections: usize) -> Vec<String> {
    let l = &config.limits;
    let mut lines = vec![
        format!(
            "switchboard {}: {} worker thread(s){}",
            env!("CARGO_PKG_VERSION"),
            config.workers,
            if config.workers == 0 {
                " (requests run on the network thread)"
            } else {
                ""
            }
        ),
        format!(
            "limits: frames {} B (values {} B, keys {} B); output {} B per connection; \
             {max_connections} connections; client memory {}; store memory {}; idle \
             timeout {}",
            l.max_frame,
            l.max_value,
            l.max_key,
            config.max_output,
            bytes_or(config.max_client_memory as u64, "unlimited"),
            bytes_or(config.max_memory, "unlimited"),
            config
                .idle_timeout
                .map_or("off".to_string(), |t| format!("{} s", t.as_secs())),
        ),
        format!(
            "push: change log {} changes or {} B; {} subscriptions ({} per connection); \
             keepalive {} s",
            config.push.change_log_events,
            config.push.change_log_bytes,
            config.push.max_subscriptions,
            config.push.max_per_connection,
            config.push.keepalive.as_secs_f64()
        ),
        match &config.durability {
            Some(d) => format!(
                "data: kept in {} (fsync {})",
                d.dir.display(),
                d.fsync.name()
            ),
            None => "data: in memory only (no --data-dir): a restart forgets everything".into(),
        },
        match (&config.auth, config.protected_mode) {
            (Some(a), _) => format!(
                "auth: clients must send the token in {} (HELLO, within {} s)",
                a.path().display(),
                config.auth_timeout.as_secs_f64()
            ),
            (None, true) => "auth: none; protected mode: only clients on this machine                              (loopback) are served; --auth-token-file FILE to serve others"
                .into(),
            (None, false) => "auth: none, and protected mode is off: every client that                               can reach the port is served"
                .into(),
        },
    ];
    if l.max_frame != flags.max_frame {
        lines.push(format!(
            "note: --max-frame {} was {} to {} B, the {} allowed",
            flags.max_frame,
            if l.max_frame > flags.max_frame {
                "raised"
            } else {
                "lowered"
            },
            l.max_frame,
            if l.max_frame > flags.max_frame {
                "smallest"
            } else {
                "largest"
            },
        ));
    }
    if max_connections != flags.max_connections {
        lines.push(format!(
            "note: --max-connections {} was lowered to {max_connections}: the file \
             descriptor limit cannot hold more (raise it with ulimit -n)",
            flags.max_connections
        ));
    }
    lines
}

fn bytes_or(n: u64, zero: &str) -> String {
    if n == 0 {
        zero.to_string()
    } else {
        format!("{n} B")
    }
}

/// Allocations at least this large are mapped and unmapped on their own.
const MMAP_THRESHOLD_BYTES: i32 = 128 << 10;

/// Makes freed large buffers go back to the system.
///
/// glibc's malloc maps large allocations on their own, but after such a block is freed
/// it raises that threshold (up to 32 MiB) and serves later large blocks from its
/// heaps, which rarely shrink: after a burst of clients holding megabytes of answers
/// the server kept hundreds of MiB (measured in BENCHMARKS.md, "Memory after a burst").
/// Fixing the threshold keeps large buffers mapped on their own, so freeing one
/// returns it at once. mimalloc was measured too and kept more: its idle threads do not
/// purge.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

fn main() -> ExitCode {
    return_freed_memory();
    let flags = Flags::parse();
    let level = match flags.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .init();
    let shutdown_timeout = match Duration::try_from_secs_f64(flags.shutdown_timeout) {
        Ok(t) => t,
        Err(_) => {
            eprintln!("switchboard: --shutdown-timeout must be a number of seconds, 0 or more");
            return ExitCode::FAILURE;
        }
    };
    // Values that would leave a server that answers no one are refused, not clamped.
    if flags.max_output == 0 {
        eprintln!(
            "switchboard: --max-output 0 would stop every connection before its first \
             answer; give a size, such as 4m (the default)"
        );
        return ExitCode::FAILURE;
    }
    if flags.max_connections == 0 {
        eprintln!("switchboard: --max-connections 0 would refuse every client; give 1 or more");
        return ExitCode::FAILURE;
    }
    let keepalive = match Duration::try_from_secs_f64(flags.keepalive) {
        Ok(t) if !t.is_zero() => t,
        _ => {
            eprintln!("switchboard: --keepalive must be a number of seconds above 0");
            return ExitCode::FAILURE;
        }
    };
    let auth = match &flags.auth_token_file {
        Some(path) => match switchboard::auth::TokenCheck::load(path) {
            Ok(check) => Some(std::sync::Arc::new(check)),
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let Some(auth_timeout) = Duration::try_from_secs_f64(flags.auth_timeout)
        .ok()
        .filter(|t| !t.is_zero())
    else {
        eprintln!("switchboard: --auth-timeout must be a number of seconds above 0");
        return ExitCode::FAILURE;
    };
    let tls_handshake_timeout = match Duration::try_from_secs_f64(flags.tls_handshake_timeout) {
        Ok(t) if !t.is_zero() => t,
        _ => {
            eprintln!("switchboard: --tls-handshake-timeout must be a number of seconds above 0");
            return ExitCode::FAILURE;
        }
    };
    let tls = match (&flags.tls_cert, &flags.tls_key) {
        (Some(cert), Some(key)) => Some(switchboard::tls::TlsConfig {
            client_ca: flags.tls_client_ca.clone(),
            handshake_timeout: tls_handshake_timeout,
            ..switchboard::tls::TlsConfig::new(cert, key)
        }),
        _ => None,
    };
    let config = Config {
        auth,
        auth_timeout,
        protected_mode: flags.protected_mode == "yes",
        tls,
        plaintext_listen: flags.plaintext_listen,
        listen: flags.listen,
        listen_backlog: flags.listen_backlog,
        workers: flags
            .workers
            .map_or_else(Config::default_workers, usize::from),
        limits: Limits::with_max_frame(flags.max_frame),
        max_connections: flags.max_connections,
        max_memory: flags.max_memory,
        max_output: usize::try_from(flags.max_output).unwrap_or(usize::MAX),
        max_client_memory: usize::try_from(flags.max_client_memory).unwrap_or(usize::MAX),
        shutdown_timeout,
        inline_max_batch: flags.inline_max_batch,
        idle_timeout: (flags.idle_timeout > 0).then(|| Duration::from_secs(flags.idle_timeout)),
        push: PushConfig {
            change_log_events: flags.change_log_events,
            change_log_bytes: usize::try_from(flags.change_log_bytes).unwrap_or(usize::MAX),
            max_per_connection: flags.max_subscriptions_per_connection,
            max_subscriptions: flags.max_subscriptions,
            keepalive,
            max_subject: flags.max_subject,
            max_payload: usize::try_from(flags.max_payload).unwrap_or(usize::MAX),
        },
        metrics_listen: flags.metrics_listen,
        max_connections_per_ip: flags.max_connections_per_ip,
        frame_timeout: Duration::try_from_secs_f64(flags.frame_timeout)
            .ok()
            .filter(|t| !t.is_zero()),
        write_timeout: Duration::try_from_secs_f64(flags.write_timeout)
            .ok()
            .filter(|t| !t.is_zero()),
        durability: flags.data_dir.as_ref().map(|dir| DurabilityConfig {
            fsync: flags.fsync.parse().unwrap_or_default(),
            repair: flags.repair,
            sync_delay: Duration::from_millis(flags.test_sync_delay_ms),
            compact_min_bytes: flags.compact_min,
            segment_bytes: flags
                .test_segment_bytes
                .unwrap_or(DurabilityConfig::new(dir).segment_bytes),
            ..DurabilityConfig::new(dir)
        }),
        ..Config::default()
    };
    if let (Some(dest), Some(dir)) = (&flags.backup_to, &flags.data_dir) {
        return match switchboard::durability::backup(dir, dest) {
            Ok(r) => {
                println!(
                    "backed up {} to {}: changes up to {} ({} snapshot record(s), {} log \
                     entries, {} file(s))",
                    dir.display(),
                    r.dest.display(),
                    r.last_seq,
                    r.snapshot_records,
                    r.entries,
                    r.files
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard: backup failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let server = match Server::bind(&config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Plain text on stdout, so scripts and tests can find the port: the first line.
    println!("listening on {}", server.local_addr());
    for line in summary(&flags, &config, server.max_connections()) {
        println!("{line}");
    }
    if let Some(addr) = server.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }
    if let Some(tls) = &config.tls {
        println!(
            "tls: on {} only (certificate {}); client certificates {}",
            server.local_addr(),
            tls.cert.display(),
            if tls.client_ca.is_some() {
                "required"
            } else {
                "not asked for"
            }
        );
    }
    if let Some(addr) = server.plaintext_addr() {
        println!("plaintext listening on {addr}");
    }
    tracing::info!(
        listen = %server.local_addr(),
        workers = config.workers,
        max_frame = config.limits.max_frame,
        max_output = config.max_output,
        max_connections = server.max_connections(),
        "started"
    );
    match server.run() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}
