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

    /// Removes temp files that stayed in `tmp/` for [`crate::DbOptions::stale_tmp_after`], as
    /// measured by this process's own clock between two sweeps. A writer's temp file lives for
    /// one commit; one still there that long later belongs to a dead (or very paused) writer.
    /// Removing a paused writer's file only makes its publication fail and retry.
    pub(crate) fn sweep_tmp(&self) -> Result<()> {
        let dir = self.layout.tmp();
        let names = self.vfs.list_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mine = format!("{:016x}-", self.writer);
        let stale: Vec<String> = {
            let mut seen = self.tmp_seen.seen.lock();
            let now = Instant::now();
            seen.retain(|n, _| names.contains(n));
            names
                .into_iter()
                .filter(|n| n.ends_with(".tmp") && !n.starts_with(&mine))
                .filter(|n| now.duration_since(*seen.entry(n.clone()).or_insert(now)) >= self.opts.stale_tmp_after)
                .collect()
        };
        for n in stale {
            let p = dir.join(&n);
            match self.vfs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
            self.tmp_seen.seen.lock().remove(&n);
        }
        Ok(())
    }
}

/// When this process first saw each foreign temp file.
#[derive(Default)]
pub(crate) struct TmpSweep {
    seen: Mutex<HashMap<String, Instant>>,
}

/// Default for [`crate::DbOptions::stale_tmp_after`].
pub(crate) const STALE_TMP_AFTER: Duration = Duration::from_secs(600);
