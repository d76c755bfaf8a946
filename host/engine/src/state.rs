//! The committed state: registry and catalog as of one commit, shared by snapshot.

use crate::format::meta::{Handle, StoreMeta};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes keys that are already uniformly random (node ids) or built from counters (record
/// locations) with one multiply instead of SipHash: the registry and the node cache sit on
/// every step of every read.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

/// `BuildHasher` for [`FastHasher`].
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// The registry map: logical node id -> handle.
pub type Registry = imbl::GenericHashMap<u64, Handle, FastBuild, imbl::shared_ptr::DefaultSharedPtr>;

/// An immutable view of the database as of commit `seq`. Cloning is O(1) (persistent maps),
/// so every transaction holds its own snapshot for as long as it lives.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The commit this state reflects (0: empty database).
    pub seq: u64,
    /// Logical node id -> current image.
    pub registry: Registry,
    /// Store name -> metadata.
    pub catalog: imbl::OrdMap<String, Arc<StoreMeta>>,
    /// Next store id to hand out.
    pub next_store_id: u64,
}
