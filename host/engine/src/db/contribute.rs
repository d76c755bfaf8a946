//! Cross-process group commit: a process whose commit batch finds the commit lease taken
//! offers the batch to whoever holds it, instead of waiting its turn to write a commit of
//! its own (`docs/PROTOCOL.md`, "Contributed batches").
//!
//! The contributor writes its transactions (logical writes and read sets, as validation and
//! merge need them) to `pending/<id>.batch`, without syncing: the batch is not durable data,
//! the commit that includes it is. The publisher lists `pending/`, validates every batch it
//! finds against the chain like one of its own transactions, merges the accepted ones into
//! its commit and records a verdict per batch in the commit's metadata. The contributor
//! catches up, finds the verdict in its state and reports it; if nobody includes its batch
//! (the holder died or listed too early), it takes the lease and publishes the batch itself.
//!
//! **At most once.** A batch is decided by the first commit that names it. Every later
//! publisher builds on that commit and finds the verdict in its base state's window (the
//! verdicts of the last [`CHAIN_WINDOW`] commits), so it skips the batch. A batch whose
//! snapshot is older than the window could have been decided by a commit that left it, so it
//! is never included any more: it is ignored, with no verdict, and its contributor (which
//! cannot tell either) reports [`Error::CommitUnknown`], a final outcome.

use super::DbInner;
use crate::CommitInfo;
use crate::coord::Lease;
use crate::error::{Error, Result};
use crate::format::meta::{BatchVerdict, PendingBatch, TxnOutcome, WireBound, WireCatalogOp, WireStore, WireTxn};
use crate::format::node::IKey;
use crate::format::record::{self, MAGIC_PENDING, tag};
use crate::state::State;
use crate::txn::write_set::{CatalogOp, PendingTxn, ReadRange, RetiredReads, StoreWriteSet, WriteOp};
use bytes::Bytes;
use std::ops::{Bound, Range};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Most contributed batches one commit takes in, so that one commit file stays small.
const BATCHES_PER_COMMIT: usize = 64;

/// How long a contributor sleeps between two looks for its verdict (a `stat`, a listing of
/// `checkpoints/` and one try for the lease each): a fraction of one flush.
const POLL: Duration = Duration::from_micros(200);

/// A batch of transactions in one commit attempt that carries an identity: the leader's own
/// batch once it contributed it, or a batch another process contributed.
pub(crate) struct Group {
    pub id: u64,
    /// Positions of its transactions in the attempt's transaction list.
    pub range: Range<usize>,
}

/// What a contributor learned while waiting.
pub(crate) enum Wait {
    /// Its batch was decided (the results are filled in).
    Decided,
    /// Nobody decided it: publish it under this lease (or, after a whole lease TTL of waiting,
    /// without one, which fencing keeps safe).
    Publish(Option<Lease>),
}

