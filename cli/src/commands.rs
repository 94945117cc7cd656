//! The commands, the same on the command line and at the prompt, and what each
//! prints. Keys, values, prefixes and payloads are bytes: at the prompt they may hold
//! escapes (`"\t"`, `"\x00"`), and `-x` reads the value from standard input, so binary
//! values and values past the command line's 128 KiB argument limit can be written.

use crate::out;
use crate::output::{print_push, show, text_or_hex};
use bytes::Bytes;
use clap::Subcommand;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use switchboard::client::{Client, ClientError, Subscriber, Watch, WatchEvent};
use switchboard::protocol::msg::subscribe::Resume;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the server answers (prints PONG).
    Ping,
    /// Print a record's value and version.
    Get {
        /// The key.
        key: OsString,
    },
    /// Create or replace a record; prints its new version.
    Put {
        /// The key.
        key: OsString,
        /// The value (or -x to read it from standard input).
        value: Option<OsString>,
        /// Read the value from standard input, as it is (binary values, large ones).
        #[arg(short = 'x', long = "stdin")]
        stdin: bool,
    },
    /// Delete a record.
    Del {
        /// The key.
        key: OsString,
        /// Only delete at this version.
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Write only if the record is at VERSION (0 = only if absent); prints the new version.
    Cas {
        /// The key.
        key: OsString,
        /// The version the record must have now.
        version: u64,
        /// The new value (or -x to read it from standard input).
        value: Option<OsString>,
        /// Read the value from standard input.
        #[arg(short = 'x', long = "stdin")]
        stdin: bool,
    },
    /// List records whose keys start with PREFIX, in key order.
    Scan {
        /// The prefix ("" = every key).
        #[arg(default_value = "")]
        prefix: OsString,
        /// Records per page; 0 = the server's default.
        #[arg(long, default_value_t = 0)]
        limit: u16,
        /// Print only one page, and the key to continue after.
        #[arg(long)]
        page: bool,
        /// Start after this key (a "more after" key a page printed).
        #[arg(long)]
        after: Option<OsString>,
    },
    /// Print the server's counters.
    Stats,
    /// Print every change under PREFIX, and every message published on a subject
    /// under it, as it arrives: `EVENT seq key put|delete version value` or
    /// `MESSAGE subject payload` (text when UTF-8, else hex). Missed changes and
    /// dropped messages are stated (GAP, LOST). Reconnects and resumes by itself.
    Sub {
        /// The prefix ("" = everything).
        #[arg(default_value = "")]
        prefix: OsString,
        /// First replay the kept changes after this sequence.
        #[arg(long)]
        from: Option<u64>,
        /// The history id the --from sequence belongs to (0 = the server's current).
        #[arg(long, default_value_t = 0)]
        history: u64,
        /// Stop after this many events, messages, GAP and LOST lines.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print the records under PREFIX, then every change to them as it happens.
    Watch {
        /// The prefix ("" = every key).
        #[arg(default_value = "")]
        prefix: OsString,
        /// Stop after this many records and changes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Publish a message on SUBJECT; prints how many connections it reached.
    Pub {
        /// The subject.
        subject: OsString,
        /// The payload (or -x to read it from standard input).
        payload: Option<OsString>,
        /// Read the payload from standard input.
        #[arg(short = 'x', long = "stdin")]
        stdin: bool,
    },
}

/// How a command ended, for the exit status.
pub enum Outcome {
    Done,
    NotFound,
}

/// Why a command could not run.
#[derive(Debug)]
pub enum Failure {
    /// The server or the connection.
    Client(ClientError),
    /// The command line itself.
    Usage(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::Client(e)
    }
}

fn bytes(s: OsString) -> Bytes {
    Bytes::from(s.into_vec())
}

/// The value given, or read from standard input with `-x`.
fn value(given: Option<OsString>, stdin: bool) -> Result<Bytes, Failure> {
    match (given, stdin) {
        (Some(v), false) => Ok(bytes(v)),
        (None, true) => {
            let mut v = Vec::new();
            std::io::stdin()
                .read_to_end(&mut v)
                .map_err(|e| Failure::Usage(format!("reading the value from stdin: {e}")))?;
            Ok(Bytes::from(v))
        }
        (Some(_), true) => Err(Failure::Usage(
            "give the value, or -x to read it from stdin, not both".into(),
        )),
        (None, false) => Err(Failure::Usage(
            "a value is needed (or -x to read it from stdin)".into(),
        )),
    }
}

pub fn run(client: &mut Client, command: Command) -> Result<Outcome, Failure> {
    match command {
        Command::Ping => {
            client.ping()?;
            out!("PONG");
        }
        Command::Get { key } => match client.get(bytes(key))? {
            Some(record) => {
                out!("{}", show(&record.value));
                out!("(version {})", record.version);
            }
            None => return Ok(not_found()),
        },
        Command::Put {
            key,
            value: v,
            stdin,
        } => {
            let version = client.put(bytes(key), value(v, stdin)?)?;
            out!("OK (version {version})");
        }
        Command::Del { key, version } => match client.delete(bytes(key), version)? {
            Some(seq) => out!("deleted (sequence {seq})"),
            None => return Ok(not_found()),
        },
        Command::Cas {
            key,
            version,
            value: v,
            stdin,
        } => {
            let version = client.cas(bytes(key), version, value(v, stdin)?)?;
            out!("OK (version {version})");
        }
        Command::Scan {
            prefix,
            limit,
            page,
            after,
        } => scan(client, bytes(prefix), limit, page, after.map(bytes))?,
        Command::Stats => {
            for (name, value) in client.stats()? {
                out!("{name} {value}");
            }
        }
        Command::Pub {
            subject,
            payload,
            stdin,
        } => {
            let receivers = client.publish(bytes(subject), value(payload, stdin)?)?;
            out!("delivered to {receivers} connection(s)");
        }
        Command::Sub {
            prefix,
            from,
            history,
            count,
        } => {
            let resume = from.map(|from| Resume { from, history });
            let mut sub = Subscriber::connect_to(client.endpoint()?, bytes(prefix), resume, 0)?;
            let mut printed = 0;
            while count.is_none_or(|n| printed < n) {
                if let Some(push) = sub.next(None)? {
                    printed += u64::from(print_push(&push));
                }
            }
        }
        Command::Watch { prefix, count } => {
            let mut watch = Watch::start_at(client.endpoint()?, bytes(prefix))?;
            let mut printed = 0;
            while count.is_none_or(|n| printed < n) {
                let Some(event) = watch.next(None)? else {
                    continue;
                };
                printed += u64::from(print_watch(event));
            }
        }
    }
    Ok(Outcome::Done)
}

/// Prints a watch's record or change; true when it counts towards `--count`.
fn print_watch(event: WatchEvent) -> bool {
    match event {
        WatchEvent::Put {
            key,
            version,
            value,
        } => out!("PUT\t{}\t{version}\t{}", show(&key), text_or_hex(&value)),
        WatchEvent::Delete { key, seq } => out!("DELETE\t{}\t{seq}", show(&key)),
        WatchEvent::Synced { seq } => {
            out!("(listed; changes after sequence {seq} follow)");
            return false;
        }
        WatchEvent::Reset => out!("RESET: changes were missed; listing the records again"),
    }
    true
}

fn scan(
    client: &mut Client,
    prefix: Bytes,
    limit: u16,
    page: bool,
    after: Option<Bytes>,
) -> Result<(), Failure> {
    let mut cursor = after.unwrap_or_default();
    let mut seq = None;
    let mut records = 0;
    loop {
        let p = client.scan(prefix.clone(), cursor, limit)?;
        seq.get_or_insert(p.seq);
        for e in &p.entries {
            out!("{}\t{}\t{}", show(&e.key), e.version, show(&e.value));
        }
        records += p.entries.len();
        cursor = p.next_cursor;
        if page || cursor.is_empty() {
            break;
        }
    }
    out!("({records} records, sequence {})", seq.unwrap_or_default());
    if !cursor.is_empty() {
        out!(
            "(more after {}: scan {} --page --after {})",
            show(&cursor),
            show(&prefix),
            show(&cursor)
        );
    }
    Ok(())
}

fn not_found() -> Outcome {
    out!("not found");
    Outcome::NotFound
}
