//! [`SimVfs`]: an in-memory [`Vfs`] that simulates power loss and I/O errors.
//!
//! Every file is an inode with two images: *volatile* (what reads see, like the page cache)
//! and *durable* (what the disk holds). Writes change only the volatile image and are queued
//! as pending; `sync_data` applies the queue to the durable image. Each directory likewise has
//! a volatile and a durable view of its entries, and `sync_dir` copies one onto the other.
//! [`SimVfs::crash_image`] builds the file system a reboot after power loss would find.
//!
//! Simplifications, acceptable because the engine does not rely on the real behaviour:
//! - directories made by `create_dir_all` are durable at once and are never removed;
//! - handles from [`Vfs::open`] are read-only (`write_at` fails with `PermissionDenied`),
//!   like `File::open`; `sync_data` on them works;
//! - a failed `sync_dir` has no effect: its changes stay pending and may still be persisted;
//! - a failed `sync_data` drops the inode's pending writes from what can become durable
//!   (Linux marks the pages clean after a writeback error), so they appear in no crash image,
//!   not even [`CrashMode::KeepAll`]; reads still see them until the crash.

use super::{VFile, Vfs};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Torn writes are decided per aligned sector of this size.
const SECTOR: u64 = 512;

type Ino = u64;

/// What [`SimVfs::crash_image`] assumes reached the disk besides the synced state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// Nothing: exactly the synced file contents and directory entries survive.
    DropUnsynced,
    /// Everything: all unsynced writes and directory changes survive (except writes that a
    /// failed `sync_data` dropped).
    KeepAll,
    /// A seeded mix: each directory keeps either its synced or its current entries, and each
    /// 512-byte-aligned sector of each unsynced write is applied, lost, or replaced by random
    /// bytes. Garbage covers only the written bytes, so synced data is never damaged.
    Torn,
}

#[derive(Default)]
struct Inode {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order: the state a crash may or may not have persisted.
    pending: Vec<(u64, Vec<u8>)>,
    /// A `set_len` since the last sync, applied after the pending writes (the engine resizes
    /// only after writing).
    pending_len: Option<usize>,
    /// Open handles; an inode with no names (in either view) and no handles is freed.
    open: usize,
}

#[derive(Default, Clone)]
struct Dir {
    volatile: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

#[derive(Default)]
struct State {
    // BTreeMaps, not HashMaps, so torn crash images are reproducible from the seed alone.
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    op_count: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fail_next_sync: bool,
    /// The next `link` succeeds but reports `AlreadyExists` (an NFS retransmission).
    echo_next_link: bool,
}

fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

fn fsync_error() -> io::Error {
    io::Error::other("simulated fsync failure")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

fn error(kind: io::ErrorKind, path: &Path, what: &str) -> io::Error {
    io::Error::new(kind, format!("{}: {what}", path.display()))
}

/// Makes `a/./b`, `a//b` and `a/b/` the same key.
fn normalise(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// Splits a path into its normalised parent directory and its final name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let path = normalise(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| error(io::ErrorKind::InvalidInput, &path, "not a UTF-8 file name"))?;
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((parent, name.to_owned()))
}

/// Bounds-checks a write so the simulator never attempts an absurd allocation silently.
fn write_end(offset: u64, len: usize) -> io::Result<usize> {
    usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(len))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write offset out of range"))
}

/// Writes `data` at `offset`, zero-filling any gap, as `pwrite` past the end does.
/// Callers have validated the range with [`write_end`] when it was first written.
fn write_into(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[start..end].copy_from_slice(data);
}

/// Applies one unsynced write sector by sector, each one persisted, lost or garbled.
fn torn_write(content: &mut Vec<u8>, offset: u64, data: &[u8], rng: &mut StdRng) {
    let mut pos = 0;
    while pos < data.len() {
        let at = offset + pos as u64;
        let room = (SECTOR - at % SECTOR) as usize;
        let chunk = &data[pos..data.len().min(pos + room)];
        match rng.random_range(0..3u8) {
            0 => write_into(content, at, chunk),
            1 => {}
            _ => {
                let garbage: Vec<u8> = chunk.iter().map(|_| rng.random::<u8>()).collect();
                write_into(content, at, &garbage);
            }
        }
        pos += chunk.len();
    }
}

impl State {
    fn new() -> State {
        let mut state = State::default();
        // The roots of relative and absolute paths always exist.
        state.dirs.insert(PathBuf::new(), Dir::default());
        state.dirs.insert(PathBuf::from("/"), Dir::default());
        state
    }

