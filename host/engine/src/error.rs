//! The engine's error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as a typed value. No operation panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another transaction committed a change to a key (or range) this transaction read or
    /// wrote. Nothing of this transaction was written; retry it (see [`crate::Database::transact`]).
    #[error("transaction conflict: {0}")]
    Conflict(String),

    /// A file failed its checksum, was truncated, or holds an impossible record.
    #[error("corrupt file {file}: {detail}")]
    Corrupt {
        /// The file that failed.
        file: PathBuf,
        /// What was wrong with it.
        detail: String,
    },

    /// A file was written by a newer (or unknown) format version of the engine.
    #[error("file {file} has format version {found}, this build reads version {supported}")]
    UnsupportedFormat {
        /// The offending file.
        file: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Version this build understands.
        supported: u32,
    },

    /// The folder does not hold a sop database.
    #[error("{0} is not a sop database (no sop.db header); use Database::create or open_or_create")]
    NotADatabase(PathBuf),

    /// The folder already holds a database.
    #[error("{0} already holds a sop database")]
    AlreadyExists(PathBuf),

    /// An I/O error from the file system.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An earlier durable write or fsync failed. The on-disk state is still consistent, but
    /// this handle can no longer know what reached the disk; reopen the database to recover.
    #[error("database handle is poisoned by an earlier I/O failure ({0}); reopen the database")]
    Poisoned(String),

    /// No store with this name exists (in this transaction's view).
    #[error("store {0:?} does not exist")]
    StoreNotFound(String),

    /// A store with this name already exists.
    #[error("store {0:?} already exists")]
    StoreExists(String),

    /// A store name is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid store name {0:?}: use 1-128 characters from [A-Za-z0-9_.-]")]
    InvalidStoreName(String),

    /// Store options are out of range.
    #[error("invalid store options: {0}")]
    InvalidOptions(String),

    /// The key is longer than [`crate::MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The value is longer than [`crate::MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Empty keys are not allowed in this store.
    #[error("empty keys are not allowed in store {0:?}")]
    EmptyKey(String),

    /// One commit would exceed the 4 GiB a commit file can address; split the transaction.
    #[error("commit of {bytes} bytes exceeds the 4 GiB limit of one commit file; split the transaction")]
    CommitTooLarge {
        /// Size the commit file would have had.
        bytes: u64,
    },

    /// The transaction already committed or rolled back, or failed earlier.
    #[error("transaction is finished (committed, rolled back or failed)")]
    TransactionFinished,

    /// A write was attempted in a read-only transaction.
    #[error("transaction is read-only")]
    ReadOnly,

    /// The cursor is not positioned on an item.
    #[error("cursor is not positioned on an item")]
    NoCurrentItem,

    /// The store's key order cannot be loaded: it is not registered in this process, or the
    /// plugin it pins is missing from the database or does not match. The store is never read
    /// in another order.
    #[error("store {store:?} uses key order {order:?}, which is not available: {reason}")]
    OrderUnavailable {
        /// The store.
        store: String,
        /// The order, as `name@id`.
        order: String,
        /// Why it could not be loaded.
        reason: String,
    },

    /// A validator rejected the commit. Nothing was written.
    #[error("commit rejected by validator {validator:?}: {}", reasons.join("; "))]
    Rejected {
        /// The validator's name.
        validator: String,
        /// Its reasons, one per rejected write (capped by the validator).
        reasons: Vec<String>,
    },

    /// A plugin failed (trapped, ran out of time or memory, broke a host limit) or could not
    /// be loaded. `source` is the host's own error: downcast it (for instance to
    /// `sop_wasm::PluginError`) to tell the cases apart. The operation had no effect; a
    /// transaction in progress can still be rolled back or retried.
    #[error("{source}")]
    Plugin {
        /// The plugin (a name, or a key order's id). The message of `source` names it too.
        plugin: String,
        /// What went wrong (shared, so the error can be cloned for every member of a batch).
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The transaction saw a snapshot whose files were already reclaimed (it lived too long,
    /// or its process sat behind while others checkpointed). Retry it: a new transaction
    /// starts on the newest state.
    #[error("snapshot at commit {0} is too old: its files were reclaimed; retry the transaction")]
    SnapshotTooOld(u64),

    /// The commit was published, but this process was paused for so long before it could
    /// check the result that every record of whether it counts was reclaimed. It may or may
    /// not have taken effect; nothing else was harmed. Not retried automatically (the
    /// transaction might apply twice): read the data to find out.
    #[error("the outcome of commit {seq} is unknown: the process was paused for too long after publishing it")]
    CommitUnknown {
        /// The sequence number it was published at.
        seq: u64,
    },

    /// The coordinator (Redis in swarm mode) cannot be reached. Nothing was written; the
    /// operation can be retried once it is back.
    #[error("coordinator unavailable: {0}")]
    Coordinator(String),

    /// The database is in use in another mode (embedded vs. cluster) by another process.
    #[error("{path} is open in {other} mode by another process; open it in the same mode or stop that process")]
    ModeConflict {
        /// The database folder.
        path: PathBuf,
        /// The mode in use.
        other: String,
    },

    /// A typed value could not be (de)serialised.
    #[error("value codec error: {0}")]
    Codec(String),

    /// The retry helper gave up after this many attempts; the last error was a conflict.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        last: Box<Error>,
    },
}

