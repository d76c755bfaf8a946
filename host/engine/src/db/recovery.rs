//! Recovery, which runs on every open, and the sweep of dead writers' temp files.
//!
//! Because a published commit is always complete (it was synced before its name existed),
//! recovery never undoes anything: it loads the newest checkpoint, catches up, and refuses a
//! gap that nothing explains.

use super::DbInner;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl DbInner {
    /// Newest checkpoint, then every later commit.
    pub(super) fn recover(&self) -> Result<()> {
        let _apply = self.apply_lock.lock();
        if self.newest_checkpoint()?.is_some() {
            self.load_newest_checkpoint()?;
        }
        self.catch_up_locked()?;
        // A commit file beyond the next number means the next one was lost, unless it is being
        // written right now or a checkpoint covers it. The order of the three looks matters:
        // a file listed first was published after the next number existed; if that number is
        // gone afterwards, a checkpoint covering it existed before, and the last look sees it.
        loop {
            let seq = self.current().seq;
            let commits = self.list_seqs(&self.layout.commits(), "commit")?;
            let Some(later) = commits.into_iter().find(|&s| s > seq + 1) else { return Ok(()) };
            let next = self.layout.commit(seq + 1);
            if self.vfs.exists(&next).map_err(|e| Error::io(&next, e))?
                || self.newest_checkpoint()?.is_some_and(|c| c > seq)
            {
                self.catch_up_locked()?;
                continue;
            }
            return Err(Error::corrupt(next, format!("commit file is missing, but commit {later} exists")));
        }
    }

    /// Removes work files (`*.tmp`, written by [`crate::vfs::Vfs::put_new`] beside the file
    /// being created, or by older versions in `tmp/`) that this process has seen for
    /// [`crate::DbOptions::stale_tmp_after`], measured by its own clock between two sweeps. A
    /// work file lives for one publication; one still there that long later belongs to a dead
    /// (or very paused) writer. Removing a paused writer's file only makes its publication
    /// fail and retry. Runs when no publication of this handle is in flight.
    pub(crate) fn sweep_tmp(&self) -> Result<()> {
        let mut present = Vec::new();
        for dir in [self.layout.commits(), self.layout.checkpoints(), self.layout.tmp(), self.layout.pending()] {
            let names = self.vfs.list_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            // A pending batch also lives for one publication (`contribute.rs`); one left that
            // long belongs to a dead contributor, or to a paused one that publishes it itself.
            present.extend(
                names.into_iter().filter(|n| n.ends_with(".tmp") || n.ends_with(".batch")).map(|n| dir.join(n)),
            );
        }
        let stale: Vec<PathBuf> = {
            let mut seen = self.tmp_seen.seen.lock();
            let now = Instant::now();
            seen.retain(|p, _| present.contains(p));
            present
                .into_iter()
                .filter(|p| now.duration_since(*seen.entry(p.clone()).or_insert(now)) >= self.opts.stale_tmp_after)
                .collect()
        };
        for p in stale {
            match self.vfs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
            self.tmp_seen.seen.lock().remove(&p);
        }
        Ok(())
    }
}

/// When this process first saw each foreign temp file.
#[derive(Default)]
pub(crate) struct TmpSweep {
    seen: Mutex<HashMap<PathBuf, Instant>>,
}

/// Default for [`crate::DbOptions::stale_tmp_after`].
pub(crate) const STALE_TMP_AFTER: Duration = Duration::from_secs(600);