impl DbInner {
    /// Offers `txns` as batch `id` and waits until another process's commit decides it or the
    /// lease can be had. Fills `results` when decided.
    pub(crate) fn contribute(&self, id: u64, txns: &[PendingTxn], results: &mut [Option<Result<CommitInfo>>]) -> Wait {
        let snapshot = txns.iter().map(|t| t.snapshot_seq).min().unwrap_or(0);
        let started = Instant::now();
        loop {
            if self.settle(id, snapshot, results) {
                return Wait::Decided;
            }
            // The coordinator only saves work: unreachable, we publish ourselves (fencing).
            let lease = self.opts.coordinator.try_acquire("commit", self.opts.lease_ttl).unwrap_or(None);
            if lease.is_some() || started.elapsed() >= self.opts.lease_ttl {
                return Wait::Publish(lease);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Catches up and, if batch `id` (taken at `snapshot`) is decided, fills `results` and
    /// returns true.
    pub(crate) fn settle(&self, id: u64, snapshot: u64, results: &mut [Option<Result<CommitInfo>>]) -> bool {
        if let Err(e) = self.check_poison().and_then(|()| self.catch_up()) {
            // Our batch is out there and may still be included: the outcome is unknown.
            let seq = self.current().seq + 1;
            let unknown = match e {
                Error::Poisoned(_) | Error::Corrupt { .. } => e,
                _ => Error::CommitUnknown { seq },
            };
            fill_open(results, |_| Err(unknown.clone()));
            return true;
        }
        let st = self.current();
        match decided(&st, id, snapshot) {
            None => false,
            Some(Err(e)) => {
                fill_open(results, |_| Err(e.clone()));
                true
            }
            Some(Ok((seq, outcomes))) => {
                // The publisher synced its file before naming it; make sure the name is
                // durable before anyone hears `Ok` (it may not have synced the folder yet).
                let dir = self.layout.commits();
                if let Err(e) = self.vfs.sync_dir(&dir) {
                    let e = self.poison(&Error::io(&dir, e));
                    fill_open(results, |_| Err(e.clone()));
                    return true;
                }
                let mut committed = 0;
                let mut merged = 0;
                for (r, o) in results.iter_mut().zip(outcomes) {
                    if r.is_none() {
                        committed += u64::from(matches!(o, TxnOutcome::Committed { .. }));
                        merged += u64::from(matches!(o, TxnOutcome::Committed { merged: true }));
                        *r = Some(result_of(&o, seq));
                    }
                }
                self.stats.commits.fetch_add(committed, Ordering::Relaxed);
                self.stats.merges.fetch_add(merged, Ordering::Relaxed);
                self.remove_pending(id);
                true
            }
        }
    }

    /// Writes `pending/<id>.batch`. Not synced: only the commit that includes it is durable.
    pub(crate) fn put_pending(&self, id: u64, txns: &[PendingTxn]) -> Result<()> {
        let body = PendingBatch { db_id: self.db_id, id, txns: txns.iter().map(to_wire).collect() };
        let mut buf = Vec::new();
        record::begin_file(&mut buf, MAGIC_PENDING);
        record::put_record(&mut buf, tag::PENDING, &postcard::to_allocvec(&body).expect("batch serialises"));
        let target = self.layout.pending_batch(id);
        let tmp = self.layout.pending().join(format!(".{id:016x}.tmp"));
        let f = self.vfs.create_new(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_at(&buf, 0).map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        // A rename, so that a publisher never reads a batch half written.
        self.vfs.rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        self.stats.contributed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a pending batch file; tidiness only (a decided batch is never included again).
    pub(crate) fn remove_pending(&self, id: u64) {
        let _ = self.vfs.remove_file(&self.layout.pending_batch(id));
    }

    /// The batches other processes left in `pending/` that a commit on `base` may decide,
    /// appended to `txns` (one [`Group`] each). Files that are decided already, too old or
    /// unreadable are skipped; the decided and too old ones are removed.
    pub(crate) fn collect_pending(&self, base: &State, own: Option<u64>, txns: &mut Vec<PendingTxn>) -> Vec<Group> {
        let dir = self.layout.pending();
        // A failed listing only means no foreign batches this time.
        let Ok(names) = self.vfs.list_dir(&dir) else { return Vec::new() };
        let mut groups = Vec::new();
        for name in names {
            if groups.len() == BATCHES_PER_COMMIT {
                break;
            }
            let Some(id) = name.strip_suffix(".batch").and_then(|h| u64::from_str_radix(h, 16).ok()) else {
                continue;
            };
            if Some(id) == own || base.verdict(id).is_some() {
                if Some(id) != own {
                    self.remove_pending(id);
                }
                continue;
            }
            // Gone meanwhile (decided by someone else), half written after a power loss, or
            // not ours: none of these is ours to judge; the sweep removes the leftovers.
            let Some(batch) = self.read_pending(id) else { continue };
            if batch.txns.iter().any(|t| !base.remembers_since(t.snapshot_seq)) {
                // Too old to tell whether it was decided already: never include it.
                self.remove_pending(id);
                continue;
            }
            let start = txns.len();
            txns.extend(batch.txns.into_iter().map(from_wire));
            groups.push(Group { id, range: start..txns.len() });
        }
        self.stats.adopted.fetch_add(groups.iter().map(|g| g.range.len() as u64).sum(), Ordering::Relaxed);
        groups
    }

    fn read_pending(&self, id: u64) -> Option<PendingBatch> {
        let path = self.layout.pending_batch(id);
        let f = self.vfs.open(&path).ok()?;
        let buf = f.read_all().ok()?;
        record::check_prefix(&path, &buf, MAGIC_PENDING).ok()?;
        let (_, t, payload) = record::records(&path, &buf).next()?.ok()?;
        let batch: PendingBatch = postcard::from_bytes(payload).ok().filter(|_| t == tag::PENDING)?;
        (batch.db_id == self.db_id && batch.id == id).then_some(batch)
    }
}

/// The verdict on batch `id` (taken at `snapshot`) in `st`: `None` while undecided; an error
/// when it can no longer be known.
fn decided(st: &State, id: u64, snapshot: u64) -> Option<Result<(u64, Vec<TxnOutcome>)>> {
    if let Some(d) = st.verdict(id) {
        return Some(Ok((d.seq, d.verdict.outcomes.clone())));
    }
    // Past the window: no publisher includes it any more, and a decision, if any, is forgotten.
    (!st.remembers_since(snapshot)).then_some(Err(Error::CommitUnknown { seq: snapshot + 1 }))
}

/// The verdict a commit records on `group`, given the attempt's results and which accepted
/// transactions were merged in flight (`merged[i]` for `accepted[i]`).
pub(crate) fn verdict_of(
    group: &Group,
    results: &[Option<Result<CommitInfo>>],
    accepted: &[usize],
    merged: &[bool],
) -> BatchVerdict {
    let outcomes = group
        .range
        .clone()
        .map(|i| match (accepted.iter().position(|a| *a == i), &results[i]) {
            (Some(pos), _) => TxnOutcome::Committed { merged: merged[pos] },
            (None, Some(Err(Error::StoreExists(n)))) => TxnOutcome::StoreExists(n.clone()),
            (None, Some(Err(Error::StoreNotFound(n)))) => TxnOutcome::StoreNotFound(n.clone()),
            (None, Some(Err(e))) => TxnOutcome::Conflict(e.to_string()),
            (None, _) => TxnOutcome::Conflict("not validated".into()),
        })
        .collect();
    BatchVerdict { id: group.id, outcomes }
}

fn result_of(o: &TxnOutcome, seq: u64) -> Result<CommitInfo> {
    match o {
        TxnOutcome::Committed { merged } => Ok(CommitInfo { seq, merged: *merged }),
        TxnOutcome::Conflict(why) => Err(Error::Conflict(why.clone())),
        TxnOutcome::StoreExists(n) => Err(Error::StoreExists(n.clone())),
        TxnOutcome::StoreNotFound(n) => Err(Error::StoreNotFound(n.clone())),
    }
}

fn fill_open(results: &mut [Option<Result<CommitInfo>>], f: impl Fn(usize) -> Result<CommitInfo>) {
    for (i, r) in results.iter_mut().enumerate() {
        if r.is_none() {
            *r = Some(f(i));
        }
    }
}

fn bound_to_wire(b: &Bound<IKey>) -> WireBound {
    match b {
        Bound::Included(k) => WireBound::Included(k.key.to_vec(), k.dup),
        Bound::Excluded(k) => WireBound::Excluded(k.key.to_vec(), k.dup),
        Bound::Unbounded => WireBound::Unbounded,
    }
}

fn bound_from_wire(b: WireBound) -> Bound<IKey> {
    match b {
        WireBound::Included(k, d) => Bound::Included(IKey::new(Bytes::from(k), d)),
        WireBound::Excluded(k, d) => Bound::Excluded(IKey::new(Bytes::from(k), d)),
        WireBound::Unbounded => Bound::Unbounded,
    }
}

fn ranges_to_wire(r: &[ReadRange]) -> Vec<(WireBound, WireBound)> {
    r.iter().map(|(a, b)| (bound_to_wire(a), bound_to_wire(b))).collect()
}

fn ranges_from_wire(r: Vec<(WireBound, WireBound)>) -> Vec<ReadRange> {
    r.into_iter().map(|(a, b)| (bound_from_wire(a), bound_from_wire(b))).collect()
}

fn to_wire(t: &PendingTxn) -> WireTxn {
    WireTxn {
        snapshot_seq: t.snapshot_seq,
        stores: t
            .stores
            .iter()
            .map(|s| WireStore {
                name: s.name.clone(),
                store_id: s.store_id,
                ops: s
                    .ops
                    .iter()
                    .map(|(k, op)| {
                        let v = match op {
                            WriteOp::Put(v) => Some(v.to_vec()),
                            WriteOp::Delete => None,
                        };
                        (k.key.to_vec(), k.dup, v)
                    })
                    .collect(),
                reads: ranges_to_wire(&s.reads),
            })
            .collect(),
        retired: t.retired.iter().map(|r| (r.name.clone(), r.store_id, ranges_to_wire(&r.reads))).collect(),
        names_read: t.names_read.clone(),
        catalog_scanned: t.catalog_scanned,
        catalog: t
            .catalog
            .iter()
            .map(|op| match op {
                CatalogOp::Create { name, options } => {
                    WireCatalogOp::Create { name: name.clone(), options: options.clone() }
                }
                CatalogOp::Drop { name } => WireCatalogOp::Drop { name: name.clone() },
            })
            .collect(),
        skip_validation: t.skip_validation,
    }
}

fn from_wire(t: WireTxn) -> PendingTxn {
    PendingTxn {
        snapshot_seq: t.snapshot_seq,
        stores: t
            .stores
            .into_iter()
            .map(|s| StoreWriteSet {
                name: s.name,
                store_id: s.store_id,
                ops: s
                    .ops
                    .into_iter()
                    .map(|(k, d, v)| {
                        let op = match v {
                            Some(v) => WriteOp::Put(Bytes::from(v)),
                            None => WriteOp::Delete,
                        };
                        (IKey::new(Bytes::from(k), d), op)
                    })
                    .collect(),
                reads: ranges_from_wire(s.reads),
            })
            .collect(),
        retired: t
            .retired
            .into_iter()
            .map(|(name, store_id, reads)| RetiredReads { name, store_id, reads: ranges_from_wire(reads) })
            .collect(),
        names_read: t.names_read,
        catalog_scanned: t.catalog_scanned,
        catalog: t
            .catalog
            .into_iter()
            .map(|op| match op {
                WireCatalogOp::Create { name, options } => CatalogOp::Create { name, options },
                WireCatalogOp::Drop { name } => CatalogOp::Drop { name },
            })
            .collect(),
        skip_validation: t.skip_validation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_survives_the_wire() {
        let k = |s: &str, d| IKey::new(Bytes::from(s.to_owned()), d);
        let mut ops = std::collections::BTreeMap::new();
        ops.insert(k("a", 0), WriteOp::Put(Bytes::from_static(b"1")));
        ops.insert(k("b", 3), WriteOp::Delete);
        let t = PendingTxn {
            snapshot_seq: 7,
            stores: vec![StoreWriteSet {
                name: "s".into(),
                store_id: Some(2),
                ops,
                reads: vec![
                    (Bound::Included(k("a", 0)), Bound::Excluded(k("z", 1))),
                    (Bound::Unbounded, Bound::Unbounded),
                ],
            }],
            retired: vec![RetiredReads {
                name: "old".into(),
                store_id: 1,
                reads: vec![(Bound::Unbounded, Bound::Included(k("q", 0)))],
            }],
            names_read: vec!["s".into()],
            catalog_scanned: true,
            catalog: vec![CatalogOp::Drop { name: "old".into() }],
            skip_validation: false,
        };
        let back = from_wire(postcard::from_bytes(&postcard::to_allocvec(&to_wire(&t)).unwrap()).unwrap());
        assert_eq!(format!("{t:?}"), format!("{back:?}"));
    }
}
