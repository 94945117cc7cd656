//! The sending half of a generator thread: choosing each request, finding it a
//! connection with a free pipeline slot, encoding it into that connection's write
//! buffer, and writing every buffer with new requests in one syscall each.

use super::{Engine, Flight, VERSION_SLOTS};
use crate::dialect::{self, Req};
use std::io::{self, Write};

impl Engine<'_> {
    /// Sends what is due. Returns false once this thread has nothing more to send.
    pub(super) fn dispatch(&mut self, now: u64) -> bool {
        let p = self.plan;
        if self.server_lost {
            return false;
        }
        loop {
            // Which send is next, and when was it meant to go?
            let (intended, measured) = match &self.schedule {
                Some(s) => {
                    let Some(k) = self.next_k else { return false };
                    let due = self.start + s.due_ns(k);
                    if due > now {
                        // Caught up: later lateness is the generator's own.
                        self.draining = false;
                        return true;
                    }
                    (due, s.is_measured(k))
                }
                None => {
                    if self.closed_left == 0 {
                        return false;
                    }
                    let measured = now >= self.start + p.warmup_ns;
                    (now, measured)
                }
            };
            let req = match self.head {
                Some(r) => r,
                None => {
                    let r = self.choose();
                    self.head = Some(r);
                    r
                }
            };
            let server = if self.by_server.len() > 1 {
                p.ring.server_for(req.key)
            } else {
                0
            };
            let Some(ci) = self.free_conn(server) else {
                // Every slot of this server is busy: the request keeps its intended
                // time and waits at the head of the queue.
                self.last_blocked = now;
                self.draining = true;
                if !p.reconnect && !self.by_server[server].iter().any(|&c| self.conns[c].alive) {
                    // Every connection to its server is gone: stop sending. What was
                    // not sent shows as sent < offered, what was lost as errors.
                    self.server_lost = true;
                    self.res.gave_up = Some(format!(
                        "every connection to server {server} was lost; sending stopped"
                    ));
                    return false;
                }
                return true;
            };
            self.head = None;
            let c = &mut self.conns[ci];
            let id = c.next_id;
            c.next_id = c.next_id.wrapping_add(1);
            if c.wbuf.is_empty() {
                self.dirty.push(ci);
            }
            dialect::encode(p.proto, &req, id, &mut c.wbuf, &mut self.scratch);
            self.inflight += 1;
            c.inflight.push_back(Flight {
                id,
                req,
                intended,
                sent: now,
                measured,
            });
            if measured {
                self.res.sent += 1;
                let lag = now - intended;
                let _ = self.res.lag.record(lag.max(1));
                if (self.draining || self.last_blocked >= intended) && self.schedule.is_some() {
                    self.res.slot_waits += 1;
                } else {
                    let _ = self.res.generator_lag.record(lag.max(1));
                }
            }
            self.advance(measured);
        }
    }

    pub(super) fn advance(&mut self, measured: bool) {
        match &self.schedule {
            Some(s) => self.next_k = self.next_k.and_then(|k| s.next(k)),
            None => {
                if measured && self.closed_left != u64::MAX {
                    self.closed_left -= 1;
                }
            }
        }
    }

    pub(super) fn choose(&mut self) -> Req {
        let p = self.plan;
        let op = p.mix.pick(&mut self.rng);
        let key = self.picker.pick(&mut self.rng);
        let slot = &self.versions[key as usize % VERSION_SLOTS];
        let expected = if slot.0 == key { slot.1 } else { 0 };
        Req {
            op,
            key,
            value_len: p.value_size.for_key(key),
            expected,
        }
    }

    /// A live connection to `server` with a free pipeline slot, round-robin.
    pub(super) fn free_conn(&mut self, server: usize) -> Option<usize> {
        let group = &self.by_server[server];
        let n = group.len();
        for step in 0..n {
            let ci = group[(self.rr[server] + step) % n];
            let c = &self.conns[ci];
            if c.alive && c.inflight.len() < self.plan.pipeline {
                self.rr[server] = (self.rr[server] + step + 1) % n;
                return Some(ci);
            }
        }
        None
    }

    /// One write per connection with new requests: the whole batch in one syscall.
    pub(super) fn flush(&mut self) {
        while let Some(ci) = self.dirty.pop() {
            if self.conns[ci].alive {
                self.write(ci);
            }
        }
    }

    pub(super) fn write(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if c.wpos >= c.wbuf.len() {
            // Encrypted bytes a full socket left behind go on this edge.
            if let Some(tls) = c.tls.as_deref_mut() {
                if let Err(e) = crate::tls::flush(tls, &mut c.stream) {
                    self.kill(ci, &format!("write failed: {e}"));
                }
            }
            return;
        }
        let data = &c.wbuf[c.wpos..];
        let wrote = match c.tls.as_deref_mut() {
            Some(tls) => crate::tls::write(tls, &mut c.stream, data),
            None => c.stream.write(data),
        };
        match wrote {
            Ok(n) => {
                c.wpos += n;
                if c.wpos == c.wbuf.len() {
                    c.wbuf.clear();
                    c.wpos = 0;
                }
                // A short write leaves the rest for the next WRITABLE edge.
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.kill(ci, &format!("write failed: {e}")),
        }
    }
}
