//! The commit writer: group commit, merging the accepted transactions onto the freshest tree,
//! sealing one commit file per batch and publishing it with a create-if-absent.
//!
//! Threads that commit at the same moment queue up; one of them becomes the leader and
//! commits the whole queue as one batch, with one file and one pair of flushes. See
//! `docs/PROTOCOL.md` for the invariants each step keeps.

use super::catch_up::read_header;
use super::contribute::{Group, Wait, verdict_of};
use super::validate::StoreKeys;
use super::{DbInner, View};
use crate::error::{Error, Result};
use crate::format::meta::{
    CatalogChange, CommitMeta, FileHeader, Handle, Loc, RegistryChange, StoreMeta, StoreWrites, ValuePlacement,
};
use crate::format::node::{IKey, Node, Val};
use crate::format::record::{self, MAGIC_COMMIT, tag};
use crate::state::State;
use crate::tree::NodeSource;
use crate::tree::apply::{self, Mutation, Tagged};
use crate::txn::write_set::{CatalogOp, PendingTxn, WriteOp};
use crate::{CommitInfo, INLINE_VALUE_MAX};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
                // Upkeep after the batch never undoes a published commit. A failed write or sync
                // has poisoned the handle where it happened; anything else (a file another
                // process reclaimed meanwhile) only postpones the upkeep to the next batch.
                let _ = self.maintenance(false);
                drop(guard);
                q = self.queue.lock();
                continue;
            }
            self.queue_cv.wait(&mut q);
        }
    }

    fn run_batch(&self, batch: &[Arc<Slot>]) {
        let mut txns: Vec<PendingTxn> = batch.iter().map(|s| s.txn.lock().take().unwrap_or_default()).collect();
        let mut results: Vec<Option<Result<CommitInfo>>> = (0..txns.len()).map(|_| None).collect();
        // The commit lease keeps processes from racing for the same sequence number and
        // wasting their work on rebases. Safety never depends on it (see PROTOCOL.md,
        // "Fencing"): if it cannot be had in time we publish anyway; if the coordinator is
        // unreachable the batch fails fast, before anything is written.
        let tried = match self.opts.coordinator.try_acquire("commit", self.opts.lease_ttl) {
            Ok(Some(l)) => Some((Some(l), None)),
            // Taken: offer the batch to the holder's commit (cross-process group commit).
            Ok(None) if self.opts.offer_batches => self.offer(&txns, &mut results),
            Ok(None) => None,
            Err(e) => {
                fill(&mut results, |_| Err(Error::Coordinator(e.to_string())));
                Some((None, None))
            }
        };
        let (lease, own) = tried.unwrap_or_else(|| {
            match self.opts.coordinator.acquire("commit", self.opts.lease_ttl, self.opts.lease_ttl) {
                Ok(l) => (l, None),
                Err(e) => {
                    fill(&mut results, |_| Err(Error::Coordinator(e.to_string())));
                    (None, None)
                }
            }
        });
        if results.iter().any(Option::is_none) {
            self.batch_under_lease(&mut txns, &mut results, lease.as_ref(), own);
        }
        if let Some(l) = lease {
            // A failed release only delays the next holder by the TTL.
            let _ = self.opts.coordinator.release(&l);
        }
        if let Some(id) = own {
            self.remove_pending(id);
        }
        for (slot, r) in batch.iter().zip(results) {
            *slot.result.lock() = Some(r.unwrap_or_else(|| Err(Error::Conflict("commit was not attempted".into()))));
        }
    }

    /// Offers the batch to other processes' commits and waits (`contribute.rs`). Returns the
    /// lease to publish under and the batch's identity, `(None, None)` once decided, or
    /// `None` if nothing could be offered.
    fn offer(
        &self,
        txns: &[PendingTxn],
        results: &mut [Option<Result<CommitInfo>>],
    ) -> Option<(Option<crate::coord::Lease>, Option<u64>)> {
        let id = loop {
            let id: u64 = rand::random();
            if id != 0 {
                break id;
            }
        };
        self.put_pending(id, txns).ok()?;
        Some(match self.contribute(id, txns, results) {
            Wait::Decided => (None, None),
            Wait::Publish(lease) => (lease, Some(id)),
        })
    }

    /// Commits `txns` (this process's batch, which carries identity `own` once it was offered
    /// to other processes) together with the batches other processes offered, rebasing until
    /// the commit is published or nothing is left to commit.
    fn batch_under_lease(
        &self,
        txns: &mut Vec<PendingTxn>,
        results: &mut Vec<Option<Result<CommitInfo>>>,
        lease: Option<&crate::coord::Lease>,
        own: Option<u64>,
    ) {
        let local = txns.len();
        let snapshot = txns.iter().map(|t| t.snapshot_seq).min().unwrap_or(0);
        let mut first = true;
        loop {
            // A rebase starts another attempt; renew so a long commit keeps the lease (one
            // that is lost anyway only costs a possible rebase: see PROTOCOL.md, "Fencing").
            if !std::mem::take(&mut first) {
                self.renew_lease(lease);
            }
            txns.truncate(local);
            results.truncate(local);
            // Catching up may show that another process's commit decided our offered batch.
            if let Some(id) = own {
                if self.settle(id, snapshot, results) {
                    break;
                }
            } else if let Err(e) = self.check_poison().and_then(|_| self.catch_up()) {
                fill(results, |_| Err(e.clone()));
                break;
            }
            crate::failpoint::hit("leader-base");
            let base = self.current();
            let mut groups: Vec<Group> = own.map(|id| Group { id, range: 0..local }).into_iter().collect();
            groups.extend(self.collect_pending(&base, own, txns));
            results.resize_with(txns.len(), || None);
            let accepted = self.validate(&base, txns, results);
            // A commit with no writes still carries verdicts: an offered batch must be decided
            // on the chain, or another publisher could still include it after we answered.
            if accepted.is_empty() && groups.is_empty() {
                break;
            }
            match self.write_batch(&base, txns, &accepted, &groups, results) {
                Ok((Publish::Done, infos)) => {
                    let mine = accepted.iter().zip(&infos).filter(|(i, _)| **i < local);
                    let (n, merged) = mine.fold((0, 0), |(n, m), (_, info)| (n + 1, m + u64::from(info.merged)));
                    self.stats.commits.fetch_add(n, Ordering::Relaxed);
                    self.stats.merges.fetch_add(merged, Ordering::Relaxed);
                    for (i, info) in accepted.iter().zip(infos) {
                        results[*i] = Some(Ok(info));
                    }
                    for g in groups.iter().filter(|g| Some(g.id) != own) {
                        self.remove_pending(g.id);
                    }
                    break;
                }
                // A file the base referenced was reclaimed while we merged: the base is stale,
                // so another commit exists and publishing would lose the race anyway.
                Ok((Publish::Rebase, _)) | Err(Error::SnapshotTooOld(_)) => {
                    self.stats.rebases.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    match own {
                        // Our batch was offered, so another process may still include it: none
                        // of its transactions has an outcome we can vouch for.
                        Some(_) => {
                            let e = if matches!(e, Error::Poisoned(_)) {
                                e
                            } else {
                                Error::CommitUnknown { seq: base.seq + 1 }
                            };
                            results[..local].iter_mut().for_each(|r| *r = Some(Err(e.clone())));
                        }
                        None => {
                            for i in accepted.iter().filter(|i| **i < local) {
                                results[*i] = Some(Err(e.clone()));
                            }
                        }
                    }
                    break;
                }
            }
        }
        txns.truncate(local);
        results.truncate(local);
    }

    /// Merges the accepted transactions onto `base`, seals the commit file and publishes it as
    /// sequence `base.seq + 1`.
    fn write_batch(
        &self,
        base: &State,
        txns: &[PendingTxn],
        accepted: &[usize],
        groups: &[Group],
        results: &[Option<Result<CommitInfo>>],
    ) -> Result<(Publish, Vec<CommitInfo>)> {
        let seq = base.seq + 1;
        let (mut buf, nonce) = self.begin_commit_file(base);
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
            verdicts: groups.iter().map(|g| verdict_of(g, results, accepted, &merged)).collect(),
        };
        let sealed = Sealed { force_full: false, written, deleted, meta, blob_live };
        if self.seal(base, nonce, buf, sealed)? == Publish::Rebase {
            return Ok((Publish::Rebase, Vec::new()));
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        Ok((Publish::Done, merged.into_iter().map(|m| CommitInfo { seq, merged: m }).collect()))
    }

    /// Extends the commit lease, if one is held. Failures are ignored: the lease only saves work.
    pub(crate) fn renew_lease(&self, lease: Option<&crate::coord::Lease>) {
        if let Some(l) = lease {
            let _ = self.opts.coordinator.renew(l, self.opts.lease_ttl);
        }
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

fn fill(results: &mut [Option<Result<CommitInfo>>], f: impl Fn(usize) -> Result<CommitInfo>) {
    for (i, r) in results.iter_mut().enumerate() {
        if r.is_none() {
            *r = Some(f(i));
        }
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
    /// The number is taken by another commit, or ours turned out void: catch up and retry.
    Rebase,
}

/// Whether a commit we published is on the chain every reader follows.
enum ChainVerdict {
    OnChain,
    /// Its number had been used, checkpointed and reclaimed while we were paused.
    Void,
    Unknown,
}

impl DbInner {
    /// Appends node records and the metadata to `buf` (a file begun by
    /// [`DbInner::begin_commit_file`] for `base.seq + 1`), publishes it and installs it.
    /// `meta.registry` is filled in here.
    pub(crate) fn seal(&self, base: &State, nonce: u64, mut buf: Vec<u8>, mut s: Sealed) -> Result<Publish> {
        let seq = base.seq + 1;
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
        crate::failpoint::hit("before-publish");
        // From the publication to the install nobody else may change the in-memory state, or
        // a catch-up could apply our own file before we install it.
        let _apply = self.apply_lock.lock();
        // The same number is not enough: the state must be the very one we built on.
        let cur = self.current();
        if cur.seq != base.seq || cur.head() != base.head() || self.publish(seq, nonce, &buf)? == Publish::Rebase {
            return Ok(Publish::Rebase);
        }
        self.stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let node_live: u64 = node_locs.iter().map(|(l, _)| u64::from(l.len)).sum();
        for (loc, node) in node_locs {
            self.cache.insert(loc, Arc::new(node));
        }
        self.install(base, nonce, seq, &s.meta, buf.len() as u64, node_live + s.blob_live)?;
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

    /// Starts the commit file that follows `base` (prefix and header record) and returns it
    /// with the commit's fresh identity.
    pub(crate) fn begin_commit_file(&self, base: &State) -> (Vec<u8>, u64) {
        let nonce = loop {
            let n: u64 = rand::random();
            if n != 0 {
                break n;
            }
        };
        let mut buf = Vec::with_capacity(1 << 16);
        record::begin_file(&mut buf, MAGIC_COMMIT);
        let header = FileHeader { db_id: self.db_id, seq: base.seq + 1, writer: self.writer, nonce, prev: base.head() };
        record::put_record(&mut buf, tag::HEADER, &postcard::to_allocvec(&header).expect("header serialises"));
        (buf, nonce)
    }

    /// Publishes the commit file as `seq` with a create-if-absent, checks that the number was
    /// really free, and reports whether it counts. Call with the apply lock held. An I/O
    /// failure poisons the handle.
    fn publish(&self, seq: u64, nonce: u64, buf: &[u8]) -> Result<Publish> {
        let target = self.layout.commit(seq);
        // A checkpoint at or above `seq` already: the number was used while we were away
        // (only a listing made after the create can prove the opposite, below).
        if self.newest_checkpoint()?.is_some_and(|c| c >= seq) {
            return Ok(Publish::Rebase);
        }
        crate::failpoint::hit("publish-checked");
        match self.vfs.put_new(&target, buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A retried create can report EEXIST after it succeeded (NFS retransmits a
                // link; an object store's conditional PUT times out but lands): the name is
                // ours if it holds our identity.
                if self.file_identity(&target)? != Some(nonce) {
                    return Ok(Publish::Rebase);
                }
                self.vfs.persist_name(&target).map_err(|e| self.poison(&Error::io(&target, e)))?;
            }
            // Our work file was swept while we were paused: nothing was published.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Publish::Rebase),
            Err(e) => return Err(self.poison(&Error::io(&target, e))),
        }
        crate::failpoint::hit("after-publish");
        match self.chain_verdict(seq, nonce)? {
            ChainVerdict::OnChain => Ok(Publish::Done),
            ChainVerdict::Void => {
                // Nobody follows a void file (readers check checkpoints after reading), so
                // removing it is tidiness, not safety.
                let _ = self.vfs.remove_file(&target);
                Ok(Publish::Rebase)
            }
            ChainVerdict::Unknown => Err(Error::CommitUnknown { seq }),
        }
    }

    /// `seq` was free when we created it. It was never used, or it was used, covered by a
    /// checkpoint and reclaimed while we were paused (and then our file is void). Only the
    /// second leaves a checkpoint at or above `seq` that existed before our create; a
    /// checkpoint written after it (by a process that read our file) lists our identity.
    fn chain_verdict(&self, seq: u64, nonce: u64) -> Result<ChainVerdict> {
        loop {
            let covering: Vec<u64> =
                self.list_seqs(&self.layout.checkpoints(), "ckpt")?.into_iter().filter(|&c| c >= seq).collect();
            if covering.is_empty() {
                return Ok(ChainVerdict::OnChain);
            }
            for c in covering {
                // A checkpoint removed since the listing has newer ones; try the next.
                let Some(w) = self.checkpoint_chain(c)? else { continue };
                return Ok(match w.nonce_at(seq) {
                    Some(n) if n == nonce => ChainVerdict::OnChain,
                    Some(_) => ChainVerdict::Void,
                    None => ChainVerdict::Unknown,
                });
            }
            // Every checkpoint we listed was replaced while we read: list again. (Concluding
            // "no checkpoint covers it" here would accept a void file.)
        }
    }

    /// The identity in a commit file's header; `None` if the file is gone.
    fn file_identity(&self, path: &Path) -> Result<Option<u64>> {
        let Some(f) = self.open_if_exists(path)? else { return Ok(None) };
        let len = f.len().map_err(|e| Error::io(path, e))?;
        Ok(Some(read_header(path, &*f, MAGIC_COMMIT, len)?.nonce))
    }
}
