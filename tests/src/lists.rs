//! The list-append workload's storage encoding, shared by `sop-worker` and the tests that read
//! the final state.
//!
//! A list is stored as its `u64` elements, little-endian, under the big-endian key. Store
//! [`LISTS`] maps key `k` to the list of logical key `k`. Store [`VOLATILE`] is dropped and
//! re-created while the workload runs; each incarnation is a *generation*: 0 for the one the
//! workers create at start, [`generation_of`]`(id)` for the one transaction `id` creates. Its
//! key `k` is the logical key [`volatile_key`]`(generation, k)`, so a list never shrinks in the
//! history. The transaction that creates a generation reads every key of the old one, logs a
//! [`tombstone`] append to each (it closes those lists: nobody may append to them after it),
//! and starts every list of the new one with a [`marker`] naming the new generation. Markers and
//! tombstones carry the id of the transaction that wrote them, so each is appended by one
//! transaction only, whether it commits or not.

use crate::checker::{Mop, Outcome, Txn};
use sop::{Database, StoreOptions};

/// The store of plain lists.
pub const LISTS: &str = "lists";
/// The store that is dropped and re-created.
pub const VOLATILE: &str = "vol";
/// At most this many keys in [`VOLATILE`].
pub const MAX_VOLATILE_KEYS: u64 = 1 << 12;

const VOLATILE_KEY: u64 = 1 << 62;
const MARK: u64 = 1 << 62;
const TOMB: u64 = 1 << 61;
const ID_SHIFT: u32 = 12;
/// Transaction ids of the workers are below 2^48.
const ID_MASK: u64 = (1 << 48) - 1;

/// Options of both stores: small nodes, so lists spread over several of them.
pub fn store_options() -> StoreOptions {
    StoreOptions { slot_length: 8, ..StoreOptions::default() }
}

/// A list from its stored bytes.
pub fn decode(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

/// The stored bytes of a list.
pub fn encode(list: &[u64]) -> Vec<u8> {
    list.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The generation of [`VOLATILE`] that a list read from it belongs to.
pub fn generation(list: &[u64]) -> u64 {
    match list.first() {
        Some(&v) if v & MARK != 0 => (v >> ID_SHIFT) & ID_MASK,
        _ => 0,
    }
}

/// The generation that transaction `id` creates.
pub fn generation_of(id: u64) -> u64 {
    id + 1
}

/// The logical key of key `k` of generation `generation` of [`VOLATILE`].
pub fn volatile_key(generation: u64, k: u64) -> u64 {
    VOLATILE_KEY | generation << ID_SHIFT | k
}

/// The first element of key `k`'s list in generation `generation` (>= 1).
pub fn marker(generation: u64, k: u64) -> u64 {
    MARK | generation << ID_SHIFT | k
}

/// The value transaction `closer` logs (never stores) as appended to key `k` of the generation
/// it replaces.
pub fn tombstone(closer: u64, k: u64) -> u64 {
    TOMB | closer << ID_SHIFT | k
}

/// Microseconds since the Unix epoch: every process of a test runs on one host, so these
/// order events across processes (real-time edges).
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// One read-only transaction that reads every list, as a committed transaction `id` of the
/// history: keys `0..keys` of [`LISTS`] and `0..volatile_keys` of [`VOLATILE`], plus any other
/// key found in either store (which would be a bug of the workload or the engine: the checker
/// reports its values as garbage).
pub fn final_read(db: &Database, id: u64, keys: u64, volatile_keys: u64) -> sop::Result<Txn> {
    let invoked = now_us();
    let tx = db.begin_read()?;
    let mut ops = Vec::new();
    for (store, n) in [(LISTS, keys), (VOLATILE, volatile_keys)] {
        if !tx.store_exists(store)? {
            continue;
        }
        let s = tx.open_store(store)?;
        let mut found: std::collections::BTreeMap<u64, Vec<u64>> = (0..n).map(|k| (k, Vec::new())).collect();
        for kv in s.iter()? {
            let (k, v) = kv?;
            let k = k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
            found.insert(k, decode(&v));
        }
        for (k, list) in found {
            let key = if store == LISTS { k } else { volatile_key(generation(&list), k) };
            ops.push(Mop::read(key, &list));
        }
    }
    let mut t = Txn::new(id, id, Outcome::Committed, ops);
    t.invoked = Some(invoked);
    t.completed = Some(now_us());
    Ok(t)
}