    /// Gate for every counted operation: decides whether the power is still on.
    fn begin_op(&mut self) -> io::Result<()> {
        if self.crashed || self.crash_at == Some(self.op_count) {
            self.crashed = true;
            return Err(crash_error());
        }
        self.op_count += 1;
        Ok(())
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains_key(&normalise(path))
    }

    fn dir_mut(&mut self, path: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(path).ok_or_else(|| not_found(path))
    }

    /// The inode `path` names in the volatile namespace.
    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        if self.is_dir(path) {
            return Err(error(io::ErrorKind::IsADirectory, path, "is a directory"));
        }
        let (parent, name) = split(path)?;
        let dir = self.dirs.get(&parent).ok_or_else(|| not_found(path))?;
        dir.volatile.get(&name).copied().ok_or_else(|| not_found(path))
    }

    fn inode_mut(&mut self, ino: Ino) -> io::Result<&mut Inode> {
        // Unreachable while the bookkeeping is right; an error beats a panic in a test run.
        self.inodes.get_mut(&ino).ok_or_else(|| io::Error::other("simulated stale file handle"))
    }

    /// Frees the given inodes if nothing can reach them any more.
    fn collect(&mut self, candidates: impl IntoIterator<Item = Ino>) {
        for ino in candidates {
            let open = self.inodes.get(&ino).is_some_and(|i| i.open > 0);
            let named = || self.dirs.values().any(|d| d.volatile.values().chain(d.durable.values()).any(|&i| i == ino));
            if !open && !named() {
                self.inodes.remove(&ino);
            }
        }
    }
}

/// An in-memory file system with separate volatile and durable state, for crash and
/// fault-injection tests. Clones share the same file system.
#[derive(Clone)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

impl Default for SimVfs {
    fn default() -> SimVfs {
        SimVfs::new()
    }
}

impl fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimVfs")
            .field("dirs", &s.dirs.len())
            .field("inodes", &s.inodes.len())
            .field("op_count", &s.op_count)
            .field("crashed", &s.crashed)
            .finish()
    }
}

impl SimVfs {
    /// An empty file system containing only the roots `/` and `` (for relative paths).
    pub fn new() -> SimVfs {
        SimVfs { state: Arc::new(Mutex::new(State::new())) }
    }

    /// Counted operations attempted so far (`write_at`, `sync_data`, `create_new`, `link`,
    /// `rename`, `remove_file`, `sync_dir`), including ones that failed for ordinary reasons
    /// but not ones refused because of a simulated crash.
    pub fn op_count(&self) -> u64 {
        self.state.lock().op_count
    }

