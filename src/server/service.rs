//! One connection's turn: read, hand out its next run of jobs, write, and keep the
//! reactor's bookkeeping about it (interest, queueing, deadline, memory).

use super::execute::RegistryRoute;
use super::socket::{self, ReadOutcome, WriteOutcome};
use super::tls::WriteEnd;
use super::{Server, READ_BUDGET_BYTES, WRITE_BUDGET_BYTES};
use crate::conn::CloseReason;
use crate::exec::{self, cost, Budget, REACTOR_BUDGET_UNITS};
use crate::job::ConnId;
use crate::stats::Stats;
use crate::worker::Lane;
use mio::Interest;
use std::io::IoSlice;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What [`Server::take_run`] did with a connection's next run.
enum Took {
    /// Nothing to hand out (a limit, a budget, or no whole frame).
    Nothing,
    /// Executed here, all of it.
    Ran,
    /// Left for this iteration's inline batch or a worker.
    Handed,
}

/// I/O vectors handed to one `writev`: a pipeline's worth of long values.
const WRITE_SLICES: usize = 32;

impl Server {
    /// Services every queued connection once, then queues those with work left.
    pub(super) fn service_queue(&mut self, now: Instant) {
        let mut queue = std::mem::take(&mut self.queue);
        queue.append(&mut self.again);
        for id in queue.drain(..) {
            self.service(id, now);
        }
        self.queue = queue;
    }

