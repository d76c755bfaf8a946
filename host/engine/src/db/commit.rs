//! The commit pipeline: group commit, validation, replay onto the freshest tree, and
//! exclusive publication of one commit file per batch.
//!
//! Threads that commit at the same moment queue up; one of them becomes the leader and
//! commits the whole queue as one batch, with one file and one pair of flushes. See
//! `docs/PROTOCOL.md` for the invariants each step keeps.

use super::maintenance::{Publish, Sealed};
use super::replay::{CommitSummary, StoreKeys};
use super::{DbInner, View, files};
use crate::error::{Error, Result};
use crate::format::meta::{CatalogChange, CommitMeta, Loc, StoreMeta, StoreOptions, StoreWrites, ValuePlacement};
use crate::format::node::{IKey, Node, Val};
use crate::format::record::{self, tag};
use crate::state::State;
use crate::tree::NodeSource;
use crate::tree::apply::{self, Mutation, Tagged};
use crate::{CommitInfo, INLINE_VALUE_MAX};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A buffered write.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    Put(Bytes),
    Delete,
}

/// What one transaction did to one store.
#[derive(Debug, Default)]
pub(crate) struct StoreWriteSet {
    pub name: String,
    /// Store id in the snapshot; `None` when the transaction created the store.
    pub store_id: Option<u64>,
    pub ops: BTreeMap<IKey, WriteOp>,
    pub reads: Vec<(Bound<IKey>, Bound<IKey>)>,
}

/// A catalog change made by a transaction.
#[derive(Debug, Clone)]
pub(crate) enum CatalogOp {
    Create { name: String, options: StoreOptions },
    Drop { name: String },
}

/// A transaction handed to the commit pipeline.
#[derive(Debug, Default)]
pub(crate) struct PendingTxn {
    pub snapshot_seq: u64,
    pub stores: Vec<StoreWriteSet>,
    pub names_read: Vec<String>,
    pub catalog: Vec<CatalogOp>,
    /// Test-only switch that skips key-level validation, to prove the checkers catch it.
    pub skip_validation: bool,
}

struct Slot {
    txn: Mutex<Option<PendingTxn>>,
    result: Mutex<Option<Result<CommitInfo>>>,
}

#[derive(Default)]
pub(crate) struct CommitQueue {
    pending: Vec<Arc<Slot>>,
    leader: bool,
}

/// Leadership of the commit pipeline; released on drop.
pub(crate) struct LeaderGuard<'a>(&'a DbInner);

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        self.0.queue.lock().leader = false;
        self.0.queue_cv.notify_all();
    }
}

