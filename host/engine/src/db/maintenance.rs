//! Space accounting, checkpoints, compaction (relocation commits) and file reclamation.
//!
//! Every commit file is immutable. A file's *live* bytes are its node images still named by
//! the registry and its blobs still referenced by leaves. When live bytes fall to zero the
//! file is dead; once a checkpoint covers it, no snapshot of this process can read it and the
//! grace period for other processes has passed, it is deleted. Files that stay mostly dead
//! are compacted: their live records are copied into a new commit (a *relocation*) that
//! changes no key, so it conflicts with no transaction.

use super::commit::clone_err;
use super::files::{self, parse_blob_header};
use super::{DbInner, View};
use crate::error::{Error, Result};
use crate::format::meta::{CheckpointBody, CommitMeta, FileHeader, FileStat, Handle, Loc, RegistryChange};
use crate::format::node::{IKey, Node, Val};
use crate::format::record::{self, MAGIC_CHECKPOINT, MAGIC_COMMIT, tag};
use crate::state::State;
use crate::tree::apply::{self, Mutation, Tagged};
use crate::tree::cursor;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Dead (emptied) commit files kept for reuse: enough for the commits between checkpoints.
const RECYCLE_POOL: usize = 1024;

#[derive(Debug, Clone)]
struct FileInfo {
    total: u64,
    live: u64,
    /// When the file became dead: the commit that released its last record, and the time.
    dead: Option<(u64, Instant)>,
}

/// Per-file space accounting of commit files.
#[derive(Debug, Default)]
pub(crate) struct Space {
    files: BTreeMap<u64, FileInfo>,
    pub last_checkpoint: u64,
    pub commits_since_checkpoint: u64,
}

impl Space {
    pub fn add_file(&mut self, seq: u64, total: u64, live: u64) {
        let dead = (live == 0).then(|| (seq, Instant::now()));
        self.files.insert(seq, FileInfo { total, live, dead });
    }

    pub fn release(&mut self, loc: Loc, at: u64) {
        if let Some(f) = self.files.get_mut(&loc.seq) {
            f.live = f.live.saturating_sub(u64::from(loc.len));
            if f.live == 0 && f.dead.is_none() {
                f.dead = Some((at, Instant::now()));
            }
        }
    }

    pub fn reset(&mut self, stats: &[FileStat], checkpoint: u64) {
        self.files.clear();
        for s in stats {
            self.add_file(s.seq, s.total, s.live);
            if s.live == 0 {
                self.mark_dead(s.seq, checkpoint);
            }
        }
        self.last_checkpoint = checkpoint;
        self.commits_since_checkpoint = 0;
    }

    /// Whether the file still holds records the latest state references.
    pub fn is_live(&self, seq: u64) -> bool {
        self.files.get(&seq).is_some_and(|f| f.live > 0)
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
    fn partially_live(&self) -> (u64, u64) {
        self.files.values().filter(|f| f.live > 0).fold((0, 0), |(t, l), f| (t + f.total, l + f.live))
    }

    fn stats(&self) -> Vec<FileStat> {
        self.files.iter().map(|(s, f)| FileStat { seq: *s, total: f.total, live: f.live }).collect()
    }
}

/// The parts of a commit that [`DbInner::seal`] turns into a file.
#[derive(Default)]
pub(crate) struct Sealed {
    /// Write every node as a full image (compaction must not leave deltas on old bases).
    pub force_full: bool,
    pub written: Vec<(u64, Node)>,
    pub deleted: Vec<u64>,
    pub meta: CommitMeta,
    pub blob_live: u64,
}

/// Outcome of trying to publish a commit file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    Done,
    /// Another writer published this sequence number first.
    Rebase,
}

