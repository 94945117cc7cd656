//! The receiving half of a generator thread: draining each readable socket, finding
//! whole responses in its read buffer, matching each with its request, judging it and
//! recording the result.

use super::{Engine, Flight, VERSION_SLOTS};
use crate::clock::now_ns;
use crate::dialect::{self, Verdict};
use crate::workload::Op;
use std::io::{self, Read};

/// Why a request failed; each kind has its own counter in [`crate::report::ErrorCounts`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Failure {
    WrongId,
    WrongStatus,
    WrongValue,
    Timeout,
    Connection,
}

impl Engine<'_> {
    /// Drains the socket (edge-triggered: until WouldBlock, or a short read) and
    /// handles every whole response as it arrives. `closing` (the peer closed or
    /// failed) reads on to the end of the stream, which a short read would not show.
    pub(super) fn read(&mut self, ci: usize, closing: bool) {
        loop {
            let c = &mut self.conns[ci];
            if !c.alive {
                return;
            }
            if c.rend == c.rbuf.len() {
                if c.rstart > 0 {
                    // Move the unparsed tail to the front.
                    c.rbuf.copy_within(c.rstart..c.rend, 0);
                    c.rend -= c.rstart;
                    c.rstart = 0;
                } else if c.rbuf.len() < self.rbuf_max {
                    // One response is bigger than the buffer (a large value written by
                    // an earlier run): grow, up to twice the largest legal response.
                    let len = (c.rbuf.len() * 2).min(self.rbuf_max);
                    c.rbuf.resize(len, 0);
                } else {
                    self.kill(ci, "response larger than the read buffer");
                    return;
                }
            }
            let (rend, len) = (c.rend, c.rbuf.len());
            let buf = &mut c.rbuf[rend..len];
            let got = match c.tls.as_deref_mut() {
                Some(tls) => crate::tls::read(tls, &mut c.stream, buf),
                None => c.stream.read(buf),
            };
            match got {
                Ok(0) => {
                    let why = "server closed the connection";
                    self.kill(ci, why);
                    return;
                }
                Ok(n) => {
                    let drained = rend + n < len && !closing;
                    c.rend += n;
                    let now = now_ns();
                    self.parse(ci, now);
                    // A short read emptied the socket: every later segment raises a
                    // new edge, so the read that would return WouldBlock is skipped
                    // (one syscall less per response at low pipeline depths).
                    if drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.kill(ci, &format!("read failed: {e}"));
                    return;
                }
            }
        }
    }

    pub(super) fn parse(&mut self, ci: usize, now: u64) {
        let p = self.plan;
        let max_response = self.max_response;
        loop {
            let c = &mut self.conns[ci];
            let buf = &c.rbuf[c.rstart..c.rend];
            let found = match dialect::find(p.proto, buf, max_response) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(why) => {
                    self.kill(ci, why);
                    return;
                }
            };
            if c.hello_pending {
                let refused = crate::auth::refusal(&buf[..found.len]);
                c.hello_pending = false;
                c.rstart += found.len;
                if c.rstart == c.rend {
                    c.rstart = 0;
                    c.rend = 0;
                }
                if let Some(why) = refused {
                    self.kill(ci, &why);
                    return;
                }
                continue;
            }
            // Match the response with its request: by id when the protocol has ids
            // (answers may be reordered), else the oldest request in flight.
            let pos = match found.id {
                Some(id) => c.inflight.iter().position(|f| f.id == id),
                None => Some(0),
            };
            let Some(flight) = (match pos {
                Some(0) => c.inflight.pop_front(),
                Some(i) => c.inflight.remove(i),
                None => None,
            }) else {
                // No request has this id: count it against the oldest request, whose
                // own answer this most likely was.
                let Some(oldest) = c.inflight.pop_front() else {
                    self.kill(ci, "response with no request in flight");
                    return;
                };
                self.inflight -= 1;
                c.rstart += found.len;
                let detail = format!(
                    "response id {} matches no request in flight (oldest is {})",
                    found.id.unwrap_or(0),
                    oldest.id
                );
                self.fail(oldest.measured, Failure::WrongId, Some(detail));
                continue;
            };
            self.inflight -= 1;
            let start = c.rstart;
            c.rstart += found.len;
            let verdict = dialect::judge(p.proto, &flight.req, &c.rbuf[start..start + found.len]);
            if c.rstart == c.rend {
                c.rstart = 0;
                c.rend = 0;
            }
            self.complete(ci, &flight, verdict, now, start, found.len);
        }
    }

    pub(super) fn complete(
        &mut self,
        ci: usize,
        f: &Flight,
        v: Verdict,
        now: u64,
        start: usize,
        len: usize,
    ) {
        self.res.answered_all += 1;
        let slot = f.req.key as usize % VERSION_SLOTS;
        // Remember the version each answer reveals, so a later CAS can expect it.
        match (f.req.op, v) {
            (Op::Del, Verdict::Ok(_)) | (_, Verdict::Miss) => self.versions[slot] = (f.req.key, 0),
            (_, Verdict::Ok(Some(version))) | (_, Verdict::Conflict(version)) => {
                self.versions[slot] = (f.req.key, version)
            }
            _ => {}
        }
        let failure = match v {
            Verdict::WrongStatus => Some(Failure::WrongStatus),
            Verdict::WrongValue => Some(Failure::WrongValue),
            _ => None,
        };
        if let Some(failure) = failure {
            let detail = if self.res.first_error.is_none() {
                let c = &self.conns[ci];
                let shown = &c.rbuf[start..start + len.min(80)];
                Some(format!(
                    "{:?} of key {} (request id {}) got {}: {:?}",
                    f.req.op,
                    f.req.key,
                    f.id,
                    if v == Verdict::WrongValue {
                        "a value that is not the one derived from its key"
                    } else {
                        "an unexpected status"
                    },
                    String::from_utf8_lossy(shown)
                ))
            } else {
                None
            };
            self.fail(f.measured, failure, detail);
            return;
        }
        if !f.measured {
            return;
        }
        self.res.ops += 1;
        self.res.per_op[Op::ALL.iter().position(|&o| o == f.req.op).unwrap_or(0)] += 1;
        match v {
            Verdict::Miss => self.res.misses += 1,
            Verdict::Conflict(_) => self.res.cas_conflicts += 1,
            _ => {}
        }
        let corrected = (now - f.intended).max(1);
        let _ = self.res.corrected.record(corrected);
        let _ = self.publish_corrected.record(corrected);
        let _ = self.res.service.record((now - f.sent).max(1));
        let window = self.res.window.get_or_insert((f.intended - self.start, 0));
        window.0 = window.0.min(f.intended - self.start);
        window.1 = window.1.max(now - self.start);
    }

    pub(super) fn fail(&mut self, measured: bool, failure: Failure, detail: Option<String>) {
        if self.res.first_error.is_none() {
            self.res.first_error = detail.or_else(|| Some(format!("{failure:?}")));
        }
        if !measured {
            self.res.warmup_errors += 1;
            return;
        }
        let e = &mut self.res.errors;
        match failure {
            Failure::WrongId => e.wrong_id += 1,
            Failure::WrongStatus => e.wrong_status += 1,
            Failure::WrongValue => e.wrong_value += 1,
            Failure::Timeout => e.timeout += 1,
            Failure::Connection => e.connection += 1,
        }
    }
}
