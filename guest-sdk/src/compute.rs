//! Compute: a function that runs inside a transaction the host owns.

use crate::compute_bindings::sop::plugin::storage;
use crate::compute_bindings::sop::plugin::types::PluginError;
use crate::flat::items;

/// Items fetched from the host per round trip while iterating a range.
const BATCH: u32 = 256;

/// A compute function. Its storage writes commit or roll back with the host's transaction.
pub trait Compute {
    /// Runs with the caller's input; the output goes back to the caller.
    fn run(input: &[u8]) -> Result<Vec<u8>, String>;
}

/// A storage call the host refused or could not serve.
#[derive(Debug)]
pub struct StorageError(pub String);

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StorageError> for String {
    fn from(e: StorageError) -> String {
        e.0
    }
}

impl From<PluginError> for StorageError {
    fn from(e: PluginError) -> Self {
        StorageError(match e {
            PluginError::InvalidInput(m) => format!("invalid input: {m}"),
            PluginError::Denied(m) => format!("denied: {m}"),
            PluginError::Limit(m) => format!("limit: {m}"),
            PluginError::Internal(m) => m,
        })
    }
}

/// A store this plugin was granted.
pub struct Store(storage::Store);

impl Store {
    /// Opens a granted store. Opening any other store traps: the host ends the call.
    pub fn open(name: &str) -> Result<Store, StorageError> {
        Ok(Store(storage::open(name)?))
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.get(key)?)
    }

    /// Inserts or replaces (needs a write grant).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        Ok(self.0.put(key, value)?)
    }

    /// Removes `key`; `true` if it existed (needs a write grant).
    pub fn remove(&self, key: &[u8]) -> Result<bool, StorageError> {
        Ok(self.0.remove(key)?)
    }

    /// Items with `start <= key < end`, fetched from the host in batches.
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Range, StorageError> {
        Ok(Range { cursor: self.0.range(start, end, false)?, buf: Vec::new(), done: false })
    }

    /// The same items, last first.
    pub fn range_rev(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Range, StorageError> {
        Ok(Range { cursor: self.0.range(start, end, true)?, buf: Vec::new(), done: false })
    }
}

/// An iterator over `(key, value)` pairs of a range.
pub struct Range {
    cursor: storage::Cursor,
    /// The current batch, reversed so that `pop` yields the next item.
    buf: Vec<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl Iterator for Range {
    type Item = Result<(Vec<u8>, Vec<u8>), StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            match self.cursor.next_batch(BATCH) {
                Ok(e) => {
                    let keys = items(&e.keys.data, &e.keys.ends);
                    let vals = items(&e.values.data, &e.values.ends);
                    self.buf = keys.zip(vals).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                    self.buf.reverse();
                    self.done = self.buf.is_empty();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
        self.buf.pop().map(Ok)
    }
}

#[doc(hidden)]
pub fn run<T: Compute>(input: Vec<u8>) -> Result<Vec<u8>, String> {
    T::run(&input)
}

/// Exports a [`Compute`] as the plugin's function.
#[macro_export]
macro_rules! export_compute {
    ($t:ty) => {
        struct __SopCompute;
        impl $crate::compute_bindings::exports::sop::plugin::compute::Guest for __SopCompute {
            fn run(input: Vec<u8>) -> Result<Vec<u8>, String> {
                $crate::__compute::run::<$t>(input)
            }
        }
        $crate::compute_bindings::__export_compute_world!(__SopCompute);
    };
}
