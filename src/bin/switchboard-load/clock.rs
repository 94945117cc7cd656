//! Time for the generator: one monotonic nanosecond clock, a timerfd that wakes the
//! event loop at a due send with microsecond precision, and the process's CPU time.
//!
//! epoll's own timeout is in whole milliseconds, which would make an open-loop send
//! up to a millisecond late (or force a busy poll). A timerfd armed at the absolute
//! due time and registered with mio wakes the same `poll` call on time instead.

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Nanoseconds on CLOCK_MONOTONIC: the clock timerfd deadlines are set on.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the kernel to wake this thread's timers within 1 ns of their deadline instead
/// of the default 50 µs slack, which would show up as dispatch lag.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// A one-shot timer on CLOCK_MONOTONIC, readable when its deadline passes.
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    armed_at: Option<u64>,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes flags only; a non-negative result is a new fd we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed_at: None })
    }

    pub fn register(&self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.fd.as_raw_fd()),
            token,
            Interest::READABLE,
        )
    }

    /// Arms the timer for absolute time `at_ns` (on [`now_ns`]'s clock). Re-arming for
    /// the same deadline is skipped, so a loop may call this every iteration.
    pub fn arm(&mut self, at_ns: u64) -> io::Result<()> {
        if self.armed_at == Some(at_ns) {
            return Ok(());
        }
        // A zero it_value would disarm; a deadline of 0 is in the past anyway.
        let at = at_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid fd and a valid itimerspec; the old value is not asked for.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_at = Some(at_ns);
        Ok(())
    }

    /// Notes that the deadline passed. The expiry count is not read: re-arming with
    /// timerfd_settime resets it, and the edge-triggered registration fires on the
    /// next expiry either way, so the read would be a wasted syscall per send.
    pub fn fired(&mut self) {
        self.armed_at = None;
    }
}

/// User and system CPU time of this process so far, in nanoseconds.
pub fn cpu_time_ns() -> (u64, u64) {
    // SAFETY: getrusage fills one rusage struct through a valid pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::time::Duration;

    #[test]
    fn timer_wakes_poll_at_its_deadline_not_before() {
        let mut poll = Poll::new().unwrap();
        let mut timer = Timer::new().unwrap();
        timer.register(poll.registry(), Token(0)).unwrap();
        let mut events = Events::with_capacity(4);
        let start = now_ns();
        let deadline = start + 3_000_000;
        timer.arm(deadline).unwrap();
        let mut woke = false;
        for _ in 0..10 {
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(0)) {
                woke = true;
                break;
            }
        }
        assert!(woke, "timer never fired");
        let now = now_ns();
        assert!(now >= deadline, "woke {} ns early", deadline - now);
        assert!(now < deadline + 500_000_000, "woke far too late");
        timer.fired();
        // Fires again after re-arming without the expiry having been read.
        timer.arm(now_ns() + 1_000_000).unwrap();
        let mut again = false;
        for _ in 0..10 {
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            if events.iter().any(|e| e.token() == Token(0)) {
                again = true;
                break;
            }
        }
        assert!(again, "re-armed timer never fired");
    }

    #[test]
    fn cpu_time_moves_forward() {
        let (u0, s0) = cpu_time_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let (u1, s1) = cpu_time_ns();
        assert!(u1 + s1 > u0 + s0);
    }
}
