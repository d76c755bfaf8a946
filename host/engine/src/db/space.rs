//! Space accounting of commit files: how many bytes of each file the latest state still
//! references, when a file became dead, and its identity.
//!
//! A file's *live* bytes are its node images still named by the registry and its blobs still
//! referenced by leaves. Once they reach zero nothing can reference the file again: new
//! commits only reference their own records or records that are live (a delta's base).

use crate::format::meta::{FileStat, Loc};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct FileInfo {
    pub total: u64,
    pub live: u64,
    pub nonce: u64,
    /// When the file became dead: the commit that released its last record, and the time
    /// (the time only paces reclamation; see `reclaim`).
    pub dead: Option<(u64, Instant)>,
}

/// Per-file space accounting. Changed only together with the state it describes (under the
/// apply lock), so a checkpoint can take both at once.
#[derive(Debug, Default)]
pub(crate) struct Space {
    pub files: BTreeMap<u64, FileInfo>,
    /// The newest checkpoint this process knows to be durable.
    pub last_checkpoint: u64,
    pub commits_since_checkpoint: u64,
}

impl Space {
    pub fn add_file(&mut self, seq: u64, total: u64, live: u64, nonce: u64) {
        let dead = (live == 0).then(|| (seq, Instant::now()));
        self.files.insert(seq, FileInfo { total, live, nonce, dead });
    }

    pub fn release(&mut self, loc: Loc, at: u64) {
        if let Some(f) = self.files.get_mut(&loc.seq) {
            f.live = f.live.saturating_sub(u64::from(loc.len));
            if f.live == 0 && f.dead.is_none() {
                f.dead = Some((at, Instant::now()));
            }
        }
    }

    /// Starts over from a checkpoint's accounting.
    pub fn reset(&mut self, stats: &[FileStat], checkpoint: u64) {
        self.files.clear();
        for s in stats {
            self.add_file(s.seq, s.total, s.live, s.nonce);
            if s.live == 0 {
                self.mark_dead(s.seq, checkpoint);
            }
        }
        self.last_checkpoint = self.last_checkpoint.max(checkpoint);
        self.commits_since_checkpoint = 0;
    }

    /// Whether the file still holds records the latest state references.
    pub fn is_live(&self, seq: u64) -> bool {
        self.files.get(&seq).is_some_and(|f| f.live > 0)
    }

    /// The identity of a file the latest state knows.
    pub fn nonce(&self, seq: u64) -> Option<u64> {
        self.files.get(&seq).map(|f| f.nonce)
    }

    pub fn tracks(&self, seq: u64) -> bool {
        self.files.contains_key(&seq)
    }

    pub fn mark_dead(&mut self, seq: u64, at: u64) {
        if let Some(f) = self.files.get_mut(&seq) {
            f.live = 0;
            f.dead = Some((at, Instant::now()));
        }
    }

    pub fn file_count(&self) -> u64 {
        self.files.len() as u64
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.total).sum()
    }

    pub fn live_bytes(&self) -> u64 {
        self.files.values().map(|f| f.live).sum()
    }

    /// Total and live bytes of the files that still hold live records.
    pub fn partially_live(&self) -> (u64, u64) {
        self.files.values().filter(|f| f.live > 0).fold((0, 0), |(t, l), f| (t + f.total, l + f.live))
    }

    pub fn stats(&self) -> Vec<FileStat> {
        self.files.iter().map(|(s, f)| FileStat { seq: *s, total: f.total, live: f.live, nonce: f.nonce }).collect()
    }
}
