//! Catch-up: bringing this process's state up to the newest commit, whoever wrote it
//! (`docs/PROTOCOL.md`, "Catch-up"). It never guesses from timing: a missing file is read as
//! "not written yet" only when no checkpoint says otherwise.
//!
//! A round reads commit files forward from the current state, each of which must name the
//! commit before it (`prev`), then lists `checkpoints/`. A checkpoint above the state means
//! files were reclaimed: it is loaded. A checkpoint inside the files just read must carry the
//! same commit identity we read at its number; otherwise a file we read was void (a paused
//! writer published into a reclaimed number) and the checkpoint is loaded instead. Listing
//! after reading is what makes this sound: a void file can only exist after a checkpoint that
//! covers its number, so a listing made after reading it sees that checkpoint.

use super::DbInner;
use super::nodes::parse_seq;
use super::validate::CommitSummary;
use crate::error::{Error, Result};
use crate::format::meta::{CatalogChange, CommitMeta, FileHeader, Loc};
use crate::format::record::{self, MAGIC_COMMIT, tag};
use crate::state::State;
use crate::vfs::VFile;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many commits of conflict history a process keeps even when none of its own snapshots
/// needs them: batches contributed by other processes (`contribute.rs`) were taken on
/// snapshots a few commits old.
const HISTORY_MIN: u64 = 1024;

impl DbInner {
    /// Cheap check for commits by other processes, so a transaction starts on fresh state:
    /// one `stat` and one listing of `checkpoints/` when nothing is new.
    pub(crate) fn refresh(&self) -> Result<()> {
        let seq = self.current().seq;
        let next = self.layout.commit(seq + 1);
        if self.vfs.exists(&next).map_err(|e| Error::io(&next, e))?
            || self.newest_checkpoint()?.is_some_and(|c| c > seq)
        {
            self.catch_up()?;
        }
        Ok(())
    }

    /// Applies every commit newer than the current state (written by other processes, or
    /// found at open), loading a newer checkpoint where files were reclaimed.
    pub(crate) fn catch_up(&self) -> Result<()> {
        let _apply = self.apply_lock.lock();
        self.catch_up_locked()
    }

    /// [`DbInner::catch_up`] with the apply lock held.
    pub(super) fn catch_up_locked(&self) -> Result<()> {
        loop {
            let cur = self.current();
            // Files are read first and installed only once the checkpoint listing that follows
            // confirms them: another thread of this process must never begin a transaction on
            // a state that includes a void file, even for an instant.
            let (staged, stop) = self.read_forward(&cur)?;
            if let Some(c) = self.newest_checkpoint()? {
                let top = cur.seq + staged.len() as u64;
                let superseded = c > top
                    || (c > cur.seq && {
                        // A checkpoint inside what we just read must agree with it.
                        let read = &staged[(c - cur.seq - 1) as usize].header;
                        match self.checkpoint_header(c)? {
                            Some(h) => h.nonce != read.nonce,
                            None => true, // replaced by a newer one meanwhile: look again
                        }
                    });
                if superseded {
                    self.load_newest_checkpoint()?;
                    continue;
                }
            }
            for f in &staged {
                self.apply_commit(&self.current(), f)?;
            }
            return match stop {
                Stop::End => Ok(()),
                Stop::Batch => continue,
                // No checkpoint explains a file that does not continue our chain.
                Stop::Diverged { seq, prev } => Err(Error::corrupt(
                    self.layout.commit(seq),
                    format!(
                        "commit names {prev:#x} as its predecessor, but commit {} is {:#x}",
                        seq - 1,
                        self.current().head()
                    ),
                )),
            };
        }
    }

    /// Reads commit files `seq + 1, seq + 2, …` after `cur` while they exist and continue the
    /// chain, at most [`CATCH_UP_BATCH`] of them.
    fn read_forward(&self, cur: &State) -> Result<(Vec<Staged>, Stop)> {
        let mut staged: Vec<Staged> = Vec::new();
        loop {
            if staged.len() >= CATCH_UP_BATCH {
                return Ok((staged, Stop::Batch));
            }
            let head = staged.last().map_or(cur.head(), |f| f.header.nonce);
            let next = cur.seq + staged.len() as u64 + 1;
            let path = self.layout.commit(next);
            let Some(f) = self.open_if_exists(&path)? else { return Ok((staged, Stop::End)) };
            // An open handle keeps reading the same file even if it is reclaimed meanwhile.
            let (header, meta, len) = read_commit_meta(&path, &*f)?;
            if header.db_id != self.db_id {
                return Err(Error::corrupt(&path, "commit file belongs to another database"));
            }
            if header.seq != next {
                return Err(Error::corrupt(&path, format!("file name says commit {next}, header says {}", header.seq)));
            }
            if header.prev != head {
                return Ok((staged, Stop::Diverged { seq: next, prev: header.prev }));
            }
            staged.push(Staged { path, header, meta, len });
        }
    }

