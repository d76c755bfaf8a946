//! The committed state: registry and catalog as of one commit, shared by snapshot.

use crate::format::meta::{Handle, StoreMeta};
use std::sync::Arc;

/// An immutable view of the database as of commit `seq`. Cloning is O(1) (persistent maps),
/// so every transaction holds its own snapshot for as long as it lives.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The commit this state reflects (0: empty database).
    pub seq: u64,
    /// Logical node id -> current image.
    pub registry: imbl::HashMap<u64, Handle>,
    /// Store name -> metadata.
    pub catalog: imbl::OrdMap<String, Arc<StoreMeta>>,
    /// Next store id to hand out.
    pub next_store_id: u64,
}
