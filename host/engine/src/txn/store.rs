//! A store as seen through one transaction: point reads and writes, batches, counts.

use super::write_set::WriteOp;
use super::{Cursor, Iter, Transaction, ValSrc};
use crate::error::{Error, Result};
use crate::format::meta::StoreOptions;
use crate::format::node::IKey;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};
use bytes::Bytes;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};

/// A handle to one store inside a transaction. Cheap to copy; many may be open at once.
#[derive(Clone, Copy)]
pub struct Store<'t> {
    pub(crate) tx: &'t Transaction,
    pub(crate) idx: usize,
}

/// Duplicate ids order equal keys by insertion: the high bits are a per-process counter that
/// starts at the clock (microseconds) and only grows, the low 12 bits a random tag drawn once
/// per process, so ids from different processes or hosts never collide unless both the
/// counter and the tag do. Even then a collision is a write-write conflict, which is retried,
/// never a lost item. Order across processes is only as good as their clocks.
fn next_dup() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let tag = *TAG.get_or_init(|| rand::random::<u64>() & 0xFFF);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(1);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return (next << 12) | tag,
            Err(p) => prev = p,
        }
    }
}

impl<'t> Store<'t> {
    pub(crate) fn new(tx: &'t Transaction, idx: usize) -> Self {
        Store { tx, idx }
    }

    /// The store's name.
    pub fn name(&self) -> String {
        self.tx.inner.borrow().stores[self.idx].name.clone()
    }

    /// The options the store was created with.
    pub fn options(&self) -> StoreOptions {
        self.tx.inner.borrow().stores[self.idx].meta.options.clone()
    }

    fn unique(&self) -> bool {
        self.tx.inner.borrow().stores[self.idx].meta.options.unique
    }

    fn check(&self, write: bool) -> Result<()> {
        if write { self.tx.check_write() } else { self.tx.check_open() }
    }