    /// Loses power after `n` more counted operations: the next op after those, and every later
    /// one, fails with "simulated crash" and has no effect. `crash_after(0)` fails the very next
    /// op. Reads keep seeing the volatile state; `create_dir_all` also fails once crashed.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.state.lock();
        s.crash_at = Some(s.op_count + n);
    }

    /// Makes the next `link` create the name and still report `AlreadyExists`, as a link
    /// retransmitted over NFS does after the first attempt succeeded.
    pub fn echo_next_link(&self) {
        self.state.lock().echo_next_link = true;
    }

    /// Makes the next `sync_data` or `sync_dir` fail with "simulated fsync failure". A failing
    /// `sync_data` also discards the inode's unsynced writes from what can ever become durable.
    pub fn fail_next_sync(&self) {
        self.state.lock().fail_next_sync = true;
    }

    /// Whether the simulated power loss has happened.
    pub fn is_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// A new, independent file system as found after power loss and reboot: the durable state
    /// plus whatever unsynced state `mode` (and, for [`CrashMode::Torn`], `seed`) lets through.
    /// It has no open handles, no fault injection armed and an op count of zero.
    pub fn crash_image(&self, mode: CrashMode, seed: u64) -> SimVfs {
        let s = self.state.lock();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = State { next_ino: s.next_ino, ..State::default() };
        for (path, dir) in &s.dirs {
            let entries = match mode {
                CrashMode::DropUnsynced => &dir.durable,
                CrashMode::KeepAll => &dir.volatile,
                CrashMode::Torn if dir.durable != dir.volatile && rng.random::<bool>() => &dir.volatile,
                CrashMode::Torn => &dir.durable,
            };
            out.dirs.insert(path.clone(), Dir { volatile: entries.clone(), durable: entries.clone() });
        }
        let live: BTreeSet<Ino> = out.dirs.values().flat_map(|d| d.durable.values().copied()).collect();
        for ino in live {
            let Some(inode) = s.inodes.get(&ino) else { continue };
            let mut content = inode.durable.clone();
            for (offset, data) in &inode.pending {
                match mode {
                    CrashMode::DropUnsynced => {}
                    CrashMode::KeepAll => write_into(&mut content, *offset, data),
                    CrashMode::Torn => torn_write(&mut content, *offset, data, &mut rng),
                }
            }
            if let Some(len) = inode.pending_len {
                let persisted = match mode {
                    CrashMode::DropUnsynced => false,
                    CrashMode::KeepAll => true,
                    CrashMode::Torn => rng.random::<bool>(),
                };
                if persisted {
                    content.resize(len, 0);
                }
            }
            out.inodes.insert(ino, Inode { volatile: content.clone(), durable: content, ..Inode::default() });
        }
        SimVfs { state: Arc::new(Mutex::new(out)) }
    }

    /// Sum of the current lengths of the files named under `dir`, recursively. A file with
    /// several names counts once; files with no name left (only open handles) do not count.
    pub fn total_bytes(&self, dir: &Path) -> u64 {
        let s = self.state.lock();
        let dir = normalise(dir);
        let inos: BTreeSet<Ino> = s
            .dirs
            .iter()
            .filter(|(path, _)| path.starts_with(&dir))
            .flat_map(|(_, d)| d.volatile.values().copied())
            .collect();
        inos.iter().filter_map(|i| s.inodes.get(i)).map(|i| i.volatile.len() as u64).sum()
    }

    /// XORs one byte of a file with `xor` in both the volatile and the durable image (and in
    /// any unsynced write covering it, so a later sync keeps the damage). Not a counted op and
    /// works even after a crash.
    pub fn corrupt_byte(&self, path: &Path, offset: u64, xor: u8) -> io::Result<()> {
        let mut s = self.state.lock();
        let ino = s.lookup(path)?;
        let inode = s.inode_mut(ino)?;
        let at = usize::try_from(offset)
            .ok()
            .filter(|&at| at < inode.volatile.len())
            .ok_or_else(|| error(io::ErrorKind::InvalidInput, path, "offset past end of file"))?;
        inode.volatile[at] ^= xor;
        if let Some(b) = inode.durable.get_mut(at) {
            *b ^= xor;
        }
        for (start, data) in &mut inode.pending {
            if let Some(b) = offset.checked_sub(*start).and_then(|i| data.get_mut(i as usize)) {
                *b ^= xor;
            }
        }
        Ok(())
    }

    /// Sets both the volatile and the durable length of a file, zero-filling if it grows.
    /// Unsynced writes are clipped too, so a later sync cannot regrow the file. Not counted.
    pub fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        let ino = s.lookup(path)?;
        let inode = s.inode_mut(ino)?;
        let new_len = write_end(len, 0)?;
        inode.volatile.resize(new_len, 0);
        inode.durable.resize(new_len, 0);
        inode.pending.retain_mut(|(start, data)| {
            let keep = *start < len;
            if keep {
                data.truncate((len - *start) as usize);
            }
            keep
        });
        Ok(())
    }

    /// Current (volatile) length of the file at `path`, or `None` if there is no such file.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let s = self.state.lock();
        let ino = s.lookup(path).ok()?;
        s.inodes.get(&ino).map(|i| i.volatile.len() as u64)
    }

    fn handle(&self, ino: Ino, writable: bool) -> Arc<dyn VFile> {
        Arc::new(SimFile { state: Arc::clone(&self.state), ino, writable })
    }
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        if s.crashed {
            return Err(crash_error());
        }
        let path = normalise(path);
        let mut ancestors: Vec<&Path> = path.ancestors().collect();
        ancestors.reverse();
        for dir in ancestors {
            if s.dirs.contains_key(dir) {
                continue;
            }
            if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
                && s.dirs.get(parent).is_some_and(|d| d.volatile.contains_key(name))
            {
                return Err(error(io::ErrorKind::AlreadyExists, dir, "a file exists with this name"));
            }
            s.dirs.insert(dir.to_path_buf(), Dir::default());
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = lock(&self.state);
        let path = normalise(path);
        let dir = s.dirs.get(&path).ok_or_else(|| not_found(&path))?;
        let mut names: Vec<String> = dir.volatile.keys().cloned().collect();
        let subdirs = s.dirs.keys().filter(|d| d.parent() == Some(path.as_path()));
        names.extend(subdirs.filter_map(|d| d.file_name()?.to_str().map(str::to_owned)));
        Ok(names)
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let mut s = lock(&self.state);
        let ino = s.lookup(path)?;
        s.inode_mut(ino)?.open += 1;
        drop(s);
        Ok(self.handle(ino, false))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let mut s = lock(&self.state);
        let ino = s.lookup(path)?;
        s.inode_mut(ino)?.open += 1;
        drop(s);
        Ok(self.handle(ino, true))
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        s.begin_op()?;
        if s.is_dir(path) {
            return Err(error(io::ErrorKind::AlreadyExists, path, "is a directory"));
        }
        let (parent, name) = split(path)?;
        let ino = s.next_ino;
        let dir = s.dirs.get_mut(&parent).ok_or_else(|| not_found(path))?;
        if dir.volatile.contains_key(&name) {
            return Err(error(io::ErrorKind::AlreadyExists, path, "file exists"));
        }
        dir.volatile.insert(name, ino);
        s.next_ino += 1;
        s.inodes.insert(ino, Inode { open: 1, ..Inode::default() });
        drop(guard);
        Ok(self.handle(ino, true))
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        let ino = s.lookup(from)?;
        if s.is_dir(to) {
            return Err(error(io::ErrorKind::AlreadyExists, to, "is a directory"));
        }
        let (parent, name) = split(to)?;
        let dir = s.dir_mut(&parent)?;
        if dir.volatile.contains_key(&name) {
            return Err(error(io::ErrorKind::AlreadyExists, to, "file exists"));
        }
        dir.volatile.insert(name, ino);
        if std::mem::take(&mut s.echo_next_link) {
            return Err(error(io::ErrorKind::AlreadyExists, to, "file exists (retransmitted link)"));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        let ino = s.lookup(from)?;
        if s.is_dir(to) {
            return Err(error(io::ErrorKind::IsADirectory, to, "is a directory"));
        }
        let (from_parent, from_name) = split(from)?;
        let (to_parent, to_name) = split(to)?;
        let replaced = s.dir_mut(&to_parent)?.volatile.get(&to_name).copied();
        if replaced == Some(ino) {
            // POSIX: two names of one file; rename does nothing.
            return Ok(());
        }
        s.dir_mut(&from_parent)?.volatile.remove(&from_name);
        s.dir_mut(&to_parent)?.volatile.insert(to_name, ino);
        s.collect(replaced);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        let ino = s.lookup(path)?;
        let (parent, name) = split(path)?;
        s.dir_mut(&parent)?.volatile.remove(&name);
        s.collect([ino]);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        let path = normalise(path);
        let dir = s.dir_mut(&path)?;
        let entries = dir.volatile.clone();
        if std::mem::take(&mut s.fail_next_sync) {
            return Err(fsync_error());
        }
        let dir = s.dir_mut(&path)?;
        let old = std::mem::replace(&mut dir.durable, entries);
        s.collect(old.into_values());
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = lock(&self.state);
        Ok(s.is_dir(path) || s.lookup(path).is_ok())
    }
}

