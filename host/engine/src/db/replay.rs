//! Recovery and catch-up: loading the newest checkpoint, replaying commit files after it,
//! and installing a commit into the in-memory state (shared by replay and by the commit path).

use super::DbInner;
use super::files::parse_seq;
use crate::error::{Error, Result};
use crate::format::meta::{CatalogChange, CheckpointBody, CommitMeta, FileHeader, Loc};
use crate::format::node::IKey;
use crate::format::record::{self, MAGIC_CHECKPOINT, MAGIC_COMMIT, tag};
use crate::state::State;
use crate::vfs::VFile;
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The keys one commit wrote in one store.
#[derive(Debug, Default, Clone)]
pub(crate) struct StoreKeys {
    pub all: bool,
    pub keys: Vec<IKey>,
}

/// What conflict detection and merge statistics need to know about one commit.
#[derive(Debug)]
pub(crate) struct CommitSummary {
    pub seq: u64,
    pub writes: HashMap<u64, StoreKeys>,
    pub names: Vec<String>,
    pub nodes: HashSet<u64>,
}

/// Recent commits. Complete for every sequence number above `base`.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub base: u64,
    pub entries: VecDeque<Arc<CommitSummary>>,
}

impl DbInner {
    /// Runs on open: newest checkpoint, then every later commit.
    pub(super) fn recover(&self) -> Result<()> {
        let _apply = self.apply_lock.lock();
        let ckpts = self.list_seqs(&self.layout.checkpoints(), "ckpt")?;
        if let Some(&newest) = ckpts.last() {
            self.load_checkpoint(newest)?;
        }
        self.catch_up_locked()?;
        // A published commit is never removed before a checkpoint covers it, so a later
        // commit file behind a missing one means a file was lost: refuse rather than silently
        // opening an older state.
        let seq = self.current().seq;
        if let Some(later) = self.list_seqs(&self.layout.commits(), "commit")?.into_iter().find(|&s| s > seq + 1) {
            return Err(Error::corrupt(
                self.layout.commit(seq + 1),
                format!("commit file is missing, but commit {later} exists"),
            ));
        }
        Ok(())
    }

