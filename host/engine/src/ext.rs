//! Extension points for the plugin host: custom key orders and commit validators.
//!
//! The engine knows nothing about Wasm. A host (the `sop-wasm` crate, or a native embedder)
//! implements these traits; the engine calls them at well-defined points:
//! - [`OrderCodec::encode_batch`] when a store with a custom order writes or probes keys;
//! - [`Extensions::key_order`] the first time a transaction opens a store whose order is
//!   not registered natively;
//! - [`Extensions::validate`] once per commit, for each validator guarding a written store,
//!   before the commit is published (a rejection writes nothing).

use crate::Database;
use bytes::Bytes;
use std::sync::Arc;

/// An error raised by extension code, kept whole so callers can downcast it to the host's
/// own typed error (for instance `sop_wasm::PluginError`).
pub type ExtError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A custom key order: maps a key to bytes whose bytewise order is the desired order.
/// Registered with [`Database::register_order`], or resolved through [`Extensions`].
pub trait OrderCodec: Send + Sync {
    /// Identity of this exact codec (a store pins it at creation; for plugins, the
    /// component's sha256 in hex).
    fn id(&self) -> &str;

    /// Appends the sort key of `key` to `out`.
    fn encode(&self, key: &[u8], out: &mut Vec<u8>) -> Result<(), ExtError>;

    /// The sort keys of many keys, in order. Plugins override this: one call per batch
    /// instead of one per key.
    fn encode_batch(&self, keys: &[&[u8]]) -> Result<Vec<Vec<u8>>, ExtError> {
        keys.iter()
            .map(|k| {
                let mut out = Vec::with_capacity(k.len() + 8);
                self.encode(k, &mut out)?;
                Ok(out)
            })
            .collect()
    }
}

/// One write of a committing transaction, as a validator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// The store written.
    pub store: String,
    /// The key as the application wrote it (not a custom order's sort key).
    pub key: Bytes,
    /// The new value, or `None` for a remove.
    pub value: Option<Bytes>,
}

/// What a validator decided.
pub type Verdict = Result<(), Vec<String>>;

/// Plugin services the engine calls into. Install with [`Database::set_extensions`].
pub trait Extensions: Send + Sync {
    /// The codec of a store created with `KeyOrder::Custom { name, id }`. Must return a codec
    /// whose [`OrderCodec::id`] is `id`, or fail: a store is never read in another order.
    fn key_order(&self, db: &Database, name: &str, id: &str) -> Result<Arc<dyn OrderCodec>, ExtError>;

    /// Checks the writes of one commit to the stores guarded by `validator`.
    /// `Ok(Err(reasons))` rejects the commit; `Err` means the validator itself failed.
    fn validate(&self, db: &Database, validator: &str, batch: &[Mutation]) -> Result<Verdict, ExtError>;
}
