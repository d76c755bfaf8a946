//! The node store: where node images and blobs are read from. Paths, open file handles
//! (each checked against the identity the state expects at that number), record reads and
//! the decoded-node cache.

use crate::error::{Error, Result};
use crate::format::meta::Loc;
use crate::format::node::Node;
use crate::format::record::{self, RECORD_HEADER_LEN, tag};
use crate::vfs::{VFile, Vfs};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The folder layout of a database.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn header(&self) -> PathBuf {
        self.root.join("sop.db")
    }
    pub fn commits(&self) -> PathBuf {
        self.root.join("commits")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn pending(&self) -> PathBuf {
        self.root.join("pending")
    }
    pub fn pending_batch(&self, id: u64) -> PathBuf {
        self.pending().join(format!("{id:016x}.batch"))
    }
    pub fn commit(&self, seq: u64) -> PathBuf {
        self.commits().join(format!("{seq:020}.commit"))
    }
    pub fn checkpoint(&self, seq: u64) -> PathBuf {
        self.checkpoints().join(format!("{seq:020}.ckpt"))
    }
}

/// Parses `00000000000000000042.commit` style names.
pub(crate) fn parse_seq(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Open read handles of commit files, keyed by sequence number.
pub(crate) struct FileTable {
    vfs: Arc<dyn Vfs>,
    layout: Layout,
    open: Mutex<HashMap<u64, Arc<dyn VFile>>>,
}

const MAX_OPEN: usize = 256;

impl FileTable {
    pub fn new(vfs: Arc<dyn Vfs>, layout: Layout) -> Self {
        FileTable { vfs, layout, open: Mutex::new(HashMap::new()) }
    }

    /// The open handle of commit file `seq`. `expected` gives the identity the latest state
    /// knows for that number (asked only when the file is opened): a file that is unknown, gone
    /// or holds another identity reads as [`Error::SnapshotTooOld`], because its number was
    /// reclaimed (and perhaps reused by a paused writer's void file).
    pub fn get(&self, seq: u64, expected: &dyn Fn(u64) -> Option<u64>) -> Result<Arc<dyn VFile>> {
        if let Some(f) = self.open.lock().get(&seq) {
            return Ok(f.clone());
        }
        let Some(nonce) = expected(seq) else { return Err(Error::SnapshotTooOld(seq)) };
        let path = self.layout.commit(seq);
        let f = match self.vfs.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::SnapshotTooOld(seq)),
            Err(e) => return Err(Error::io(path, e)),
        };
        let len = f.len().map_err(|e| Error::io(&path, e))?;
        let header = super::catch_up::read_header(&path, &*f, record::MAGIC_COMMIT, len)?;
        if header.nonce != nonce {
            return Err(Error::SnapshotTooOld(seq));
        }
        let mut open = self.open.lock();
        if open.len() >= MAX_OPEN {
            let victim = *open.keys().next().expect("non-empty");
            open.remove(&victim);
        }
        open.insert(seq, f.clone());
        Ok(f)
    }

    pub fn forget(&self, seq: u64) {
        self.open.lock().remove(&seq);
    }

    /// Reads and verifies one record; returns its tag and payload.
    pub fn read_record(&self, loc: Loc, expected: &dyn Fn(u64) -> Option<u64>) -> Result<(u8, Bytes)> {
        let f = self.get(loc.seq, expected)?;
        let path = self.layout.commit(loc.seq);
        let mut buf = vec![0u8; loc.len as usize];
        f.read_exact_at(&mut buf, u64::from(loc.off)).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    &path,
                    format!("record at offset {} (len {}) is past the end of the file", loc.off, loc.len),
                )
            } else {
                Error::io(&path, e)
            }
        })?;
        let (t, payload, used) = record::parse_record(&path, u64::from(loc.off), &buf)?;
        if used != buf.len() {
            return Err(Error::corrupt(&path, format!("record at offset {} has the wrong length", loc.off)));
        }
        let start = RECORD_HEADER_LEN;
        let end = start + payload.len();
        Ok((t, Bytes::from(buf).slice(start..end)))
    }

    /// Reads a record of kind `want` that belongs to node `id` and is at least `min` bytes;
    /// returns the payload after the node id.
    fn read_node_record(
        &self,
        id: u64,
        loc: Loc,
        want: u8,
        min: usize,
        what: &str,
        expected: &dyn Fn(u64) -> Option<u64>,
    ) -> Result<Bytes> {
        let path = || self.layout.commit(loc.seq);
        let (t, payload) = self.read_record(loc, expected)?;
        if t != want || payload.len() < 8 + min {
            return Err(Error::corrupt(path(), format!("record at offset {} is not a {what}", loc.off)));
        }
        let found = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        if found != id {
            return Err(Error::corrupt(path(), format!("{what} at {} is node {found:#x}, expected {id:#x}", loc.off)));
        }
        Ok(payload.slice(8..))
    }

    /// Reads and decodes the node image at `loc`, checking that it belongs to node `id`.
    pub fn read_node(&self, id: u64, loc: Loc, expected: &dyn Fn(u64) -> Option<u64>) -> Result<Node> {
        let body = self.read_node_record(id, loc, tag::NODE, 0, "node image", expected)?;
        Node::decode(&body)
            .map_err(|d| Error::corrupt(self.layout.commit(loc.seq), format!("node at offset {}: {d}", loc.off)))
    }

    /// Reads a delta record: its base location and its changes.
    pub fn read_delta(
        &self,
        id: u64,
        loc: Loc,
        expected: &dyn Fn(u64) -> Option<u64>,
    ) -> Result<(Loc, Vec<crate::format::node::DeltaEntry>)> {
        let path = || self.layout.commit(loc.seq);
        let payload = self.read_node_record(id, loc, tag::DELTA, 16, "leaf delta", expected)?;
        let base = Loc {
            seq: u64::from_le_bytes(payload[0..8].try_into().expect("8 bytes")),
            off: u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes")),
            len: u32::from_le_bytes(payload[12..16].try_into().expect("4 bytes")),
        };
        let entries = crate::format::node::decode_delta(&payload.slice(16..))
            .map_err(|d| Error::corrupt(path(), format!("delta at offset {}: {d}", loc.off)))?;
        Ok((base, entries))
    }

    /// Reads a blob record's value bytes.
    pub fn read_blob(&self, loc: Loc, expected: &dyn Fn(u64) -> Option<u64>) -> Result<Bytes> {
        let (t, payload) = self.read_record(loc, expected)?;
        let bad = || Error::corrupt(self.layout.commit(loc.seq), format!("record at offset {} is not a blob", loc.off));
        if t != tag::BLOB {
            return Err(bad());
        }
        let (_, _, value_at) = parse_blob_header(&payload).ok_or_else(bad)?;
        Ok(payload.slice(value_at..))
    }
}

