//! What a committing transaction hands to the commit log: its writes and everything it read.
//!
//! Validation (`db::validate`) checks the read parts against commits newer than the snapshot;
//! the writer (`db::writer`) merges the write parts onto the freshest tree.

use crate::format::meta::StoreOptions;
use crate::format::node::IKey;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A buffered write.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    Put(Bytes),
    Delete,
}

/// A key range the transaction's outcome depended on.
pub(crate) type ReadRange = (Bound<IKey>, Bound<IKey>);

/// What one transaction did to one store.
#[derive(Debug, Default)]
pub(crate) struct StoreWriteSet {
    pub name: String,
    /// Store id in the snapshot; `None` when the transaction created the store.
    pub store_id: Option<u64>,
    pub ops: BTreeMap<IKey, WriteOp>,
    pub reads: Vec<ReadRange>,
}

/// Reads of a store that the transaction later dropped: they still count, against the store
/// as it was in the snapshot, even if a store of the same name was created again.
#[derive(Debug)]
pub(crate) struct RetiredReads {
    pub name: String,
    pub store_id: u64,
    pub reads: Vec<ReadRange>,
}

/// A catalog change made by a transaction.
#[derive(Debug, Clone)]
pub(crate) enum CatalogOp {
    Create { name: String, options: StoreOptions },
    Drop { name: String },
}

impl CatalogOp {
    pub fn name(&self) -> &str {
        match self {
            CatalogOp::Create { name, .. } | CatalogOp::Drop { name } => name,
        }
    }
}

/// A transaction handed to the commit pipeline.
#[derive(Debug, Default)]
pub(crate) struct PendingTxn {
    pub snapshot_seq: u64,
    pub stores: Vec<StoreWriteSet>,
    pub retired: Vec<RetiredReads>,
    /// Store names whose existence the transaction looked up.
    pub names_read: Vec<String>,
    /// Whether it listed the catalog (store names or metadata): then any store created or
    /// dropped after its snapshot conflicts.
    pub catalog_scanned: bool,
    pub catalog: Vec<CatalogOp>,
    /// Test-only switch that skips key-level validation, to prove the checkers catch it.
    pub skip_validation: bool,
}
