//! What push needs of a connection: where pushes are written and whether there is
//! room, whether it holds subscriptions (which turns the idle timeout off for it and
//! keepalive on), and the mark that a subscription fell behind and waits for the
//! output to drain.

use super::{CloseReason, Connection, Outgoing, State};
use crate::exec::sink::Sink;
use std::time::Instant;

impl Connection {
    /// The protocol version the connection speaks (pushes are written in it).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Where pushes are written: `None` unless the connection is open and its
    /// answers are wanted. Pushes count against the output limit like answers.
    pub fn push_out(&mut self) -> Option<&mut Outgoing> {
        (self.state == State::Open && !self.discard_answers && !self.cancelled)
            .then_some(&mut self.output)
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
