//! Reclamation: deleting commit files that no reachable state references
//! (`docs/PROTOCOL.md`, "Reclamation", invariant I6).
//!
//! A file may go once it is dead (no live record) in a state that a durable checkpoint covers,
//! and no snapshot of this process is older than its death. Nothing here depends on time for
//! safety: a process elsewhere that still needs the file gets [`crate::Error::SnapshotTooOld`]
//! (its snapshot is older than the checkpoint) or, while catching up, finds the checkpoint and
//! starts from it. The grace period only spares other processes' old snapshots that retry.

use super::DbInner;
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::io;
use std::sync::atomic::Ordering;

impl DbInner {
    /// Deletes dead commit files that no reader can need any more; `force` skips the grace.
    pub(super) fn reclaim(&self, force: bool) -> Result<()> {
        let oldest = self.oldest_snapshot();
        let victims: Vec<u64> = {
            let sp = self.space.lock();
            sp.files
                .iter()
                .filter(|(_, f)| {
                    f.live == 0
                        && f.dead.is_some_and(|(at, when)| {
                            at <= sp.last_checkpoint
                                && oldest.is_none_or(|o| o >= at)
                                && (force || when.elapsed() >= self.opts.reclaim_grace)
                        })
                })
                .map(|(s, _)| *s)
                .collect()
        };
        if victims.is_empty() {
            return Ok(());
        }
        // The accounting says these are dead; the registry must agree (I6).
        let st = self.current();
        let named: HashSet<u64> = st.registry.values().flat_map(|h| h.records().map(|l| l.seq)).collect();
        for seq in victims {
            if named.contains(&seq) {
                // Drifted accounting (only damaged files can cause it, and `sop verify`
                // reports it): keep the file.
                continue;
            }
            let p = self.layout.commit(seq);
            match self.vfs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
            self.files.forget(seq);
            self.cache.forget_file(seq);
            self.space.lock().files.remove(&seq);
            self.stats.reclaimed_files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