    /// Installs another writer's commit after checking every registry change's base version.
    fn apply_commit(&self, base: &State, f: &Staged) -> Result<()> {
        let (path, header, meta) = (&f.path, &f.header, &f.meta);
        let seq = header.seq;
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
        self.install(base, header.nonce, seq, meta, f.len, node_live + meta.blob_bytes)
    }

    /// Makes a commit part of the in-memory state: registry, catalog, chain, conflict history
    /// and space accounting. Call with the apply lock held.
    pub(crate) fn install(
        &self,
        base: &State,
        nonce: u64,
        seq: u64,
        meta: &CommitMeta,
        total: u64,
        live: u64,
    ) -> Result<()> {
        debug_assert_eq!(seq, base.seq + 1, "commits are installed in sequence");
        debug_assert!(self.apply_lock.is_locked(), "install runs under the apply lock");
        let mut st = base.clone();
        st.seq = seq;
        st.push_chain(nonce);
        st.push_verdicts(meta.verdicts.iter().cloned());
        // Space and state change together under the apply lock: a checkpoint (which takes the
        // same lock) never sees one without the other.
        let mut space = self.space.lock();
        space.add_file(seq, total, live, nonce);
        for ch in &meta.registry {
            if let Some(old) = st.registry.get(&ch.node) {
                // A delta may keep its predecessor's base (or the predecessor itself, as its
                // new base) alive; release only what the new handle no longer uses.
                let kept: Vec<Loc> = ch.new.iter().flat_map(|h| h.records()).collect();
                for loc in old.records().filter(|l| !kept.contains(l)) {
                    space.release(loc, seq);
                    // Only older snapshots need it, and they can read it back from its file;
                    // keeping it would fill the cache with dead nodes.
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
        let summary = CommitSummary::of(seq, meta);
        let mut state = self.state.write();
        // Transactions register their snapshot under the state lock, so nobody older than
        // `keep_after` can still need the history entries dropped here.
        // Contributed batches from other processes carry older snapshots than ours: keep a
        // minimum depth so that they can be validated rather than refused.
        let keep_after = self.oldest_snapshot().unwrap_or(seq).min(seq.saturating_sub(HISTORY_MIN));
        self.history.lock().push(summary, keep_after);
        *state = Arc::new(st);
        drop(space);
        Ok(())
    }

    pub(super) fn list_seqs(&self, dir: &Path, ext: &str) -> Result<Vec<u64>> {
        let names = self.vfs.list_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| parse_seq(n, ext)).collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The newest checkpoint's sequence number. Checkpoints are only ever removed once a newer
    /// one exists, so this never goes down.
    pub(super) fn newest_checkpoint(&self) -> Result<Option<u64>> {
        Ok(self.list_seqs(&self.layout.checkpoints(), "ckpt")?.last().copied())
    }

    /// Loads the newest checkpoint, looking again if it is replaced while we read it.
    pub(super) fn load_newest_checkpoint(&self) -> Result<()> {
        loop {
            let Some(c) = self.newest_checkpoint()? else {
                return Err(Error::corrupt(self.layout.checkpoints(), "a checkpoint disappeared and none is left"));
            };
            if self.load_checkpoint(c)? {
                return Ok(());
            }
        }
    }
}

/// Commit files read per catch-up round before they are checked and installed.
const CATCH_UP_BATCH: usize = 256;

/// A commit file read by catch-up, not yet installed.
struct Staged {
    path: PathBuf,
    header: FileHeader,
    meta: CommitMeta,
    len: u64,
}

/// Why reading forward stopped.
enum Stop {
    /// The next commit file does not exist.
    End,
    /// [`CATCH_UP_BATCH`] files were read; there may be more.
    Batch,
    /// The next commit file names another predecessor than the state's head.
    Diverged { seq: u64, prev: u64 },
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
    let header = read_header(path, f, MAGIC_COMMIT, len)?;
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

/// Reads the magic, version and header record at the start of a commit or checkpoint file.
pub(crate) fn read_header(path: &Path, f: &dyn VFile, magic: [u8; 4], len: u64) -> Result<FileHeader> {
    // The header record is small; read a generous prefix and parse its first record.
    let mut head = vec![0u8; len.min(512) as usize];
    f.read_exact_at(&mut head, 0).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::corrupt(path, "file is truncated"),
        _ => Error::io(path, e),
    })?;
    record::check_prefix(path, &head, magic)?;
    let (t, payload, _) = record::parse_record(path, record::FILE_PREFIX_LEN as u64, &head[record::FILE_PREFIX_LEN..])?;
    if t != tag::HEADER {
        return Err(Error::corrupt(path, "missing header record"));
    }
    postcard::from_bytes(payload).map_err(|e| Error::corrupt(path, format!("bad header: {e}")))
}
