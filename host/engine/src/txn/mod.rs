//! Transactions: a snapshot, the transaction's buffered writes, and what it read.
//!
//! Reads see the snapshot taken at begin plus the transaction's own writes. Every read of a
//! read-write transaction records the key range it depended on (point lookups, scanned
//! ranges, cursor moves), so commit can reject the transaction if a later commit changed
//! anything in those ranges: that is what makes read-write transactions serializable,
//! phantoms included. Read-only transactions record nothing; their snapshot is consistent.

mod cursor;
pub(crate) mod envelope;
mod iter;
mod store;
pub(crate) mod write_set;

pub use cursor::Cursor;
pub use iter::Iter;
pub use store::Store;

use crate::db::{DbInner, View};
use crate::error::{Error, Result};
use crate::format::meta::{KeyOrder, StoreMeta, StoreOptions};
use crate::format::node::{IKey, Node, Val};
use crate::state::State;
use crate::tree::cursor::{self as tcursor, TreeCursor};
use crate::{CommitInfo, OrderCodec};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use write_set::{CatalogOp, PendingTxn, ReadRange, RetiredReads, StoreWriteSet, WriteOp};

/// A transaction. Read-only ones come from [`crate::Database::begin_read`], read-write ones
/// from [`crate::Database::begin_write`] or [`crate::Database::transact`]. Dropping a
/// transaction without committing rolls it back. A transaction belongs to one thread.
pub struct Transaction {
    pub(crate) db: Arc<DbInner>,
    pub(crate) snap: Arc<State>,
    write: bool,
    pub(crate) inner: RefCell<TxInner>,
    /// Nodes this transaction has visited. Its snapshot never changes, so an id always means
    /// the same image here: a lock-free map in front of the registry and the shared cache.
    nodes: RefCell<HashMap<u64, Arc<Node>, crate::state::FastBuild>>,
}

/// Visited nodes kept per transaction (upper levels and the hottest leaves).
const TX_NODES: usize = 4096;

/// Reads nodes of a transaction's snapshot through its private map.
pub(crate) struct TxView<'a> {
    tx: &'a Transaction,
}

impl crate::tree::NodeSource for TxView<'_> {
    fn node(&self, id: u64) -> Result<Arc<Node>> {
        if let Some(n) = self.tx.nodes.borrow().get(&id) {
            return Ok(n.clone());
        }
        let n = View { db: &self.tx.db, state: &self.tx.snap }.node(id)?;
        let mut m = self.tx.nodes.borrow_mut();
        if m.len() >= TX_NODES {
            m.clear();
        }
        m.insert(id, n.clone());
        Ok(n)
    }
}

#[derive(Default)]
pub(crate) struct TxInner {
    finished: bool,
    pub(crate) stores: Vec<TxStore>,
    names_read: BTreeSet<String>,
    /// The transaction listed the stores (names or metadata).
    catalog_scanned: bool,
    /// Reads of stores this transaction dropped and then created again under the same name.
    retired: Vec<RetiredReads>,
    catalog: Vec<CatalogOp>,
    skip_validation: bool,
}

/// A store as this transaction sees it.
pub(crate) struct TxStore {
    pub name: String,
    pub meta: Arc<StoreMeta>,
    /// Root in the snapshot; `None` for a store created by this transaction.
    pub root: Option<u64>,
    pub dropped: bool,
    pub ops: BTreeMap<IKey, WriteOp>,
    pub reads: Vec<ReadRange>,
    pub codec: Option<Arc<dyn OrderCodec>>,
    /// Custom orders only: original keys of removed items, by sort key (validators see the
    /// key the application wrote).
    pub removed: HashMap<Bytes, Bytes>,
    /// Custom orders only: sort keys computed ahead by a batch call, consumed by `key`.
    pub encoded: HashMap<Bytes, Bytes>,
}

impl TxStore {
    /// A store as a transaction first sees it: no writes, no reads yet.
    fn new(meta: Arc<StoreMeta>, root: Option<u64>, codec: Option<Arc<dyn OrderCodec>>) -> TxStore {
        TxStore {
            name: meta.name.clone(),
            meta,
            root,
            dropped: false,
            ops: BTreeMap::new(),
            reads: Vec::new(),
            codec,
            removed: HashMap::new(),
            encoded: HashMap::new(),
        }
    }
}

/// Where a visible value comes from.
#[derive(Clone, Debug)]
pub(crate) enum ValSrc {
    Own(Bytes),
    Tree(Val),
}

impl Transaction {
    pub(crate) fn begin(db: Arc<DbInner>, write: bool) -> Result<Transaction> {
        db.check_poison()?;
        db.refresh()?;
        let snap = {
            let st = db.state.read();
            db.register_snapshot(st.seq);
            st.clone()
        };
        Ok(Transaction { db, snap, write, inner: RefCell::new(TxInner::default()), nodes: RefCell::default() })
    }

