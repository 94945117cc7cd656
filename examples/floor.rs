//! The I/O floor: the least a server on switchboard's event-loop pattern can do.
//!
//! One thread, one mio `Poll`, a `Slab` of connections, edge-triggered readiness,
//! reads drained to `WouldBlock`, TCP_NODELAY. Every frame is answered with a fixed
//! small OK response that echoes its request id and opcode; nothing is decoded past
//! the 4-byte length and the 8-byte header, and bodies are skipped unread. Whatever
//! switchboard spends per request beyond this server is the cost of its store,
//! workers and codec rather than of sockets and syscalls.
//!
//! The response body is an 8-byte version 0 (an empty body for PING), so that
//! switchboard-load's checks accept it: a GET answers with an empty value.
//!
//! ```text
//! cargo run --release --example floor -- --listen 127.0.0.1:0
//! ```

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use switchboard::protocol::{Opcode, HEADER_LEN, LENGTH_LEN, PREFIX_LEN};

const LISTENER: Token = Token(usize::MAX);
/// Output a connection may queue before its reads pause: keeps memory bounded when a
/// client pipelines without reading.
const MAX_PENDING_OUT: usize = 1 << 20;
/// A declared length past this is not a client of ours: drop the connection.
const MAX_FRAME: usize = 16 << 20;

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    /// Body bytes of the current frame still to skip.
    skip: usize,
    out: Vec<u8>,
    out_pos: usize,
}

fn main() -> io::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => {
                let v = args.next().unwrap_or_default();
                listen = v.parse().map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("bad address {v:?}"))
                })?;
            }
            "--help" | "-h" => {
                println!("usage: floor [--listen HOST:PORT]   (default 127.0.0.1:0)");
                return Ok(());
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {other:?}"),
                ))
            }
        }
    }
    let mut listener = TcpListener::bind(listen)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns)?;
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let open = serve(conn);
            if !open {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Conn>) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nodelay(true)?;
                let entry = conns.vacant_entry();
                poll.registry().register(
                    &mut stream,
                    Token(entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                entry.insert(Conn {
                    stream,
                    inbuf: Vec::with_capacity(64 * 1024),
                    skip: 0,
                    out: Vec::with_capacity(64 * 1024),
                    out_pos: 0,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A connection that died in the backlog is not the listener's failure.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads everything available, answers every whole frame, writes. False = close.
fn serve(c: &mut Conn) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let mut paused = false;
        loop {
            if c.out.len() - c.out_pos >= MAX_PENDING_OUT {
                // Backpressure: stop reading until the client takes its answers.
                paused = true;
                break;
            }
            match c.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    if !answer(c, &chunk[..n]) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !flush(c) {
            return false;
        }
        // Edge-triggered: unread input raises no new event, so when the pause is
        // over (everything written) go back to reading now. When the write blocked,
        // the next WRITABLE event calls us again.
        if !(paused && c.out.is_empty()) {
            return true;
        }
    }
}

/// Skips bodies, answers each header.
fn answer(c: &mut Conn, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        if c.skip > 0 {
            let n = c.skip.min(data.len());
            c.skip -= n;
            data = &data[n..];
            continue;
        }
        // Gather the 12-byte prefix, across reads when it is split.
        let need = PREFIX_LEN - c.inbuf.len();
        let n = need.min(data.len());
        c.inbuf.extend_from_slice(&data[..n]);
        data = &data[n..];
        if c.inbuf.len() < PREFIX_LEN {
            break;
        }
        let declared =
            u32::from_be_bytes([c.inbuf[0], c.inbuf[1], c.inbuf[2], c.inbuf[3]]) as usize;
        if !(HEADER_LEN..=MAX_FRAME).contains(&declared) {
            return false;
        }
        let header = &c.inbuf[LENGTH_LEN..PREFIX_LEN];
        let opcode = header[1];
        let body_len = if opcode == Opcode::PING.0 { 0 } else { 8 };
        c.out
            .extend_from_slice(&((HEADER_LEN + body_len) as u32).to_be_bytes());
        // version, opcode (echoed), flags 0, status OK, request id (echoed).
        c.out.extend_from_slice(&[1, opcode, 0, 0]);
        c.out.extend_from_slice(&header[4..8]);
        c.out.extend_from_slice(&[0u8; 8][..body_len]);
        c.skip = declared - HEADER_LEN;
        c.inbuf.clear();
    }
    true
}

fn flush(c: &mut Conn) -> bool {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => return false,
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.out_pos = 0;
    true
}
