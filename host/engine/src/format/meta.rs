//! Postcard-encoded structures: file headers, commit metadata, checkpoints, store metadata.

use serde::{Deserialize, Serialize};

/// Where a record lives: the commit file (by sequence number), the record's offset and its
/// total length including the record header. Immutable once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Loc {
    /// Sequence number of the commit file.
    pub seq: u64,
    /// Offset of the record header in that file.
    pub off: u32,
    /// Record length (header + payload).
    pub len: u32,
}

/// A registry entry: where the current image of a logical node lives, and its version.
/// The version is the sequence number of the commit that wrote the image; it only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// Location of the node image: a full NODE record, or a DELTA record when `base` is set.
    pub loc: Loc,
    /// Commit sequence that produced this image.
    pub version: u64,
    /// For a leaf stored as a delta: the full image the delta applies to.
    pub base: Option<Loc>,
}

impl Handle {
    /// The records this handle keeps alive.
    pub fn records(&self) -> impl Iterator<Item = Loc> {
        std::iter::once(self.loc).chain(self.base)
    }
}

/// Where a store keeps its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ValuePlacement {
    /// Values live inside leaf nodes (values above [`crate::INLINE_VALUE_MAX`] still spill to blobs).
    #[default]
    InNode,
    /// Every value lives in its own blob record; leaves hold only references.
    Blob,
}

/// How a store orders its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum KeyOrder {
    /// Bytewise (memcmp) order of the stored bytes. Typed keys use order-preserving
    /// encodings from [`crate::keys`], so they sort by this order too.
    #[default]
    Bytewise,
    /// An order supplied at runtime by a registered [`crate::OrderCodec`], pinned by identity.
    Custom {
        /// Name the codec is registered under.
        name: String,
        /// Identity of the exact codec (for plugins: the component's sha256 in hex).
        id: String,
    },
}

/// Options fixed when a store is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOptions {
    /// Maximum items per node (SOP's SlotLength). 4..=4096.
    pub slot_length: u32,
    /// Whether keys are unique. If false, equal keys are kept in insertion order.
    pub unique: bool,
    /// Where values are stored.
    pub value_placement: ValuePlacement,
    /// Key order.
    pub order: KeyOrder,
    /// Whether the empty key is a valid key.
    pub allow_empty_keys: bool,
    /// Name of the validator plugin that checks every commit writing this store. Resolved by
    /// name at commit time, so reinstalling the plugin upgrades it; a missing validator fails
    /// the commit rather than letting writes through unchecked.
    pub validator: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            slot_length: 64,
            unique: true,
            value_placement: ValuePlacement::InNode,
            order: KeyOrder::Bytewise,
            allow_empty_keys: false,
            validator: None,
        }
    }
}

/// A store's catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMeta {
    /// Store name.
    pub name: String,
    /// Internal identifier, unique in the database, never reused.
    pub id: u64,
    /// Options fixed at creation.
    pub options: StoreOptions,
    /// Logical id of the root node; fixed for the store's life.
    pub root: u64,
    /// Number of items.
    pub count: u64,
    /// Commit that created the store.
    pub created_seq: u64,
}

/// Header record of `sop.db`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbHeader {
    /// Random database identity; every commit and checkpoint file repeats it.
    pub db_id: [u8; 16],
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// Header record of a commit or checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHeader {
    /// Database identity (must match `sop.db`).
    pub db_id: [u8; 16],
    /// Commit sequence number (the file name repeats it).
    pub seq: u64,
    /// Random id of the process handle that wrote the file.
    pub writer: u64,
    /// Commit file: a random, nonzero identity of this commit, unique across attempts (a
    /// retried publication recognises its own file by it). Checkpoint: the identity of the
    /// commit it is taken at.
    pub nonce: u64,
    /// Commit file: the identity of the commit at `seq - 1` that this one was built on (0 for
    /// the first commit). A file whose `prev` is not the commit a reader holds at `seq - 1`
    /// is not on that reader's chain. Checkpoint: 0.
    pub prev: u64,
}

/// The identities (`FileHeader::nonce`) of the last commits up to a checkpoint, oldest
/// first: `nonces[i]` is the commit at `seq + 1 - nonces.len() + i`. Stored in its own record
/// right after the checkpoint's header so a writer can tell whether its commit is part of the
/// checkpointed chain without reading the whole registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChainWindow {
    /// Sequence number of the last commit covered.
    pub seq: u64,
    /// Commit identities, oldest first.
    pub nonces: Vec<u64>,
}

impl ChainWindow {
    /// The identity of commit `seq`, if the window covers it.
    pub fn nonce_at(&self, seq: u64) -> Option<u64> {
        let first = (self.seq + 1).checked_sub(self.nonces.len() as u64)?;
        if seq < first || seq > self.seq {
            return None;
        }
        self.nonces.get((seq - first) as usize).copied()
    }
}

