//! The disk's raw durable-write rate, measured in the benchmark folder in the same run: the
//! physical limit that no engine's single-item commits can beat, since each durable commit
//! needs at least one flush. On a shared virtual disk this rate moves a lot from run to run,
//! so it is only meaningful next to figures measured at the same time.

use anyhow::{Context, Result};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest probe.
const MAX_TIME: Duration = Duration::from_secs(1);
/// Most flushes in a probe.
const MAX_ITERS: u32 = 2_000;

/// Writes 4 KiB at offset 0 and `fdatasync`s, in a loop for about a second or 2,000 times,
/// whichever comes first; returns flushes per second.
pub fn probe(dir: &Path) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let buf = [0x5au8; 4096];
    // The first write allocates the block; measure overwrites only.
    f.write_all_at(&buf, 0).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))?;
    let t = Instant::now();
    let mut n = 0;
    while n < MAX_ITERS && t.elapsed() < MAX_TIME {
        f.write_all_at(&buf, 0)
            .and_then(|()| f.sync_data())
            .with_context(|| format!("cannot write and sync {}", path.display()))?;
        n += 1;
    }
    let rate = f64::from(n) / t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    Ok(rate)
}

/// Whether `dir` is on tmpfs (where fsync is free and durable figures mean nothing).
pub fn is_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == TMPFS_MAGIC
    }
}
