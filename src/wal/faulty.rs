//! `FaultyFs`: an in-memory [`Fs`] that simulates power cuts and failing writes, for
//! testing what survives a crash.
//!
//! The model is that of RocksDB's `FaultInjectionTestFS`: every file has its written
//! content and its synced content, and every directory its entries as they are and as
//! they were at its last sync. [`FaultyFs::power_cut`] puts everything back to its
//! synced state: bytes not covered by a `sync_data` are lost (or, in the tearing
//! modes, partly kept), and creations, renames and removals in a directory not synced
//! since are undone; a file no longer named anywhere is gone. Handles opened before a
//! cut fail afterwards, as the process that held them is dead.
//!
//! [`FaultyFs::crash_after`] cuts the power part way through a later operation (a
//! sync, a rotation, a recovery), and `fail_next_writes` / `fail_next_syncs` make
//! operations fail as a full or failing disk does.
//!
//! The state is shared (`Arc<Mutex<..>>`): clones of a `FaultyFs` are the same disk,
//! so a test "restarts" by opening a new log on a clone after a cut. All randomness
//! (how much of a write is kept) comes from one seeded [`XorShift`], so a seed replays
//! exactly.

use super::fs::{Fs, FsFile};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A small seeded pseudo-random generator (xorshift64*), enough for tests.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> XorShift {
        // Mixed so neighbouring seeds start far apart; never 0, which xorshift keeps.
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// What a power cut does to the bytes written since a file's last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// All of them are lost.
    Drop,
    /// A random prefix of them is kept (tearing the last write kept, and possibly
    /// keeping whole writes before it), as when some pages reached the disk.
    Tear,
    /// The file keeps a random part of its new length but those bytes read as zeros,
    /// as when the length reached the disk and the data did not.
    Zeros,
}

/// A simulated disk in memory; see the module documentation.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    rng: XorShift,
    /// Bumped by each power cut; handles from an earlier one are dead.
    generation: u64,
    next_id: u64,
    files: HashMap<u64, FileData>,
    /// Every directory that exists, by path. `/` always does.
    dirs: BTreeMap<PathBuf, Dir>,
    fail_writes: u32,
    fail_syncs: u32,
    /// Operations left before a crash, and what it does.
    crash_in: Option<(u64, Cut)>,
    /// Crashed, until `restart`.
    down: bool,
}

#[derive(Debug, Default)]
struct FileData {
    data: Vec<u8>,
    /// The content as of the last sync.
    durable: Vec<u8>,
    /// `data[..dirty_from]` is unchanged since the last sync.
    dirty_from: usize,
}

#[derive(Debug, Default)]
struct Dir {
    live: BTreeMap<OsString, Node>,
    durable: BTreeMap<OsString, Node>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no parent directory", path.display()),
        )),
    }
}

impl Default for FaultyFs {
    fn default() -> Self {
        FaultyFs::new(0)
    }
}

