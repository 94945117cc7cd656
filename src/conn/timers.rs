//! A connection's timers: which deadlines it has, when each is due, and the rule that
//! keeps a due timer from firing forever.
//!
//! Deadlines are not stored but derived from the connection's state each time they
//! are asked for, so they cannot go stale. Each timer is armed only in a state that its
//! firing leaves: [`Timer::Idle`], [`Timer::Frame`] and [`Timer::Write`] only while open,
//! [`Timer::Auth`] only while open,
//! [`Timer::Closing`] only while closing, [`Timer::Linger`] only while lingering. So handling a due timer always
//! changes the state, and `poll_timeout` never returns the same past deadline twice: a
//! pump that fires every due timer cannot spin. The fuzz target and the reactor's tests
//! check this; the reactor also refuses to re-arm a deadline that is not in the future.

use super::{CloseReason, Connection, State};
use crate::exec::sink::Sink;
use bytes::BytesMut;
use std::time::Instant;

/// One of a connection's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Open with nothing at an executor, and no byte moved either way for the idle
    /// timeout: close (gracefully if nothing is owed, else at once, since the client is
    /// not reading what it is owed).
    Idle,
    /// Closing with output the client has not taken any of for the closing timeout:
    /// drop the connection.
    Closing,
    /// Lingering after a server-initiated close: the linger is over.
    Linger,
    /// Open and reading, with a frame begun and not complete for the frame timeout,
    /// however slowly its bytes keep arriving (slowloris): drop the connection.
    Frame,
    /// Open with answers owed and none of them taken for the write timeout: drop the
    /// connection (not for a subscriber's events, which are judged by TCP).
    Write,
    /// Open on a server that requires a token, with no HELLO carrying it yet, for the
    /// authentication timeout: tell the client AUTH_REQUIRED and close.
    Auth,
}

impl Timer {
    /// Every timer, in the order a due set is handled.
    pub const ALL: [Timer; 6] = [
        Timer::Idle,
        Timer::Closing,
        Timer::Linger,
        Timer::Frame,
        Timer::Write,
        Timer::Auth,
    ];
}

impl Connection {
    /// When `timer` is next due, if it is armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        match (timer, self.state) {
            // Answers held for the server's own reasons (durability) are not the
            // client's to take: like a run in flight, they suspend the idle clock.
            (Timer::Idle, State::Open)
                if self.in_flight == 0 && !self.output.is_holding() && !self.subscribed =>
            {
                self.limits.idle_timeout.map(|t| self.last_activity + t)
            }
            (Timer::Closing, State::Closing(_))
                if self.in_flight == 0 && self.output.ready() > 0 =>
            {
                Some(self.last_activity + self.limits.closing_timeout)
            }
            (Timer::Linger, State::Lingering(_, until)) => Some(until),
            // Only while the server reads: a paused connection cannot finish its frame.
            (Timer::Frame, State::Open) if self.wants_read() && !self.input.is_empty() => {
                Some(self.partial_since? + self.limits.frame_timeout?)
            }
            // Answers owed and none taken; a subscriber behind on its events is a cursor
            // into the change log, judged by TCP, not by this.
            (Timer::Write, State::Open) if self.output.ready() > 0 && !self.subscribed => {
                Some(self.owed_since? + self.limits.write_timeout?)
            }
            (Timer::Auth, State::Open) => self.auth_deadline,
            _ => None,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    ///
    /// Every deadline it returns belongs to a timer armed only in the current state,
    /// and handling that timer leaves the state: once `handle_timeout(now)` has run,
    /// this never returns a deadline at or before `now` that it returned before.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Each state arms its own timers: ask only those.
        match self.state {
            State::Open => [Timer::Idle, Timer::Frame, Timer::Write, Timer::Auth]
                .into_iter()
                .filter_map(|t| self.deadline(t))
                .min(),
            State::Closing(_) => self.deadline(Timer::Closing),
            State::Lingering(..) => self.deadline(Timer::Linger),
            State::Closed(_) => None,
        }
    }

    /// Time has passed: handles every timer due at `now` (a call with none due changes
    /// nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.deadline(timer).is_none_or(|at| at > now) {
                continue;
            }
            match timer {
                Timer::Idle => {
                    if self.output.is_empty() {
                        // Nothing owed: a graceful close that still runs held jobs.
                        self.input.clear();
                        self.decodable = false;
                        self.begin_close(CloseReason::IdleTimeout);
                    } else {
                        // Answers are owed and the client took none for the whole
                        // timeout: it is not reading, so nothing more can reach it.
                        self.abort(CloseReason::IdleTimeout);
                    }
                }
                Timer::Closing => {
                    let reason = self.close_reason().unwrap_or(CloseReason::Io);
                    self.abort(reason);
                }
                Timer::Linger => {
                    let reason = self.close_reason().unwrap_or(CloseReason::Io);
                    self.state = State::Closed(reason);
                }
                // A client trickling a frame would hold a buffer and a connection for
                // as long as it liked: the partial frame is dropped and nothing more is
                // read, but the requests it sent whole are still answered.
                Timer::Frame => {
                    self.input = BytesMut::new();
                    self.decodable = false;
                    self.partial_since = None;
                    self.begin_close(CloseReason::FrameTimeout);
                    // The closing clock (for the answers still owed) starts now, not at
                    // the last byte moved, which may be long past.
                    self.last_activity = now;
                }
                // Nothing more can reach a client that takes nothing.
                Timer::Write => self.abort(CloseReason::WriteTimeout),
                Timer::Auth => {
                    self.handle_auth_timeout();
                    self.last_activity = now;
                }
            }
        }
        self.check_invariants();
    }
}
