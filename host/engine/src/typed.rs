//! A typed layer: keys with order-preserving encodings, values with serde.

use crate::error::{Error, Result};
use crate::keys::Key;
use crate::txn::Store;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

/// A store viewed as `K -> V`. Keys are encoded with [`Key`], so the store's bytewise order
/// is `K`'s natural order; values are encoded with postcard.
///
/// ```
/// # fn main() -> sop::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = sop::Database::open_or_create(dir.path())?;
/// db.transact(|tx| {
///     let ages = sop::TypedStore::<(String, i32), u8>::new(tx.create_store("ages", Default::default())?);
///     ages.put(&("bob".into(), -1), &40)?;
///     ages.put(&("al".into(), 7), &30)?;
///     let all: Vec<_> = ages.range(..)?.collect::<sop::Result<_>>()?;
///     assert_eq!(all[0].0 .0, "al"); // tuple order: by name first
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
pub struct TypedStore<'t, K, V> {
    store: Store<'t>,
    _types: PhantomData<fn(K, V)>,
}

impl<'t, K: Key, V: Serialize + DeserializeOwned> TypedStore<'t, K, V> {
    /// Wraps an untyped store handle.
    pub fn new(store: Store<'t>) -> Self {
        TypedStore { store, _types: PhantomData }
    }

    /// The untyped handle.
    pub fn raw(&self) -> Store<'t> {
        self.store
    }

    fn enc(v: &V) -> Result<Vec<u8>> {
        postcard::to_allocvec(v).map_err(|e| Error::Codec(e.to_string()))
    }

    fn dec(b: &[u8]) -> Result<V> {
        postcard::from_bytes(b).map_err(|e| Error::Codec(e.to_string()))
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.store.get(&key.to_key_bytes())?.map(|b| Self::dec(&b)).transpose()
    }

    /// Inserts or replaces.
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        self.store.upsert(&key.to_key_bytes(), &Self::enc(value)?)
    }

    /// Adds if absent (unique stores); returns whether it was added.
    pub fn add(&self, key: &K, value: &V) -> Result<bool> {
        self.store.add(&key.to_key_bytes(), &Self::enc(value)?)
    }

    /// Removes; returns whether it existed.
    pub fn remove(&self, key: &K) -> Result<bool> {
        self.store.remove(&key.to_key_bytes())
    }

    /// Number of items.
    pub fn count(&self) -> Result<u64> {
        self.store.count()
    }

    /// Items in a key range, decoded.
    pub fn range(&self, range: impl RangeBounds<K>) -> Result<impl Iterator<Item = Result<(K, V)>> + 't> {
        let enc = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.to_key_bytes()),
            Bound::Excluded(k) => Bound::Excluded(k.to_key_bytes()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let it = self.store.range::<Vec<u8>>((enc(range.start_bound()), enc(range.end_bound())))?;
        Ok(it.map(|r| {
            let (k, v) = r?;
            let key = K::from_key_bytes(&k).map_err(|e| Error::Codec(format!("stored key does not decode: {e}")))?;
            Ok((key, Self::dec(&v)?))
        }))
    }
}
