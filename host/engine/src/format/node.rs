//! B+tree node images and their encoding.
//!
//! ```text
//! leaf  := 0x01 count:varint item*
//! item  := klen:varint key dup:varint value
//! value := 0x00 vlen:varint bytes            (inline)
//!        | 0x01 seq:u64le off:u32le len:u32le vlen:varint   (blob reference)
//! inner := 0x02 n:varint child:u64le*n (klen:varint key dup:varint)*(n-1)
//! ```
//! Decoding is zero-copy: keys and inline values are slices of the record buffer.

use super::codec::{Reader, put_varint};
use super::meta::Loc;
use bytes::Bytes;

/// A key as the tree orders it: the stored key bytes, then the duplicate id (0 in unique
/// stores). Two items with equal keys in a non-unique store differ by `dup`.
///
/// The first eight key bytes are cached as a big-endian integer: comparing it first is
/// consistent with bytewise order (shorter keys are zero-padded, and ties fall through to the
/// full comparison) and settles almost every comparison of a binary search without `memcmp`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IKey {
    prefix: u64,
    /// Stored key bytes.
    pub key: Bytes,
    /// Duplicate id; orders equal keys by insertion.
    pub dup: u64,
}

impl IKey {
    /// A key with a duplicate id.
    pub fn new(key: Bytes, dup: u64) -> Self {
        IKey { prefix: prefix_of(&key), key, dup }
    }

    /// A key in a unique store.
    pub fn unique(key: Bytes) -> Self {
        IKey::new(key, 0)
    }

    /// Compares with a key given by parts (`prefix` must be `prefix_of(key)`), in the same
    /// order as `Ord`.
    #[inline]
    pub fn cmp_parts(&self, prefix: u64, key: &[u8], dup: u64) -> std::cmp::Ordering {
        self.prefix.cmp(&prefix).then_with(|| self.key[..].cmp(key)).then_with(|| self.dup.cmp(&dup))
    }
}

/// The first eight bytes of `key`, zero-padded, as a big-endian integer.
#[inline]
pub fn prefix_of(key: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = key.len().min(8);
    p[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(p)
}

/// A value as stored in a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// The value bytes themselves.
    Inline(Bytes),
    /// A reference to a blob record, with the value's length.
    Blob {
        /// Where the blob record is.
        loc: Loc,
        /// Value length in bytes.
        len: u32,
    },
}

/// One item of a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its key.
    pub ikey: IKey,
    /// Its value.
    pub val: Val,
}

/// A decoded node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Items in key order.
    Leaf(Vec<Item>),
    /// `children.len() == keys.len() + 1`; child `i` holds keys in `[keys[i-1], keys[i])`.
    Inner {
        /// Separators.
        keys: Vec<IKey>,
        /// Logical ids of the children.
        children: Vec<u64>,
    },
}

const LEAF: u8 = 1;
const INNER: u8 = 2;
/// Upper bound on items or children in a decoded node (sanity check against corrupt input).
const MAX_ENTRIES: usize = 1 << 20;
const MAX_KEY: usize = 1 << 20;

impl Node {
    /// An empty leaf.
    pub fn empty_leaf() -> Self {
        Node::Leaf(Vec::new())
    }

    /// Appends the encoding of this node to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Node::Leaf(items) => {
                out.push(LEAF);
                put_varint(out, items.len() as u64);
                for it in items {
                    put_ikey(out, &it.ikey);
                    put_val(out, &it.val);
                }
            }
            Node::Inner { keys, children } => {
                out.push(INNER);
                put_varint(out, children.len() as u64);
                for c in children {
                    out.extend_from_slice(&c.to_le_bytes());
                }
                for k in keys {
                    put_ikey(out, k);
                }
            }
        }
    }

    /// Decodes a node from `buf` (the payload after the node id). Errors are descriptive
    /// strings; the caller names the file.
    pub fn decode(buf: &Bytes) -> Result<Node, String> {
        let mut r = Reader::new(buf);
        let node = match r.u8()? {
            LEAF => {
                let n = r.len(MAX_ENTRIES)?;
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    let ikey = get_ikey(&mut r, buf)?;
                    let val = get_val(&mut r, buf)?;
                    items.push(Item { ikey, val });
                }
                if items.windows(2).any(|w| w[0].ikey >= w[1].ikey) {
                    return Err("leaf items out of order".into());
                }
                Node::Leaf(items)
            }
            INNER => {
                let n = r.len(MAX_ENTRIES)?;
                if n == 0 {
                    return Err("inner node without children".into());
                }
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    children.push(r.u64()?);
                }
                let mut keys = Vec::with_capacity(n - 1);
                for _ in 1..n {
                    keys.push(get_ikey(&mut r, buf)?);
                }
                if keys.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("inner separators out of order".into());
                }
                Node::Inner { keys, children }
            }
            t => return Err(format!("unknown node kind {t}")),
        };
        if r.remaining() != 0 {
            return Err(format!("{} trailing bytes after node", r.remaining()));
        }
        Ok(node)
    }
}

/// One change of a leaf relative to its base image: a put (`Some`) or a removal (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaEntry {
    /// The key.
    pub ikey: IKey,
    /// The new value, or `None` when the key was removed.
    pub val: Option<Val>,
}