impl DbInner {
    /// Appends node records and the metadata to `buf`, publishes the file as `seq` and
    /// installs it. `meta.registry` is filled in here.
    pub(crate) fn seal(&self, base: &State, seq: u64, mut buf: Vec<u8>, mut s: Sealed) -> Result<Publish> {
        let mut node_locs: Vec<(Loc, Node)> = Vec::with_capacity(s.written.len());
        let mut payload = Vec::new();
        for (id, node) in s.written {
            payload.clear();
            payload.extend_from_slice(&id.to_le_bytes());
            let old = base.registry.get(&id);
            let delta_base = if s.force_full { None } else { self.delta_against(id, old, &node, &mut payload)? };
            let tag = match delta_base {
                Some(_) => tag::DELTA,
                None => {
                    node.encode(&mut payload);
                    tag::NODE
                }
            };
            let off = record::put_record(&mut buf, tag, &payload);
            let loc = Loc { seq, off: off as u32, len: (buf.len() - off) as u32 };
            let expected = old.map_or(0, |h| h.version);
            let handle = Handle { loc, version: seq, base: delta_base };
            s.meta.registry.push(RegistryChange { node: id, expected, new: Some(handle) });
            node_locs.push((loc, node));
        }
        for id in s.deleted {
            if let Some(h) = base.registry.get(&id) {
                s.meta.registry.push(RegistryChange { node: id, expected: h.version, new: None });
            }
        }
        s.meta.blob_bytes = s.blob_live;
        let meta_off =
            record::put_record(&mut buf, tag::META, &postcard::to_allocvec(&s.meta).expect("meta serialises"));
        record::put_record(&mut buf, tag::TRAILER, &(meta_off as u64).to_le_bytes());
        if buf.len() > u32::MAX as usize {
            // Record offsets are 32-bit; nothing was written, the handle stays healthy.
            return Err(Error::CommitTooLarge { bytes: buf.len() as u64 });
        }
        let tmp = self.write_tmp(seq, &buf)?;
        crate::failpoint::hit("before-publish");
        // From the link to the install nobody else may change the in-memory state, or a
        // catch-up could replay our own file before we install it.
        let _apply = self.apply_lock.lock();
        if self.current().seq != base.seq || self.link_tmp(seq, &tmp)? == Publish::Rebase {
            let _ = self.vfs.remove_file(&tmp);
            return Ok(Publish::Rebase);
        }
        // Publishing proved `seq` was the newest commit a moment ago.
        *self.last_catch_up.lock() = std::time::Instant::now();
        self.stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let node_live: u64 = node_locs.iter().map(|(l, _)| u64::from(l.len)).sum();
        for (loc, node) in node_locs {
            self.cache.insert(loc, std::sync::Arc::new(node));
        }
        self.install(base, seq, &s.meta, buf.len() as u64, node_live + s.blob_live)?;
        Ok(Publish::Done)
    }

    /// If `node` is a leaf close to its current base image, appends the delta encoding (base
    /// location, then the changes) to `payload` and returns the base. Small random changes to
    /// many leaves then write a few entries per leaf instead of whole leaves; a leaf is
    /// rewritten in full once its changes reach a quarter of its size.
    fn delta_against(&self, id: u64, old: Option<&Handle>, node: &Node, payload: &mut Vec<u8>) -> Result<Option<Loc>> {
        let (Some(old), Node::Leaf(items)) = (old, node) else { return Ok(None) };
        let base_loc = old.base.unwrap_or(old.loc);
        let base_node = self.node_at(id, &Handle { loc: base_loc, version: old.version, base: None })?;
        let Node::Leaf(base_items) = &*base_node else { return Ok(None) };
        let changes = crate::format::node::diff(base_items, items);
        if changes.len() > items.len().max(base_items.len()) / 4 + 1 {
            return Ok(None);
        }
        payload.extend_from_slice(&base_loc.seq.to_le_bytes());
        payload.extend_from_slice(&base_loc.off.to_le_bytes());
        payload.extend_from_slice(&base_loc.len.to_le_bytes());
        crate::format::node::encode_delta(&changes, payload);
        Ok(Some(base_loc))
    }

    /// Starts a commit file for `seq` (prefix and header record).
    pub(crate) fn begin_commit_file(&self, seq: u64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(1 << 16);
        record::begin_file(&mut buf, MAGIC_COMMIT);
        let header = FileHeader { db_id: self.db_id, seq, writer: self.writer };
        record::put_record(&mut buf, tag::HEADER, &postcard::to_allocvec(&header).expect("header serialises"));
        buf
    }

    /// Checkpoint, compaction and reclamation, when due (or now, when `force`). Runs with
    /// commit leadership held.
    pub(crate) fn maintenance(&self, force: bool) -> Result<()> {
        let (ckpt_due, compact_due) = {
            let sp = self.space.lock();
            // Fragmentation counts only files that still hold live records: fully dead files
            // cost nothing to reclaim and only wait for a checkpoint and the grace period.
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
            self.write_checkpoint()?;
            // Long-lived processes also sweep temp files of writers that died since.
            let _ = self.remove_stale_tmp();
        }
        self.reclaim(force)
    }

