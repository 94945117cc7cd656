//! `Disk`: the file system a server keeps its data directory on: the real one, or a
//! simulated one ([`FaultyFs`]) that a test can cut the power to while a whole server
//! runs on it, then recover from.

use super::faulty::{FaultyFile, FaultyFs};
use super::fs::{Fs, FsFile, RealFs};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;

/// Where a data directory lives.
#[derive(Debug, Clone, Default)]
pub enum Disk {
    /// The real file system.
    #[default]
    Real,
    /// A simulated disk in memory (tests). A failure on it that would stop the
    /// process on a real disk stops only the log, so the test can go on to recover.
    Simulated(FaultyFs),
}

impl Disk {
    /// Whether this is the simulated disk.
    pub fn is_simulated(&self) -> bool {
        matches!(self, Disk::Simulated(_))
    }

    /// The whole content of the file at `path`, or `None` if there is none.
    pub fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        if !self.exists(path)? {
            return Ok(None);
        }
        let file = self.open(path)?;
        let mut buf = vec![0; usize::try_from(file.size()?).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, 0)?;
        Ok(Some(buf))
    }

    /// Replaces the file `name` in `dir` with `content` atomically and durably: a
    /// temporary file written and synced, renamed over it, the directory synced.
    pub fn replace_file(&self, dir: &Path, name: &str, content: &[u8]) -> io::Result<()> {
        let tmp = dir.join(format!("{name}.tmp"));
        if self.exists(&tmp)? {
            self.remove_file(&tmp)?;
        }
        let mut file = self.create_new(&tmp)?;
        file.append(content)?;
        file.sync_data()?;
        self.rename(&tmp, &dir.join(name))?;
        self.sync_dir(dir)
    }
}

/// An open file of a [`Disk`].
#[derive(Debug)]
pub enum DiskFile {
    /// On the real file system.
    Real(File),
    /// On the simulated disk.
    Simulated(FaultyFile),
}

/// Calls the same method on whichever file system or file it is.
macro_rules! each {
    ($self:expr, $fs:ident => $call:expr) => {
        match $self {
            Disk::Real => {
                let $fs = &RealFs;
                $call
            }
            Disk::Simulated($fs) => $call,
        }
    };
}

impl Fs for Disk {
    type File = DiskFile;

    fn exists(&self, path: &Path) -> io::Result<bool> {
        each!(self, fs => fs.exists(path))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        each!(self, fs => fs.create_dir_all(path))
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        each!(self, fs => fs.list_dir(dir))
    }
    fn open(&self, path: &Path) -> io::Result<DiskFile> {
        match self {
            Disk::Real => RealFs.open(path).map(DiskFile::Real),
            Disk::Simulated(fs) => fs.open(path).map(DiskFile::Simulated),
        }
    }
    fn create_new(&self, path: &Path) -> io::Result<DiskFile> {
        match self {
            Disk::Real => RealFs.create_new(path).map(DiskFile::Real),
            Disk::Simulated(fs) => fs.create_new(path).map(DiskFile::Simulated),
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        each!(self, fs => fs.rename(from, to))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        each!(self, fs => fs.remove_file(path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        each!(self, fs => fs.sync_dir(dir))
    }
}

/// Calls the same method on whichever file it is.
macro_rules! file {
    ($self:expr, $f:ident => $call:expr) => {
        match $self {
            DiskFile::Real($f) => $call,
            DiskFile::Simulated($f) => $call,
        }
    };
}

impl FsFile for DiskFile {
    fn size(&self) -> io::Result<u64> {
        file!(self, f => f.size())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        file!(self, f => FsFile::read_exact_at(f, buf, offset))
    }
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        file!(self, f => f.append(buf))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        file!(self, f => FsFile::sync_data(f))
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        file!(self, f => FsFile::set_len(f, len))
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        file!(self, f => f.preallocate(len))
    }
}
