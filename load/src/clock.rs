//! Time for the generator: one monotonic nanosecond clock, timerfds that wake the
//! event loop at due sends with microsecond precision, and the process's CPU time.
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
    /// How many times the deadline was actually set (for tests).
    #[cfg(test)]
    settings: u64,
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
        Ok(Timer {
            fd,
            armed_at: None,
            #[cfg(test)]
            settings: 0,
        })
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
        #[cfg(test)]
        {
            self.settings += 1;
        }
        Ok(())
    }

    /// The deadline the timer is armed for, if it has not fired since.
    pub fn armed_at(&self) -> Option<u64> {
        self.armed_at
    }

    /// Notes that the deadline passed. The expiry count is not read: re-arming with
    /// timerfd_settime resets it, and the edge-triggered registration fires on the
    /// next expiry either way, so the read would be a wasted syscall per send.
    pub fn fired(&mut self) {
        self.armed_at = None;
    }
}

/// Two one-shot timers used in turn, so that the send after next can be set up while
/// the next one's deadline is still pending.
///
/// Setting the earliest pending timer on a CPU reprograms its timer hardware, which in
/// a virtual machine is a trap to the hypervisor and can cost several microseconds, a
/// good part of the gap between sends at high rates. A deadline set behind an earlier
/// pending one only joins a queue; when the earlier one fires, the kernel programs the
/// hardware for the next deadline within the interrupt it handles anyway. So while a
/// thread waits for send `k` it also sets the timer for send `k + 1`, and a thread
/// that waits for every send pays a cheap `timerfd_settime` per send, not a dear one.
#[derive(Debug)]
pub struct Timers {
    timers: [Timer; 2],
}

impl Timers {
    pub fn new() -> io::Result<Timers> {
        Ok(Timers {
            timers: [Timer::new()?, Timer::new()?],
        })
    }

    pub fn register(&self, registry: &Registry, tokens: [Token; 2]) -> io::Result<()> {
        for (t, token) in self.timers.iter().zip(tokens) {
            t.register(registry, token)?;
        }
        Ok(())
    }

    /// True when one of the timers is armed for `at` and has not fired.
    pub fn armed_for(&self, at: u64) -> bool {
        self.timers.iter().any(|t| t.armed_at() == Some(at))
    }

    /// Makes sure one timer is armed for `at` and, given `then` (a later deadline),
    /// the other for `then`. Deadlines already set are not set again.
    pub fn arm(&mut self, at: u64, then: Option<u64>) -> io::Result<()> {
        let a = match self.timers.iter().position(|t| t.armed_at() == Some(at)) {
            Some(a) => a,
            None => {
                // Keep the timer already set for `then`, if one is: that work is done.
                let a = usize::from(then.is_some() && self.timers[0].armed_at() == then);
                self.timers[a].arm(at)?;
                a
            }
        };
        if let Some(then) = then {
            // `at` is pending and earlier, so this one only joins the queue.
            self.timers[1 - a].arm(then)?;
        }
        Ok(())
    }

    /// Notes that timer `i` (by its token's place) fired.
    pub fn fired(&mut self, i: usize) {
        self.timers[i].fired();
    }

    /// Deadlines set so far, over both timers (for tests).
    #[cfg(test)]
    pub fn settings(&self) -> u64 {
        self.timers.iter().map(|t| t.settings).sum()
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
    fn timers_set_each_deadline_once_and_the_next_one_ahead() {
        let mut t = Timers::new().unwrap();
        // Far ahead: nothing fires while the test runs.
        let base = now_ns() + 3_600_000_000_000;
        t.arm(base, Some(base + 100)).unwrap();
        assert_eq!(t.settings(), 2);
        assert!(t.armed_for(base) && t.armed_for(base + 100));
        // Another pass before either fired sets nothing.
        t.arm(base, Some(base + 100)).unwrap();
        assert_eq!(t.settings(), 2);
        // The first fires: the next deadline is set already, so only the one after it
        // is new, on the timer that fired.
        let first = (0..2)
            .find(|&i| t.timers[i].armed_at() == Some(base))
            .unwrap();
        t.fired(first);
        assert!(!t.armed_for(base));
        t.arm(base + 100, Some(base + 200)).unwrap();
        assert_eq!(t.settings(), 3);
        assert_eq!(t.timers[first].armed_at(), Some(base + 200));
        assert!(t.armed_for(base + 100));
        // The last send has no later one.
        t.fired(1 - first);
        t.arm(base + 200, None).unwrap();
        assert_eq!(t.settings(), 3);
        // A deadline neither timer holds is set on one that does not hold `then`.
        t.arm(base + 300, Some(base + 200)).unwrap();
        assert!(t.armed_for(base + 300) && t.armed_for(base + 200));
    }

    #[test]
    fn both_timers_wake_poll_at_their_deadlines_not_before() {
        let mut poll = Poll::new().unwrap();
        let mut timers = Timers::new().unwrap();
        timers
            .register(poll.registry(), [Token(0), Token(1)])
            .unwrap();
        let mut events = Events::with_capacity(4);
        let start = now_ns();
        let deadlines = [start + 2_000_000, start + 4_000_000];
        timers.arm(deadlines[0], Some(deadlines[1])).unwrap();
        let mut woke: Vec<u64> = Vec::new();
        for _ in 0..20 {
            if woke.len() == 2 {
                break;
            }
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            let now = now_ns();
            for ev in events.iter() {
                let i = ev.token().0;
                timers.fired(i);
                woke.push(now);
            }
        }
        assert_eq!(woke.len(), 2, "a timer never fired");
        // Whichever timer holds which deadline, the first wake is not before the first
        // deadline and the second not before the second.
        assert!(woke[0] >= deadlines[0], "woke early");
        assert!(woke[1] >= deadlines[1], "woke early");
        assert!(!timers.armed_for(deadlines[0]) && !timers.armed_for(deadlines[1]));
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