    /// Reads, hands out the next run (executing it here with `--workers 0`, else
    /// adding it to this iteration's batches), and writes one connection.
    pub(super) fn service(&mut self, id: ConnId, now: Instant) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        slot.queued = false;
        let mut read_budget = READ_BUDGET_BYTES;
        // With --workers 0 requests run between reads, within a budget per turn.
        let mut exec_budget = Budget::new(REACTOR_BUDGET_UNITS);
        self.read_some(id, now, &mut read_budget);
        loop {
            match self.take_run(id, now, &mut exec_budget) {
                // Executed here, all of it: the connection may take another run.
                Took::Ran => self.read_some(id, now, &mut read_budget),
                // At an executor: buffer what else has arrived meanwhile.
                Took::Handed => {
                    self.read_some(id, now, &mut read_budget);
                    break;
                }
                Took::Nothing => break,
            }
        }
        self.flush(id, now);
    }

    /// Reads while the connection wants input, the socket has some and `budget` lasts.
    fn read_some(&mut self, id: ConnId, now: Instant, budget: &mut usize) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        let counters = &self.ctx.stats.counters;
        while slot.readable && slot.conn.wants_read() && *budget > 0 {
            let want = (*budget).min(self.read_buf.len());
            let buf = &mut self.read_buf[..want];
            let outcome = match slot.tls.as_deref_mut() {
                Some(tls) => {
                    let outcome = tls.read(&mut slot.stream, buf, slot.read_closed);
                    if let Some(resumed) = tls.take_completed() {
                        Stats::incr(&counters.tls_handshakes);
                        if resumed {
                            Stats::incr(&counters.tls_resumed);
                        }
                    }
                    outcome
                }
                None => socket::read(&mut slot.stream, buf),
            };
            match outcome {
                ReadOutcome::Data(n) => {
                    counters.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    slot.conn.handle_input(now, &self.read_buf[..n]);
                    *budget -= n;
                    // Over TLS the session applies the rule to its socket reads.
                    if n < want && !slot.read_closed && slot.tls.is_none() {
                        slot.readable = false;
                    }
                }
                ReadOutcome::WouldBlock => slot.readable = false,
                ReadOutcome::Eof => {
                    slot.readable = false;
                    slot.conn.handle_peer_closed();
                }
                ReadOutcome::Failed(reason) => {
                    slot.readable = false;
                    slot.conn.handle_reset(reason);
                }
            }
        }
    }

    /// Hands out `id`'s next run: with `--workers 0` runs it now, within `budget`;
    /// otherwise adds it to this iteration's inline runs if it is cheap, else to its
    /// worker's batch.
    fn take_run(&mut self, id: ConnId, now: Instant, budget: &mut Budget) -> Took {
        let Some(slot) = self.registry.get_mut(id) else {
            return Took::Nothing;
        };
        if !slot.conn.wants_decode() || budget.is_spent() {
            return Took::Nothing;
        }
        let credit = slot.conn.output_credit();
        let start = self.inline.jobs.len();
        // Jobs held from an earlier run come first and keep that run's stamp.
        let fresh = slot.conn.held() == 0;
        if slot.conn.poll_jobs(&mut self.inline.jobs) == 0 {
            return Took::Nothing;
        }
        if fresh {
            slot.run_since = self.latency.stamp(now);
        }
        self.inline.end_run(id, start, credit);
        // A run that changes this connection's subscriptions runs here and now, so
        // that its answers are queued before any push they cause.
        let local = self.pool.is_some() && self.inline.jobs[start..].iter().any(cost::is_local);
        if self.pool.is_none() || local {
            // Without workers the inline batch holds only this run: run it in place.
            let mut batch = if local {
                let mut batch = std::mem::take(&mut self.local);
                self.inline.move_last_run(&mut batch);
                batch
            } else {
                std::mem::take(&mut self.inline)
            };
            let mut route = RegistryRoute {
                registry: &mut self.registry,
                discard: &mut self.discard,
                now,
                latency: &mut self.latency,
                durable: self.ctx.durable.load(Ordering::Relaxed),
            };
            let mut changes = std::mem::take(&mut self.changes);
            exec::run_batch(
                &self.ctx,
                &mut batch,
                &mut route,
                budget,
                &mut self.tally,
                &mut changes,
            );
            self.latency.delivered_now();
            self.sequence(&mut changes, now);
            self.changes = changes;
            let ran = batch.is_empty();
            let cancelled = self.ctx.cancelled();
            let registry = &mut self.registry;
            batch.drain_runs(|run, jobs| {
                if let Some(slot) = registry.get_mut(run.conn) {
                    slot.conn.handle_unrun(jobs, cancelled);
                }
            });
            if local {
                self.local = batch;
            } else {
                self.inline = batch;
            }
            return if ran { Took::Ran } else { Took::Nothing };
        }
        let Some(pool) = &self.pool else {
            return Took::Nothing;
        };
        let cheap =
            self.inline_max_batch > 0 && self.inline.jobs[start..].iter().all(cost::is_cheap);
        if !cheap {
            let worker = pool.worker_for(id);
            self.inline
                .move_last_run(&mut self.batches[worker][Lane::Heavy as usize]);
        }
        Took::Handed
    }

    /// Writes what a connection has pending (up to the write budget), updates its
    /// interest, deadline and memory, and retires it once closed. Queues it for the
    /// next iteration if it can still read, decode or write.
    pub(super) fn flush(&mut self, id: ConnId, now: Instant) {
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if self.durable.is_some() && !slot.durable_wait && slot.conn.is_holding() {
            self.note_held(id);
        }
        let Some(slot) = self.registry.get_mut(id) else {
            return;
        };
        if slot.conn.goaway_due() && slot.conn.subscribed() {
            self.ctx.push.lock().final_progress(id, &mut slot.conn);
        }
        let counters = &self.ctx.stats.counters;
        if let Some(tls) = slot.tls.as_deref_mut() {
            // TLS: the same turn, with encryption between the connection and the socket.
            let mut moved = 0;
            // A socket known to be full waits for its WRITABLE edge.
            let mut end = WriteEnd::Blocked;
            if !slot.write_blocked {
                end = tls.write(
                    &mut slot.stream,
                    &mut slot.conn,
                    now,
                    WRITE_BUDGET_BYTES,
                    &mut moved,
                );
            }
            if slot.conn.poll_shutdown(now) {
                // Queued after the last answer; written now if the socket has room.
                tls.close_notify();
                if end == WriteEnd::Done {
                    end = tls.write(
                        &mut slot.stream,
                        &mut slot.conn,
                        now,
                        WRITE_BUDGET_BYTES,
                        &mut moved,
                    );
                }
            }
            counters
                .bytes_written
                .fetch_add(moved as u64, Ordering::Relaxed);
            match end {
                WriteEnd::Blocked => slot.write_blocked = true,
                WriteEnd::Failed(reason) => slot.conn.handle_reset(reason),
                WriteEnd::Done | WriteEnd::Budget => {}
            }
        }
        let mut written = 0;
        while slot.tls.is_none()
            && slot.conn.wants_write()
            && written < WRITE_BUDGET_BYTES
            && !slot.write_blocked
        {
            let outcome = if slot.conn.transmit_is_contiguous() {
                socket::write(&mut slot.stream, slot.conn.poll_transmit())
            } else {
                let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
                let n = slot.conn.poll_transmit_vectored(&mut slices);
                socket::write_vectored(&mut slot.stream, &slices[..n])
            };
            match outcome {
                WriteOutcome::Wrote(n) => {
                    counters
                        .bytes_written
                        .fetch_add(n as u64, Ordering::Relaxed);
                    slot.conn.advance_transmit(now, n);
                    written += n;
                }
                WriteOutcome::WouldBlock => slot.write_blocked = true,
                WriteOutcome::Failed(reason) => slot.conn.handle_reset(reason),
            }
        }
        if slot.tls.is_none() && slot.conn.poll_shutdown(now) {
            let _ = slot.stream.shutdown(Shutdown::Write);
        }
        if slot.conn.take_push_resumable() {
            self.push_ready.push(id);
        }
        let memory = slot.conn.memory();
        self.client_memory = self.client_memory - slot.memory + memory;
        slot.memory = memory;
        if slot.conn.is_closed() {
            let reason = slot.conn.close_reason();
            let keep = slot
                .tls
                .as_deref_mut()
                .is_some_and(|tls| tls.keeps_open(reason, now));
            match slot.tls.as_deref_mut() {
                // The client closed first and its last answers are still encrypted
                // in rustls: keep the socket until they are written (see `tls`).
                Some(_) if keep => {}
                Some(tls) => {
                    if !matches!(reason, Some(CloseReason::Reset | CloseReason::Io)) {
                        tls.last_gasp(&mut slot.stream);
                    }
                    self.close(id);
                    return;
                }
                None => {
                    self.close(id);
                    return;
                }
            }
        }
        let tls_pending = slot.tls.as_ref().is_some_and(|t| t.wants_write());
        let want_write = slot.conn.wants_write() || tls_pending;
        if !want_write {
            slot.write_blocked = false;
        }
        if want_write != slot.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = super::registry::Registry::token(id);
            if self
                .poll
                .registry()
                .reregister(&mut slot.stream, token, interest)
                .is_ok()
            {
                slot.write_interest = want_write;
                if want_write {
                    self.output_waiting += 1;
                } else {
                    self.output_waiting -= 1;
                }
            }
        }
        // Work a limit or a budget held back waits for this connection's next turn,
        // even if the socket reports nothing new.
        let more = (slot.readable && slot.conn.wants_read())
            || slot.conn.wants_decode()
            || (want_write && !slot.write_blocked);
        if more && !slot.queued {
            slot.queued = true;
            self.again.push(id);
        }
        let deadline = slot.deadline();
        self.arm_timer(id, deadline, now);
    }

    pub(super) fn close(&mut self, id: ConnId) {
        let Some(slot) = self.registry.remove(id) else {
            return;
        };
        self.forget_subscriptions(id, slot.conn.subscribed());
        if self.max_per_ip > 0 {
            if let Some(ip) = slot.peer.map(|p| p.ip()) {
                if let Some(n) = self.per_ip.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_ip.remove(&ip);
                    }
                }
            }
        }
        if let Some(reason) = slot.conn.close_reason() {
            self.close_log.closed(slot.peer, reason, Instant::now());
        }
        self.client_memory -= slot.memory;
        if slot.write_interest {
            self.output_waiting -= 1;
        }
        let c = &self.ctx.stats.counters;
        c.connections_current.fetch_sub(1, Ordering::Relaxed);
        let counter = match slot.conn.close_reason() {
            Some(CloseReason::PeerClosed | CloseReason::Reset) => &c.closed_by_peer,
            Some(CloseReason::ProtocolViolation(_)) => &c.closed_protocol_error,
            Some(CloseReason::IdleTimeout) => &c.closed_idle,
            Some(CloseReason::FrameTimeout) => &c.closed_frame_timeout,
            Some(CloseReason::WriteTimeout) => &c.closed_write_timeout,
            Some(CloseReason::Shutdown) => &c.closed_shutdown,
            Some(CloseReason::ClientMemoryLimit) => &c.closed_client_memory,
            Some(CloseReason::Unauthenticated) => &c.closed_auth_failed,
            Some(CloseReason::AuthTimeout) => &c.closed_auth_timeout,
            Some(CloseReason::TlsHandshake | CloseReason::TlsHandshakeTimeout) => {
                &c.closed_tls_handshake
            }
            Some(CloseReason::Tls) => &c.closed_tls_error,
            Some(CloseReason::Io) | None => &c.closed_io_error,
        };
        Stats::incr(counter);
        // Dropping the stream closes the socket, which also removes it from the poller.
    }
}
