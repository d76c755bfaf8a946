//! When upkeep runs: after a commit batch (when due) or on [`crate::Database::maintain`]
//! (now). Each step has its own file: `checkpoint`, `compact`, `reclaim`, and the temp sweep in
//! `recovery`.

use super::DbInner;
use crate::error::Result;

impl DbInner {
    /// Checkpoint, compaction and reclamation, when due (or now, when `force`). Runs with
    /// commit leadership held.
    pub(crate) fn maintenance(&self, force: bool) -> Result<()> {
        let (ckpt_due, compact_due) = {
            let sp = self.space.lock();
            // Fragmentation counts only files that still hold live records: fully dead files
            // cost nothing to reclaim and only wait for a checkpoint.
            let (total, live) = sp.partially_live();
            let dead = total - live;
            let big = force || dead >= self.opts.compact_min_bytes;
            (
                force || sp.commits_since_checkpoint >= self.opts.checkpoint_every,
                big && dead as f64 > self.opts.compact_dead_ratio * total as f64,
            )
        };
        let mut relocated = false;
        if compact_due {
            relocated = self.compact()?;
        }
        if ckpt_due || relocated {
            // Reclamation needs a checkpoint that covers the deaths; checkpoints are taken of
            // caught-up state so they also cover other processes' recent commits.
            self.catch_up()?;
            self.write_checkpoint()?;
            // Long-lived processes also sweep temp files of writers that died since.
            self.sweep_tmp()?;
        }
        self.reclaim(force)
    }
}
