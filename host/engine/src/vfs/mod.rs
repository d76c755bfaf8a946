//! The file-system seam.
//!
//! Every byte the engine persists goes through [`Vfs`] and [`VFile`]. Production uses
//! [`StdVfs`]; tests use [`SimVfs`], which keeps separate volatile and durable images so it
//! can simulate a power cut at any write or sync point and inject I/O errors.
//!
//! The engine itself needs only what an object store offers: [`Vfs::put_new`] (create a file
//! with given bytes, durably, failing if it exists: the commit point), whole or ranged reads
//! of files that never change once created, listing and removal. It never rewrites or renames
//! published data and never syncs a directory itself. How `put_new` is made durable and
//! exclusive on a local or shared file system (a temp file, `fdatasync`, an exclusive rename,
//! `fsync` of the directory) lives in its default implementation, built from the lower-level
//! calls below; an object store implements it as a conditional PUT. Nothing relies on mmap
//! or `O_APPEND`, so the same calls are meaningful on a shared file system.

mod sim;
mod std_fs;

pub use sim::{CrashMode, SimVfs};
pub use std_fs::StdVfs;

use std::io;
use std::path::Path;
use std::sync::Arc;

/// A file opened through a [`Vfs`]. All I/O is positional, so one handle is shared by threads.
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait VFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's contents and size durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file. Optional: file systems without it return `Unsupported`,
    /// and the engine then never reuses files.
    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file is shorter than expected"));
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// Reads the whole file.
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = self.len()? as usize;
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// The file-system operations the engine needs. Paths are absolute or relative to the process.
pub trait Vfs: Send + Sync + 'static {
    /// Creates a directory and its parents (like `mkdir -p`).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries in a directory, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>>;
    /// Opens an existing file for reading and writing. Optional (`Unsupported` by default):
    /// used to reuse dead commit files instead of creating new ones.
    fn open_rw(&self, _path: &Path) -> io::Result<Arc<dyn VFile>> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Creates a new, empty file for reading and writing; fails with `AlreadyExists` if present.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VFile>>;
    /// Adds a second name for `from` at `to`; fails with `AlreadyExists` if `to` exists.
    /// This is the engine's atomic, exclusive publication primitive.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Moves `from` to `to` atomically, failing with `AlreadyExists` if `to` exists. The
    /// default links and then removes `from`; file systems with an exclusive rename do it in
    /// one step.
    fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.link(from, to)?;
        // The temp name is garbage either way; failing to remove it is not a failed publish.
        let _ = self.remove_file(from);
        Ok(())
    }
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a name.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, links, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Creates `path` holding exactly `data`, durably, or fails with `AlreadyExists` if
    /// `path` exists. On `Ok` the file and its name survive a crash. `NotFound` means the work
    /// file vanished underneath (another process swept it): nothing was created. The default
    /// writes a work file `.<name>.<random>.tmp` beside `path`, syncs it, publishes it with
    /// [`Vfs::publish`] and syncs the directory. After a failure other than these two, the
    /// caller cannot know what reached the disk.
    fn put_new(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let f = self.create_new(&tmp)?;
        let written = f.write_at(data, 0).and_then(|()| f.sync_data());
        drop(f);
        if let Err(e) = written {
            let _ = self.remove_file(&tmp);
            // A vanished work file is a sweep, not a failed write.
            return Err(if e.kind() == io::ErrorKind::NotFound { io::Error::other(e) } else { e });
        }
        if let Err(e) = self.publish(&tmp, path) {
            let _ = self.remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir(dir)
    }

    /// Makes sure an existing name survives a crash (for a name whose creation reported
    /// `AlreadyExists` although it was ours). The default syncs the parent directory.
    fn persist_name(&self, path: &Path) -> io::Result<()> {
        self.sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Takes an advisory lock on `path` (created if missing), shared or exclusive, waiting
    /// for it or not. `Ok(None)`: someone else holds a conflicting lock. The lock lasts as
    /// long as the returned guard. Used only to tell embedded and cluster users of one folder
    /// apart, never for commit safety; the default (for simulated file systems) always grants.
    fn lock_file(&self, _path: &Path, _exclusive: bool, _wait: bool) -> io::Result<Option<FileLock>> {
        Ok(Some(FileLock(Box::new(()))))
    }
}

/// A held advisory lock; released on drop.
pub struct FileLock(pub Box<dyn std::any::Any + Send + Sync>);