impl FaultyFs {
    /// An empty disk holding only `/`, with randomness from `seed`.
    pub fn new(seed: u64) -> FaultyFs {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        FaultyFs {
            state: Arc::new(Mutex::new(State {
                rng: XorShift::new(seed),
                generation: 0,
                next_id: 0,
                files: HashMap::new(),
                dirs,
                fail_writes: 0,
                fail_syncs: 0,
                crash_in: None,
                down: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves a state still worth
        // reading; the panic itself is what the test reports.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power: every file goes back to its synced content (see [`Cut`] for
    /// what happens to the rest), every directory to its entries at its last sync,
    /// and handles opened before now stop working.
    pub fn power_cut(&self, cut: Cut) {
        let mut s = self.lock();
        s.cut(cut);
        s.down = false;
    }

    /// Cuts the power (as [`power_cut`](Self::power_cut)) just before the `n`th
    /// operation from now that changes the disk or syncs (0: the next one), so a
    /// crash can land inside a sync, a rotation or a recovery. That operation and
    /// every one after it fail until [`restart`](Self::restart).
    pub fn crash_after(&self, n: u64, cut: Cut) {
        self.lock().crash_in = Some((n, cut));
    }

    /// Whether a [`crash_after`](Self::crash_after) has happened and the disk is
    /// waiting for [`restart`](Self::restart).
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Powers the disk back on after a crash, with no crash pending.
    pub fn restart(&self) {
        let mut s = self.lock();
        s.down = false;
        s.crash_in = None;
    }

    /// Makes the next `n` appends fail, each after writing a random prefix of its
    /// bytes (possibly none), as a full disk can.
    pub fn fail_next_writes(&self, n: u32) {
        self.lock().fail_writes = n;
    }

    /// Makes the next `n` file or directory syncs fail, leaving what they were to
    /// make durable as it was.
    pub fn fail_next_syncs(&self, n: u32) {
        self.lock().fail_syncs = n;
    }

    /// The current (not necessarily synced) content of the file at `path`.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        match s.lookup(path)? {
            Node::File(id) => s.files.get(&id).map(|f| f.data.clone()),
            Node::Dir => None,
        }
    }

    /// Replaces the content of the existing file at `path`, durably, as damage on
    /// the disk would.
    pub fn overwrite(&self, path: &Path, content: Vec<u8>) -> io::Result<()> {
        let mut s = self.lock();
        let Some(Node::File(id)) = s.lookup(path) else {
            return Err(not_found(path));
        };
        let f = s.files.get_mut(&id).ok_or_else(|| not_found(path))?;
        f.dirty_from = content.len();
        f.durable = content.clone();
        f.data = content;
        Ok(())
    }
}

impl State {
    fn cut(&mut self, cut: Cut) {
        let s = self;
        s.generation += 1;
        for dir in s.dirs.values_mut() {
            dir.live = dir.durable.clone();
        }
        // Parents sort before their children, so one pass settles which directories
        // are still named from `/`.
        let paths: Vec<PathBuf> = s.dirs.keys().cloned().collect();
        for path in paths {
            let alive = match split(&path) {
                Err(_) => true,
                Ok((parent, name)) => s
                    .dirs
                    .get(parent)
                    .is_some_and(|d| d.live.get(name) == Some(&Node::Dir)),
            };
            if !alive {
                s.dirs.remove(&path);
            }
        }
        let named: HashSet<u64> = s
            .dirs
            .values()
            .flat_map(|d| d.live.values())
            .filter_map(|n| match n {
                Node::File(id) => Some(*id),
                Node::Dir => None,
            })
            .collect();
        s.files.retain(|id, _| named.contains(id));
        let State { files, rng, .. } = s;
        let mut ids: Vec<u64> = files.keys().copied().collect();
        ids.sort_unstable(); // a HashMap's order is not seeded: keep the draws replayable
        for id in ids {
            let Some(f) = files.get_mut(&id) else {
                continue;
            };
            let appended = f.dirty_from >= f.durable.len() && f.data.len() > f.durable.len();
            let mut data = f.durable.clone();
            if appended {
                let extra = &f.data[f.durable.len()..];
                let keep = rng.below(extra.len() as u64 + 1) as usize;
                match cut {
                    Cut::Drop => {}
                    Cut::Tear => data.extend_from_slice(&extra[..keep]),
                    Cut::Zeros => data.resize(data.len() + keep, 0),
                }
            }
            f.dirty_from = data.len();
            f.durable = data.clone();
            f.data = data;
        }
    }

    /// Fails while the power is off; counts down to a pending crash.
    fn tick(&mut self) -> io::Result<()> {
        self.up()?;
        match &mut self.crash_in {
            Some((0, cut)) => {
                let cut = *cut;
                self.crash_in = None;
                self.cut(cut);
                self.down = true;
                self.up()
            }
            Some((n, _)) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn up(&self) -> io::Result<()> {
        if self.down {
            return Err(io::Error::other("the power is off"));
        }
        Ok(())
    }

    fn lookup(&self, path: &Path) -> Option<Node> {
        if path == Path::new("/") {
            return Some(Node::Dir);
        }
        let (parent, name) = split(path).ok()?;
        self.dirs.get(parent)?.live.get(name).copied()
    }

    fn dir_mut(&mut self, path: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(path).ok_or_else(|| not_found(path))
    }

    fn file_mut(&mut self, handle: &FaultyFile) -> io::Result<&mut FileData> {
        self.up()?;
        if handle.generation != self.generation {
            return Err(io::Error::other("file handle from before a power cut"));
        }
        self.files
            .get_mut(&handle.id)
            .ok_or_else(|| io::Error::other("file lost"))
    }

    fn take_sync_fault(&mut self) -> io::Result<()> {
        if self.fail_syncs > 0 {
            self.fail_syncs -= 1;
            return Err(io::Error::other("injected sync failure"));
        }
        Ok(())
    }
}

/// An open file of a [`FaultyFs`].
#[derive(Debug)]
pub struct FaultyFile {
    state: Arc<Mutex<State>>,
    id: u64,
    generation: u64,
}

impl FaultyFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Fs for FaultyFs {
    type File = FaultyFile;

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        s.up()?;
        Ok(s.lookup(path).is_some())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let mut missing = Vec::new();
        let mut p = path;
        while s.lookup(p).is_none() {
            missing.push(p.to_path_buf());
            let (parent, _) = split(p)?;
            p = parent;
        }
        if s.lookup(p) != Some(Node::Dir) {
            return Err(io::Error::other(format!(
                "{}: not a directory",
                p.display()
            )));
        }
        for dir in missing.into_iter().rev() {
            let (parent, name) = split(&dir)?;
            s.dir_mut(parent)?.live.insert(name.to_owned(), Node::Dir);
            s.dirs.insert(dir, Dir::default());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let s = self.lock();
        s.up()?;
        let d = s.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.live.keys().cloned().collect())
    }

    fn open(&self, path: &Path) -> io::Result<FaultyFile> {
        let s = self.lock();
        s.up()?;
        match s.lookup(path) {
            Some(Node::File(id)) => Ok(FaultyFile {
                state: self.state.clone(),
                id,
                generation: s.generation,
            }),
            Some(Node::Dir) => Err(io::Error::other(format!("{}: a directory", path.display()))),
            None => Err(not_found(path)),
        }
    }

    fn create_new(&self, path: &Path) -> io::Result<FaultyFile> {
        let mut s = self.lock();
        s.tick()?;
        let (parent, name) = split(path)?;
        if s.lookup(path).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", path.display()),
            ));
        }
        let id = s.next_id;
        s.dir_mut(parent)?
            .live
            .insert(name.to_owned(), Node::File(id));
        s.next_id += 1;
        s.files.insert(id, FileData::default());
        Ok(FaultyFile {
            state: self.state.clone(),
            id,
            generation: s.generation,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let Some(node @ Node::File(_)) = s.lookup(from) else {
            return Err(not_found(from));
        };
        let (to_parent, to_name) = split(to)?;
        if s.lookup(to) == Some(Node::Dir) || !s.dirs.contains_key(to_parent) {
            return Err(io::Error::other(format!(
                "cannot rename to {}",
                to.display()
            )));
        }
        let (from_parent, from_name) = split(from)?;
        s.dir_mut(from_parent)?.live.remove(from_name);
        s.dir_mut(to_parent)?.live.insert(to_name.to_owned(), node);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let Some(Node::File(_)) = s.lookup(path) else {
            return Err(not_found(path));
        };
        let (parent, name) = split(path)?;
        s.dir_mut(parent)?.live.remove(name);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.take_sync_fault()?;
        let d = s.dir_mut(dir)?;
        d.durable = d.live.clone();
        Ok(())
    }
}

impl FsFile for FaultyFile {
    fn size(&self) -> io::Result<u64> {
        let mut s = self.lock();
        Ok(s.file_mut(self)?.data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut s = self.lock();
        let data = &s.file_mut(self)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| data.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let fail = s.fail_writes > 0;
        let keep = if fail {
            s.fail_writes -= 1;
            s.rng.below(buf.len() as u64 + 1) as usize
        } else {
            buf.len()
        };
        let f = s.file_mut(self)?;
        f.dirty_from = f.dirty_from.min(f.data.len());
        f.data.extend_from_slice(&buf[..keep]);
        if fail {
            return Err(io::Error::other("injected write failure"));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.take_sync_fault()?;
        let f = s.file_mut(self)?;
        let from = f.dirty_from.min(f.durable.len());
        f.durable.truncate(from);
        f.durable.extend_from_slice(&f.data[from..]);
        f.dirty_from = f.data.len();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let f = s.file_mut(self)?;
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        f.dirty_from = f.dirty_from.min(len).min(f.data.len());
        f.data.resize(len, 0);
        Ok(())
    }
}
