//! A connection's timers: which deadlines it has, when each is due, and the rule that
//! keeps a due timer from firing forever.
//!
//! Deadlines are not stored but derived from the connection's state each time they
//! are asked for, so they cannot go stale. Each timer is armed only in a state that its
//! firing leaves: [`Timer::Idle`], [`Timer::Frame`] and [`Timer::Write`] only while open,
//! [`Timer::Closing`] only while closing, [`Timer::Linger`] only while lingering. So handling a due timer always
//! changes the state, and `poll_timeout` never returns the same past deadline twice: a
//! pump that fires every due timer cannot spin. The fuzz target and the reactor's tests
//! check this; the reactor also refuses to re-arm a deadline that is not in the future.

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
}

impl Timer {
    /// Every timer, in the order a due set is handled.
    pub const ALL: [Timer; 5] = [
        Timer::Idle,
        Timer::Closing,
        Timer::Linger,
        Timer::Frame,
        Timer::Write,
    ];
}
