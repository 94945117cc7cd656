//! The file-system operations the log needs, as a trait, so tests can run the log on
//! a simulated disk that loses what was not synced (`faulty`); and [`RealFs`], the
//! trait over `std::fs`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What the log does to a directory and its files. Paths are those the log was
/// opened with, joined with file names.
pub trait Fs: Send + 'static {
    /// An open file.
    type File: FsFile;

    /// Whether anything exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates a directory and any missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory, in any order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Opens an existing file to read it and append to it.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates a file that must not exist yet, to read and append.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Renames a file, replacing any file at `to`. Durable once both directories
    /// are synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file. Durable once its directory is synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the creations, renames and removals in a directory durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file of an [`Fs`].
pub trait FsFile: Send + 'static {
    /// The file's length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Appends all of `buf` at the end of the file. On an error, any part of it may
    /// have been written.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the file's content and length durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates (or extends with zeros) to `len` bytes. Not durable until synced.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Reserves disk space for the file's first `len` bytes without changing its
    /// length, so appends up to there cannot run out of space. An error only when
    /// the space is not there; a file system that cannot reserve is not an error.
    fn preallocate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// The real file system, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl Fs for RealFs {
    type File = File;

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).append(true).open(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    /// Opens the directory and `fsync`s it: that is what makes a new or renamed
    /// entry in it survive a power cut on Linux file systems.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl FsFile for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(self, buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    /// `fallocate` with `FALLOC_FL_KEEP_SIZE`: the blocks are the file's, its length
    /// is not, so recovery never reads the reserved space as entries.
    #[cfg(target_os = "linux")]
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
        // SAFETY: fallocate on a descriptor this `File` owns and keeps open.
        let rc = unsafe { libc::fallocate(self.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => Err(e),
            // EOPNOTSUPP and the like: the file system cannot reserve; appends then
            // find out about space as they go.
            _ => Ok(()),
        }
    }
}
