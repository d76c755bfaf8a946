//! Structural verification and inspection of a database (behind `sop verify` and
//! `sop inspect`).

use super::{Database, View};
use crate::error::Result;
use crate::format::meta::StoreMeta;
use crate::format::node::{IKey, Node, Val};
use crate::tree::NodeSource;
use std::collections::{BTreeMap, HashSet};

/// Shape and size of one store.
#[derive(Debug, Clone)]
pub struct StoreReport {
    /// The store's catalog entry (options, count, root).
    pub meta: StoreMeta,
    /// Levels from root to leaves (1: the root is a leaf).
    pub height: usize,
    /// Leaf nodes.
    pub leaves: u64,
    /// Inner nodes.
    pub inner: u64,
    /// Items found by walking the leaves.
    pub items: u64,
    /// Average leaf fill, items / slot length (0..=1).
    pub leaf_fill: f64,
    /// Values stored as blobs.
    pub blobs: u64,
}

/// What `Database::inspect` reports.
#[derive(Debug, Clone)]
pub struct DbReport {
    /// The latest commit.
    pub seq: u64,
    /// Stores, by name.
    pub stores: Vec<StoreReport>,
    /// Commit files tracked.
    pub commit_files: u64,
    /// Their total size.
    pub file_bytes: u64,
    /// Bytes still referenced.
    pub live_bytes: u64,
    /// Registry entries.
    pub nodes: u64,
}

/// What `Database::verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Nodes checked.
    pub nodes_checked: u64,
    /// Items checked.
    pub items_checked: u64,
    /// Every problem, one sentence each. Empty means the database is sound.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Walk<'a> {
    view: View<'a>,
    seen: HashSet<u64>,
    problems: Vec<String>,
    leaves: u64,
    inner: u64,
    items: u64,
    blobs: u64,
    leaf_depths: HashSet<usize>,
    check_blobs: bool,
    /// Blob records the leaves reference.
    blob_locs: Vec<crate::format::meta::Loc>,
}

impl Walk<'_> {
    fn node(&mut self, store: &str, id: u64, depth: usize, lo: Option<&IKey>, hi: Option<&IKey>, is_root: bool) {
        if !self.seen.insert(id) {
            self.problems.push(format!("store {store:?}: node {id:#x} is reachable twice"));
            return;
        }
        let node = match self.view.node(id) {
            Ok(n) => n,
            Err(e) => {
                self.problems.push(format!("store {store:?}: node {id:#x} cannot be read: {e}"));
                return;
            }
        };
        let in_range = |k: &IKey| lo.is_none_or(|l| k >= l) && hi.is_none_or(|h| k < h);
        match &*node {
            Node::Leaf(items) => {
                self.leaves += 1;
                self.leaf_depths.insert(depth);
                if items.is_empty() && !is_root {
                    self.problems.push(format!("store {store:?}: non-root leaf {id:#x} is empty"));
                }
                for w in items.windows(2) {
                    if w[0].ikey >= w[1].ikey {
                        self.problems.push(format!("store {store:?}: leaf {id:#x} keys out of order"));
                    }
                }
                for it in items.iter() {
                    if !in_range(&it.ikey) {
                        self.problems
                            .push(format!("store {store:?}: leaf {id:#x} holds a key outside its parent's range"));
                    }
                    if let Val::Blob { loc, len } = &it.val {
                        self.blobs += 1;
                        self.blob_locs.push(*loc);
                        if self.check_blobs {
                            match self.view.db.read_blob(*loc) {
                                Ok(b) if b.len() == *len as usize => {}
                                Ok(b) => self.problems.push(format!(
                                    "store {store:?}: blob at {loc:?} has {} bytes, leaf says {len}",
                                    b.len()
                                )),
                                Err(e) => self.problems.push(format!("store {store:?}: blob at {loc:?}: {e}")),
                            }
                        }
                    }
                }
                self.items += items.len() as u64;
            }
            Node::Inner { keys, children } => {
                self.inner += 1;
                for w in keys.windows(2) {
                    if w[0] >= w[1] {
                        self.problems.push(format!("store {store:?}: inner node {id:#x} separators out of order"));
                    }
                }
                for k in keys {
                    if !in_range(k) {
                        self.problems.push(format!("store {store:?}: inner node {id:#x} separator outside its range"));
                    }
                }
                for (i, c) in children.iter().enumerate() {
                    let clo = if i == 0 { lo } else { Some(&keys[i - 1]) };
                    let chi = if i == keys.len() { hi } else { Some(&keys[i]) };
                    self.node(store, *c, depth + 1, clo, chi, false);
                }
            }
        }
    }
}