/// Locks the file system for one operation, first giving a simulation's scheduler the chance
/// to run another simulated process (outside the lock, so nobody waits on it).
fn lock(state: &Mutex<State>) -> parking_lot::MutexGuard<'_, State> {
    crate::failpoint::hit("vfs");
    state.lock()
}

/// A handle on one inode; it stays usable after the inode loses all its names.
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
    writable: bool,
}

impl VFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = lock(&self.state);
        let data = &s.inode_mut(self.ino)?.volatile;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        write_end(offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let inode = s.inode_mut(self.ino)?;
        write_into(&mut inode.volatile, offset, buf);
        inode.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        let failed = std::mem::take(&mut s.fail_next_sync);
        let inode = s.inode_mut(self.ino)?;
        let pending = std::mem::take(&mut inode.pending);
        let pending_len = inode.pending_len.take();
        if failed {
            return Err(fsync_error());
        }
        for (offset, data) in pending {
            write_into(&mut inode.durable, offset, &data);
        }
        if let Some(len) = pending_len {
            inode.durable.resize(len, 0);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.begin_op()?;
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"));
        }
        let len = write_end(len, 0)?;
        let inode = s.inode_mut(self.ino)?;
        inode.volatile.resize(len, 0);
        inode.pending_len = Some(len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = lock(&self.state);
        Ok(s.inode_mut(self.ino)?.volatile.len() as u64)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut s = self.state.lock();
        if let Some(inode) = s.inodes.get_mut(&self.ino) {
            inode.open = inode.open.saturating_sub(1);
        }
        s.collect([self.ino]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    /// A fresh file system with `/db` in it.
    fn fs() -> SimVfs {
        let vfs = SimVfs::new();
        vfs.create_dir_all(p("/db")).unwrap();
        vfs
    }

    fn write_file(vfs: &SimVfs, path: &str, data: &[u8]) -> Arc<dyn VFile> {
        let f = vfs.create_new(p(path)).unwrap();
        f.write_at(data, 0).unwrap();
        f
    }

    fn read(vfs: &SimVfs, path: &str) -> Option<Vec<u8>> {
        vfs.open(p(path)).ok().map(|f| f.read_all().unwrap())
    }

    /// Every named file and its contents, to compare whole images.
    fn snapshot(vfs: &SimVfs) -> BTreeMap<PathBuf, Vec<u8>> {
        let s = vfs.state.lock();
        let mut out = BTreeMap::new();
        for (dir, d) in &s.dirs {
            for (name, ino) in &d.volatile {
                out.insert(dir.join(name), s.inodes[ino].volatile.clone());
            }
        }
        out
    }

    fn sorted(mut names: Vec<String>) -> Vec<String> {
        names.sort();
        names
    }

    #[test]
    fn is_send_sync_and_clones_share_state() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<SimVfs>();
        let vfs = fs();
        let other = vfs.clone();
        write_file(&vfs, "/db/a", b"x");
        assert_eq!(read(&other, "/db/a").unwrap(), b"x");
        assert_eq!(other.op_count(), 2);
    }

    #[test]
    fn directories_and_listing() {
        let vfs = fs();
        let err = vfs.create_new(p("/nope/a")).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(vfs.list_dir(p("/nope")).unwrap_err().kind(), io::ErrorKind::NotFound);
        vfs.create_dir_all(p("/db/sub/deeper")).unwrap();
        write_file(&vfs, "/db/./a", b"1");
        assert_eq!(sorted(vfs.list_dir(p("/db/")).unwrap()), ["a", "sub"]);
        assert_eq!(vfs.list_dir(p("/db/sub")).unwrap(), ["deeper"]);
        assert!(vfs.exists(p("/db/sub")).unwrap());
        assert!(vfs.exists(p("/db/a")).unwrap());
        assert!(!vfs.exists(p("/db/b")).unwrap());
        assert_eq!(vfs.create_dir_all(p("/db/a")).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(vfs.create_new(p("/db/sub")).err().unwrap().kind(), io::ErrorKind::AlreadyExists);
        // Directories are durable without any sync.
        let image = vfs.crash_image(CrashMode::DropUnsynced, 0);
        assert!(image.exists(p("/db/sub/deeper")).unwrap());
        assert!(!image.exists(p("/db/a")).unwrap());
    }

    #[test]
    fn create_new_and_link_are_exclusive() {
        let vfs = fs();
        write_file(&vfs, "/db/a", b"aaa");
        write_file(&vfs, "/db/b", b"bbb");
        assert_eq!(vfs.create_new(p("/db/a")).err().unwrap().kind(), io::ErrorKind::AlreadyExists);
        vfs.link(p("/db/a"), p("/db/c")).unwrap();
        assert_eq!(vfs.link(p("/db/b"), p("/db/c")).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(vfs.link(p("/db/zz"), p("/db/d")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(vfs.link(p("/db/a"), p("/x/d")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(read(&vfs, "/db/c").unwrap(), b"aaa");
    }

    #[test]
    fn hard_links_share_one_inode() {
        let vfs = fs();
        let f = write_file(&vfs, "/db/a", b"hello");
        vfs.link(p("/db/a"), p("/db/b")).unwrap();
        f.write_at(b"J", 0).unwrap();
        assert_eq!(read(&vfs, "/db/b").unwrap(), b"Jello");
        vfs.remove_file(p("/db/a")).unwrap();
        assert_eq!(read(&vfs, "/db/b").unwrap(), b"Jello");
        assert_eq!(vfs.total_bytes(p("/db")), 5);
        vfs.link(p("/db/b"), p("/db/c")).unwrap();
        assert_eq!(vfs.total_bytes(p("/db")), 5, "a file with two names counts once");
        // Renaming onto another name of the same file changes nothing (POSIX).
        vfs.rename(p("/db/b"), p("/db/c")).unwrap();
        assert_eq!(sorted(vfs.list_dir(p("/db")).unwrap()), ["b", "c"]);
    }

    #[test]
    fn remove_while_open_keeps_the_handle_working() {
        let vfs = fs();
        let f = write_file(&vfs, "/db/a", b"data");
        let reader = vfs.open(p("/db/a")).unwrap();
        vfs.remove_file(p("/db/a")).unwrap();
        assert!(!vfs.exists(p("/db/a")).unwrap());
        assert_eq!(vfs.open(p("/db/a")).err().unwrap().kind(), io::ErrorKind::NotFound);
        assert_eq!(vfs.remove_file(p("/db/a")).unwrap_err().kind(), io::ErrorKind::NotFound);
        f.write_at(b"!", 4).unwrap();
        f.sync_data().unwrap();
        assert_eq!(reader.read_all().unwrap(), b"data!");
        assert_eq!(vfs.state.lock().inodes.len(), 1);
        drop(f);
        drop(reader);
        assert!(vfs.state.lock().inodes.is_empty(), "unnamed, unopened inode is freed");
    }

    #[test]
    fn open_handles_are_read_only() {
        let vfs = fs();
        write_file(&vfs, "/db/a", b"abc");
        let f = vfs.open(p("/db/a")).unwrap();
        assert_eq!(f.write_at(b"x", 0).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        let mut buf = [0u8; 8];
        assert_eq!(f.read_at(&mut buf, 1).unwrap(), 2);
        assert_eq!(f.read_at(&mut buf, 100).unwrap(), 0);
        assert_eq!(f.read_exact_at(&mut buf, 0).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        f.sync_data().unwrap();
    }

    #[test]
    fn unsynced_data_is_lost_on_drop_unsynced() {
        let vfs = fs();
        let f = write_file(&vfs, "/db/a", b"payload");
        vfs.sync_dir(p("/db")).unwrap();
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").unwrap(), b"");
        assert_eq!(read(&vfs.crash_image(CrashMode::KeepAll, 0), "/db/a").unwrap(), b"payload");
        f.sync_data().unwrap();
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").unwrap(), b"payload");
    }

    #[test]
    fn link_is_lost_until_the_directory_is_synced() {
        let vfs = fs();
        let f = write_file(&vfs, "/db/tmp", b"commit");
        f.sync_data().unwrap();
        vfs.link(p("/db/tmp"), p("/db/final")).unwrap();
        let dropped = vfs.crash_image(CrashMode::DropUnsynced, 0);
        assert!(read(&dropped, "/db/final").is_none());
        assert!(dropped.list_dir(p("/db")).unwrap().is_empty());
        assert_eq!(read(&vfs.crash_image(CrashMode::KeepAll, 0), "/db/final").unwrap(), b"commit");
        vfs.sync_dir(p("/db")).unwrap();
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/final").unwrap(), b"commit");
    }

    #[test]
    fn rename_replaces_and_is_durable_after_sync_dir() {
        let vfs = fs();
        write_file(&vfs, "/db/ckpt", b"old").sync_data().unwrap();
        vfs.sync_dir(p("/db")).unwrap();
        write_file(&vfs, "/db/ckpt.tmp", b"new").sync_data().unwrap();
        vfs.rename(p("/db/ckpt.tmp"), p("/db/ckpt")).unwrap();
        assert_eq!(read(&vfs, "/db/ckpt").unwrap(), b"new");
        // Before sync_dir the replaced file is still what the disk names.
        let before = vfs.crash_image(CrashMode::DropUnsynced, 0);
        assert_eq!(read(&before, "/db/ckpt").unwrap(), b"old");
        vfs.sync_dir(p("/db")).unwrap();
        let after = vfs.crash_image(CrashMode::DropUnsynced, 0);
        assert_eq!(after.list_dir(p("/db")).unwrap(), ["ckpt"]);
        assert_eq!(read(&after, "/db/ckpt").unwrap(), b"new");
        assert_eq!(vfs.state.lock().inodes.len(), 1, "the replaced inode is freed");
        assert_eq!(vfs.rename(p("/db/nope"), p("/db/x")).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn crash_after_stops_all_effects() {
        let vfs = fs();
        vfs.crash_after(2);
        let f = write_file(&vfs, "/db/a", b"one");
        assert_eq!(vfs.op_count(), 2);
        assert!(!vfs.is_crashed());
        let err = f.sync_data().unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), (io::ErrorKind::Other, "simulated crash"));
        assert!(vfs.is_crashed());
        assert!(f.write_at(b"two", 0).is_err());
        assert!(vfs.link(p("/db/a"), p("/db/b")).is_err());
        assert!(vfs.sync_dir(p("/db")).is_err());
        assert!(vfs.create_dir_all(p("/db/sub")).is_err());
        assert_eq!(vfs.op_count(), 2);
        // Reads still see the volatile state; the disk saw nothing.
        assert_eq!(read(&vfs, "/db/a").unwrap(), b"one");
        assert!(!vfs.exists(p("/db/b")).unwrap());
        assert!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").is_none());
        let image = vfs.crash_image(CrashMode::KeepAll, 0);
        assert!(!image.is_crashed());
        assert_eq!(image.op_count(), 0);
        assert_eq!(read(&image, "/db/a").unwrap(), b"one");
        write_file(&image, "/db/c", b"alive");
    }

    #[test]
    fn crash_after_zero_fails_the_next_op() {
        let vfs = fs();
        write_file(&vfs, "/db/a", b"x");
        vfs.crash_after(0);
        assert_eq!(vfs.remove_file(p("/db/a")).unwrap_err().to_string(), "simulated crash");
        assert!(vfs.exists(p("/db/a")).unwrap());
    }

    #[test]
    fn failed_sync_drops_unsynced_writes_for_good() {
        let vfs = fs();
        let f = write_file(&vfs, "/db/a", b"aaa");
        vfs.sync_dir(p("/db")).unwrap();
        vfs.fail_next_sync();
        let err = f.sync_data().unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), (io::ErrorKind::Other, "simulated fsync failure"));
        assert_eq!(read(&vfs, "/db/a").unwrap(), b"aaa", "the page cache still has it");
        f.write_at(b"bbb", 3).unwrap();
        f.sync_data().unwrap();
        for mode in [CrashMode::DropUnsynced, CrashMode::KeepAll, CrashMode::Torn] {
            assert_eq!(read(&vfs.crash_image(mode, 1), "/db/a").unwrap(), b"\0\0\0bbb", "{mode:?}");
        }
    }

    #[test]
    fn failed_sync_dir_fails_once_and_keeps_changes_pending() {
        let vfs = fs();
        write_file(&vfs, "/db/a", b"x");
        vfs.fail_next_sync();
        assert_eq!(vfs.sync_dir(p("/db")).unwrap_err().to_string(), "simulated fsync failure");
        assert!(!vfs.crash_image(CrashMode::DropUnsynced, 0).exists(p("/db/a")).unwrap());
        vfs.sync_dir(p("/db")).unwrap();
        assert!(vfs.crash_image(CrashMode::DropUnsynced, 0).exists(p("/db/a")).unwrap());
    }

    #[test]
    fn torn_images_are_deterministic_and_bounded() {
        let vfs = fs();
        vfs.create_dir_all(p("/db/other")).unwrap();
        let old: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let f = write_file(&vfs, "/db/a", &old);
        f.sync_data().unwrap();
        vfs.sync_dir(p("/db")).unwrap();
        f.write_at(&[0xEE; 3000], 700).unwrap();
        write_file(&vfs, "/db/other/b", b"maybe");
        vfs.link(p("/db/a"), p("/db/a2")).unwrap();

        let image = |seed| snapshot(&vfs.crash_image(CrashMode::Torn, seed));
        assert_eq!(image(7), image(7));
        let images: Vec<_> = (0..16).map(image).collect();
        assert!(images.iter().any(|i| *i != images[0]), "seeds vary the outcome");
        let new_a = read(&vfs, "/db/a").unwrap();
        for img in &images {
            let a = &img[Path::new("/db/a")];
            assert!(a.len() >= old.len() && a.len() <= new_a.len());
            // The synced prefix that no unsynced write touched is intact.
            assert_eq!(a[..700], old[..700]);
            if let Some(a2) = img.get(Path::new("/db/a2")) {
                assert_eq!(a2, a, "hard links see one torn inode");
            }
            if let Some(b) = img.get(Path::new("/db/other/b")) {
                assert!(b.len() <= 5);
            }
        }
        let garbled = |img: &BTreeMap<PathBuf, Vec<u8>>| {
            let a = &img[Path::new("/db/a")];
            (700..a.len()).any(|i| a[i] != 0xEE && old.get(i) != Some(&a[i]))
        };
        assert!(images.iter().any(garbled), "some sector is written as garbage");
    }

    #[test]
    fn test_helpers_corrupt_truncate_and_measure() {
        let vfs = fs();
        vfs.create_dir_all(p("/db/sub")).unwrap();
        let f = write_file(&vfs, "/db/a", b"abcd");
        f.sync_data().unwrap();
        vfs.sync_dir(p("/db")).unwrap();
        write_file(&vfs, "/db/sub/b", b"123456");
        write_file(&vfs, "/elsewhere", b"zz");
        assert_eq!(vfs.total_bytes(p("/db")), 10);
        assert_eq!(vfs.file_len(p("/db/sub/b")), Some(6));
        assert_eq!(vfs.file_len(p("/db/none")), None);

        vfs.corrupt_byte(p("/db/a"), 1, 0x20).unwrap();
        assert_eq!(read(&vfs, "/db/a").unwrap(), b"aBcd");
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").unwrap(), b"aBcd");
        assert_eq!(vfs.corrupt_byte(p("/db/a"), 4, 1).unwrap_err().kind(), io::ErrorKind::InvalidInput);

        f.write_at(b"XYZ", 2).unwrap();
        vfs.corrupt_byte(p("/db/a"), 3, 0x20).unwrap();
        f.sync_data().unwrap();
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").unwrap(), b"aBXyZ");

        f.write_at(b"tail", 5).unwrap();
        vfs.truncate(p("/db/a"), 3).unwrap();
        f.sync_data().unwrap();
        assert_eq!(read(&vfs, "/db/a").unwrap(), b"aBX");
        assert_eq!(read(&vfs.crash_image(CrashMode::DropUnsynced, 0), "/db/a").unwrap(), b"aBX");
        vfs.truncate(p("/db/a"), 5).unwrap();
        assert_eq!(vfs.file_len(p("/db/a")), Some(5));
    }
}
