//! The interactive prompt: commands typed without the program name, words split as
//! redis-cli splits them, and a connection that survives a server restart.
//!
//! Words are separated by spaces. In double quotes, `\n`, `\r`, `\t`, `\\`, `\"` and
//! `\xNN` are escapes (so any byte can be written); in single quotes everything is
//! literal but `\'`. Command names are not case-sensitive. When the server goes away
//! the prompt says `not connected>` and reconnects before the next command.

use crate::commands::{run, Command, Failure};
use crate::Connect;
use clap::Parser;
use rustyline::error::ReadlineError;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;
use switchboard::client::{Client, ClientError};

/// A line at the prompt: one command.
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

/// Splits a prompt line into words; `None` for unbalanced quotes.
pub fn split(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == b.len() {
            return Some(words);
        }
        let mut word = Vec::new();
        let (mut double, mut single) = (false, false);
        loop {
            if double {
                match *b.get(i)? {
                    b'\\'
                        if b.get(i + 1) == Some(&b'x')
                            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                            && b.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
                    {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok()?;
                        word.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 4;
                        continue;
                    }
                    b'\\' => {
                        let c = *b.get(i + 1)?;
                        word.push(match c {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                    b'"' => {
                        i += 1;
                        // A closing quote must end the word.
                        if b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        break;
                    }
                    c => word.push(c),
                }
            } else if single {
                match *b.get(i)? {
                    b'\\' if b.get(i + 1) == Some(&b'\'') => {
                        word.push(b'\'');
                        i += 2;
                        continue;
                    }
                    b'\'' => {
                        i += 1;
                        if b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        break;
                    }
                    c => word.push(c),
                }
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') if word.is_empty() => double = true,
                    Some(b'\'') if word.is_empty() => single = true,
                    Some(&c) => word.push(c),
                }
            }
            i += 1;
        }
        words.push(word);
    }
}

/// Runs the prompt until `quit`, end of input or Ctrl-C.
pub fn repl(mut client: Option<Client>, connect: &Connect) -> ExitCode {
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
    let addr = &connect.addr;
    crate::out!("connected to {addr}; type help for commands, quit to leave");
    loop {
        let prompt = match client {
            Some(_) => format!("{addr}> "),
            None => "not connected> ".to_string(),
        };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("switchboard-cli: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        let Some(mut words) = split(line) else {
            eprintln!("(error) unbalanced quotes");
            continue;
        };
        // Command names are not case-sensitive.
        words[0].make_ascii_lowercase();
        if matches!(&words[0][..], b"quit" | b"exit") {
            break;
        }
        let words: Vec<OsString> = words.into_iter().map(OsString::from_vec).collect();
        let parsed = match <Line as Parser>::try_parse_from(&words) {
            Ok(parsed) => parsed,
            // clap renders help, usage errors and "a similar command exists" itself.
            Err(e) => {
                let _ = e.print();
                continue;
            }
        };
        if client.is_none() {
            match connect.open() {
                Ok(c) => client = Some(c),
                Err(e) => {
                    eprintln!("(error) cannot connect to {addr}: {e}");
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else {
            continue;
        };
        match run(c, parsed.command) {
            Ok(_) => {}
            Err(Failure::Usage(why)) => eprintln!("(error) {why}"),
            Err(Failure::Client(e)) => {
                eprintln!("(error) {}", crate::explain(&e, addr));
                if matches!(
                    e,
                    ClientError::Io(_) | ClientError::Closed | ClientError::GoingAway { .. }
                ) {
                    // Reconnect before the next command, as redis-cli does.
                    client = None;
                }
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(line: &str) -> Vec<Vec<u8>> {
        split(line).expect("balanced")
    }

    #[test]
    fn words_split_like_redis_cli() {
        assert_eq!(words("put k v"), [&b"put"[..], b"k", b"v"]);
        assert_eq!(
            words("  put   \"a b\"  'c d' "),
            [&b"put"[..], b"a b", b"c d"]
        );
        assert_eq!(
            words(r#"put k "tab\there\x00\xff\"""#)[2],
            b"tab\there\x00\xff\""
        );
        assert_eq!(words(r"put k 'no\tescape\'s'")[2], b"no\\tescape's");
        assert_eq!(words(r#"put k """#)[2], b"");
        assert!(split("put \"unbalanced").is_none());
        assert!(split("put \"a\"b").is_none());
    }
}