impl Database {
    fn walk_store<'a>(&self, view: View<'a>, meta: &StoreMeta, check_blobs: bool) -> (StoreReport, Walk<'a>) {
        let mut w = Walk {
            view,
            seen: HashSet::new(),
            problems: Vec::new(),
            leaves: 0,
            inner: 0,
            items: 0,
            blobs: 0,
            leaf_depths: HashSet::new(),
            check_blobs,
            blob_locs: Vec::new(),
        };
        w.node(&meta.name, meta.root, 1, None, None, true);
        let report = StoreReport {
            meta: meta.clone(),
            height: w.leaf_depths.iter().copied().max().unwrap_or(0),
            leaves: w.leaves,
            inner: w.inner,
            items: w.items,
            leaf_fill: if w.leaves == 0 {
                0.0
            } else {
                w.items as f64 / (w.leaves as f64 * f64::from(meta.options.slot_length))
            },
            blobs: w.blobs,
        };
        (report, w)
    }

    /// Stores, their shape, and space use.
    pub fn inspect(&self) -> Result<DbReport> {
        self.inner.check_poison()?;
        let state = self.inner.current();
        let view = || View { db: &self.inner, state: &state };
        let stores = state.catalog.values().map(|m| self.walk_store(view(), m, false).0).collect();
        let space = self.inner.space.lock();
        Ok(DbReport {
            seq: state.seq,
            stores,
            commit_files: space.file_count(),
            file_bytes: space.total_bytes(),
            live_bytes: space.live_bytes(),
            nodes: state.registry.len() as u64,
        })
    }

    /// A full structural check of the latest state: every registry entry readable and
    /// checksummed, key order inside nodes and across parent/child ranges, balanced height,
    /// no node reachable twice, no orphan registry entries, counts equal to the items found,
    /// every blob readable, and the live-byte accounting of every commit file equal to what the
    /// registry and the leaves reference (reclamation trusts it).
    pub fn verify(&self) -> Result<VerifyReport> {
        self.inner.check_poison()?;
        self.inner.refresh()?;
        // The accounting and the state are read together, as a checkpoint reads them.
        let (state, accounted) = {
            let _apply = self.inner.apply_lock.lock();
            let st = self.inner.current();
            let sp = self.inner.space.lock();
            let live: BTreeMap<u64, u64> = sp.files.iter().map(|(s, f)| (*s, f.live)).collect();
            (st, live)
        };
        let mut out = VerifyReport::default();
        let mut reachable = HashSet::new();
        let mut referenced: BTreeMap<u64, u64> = BTreeMap::new();
        for meta in state.catalog.values() {
            let (r, w) = self.walk_store(View { db: &self.inner, state: &state }, meta, true);
            out.problems.extend(w.problems);
            if w.leaf_depths.len() > 1 {
                out.problems.push(format!("store {:?}: leaves at different depths {:?}", meta.name, w.leaf_depths));
            }
            if r.items != meta.count {
                out.problems
                    .push(format!("store {:?}: catalog count {} but {} items found", meta.name, meta.count, r.items));
            }
            out.nodes_checked += r.leaves + r.inner;
            out.items_checked += r.items;
            reachable.extend(w.seen);
            for loc in w.blob_locs {
                *referenced.entry(loc.seq).or_default() += u64::from(loc.len);
            }
        }
        for h in state.registry.values() {
            for loc in h.records() {
                *referenced.entry(loc.seq).or_default() += u64::from(loc.len);
            }
        }
        for (seq, bytes) in &referenced {
            match accounted.get(seq) {
                None => {
                    out.problems.push(format!("commit {seq} holds {bytes} referenced bytes but is not accounted for"))
                }
                Some(live) if live != bytes => out.problems.push(format!(
                    "commit {seq}: accounting says {live} live bytes, the registry and leaves reference {bytes} (drift)"
                )),
                Some(_) => {}
            }
        }
        for (seq, live) in &accounted {
            if *live > 0 && !referenced.contains_key(seq) {
                out.problems.push(format!(
                    "commit {seq}: accounting says {live} live bytes, but nothing references it (drift)"
                ));
            }
        }
        for (id, h) in state.registry.iter() {
            if !reachable.contains(id) {
                out.problems.push(format!("orphan registry entry: node {id:#x} at {:?} is in no store", h.loc));
                if let Err(e) = self.inner.node_at(*id, h) {
                    out.problems.push(format!("orphan node {id:#x} is unreadable too: {e}"));
                }
            }
        }
        Ok(out)
    }
}
