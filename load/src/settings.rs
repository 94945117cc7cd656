//! What a run is asked to do: the servers, the protocol, the connections and the
//! workload, as parsed from the command line and checked before anything connects.

use crate::dialect::Protocol;
use crate::engine::Plan;
use crate::pubsub::Workload;
use crate::schedule::Stop;
use crate::workload::{self, KeyDist, Mix, Ring, ValueSize};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Measured time when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// The parameters of one run (the rate search runs several with different rates).
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// Server address; repeat to shard keys over several servers by consistent hashing.
    /// [default: the protocol's usual local address: 127.0.0.1:7420 for switchboard,
    /// 127.0.0.1:6379 for resp, 127.0.0.1:11211 for memcache]
    #[arg(long = "addr", value_name = "HOST:PORT")]
    pub addrs: Vec<String>,

    /// Wire protocol to speak.
    #[arg(long, value_enum, default_value = "switchboard")]
    pub protocol: Protocol,

    /// TCP connections in total (spread over threads, then servers).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,

    /// Generator threads, each with its own event loop over its share of connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// Measured time, e.g. 10s, 500ms, 2m [default: 10s unless --requests].
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Measured requests instead of a measured time.
    #[arg(long)]
    pub requests: Option<u64>,

    /// Time before measuring starts; its requests are sent and checked, not reported.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub warmup: Duration,

    /// A request unanswered this long is an error (and its connection is closed).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Operation weights over get, put, del, cas, ping.
    #[arg(long, value_parser = Mix::parse, default_value = "get=9,put=1")]
    pub mix: Mix,

    /// Number of distinct keys (key:000000000000 up to keys-1).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,

    /// Key popularity: uniform, zipf:EXPONENT (key 0 hottest), or sequential (every key
    /// in turn: with --requests equal to --keys and --mix put=1, a preload).
    #[arg(long, value_parser = KeyDist::parse, default_value = "uniform")]
    pub key_dist: KeyDist,

    /// Value size in bytes, or a range like 64-1024 (each key has its own size in it).
    #[arg(long, value_parser = ValueSize::parse, default_value = "64")]
    pub value_size: ValueSize,

    /// Open loop at this many requests per second over all connections.
    #[arg(long, value_name = "OPS_PER_SEC")]
    pub rate: Option<f64>,

    /// Re-open a connection the server closed or that timed out (after 100 ms,
    /// doubling up to 2 s), instead of going on without it. Requests it had in flight
    /// still count as errors.
    #[arg(long)]
    pub reconnect: bool,

    /// Speak TLS to the servers (switchboard's TLS --listen, Redis's --tls-port); the
    /// handshakes are done before the clock starts. Needs --tls-ca or --tls-insecure.
    #[arg(long)]
    pub tls: bool,

    /// Trust the CA certificates in FILE (PEM) for --tls (a self-signed server
    /// certificate itself works). Implies --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// Accept any server certificate (for test certificates). Implies --tls.
    #[arg(long)]
    pub tls_insecure: bool,

    /// The name the server certificates must carry [default: the host of the first
    /// --addr].
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// Seed for key and operation choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// kv: requests against records. pubsub: --publishers publish stamped messages
    /// that --subscribers receive (deliveries/s, end-to-end latency, anything missing,
    /// duplicated or out of order). watch: --publishers writers PUT, --subscribers
    /// watchers watch their keys, and each must see every change or a GAP.
    #[arg(long, value_enum, default_value = "kv")]
    pub workload: Workload,

    /// Subscribing connections (pubsub, watch).
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,

    /// Publishing (or writing) connections (pubsub, watch).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,

    /// Before the run, hold this many subscriptions that match nothing the run sends
    /// (switchboard only), spread over --idle-connections: what matching costs when
    /// most subscriptions are elsewhere.
    #[arg(long, default_value_t = 0)]
    pub idle_subscriptions: usize,

    /// Connections holding the --idle-subscriptions.
    #[arg(long, default_value_t = 1000)]
    pub idle_connections: usize,

    /// Subscribers (pubsub) or watchers (watch) that subscribe and then never read:
    /// what a stalled consumer costs the server and the others.
    #[arg(long, default_value_t = 0)]
    pub stalled_subscribers: usize,

    /// The server's process id, when it runs on this machine (pubsub, watch): its CPU
    /// time over the measured window is reported per delivery and per send.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Authenticate every connection with the token in FILE, for a switchboard server
    /// started with --auth-token-file (switchboard only).
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// True when any TLS flag was given.
    pub fn wants_tls(&self) -> bool {
        self.tls || self.tls_ca.is_some() || self.tls_insecure || self.tls_server_name.is_some()
    }

    /// The TLS configuration the flags ask for, if any.
    pub fn tls_config(&self) -> Result<Option<crate::tls::Tls>, Error> {
        if !self.wants_tls() {
            return Ok(None);
        }
        let first = self.addrs.first().map_or("localhost", String::as_str);
        let host = match first.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => first,
        };
        let name = self.tls_server_name.as_deref().unwrap_or(host);
        crate::tls::Tls::new(self.tls_ca.as_deref(), self.tls_insecure, name)
            .map(Some)
            .map_err(Error::Usage)
    }

    /// Parses settings from command-line words (without the program name), as the
    /// binary does: for embedders and tests that want the binary's defaults.
    pub fn from_args<I, T>(words: I) -> Result<Settings, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        #[command(name = "switchboard-load", no_binary_name = true)]
        struct Words {
            #[command(flatten)]
            settings: Settings,
        }
        <Words as clap::Parser>::try_parse_from(words).map(|mut w| {
            w.settings.default_addr();
            w.settings
        })
    }

    /// With no `--addr`, the protocol's usual local address.
    pub fn default_addr(&mut self) {
        if self.addrs.is_empty() {
            let port = match self.protocol {
                Protocol::Switchboard => 7420,
                Protocol::Resp => 6379,
                Protocol::Memcache => 11211,
            };
            self.addrs.push(format!("127.0.0.1:{port}"));
        }
    }

    /// The token to authenticate with, from `--auth-token-file`; empty for none.
    ///
    /// # Errors
    /// When the file cannot be read or holds no token.
    pub fn token(&self) -> Result<Vec<u8>, Error> {
        match &self.auth_token_file {
            Some(path) => crate::auth::read_token(path),
            None => Ok(Vec::new()),
        }
    }

    /// Checks the settings against each other and resolves the server addresses.
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, Error> {
        if self.addrs.is_empty() {
            return Err(Error::Usage("no server address (--addr HOST:PORT)".into()));
        }
        if self.threads == 0 || self.connections == 0 || self.pipeline == 0 || self.keys == 0 {
            return Err(Error::Usage(
                "--threads, --connections, --pipeline and --keys must be at least 1".into(),
            ));
        }
        if self.pipeline > 65_536 {
            return Err(Error::Usage("--pipeline is at most 65536".into()));
        }
        if self.connections < self.threads * self.addrs.len() {
            return Err(Error::Usage(format!(
                "--connections ({}) must be at least --threads x servers ({} x {}), so that \
                 every thread reaches every server",
                self.connections,
                self.threads,
                self.addrs.len()
            )));
        }
        if self.keys > 999_999_999_999 {
            return Err(Error::Usage(
                "--keys is at most 999999999999 (twelve-digit key names)".into(),
            ));
        }
        if self.value_size.max > 1 << 20 {
            return Err(Error::Usage("--value-size is at most 1048576 bytes".into()));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::Usage(
                    "--rate must be a positive number of requests per second".into(),
                ));
            }
        }
        if self.wants_tls() && (self.reconnect || self.workload != Workload::Kv) {
            return Err(Error::Usage(
                "--tls is available for the kv workload without --reconnect".into(),
            ));
        }
        if self.requests == Some(0) {
            return Err(Error::Usage("--requests must be at least 1".into()));
        }
        if self.duration.is_some_and(|d| d.is_zero()) || self.timeout.is_zero() {
            return Err(Error::Usage(
                "--duration and --timeout must be longer than zero".into(),
            ));
        }
        for op in workload::Op::ALL {
            if self.mix.contains(op) {
                if let Some(why) = self.protocol.unsupported(op) {
                    return Err(Error::Usage(why.into()));
                }
            }
        }
        if self.auth_token_file.is_some() && self.protocol != Protocol::Switchboard {
            return Err(Error::Usage(
                "--auth-token-file is for --protocol switchboard".into(),
            ));
        }
        let mut addrs = Vec::new();
        for a in &self.addrs {
            let resolved = a
                .to_socket_addrs()
                .map_err(|e| Error::Usage(format!("cannot resolve {a}: {e}")))?
                .next()
                .ok_or_else(|| Error::Usage(format!("{a} resolves to no address")))?;
            addrs.push(resolved);
        }
        Ok(addrs)
    }

    /// When the measured part of the run ends.
    pub fn stop(&self) -> Stop {
        match (self.requests, self.duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::Duration(d.as_nanos() as u64),
            (None, None) => Stop::Duration(DEFAULT_DURATION.as_nanos() as u64),
        }
    }

    /// What the generator threads share, for a run at `rate` against `addrs`.
    pub fn plan(&self, addrs: &[SocketAddr], rate: Option<f64>) -> Plan {
        Plan {
            proto: self.protocol,
            mix: self.mix.clone(),
            key_dist: self.key_dist.clone(),
            keys: self.keys,
            value_size: self.value_size,
            pipeline: self.pipeline,
            timeout_ns: self.timeout.as_nanos() as u64,
            warmup_ns: self.warmup.as_nanos() as u64,
            stop: self.stop(),
            rate,
            threads: self.threads,
            ring: Ring::new(&self.addrs),
            seed: self.seed,
            reconnect: self.reconnect,
            addrs: addrs.to_vec(),
            hello: None,
        }
    }
}

