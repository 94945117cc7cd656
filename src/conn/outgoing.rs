//! `Outgoing`: a connection's ordered queue of bytes to write.
//!
//! Encoded answers are appended to a tail buffer the connection owns; long values
//! arrive by reference (`Bytes` shared with the store) and are queued as they are,
//! after the tail bytes before them, which are frozen into a segment of their own. The
//! socket is written with one vectored write over the segments and the tail, so a
//! long value goes from the store to the kernel without being copied.
//!
//! Only values are shared: the tail belongs to this connection, so bytes waiting here
//! never pin another connection's buffer, and what the queue holds is what
//! [`len`](Outgoing::len) says (plus the tail's spare capacity, see
//! [`held`](Outgoing::held)).
//!
//! An answer can be *held*: [`hold_until`](Outgoing::hold_until) marks the end of what
//! is queued so far, and nothing from there on is written until
//! [`release`](Outgoing::release) says the sequence it waits for is reached (with
//! durability: on disk). Everything behind a held answer waits with it, so the client
//! still sees frames in order. With nothing held, which is always the case today, the
//! checks cost a branch.
//!
//! Everything appended is whole frames, and the queue tracks where the frame being
//! written ends, so that pending output can be dropped without cutting a frame the
//! client has started to receive ([`drop_after_frame`](Outgoing::drop_after_frame)).
//! Tracking costs nothing when the socket takes everything pending, the usual case;
//! a partial write walks the frame lengths it covers.

use crate::exec::sink::Sink;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Bytes waiting to be written, in order: `queue`, then `tail`.
#[derive(Debug)]
pub struct Outgoing {
    /// Segments before the tail: frozen tail bytes and shared values.
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
    /// Encoded bytes after everything in `queue`.
    tail: BytesMut,
    /// Bytes ever appended by reference (differences are what matter).
    shared_total: usize,
    /// Bytes left of the frame at the front that has been partly written; 0 when the
    /// front is the start of a frame.
    cut: usize,
    /// Bytes ever written (advanced past): positions in the stream are counted from
    /// the connection's first byte.
    taken: u64,
    /// Held points, in stream order: bytes from each `at` on wait for `until`.
    holds: VecDeque<Hold>,
    /// The durable sequence answers are judged against (see [`Sink::durable`]);
    /// `u64::MAX` when nothing is held.
    durable: u64,
}

impl Default for Outgoing {
    fn default() -> Outgoing {
        Outgoing {
            queue: VecDeque::new(),
            queued: 0,
            tail: BytesMut::new(),
            shared_total: 0,
            cut: 0,
            taken: 0,
            holds: VecDeque::new(),
            durable: u64::MAX,
        }
    }
}

/// A point in the output stream that waits for a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hold {
    /// Stream position of the first held byte.
    at: u64,
    /// The sequence that releases it.
    until: u64,
}

impl Outgoing {
    /// Bytes that may be written now: everything pending, or what comes before the
    /// first held point.
    pub fn ready(&self) -> usize {
        match self.holds.front() {
            None => self.len(),
            Some(hold) => (hold.at - self.taken) as usize,
        }
    }

    /// Holds everything appended from now on until [`release`](Self::release) reaches
    /// `seq`: nothing after this point is written before then.
    pub fn hold_until(&mut self, seq: u64) {
        let at = self.taken + self.len() as u64;
        match self.holds.back_mut() {
            // A hold at the same point waits for the later of the two.
            Some(last) if last.at == at => last.until = last.until.max(seq),
            _ => self.holds.push_back(Hold { at, until: seq }),
        }
    }

    /// The sequence `seq` is reached: held points waiting for it or less, from the
    /// first on, are released.
    pub fn release(&mut self, seq: u64) {
        while self.holds.front().is_some_and(|h| h.until <= seq) {
            self.holds.pop_front();
        }
    }

    /// Sets the durable sequence answers encoded here are judged against (see
    /// [`Sink::durable`]).
    pub fn set_durable(&mut self, durable: u64) {
        self.durable = durable;
    }

    /// True while a held point keeps bytes from being written.
    pub fn is_holding(&self) -> bool {
        !self.holds.is_empty()
    }

    /// The first contiguous bytes to write (empty when nothing may be written).
    pub fn front(&self) -> &[u8] {
        let front: &[u8] = match self.queue.front() {
            Some(segment) => segment,
            None => &self.tail,
        };
        match self.holds.front() {
            None => front,
            Some(_) => &front[..front.len().min(self.ready())],
        }
    }

    /// True when everything that may be written is in one slice
    /// ([`front`](Self::front)).
    pub fn is_contiguous(&self) -> bool {
        self.front().len() == self.ready()
    }

