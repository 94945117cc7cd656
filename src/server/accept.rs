//! Accepting: each listener drained to `WouldBlock`, each new socket checked against
//! protected mode and the per-address limit, given a TLS session when it came in on a TLS listener, and
//! entered in the registry with its first deadline armed.
//!
//! With TLS, `--listen` speaks TLS only and the plaintext listener (if any) plaintext
//! only; a connection never changes between them.

use super::{listener, Server};
use crate::protocol::Status;
use crate::stats::Stats;
use mio::Interest;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Server {
    /// Accepts what every listener has queued.
    pub(super) fn accept(&mut self, now: Instant) {
        self.accept_from(false, now);
        self.accept_from(true, now);
    }

    /// Accepts what the main listener (or, if `plaintext`, the plaintext one beside a
    /// TLS main listener) has queued.
    fn accept_from(&mut self, plaintext: bool, now: Instant) {
        let ctx = self.ctx.clone();
        let counters = &ctx.stats.counters;
        loop {
            let full = self.registry.len() >= self.max_connections;
            let (refused, poll) = (&mut self.refused, self.poll.registry());
            let mut linger = |stream| refused.add(stream, poll, now);
            let listener = match plaintext {
                false => self.listener.as_mut(),
                true => self.plaintext_listener.as_mut(),
            };
            let Some(listener) = listener else {
                return;
            };
            let tls_port = listener.is_tls();
            let Some(stream) = listener.accept(now, counters, full, &mut linger) else {
                break;
            };
            // Protected mode: no token and no client certificates, so only clients on
            // this machine are served.
            if self.protected_mode
                && !stream
                    .peer_addr()
                    .is_ok_and(|a| crate::auth::is_loopback(a.ip()))
            {
                Stats::incr(&counters.connections_rejected_protected);
                let refused = listener::refuse_with(
                    stream,
                    Status::DENIED,
                    crate::auth::PROTECTED_MODE_MESSAGE,
                    tls_port,
                );
                self.refused.add(refused, self.poll.registry(), now);
                continue;
            }
            if self.max_per_ip > 0 {
                let ip = stream.peer_addr().map(|a| a.ip()).ok();
                let held = ip.and_then(|ip| self.per_ip.get(&ip)).copied().unwrap_or(0);
                if held as usize >= self.max_per_ip {
                    Stats::incr(&counters.connections_rejected_per_ip);
                    let refused = listener::refuse_with(
                        stream,
                        Status::SERVER_FULL,
                        b"this address holds as many connections as the server allows one \
                          address (--max-connections-per-ip)",
                        tls_port,
                    );
                    self.refused.add(refused, self.poll.registry(), now);
                    continue;
                }
                if let Some(ip) = ip {
                    *self.per_ip.entry(ip).or_insert(0) += 1;
                }
            }
            let session = match (&self.tls, tls_port) {
                (Some(acceptor), true) => match acceptor.session(now) {
                    Ok(session) => Some(session),
                    Err(e) => {
                        tracing::error!("cannot start a TLS session: {e}");
                        continue;
                    }
                },
                _ => None,
            };
            let (id, token) = self
                .registry
                .insert(stream, session, self.conn_limits.clone(), now);
            let slot = self.registry.get_mut(id).expect("just inserted");
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut slot.stream, token, Interest::READABLE)
            {
                tracing::error!("cannot register a connection: {e}");
                self.registry.remove(id);
                continue;
            }
            counters.connections_total.fetch_add(1, Ordering::Relaxed);
            counters.connections_current.fetch_add(1, Ordering::Relaxed);
            let deadline = slot.deadline();
            self.arm_timer(id, deadline, now);
        }
    }
}
