//! The committed state: registry and catalog as of one commit, shared by snapshot.

use crate::format::meta::{Decided, Handle, StoreMeta};
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
    /// Identities of the last commits up to `seq`, oldest first (at most [`CHAIN_WINDOW`]);
    /// the last one is the commit at `seq`, which the next commit names as its `prev`.
    pub chain: imbl::Vector<u64>,
    /// Verdicts on contributed batches decided by the commits of the chain window, oldest
    /// first (see `db::contribute`).
    pub verdicts: imbl::Vector<Arc<Decided>>,
}

/// How many commit identities a state (and so a checkpoint) remembers. A writer paused between
/// publishing and checking its commit for longer than this many commits, with a checkpoint
/// taken meanwhile, cannot tell whether its commit counts and reports
/// [`crate::Error::CommitUnknown`].
pub const CHAIN_WINDOW: usize = 4096;

impl State {
    /// Identity of the commit at `seq` (0 for the empty database).
    pub fn head(&self) -> u64 {
        self.chain.last().copied().unwrap_or(0)
    }

    /// Appends the commit `nonce` as the new head (the caller advances `seq`).
    pub fn push_chain(&mut self, nonce: u64) {
        self.chain.push_back(nonce);
        while self.chain.len() > CHAIN_WINDOW {
            self.chain.pop_front();
        }
    }

    /// Records the verdicts of the commit at `self.seq` (call after advancing `seq`) and
    /// forgets those of commits that left the chain window.
    pub fn push_verdicts(&mut self, verdicts: impl IntoIterator<Item = crate::format::meta::BatchVerdict>) {
        for verdict in verdicts {
            self.verdicts.push_back(Arc::new(Decided { seq: self.seq, verdict }));
        }
        while self.verdicts.front().is_some_and(|d| d.seq + CHAIN_WINDOW as u64 <= self.seq) {
            self.verdicts.pop_front();
        }
    }

    /// The verdict on batch `id`, if a commit of the window decided it. A batch is decided at
    /// most once within the window (`db::contribute`), so the answer is unique.
    pub fn verdict(&self, id: u64) -> Option<&Decided> {
        self.verdicts.iter().rev().map(|d| &**d).find(|d| d.verdict.id == id)
    }

    /// Whether the verdicts of every commit after `snapshot` are still in the window, so that
    /// [`State::verdict`] can rule out a decision on a batch taken at `snapshot`.
    pub fn remembers_since(&self, snapshot: u64) -> bool {
        snapshot + CHAIN_WINDOW as u64 >= self.seq
    }

    /// The window as stored in a checkpoint.
    pub fn chain_window(&self) -> crate::format::meta::ChainWindow {
        crate::format::meta::ChainWindow { seq: self.seq, nonces: self.chain.iter().copied().collect() }
    }
}