    /// Fills `out` with the bytes that may be written, in order, as many segments as
    /// fit; returns how many it filled.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let segments = self
            .queue
            .iter()
            .map(|b| &b[..])
            .chain((!self.tail.is_empty()).then_some(&self.tail[..]));
        let mut left = self.ready();
        let mut n = 0;
        for (slot, bytes) in out.iter_mut().zip(segments) {
            if left == 0 {
                break;
            }
            let bytes = &bytes[..bytes.len().min(left)];
            left -= bytes.len();
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Records that the first `n` pending bytes were written (at most
    /// [`ready`](Self::ready)).
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.ready());
        self.taken += n as u64;
        if n == self.len() {
            // Everything went: what is left starts a frame.
            self.queue.clear();
            self.queued = 0;
            self.tail.clear();
            self.cut = 0;
            return;
        }
        let mut left = n;
        while left > 0 {
            if self.cut == 0 {
                self.cut = self.front_frame_len();
            }
            let step = left.min(self.cut);
            self.advance_bytes(step);
            self.cut -= step;
            left -= step;
        }
    }

    /// The length of the frame starting at the front, length field included (the
    /// field may span segments). A queue holding less than a length field would be a
    /// bug; it counts as one frame of what is left.
    fn front_frame_len(&self) -> usize {
        let mut field = [0u8; 4];
        let mut got = 0;
        let segments = self
            .queue
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]));
        for segment in segments {
            let take = (4 - got).min(segment.len());
            field[got..got + take].copy_from_slice(&segment[..take]);
            got += take;
            if got == 4 {
                return 4 + u32::from_be_bytes(field) as usize;
            }
        }
        self.len()
    }

    fn advance_bytes(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                self.tail.advance(n.min(self.tail.len()));
                return;
            };
            if front.len() > n {
                front.advance(n);
                self.queued -= n;
                return;
            }
            n -= front.len();
            self.queued -= front.len();
            self.queue.pop_front();
        }
    }

    /// Drops everything pending except the rest of a frame the client has started to
    /// receive, so the stream stays whole.
    pub fn drop_after_frame(&mut self) {
        if self.cut == 0 {
            self.clear();
            return;
        }
        let keep = self.cut;
        self.rollback(keep);
        // What is kept was written in part, so it was never held.
        // The tail's capacity went with what was dropped: keep the rest of the frame in
        // a buffer of its own size.
        if self.tail.capacity() > self.tail.len() * 2 + 1024 {
            self.tail = BytesMut::from(&self.tail[..]);
        }
    }

    /// Appends a worker's answers: `encoded` bytes with `shared` values inserted at
    /// their offsets (relative to `base`, where `encoded` starts in the worker's
    /// buffer). The encoded bytes are copied; the values are not.
    pub fn append(&mut self, encoded: &[u8], shared: &[(usize, Bytes)], base: usize) {
        let mut at = 0;
        for (offset, bytes) in shared {
            let offset = offset - base;
            self.tail.extend_from_slice(&encoded[at..offset]);
            self.share(bytes.clone());
            at = offset;
        }
        self.tail.extend_from_slice(&encoded[at..]);
    }

    /// Memory the queue holds: its bytes plus the tail's spare capacity.
    pub fn held(&self) -> usize {
        self.queued + self.tail.capacity()
    }

    /// Drops everything pending, and every hold.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued = 0;
        self.tail = BytesMut::new();
        self.cut = 0;
        self.holds.clear();
    }

    /// When nothing is pending, lets go of a tail buffer larger than `keep` bytes, so
    /// one burst does not leave the connection holding a large buffer for its life.
    pub fn release_idle(&mut self, keep: usize) {
        if self.tail.capacity() > keep && self.is_empty() {
            self.tail = BytesMut::new();
        }
    }
}

