//! `switchboard-cli`: talk to a switchboard server from a shell.
//!
//! With a command it runs that command and exits; without one it opens an interactive
//! prompt with history (`prompt`), where the same commands (`commands`) are typed
//! without the program name. Everything printed goes through `output`.

mod commands;
mod output;
mod prompt;

use clap::Parser;
use commands::{Command, Failure, Outcome};
use std::process::ExitCode;
use std::time::Duration;
use switchboard::client::{Client, ClientError, ClientTls, TlsOptions};

/// Command-line client for a switchboard server.
///
/// Exit status: 0 on success, 1 when the key was not found, 2 on a version conflict,
/// a refused connection or any other error.
#[derive(Parser, Debug)]
#[command(name = "switchboard-cli", version)]
struct Flags {
    /// Server address, HOST:PORT (before or after the command).
    #[arg(long, global = true, default_value = switchboard::config::DEFAULT_LISTEN)]
    addr: String,

    /// Seconds to wait for the connection to be accepted.
    #[arg(long, global = true, default_value_t = 3.0)]
    connect_timeout: f64,

    /// Seconds to wait for an answer (subscriptions wait for pushes for ever).
    #[arg(long, global = true, default_value_t = 10.0)]
    timeout: f64,

    /// Authenticate with the token in FILE (for a server started with
    /// --auth-token-file). The environment variable SWITCHBOARD_AUTH_TOKEN, holding
    /// the token itself, does the same.
    #[arg(long, global = true, value_name = "FILE")]
    auth_token_file: Option<std::path::PathBuf>,
    /// Speak TLS to the server (trusting the system's CAs unless --tls-ca is given).
    #[arg(long, global = true)]
    tls: bool,

    /// Trust the CA certificates in FILE (PEM) for --tls; a self-signed server
    /// certificate itself works. Implies --tls.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,

    /// Accept any server certificate (encrypted, not authenticated: for tests with
    /// throwaway certificates only). Implies --tls.
    #[arg(long, global = true)]
    tls_insecure: bool,

    /// Present this client certificate (PEM) to servers that require one. Implies --tls.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// The name the server's certificate must carry (default: the host of --addr).
    /// Implies --tls.
    #[arg(long, global = true, value_name = "NAME")]
    tls_server_name: Option<String>,

    /// The command; without one, an interactive prompt opens.
    #[command(subcommand)]
    command: Option<Command>,
}

/// How to reach the server.
pub struct Connect {
    pub addr: String,
    connect_timeout: Duration,
    timeout: Duration,
    /// The token each connection's HELLO carries; empty for none.
    token: bytes::Bytes,
    tls: Option<ClientTls>,
}

impl Connect {
    /// Opens a connection with the timeouts set.
    pub fn open(&self) -> Result<Client, ClientError> {
        let mut client = match &self.tls {
            Some(tls) => {
                Client::connect_tls_timeout(self.addr.as_str(), tls, self.connect_timeout)?
            }
            None => Client::connect_timeout(self.addr.as_str(), self.connect_timeout)?,
        };
        client.set_timeout(Some(self.timeout))?;
        if !self.token.is_empty() {
            client.set_token(self.token.clone());
            client.hello(0)?;
        }
        Ok(client)
    }
}

/// A client error, with a hint when the peer does not seem to speak switchboard.
pub fn explain(e: &ClientError, addr: &str) -> String {
    let hint = match e {
        ClientError::Decode(_) | ClientError::BadResponse(_) => Some(format!(
            "{addr} answered with something that is not a switchboard frame: is it a \
             switchboard server (and not, say, Redis)?"
        )),
        ClientError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Some(format!(
                "no answer from {addr} in time: is it a switchboard server? (--timeout \
                 to wait longer)"
            ))
        }
        _ => None,
    };
    match hint {
        Some(hint) => format!("{e} ({hint})"),
        None => e.to_string(),
    }
}

fn seconds(s: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--{name} must be a number of seconds above 0"))
}

/// The token from `--auth-token-file`, else from `SWITCHBOARD_AUTH_TOKEN`; empty for
/// none.
fn token(file: Option<&std::path::Path>) -> Result<bytes::Bytes, String> {
    if let Some(file) = file {
        return switchboard::auth::read_token(file)
            .map(bytes::Bytes::from)
            .map_err(|e| e.to_string());
    }
    Ok(std::env::var_os("SWITCHBOARD_AUTH_TOKEN")
        .map(|t| bytes::Bytes::from(std::os::unix::ffi::OsStringExt::into_vec(t)))
        .unwrap_or_default())
}

/// The TLS configuration the flags ask for, if any.
fn tls_config(flags: &Flags) -> Result<Option<ClientTls>, String> {
    let wanted = flags.tls
        || flags.tls_ca.is_some()
        || flags.tls_insecure
        || flags.tls_cert.is_some()
        || flags.tls_server_name.is_some();
    if !wanted {
        return Ok(None);
    }
    let options = TlsOptions {
        ca_file: flags.tls_ca.clone(),
        insecure: flags.tls_insecure,
        cert: flags.tls_cert.clone(),
        key: flags.tls_key.clone(),
        server_name: flags.tls_server_name.clone(),
    };
    // The certificate is checked against the host part of --addr by default.
    let host = match flags.addr.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => flags.addr.as_str(),
    };
    ClientTls::new(&options, host)
        .map(Some)
        .map_err(|e| format!("TLS: {e}"))
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let timeouts = seconds(flags.connect_timeout, "connect-timeout")
        .and_then(|c| Ok((c, seconds(flags.timeout, "timeout")?)));
    let (connect_timeout, timeout) = match timeouts {
        Ok(t) => t,
        Err(why) => {
            eprintln!("switchboard-cli: {why}");
            return ExitCode::from(2);
        }
    };
    let token = match token(flags.auth_token_file.as_deref()) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("switchboard-cli: {why}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_config(&flags) {
        Ok(tls) => tls,
        Err(why) => {
            eprintln!("switchboard-cli: {why}");
            return ExitCode::from(2);
        }
    };
    let connect = Connect {
        addr: flags.addr.clone(),
        connect_timeout,
        timeout,
        token,
        tls,
    };
    let client = connect.open();
    let Some(command) = flags.command else {
        let client = match client {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("switchboard-cli: cannot connect to {}: {e}", flags.addr);
                None
            }
        };
        return prompt::repl(client, &connect);
    };
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard-cli: cannot connect to {}: {e}", flags.addr);
            return ExitCode::from(2);
        }
    };
    match commands::run(&mut client, command) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NotFound) => ExitCode::from(1),
        Err(Failure::Usage(why)) => {
            eprintln!("switchboard-cli: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Client(e)) => {
            eprintln!("switchboard-cli: {}", explain(&e, &flags.addr));
            ExitCode::from(2)
        }
    }
}
