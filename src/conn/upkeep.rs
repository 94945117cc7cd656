//! A connection's upkeep: releasing the buffers an idle connection no longer needs,
//! checking (in debug builds) the promises the state machine keeps, and the
//! unprompted fatal frame a server-side close sends.

use super::{Connection, State, KEEP_BUFFER_BYTES};
use crate::exec::sink::Sink;
use crate::protocol::{encode, Opcode, RequestId, Status};
use bytes::BytesMut;
use std::collections::VecDeque;

impl Connection {
    /// Gives back buffers an idle connection no longer needs, so an idle connection
    /// costs a few hundred bytes, not the high-water mark of its traffic.
    pub(super) fn release_idle_buffers(&mut self) {
        if self.input.capacity() > KEEP_BUFFER_BYTES && self.input.is_empty() {
            self.input = BytesMut::new();
        }
        self.output.release_idle(KEEP_BUFFER_BYTES);
        if self.held.capacity() > 64 && self.held.is_empty() {
            self.held = VecDeque::new();
        }
    }

    /// The promises the module doc makes, checked in debug builds after every call
    /// that changes the connection.
    pub(super) fn check_invariants(&self) {
        debug_assert!(self.in_flight <= self.limits.max_in_flight);
        debug_assert!(
            self.held.is_empty() || self.in_flight == 0 || self.cancelled,
            "{:?}: jobs held while a run is in flight",
            self.id
        );
        debug_assert!(
            self.state == State::Open || self.input.is_empty() || self.input_ended.is_some(),
            "{:?}: input kept after close",
            self.id
        );
        debug_assert!(
            !self.is_closed() || (self.output.is_empty() && self.held.is_empty()),
            "{:?}: closed with something owed",
            self.id
        );
    }

    /// Drops the input and stops decoding, and queues a fatal error frame the client
    /// did not ask for (opcode 0, request id 0): the server closes after it.
    pub(super) fn tell_and_stop_reading(&mut self, status: Status, message: &[u8]) {
        self.input = BytesMut::new();
        self.decodable = false;
        encode::error(self.output.buf(), Opcode(0), RequestId(0), status, message);
    }
}
