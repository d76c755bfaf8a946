//! [`Vfs`] over the operating system's file system.

use super::{FileLock, VFile, Vfs};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The real file system (POSIX semantics; `fdatasync` for durability).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdVfs;

struct StdFile(File);

impl VFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Vfs for StdVfs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Some(name) = entry?.file_name().to_str() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        Ok(Arc::new(StdFile(File::open(path)?)))
    }
    fn open_rw(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        Ok(Arc::new(StdFile(OpenOptions::new().read(true).write(true).open(path)?)))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Arc::new(StdFile(f)))
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }
    fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call;
        // renameat2 does not retain them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Not supported here (old kernel, NFS, some FUSE): link, then unlink.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                fs::hard_link(from, to)?;
                let _ = fs::remove_file(from);
                Ok(())
            }
            _ => Err(e),
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn lock_file(&self, path: &Path, exclusive: bool, wait: bool) -> io::Result<Option<FileLock>> {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let got = match (exclusive, wait) {
            (true, true) => f.lock().map(|_| true),
            (false, true) => f.lock_shared().map(|_| true),
            (true, false) => try_result(f.try_lock()),
            (false, false) => try_result(f.try_lock_shared()),
        }?;
        Ok(got.then(|| FileLock(Box::new(f))))
    }
}

fn try_result(r: Result<(), std::fs::TryLockError>) -> io::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
