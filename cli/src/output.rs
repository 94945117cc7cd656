//! What the CLI prints: one line at a time, flushed, and never a panic on a closed
//! pipe (`switchboard-cli scan | head` ends quietly, as other tools do). Bytes that
//! are not plain text are shown escaped, so a binary value cannot garble the terminal.

use std::io::Write;
use switchboard::protocol::{EventKind, Push};

/// Prints one line and flushes it, so a pipe sees each as it happens. A closed pipe
/// ends the program quietly.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{args}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// `println!` through [`line`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

/// Prints text as is; anything else (or text with control characters) is quoted with
/// escapes, as redis-cli does.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '"') => s.to_string(),
        _ => format!("\"{}\"", bytes.escape_ascii()),
    }
}

/// UTF-8 text as it is (escaped if it holds control characters), anything else as hex.
pub fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(_) => show(bytes),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// Prints a push; true when it counts towards `--count` (PROGRESS does not).
pub fn print_push(push: &Push) -> bool {
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
            out!(
                "EVENT\t{seq}\t{}\t{kind}\t{seq}\t{}",
                show(key),
                text_or_hex(value)
            );
        }
        Push::Message {
            subject, payload, ..
        } => out!("MESSAGE\t{}\t{}", show(subject), text_or_hex(payload)),
        Push::Gap {
            after,
            oldest,
            current,
            ..
        } => out!(
            "GAP: changes after sequence {after} and before {oldest} were missed (the \
             server no longer holds them); continuing from {oldest}, server at {current}"
        ),
        Push::Lost { count, .. } => {
            out!("LOST: {count} message(s) were dropped because this client read too slowly")
        }
        Push::Progress { seq, .. } => {
            out!("(up to date at sequence {seq})");
            return false;
        }
        Push::Ping => return false,
        Push::GoAway { count, .. } => {
            out!("GOAWAY: the server is shutting down; it handled this connection's first {count} request(s)")
        }
    }
    true
}