impl Sink for Outgoing {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    fn share(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            let before = self.tail.split().freeze();
            self.queued += before.len();
            self.queue.push_back(before);
        }
        self.queued += bytes.len();
        self.shared_total += bytes.len();
        self.queue.push_back(bytes);
    }

    fn len(&self) -> usize {
        self.queued + self.tail.len()
    }

    fn shared_len(&self) -> usize {
        self.shared_total
    }

    fn durable(&self) -> u64 {
        self.durable
    }

    fn hold_for(&mut self, seq: u64) {
        self.hold_until(seq);
    }

    fn rollback(&mut self, mark: usize) {
        // Holds placed after the mark go with what they held.
        let end = self.taken + mark as u64;
        while self.holds.back().is_some_and(|h| h.at > end) {
            self.holds.pop_back();
        }
        // Whatever followed the mark is at the back: trim the tail, then segments.
        while self.len() > mark {
            let excess = self.len() - mark;
            if !self.tail.is_empty() {
                let keep = self.tail.len() - excess.min(self.tail.len());
                self.tail.truncate(keep);
                continue;
            }
            let Some(last) = self.queue.back_mut() else {
                return;
            };
            if last.len() <= excess {
                self.queued -= last.len();
                self.queue.pop_back();
            } else {
                self.queued -= excess;
                last.truncate(last.len() - excess);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(o: &Outgoing) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = o.io_slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn shared_values_keep_their_place_between_encoded_bytes() {
        let mut o = Outgoing::default();
        o.buf().extend_from_slice(b"ab");
        o.share(Bytes::from_static(b"VALUE"));
        o.buf().extend_from_slice(b"cd");
        assert_eq!(o.len(), 9);
        assert_eq!(written(&o), b"abVALUEcd");
        assert_eq!(o.front(), b"ab");
        o.advance(3);
        assert_eq!(written(&o), b"ALUEcd");
        o.advance(5);
        assert_eq!(written(&o), b"d");
        assert_eq!(o.front(), b"d");
        o.advance(1);
        assert!(o.is_empty());
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = ((body.len()) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn dropping_keeps_the_rest_of_a_frame_being_written() {
        let mut o = Outgoing::default();
        let (a, b, c) = (frame(b"first"), frame(b"second"), frame(b"third"));
        o.buf().extend_from_slice(&a);
        o.buf().extend_from_slice(&b[..4]);
        o.share(Bytes::copy_from_slice(&b[4..]));
        o.buf().extend_from_slice(&c);
        // Partway into the second frame, whose body is a shared segment.
        o.advance(a.len() + 6);
        o.drop_after_frame();
        assert_eq!(written(&o), &b[6..]);
        o.advance(o.len());
        o.buf().extend_from_slice(&c);
        o.drop_after_frame();
        assert!(o.is_empty(), "at a frame boundary everything goes");
    }

    #[test]
    fn frame_tracking_follows_writes_of_any_size() {
        let frames: Vec<Vec<u8>> = (0..20).map(|i| frame(&vec![i as u8; i * 7])).collect();
        let all: Vec<u8> = frames.concat();
        for step in [1, 3, 4, 5, 17, 64] {
            let mut o = Outgoing::default();
            for f in &frames {
                o.buf().extend_from_slice(f);
            }
            let mut done = 0;
            while done < all.len() {
                let n = step.min(all.len() - done);
                o.advance(n);
                done += n;
                // Where a frame ends, `cut` is 0; inside one, the bytes to its end.
                let mut end = 0;
                for f in &frames {
                    end += f.len();
                    if end >= done {
                        break;
                    }
                }
                assert_eq!(o.cut, end - done, "step {step}, at {done}");
            }
        }
    }

    #[test]
    fn a_held_answer_waits_and_everything_behind_it_waits_too() {
        let mut o = Outgoing::default();
        o.buf().extend_from_slice(b"free ");
        o.hold_until(7);
        o.buf().extend_from_slice(b"held ");
        o.share(Bytes::from_static(b"VALUE "));
        o.hold_until(9);
        o.buf().extend_from_slice(b"later");
        assert!(o.is_holding());
        assert_eq!(o.ready(), 5);
        assert_eq!(written(&o), b"free ");
        assert_eq!(o.front(), b"free ");
        o.advance(100);
        assert_eq!(o.ready(), 0);
        assert_eq!(written(&o), b"");
        o.release(6);
        assert_eq!(o.ready(), 0, "not yet");
        o.release(8);
        assert_eq!(written(&o), b"held VALUE ");
        assert!(!o.is_contiguous());
        o.advance(3);
        assert_eq!(written(&o), b"d VALUE ");
        o.release(9);
        assert_eq!(written(&o), b"d VALUE later");
        assert!(!o.is_holding());
        o.advance(o.len());
        assert!(o.is_empty());
    }

    #[test]
    fn a_rolled_back_answer_takes_its_hold_with_it() {
        let mut o = Outgoing::default();
        o.buf().extend_from_slice(b"kept");
        let mark = o.len();
        o.buf().extend_from_slice(b"head");
        o.hold_until(3);
        o.buf().extend_from_slice(b"failed");
        o.rollback(mark);
        assert!(!o.is_holding());
        assert_eq!(written(&o), b"kept");
        // A hold exactly at the mark stays: it holds nothing yet, and at worst delays.
    }

    #[test]
    fn append_places_a_workers_shared_values_at_their_offsets() {
        let mut o = Outgoing::default();
        o.buf().extend_from_slice(b"<");
        // The worker's span began at offset 10 of its buffer.
        let shared = [
            (12, Bytes::from_static(b"X")),
            (14, Bytes::from_static(b"Y")),
        ];
        o.append(b"abcdef", &shared, 10);
        assert_eq!(written(&o), b"<abXcdYef");
    }

    #[test]
    fn rollback_restores_the_length_at_the_mark() {
        let mut o = Outgoing::default();
        o.buf().extend_from_slice(b"kept");
        let mark = o.len();
        o.buf().extend_from_slice(b"head");
        o.share(Bytes::from_static(b"value"));
        o.buf().extend_from_slice(b"more");
        o.rollback(mark);
        assert_eq!(written(&o), b"kept");
        o.buf().extend_from_slice(b"!");
        assert_eq!(written(&o), b"kept!");
    }
}