/// The outcome of one transaction of a contributed batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Committed; `merged` as in [`crate::CommitInfo::merged`].
    Committed {
        /// Merged in flight.
        merged: bool,
    },
    /// Rejected by validation (`Error::Conflict`), with the reason.
    Conflict(String),
    /// A store it created already existed (`Error::StoreExists`).
    StoreExists(String),
    /// A store it used or dropped did not exist (`Error::StoreNotFound`).
    StoreNotFound(String),
}

/// A commit's verdict on one contributed batch (a batch another process left in `pending/`
/// for whoever publishes next): one outcome per transaction, in the batch's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchVerdict {
    /// The batch's identity (`PendingBatch::id`).
    pub id: u64,
    /// One outcome per transaction of the batch.
    pub outcomes: Vec<TxnOutcome>,
}

/// A verdict and the commit that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// The commit that decided the batch.
    pub seq: u64,
    /// What it decided.
    pub verdict: BatchVerdict,
}

/// A bound of a key range read by a contributed transaction: key bytes and duplicate id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireBound {
    Included(Vec<u8>, u64),
    Excluded(Vec<u8>, u64),
    Unbounded,
}

/// One store's part of a contributed transaction.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireStore {
    pub name: String,
    /// Store id in the transaction's snapshot; `None` if the transaction created it.
    pub store_id: Option<u64>,
    /// Writes: key bytes, duplicate id, and the new value (`None`: delete).
    pub ops: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>,
    /// Key ranges read.
    pub reads: Vec<(WireBound, WireBound)>,
}

/// A catalog change of a contributed transaction.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireCatalogOp {
    Create { name: String, options: StoreOptions },
    Drop { name: String },
}

/// A transaction as a contributed batch carries it: everything validation and merge need
/// (`PendingTxn`), nothing that refers to the contributor's memory.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTxn {
    pub snapshot_seq: u64,
    pub stores: Vec<WireStore>,
    /// Reads of stores the transaction dropped: (name, store id, ranges).
    pub retired: Vec<(String, u64, Vec<(WireBound, WireBound)>)>,
    pub names_read: Vec<String>,
    pub catalog_scanned: bool,
    pub catalog: Vec<WireCatalogOp>,
    pub skip_validation: bool,
}

/// The body of a pending batch file `pending/<id>.batch`: transactions that a process
/// validated nothing of yet and offers to whoever publishes the next commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBatch {
    /// Database identity (must match `sop.db`).
    pub db_id: [u8; 16],
    /// Random, nonzero identity of the batch; the verdict names it.
    pub id: u64,
    /// The transactions, in the order their outcomes are reported.
    pub txns: Vec<WireTxn>,
}

/// One registry change in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryChange {
    /// Logical node id.
    pub node: u64,
    /// Version the writer based its change on (0: the node did not exist). Catch-up checks it.
    pub expected: u64,
    /// New handle, or `None` when the node is deleted.
    pub new: Option<Handle>,
}

/// One catalog change in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogChange {
    /// Create or update a store's entry.
    Put(StoreMeta),
    /// Remove a store by name.
    Drop(String),
}

/// A key as recorded for conflict detection: the stored key bytes and the duplicate id.
pub type ConflictKey = (Vec<u8>, u64);

/// The keys one commit wrote in one store (sorted), or the whole store when it was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreWrites {
    /// Store id.
    pub store: u64,
    /// True when every key of the store counts as written (store created or dropped).
    pub all: bool,
    /// Sorted written keys.
    pub keys: Vec<ConflictKey>,
}

/// The last record of a commit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CommitMeta {
    /// Number of user transactions in this batch (0 for a pure relocation commit).
    pub txns: u32,
    /// Registry changes, applied atomically.
    pub registry: Vec<RegistryChange>,
    /// Catalog changes, applied atomically with the registry changes.
    pub catalog: Vec<CatalogChange>,
    /// Written keys per store, for other processes' conflict checks.
    pub writes: Vec<StoreWrites>,
    /// Catalog names written (store create/drop), for conflict checks.
    pub names: Vec<String>,
    /// Blob records that this commit made unreachable (for space accounting).
    pub freed_blobs: Vec<Loc>,
    /// Next store id to hand out.
    pub next_store_id: u64,
    /// Total length of this file's blob records (for space accounting without reading them).
    pub blob_bytes: u64,
    /// Verdicts on the contributed batches this commit decided (included or rejected).
    pub verdicts: Vec<BatchVerdict>,
}

/// Space accounting of one commit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Commit sequence.
    pub seq: u64,
    /// File size in bytes.
    pub total: u64,
    /// Bytes of records still reachable from the registry or from leaves.
    pub live: u64,
    /// The file's identity (`FileHeader::nonce`): a name that holds another identity is not
    /// this file (its number was reclaimed and reused by a paused writer).
    pub nonce: u64,
}

/// The body of a checkpoint: the whole registry and catalog as of `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBody {
    /// State is as of this commit.
    pub seq: u64,
    /// Every registry entry.
    pub registry: Vec<(u64, Handle)>,
    /// Every store.
    pub catalog: Vec<StoreMeta>,
    /// Space accounting of the commit files still referenced.
    pub files: Vec<FileStat>,
    /// Next store id to hand out.
    pub next_store_id: u64,
}
