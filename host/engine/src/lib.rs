//! # sop — Scalable Objects Persistence
//!
//! Ordered key/value B-trees with ACID transactions, stored in a folder that many threads
//! (and, in swarm mode, many processes on many hosts) write at once, with no central writer.
//!
//! * **Durable**: a commit that returned `Ok` survives `kill -9` and power loss. Each commit
//!   is one immutable file, synced and then published with an exclusive link.
//! * **In-flight merging**: concurrent transactions that change different keys of the same
//!   node both commit; the engine merges each transaction's item-level changes onto the
//!   freshest tree. Only a true conflict (a key one wrote and the other read or wrote, or a
//!   scanned range) fails, with [`Error::Conflict`]; [`Database::transact`] retries it.
//! * **Serializable** read-write transactions, phantoms included; read-only transactions
//!   read a consistent snapshot.
//!
//! ```
//! use sop::{Database, StoreOptions};
//! # fn main() -> sop::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open_or_create(dir.path())?;
//!
//! // Create a store and write to it atomically; conflicts are retried.
//! db.transact(|tx| {
//!     let fruit = tx.create_store("fruit", StoreOptions::default())?;
//!     fruit.add(b"apple", b"red")?;
//!     fruit.add(b"banana", b"yellow")?;
//!     Ok(())
//! })?;
//!
//! // Read a consistent snapshot.
//! let tx = db.begin_read()?;
//! let fruit = tx.open_store("fruit")?;
//! let keys: Vec<_> = fruit.range(&b"a"[..]..&b"b"[..])?.map(|r| r.map(|(k, _)| k)).collect::<sop::Result<_>>()?;
//! assert_eq!(keys, vec![&b"apple"[..]]);
//! # Ok(()) }
//! ```
//!
//! See `docs/ARCHITECTURE.md`, `docs/PROTOCOL.md` and `docs/FORMAT.md` in the repository.

#![warn(missing_docs)]

pub mod coord;
mod db;
mod error;
mod ext;
#[doc(hidden)]
pub mod failpoint;
pub mod format;
pub mod keys;
mod retry;
mod state;
pub mod tree;
mod txn;
mod typed;
pub mod vfs;

pub use db::{Database, DbOptions, DbReport, StoreReport, VerifyReport};
pub use error::{Error, Result};
pub use ext::{ExtError, Extensions, Mutation, OrderCodec, Verdict};
pub use format::meta::{KeyOrder, StoreMeta, StoreOptions, ValuePlacement};
pub use retry::RetryPolicy;
pub use txn::{Cursor, Iter, Store, Transaction};
pub use typed::TypedStore;

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 16 << 20;
/// Values longer than this are stored as blobs even in [`ValuePlacement::InNode`] stores.
pub const INLINE_VALUE_MAX: usize = 4096;

/// What a successful commit reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// Sequence number of the commit file that holds it (the snapshot's, for a commit with no
    /// writes).
    pub seq: u64,
    /// Whether it was merged in flight: applied to a node that a concurrent transaction
    /// changed after this one's snapshot.
    pub merged: bool,
}

/// Counters of one database handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Transactions committed.
    pub commits: u64,
    /// Commit files written by this handle (group commits).
    pub batches: u64,
    /// Transactions merged in flight.
    pub merges: u64,
    /// Transactions rejected with a conflict.
    pub conflicts: u64,
    /// Retries made by the retry helper.
    pub retries: u64,
    /// Batches re-validated because another writer took their sequence number.
    pub rebases: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Bytes copied by compaction.
    pub relocated_bytes: u64,
    /// Commit files deleted.
    pub reclaimed_files: u64,
    /// Bytes written to commit files.
    pub bytes_written: u64,
    /// Commit batches this handle offered to another process's commit because the commit
    /// lease was taken (cross-process group commit).
    pub contributed: u64,
    /// Transactions of other processes' batches that this handle's commits took in.
    pub adopted: u64,
    /// Bytes in commit files now.
    pub file_bytes: u64,
    /// Of those, bytes still referenced.
    pub live_bytes: u64,
    /// Latest commit sequence seen.
    pub last_seq: u64,
}