/// Blob payload: `store:u64le klen:varint key dup:varint value`. Returns (store, (key range,
/// dup), offset of the value).
pub(crate) fn parse_blob_header(payload: &[u8]) -> Option<(u64, (std::ops::Range<usize>, u64), usize)> {
    let mut r = crate::format::codec::Reader::new(payload);
    let store = r.u64().ok()?;
    let klen = r.len(crate::MAX_KEY_LEN).ok()?;
    let kstart = r.pos();
    r.take(klen).ok()?;
    let dup = r.varint().ok()?;
    Some((store, (kstart..kstart + klen, dup), r.pos()))
}

/// Decoded nodes keyed by their immutable location. Because a location is never rewritten,
/// a cached image can never be stale; only the registry says which location is current.
pub(crate) struct NodeCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Loc, Arc<Node>, crate::state::FastBuild>,
    bytes: usize,
}

const SHARDS: usize = 16;

impl NodeCache {
    pub fn new(budget_bytes: usize) -> Self {
        NodeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: budget_bytes / SHARDS,
        }
    }

    fn shard(&self, loc: &Loc) -> &Mutex<Shard> {
        let h = loc.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(loc.off).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        &self.shards[(h >> 59) as usize % SHARDS]
    }

    pub fn get(&self, loc: &Loc) -> Option<Arc<Node>> {
        self.shard(loc).lock().map.get(loc).cloned()
    }

    pub fn insert(&self, loc: Loc, node: Arc<Node>) {
        let mut s = self.shard(&loc).lock();
        if s.bytes + loc.len as usize > self.shard_budget && !s.map.is_empty() {
            // Drop about half of the shard; decoded nodes are cheap to reload and this keeps
            // the cache free of per-entry bookkeeping on the read path.
            let victims: Vec<Loc> = s.map.keys().step_by(2).copied().collect();
            for v in victims {
                if s.map.remove(&v).is_some() {
                    s.bytes = s.bytes.saturating_sub(v.len as usize);
                }
            }
        }
        if s.map.insert(loc, node).is_none() {
            s.bytes += loc.len as usize;
        }
    }

    pub fn forget(&self, loc: &Loc) {
        let mut s = self.shard(loc).lock();
        if s.map.remove(loc).is_some() {
            s.bytes = s.bytes.saturating_sub(loc.len as usize);
        }
    }

    pub fn forget_file(&self, seq: u64) {
        for sh in &self.shards {
            let mut s = sh.lock();
            let before = s.map.len();
            s.map.retain(|l, _| l.seq != seq);
            if s.map.len() != before {
                s.bytes = s.map.keys().map(|l| l.len as usize).sum();
            }
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