    /// The commit sequence number this transaction reads at.
    pub fn snapshot_seq(&self) -> u64 {
        self.snap.seq
    }

    /// Whether writes are allowed.
    pub fn is_read_only(&self) -> bool {
        !self.write
    }

    /// Creates a store. It becomes visible to others when this transaction commits; two
    /// transactions creating the same name conflict.
    pub fn create_store(&self, name: &str, options: StoreOptions) -> Result<Store<'_>> {
        self.check_write()?;
        validate_name(name)?;
        validate_options(&options)?;
        if self.find_store(name)?.is_some() {
            return Err(Error::StoreExists(name.into()));
        }
        let codec = self.codec_for(name, &options.order)?;
        let mut inner = self.inner.borrow_mut();
        inner.catalog.push(CatalogOp::Create { name: name.into(), options: options.clone() });
        let meta = Arc::new(StoreMeta { name: name.into(), id: 0, options, root: 0, count: 0, created_seq: 0 });
        let ts = TxStore::new(meta, None, codec);
        let idx = match inner.stores.iter().position(|s| s.name == name) {
            Some(i) => {
                // The slot holds the store this transaction dropped; what it read of it still
                // has to be validated against the old store.
                let old = std::mem::replace(&mut inner.stores[i], ts);
                if let Some(_root) = old.root
                    && !old.reads.is_empty()
                {
                    inner.retired.push(RetiredReads { name: old.name, store_id: old.meta.id, reads: old.reads });
                }
                i
            }
            None => {
                inner.stores.push(ts);
                inner.stores.len() - 1
            }
        };
        Ok(Store::new(self, idx))
    }

    /// Opens an existing store.
    pub fn open_store(&self, name: &str) -> Result<Store<'_>> {
        self.check_open()?;
        match self.find_store(name)? {
            Some(idx) => Ok(Store::new(self, idx)),
            None => Err(Error::StoreNotFound(name.into())),
        }
    }

    /// Opens a store, creating it with `options` if it does not exist.
    pub fn open_or_create_store(&self, name: &str, options: StoreOptions) -> Result<Store<'_>> {
        match self.open_store(name) {
            Err(Error::StoreNotFound(_)) => self.create_store(name, options),
            other => other,
        }
    }

    /// Removes a store and all its items, atomically with the rest of the transaction.
    pub fn remove_store(&self, name: &str) -> Result<()> {
        self.check_write()?;
        let idx = self.find_store(name)?.ok_or_else(|| Error::StoreNotFound(name.into()))?;
        let mut inner = self.inner.borrow_mut();
        inner.catalog.push(CatalogOp::Drop { name: name.into() });
        let s = &mut inner.stores[idx];
        s.dropped = true;
        s.ops.clear();
        Ok(())
    }

    /// Whether a store exists in this transaction's view.
    pub fn store_exists(&self, name: &str) -> Result<bool> {
        self.check_open()?;
        Ok(self.find_store(name)?.is_some())
    }

    /// Names of the stores in this transaction's view, sorted.
    pub fn store_names(&self) -> Result<Vec<String>> {
        self.check_open()?;
        self.note_catalog_scan();
        let inner = self.inner.borrow();
        let mut names: BTreeSet<String> = self.snap.catalog.keys().cloned().collect();
        for s in &inner.stores {
            if s.dropped {
                names.remove(&s.name);
            } else {
                names.insert(s.name.clone());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Metadata of every store in the snapshot (for tools such as `sop inspect`). In a
    /// read-write transaction this reads the whole catalog: a store created or removed
    /// concurrently makes the commit conflict.
    pub fn store_metas(&self) -> Vec<StoreMeta> {
        self.note_catalog_scan();
        self.snap.catalog.values().map(|m| (**m).clone()).collect()
    }

    /// Commits. On [`Error::Conflict`] nothing was written and the transaction can be retried.
    pub fn commit(self) -> Result<CommitInfo> {
        if self.write
            && !self.inner.borrow().finished
            && let Err(e) = self.run_validators()
        {
            self.inner.borrow_mut().finished = true;
            return Err(e);
        }
        let pending = {
            let mut inner = self.inner.borrow_mut();
            if inner.finished {
                return Err(Error::TransactionFinished);
            }
            inner.finished = true;
            let has_writes = !inner.catalog.is_empty() || inner.stores.iter().any(|s| !s.ops.is_empty());
            if !self.write || !has_writes {
                // Nothing to publish: the transaction is serialised at its snapshot.
                return Ok(CommitInfo { seq: self.snap.seq, merged: false });
            }
            let stores = std::mem::take(&mut inner.stores)
                .into_iter()
                .filter(|s| !s.dropped || s.root.is_some())
                .map(|s| StoreWriteSet {
                    store_id: s.root.map(|_| s.meta.id),
                    name: s.name,
                    ops: if s.dropped { BTreeMap::new() } else { s.ops },
                    reads: s.reads,
                })
                .collect();
            PendingTxn {
                snapshot_seq: self.snap.seq,
                stores,
                names_read: std::mem::take(&mut inner.names_read).into_iter().collect(),
                catalog_scanned: inner.catalog_scanned,
                retired: std::mem::take(&mut inner.retired),
                catalog: std::mem::take(&mut inner.catalog),
                skip_validation: inner.skip_validation,
            }
        };
        self.db.commit(pending)
    }

    /// Discards every change. Same as dropping the transaction.
    pub fn rollback(self) {}

    /// Test-only: commit without checking the keys and ranges this transaction read or wrote
    /// against concurrent commits (lost updates, write skew and phantoms then get through), to
    /// prove that history checkers catch what this allows.
    #[doc(hidden)]
    pub fn unsafe_skip_validation(&self) {
        self.inner.borrow_mut().skip_validation = true;
    }

    fn note_catalog_scan(&self) {
        if self.write {
            self.inner.borrow_mut().catalog_scanned = true;
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.borrow().finished {
            return Err(Error::TransactionFinished);
        }
        Ok(())
    }

    fn check_write(&self) -> Result<()> {
        self.check_open()?;
        if !self.write {
            return Err(Error::ReadOnly);
        }
        Ok(())
    }

    fn codec_for(&self, store: &str, order: &KeyOrder) -> Result<Option<Arc<dyn OrderCodec>>> {
        let KeyOrder::Custom { name, id } = order else { return Ok(None) };
        let unavailable =
            |reason: String| Error::OrderUnavailable { store: store.into(), order: format!("{name}@{id}"), reason };
        if let Some(c) = self.db.orders.read().get(name) {
            return if c.id() == id {
                Ok(Some(c.clone()))
            } else {
                Err(unavailable(format!("the registered {name:?} is {}, a different order", c.id())))
            };
        }
        if let Some(c) = self.db.loaded_orders.read().get(id) {
            return Ok(Some(c.clone()));
        }
        let Some(ext) = self.db.extensions.read().clone() else {
            return Err(unavailable(
                "no plugin host is installed in this process and no native order is registered".into(),
            ));
        };
        let codec = ext
            .key_order(&crate::Database { inner: self.db.clone() }, name, id)
            .map_err(|e| unavailable(e.to_string()))?;
        if codec.id() != id {
            return Err(unavailable(format!("the plugin host returned {}, a different order", codec.id())));
        }
        self.db.loaded_orders.write().insert(id.clone(), codec.clone());
        Ok(Some(codec))
    }

    /// Runs the validators of the stores this transaction wrote: one call per validator, with
    /// every write to the stores it guards. Before anything is published, so a rejection
    /// writes nothing.
    fn run_validators(&self) -> Result<()> {
        let mut by_validator: BTreeMap<String, Vec<crate::Mutation>> = BTreeMap::new();
        {
            let inner = self.inner.borrow();
            // A store created here names its validator now: it must exist (it is called,
            // with an empty batch if nothing was written).
            for op in &inner.catalog {
                if let CatalogOp::Create { options: StoreOptions { validator: Some(v), .. }, .. } = op {
                    by_validator.entry(v.clone()).or_default();
                }
            }
            for st in inner.stores.iter().filter(|s| !s.dropped && !s.ops.is_empty()) {
                let Some(v) = &st.meta.options.validator else { continue };
                let batch = by_validator.entry(v.clone()).or_default();
                for (k, op) in &st.ops {
                    let (key, value) = match op {
                        WriteOp::Put(v) if st.codec.is_some() => {
                            let (k, v) = envelope::open(v)?;
                            (k, Some(v))
                        }
                        WriteOp::Put(v) => (k.key.clone(), Some(v.clone())),
                        WriteOp::Delete => (st.removed.get(&k.key).cloned().unwrap_or_else(|| k.key.clone()), None),
                    };
                    batch.push(crate::Mutation { store: st.name.clone(), key, value });
                }
            }
        }
        if by_validator.is_empty() {
            return Ok(());
        }
        let Some(ext) = self.db.extensions.read().clone() else {
            let name = by_validator.keys().next().cloned().unwrap_or_default();
            let source = format!("validator {name:?}: no plugin host is installed in this process").into();
            return Err(Error::plugin(name, source));
        };
        let db = crate::Database { inner: self.db.clone() };
        for (validator, batch) in by_validator {
            match ext.validate(&db, &validator, &batch) {
                Ok(Ok(())) => {}
                Ok(Err(reasons)) => return Err(Error::Rejected { validator, reasons }),
                Err(source) => return Err(Error::plugin(validator, source)),
            }
        }
        Ok(())
    }

    /// Finds (or loads from the snapshot) a store; `None` if it is not visible.
    fn find_store(&self, name: &str) -> Result<Option<usize>> {
        {
            let inner = self.inner.borrow();
            if let Some(i) = inner.stores.iter().position(|s| s.name == name) {
                return Ok((!inner.stores[i].dropped).then_some(i));
            }
        }
        let mut inner = self.inner.borrow_mut();
        if self.write {
            inner.names_read.insert(name.into());
        }
        let Some(meta) = self.snap.catalog.get(name).cloned() else { return Ok(None) };
        drop(inner);
        let codec = self.codec_for(name, &meta.options.order)?;
        let mut inner = self.inner.borrow_mut();
        let root = Some(meta.root);
        inner.stores.push(TxStore::new(meta, root, codec));
        Ok(Some(inner.stores.len() - 1))
    }

    pub(crate) fn view(&self) -> TxView<'_> {
        TxView { tx: self }
    }

    /// The first visible item at or after `from` (forward) or at or before it (backward).
    pub(crate) fn seek(&self, idx: usize, from: Bound<IKey>, forward: bool) -> Result<Option<(IKey, ValSrc)>> {
        let inner = self.inner.borrow();
        let st = &inner.stores[idx];
        let view = self.view();
        let mut from = from;
        loop {
            let tree = match st.root {
                None => None,
                Some(root) => {
                    let mut c = TreeCursor::default();
                    let found = match (&from, forward) {
                        (Bound::Unbounded, true) => c.first(&view, root)?,
                        (Bound::Unbounded, false) => c.last(&view, root)?,
                        (Bound::Included(k), true) => c.seek(&view, root, k, false)?,
                        (Bound::Excluded(k), true) => c.seek(&view, root, k, true)?,
                        (Bound::Included(k), false) => c.seek_back(&view, root, k, false)?,
                        (Bound::Excluded(k), false) => c.seek_back(&view, root, k, true)?,
                    };
                    if found { c.item().cloned() } else { None }
                }
            };
            let own = if forward {
                st.ops.range((from.clone(), Bound::Unbounded)).next()
            } else {
                st.ops.range((Bound::Unbounded, from.clone())).next_back()
            };
            let take_own = match (&tree, own) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(t), Some((k, _))) => {
                    if forward {
                        k <= &t.ikey
                    } else {
                        k >= &t.ikey
                    }
                }
            };
            if take_own {
                let (k, op) = own.expect("own candidate");
                match op {
                    WriteOp::Put(v) => return Ok(Some((k.clone(), ValSrc::Own(v.clone())))),
                    WriteOp::Delete => from = Bound::Excluded(k.clone()),
                }
            } else {
                return Ok(tree.map(|it| (it.ikey, ValSrc::Tree(it.val))));
            }
        }
    }

    /// The visible value at exactly `key`.
    pub(crate) fn lookup(&self, idx: usize, key: &IKey) -> Result<Option<ValSrc>> {
        let inner = self.inner.borrow();
        let st = &inner.stores[idx];
        if let Some(op) = st.ops.get(key) {
            return Ok(match op {
                WriteOp::Put(v) => Some(ValSrc::Own(v.clone())),
                WriteOp::Delete => None,
            });
        }
        match st.root {
            None => Ok(None),
            Some(root) => Ok(tcursor::get_val(&self.view(), root, key)?.map(ValSrc::Tree)),
        }
    }

    pub(crate) fn resolve(&self, v: ValSrc) -> Result<Bytes> {
        match v {
            ValSrc::Own(b) | ValSrc::Tree(Val::Inline(b)) => Ok(b),
            ValSrc::Tree(Val::Blob { loc, .. }) => self.db.read_blob(loc),
        }
    }

    /// Records that the transaction's outcome depends on the range `[lo, hi]`.
    pub(crate) fn record_read(&self, idx: usize, lo: Bound<IKey>, hi: Bound<IKey>) {
        if !self.write {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let reads = &mut inner.stores[idx].reads;
        // Cursor walks produce adjacent ranges; coalesce them to keep validation cheap.
        if let Some((_, last_hi)) = reads.last_mut() {
            let adjacent = match (&*last_hi, &lo) {
                (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => a == b,
                _ => false,
            };
            if adjacent {
                *last_hi = hi;
                return;
            }
        }
        reads.push((lo, hi));
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.db.release_snapshot(self.snap.seq);
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok { Ok(()) } else { Err(Error::InvalidStoreName(name.into())) }
}

fn validate_options(o: &StoreOptions) -> Result<()> {
    if !(4..=4096).contains(&o.slot_length) {
        return Err(Error::InvalidOptions(format!("slot_length {} is outside 4..=4096", o.slot_length)));
    }
    Ok(())
}
