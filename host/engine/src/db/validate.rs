//! Step 2 of a commit: the conflict history and the check of each transaction's reads and
//! writes against the commits made after its snapshot (`docs/PROTOCOL.md`, "Validate").

use super::DbInner;
use crate::CommitInfo;
use crate::error::{Error, Result};
use crate::format::meta::CommitMeta;
use crate::format::node::IKey;
use crate::state::State;
use crate::txn::write_set::{CatalogOp, PendingTxn, ReadRange};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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

impl CommitSummary {
    pub fn of(seq: u64, meta: &CommitMeta) -> CommitSummary {
        CommitSummary {
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
        }
    }
}

/// Recent commits, complete for every sequence number above `base`. A transaction whose
/// snapshot is older than `base` cannot be validated and gets a (retryable) conflict.
#[derive(Debug, Default)]
pub(crate) struct ConflictHistory {
    pub base: u64,
    pub entries: VecDeque<Arc<CommitSummary>>,
}

impl ConflictHistory {
    /// Appends the commit at `summary.seq` and forgets the ones no snapshot newer than
    /// `keep_after` needs.
    pub fn push(&mut self, summary: CommitSummary, keep_after: u64) {
        debug_assert!(self.entries.back().is_none_or(|c| c.seq + 1 == summary.seq), "conflict history must stay dense");
        self.entries.push_back(Arc::new(summary));
        while self.entries.front().is_some_and(|c| c.seq <= keep_after) {
            let c = self.entries.pop_front().expect("front exists");
            self.base = self.base.max(c.seq);
        }
    }

    /// Starts over at `seq` (a checkpoint was loaded): older snapshots can no longer be checked.
    pub fn reset(&mut self, seq: u64) {
        self.entries.clear();
        self.base = seq;
    }
}

impl DbInner {
    /// Decides which transactions may commit on top of `base`, in queue order. A transaction
    /// conflicts when a commit after its snapshot (or an earlier member of this batch) wrote a
    /// key in a range it read or a key it wrote, or changed a store name it used.
    pub(super) fn validate(
        &self,
        base: &State,
        txns: &[PendingTxn],
        results: &mut [Option<Result<CommitInfo>>],
    ) -> Vec<usize> {
        let history = self.history.lock();
        let mut batch = BatchWrites::default();
        let mut catalog: HashMap<String, bool> = HashMap::new(); // name -> exists, after earlier batch members
        let mut accepted = Vec::new();
        for (i, t) in txns.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let verdict = check_one(&history, &batch, base, &mut catalog, t);
            match verdict {
                Ok(()) => {
                    batch.add(base, t);
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
}

/// What the members accepted so far in this batch wrote.
#[derive(Default)]
struct BatchWrites {
    keys: HashMap<u64, Vec<IKey>>,
    all: HashSet<u64>,
    names: HashSet<String>,
}

impl BatchWrites {
    fn add(&mut self, base: &State, t: &PendingTxn) {
        for s in &t.stores {
            if let Some(id) = s.store_id
                && !s.ops.is_empty()
            {
                // Only the stores this member wrote need re-sorting.
                let keys = self.keys.entry(id).or_default();
                keys.extend(s.ops.keys().cloned());
                keys.sort();
            }
        }
        for op in &t.catalog {
            self.names.insert(op.name().to_owned());
            if let Some(m) = base.catalog.get(op.name()) {
                self.all.insert(m.id);
            }
        }
    }
}

fn check_one(
    history: &ConflictHistory,
    batch: &BatchWrites,
    base: &State,
    catalog: &mut HashMap<String, bool>,
    t: &PendingTxn,
) -> Result<()> {
    if t.snapshot_seq < history.base {
        return Err(Error::Conflict(format!(
            "snapshot {} predates the conflict history (from {}); retry",
            t.snapshot_seq, history.base
        )));
    }
    let newer: Vec<&Arc<CommitSummary>> = history.entries.iter().filter(|c| c.seq > t.snapshot_seq).collect();
    if t.catalog_scanned && !t.skip_validation {
        if let Some(c) = newer.iter().find(|c| !c.names.is_empty()) {
            return Err(Error::Conflict(format!(
                "the list of stores this transaction read changed (commit {} created or removed {:?})",
                c.seq, c.names
            )));
        }
        if !batch.names.is_empty() {
            return Err(Error::Conflict(
                "a concurrent transaction in the same commit batch created or removed a store".into(),
            ));
        }
    }
    let names = t.names_read.iter().map(String::as_str).chain(t.catalog.iter().map(CatalogOp::name));
    for n in names {
        if batch.names.contains(n) || newer.iter().any(|c| c.names.iter().any(|m| m == n)) {
            return Err(Error::Conflict(format!("store {n:?} was created or removed concurrently")));
        }
    }
    let stores = t.stores.iter().filter_map(|s| {
        let id = s.store_id?;
        let key_ranges = s.ops.keys().map(|k| (Bound::Included(k), Bound::Included(k)));
        let read_ranges = s.reads.iter().map(bound_pair);
        Some((s.name.as_str(), id, key_ranges.chain(read_ranges).collect::<Vec<_>>()))
    });
    let retired = t.retired.iter().map(|r| (r.name.as_str(), r.store_id, r.reads.iter().map(bound_pair).collect()));
    for (name, id, ranges) in stores.chain(retired) {
        if t.skip_validation || ranges.is_empty() {
            continue;
        }
        for c in &newer {
            if let Some(w) = c.writes.get(&id)
                && (w.all || ranges.iter().any(|r| any_in_range(&w.keys, r)))
            {
                return Err(Error::Conflict(format!(
                    "store {name:?}: a key this transaction read or wrote was changed by commit {}",
                    c.seq
                )));
            }
        }
        if batch.all.contains(&id)
            || batch.keys.get(&id).is_some_and(|keys| ranges.iter().any(|r| any_in_range(keys, r)))
        {
            return Err(Error::Conflict(format!(
                "store {name:?}: a concurrent transaction in the same commit batch changed a key this one used"
            )));
        }
    }
    // Catalog consistency against the base plus earlier batch members.
    let mut local = catalog.clone();
    let exists =
        |local: &HashMap<String, bool>, name: &str| *local.get(name).unwrap_or(&base.catalog.contains_key(name));
    for op in &t.catalog {
        match op {
            CatalogOp::Create { name, .. } => {
                if exists(&local, name) {
                    return Err(Error::StoreExists(name.clone()));
                }
                local.insert(name.clone(), true);
            }
            CatalogOp::Drop { name } => {
                if !exists(&local, name) {
                    return Err(Error::StoreNotFound(name.clone()));
                }
                local.insert(name.clone(), false);
            }
        }
    }
    for s in &t.stores {
        if !s.ops.is_empty() && !exists(&local, &s.name) {
            return Err(Error::StoreNotFound(s.name.clone()));
        }
    }
    *catalog = local;
    Ok(())
}

fn bound_pair((a, b): &ReadRange) -> (Bound<&IKey>, Bound<&IKey>) {
    (a.as_ref(), b.as_ref())
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