/// Every member of a commit batch gets its own copy of the batch's error. The I/O source is
/// rebuilt with the same kind and message (`std::io::Error` is not `Clone`); every other
/// variant is copied as it is.
impl Clone for Error {
    fn clone(&self) -> Self {
        use Error::*;
        match self {
            Conflict(s) => Conflict(s.clone()),
            Corrupt { file, detail } => Corrupt { file: file.clone(), detail: detail.clone() },
            UnsupportedFormat { file, found, supported } => {
                UnsupportedFormat { file: file.clone(), found: *found, supported: *supported }
            }
            NotADatabase(p) => NotADatabase(p.clone()),
            AlreadyExists(p) => AlreadyExists(p.clone()),
            Io { path, source } => {
                Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            Poisoned(s) => Poisoned(s.clone()),
            StoreNotFound(s) => StoreNotFound(s.clone()),
            StoreExists(s) => StoreExists(s.clone()),
            InvalidStoreName(s) => InvalidStoreName(s.clone()),
            InvalidOptions(s) => InvalidOptions(s.clone()),
            KeyTooLarge { len, max } => KeyTooLarge { len: *len, max: *max },
            ValueTooLarge { len, max } => ValueTooLarge { len: *len, max: *max },
            EmptyKey(s) => EmptyKey(s.clone()),
            CommitTooLarge { bytes } => CommitTooLarge { bytes: *bytes },
            TransactionFinished => TransactionFinished,
            ReadOnly => ReadOnly,
            NoCurrentItem => NoCurrentItem,
            OrderUnavailable { store, order, reason } => {
                OrderUnavailable { store: store.clone(), order: order.clone(), reason: reason.clone() }
            }
            Rejected { validator, reasons } => Rejected { validator: validator.clone(), reasons: reasons.clone() },
            Plugin { plugin, source } => Plugin { plugin: plugin.clone(), source: source.clone() },
            SnapshotTooOld(s) => SnapshotTooOld(*s),
            CommitUnknown { seq } => CommitUnknown { seq: *seq },
            Coordinator(s) => Coordinator(s.clone()),
            ModeConflict { path, other } => ModeConflict { path: path.clone(), other: other.clone() },
            Codec(s) => Codec(s.clone()),
            RetriesExhausted { attempts, last } => RetriesExhausted { attempts: *attempts, last: last.clone() },
        }
    }
}

impl Error {
    /// A plugin failure, from the error its host returned.
    pub fn plugin(plugin: impl Into<String>, source: crate::ExtError) -> Self {
        Error::Plugin { plugin: plugin.into(), source: std::sync::Arc::from(source) }
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict(_) | Error::SnapshotTooOld(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Error::Corrupt { file: file.into(), detail: detail.into() }
    }
}