    fn write_checkpoint(&self) -> Result<()> {
        let st = self.current();
        let files = {
            let sp = self.space.lock();
            if st.seq == 0 || st.seq == sp.last_checkpoint {
                return Ok(());
            }
            sp.stats()
        };
        let body = CheckpointBody {
            seq: st.seq,
            registry: st.registry.iter().map(|(k, v)| (*k, *v)).collect(),
            catalog: st.catalog.values().map(|m| (**m).clone()).collect(),
            files,
            next_store_id: st.next_store_id,
        };
        let mut buf = Vec::new();
        record::begin_file(&mut buf, MAGIC_CHECKPOINT);
        let header = FileHeader { db_id: self.db_id, seq: st.seq, writer: self.writer };
        record::put_record(&mut buf, tag::HEADER, &postcard::to_allocvec(&header).expect("header serialises"));
        record::put_record(&mut buf, tag::CHECKPOINT, &postcard::to_allocvec(&body).expect("body serialises"));
        let dir = self.layout.checkpoints();
        let tmp = files::tmp_name(&self.layout.tmp(), self.writer, "ckpt");
        let fail = |e: io::Error, p: &std::path::Path| self.poison(&Error::io(p, e));
        let f = self.vfs.create_new(&tmp).map_err(|e| fail(e, &tmp))?;
        f.write_at(&buf, 0).map_err(|e| fail(e, &tmp))?;
        f.sync_data().map_err(|e| fail(e, &tmp))?;
        drop(f);
        let target = self.layout.checkpoint(st.seq);
        self.vfs.rename(&tmp, &target).map_err(|e| fail(e, &target))?;
        self.vfs.sync_dir(&dir).map_err(|e| fail(e, &dir))?;
        {
            let mut sp = self.space.lock();
            sp.last_checkpoint = st.seq;
            sp.commits_since_checkpoint = 0;
        }
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        // Keep the previous checkpoint too; older ones are redundant.
        let names = self.vfs.list_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| files::parse_seq(n, "ckpt")).collect();
        seqs.sort_unstable();
        if seqs.len() > 2 {
            for s in &seqs[..seqs.len() - 2] {
                let _ = self.vfs.remove_file(&self.layout.checkpoint(*s));
            }
        }
        Ok(())
    }

    /// Deletes dead commit files that no reader can need any more.
    fn reclaim(&self, force: bool) -> Result<()> {
        let oldest = self.oldest_snapshot();
        let victims: Vec<u64> = {
            let sp = self.space.lock();
            sp.files
                .iter()
                .filter(|(seq, f)| {
                    **seq <= sp.last_checkpoint
                        && f.live == 0
                        && f.dead.is_some_and(|(at, when)| {
                            oldest.is_none_or(|o| o >= at) && (force || when.elapsed() >= self.opts.reclaim_grace)
                        })
                })
                .map(|(s, _)| *s)
                .collect()
        };
        for seq in victims {
            let p = self.layout.commit(seq);
            // Keep a few dead files to overwrite as future commit files (see `write_tmp`);
            // the rename need not be durable: after a crash the file is simply dead again.
            let recycle = self.recycle_ok && self.recycled.lock().len() < RECYCLE_POOL;
            let to = files::tmp_name(&self.layout.tmp(), self.writer, "recycled");
            let r = if recycle { self.vfs.rename(&p, &to) } else { self.vfs.remove_file(&p) };
            match r {
                // Emptied once out of `commits/` (never under its name, where a lagging reader
                // may look), so the pool holds inodes, not bytes.
                Ok(()) if recycle => match self.vfs.open_rw(&to).and_then(|f| f.set_len(0)) {
                    Ok(()) => self.recycled.lock().push(to),
                    Err(_) => {
                        let _ = self.vfs.remove_file(&to);
                    }
                },
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

    /// Relocates the live records of mostly-dead files into one new commit. Returns whether a
    /// relocation was published.
    fn compact(&self) -> Result<bool> {
        const BUDGET: u64 = 32 << 20;
        let base = self.current();
        let victims: HashSet<u64> = {
            let sp = self.space.lock();
            let mut cands: Vec<(u64, &FileInfo)> = sp
                .files
                .iter()
                .filter(|(s, f)| **s < base.seq && f.live > 0 && (f.live as f64) < 0.25 * f.total as f64)
                .map(|(s, f)| (*s, f))
                .collect();
            cands.sort_by(|a, b| (a.1.live * b.1.total).cmp(&(b.1.live * a.1.total)));
            let mut sum = 0;
            cands
                .into_iter()
                .take_while(|(_, f)| {
                    sum += f.live;
                    sum <= BUDGET
                })
                .map(|(s, _)| s)
                .collect()
        };
        if victims.is_empty() {
            return Ok(false);
        }
        let seq = base.seq + 1;
        let mut buf = self.begin_commit_file(seq);
        let mut written: HashMap<u64, Node> = HashMap::new();
        for (id, h) in base.registry.iter() {
            if h.records().any(|l| victims.contains(&l.seq)) {
                written.insert(*id, (*self.node_at(*id, h)?).clone());
            }
        }
        // Blobs: each blob record names its store and key, so liveness is one lookup.
        let by_id: HashMap<u64, _> = base.catalog.values().map(|m| (m.id, m.clone())).collect();
        let mut per_store: BTreeMap<u64, Vec<Tagged>> = BTreeMap::new();
        let mut blob_live = 0u64;
        let view = View { db: self, state: &base };
        for &v in &victims {
            let path = self.layout.commit(v);
            let f = self.files.get(v)?;
            let data = f.read_all().map_err(|e| Error::io(&path, e))?;
            for rec in record::records(&path, &data) {
                let (off, t, payload) = rec?;
                if t != tag::BLOB {
                    continue;
                }
                let (store, (krange, dup), value_at) =
                    parse_blob_header(payload).ok_or_else(|| Error::corrupt(&path, "bad blob record"))?;
                let Some(meta) = by_id.get(&store) else { continue };
                let from = Loc { seq: v, off: off as u32, len: (payload.len() + record::RECORD_HEADER_LEN) as u32 };
                let ikey = IKey::new(Bytes::copy_from_slice(&payload[krange]), dup);
                let live = cursor::get(&view, meta.root, &ikey)?
                    .is_some_and(|it| matches!(it.val, Val::Blob { loc, .. } if loc == from));
                if live {
                    let value = &payload[value_at..];
                    let mut p = payload[..value_at].to_vec();
                    p.extend_from_slice(value);
                    let off = record::put_record(&mut buf, tag::BLOB, &p);
                    let to = Loc { seq, off: off as u32, len: (buf.len() - off) as u32 };
                    blob_live += u64::from(to.len);
                    per_store.entry(store).or_default().push(Tagged {
                        key: ikey,
                        op: Mutation::Relocate { from, to: Val::Blob { loc: to, len: value.len() as u32 } },
                        tag: u32::MAX,
                    });
                }
            }
        }
        let mut freed = Vec::new();
        let mut deleted = Vec::new();
        let mut used: HashSet<u64> = HashSet::new();
        let mut new_id = || loop {
            let id: u64 = rand::random();
            if id != 0 && !base.registry.contains_key(&id) && used.insert(id) {
                return id;
            }
        };
        for (store, mut muts) in per_store {
            muts.sort_by(|a, b| a.key.cmp(&b.key));
            let meta = &by_id[&store];
            let applied = apply::apply(&view, meta.root, meta.options.slot_length as usize, &muts, &mut new_id)?;
            written.extend(applied.written);
            deleted.extend(applied.deleted);
            freed.extend(applied.freed_blobs);
        }
        let relocated: u64 = {
            let sp = self.space.lock();
            victims.iter().filter_map(|v| sp.files.get(v)).map(|f| f.live).sum()
        };
        let meta = CommitMeta { next_store_id: base.next_store_id, freed_blobs: freed, ..CommitMeta::default() };
        let sealed = Sealed { force_full: true, written: written.into_iter().collect(), deleted, meta, blob_live };
        match self.seal(&base, seq, buf, sealed) {
            Ok(Publish::Done) => {
                self.stats.relocated_bytes.fetch_add(relocated, Ordering::Relaxed);
                Ok(true)
            }
            Ok(Publish::Rebase) => Ok(false),
            Err(e) => Err(clone_err(&e)),
        }
    }
}
