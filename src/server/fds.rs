//! Fitting the connection limit to the descriptor limit, at startup.
//!
//! Every connection is a descriptor. A process whose soft limit (often 1,024) is below
//! `--max-connections` would otherwise find out at `accept`, with clients stuck in the
//! kernel's queue. So, as Redis and nginx do, the server raises its soft limit toward
//! the hard limit where it needs more, and if that is still not enough it lowers its
//! connection limit to what fits, and says so.

use std::io;

/// Descriptors kept free beyond those open at startup and one per connection: for the
/// listener's reserve, log files and whatever a later version opens.
pub(super) const SPARE_DESCRIPTORS: u64 = 16;

/// The soft and hard `RLIMIT_NOFILE`.
fn descriptor_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a plain struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Sets the soft `RLIMIT_NOFILE`, keeping the hard one.
fn set_soft_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a plain struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Descriptors open in this process now, or `None` where `/proc` cannot tell.
fn open_descriptors() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The most connections that fit in `soft` descriptors with `in_use` already open and
/// [`SPARE_DESCRIPTORS`] kept free: at least one, at most `wanted`.
pub(super) fn fitting(wanted: usize, soft: u64, in_use: u64) -> usize {
    let room = soft.saturating_sub(in_use + SPARE_DESCRIPTORS).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Makes room for `wanted` connections: raises the soft descriptor limit if needed and
/// allowed, and returns how many connections fit, with a line for the operator when
/// that is fewer than wanted.
pub(super) fn fit_connection_limit(wanted: usize) -> (usize, Option<String>) {
    let Ok((soft, hard)) = descriptor_limit() else {
        return (wanted, None);
    };
    let in_use = open_descriptors().unwrap_or(SPARE_DESCRIPTORS);
    let needed = (wanted as u64).saturating_add(in_use + SPARE_DESCRIPTORS);
    let mut soft_now = soft;
    if needed > soft {
        let target = needed.min(hard);
        if set_soft_limit(target, hard).is_ok() {
            soft_now = target;
        }
    }
    let fits = fitting(wanted, soft_now, in_use);
    let note = (fits < wanted).then(|| {
        format!(
            "--max-connections {wanted} needs {needed} file descriptors, but the limit is \
             {soft_now} (hard limit {hard}); serving at most {fits} connections. Raise the \
             limit (ulimit -n, or LimitNOFILE= under systemd) to serve more."
        )
    });
    (fits, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_fits_what_is_left_after_the_open_and_spare_descriptors() {
        assert_eq!(
            fitting(10_000, 1024, 10),
            1024 - 10 - SPARE_DESCRIPTORS as usize
        );
        assert_eq!(fitting(100, 1024, 10), 100);
        assert_eq!(fitting(100, 20, 10), 1, "always at least one");
    }
}
