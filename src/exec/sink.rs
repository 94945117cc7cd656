//! Where executing a request writes its answer: a [`Sink`].
//!
//! Answers are small encoded frames, except that a record value can be long (up to the
//! value limit). A sink takes encoded bytes into a buffer and long values *by
//! reference*: the value's shared buffer from the store goes into the answer as it is,
//! so a megabyte GET costs a reference count, not a megabyte copied on the thread that
//! runs it and again on the way to the socket.
//!
//! Two sinks exist: a connection's [`Outgoing`](crate::conn::Outgoing) queue, used when
//! a request runs on the network thread, and [`Answers`], a worker's buffer for a whole
//! batch, whose spans the reactor then appends to each connection's queue (copying the
//! small encoded bytes once, passing the long values on by reference).

use crate::job::ConnId;
use bytes::{Bytes, BytesMut};

/// Values at least this long are passed by reference rather than copied into an
/// answer. Below it a copy costs less than the extra segment and I/O vector entry
/// a reference costs on the way out; above it the copy dominates.
pub const SHARE_MIN_BYTES: usize = 4 << 10;

/// Where an answer is written.
pub trait Sink {
    /// The buffer encoded bytes are appended to.
    fn buf(&mut self) -> &mut BytesMut;
    /// Appends `bytes` by reference, after everything appended so far.
    fn share(&mut self, bytes: Bytes);
    /// Bytes appended so far, encoded and shared.
    fn len(&self) -> usize;
    /// True when nothing has been appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A running count of the bytes appended by reference: the difference between two
    /// calls is what was shared in between.
    fn shared_len(&self) -> usize;
    /// Drops everything appended after the moment `len` was `mark` (a failed request's
    /// partial answer).
    fn rollback(&mut self, mark: usize);
    /// The change sequence known durable for this sink's answers: an answer that
    /// reveals a later one is held ([`hold_for`](Self::hold_for)) until it is.
    /// `u64::MAX` when nothing is held.
    fn durable(&self) -> u64 {
        u64::MAX
    }
    /// Holds what is appended from now on until `seq` is durable.
    fn hold_for(&mut self, seq: u64) {
        let _ = seq;
    }
    /// Appends a value: by reference when it is long and shared, else copied.
    fn value(&mut self, bytes: &[u8], shared: Option<&Bytes>) {
        match shared {
            Some(b) if b.len() >= SHARE_MIN_BYTES => self.share(b.clone()),
            _ => self.buf().extend_from_slice(bytes),
        }
    }
}

/// The answers to one connection's run of jobs within an [`Answers`] batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The connection.
    pub conn: ConnId,
    /// End of its encoded bytes in [`Answers::buf`] (they start where the previous
    /// span ended).
    pub end: usize,
    /// End of its shared parts in [`Answers::shared`].
    pub shared_end: usize,
    /// How many jobs these bytes answer.
    pub answered: u32,
    /// The change sequence that must be durable before these answers go out (0 when
    /// none).
    pub hold: u64,
}

/// A worker's answers for a batch: encoded bytes back to back, long values by
/// reference, and which of them belong to which connection, in job order.
#[derive(Debug)]
pub struct Answers {
    /// Every encoded byte.
    pub buf: BytesMut,
    /// Values passed by reference, each with the offset in `buf` it follows.
    pub shared: Vec<(usize, Bytes)>,
    shared_bytes: usize,
    /// One span per run of one connection's jobs.
    pub spans: Vec<Span>,
    /// The durable sequence as the batch began (see [`Sink::durable`]).
    durable: u64,
    /// The latest sequence the open span's answers reveal beyond `durable`.
    hold: u64,
}

impl Default for Answers {
    fn default() -> Answers {
        Answers {
            buf: BytesMut::new(),
            shared: Vec::new(),
            shared_bytes: 0,
            spans: Vec::new(),
            durable: u64::MAX,
            hold: 0,
        }
    }
}

impl Answers {
    /// Records that everything appended since the previous span answers `answered`
    /// jobs of `conn`.
    pub fn end_span(&mut self, conn: ConnId, answered: u32) {
        self.spans.push(Span {
            conn,
            end: self.buf.len(),
            shared_end: self.shared.len(),
            answered,
            hold: std::mem::take(&mut self.hold),
        });
    }

    /// Sets the durable sequence answers are judged against (see [`Sink::durable`]).
    pub fn set_durable(&mut self, durable: u64) {
        self.durable = durable;
    }

