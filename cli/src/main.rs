//! `switchboard-cli`: talk to a switchboard server from a shell.
//!
//! With a command it runs that command and exits; without one it opens an interactive
//! prompt with history, where the same commands are typed without the program name.

use clap::{Parser, Subcommand};
use rustyline::error::ReadlineError;
use std::io::Write;
use std::process::ExitCode;
use switchboard::client::{Client, ClientError, Subscriber, Watch, WatchEvent};
use switchboard::protocol::msg::subscribe::Resume;
use switchboard::protocol::{EventKind, Push};

/// Command-line client for a switchboard server.
///
/// Exit status: 0 on success, 1 when the key was not found, 2 on a version conflict,
/// a refused connection or any other error.
#[derive(Parser, Debug)]
#[command(name = "switchboard-cli", version)]
struct Flags {
    /// Server address.
    #[arg(long, default_value = switchboard::config::DEFAULT_LISTEN)]
    addr: String,

    /// The command; without one, an interactive prompt opens.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The commands, typed at the prompt without the program name.
#[derive(Parser, Debug)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    override_usage = "<command> [arguments]   (help <command> for details; quit to leave)",
    help_template = "{usage-heading} {usage}\n\n{subcommands}"
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the server answers (prints PONG).
    Ping,
    /// Print a record's value and version.
    Get {
        /// The key.
        key: String,
    },
    /// Create or replace a record; prints its new version.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a record.
    Del {
        /// The key.
        key: String,
        /// Only delete at this version.
        #[arg(long, default_value_t = 0)]
        version: u64,
    },
    /// Write only if the record is at VERSION (0 = only if absent); prints the new version.
    Cas {
        /// The key.
        key: String,
        /// The version the record must have now.
        version: u64,
        /// The new value.
        value: String,
    },
    /// List records whose keys start with PREFIX, in key order.
    Scan {
        /// The prefix ("" = every key).
        #[arg(default_value = "")]
        prefix: String,
        /// Records per page; 0 = the server's default.
        #[arg(long, default_value_t = 0)]
        limit: u16,
        /// Print only the first page and its cursor.
        #[arg(long)]
        page: bool,
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
        prefix: String,
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
        prefix: String,
        /// Stop after this many records and changes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Publish a message on SUBJECT; prints how many connections it reached.
    Pub {
        /// The subject.
        subject: String,
        /// The payload.
        payload: String,
    },
}

/// How a command ended, for the exit status.
enum Outcome {
    Done,
    NotFound,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let mut client = match Client::connect(&flags.addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard-cli: cannot connect to {}: {e}", flags.addr);
            return ExitCode::from(2);
        }
    };
    match flags.command {
        Some(command) => match run(&mut client, command) {
            Ok(Outcome::Done) => ExitCode::SUCCESS,
            Ok(Outcome::NotFound) => ExitCode::from(1),
            Err(e) => {
                eprintln!("switchboard-cli: {e}");
                ExitCode::from(2)
            }
        },
        None => repl(&mut client, &flags.addr),
    }
}

