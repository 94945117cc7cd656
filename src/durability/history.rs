//! The data directory's `HISTORY` file: the history id the server reports, the fsync
//! mode of the run that wrote it, and whether that run stopped cleanly.
//!
//! Sequences are only comparable within one history, and a history must never be
//! continued by a server that lost part of it: a client resuming from a sequence it
//! saw would be told nothing of the changes that vanished. Under `--fsync always` no
//! acknowledged change can be lost, so the history goes on across any restart; under
//! `everysec` or `off` it goes on only after a clean stop, and a crash starts a new
//! history (so `from=SEQ` gets a GAP instead of a silent misreading).
//!
//! The file is replaced atomically: written to a temporary file, synced, renamed over
//! the old one, and the directory synced.

use super::FsyncMode;
use crate::wal::Disk;
use std::path::{Path, PathBuf};

/// The history this run serves, and where it is recorded.
#[derive(Debug)]
pub struct History {
    id: u64,
    mode: FsyncMode,
    dir: PathBuf,
    disk: Disk,
}

impl History {
    /// Reads the previous run's record, decides whether its history goes on, and
    /// records this run (not yet clean). Returns why a new history began, if one did.
    pub fn start(
        disk: &Disk,
        dir: &Path,
        mode: FsyncMode,
    ) -> std::io::Result<(History, Option<&'static str>)> {
        let previous = disk
            .read_file(&dir.join("HISTORY"))
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let (id, why) = match previous.as_deref().and_then(parse) {
            Some((id, FsyncMode::Always, _)) => (id, None),
            Some((id, _, true)) => (id, None),
            Some(_) => (
                crate::push::new_history_id(),
                Some("the previous run did not stop cleanly and did not sync every write"),
            ),
            None if previous.is_some() => (
                crate::push::new_history_id(),
                Some("the HISTORY file could not be read"),
            ),
            None => (crate::push::new_history_id(), None),
        };
        let history = History {
            id,
            mode,
            dir: dir.to_path_buf(),
            disk: disk.clone(),
        };
        history.write(false)?;
        Ok((history, why))
    }

    /// The history id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records that this run stopped cleanly, with everything synced.
    pub fn mark_clean(&self) -> std::io::Result<()> {
        self.write(true)
    }

    fn write(&self, clean: bool) -> std::io::Result<()> {
        let text = format!(
            "history {:016x}\nfsync {}\nclean {}\n",
            self.id,
            self.mode.name(),
            u8::from(clean)
        );
        self.disk
            .replace_file(&self.dir, "HISTORY", text.as_bytes())
    }
}

/// The id, mode and clean flag of a HISTORY file's text.
fn parse(text: &str) -> Option<(u64, FsyncMode, bool)> {
    let mut id = None;
    let mut mode = None;
    let mut clean = None;
    for line in text.lines() {
        match line.split_once(' ')? {
            ("history", v) => id = u64::from_str_radix(v, 16).ok().filter(|id| *id != 0),
            ("fsync", v) => mode = v.parse().ok(),
            ("clean", v) => clean = Some(v == "1"),
            _ => {}
        }
    }
    Some((id?, mode?, clean?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sb-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_history_goes_on_unless_a_run_that_could_lose_writes_crashed() {
        let d = dir("goes-on");
        let (first, why) = History::start(&Disk::Real, &d, FsyncMode::Always).unwrap();
        assert!(why.is_none());
        // A crash under `always`: the same history.
        let (second, why) = History::start(&Disk::Real, &d, FsyncMode::EverySec).unwrap();
        assert_eq!((second.id(), why), (first.id(), None));
        // A crash under `everysec`: a new one, and why.
        let (third, why) = History::start(&Disk::Real, &d, FsyncMode::EverySec).unwrap();
        assert_ne!(third.id(), first.id());
        assert!(why.is_some());
        // A clean stop under `everysec`: the same again.
        third.mark_clean().unwrap();
        let (fourth, why) = History::start(&Disk::Real, &d, FsyncMode::Off).unwrap();
        assert_eq!((fourth.id(), why), (third.id(), None));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unreadable_history_file_starts_a_new_history_and_says_why() {
        let d = dir("unreadable");
        std::fs::write(d.join("HISTORY"), "nonsense").unwrap();
        let (_, why) = History::start(&Disk::Real, &d, FsyncMode::Always).unwrap();
        assert!(why.is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