    /// Each span with the offset in `buf` where its bytes start, its encoded bytes,
    /// and its shared parts (with offsets in `buf`).
    pub fn iter(&self) -> impl Iterator<Item = (Span, usize, &[u8], &[(usize, Bytes)])> + '_ {
        let mut at = 0;
        let mut shared_at = 0;
        self.spans.iter().map(move |span| {
            let base = at;
            let bytes = &self.buf[base..span.end];
            let shared = &self.shared[shared_at..span.shared_end];
            at = span.end;
            shared_at = span.shared_end;
            (*span, base, bytes, shared)
        })
    }

    /// Appends everything in `self` to `other` by reference, in order, leaving `self`
    /// empty with a new buffer: encoded bytes become shared parts of `other`, so they
    /// are not copied again and keep only their own allocation alive.
    pub fn move_into(&mut self, other: &mut Answers) {
        let mut consumed = 0;
        for (offset, bytes) in self.shared.drain(..) {
            let piece = self.buf.split_to(offset - consumed).freeze();
            consumed = offset;
            if !piece.is_empty() {
                other.share(piece);
            }
            other.share(bytes);
        }
        let rest = std::mem::take(&mut self.buf).freeze();
        if !rest.is_empty() {
            other.share(rest);
        }
        other.hold = other.hold.max(std::mem::take(&mut self.hold));
        self.shared_bytes = 0;
        self.spans.clear();
    }

    /// Empties the batch, keeping its buffers unless they grew past `keep` bytes, so a
    /// burst of large answers does not leave every recycled batch holding its peak.
    pub fn clear(&mut self, keep: usize) {
        if self.buf.capacity() > keep {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
        self.shared.clear();
        self.shared_bytes = 0;
        self.spans.clear();
        self.hold = 0;
    }
}

impl Sink for Answers {
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn share(&mut self, bytes: Bytes) {
        self.shared_bytes += bytes.len();
        self.shared.push((self.buf.len(), bytes));
    }

    fn len(&self) -> usize {
        self.buf.len() + self.shared_bytes
    }

    fn shared_len(&self) -> usize {
        self.shared_bytes
    }

    fn durable(&self) -> u64 {
        self.durable
    }

    fn hold_for(&mut self, seq: u64) {
        // The whole span waits for its latest: the reactor holds it as one.
        self.hold = self.hold.max(seq);
    }

    fn rollback(&mut self, mark: usize) {
        // What followed the mark is at the end of the stream, which reads
        // buf[..off1], shared1, buf[off1..off2], ..., buf[offN..]: trim from the back.
        loop {
            let excess = self.len().saturating_sub(mark);
            if excess == 0 {
                return;
            }
            let tail_start = self.shared.last().map_or(0, |(off, _)| *off);
            let tail = self.buf.len() - tail_start;
            if tail > 0 {
                self.buf.truncate(self.buf.len() - excess.min(tail));
                continue;
            }
            let Some((_, last)) = self.shared.last_mut() else {
                return;
            };
            if last.len() <= excess {
                self.shared_bytes -= last.len();
                self.shared.pop();
            } else {
                self.shared_bytes -= excess;
                last.truncate(last.len() - excess);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId {
        index: 1,
        generation: 0,
    };
    const B: ConnId = ConnId {
        index: 2,
        generation: 0,
    };

    #[test]
    fn spans_split_bytes_and_shared_parts_by_connection() {
        let mut a = Answers::default();
        a.buf().extend_from_slice(b"head1");
        a.share(Bytes::from_static(b"LONG-VALUE"));
        a.buf().extend_from_slice(b"tail1");
        a.end_span(A, 2);
        a.buf().extend_from_slice(b"only2");
        a.end_span(B, 1);
        assert_eq!(a.len(), 25);
        assert_eq!(a.shared_len(), 10);
        let spans: Vec<_> = a.iter().collect();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].2, b"head1tail1");
        assert_eq!(spans[0].3, &[(5, Bytes::from_static(b"LONG-VALUE"))]);
        assert_eq!(spans[0].0.answered, 2);
        assert_eq!((spans[1].1, spans[1].2), (10, &b"only2"[..]));
        assert!(spans[1].3.is_empty());
    }

    #[test]
    fn moving_a_runs_buffer_keeps_its_bytes_in_order_by_reference() {
        let mut own = Answers::default();
        own.buf().extend_from_slice(b"head");
        own.share(Bytes::from_static(b"VALUE"));
        own.buf().extend_from_slice(b"tail");
        let mut batch = Answers::default();
        batch.buf().extend_from_slice(b"other");
        batch.end_span(A, 1);
        own.move_into(&mut batch);
        batch.end_span(B, 2);
        assert!(own.is_empty() && own.shared.is_empty());
        let spans: Vec<_> = batch.iter().collect();
        assert_eq!(spans[1].2, b"", "no encoded bytes copied into the batch");
        let parts: Vec<&[u8]> = spans[1].3.iter().map(|(_, b)| &b[..]).collect();
        assert_eq!(parts, [&b"head"[..], b"VALUE", b"tail"]);
        assert_eq!(batch.len(), 5 + 13);
    }

    #[test]
    fn rollback_drops_what_followed_the_mark() {
        let mut a = Answers::default();
        a.buf().extend_from_slice(b"kept");
        let mark = a.len();
        a.buf().extend_from_slice(b"head");
        a.share(Bytes::from_static(b"value"));
        a.buf().extend_from_slice(b"more");
        a.rollback(mark);
        assert_eq!(a.len(), mark);
        assert_eq!(&a.buf[..], b"kept");
        assert!(a.shared.is_empty());
    }

    #[test]
    fn short_or_unshared_values_are_copied_long_shared_ones_are_not() {
        let mut a = Answers::default();
        let long = Bytes::from(vec![1u8; SHARE_MIN_BYTES]);
        a.value(&long, Some(&long));
        a.value(b"short", Some(&Bytes::from_static(b"short")));
        a.value(&long, None);
        assert_eq!(a.shared_len(), SHARE_MIN_BYTES);
        assert_eq!(a.buf.len(), 5 + SHARE_MIN_BYTES);
    }
}