fn run(client: &mut Client, command: Command) -> Result<Outcome, ClientError> {
    match command {
        Command::Ping => {
            client.ping()?;
            println!("PONG");
        }
        Command::Get { key } => match client.get(key)? {
            Some(record) => {
                println!("{}", show(&record.value));
                println!("(version {})", record.version);
            }
            None => return Ok(not_found()),
        },
        Command::Put { key, value } => {
            let version = client.put(key, value)?;
            println!("OK (version {version})");
        }
        Command::Del { key, version } => match client.delete(key, version)? {
            Some(seq) => println!("deleted (sequence {seq})"),
            None => return Ok(not_found()),
        },
        Command::Cas {
            key,
            version,
            value,
        } => {
            let version = client.cas(key, version, value)?;
            println!("OK (version {version})");
        }
        Command::Scan {
            prefix,
            limit,
            page,
        } => {
            let (entries, seq, cursor) = if page {
                let p = client.scan(prefix, "", limit)?;
                (p.entries, p.seq, Some(p.next_cursor))
            } else {
                let (entries, seq) = client.scan_all(prefix)?;
                (entries, seq, None)
            };
            for e in &entries {
                println!("{}\t{}\t{}", show(&e.key), e.version, show(&e.value));
            }
            println!("({} records, sequence {seq})", entries.len());
            if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
                println!("(more after {})", show(&cursor));
            }
        }
        Command::Stats => {
            for (name, value) in client.stats()? {
                println!("{name} {value}");
            }
        }
        Command::Pub { subject, payload } => {
            let receivers = client.publish(subject, payload)?;
            println!("delivered to {receivers} connection(s)");
        }
        Command::Sub {
            prefix,
            from,
            history,
            count,
        } => {
            let resume = from.map(|from| Resume { from, history });
            let mut sub = Subscriber::connect(client.peer_addr()?, prefix, resume, 0)?;
            let mut printed = 0;
            while count.is_none_or(|n| printed < n) {
                let Some(push) = sub.next(None)? else {
                    continue;
                };
                if print_push(&push) {
                    printed += 1;
                }
            }
        }
        Command::Watch { prefix, count } => {
            let mut watch = Watch::start(client.peer_addr()?, prefix)?;
            let mut printed = 0;
            while count.is_none_or(|n| printed < n) {
                let Some(event) = watch.next(None)? else {
                    continue;
                };
                let counted = match event {
                    WatchEvent::Put {
                        key,
                        version,
                        value,
                    } => {
                        line(format_args!(
                            "PUT\t{}\t{version}\t{}",
                            show(&key),
                            text_or_hex(&value)
                        ));
                        true
                    }
                    WatchEvent::Delete { key, seq } => {
                        line(format_args!("DELETE\t{}\t{seq}", show(&key)));
                        true
                    }
                    WatchEvent::Synced { seq } => {
                        line(format_args!(
                            "(listed; changes after sequence {seq} follow)"
                        ));
                        false
                    }
                    WatchEvent::Reset => {
                        line(format_args!(
                            "RESET: changes were missed; listing the records again"
                        ));
                        true
                    }
                };
                printed += u64::from(counted);
            }
        }
    }
    Ok(Outcome::Done)
}

/// Prints one line and flushes it, so a pipe sees each as it happens. A closed pipe
/// (`| head`) ends the program quietly, as other command-line tools do.
fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{args}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Prints a push; true when it counts towards `--count` (PROGRESS does not).
fn print_push(push: &Push) -> bool {
    match push {
        Push::Event {
            seq,
            kind,
            key,
            value,
            ..
        } => {
            let kind = match kind {
                EventKind::Put => "put",
                EventKind::Delete => "delete",
            };
            line(format_args!(
                "EVENT\t{seq}\t{}\t{kind}\t{seq}\t{}",
                show(key),
                text_or_hex(value)
            ));
        }
        Push::Message {
            subject, payload, ..
        } => line(format_args!(
            "MESSAGE\t{}\t{}",
            show(subject),
            text_or_hex(payload)
        )),
        Push::Gap {
            after,
            oldest,
            current,
            ..
        } => line(format_args!(
            "GAP: changes after sequence {after} and before {oldest} were missed (the \
             server no longer holds them); continuing from {oldest}, server at {current}"
        )),
        Push::Lost { count, .. } => line(format_args!(
            "LOST: {count} message(s) were dropped because this client read too slowly"
        )),
        Push::Progress { seq, .. } => {
            line(format_args!("(up to date at sequence {seq})"));
            return false;
        }
        Push::Ping => return false,
    }
    true
}

/// UTF-8 text as it is (escaped if it holds control characters), anything else as hex.
fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(_) => show(bytes),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

fn not_found() -> Outcome {
    println!("not found");
    Outcome::NotFound
}

/// Prints text as is; anything else (or text with control characters) is quoted with
/// escapes, as redis-cli does, so binary values cannot garble the terminal.
fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '"') => s.to_string(),
        _ => format!("\"{}\"", bytes.escape_ascii()),
    }
}

fn repl(client: &mut Client, addr: &str) -> ExitCode {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("switchboard-cli: cannot open the prompt: {e}");
            return ExitCode::from(2);
        }
    };
    let history = std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".switchboard_cli_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("connected to {addr}; type help for commands, quit to leave");
    let prompt = format!("{addr}> ");
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                if matches!(line, "quit" | "exit") {
                    break;
                }
                let Some(words) = shlex::split(line) else {
                    eprintln!("(error) unbalanced quotes");
                    continue;
                };
                match <Line as Parser>::try_parse_from(&words) {
                    Ok(parsed) => {
                        if let Err(e) = run(client, parsed.command) {
                            eprintln!("(error) {e}");
                            if matches!(e, ClientError::Io(_) | ClientError::Closed) {
                                break;
                            }
                        }
                    }
                    // clap renders help and usage errors itself.
                    Err(e) => {
                        let _ = e.print();
                    }
                }
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("switchboard-cli: {e}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    ExitCode::SUCCESS
}
