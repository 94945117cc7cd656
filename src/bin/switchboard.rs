//! The switchboard server: flags in, `Config` out, then `Server::run`.

use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use switchboard::config::{self, parse_bytes, Config};
use switchboard::protocol::Limits;
use switchboard::server::Server;

/// A versioned in-memory record store over a compact binary protocol.
///
/// Prints `listening on HOST:PORT` once ready. SIGINT or SIGTERM stops it gracefully:
/// it stops accepting, answers what it has read, closes every connection and exits 0.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version)]
struct Flags {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Worker threads executing requests (at most 256). 0 runs them on the network
    /// thread. [default: available cores - 1, at least 1]
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=256))]
    workers: Option<u16>,

    /// Largest frame accepted, in bytes, length field included (suffixes k, m, g).
    /// The largest value is this minus 4096. Clamped to 8 KiB..1 GiB.
    #[arg(long, default_value = "1052672", value_parser = parse_u32_bytes)]
    max_frame: u32,

    /// Most simultaneous client connections; more are refused with SERVER_FULL.
    #[arg(long, default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Memory for records, in bytes (suffixes k, m, g): writes past it are refused
    /// with MEMORY_LIMIT while reads and deletes go on. 0 = no limit.
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    max_memory: u64,

    /// Pending output per connection, in bytes, past which the server stops reading
    /// that connection until the client catches up.
    #[arg(long, default_value = "4m", value_parser = parse_bytes)]
    max_output: u64,

    /// With workers, a loop iteration's batch of at most this many cheap requests
    /// (GET, PUT, DELETE, CAS, PING under 16 KiB) runs on the network thread, where a
    /// hand-off would cost about as much as the work. 0 hands every batch off.
    #[arg(long, default_value_t = config::DEFAULT_INLINE_MAX_BATCH)]
    inline_max_batch: usize,

    /// Close connections that send nothing for this many seconds. 0 = never.
    #[arg(long, default_value_t = 0)]
    idle_timeout: u64,
}

fn parse_u32_bytes(text: &str) -> Result<u32, String> {
    let n = parse_bytes(text)?;
    u32::try_from(n).map_err(|_| format!("'{text}' is over 4 GiB"))
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let config = Config {
        listen: flags.listen,
        workers: flags
            .workers
            .map_or_else(Config::default_workers, usize::from),
        limits: Limits::with_max_frame(flags.max_frame),
        max_connections: flags.max_connections,
        max_memory: flags.max_memory,
        max_output: usize::try_from(flags.max_output).unwrap_or(usize::MAX),
        inline_max_batch: flags.inline_max_batch,
        idle_timeout: (flags.idle_timeout > 0).then(|| Duration::from_secs(flags.idle_timeout)),
        ..Config::default()
    };
    let server = match Server::bind(&config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Plain text on stdout, so scripts and tests can find the port.
    println!("listening on {}", server.local_addr());
    match server.run() {
        Ok(()) => {
            eprintln!("switchboard: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}
