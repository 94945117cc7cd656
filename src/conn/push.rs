//! What push needs of a connection: where pushes are written and whether there is
//! room, whether it holds subscriptions (which turns the idle timeout off for it and
//! keepalive on), the mark that a subscription fell behind and waits for the output
//! to drain, and the GOAWAY that ends it when the server stops.

use super::{CloseReason, Connection, Outgoing, State};
use crate::exec::sink::Sink;
use crate::protocol::Push;
use bytes::Bytes;
use std::time::Instant;

/// The message a GOAWAY carries.
const GOAWAY_MESSAGE: &[u8] = b"the server is shutting down";

impl Connection {
    /// The protocol version the connection speaks (pushes are written in it).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Where pushes are written: `None` unless the connection is open and its
    /// answers are wanted. Pushes count against the output limit like answers.
    /// While the server stops, pushes go on until the GOAWAY.
    pub fn push_out(&mut self) -> Option<&mut Outgoing> {
        let open = self.state == State::Open && !self.cancelled;
        let draining = self.draining && !self.goaway_sent;
        ((open || draining) && !self.discard_answers).then_some(&mut self.output)
    }

    /// True when the server is stopping and everything this connection read is
    /// answered: its GOAWAY goes next (after a final PROGRESS for its subscriptions,
    /// which the caller writes through [`push_out`](Self::push_out) first). The next
    /// [`poll_shutdown`](Self::poll_shutdown) writes it.
    pub fn goaway_due(&self) -> bool {
        self.draining
            && !self.goaway_sent
            && !self.discard_answers
            && self.in_flight == 0
            && self.held.is_empty()
            && matches!(
                self.state,
                State::Closing(CloseReason::Shutdown | CloseReason::PeerClosed)
            )
    }

    /// How many of this connection's requests, from its first, were handled; none
    /// after them was carried out (after a cancel, those are a suffix).
    pub fn handled_requests(&self) -> u64 {
        self.handled.min(self.answered)
    }

    /// Writes the GOAWAY: the last frame on the connection.
    pub(super) fn write_goaway(&mut self) {
        Push::GoAway {
            count: self.handled_requests(),
            message: Bytes::from_static(GOAWAY_MESSAGE),
        }
        .encode(self.version, self.output.buf());
        self.goaway_sent = true;
    }

    /// True while pending output is under the limit: a push may be queued.
    pub fn push_room(&self) -> bool {
        self.output.len() < self.limits.max_output
    }

    /// The connection holds subscriptions (true) or no longer does: the idle timeout
    /// does not apply to a subscriber, which is judged by keepalive instead.
    pub fn set_subscribed(&mut self, subscribed: bool) {
        self.subscribed = subscribed;
    }

    /// True while the connection holds subscriptions.
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// A subscription fell behind for lack of room: [`push_resumable`] turns true
    /// once the output has drained to half its limit.
    ///
    /// [`push_resumable`]: Self::push_resumable
    pub fn set_push_behind(&mut self) {
        self.push_behind = true;
    }

    /// True once, when a subscription behind may be caught up: the output has
    /// drained to half its limit. Clears the mark.
    pub fn take_push_resumable(&mut self) -> bool {
        if self.push_behind
            && self.state == State::Open
            && self.output.len() <= self.limits.max_output / 2
        {
            self.push_behind = false;
            return true;
        }
        false
    }

    /// The last time a byte arrived from the client.
    pub fn last_input(&self) -> Instant {
        self.last_input
    }

    /// The last time a byte moved either way.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// A subscriber answered none of its keepalive PINGs while its output drained: it
    /// is gone. Closes at once.
    pub fn handle_keepalive_timeout(&mut self) {
        self.abort(CloseReason::IdleTimeout);
    }
}
