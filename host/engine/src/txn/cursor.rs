//! SOP's navigation API over one store.

use super::write_set::WriteOp;
use super::{Store, ValSrc};
use crate::error::{Error, Result};
use crate::format::node::IKey;
use bytes::Bytes;
use std::ops::Bound;

/// A position in a store. Every move records the key range it depended on, so cursor walks
/// in read-write transactions are validated like scans.
///
/// ```
/// # fn main() -> sop::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = sop::Database::open_or_create(dir.path())?;
/// db.transact(|tx| {
///     let s = tx.create_store("s", Default::default())?;
///     s.add_many([(b"a", b"1"), (b"c", b"3")])?;
///     let mut c = s.cursor();
///     assert!(!c.find(b"b")?); // not found: parked on the next key
///     assert_eq!(c.key().as_deref(), Some(&b"c"[..]));
///     assert!(c.prev()?);
///     assert_eq!(c.value()?.as_deref(), Some(&b"1"[..]));
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
pub struct Cursor<'t> {
    store: Store<'t>,
    cur: Option<(IKey, ValSrc)>,
    /// Custom orders: the application's key of the current item (the tree holds sort keys).
    user_key: Option<Bytes>,
}

impl<'t> Cursor<'t> {
    pub(crate) fn new(store: Store<'t>) -> Self {
        Cursor { store, cur: None, user_key: None }
    }

    fn go(&mut self, from: Bound<IKey>, forward: bool) -> Result<bool> {
        self.store.check_open()?;
        let found = self.store.tx.seek(self.store.idx, from.clone(), forward)?;
        let reach = match &found {
            Some((k, _)) => Bound::Included(k.clone()),
            None => Bound::Unbounded,
        };
        if forward {
            self.store.tx.record_read(self.store.idx, from, reach);
        } else {
            self.store.tx.record_read(self.store.idx, reach, from);
        }
        self.user_key = match &found {
            Some((k, v)) if self.store.has_codec() => {
                Some(self.store.surface(k.key.clone(), self.store.tx.resolve(v.clone())?)?.0)
            }
            _ => None,
        };
        self.cur = found;
        Ok(self.cur.is_some())
    }

    /// Positions on the first item with `key`; returns whether it exists. On a miss the cursor
    /// rests on the next greater key (or nowhere, past the end).
    pub fn find(&mut self, key: &[u8]) -> Result<bool> {
        let k = self.store.key(key)?;
        self.go(Bound::Included(IKey::new(k.clone(), 0)), true)?;
        Ok(self.cur.as_ref().is_some_and(|(c, _)| c.key == k))
    }

    /// Positions on the last item with `key` (for walking duplicates backwards); on a miss
    /// the cursor rests on the next smaller key.
    pub fn find_last(&mut self, key: &[u8]) -> Result<bool> {
        let k = self.store.key(key)?;
        self.go(Bound::Included(IKey::new(k.clone(), u64::MAX)), false)?;
        Ok(self.cur.as_ref().is_some_and(|(c, _)| c.key == k))
    }

    /// Positions on the first item.
    pub fn first(&mut self) -> Result<bool> {
        self.go(Bound::Unbounded, true)
    }

    /// Positions on the last item.
    pub fn last(&mut self) -> Result<bool> {
        self.go(Bound::Unbounded, false)
    }

    /// Moves to the next item.
    #[allow(clippy::should_implement_trait)] // SOP's cursor verb; it moves, it does not yield
    pub fn next(&mut self) -> Result<bool> {
        match self.cur.take() {
            Some((k, _)) => self.go(Bound::Excluded(k), true),
            None => Ok(false),
        }
    }

    /// Moves to the previous item.
    pub fn prev(&mut self) -> Result<bool> {
        match self.cur.take() {
            Some((k, _)) => self.go(Bound::Excluded(k), false),
            None => Ok(false),
        }
    }

    /// The current key.
    pub fn key(&self) -> Option<Bytes> {
        self.user_key.clone().or_else(|| self.cur.as_ref().map(|(k, _)| k.key.clone()))
    }

    /// The current value.
    pub fn value(&self) -> Result<Option<Bytes>> {
        match &self.cur {
            Some((k, v)) => Ok(Some(self.store.surface(k.key.clone(), self.store.tx.resolve(v.clone())?)?.1)),
            None => Ok(None),
        }
    }

    /// Replaces the current item's value.
    pub fn update_current(&mut self, value: &[u8]) -> Result<()> {
        self.store.check_write()?;
        let (k, _) = self.cur.as_ref().ok_or(Error::NoCurrentItem)?;
        let v = self.store.stored(self.user_key.as_deref().unwrap_or(&k.key), value)?;
        self.store.tx.inner.borrow_mut().stores[self.store.idx].ops.insert(k.clone(), WriteOp::Put(v.clone()));
        self.cur = Some((k.clone(), ValSrc::Own(v)));
        Ok(())
    }

    /// Removes the current item. The cursor keeps its place: `next` and `prev` move on from it.
    pub fn remove_current(&mut self) -> Result<()> {
        self.store.check_write()?;
        let (k, _) = self.cur.as_ref().ok_or(Error::NoCurrentItem)?;
        if let Some(u) = &self.user_key {
            self.store.note_removed(&k.key, u);
        }
        self.store.tx.inner.borrow_mut().stores[self.store.idx].ops.insert(k.clone(), WriteOp::Delete);
        Ok(())
    }
}

impl Store<'_> {
    pub(crate) fn check_open(&self) -> Result<()> {
        self.tx.check_open()
    }
    pub(crate) fn check_write(&self) -> Result<()> {
        self.tx.check_write()
    }
}