    fn list_seqs(&self, dir: &Path, ext: &str) -> Result<Vec<u64>> {
        let names = self.vfs.list_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_seq(n, ext)).collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Applies every commit file newer than the current state (written by other processes, or
    /// found at open). If the next file was already reclaimed, reloads the newest checkpoint.
    pub(crate) fn catch_up(&self) -> Result<()> {
        let _apply = self.apply_lock.lock();
        self.catch_up_locked()
    }

    /// Cheap check for commits by other processes, for transactions to start on fresh state:
    /// one `stat` when nothing is new.
    pub(crate) fn refresh(&self) -> Result<()> {
        let next = self.layout.commit(self.current().seq + 1);
        if self.vfs.exists(&next).map_err(|e| Error::io(&next, e))? {
            self.catch_up()?;
        }
        Ok(())
    }

    /// [`DbInner::catch_up`] with the apply lock held.
    fn catch_up_locked(&self) -> Result<()> {
        loop {
            let next = self.current().seq + 1;
            let path = self.layout.commit(next);
            let f = match self.vfs.open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // `next` can only be missing because it was reclaimed if it was published,
                    // checkpointed, dead and past the grace period since we last saw the
                    // latest state; within one grace period, missing means "not yet written".
                    if self.last_catch_up.lock().elapsed() < self.opts.reclaim_grace {
                        *self.last_catch_up.lock() = std::time::Instant::now();
                        return Ok(());
                    }
                    let newer =
                        self.list_seqs(&self.layout.checkpoints(), "ckpt")?.into_iter().filter(|&c| c >= next).max();
                    match newer {
                        Some(c) => {
                            self.load_checkpoint(c)?;
                            continue;
                        }
                        None => {
                            let after = self.layout.commit(next + 1);
                            if self.vfs.exists(&after).map_err(|e| Error::io(&after, e))? {
                                return Err(Error::corrupt(
                                    path,
                                    format!("commit file is missing, but commit {} exists", next + 1),
                                ));
                            }
                            *self.last_catch_up.lock() = std::time::Instant::now();
                            return Ok(());
                        }
                    }
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            match self.replay_commit(&path, next, &*f) {
                Ok(()) => {}
                // Reclaimed (and perhaps reused) while we read it: we are behind a checkpoint.
                Err(Error::Corrupt { .. }) if !self.vfs.exists(&path).map_err(|e| Error::io(&path, e))? => {
                    let newer =
                        self.list_seqs(&self.layout.checkpoints(), "ckpt")?.into_iter().filter(|&c| c >= next).max();
                    match newer {
                        Some(c) => self.load_checkpoint(c)?,
                        None => return Err(Error::corrupt(path, "commit file vanished while being read")),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads a commit file's header and metadata (not its node images) and installs it.
    fn replay_commit(&self, path: &Path, seq: u64, f: &dyn VFile) -> Result<()> {
        let (header, meta, len) = read_commit_meta(path, f)?;
        if header.db_id != self.db_id {
            return Err(Error::corrupt(path, "commit file belongs to another database"));
        }
        if header.seq != seq {
            return Err(Error::corrupt(path, format!("file name says commit {seq}, header says {}", header.seq)));
        }
        let base = self.current();
        let mut node_live = 0u64;
        for ch in &meta.registry {
            let have = base.registry.get(&ch.node).map_or(0, |h| h.version);
            if have != ch.expected {
                return Err(Error::corrupt(
                    path,
                    format!("node {:#x} expected at version {}, registry has {have}", ch.node, ch.expected),
                ));
            }
            if let Some(h) = ch.new
                && h.loc.seq == seq
            {
                node_live += u64::from(h.loc.len);
            }
        }
        self.install(&base, seq, &meta, len, node_live + meta.blob_bytes)
    }

    /// Makes a commit part of the in-memory state: registry, catalog, conflict history and
    /// space accounting. Call with the apply lock held.
    pub(crate) fn install(&self, base: &State, seq: u64, meta: &CommitMeta, total: u64, live: u64) -> Result<()> {
        let mut st = base.clone();
        st.seq = seq;
        {
            let mut space = self.space.lock();
            space.add_file(seq, total, live);
            for ch in &meta.registry {
                if let Some(old) = st.registry.get(&ch.node) {
                    // A delta may keep its predecessor's base (or the predecessor itself, as
                    // its new base) alive; release only what the new handle no longer uses.
                    let kept: Vec<Loc> = ch.new.iter().flat_map(|h| h.records()).collect();
                    for loc in old.records().filter(|l| !kept.contains(l)) {
                        space.release(loc, seq);
                        // Only older snapshots need it, and they can read it back from its
                        // file; keeping it would fill the cache with dead nodes.
                        self.cache.forget(&loc);
                    }
                }
                match ch.new {
                    Some(h) => {
                        st.registry.insert(ch.node, h);
                    }
                    None => {
                        st.registry.remove(&ch.node);
                    }
                }
            }
            for loc in &meta.freed_blobs {
                space.release(*loc, seq);
            }
            space.commits_since_checkpoint += 1;
        }
        for c in &meta.catalog {
            match c {
                CatalogChange::Put(m) => {
                    st.catalog.insert(m.name.clone(), Arc::new(m.clone()));
                }
                CatalogChange::Drop(n) => {
                    st.catalog.remove(n);
                }
            }
        }
        st.next_store_id = meta.next_store_id.max(st.next_store_id);
        let summary = CommitSummary {
            seq,
            writes: meta
                .writes
                .iter()
                .map(|w| {
                    let keys = w.keys.iter().map(|(k, d)| IKey::new(Bytes::from(k.clone()), *d)).collect();
                    (w.store, StoreKeys { all: w.all, keys })
                })
                .collect(),
            names: meta.names.clone(),
            nodes: meta.registry.iter().map(|c| c.node).collect(),
        };
        let mut state = self.state.write();
        let mut history = self.history.lock();
        history.entries.push_back(Arc::new(summary));
        // Transactions register their snapshot under the state lock, so nobody older than
        // `keep_after` can still need the entries dropped here.
        let keep_after = self.oldest_snapshot().unwrap_or(seq).min(seq);
        while history.entries.front().is_some_and(|c| c.seq <= keep_after) {
            let c = history.entries.pop_front().expect("front exists");
            history.base = history.base.max(c.seq);
        }
        *state = Arc::new(st);
        Ok(())
    }

    pub(super) fn load_checkpoint(&self, seq: u64) -> Result<()> {
        let path = self.layout.checkpoint(seq);
        let f = self.vfs.open(&path).map_err(|e| Error::io(&path, e))?;
        let buf = f.read_all().map_err(|e| Error::io(&path, e))?;
        record::check_prefix(&path, &buf, MAGIC_CHECKPOINT)?;
        let mut header: Option<FileHeader> = None;
        let mut body: Option<CheckpointBody> = None;
        for rec in record::records(&path, &buf) {
            let (_, t, payload) = rec?;
            match t {
                tag::HEADER => {
                    header = Some(
                        postcard::from_bytes(payload).map_err(|e| Error::corrupt(&path, format!("bad header: {e}")))?,
                    )
                }
                tag::CHECKPOINT => {
                    body = Some(
                        postcard::from_bytes(payload)
                            .map_err(|e| Error::corrupt(&path, format!("bad checkpoint body: {e}")))?,
                    )
                }
                other => return Err(Error::corrupt(&path, format!("unexpected record tag {other}"))),
            }
        }
        let header = header.ok_or_else(|| Error::corrupt(&path, "missing header record"))?;
        let body = body.ok_or_else(|| Error::corrupt(&path, "missing checkpoint body (truncated file)"))?;
        if header.db_id != self.db_id {
            return Err(Error::corrupt(&path, "checkpoint belongs to another database"));
        }
        if header.seq != seq || body.seq != seq {
            return Err(Error::corrupt(&path, "checkpoint sequence does not match its name"));
        }
        let st = State {
            seq,
            registry: body.registry.iter().copied().collect(),
            catalog: body.catalog.into_iter().map(|m| (m.name.clone(), Arc::new(m))).collect(),
            next_store_id: body.next_store_id,
        };
        {
            let mut space = self.space.lock();
            space.reset(&body.files, seq);
            for s in self.list_seqs(&self.layout.commits(), "commit")? {
                if s <= seq && !space.tracks(s) {
                    // Dead files a reclaimer had not removed yet.
                    space.add_file(s, 0, 0);
                    space.mark_dead(s, seq);
                }
            }
        }
        let mut state = self.state.write();
        let mut history = self.history.lock();
        history.entries.clear();
        history.base = seq;
        *state = Arc::new(st);
        Ok(())
    }
}

/// Reads the header record, the trailer and the metadata record of a commit file.
pub(crate) fn read_commit_meta(path: &Path, f: &dyn VFile) -> Result<(FileHeader, CommitMeta, u64)> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::corrupt(path, "file is truncated"),
        _ => Error::io(path, e),
    };
    let len = f.len().map_err(|e| Error::io(path, e))?;
    let min = (record::FILE_PREFIX_LEN + 2 * record::RECORD_HEADER_LEN + record::TRAILER_LEN) as u64;
    if len < min {
        return Err(Error::corrupt(path, format!("file is {len} bytes, too short for a commit")));
    }
    // The header record is small; read a generous prefix and parse its first record.
    let mut head = vec![0u8; len.min(512) as usize];
    f.read_exact_at(&mut head, 0).map_err(io_err)?;
    record::check_prefix(path, &head, MAGIC_COMMIT)?;
    let (t, payload, _) = record::parse_record(path, record::FILE_PREFIX_LEN as u64, &head[record::FILE_PREFIX_LEN..])?;
    if t != tag::HEADER {
        return Err(Error::corrupt(path, "missing header record"));
    }
    let header: FileHeader =
        postcard::from_bytes(payload).map_err(|e| Error::corrupt(path, format!("bad header: {e}")))?;
    let trailer_at = len - record::TRAILER_LEN as u64;
    let mut trailer = [0u8; record::TRAILER_LEN];
    f.read_exact_at(&mut trailer, trailer_at).map_err(io_err)?;
    let (t, payload, _) = record::parse_record(path, trailer_at, &trailer)?;
    if t != tag::TRAILER || payload.len() != 8 {
        return Err(Error::corrupt(path, "missing trailer record (truncated file?)"));
    }
    let meta_at = u64::from_le_bytes(payload.try_into().expect("8 bytes"));
    if meta_at < record::FILE_PREFIX_LEN as u64 || meta_at >= trailer_at {
        return Err(Error::corrupt(path, format!("trailer points at offset {meta_at}, outside the file")));
    }
    let mut mbuf = vec![0u8; (trailer_at - meta_at) as usize];
    f.read_exact_at(&mut mbuf, meta_at).map_err(io_err)?;
    let (t, payload, used) = record::parse_record(path, meta_at, &mbuf)?;
    if t != tag::META || used != mbuf.len() {
        return Err(Error::corrupt(path, "trailer does not point at the commit metadata"));
    }
    let meta: CommitMeta =
        postcard::from_bytes(payload).map_err(|e| Error::corrupt(path, format!("bad metadata: {e}")))?;
    Ok((header, meta, len))
}