impl DbInner {
    /// Waits until no batch is running and takes leadership (for maintenance).
    pub(crate) fn lead(&self) -> LeaderGuard<'_> {
        let mut q = self.queue.lock();
        while q.leader {
            self.queue_cv.wait(&mut q);
        }
        q.leader = true;
        LeaderGuard(self)
    }

    /// Commits a transaction, sharing the flush with any that commit at the same time.
    pub(crate) fn commit(&self, txn: PendingTxn) -> Result<CommitInfo> {
        self.check_poison()?;
        let slot = Arc::new(Slot { txn: Mutex::new(Some(txn)), result: Mutex::new(None) });
        let mut q = self.queue.lock();
        q.pending.push(slot.clone());
        loop {
            if let Some(r) = slot.result.lock().take() {
                return r;
            }
            if !q.leader {
                q.leader = true;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let guard = LeaderGuard(self);
                self.run_batch(&batch);
                if let Err(e) = self.maintenance(false) {
                    // Maintenance failures never undo a published commit; a failed sync poisons.
                    self.poison(&e);
                }
                drop(guard);
                q = self.queue.lock();
                continue;
            }
            self.queue_cv.wait(&mut q);
        }
    }

    fn run_batch(&self, batch: &[Arc<Slot>]) {
        let txns: Vec<PendingTxn> = batch.iter().map(|s| s.txn.lock().take().unwrap_or_default()).collect();
        let mut results: Vec<Option<Result<CommitInfo>>> = (0..txns.len()).map(|_| None).collect();
        // The commit lease keeps processes from racing for the same sequence number and
        // wasting their work on rebases. Safety never depends on it (see PROTOCOL.md,
        // "Fencing"): if it cannot be had in time we publish anyway; if the coordinator is
        // unreachable the batch fails fast.
        let lease = match self.opts.coordinator.acquire("commit", self.opts.lease_ttl, self.opts.lease_ttl) {
            Ok(l) => l,
            Err(e) => {
                let err = Error::Coordinator(e.to_string());
                for slot in batch {
                    *slot.result.lock() = Some(Err(clone_err(&err)));
                }
                return;
            }
        };
        self.batch_under_lease(&txns, &mut results, lease.as_ref());
        if let Some(l) = lease {
            // A failed release only delays the next holder by the TTL.
            let _ = self.opts.coordinator.release(&l);
        }
        for (slot, r) in batch.iter().zip(results) {
            *slot.result.lock() = Some(r.unwrap_or_else(|| Err(Error::Conflict("commit was not attempted".into()))));
        }
    }

    fn batch_under_lease(
        &self,
        txns: &[PendingTxn],
        results: &mut [Option<Result<CommitInfo>>],
        lease: Option<&crate::coord::Lease>,
    ) {
        let mut first = true;
        loop {
            // A rebase starts another attempt; renew so a long commit keeps the lease (one
            // that is lost anyway only costs a possible rebase: see PROTOCOL.md, "Fencing").
            if !std::mem::take(&mut first) {
                self.renew_lease(lease);
            }
            if let Err(e) = self.check_poison().and_then(|_| self.catch_up()) {
                fill(results, |_| Err(clone_err(&e)));
                break;
            }
            let base = self.current();
            let accepted = self.validate(&base, txns, results);
            if accepted.is_empty() {
                break;
            }
            match self.publish(&base, txns, &accepted) {
                Ok((Publish::Done, infos)) => {
                    for (i, info) in accepted.iter().zip(infos) {
                        results[*i] = Some(Ok(info));
                    }
                    break;
                }
                Ok((Publish::Rebase, _)) => {
                    self.stats.rebases.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    for i in &accepted {
                        results[*i] = Some(Err(clone_err(&e)));
                    }
                    break;
                }
            }
        }
    }

    /// Decides which transactions may commit on top of `base`, in queue order. A transaction
    /// conflicts when a commit after its snapshot (or an earlier member of this batch) wrote a
    /// key in a range it read or a key it wrote, or changed a store name it used.
    fn validate(&self, base: &State, txns: &[PendingTxn], results: &mut [Option<Result<CommitInfo>>]) -> Vec<usize> {
        let history = self.history.lock();
        let mut batch_keys: HashMap<u64, Vec<IKey>> = HashMap::new();
        let mut batch_all: HashSet<u64> = HashSet::new();
        let mut batch_names: HashSet<String> = HashSet::new();
        let mut catalog: HashMap<String, bool> = HashMap::new(); // name -> exists, after earlier batch members
        let mut accepted = Vec::new();
        for (i, t) in txns.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let verdict = (|| -> Result<()> {
                if t.snapshot_seq < history.base {
                    return Err(Error::Conflict(format!(
                        "snapshot {} predates the conflict history (from {}); retry",
                        t.snapshot_seq, history.base
                    )));
                }
                let newer: Vec<&Arc<CommitSummary>> =
                    history.entries.iter().filter(|c| c.seq > t.snapshot_seq).collect();
                let names = t.names_read.iter().chain(t.catalog.iter().map(|op| match op {
                    CatalogOp::Create { name, .. } | CatalogOp::Drop { name } => name,
                }));
                for n in names {
                    if batch_names.contains(n) || newer.iter().any(|c| c.names.iter().any(|m| m == n)) {
                        return Err(Error::Conflict(format!("store {n:?} was created or removed concurrently")));
                    }
                }
                for s in &t.stores {
                    let Some(id) = s.store_id else { continue };
                    let key_ranges = s.ops.keys().map(|k| (Bound::Included(k), Bound::Included(k)));
                    let read_ranges = s.reads.iter().map(|(a, b)| (bound_ref(a), bound_ref(b)));
                    let ranges: Vec<(Bound<&IKey>, Bound<&IKey>)> =
                        if t.skip_validation { Vec::new() } else { key_ranges.chain(read_ranges).collect() };
                    if ranges.is_empty() {
                        continue;
                    }
                    for c in &newer {
                        if let Some(w) = c.writes.get(&id)
                            && (w.all || ranges.iter().any(|r| any_in_range(&w.keys, r)))
                        {
                            return Err(Error::Conflict(format!(
                                "store {:?}: a key this transaction read or wrote was changed by commit {}",
                                s.name, c.seq
                            )));
                        }
                    }
                    if batch_all.contains(&id)
                        || batch_keys.get(&id).is_some_and(|keys| ranges.iter().any(|r| any_in_range(keys, r)))
                    {
                        return Err(Error::Conflict(format!(
                            "store {:?}: a concurrent transaction in the same commit batch changed a key this one used",
                            s.name
                        )));
                    }
                }
                // Catalog consistency against the base plus earlier batch members.
                let mut local = catalog.clone();
                for op in &t.catalog {
                    match op {
                        CatalogOp::Create { name, .. } => {
                            let exists = *local.get(name).unwrap_or(&base.catalog.contains_key(name));
                            if exists {
                                return Err(Error::StoreExists(name.clone()));
                            }
                            local.insert(name.clone(), true);
                        }
                        CatalogOp::Drop { name } => {
                            let exists = *local.get(name).unwrap_or(&base.catalog.contains_key(name));
                            if !exists {
                                return Err(Error::StoreNotFound(name.clone()));
                            }
                            local.insert(name.clone(), false);
                        }
                    }
                }
                for s in &t.stores {
                    if !s.ops.is_empty() && !*local.get(&s.name).unwrap_or(&base.catalog.contains_key(&s.name)) {
                        return Err(Error::StoreNotFound(s.name.clone()));
                    }
                }
                catalog = local;
                Ok(())
            })();
            match verdict {
                Ok(()) => {
                    for s in &t.stores {
                        if let Some(id) = s.store_id
                            && !s.ops.is_empty()
                        {
                            // Only the stores this member wrote need re-sorting.
                            let keys = batch_keys.entry(id).or_default();
                            keys.extend(s.ops.keys().cloned());
                            keys.sort();
                        }
                    }
                    for op in &t.catalog {
                        let (CatalogOp::Create { name, .. } | CatalogOp::Drop { name }) = op;
                        batch_names.insert(name.clone());
                        if let Some(m) = base.catalog.get(name) {
                            batch_all.insert(m.id);
                        }
                    }
                    accepted.push(i);
                }
                Err(e) => {
                    if matches!(e, Error::Conflict(_)) {
                        self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    results[i] = Some(Err(e));
                }
            }
        }
        accepted
    }

    /// Applies the accepted transactions to `base`, writes the commit file and publishes it
    /// as sequence `base.seq + 1`.
    fn publish(&self, base: &State, txns: &[PendingTxn], accepted: &[usize]) -> Result<(Publish, Vec<CommitInfo>)> {
        let seq = base.seq + 1;
        let mut buf = self.begin_commit_file(seq);
        let mut catalog = base.catalog.clone();
        let mut next_store_id = base.next_store_id.max(1);
        let mut used_ids: HashSet<u64> = HashSet::new();
        let mut new_id = || loop {
            let id: u64 = rand::random();
            if id != 0 && !base.registry.contains_key(&id) && used_ids.insert(id) {
                return id;
            }
        };
        let mut extra: HashMap<u64, Arc<Node>> = HashMap::new();
        let mut written: Vec<(u64, Node)> = Vec::new();
        let mut deleted: Vec<u64> = Vec::new();
        let mut freed_blobs: Vec<Loc> = Vec::new();
        let mut writes: BTreeMap<u64, StoreKeys> = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut changed_stores: Vec<String> = Vec::new();
        let mut blob_live: u64 = 0;

        // Catalog changes first: a transaction may create a store and write to it.
        for &ti in accepted {
            for op in &txns[ti].catalog {
                match op {
                    CatalogOp::Create { name, options } => {
                        let root = new_id();
                        let meta = StoreMeta {
                            name: name.clone(),
                            id: next_store_id,
                            options: options.clone(),
                            root,
                            count: 0,
                            created_seq: seq,
                        };
                        next_store_id += 1;
                        extra.insert(root, Arc::new(Node::empty_leaf()));
                        written.push((root, Node::empty_leaf()));
                        writes.entry(meta.id).or_default().all = true;
                        catalog.insert(name.clone(), Arc::new(meta));
                        names.push(name.clone());
                        changed_stores.push(name.clone());
                    }
                    CatalogOp::Drop { name } => {
                        if let Some(meta) = catalog.remove(name) {
                            if extra.contains_key(&meta.root) {
                                // Created and dropped in this batch: forget its fresh root.
                                written.retain(|(id, _)| *id != meta.root);
                            } else {
                                self.collect_tree(base, meta.root, &mut deleted, &mut freed_blobs)?;
                            }
                            writes.entry(meta.id).or_default().all = true;
                        }
                        names.push(name.clone());
                        changed_stores.retain(|n| n != name);
                    }
                }
            }
        }

        // Item-level changes, per store, merged across the batch.
        let mut per_store: BTreeMap<String, Vec<Tagged>> = BTreeMap::new();
        for (pos, &ti) in accepted.iter().enumerate() {
            for s in &txns[ti].stores {
                if s.ops.is_empty() {
                    continue;
                }
                let meta = catalog.get(&s.name).ok_or_else(|| Error::StoreNotFound(s.name.clone()))?.clone();
                let list = per_store.entry(s.name.clone()).or_default();
                for (k, op) in &s.ops {
                    let op = match op {
                        WriteOp::Delete => Mutation::Delete,
                        WriteOp::Put(v) => {
                            let spill =
                                meta.options.value_placement == ValuePlacement::Blob || v.len() > INLINE_VALUE_MAX;
                            if spill {
                                let loc = put_blob(&mut buf, seq, meta.id, k, v);
                                blob_live += u64::from(loc.len);
                                Mutation::Put(Val::Blob { loc, len: v.len() as u32 })
                            } else {
                                Mutation::Put(Val::Inline(v.clone()))
                            }
                        }
                    };
                    list.push(Tagged { key: k.clone(), op, tag: pos as u32 });
                }
            }
        }

        let mut merged = vec![false; accepted.len()];
        let history = self
            .history
            .lock()
            .entries
            .iter()
            .filter(|c| c.seq > base.seq.saturating_sub(4096))
            .cloned()
            .collect::<Vec<_>>();
        for (name, mut muts) in per_store {
            // Stable sort keeps queue order; keys never repeat across accepted transactions.
            muts.sort_by(|a, b| a.key.cmp(&b.key));
            let meta = catalog.get(&name).expect("checked above").clone();
            let src = BatchSource { view: View { db: self, state: base }, extra: &extra };
            let applied = apply::apply(&src, meta.root, meta.options.slot_length as usize, &muts, &mut new_id)?;
            let keys = writes.entry(meta.id).or_default();
            keys.keys.extend(muts.iter().map(|m| m.key.clone()));
            for (leaf, tags) in &applied.leaf_tags {
                let touched_by_newer = |t: u32| {
                    let snap = txns[accepted[t as usize]].snapshot_seq;
                    history.iter().any(|c| c.seq > snap && c.nodes.contains(leaf))
                };
                for &t in tags {
                    if tags.len() > 1 || touched_by_newer(t) {
                        merged[t as usize] = true;
                    }
                }
            }
            for (id, node) in applied.written {
                if let Some(root_node) = extra.get_mut(&id) {
                    *root_node = Arc::new(node.clone());
                    written.retain(|(w, _)| *w != id);
                }
                written.push((id, node));
            }
            deleted.extend(applied.deleted);
            freed_blobs.extend(applied.freed_blobs);
            if applied.count_delta != 0 {
                let mut m = (*meta).clone();
                m.count = (m.count as i64 + applied.count_delta).max(0) as u64;
                catalog.insert(name.clone(), Arc::new(m));
                if !changed_stores.contains(&name) {
                    changed_stores.push(name);
                }
            }
        }

        for k in writes.values_mut() {
            k.keys.sort();
            k.keys.dedup();
        }
        let catalog_changes: Vec<CatalogChange> = names
            .iter()
            .filter(|n| !catalog.contains_key(*n))
            .map(|n| CatalogChange::Drop(n.clone()))
            .chain(changed_stores.iter().filter_map(|n| catalog.get(n)).map(|m| CatalogChange::Put((**m).clone())))
            .collect();
        let meta = CommitMeta {
            txns: accepted.len() as u32,
            registry: Vec::new(),
            catalog: catalog_changes,
            writes: writes
                .iter()
                .map(|(id, k)| StoreWrites {
                    store: *id,
                    all: k.all,
                    keys: k.keys.iter().map(|k| (k.key.to_vec(), k.dup)).collect(),
                })
                .collect(),
            names,
            freed_blobs,
            next_store_id,
            blob_bytes: 0,
        };
        let sealed = Sealed { force_full: false, written, deleted, meta, blob_live };
        if self.seal(base, seq, buf, sealed)? == Publish::Rebase {
            return Ok((Publish::Rebase, Vec::new()));
        }
        let n_merged = merged.iter().filter(|m| **m).count() as u64;
        self.stats.merges.fetch_add(n_merged, Ordering::Relaxed);
        self.stats.commits.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        Ok((Publish::Done, merged.into_iter().map(|m| CommitInfo { seq, merged: m }).collect()))
    }

    /// Extends the commit lease, if one is held. Failures are ignored: the lease only saves work.
    pub(crate) fn renew_lease(&self, lease: Option<&crate::coord::Lease>) {
        if let Some(l) = lease {
            let _ = self.opts.coordinator.renew(l, self.opts.lease_ttl);
        }
    }

    /// Writes `buf` to a temp file and makes it durable. Any failure poisons the handle.
    pub(crate) fn write_tmp(&self, seq: u64, buf: &[u8]) -> Result<std::path::PathBuf> {
        // Reusing a reclaimed commit file avoids allocating (and later freeing) an inode per
        // commit, which on some file systems costs more than the flush itself.
        let recycled = self.recycled.lock().pop();
        if let Some(old) = recycled {
            // A fresh name: temp files are told apart from dead writers' debris by age.
            let path = files::tmp_name(&self.layout.tmp(), self.writer, &seq.to_string());
            if self.vfs.rename(&old, &path).is_err() {
                let _ = self.vfs.remove_file(&old);
                return self.write_tmp(seq, buf);
            }
            let fail = |e: io::Error| self.poison(&Error::io(&path, e));
            match self.vfs.open_rw(&path) {
                Ok(f) => {
                    f.write_at(buf, 0).map_err(fail)?;
                    f.set_len(buf.len() as u64).map_err(fail)?;
                    f.sync_data().map_err(fail)?;
                    return Ok(path);
                }
                Err(_) => {
                    let _ = self.vfs.remove_file(&path);
                }
            }
        }
        let tmp = files::tmp_name(&self.layout.tmp(), self.writer, &seq.to_string());
        let fail = |e: io::Error| self.poison(&Error::io(&tmp, e));
        let f = self.vfs.create_new(&tmp).map_err(fail)?;
        f.write_at(buf, 0).map_err(fail)?;
        f.sync_data().map_err(fail)?;
        Ok(tmp)
    }

    /// Publishes a synced temp file as commit `seq` with an exclusive link, then makes the
    /// name durable. Call with the apply lock held. Any failure poisons the handle.
    pub(crate) fn link_tmp(&self, seq: u64, tmp: &std::path::Path) -> Result<Publish> {
        let fail = |e: io::Error, p: &std::path::Path| self.poison(&Error::io(p, e));
        let target = self.layout.commit(seq);
        match self.vfs.publish(tmp, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = self.vfs.remove_file(tmp);
                return Ok(Publish::Rebase);
            }
            Err(e) => return Err(fail(e, &target)),
        }
        // A writer paused since before a checkpoint may have published into a sequence number
        // that was already used and reclaimed; such a file is void: take it back and rebase.
        // That needs the old file to have been published, checkpointed, dead and reclaimed
        // after a grace period, all after we last saw that number free. So if we looked less
        // than a grace period ago (measured now, after publishing), the listing is unneeded.
        if self.last_catch_up.lock().elapsed() >= self.opts.reclaim_grace {
            let ckpts = self.layout.checkpoints();
            let names = self.vfs.list_dir(&ckpts).map_err(|e| fail(e, &ckpts))?;
            if names.iter().filter_map(|n| files::parse_seq(n, "ckpt")).any(|c| c >= seq) {
                self.vfs.remove_file(&target).map_err(|e| fail(e, &target))?;
                return Ok(Publish::Rebase);
            }
        }
        let dir = self.layout.commits();
        self.vfs.sync_dir(&dir).map_err(|e| fail(e, &dir))?;
        Ok(Publish::Done)
    }

    /// Collects every node (and blob) of a tree for removal.
    fn collect_tree(&self, state: &State, root: u64, nodes: &mut Vec<u64>, blobs: &mut Vec<Loc>) -> Result<()> {
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            nodes.push(id);
            match &*self.node_in(state, id)? {
                Node::Inner { children, .. } => stack.extend(children),
                Node::Leaf(items) => {
                    for it in items {
                        if let Val::Blob { loc, .. } = it.val {
                            blobs.push(loc);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn put_blob(buf: &mut Vec<u8>, seq: u64, store: u64, k: &IKey, v: &[u8]) -> Loc {
    let mut payload = Vec::with_capacity(v.len() + k.key.len() + 20);
    payload.extend_from_slice(&store.to_le_bytes());
    crate::format::codec::put_varint(&mut payload, k.key.len() as u64);
    payload.extend_from_slice(&k.key);
    crate::format::codec::put_varint(&mut payload, k.dup);
    payload.extend_from_slice(v);
    let off = record::put_record(buf, tag::BLOB, &payload);
    Loc { seq, off: off as u32, len: (buf.len() - off) as u32 }
}

/// Node source for a batch: the base snapshot plus roots of stores created in the batch.
struct BatchSource<'a> {
    view: View<'a>,
    extra: &'a HashMap<u64, Arc<Node>>,
}

impl NodeSource for BatchSource<'_> {
    fn node(&self, id: u64) -> Result<Arc<Node>> {
        match self.extra.get(&id) {
            Some(n) => Ok(n.clone()),
            None => self.view.node(id),
        }
    }
}

fn bound_ref(b: &Bound<IKey>) -> Bound<&IKey> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether any of the sorted `keys` falls in the range.
pub(crate) fn any_in_range(keys: &[IKey], (lo, hi): &(Bound<&IKey>, Bound<&IKey>)) -> bool {
    let start = match lo {
        Bound::Included(k) => keys.partition_point(|x| x < *k),
        Bound::Excluded(k) => keys.partition_point(|x| x <= *k),
        Bound::Unbounded => 0,
    };
    match keys.get(start) {
        None => false,
        Some(first) => match hi {
            Bound::Included(k) => first <= *k,
            Bound::Excluded(k) => first < *k,
            Bound::Unbounded => true,
        },
    }
}

fn fill(results: &mut [Option<Result<CommitInfo>>], f: impl Fn(usize) -> Result<CommitInfo>) {
    for (i, r) in results.iter_mut().enumerate() {
        if r.is_none() {
            *r = Some(f(i));
        }
    }
}

/// Errors are not `Clone` (they carry `io::Error`); batch members each get a faithful copy.
pub(crate) fn clone_err(e: &Error) -> Error {
    match e {
        Error::Conflict(s) => Error::Conflict(s.clone()),
        Error::Poisoned(s) => Error::Poisoned(s.clone()),
        Error::Corrupt { file, detail } => Error::Corrupt { file: file.clone(), detail: detail.clone() },
        Error::UnsupportedFormat { file, found, supported } => {
            Error::UnsupportedFormat { file: file.clone(), found: *found, supported: *supported }
        }
        Error::Io { path, source } => {
            Error::Io { path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
        }
        Error::StoreNotFound(s) => Error::StoreNotFound(s.clone()),
        Error::StoreExists(s) => Error::StoreExists(s.clone()),
        Error::SnapshotTooOld(s) => Error::SnapshotTooOld(*s),
        Error::Coordinator(s) => Error::Coordinator(s.clone()),
        Error::CommitTooLarge { bytes } => Error::CommitTooLarge { bytes: *bytes },
        other => Error::Conflict(other.to_string()),
    }
}