    /// Validates a user key and maps it to the stored key bytes.
    pub(crate) fn key(&self, key: &[u8]) -> Result<Bytes> {
        let mut inner = self.tx.inner.borrow_mut();
        let st = &mut inner.stores[self.idx];
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len: key.len(), max: MAX_KEY_LEN });
        }
        if key.is_empty() && !st.meta.options.allow_empty_keys {
            return Err(Error::EmptyKey(st.name.clone()));
        }
        let Some(c) = &st.codec else { return Ok(Bytes::copy_from_slice(key)) };
        if let Some(k) = st.encoded.get(key) {
            return Ok(k.clone());
        }
        let c = c.clone();
        drop(inner);
        let mut out = Vec::with_capacity(key.len() + 8);
        c.encode(key, &mut out).map_err(|source| Error::plugin(c.id(), source))?;
        Self::check_sort_key(out.len())?;
        Ok(Bytes::from(out))
    }

    fn check_sort_key(len: usize) -> Result<()> {
        if len > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len, max: MAX_KEY_LEN });
        }
        Ok(())
    }

    /// Custom orders: encodes many keys in one call to the codec, ahead of the per-key
    /// operations that follow (which find them in `encoded`).
    fn encode_ahead<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<()> {
        let Some(c) = self.tx.inner.borrow().stores[self.idx].codec.clone() else { return Ok(()) };
        let raw: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).filter(|k| k.len() <= MAX_KEY_LEN).collect();
        let out = c.encode_batch(&raw).map_err(|source| Error::plugin(c.id(), source))?;
        if out.len() != raw.len() {
            let why = format!("key order {}: returned {} sort keys for {} keys", c.id(), out.len(), raw.len());
            return Err(Error::plugin(c.id(), why.into()));
        }
        let mut inner = self.tx.inner.borrow_mut();
        let memo = &mut inner.stores[self.idx].encoded;
        memo.clear();
        for (k, e) in raw.into_iter().zip(out) {
            Self::check_sort_key(e.len())?;
            memo.insert(Bytes::copy_from_slice(k), Bytes::from(e));
        }
        Ok(())
    }

    fn forget_ahead(&self) {
        self.tx.inner.borrow_mut().stores[self.idx].encoded.clear();
    }

    pub(crate) fn has_codec(&self) -> bool {
        self.tx.inner.borrow().stores[self.idx].codec.is_some()
    }

    /// The bytes stored for a value: the value itself, or for custom orders the value sealed
    /// with the key the application wrote.
    pub(crate) fn stored(&self, key: &[u8], value: &[u8]) -> Result<Bytes> {
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge { len: value.len(), max: MAX_VALUE_LEN });
        }
        if self.has_codec() {
            return Ok(super::envelope::seal(key, value));
        }
        Ok(Bytes::copy_from_slice(value))
    }

    /// The `(key, value)` the application sees for a stored item.
    pub(crate) fn surface(&self, key: Bytes, stored: Bytes) -> Result<(Bytes, Bytes)> {
        if self.has_codec() { super::envelope::open(&stored) } else { Ok((key, stored)) }
    }

    /// Custom orders: remembers the application's key of a removed item, for validators.
    pub(crate) fn note_removed(&self, sort_key: &Bytes, key: &[u8]) {
        let mut inner = self.tx.inner.borrow_mut();
        let st = &mut inner.stores[self.idx];
        if st.codec.is_some() {
            st.removed.insert(sort_key.clone(), Bytes::copy_from_slice(key));
        }
    }

    /// The first item with `key` (the only one in a unique store), recording the read.
    fn first_with(&self, key: &Bytes) -> Result<Option<(IKey, ValSrc)>> {
        let lo = IKey::new(key.clone(), 0);
        if self.unique() {
            self.tx.record_read(self.idx, Bound::Included(lo.clone()), Bound::Included(lo.clone()));
            return Ok(self.tx.lookup(self.idx, &lo)?.map(|v| (lo, v)));
        }
        let hi = IKey::new(key.clone(), u64::MAX);
        self.tx.record_read(self.idx, Bound::Included(lo.clone()), Bound::Included(hi));
        Ok(self.tx.seek(self.idx, Bound::Included(lo), true)?.filter(|(k, _)| k.key == key))
    }

    fn put(&self, k: IKey, v: Bytes) {
        self.tx.inner.borrow_mut().stores[self.idx].ops.insert(k, WriteOp::Put(v));
    }

    /// The value of `key` (the first one, for duplicate keys).
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.check(false)?;
        if let Some(v) = self.get_fast(key)? {
            return Ok(v);
        }
        let k = self.key(key)?;
        match self.first_with(&k)? {
            Some((_, v)) => Ok(Some(self.surface(k, self.tx.resolve(v)?)?.1)),
            None => Ok(None),
        }
    }

    /// Point read of a read-only transaction in a unique, bytewise store: nothing to record,
    /// no buffered writes to consult, so the key is searched without copying it.
    /// `None` when the fast path does not apply.
    fn get_fast(&self, key: &[u8]) -> Result<Option<Option<Bytes>>> {
        if !self.tx.is_read_only() {
            return Ok(None);
        }
        let root = {
            let inner = self.tx.inner.borrow();
            let st = &inner.stores[self.idx];
            if !st.meta.options.unique || st.codec.is_some() || key.len() > MAX_KEY_LEN || key.is_empty() {
                return Ok(None);
            }
            st.root
        };
        let Some(root) = root else { return Ok(Some(None)) };
        match crate::tree::cursor::get_val_borrowed(&self.tx.view(), root, key, 0)? {
            Some(v) => Ok(Some(Some(self.tx.resolve(ValSrc::Tree(v))?))),
            None => Ok(Some(None)),
        }
    }

    /// Whether `key` exists.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        self.check(false)?;
        let k = self.key(key)?;
        Ok(self.first_with(&k)?.is_some())
    }

    /// Adds an item. In a unique store, returns `false` (and changes nothing) if the key
    /// exists; in a non-unique store, always adds (after existing equal keys).
    pub fn add(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.check(true)?;
        let (k, v) = (self.key(key)?, self.stored(key, value)?);
        if self.unique() {
            if self.first_with(&k)?.is_some() {
                return Ok(false);
            }
            self.put(IKey::new(k, 0), v);
        } else {
            self.put(IKey::new(k, next_dup()), v);
        }
        Ok(true)
    }

    /// Adds an item only if no item with `key` exists (even in a non-unique store).
    pub fn add_if_not_exist(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.check(true)?;
        let (k, v) = (self.key(key)?, self.stored(key, value)?);
        if self.first_with(&k)?.is_some() {
            return Ok(false);
        }
        let dup = if self.unique() { 0 } else { next_dup() };
        self.put(IKey::new(k, dup), v);
        Ok(true)
    }

    /// Replaces the value of an existing item (the first, for duplicates); `false` if absent.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        self.check(true)?;
        let (k, v) = (self.key(key)?, self.stored(key, value)?);
        match self.first_with(&k)? {
            Some((ik, _)) => {
                self.put(ik, v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Inserts or replaces. In a unique store this is a blind write: it reads nothing, but
    /// still conflicts with a concurrent write of the same key.
    pub fn upsert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check(true)?;
        let (k, v) = (self.key(key)?, self.stored(key, value)?);
        if self.unique() {
            self.put(IKey::new(k, 0), v);
            return Ok(());
        }
        let ik = match self.first_with(&k)? {
            Some((ik, _)) => ik,
            None => IKey::new(k, next_dup()),
        };
        self.put(ik, v);
        Ok(())
    }

    /// Removes the item with `key` (the first, for duplicates); `false` if absent.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        self.check(true)?;
        let k = self.key(key)?;
        match self.first_with(&k)? {
            Some((ik, _)) => {
                self.note_removed(&ik.key, key);
                self.tx.inner.borrow_mut().stores[self.idx].ops.insert(ik, WriteOp::Delete);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Adds many items; returns how many were added.
    pub fn add_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, items: impl IntoIterator<Item = (K, V)>) -> Result<usize> {
        let mut n = 0;
        self.batched(items, |k, v| {
            n += usize::from(self.add(k, v)?);
            Ok(())
        })?;
        Ok(n)
    }

    /// Runs `op` on every item; custom orders first encode all keys in one codec call.
    fn batched<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
        mut op: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        if !self.has_codec() {
            return items.into_iter().try_for_each(|(k, v)| op(k.as_ref(), v.as_ref()));
        }
        let items: Vec<(K, V)> = items.into_iter().collect();
        let keys: Vec<&[u8]> = items.iter().map(|(k, _)| k.as_ref()).collect();
        if let Err(e) = self.encode_ahead(&keys) {
            self.forget_ahead();
            return Err(e);
        }
        let r = items.iter().try_for_each(|(k, v)| op(k.as_ref(), v.as_ref()));
        self.forget_ahead();
        r
    }

    /// Upserts many items.
    pub fn upsert_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, items: impl IntoIterator<Item = (K, V)>) -> Result<()> {
        self.batched(items, |k, v| self.upsert(k, v))
    }

    /// Updates many items; returns how many existed.
    pub fn update_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<usize> {
        let mut n = 0;
        self.batched(items, |k, v| {
            n += usize::from(self.update(k, v)?);
            Ok(())
        })?;
        Ok(n)
    }

    /// Removes many keys; returns how many existed.
    pub fn remove_many<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<usize> {
        let mut n = 0;
        self.batched(keys.into_iter().map(|k| (k, [])), |k, _| {
            n += usize::from(self.remove(k)?);
            Ok(())
        })?;
        Ok(n)
    }

    /// Number of items, including this transaction's changes. Depends on every key, so a
    /// read-write transaction that counts conflicts with any concurrent change to the store.
    pub fn count(&self) -> Result<u64> {
        self.check(false)?;
        self.tx.record_read(self.idx, Bound::Unbounded, Bound::Unbounded);
        let (base, ops, root) = {
            let inner = self.tx.inner.borrow();
            let st = &inner.stores[self.idx];
            let ops: Vec<(IKey, bool)> =
                st.ops.iter().map(|(k, op)| (k.clone(), matches!(op, WriteOp::Put(_)))).collect();
            (if st.root.is_some() { st.meta.count } else { 0 }, ops, st.root)
        };
        let mut n = base as i64;
        for (k, put) in ops {
            let exists = match root {
                Some(r) => crate::tree::cursor::get(&self.tx.view(), r, &k)?.is_some(),
                None => false,
            };
            n += i64::from(put && !exists) - i64::from(!put && exists);
        }
        Ok(n.max(0) as u64)
    }

    /// Items with keys in `range`, in key order.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<Iter<'t>> {
        let (lo, hi) = self.bounds(range)?;
        Iter::new(*self, lo, hi, true)
    }

    /// Calls `visit` with every item in `range`, in key order, on borrowed slices (no copies,
    /// no reference counting): the fastest way to read many items. `visit` returns `false` to
    /// stop. Returns how many items were visited.
    ///
    /// ```
    /// # fn main() -> sop::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = sop::Database::open_or_create(dir.path())?;
    /// db.transact(|tx| tx.create_store("s", Default::default())?.add_many([(b"a", b"1"), (b"b", b"2")]).map(|_| ()))?;
    /// let tx = db.begin_read()?;
    /// let mut total = 0;
    /// tx.open_store("s")?.scan(&b"a"[..]..=&b"z"[..], |_k, v| {
    ///     total += v.len();
    ///     true
    /// })?;
    /// assert_eq!(total, 2);
    /// # Ok(()) }
    /// ```
    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<u64> {
        let (lo, hi) = self.bounds(range)?;
        let (root, own) = {
            let inner = self.tx.inner.borrow();
            let st = &inner.stores[self.idx];
            (st.root, !st.ops.is_empty())
        };
        if own || !self.tx.is_read_only() || self.has_codec() {
            // Buffered writes to merge, reads to record, or keys to unseal: the iterator
            // handles all three.
            let mut n = 0;
            for r in Iter::new(*self, lo, hi, true)? {
                let (k, v) = r?;
                n += 1;
                if !visit(&k, &v) {
                    break;
                }
            }
            return Ok(n);
        }
        let Some(root) = root else { return Ok(0) };
        let view = self.tx.view();
        let mut c = crate::tree::cursor::TreeCursor::default();
        let mut live = match &lo {
            Bound::Unbounded => c.first(&view, root)?,
            Bound::Included(k) => c.seek(&view, root, k, false)?,
            Bound::Excluded(k) => c.seek(&view, root, k, true)?,
        };
        let mut n = 0;
        while live {
            let (items, start) = c.leaf().expect("positioned on a leaf");
            for it in &items[start..] {
                let past = match &hi {
                    Bound::Included(h) => &it.ikey > h,
                    Bound::Excluded(h) => &it.ikey >= h,
                    Bound::Unbounded => false,
                };
                if past {
                    return Ok(n);
                }
                n += 1;
                let go_on = match &it.val {
                    crate::format::node::Val::Inline(v) => visit(&it.ikey.key, v),
                    blob => visit(&it.ikey.key, &self.tx.resolve(ValSrc::Tree(blob.clone()))?),
                };
                if !go_on {
                    return Ok(n);
                }
            }
            live = c.next_leaf(&view)?;
        }
        Ok(n)
    }

    /// Items with keys in `range`, in descending key order.
    pub fn range_rev<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<Iter<'t>> {
        let (lo, hi) = self.bounds(range)?;
        Iter::new(*self, lo, hi, false)
    }

    /// All items in key order.
    pub fn iter(&self) -> Result<Iter<'t>> {
        Iter::new(*self, Bound::Unbounded, Bound::Unbounded, true)
    }

    /// All items in descending key order.
    pub fn iter_rev(&self) -> Result<Iter<'t>> {
        Iter::new(*self, Bound::Unbounded, Bound::Unbounded, false)
    }

    /// A cursor (SOP's navigation API: find, first, last, next, previous, current item).
    pub fn cursor(&self) -> Cursor<'t> {
        Cursor::new(*self)
    }

    fn bounds<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<(Bound<IKey>, Bound<IKey>)> {
        self.check(false)?;
        // Duplicates of one key differ by `dup`; user bounds cover all of them.
        let lo = match range.start_bound() {
            Bound::Included(k) => Bound::Included(IKey::new(self.key_unchecked(k.as_ref())?, 0)),
            Bound::Excluded(k) => Bound::Excluded(IKey::new(self.key_unchecked(k.as_ref())?, u64::MAX)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let hi = match range.end_bound() {
            Bound::Included(k) => Bound::Included(IKey::new(self.key_unchecked(k.as_ref())?, u64::MAX)),
            Bound::Excluded(k) => Bound::Excluded(IKey::new(self.key_unchecked(k.as_ref())?, 0)),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok((lo, hi))
    }

    /// Like [`Store::key`] but accepts the empty key (a valid range bound).
    pub(crate) fn key_unchecked(&self, key: &[u8]) -> Result<Bytes> {
        if key.is_empty() {
            return Ok(Bytes::new());
        }
        self.key(key)
    }
}