/// Encodes delta entries:
/// ```text
/// delta := count:varint entry*
/// entry := 0x00 klen:varint key dup:varint value     (put; value as in a leaf)
///        | 0x01 klen:varint key dup:varint           (removal)
/// ```
pub fn encode_delta(entries: &[DeltaEntry], out: &mut Vec<u8>) {
    put_varint(out, entries.len() as u64);
    for e in entries {
        match &e.val {
            Some(v) => {
                out.push(0);
                put_ikey(out, &e.ikey);
                put_val(out, v);
            }
            None => {
                out.push(1);
                put_ikey(out, &e.ikey);
            }
        }
    }
}

/// Decodes delta entries (the bytes after the base location).
pub fn decode_delta(buf: &Bytes) -> Result<Vec<DeltaEntry>, String> {
    let mut r = Reader::new(buf);
    let n = r.len(MAX_ENTRIES)?;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let put = match r.u8()? {
            0 => true,
            1 => false,
            t => return Err(format!("unknown delta entry kind {t}")),
        };
        let ikey = get_ikey(&mut r, buf)?;
        let val = if put { Some(get_val(&mut r, buf)?) } else { None };
        out.push(DeltaEntry { ikey, val });
    }
    if out.windows(2).any(|w| w[0].ikey >= w[1].ikey) {
        return Err("delta entries out of order".into());
    }
    if r.remaining() != 0 {
        return Err(format!("{} trailing bytes after delta", r.remaining()));
    }
    Ok(out)
}

/// The changes that turn `base` into `new` (both sorted).
pub fn diff(base: &[Item], new: &[Item]) -> Vec<DeltaEntry> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < base.len() || j < new.len() {
        let ord = match (base.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.ikey.cmp(&b.ikey),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push(DeltaEntry { ikey: base[i].ikey.clone(), val: None });
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(DeltaEntry { ikey: new[j].ikey.clone(), val: Some(new[j].val.clone()) });
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if base[i].val != new[j].val {
                    out.push(DeltaEntry { ikey: new[j].ikey.clone(), val: Some(new[j].val.clone()) });
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Applies a delta to its base items.
pub fn apply_delta(base: &[Item], delta: &[DeltaEntry]) -> Vec<Item> {
    let mut out = Vec::with_capacity(base.len() + delta.len());
    let mut i = 0;
    for e in delta {
        while i < base.len() && base[i].ikey < e.ikey {
            out.push(base[i].clone());
            i += 1;
        }
        if i < base.len() && base[i].ikey == e.ikey {
            i += 1;
        }
        if let Some(v) = &e.val {
            out.push(Item { ikey: e.ikey.clone(), val: v.clone() });
        }
    }
    out.extend_from_slice(&base[i..]);
    out
}

fn put_val(out: &mut Vec<u8>, v: &Val) {
    match v {
        Val::Inline(v) => {
            out.push(0);
            put_varint(out, v.len() as u64);
            out.extend_from_slice(v);
        }
        Val::Blob { loc, len } => {
            out.push(1);
            out.extend_from_slice(&loc.seq.to_le_bytes());
            out.extend_from_slice(&loc.off.to_le_bytes());
            out.extend_from_slice(&loc.len.to_le_bytes());
            put_varint(out, u64::from(*len));
        }
    }
}

fn get_val(r: &mut Reader<'_>, buf: &Bytes) -> Result<Val, String> {
    Ok(match r.u8()? {
        0 => {
            let len = r.len(u32::MAX as usize)?;
            let start = r.pos();
            r.take(len)?;
            Val::Inline(buf.slice(start..start + len))
        }
        1 => {
            let loc = Loc { seq: r.u64()?, off: r.u32()?, len: r.u32()? };
            let len = u32::try_from(r.varint()?).map_err(|_| "blob length overflows u32")?;
            Val::Blob { loc, len }
        }
        t => return Err(format!("unknown value tag {t}")),
    })
}

fn put_ikey(out: &mut Vec<u8>, k: &IKey) {
    put_varint(out, k.key.len() as u64);
    out.extend_from_slice(&k.key);
    put_varint(out, k.dup);
}

fn get_ikey(r: &mut Reader<'_>, buf: &Bytes) -> Result<IKey, String> {
    let len = r.len(MAX_KEY)?;
    let start = r.pos();
    r.take(len)?;
    let dup = r.varint()?;
    Ok(IKey::new(buf.slice(start..start + len), dup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let leaf = Node::Leaf(vec![
            Item { ikey: IKey::unique(Bytes::from_static(b"a")), val: Val::Inline(Bytes::from_static(b"1")) },
            Item {
                ikey: IKey::new(Bytes::from_static(b"b"), 7),
                val: Val::Blob { loc: Loc { seq: 3, off: 9, len: 20 }, len: 11 },
            },
        ]);
        let inner = Node::Inner { keys: vec![IKey::unique(Bytes::from_static(b"m"))], children: vec![1, 2] };
        for n in [leaf, inner] {
            let mut b = Vec::new();
            n.encode(&mut b);
            let bytes = Bytes::from(b.clone());
            assert_eq!(Node::decode(&bytes).unwrap(), n);
            for cut in 0..b.len() {
                assert!(Node::decode(&Bytes::from(b[..cut].to_vec())).is_err());
            }
        }
    }
}