/// Why a run could not be made, with the exit status the binary leaves with.
#[derive(Debug)]
pub enum Error {
    /// The settings are inconsistent or name no server: exit status 2.
    Usage(String),
    /// A server could not be reached before the run started: exit status 2.
    Connect(String),
    /// The run itself failed (the event loop, or writing its results): exit status 1.
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Connect(_) => 2,
            Error::Failed(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Connect(m) | Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// A latency target: the `quantile` of corrected response time at most `max_ns`.
#[derive(Clone, Debug)]
pub struct Slo {
    pub text: String,
    pub quantile: f64,
    pub max_ns: u64,
}

/// Parses a latency target written as `pNN=TIME`, e.g. `p99=1ms` or `p999=250us`.
pub fn parse_slo(s: &str) -> Result<Slo, String> {
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
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
    fn settings_parse_with_the_binarys_defaults_and_are_checked() {
        let s = Settings::from_args(["--addr", "127.0.0.1:7420"]).unwrap();
        assert_eq!((s.connections, s.pipeline, s.keys), (50, 1, 100_000));
        assert_eq!(s.stop(), Stop::Duration(10_000_000_000));
        assert_eq!(s.resolve().unwrap().len(), 1);
        let s = Settings::from_args(["--addr", "127.0.0.1:1", "--requests", "5"]).unwrap();
        assert_eq!(s.stop(), Stop::Requests(5));
        let bad = Settings::from_args(["--addr", "127.0.0.1:1", "--pipeline", "0"]).unwrap();
        assert!(matches!(bad.resolve(), Err(Error::Usage(m)) if m.contains("--pipeline")));
        let cas =
            Settings::from_args(["--addr", "x:1", "--protocol", "resp", "--mix", "cas=1"]).unwrap();
        assert!(matches!(cas.resolve(), Err(Error::Usage(m)) if m.contains("compare-and-set")));
        let local = Settings::from_args(["--pipeline", "2"]).unwrap();
        assert_eq!(
            local.addrs,
            ["127.0.0.1:7420"],
            "the server's default address"
        );
    }
}
