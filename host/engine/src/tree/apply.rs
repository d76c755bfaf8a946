//! Copy-on-write application of a sorted batch of item-level mutations to one store's tree.
//!
//! This is SOP's in-flight merge: every commit applies its transactions'
//! item-level changes to the freshest committed tree, so two transactions that changed
//! different keys of one node both land, and structure changes (splits, removals, root
//! growth and collapse) are recomputed against the current shape. Bytes are never merged.

use super::NodeSource;
use crate::error::Result;
use crate::format::meta::Loc;
use crate::format::node::{IKey, Item, Node, Val};
use std::collections::HashMap;
#[cfg(test)]
use std::sync::Arc;

/// One item-level change.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Insert or overwrite.
    Put(Val),
    /// Remove if present.
    Delete,
    /// Compaction: if the item still points at blob `from`, point it at `to` instead.
    Relocate {
        /// The blob being moved.
        from: Loc,
        /// Its new home.
        to: Val,
    },
}

/// A mutation tagged with the index of the transaction (in the commit batch) that made it.
#[derive(Debug, Clone)]
pub struct Tagged {
    /// The key.
    pub key: IKey,
    /// The change.
    pub op: Mutation,
    /// Transaction index in the batch (`u32::MAX` for maintenance work).
    pub tag: u32,
}

/// What applying a batch produced.
#[derive(Default)]
pub struct Applied {
    /// New node images to write, by logical id (updated and created nodes).
    pub written: HashMap<u64, Node>,
    /// Logical ids removed from the tree.
    pub deleted: Vec<u64>,
    /// Blob records no longer referenced.
    pub freed_blobs: Vec<Loc>,
    /// Change in the number of items.
    pub count_delta: i64,
    /// For each rewritten leaf, the transactions whose changes landed in it.
    pub leaf_tags: Vec<(u64, Vec<u32>)>,
}

struct Piece {
    /// Lowest key of the piece (separator to its left); `None` for the first piece.
    low: Option<IKey>,
    node: Node,
}

struct Ctx<'a> {
    src: &'a dyn NodeSource,
    new_id: &'a mut dyn FnMut() -> u64,
    slot: usize,
    out: Applied,
}

/// Applies `muts` (sorted by key, unique keys) to the tree rooted at `root`.
/// `new_id` hands out fresh logical ids for nodes created by splits.
pub fn apply(
    src: &dyn NodeSource,
    root: u64,
    slot: usize,
    muts: &[Tagged],
    new_id: &mut dyn FnMut() -> u64,
) -> Result<Applied> {
    let mut cx = Ctx { src, new_id, slot: slot.max(4), out: Applied::default() };
    if muts.is_empty() {
        return Ok(cx.out);
    }
    let root_node = src.node(root)?;
    let pieces = apply_node(&mut cx, root, &root_node, muts)?;
    let mut root_image = match pieces.len() {
        0 => Node::empty_leaf(),
        1 => pieces.into_iter().next().expect("one piece").node,
        _ => {
            // The root keeps its id; its old content moves into new children (height + 1).
            let mut keys = Vec::with_capacity(pieces.len() - 1);
            let mut children = Vec::with_capacity(pieces.len());
            for p in pieces {
                let id = (cx.new_id)();
                if let Some(low) = p.low {
                    keys.push(low);
                }
                retag_leaf(&mut cx.out, root, id);
                cx.out.written.insert(id, p.node);
                children.push(id);
            }
            Node::Inner { keys, children }
        }
    };
    // Collapse a root that is left with a single child (height - 1), repeatedly.
    while let Node::Inner { children, .. } = &root_image {
        if children.len() != 1 {
            break;
        }
        let child = children[0];
        root_image = match cx.out.written.remove(&child) {
            Some(n) => n,
            None => (*cx.src.node(child)?).clone(),
        };
        retag_leaf(&mut cx.out, child, root);
        cx.out.deleted.push(child);
    }
    cx.out.written.insert(root, root_image);
    Ok(cx.out)
}

fn retag_leaf(out: &mut Applied, from: u64, to: u64) {
    for (id, _) in out.leaf_tags.iter_mut() {
        if *id == from {
            *id = to;
        }
    }
}

fn apply_node(cx: &mut Ctx<'_>, id: u64, node: &Node, muts: &[Tagged]) -> Result<Vec<Piece>> {
    match node {
        Node::Leaf(items) => Ok(apply_leaf(cx, id, items, muts)),
        Node::Inner { keys, children } => apply_inner(cx, keys, children, muts),
    }
}

fn apply_leaf(cx: &mut Ctx<'_>, id: u64, items: &[Item], muts: &[Tagged]) -> Vec<Piece> {
    let mut out: Vec<Item> = Vec::with_capacity(items.len() + muts.len());
    let mut tags: Vec<u32> = Vec::new();
    let mut i = 0;
    for m in muts {
        while i < items.len() && items[i].ikey < m.key {
            out.push(items[i].clone());
            i += 1;
        }
        let existing = (i < items.len() && items[i].ikey == m.key).then(|| {
            i += 1;
            &items[i - 1]
        });
        if m.tag != u32::MAX && !tags.contains(&m.tag) {
            tags.push(m.tag);
        }
        match (&m.op, existing) {
            (Mutation::Put(v), Some(old)) => {
                free_blob(&mut cx.out, &old.val);
                out.push(Item { ikey: m.key.clone(), val: v.clone() });
            }
            (Mutation::Put(v), None) => {
                cx.out.count_delta += 1;
                out.push(Item { ikey: m.key.clone(), val: v.clone() });
            }
            (Mutation::Delete, Some(old)) => {
                free_blob(&mut cx.out, &old.val);
                cx.out.count_delta -= 1;
            }
            (Mutation::Delete, None) => {}
            (Mutation::Relocate { from, to }, Some(old)) => {
                if matches!(old.val, Val::Blob { loc, .. } if loc == *from) {
                    cx.out.freed_blobs.push(*from);
                    out.push(Item { ikey: m.key.clone(), val: to.clone() });
                } else {
                    free_blob(&mut cx.out, to);
                    out.push(old.clone());
                }
            }
            (Mutation::Relocate { to, .. }, None) => free_blob(&mut cx.out, to),
        }
    }
    out.extend_from_slice(&items[i..]);
    if !tags.is_empty() {
        cx.out.leaf_tags.push((id, tags));
    }
    split(out, cx.slot).into_iter().map(|(low, items)| Piece { low, node: Node::Leaf(items) }).collect()
}

fn free_blob(out: &mut Applied, v: &Val) {
    if let Val::Blob { loc, .. } = v {
        out.freed_blobs.push(*loc);
    }
}

/// Splits `items` into pieces of at most `slot` entries, evenly sized. The low key of each
/// piece after the first is its first item's key.
fn split(items: Vec<Item>, slot: usize) -> Vec<(Option<IKey>, Vec<Item>)> {
    if items.is_empty() {
        return Vec::new();
    }
    let n = items.len().div_ceil(slot);
    if n == 1 {
        return vec![(None, items)];
    }
    let base = items.len() / n;
    let extra = items.len() % n;
    let mut out = Vec::with_capacity(n);
    let mut it = items.into_iter();
    for p in 0..n {
        let take = base + usize::from(p < extra);
        let chunk: Vec<Item> = it.by_ref().take(take).collect();
        let low = (p > 0).then(|| chunk[0].ikey.clone());
        out.push((low, chunk));
    }
    out
}

fn apply_inner(cx: &mut Ctx<'_>, keys: &[IKey], children: &[u64], muts: &[Tagged]) -> Result<Vec<Piece>> {
    // Entries (separator to the left, child id); the first separator is None.
    let mut entries: Vec<(Option<IKey>, u64)> = Vec::with_capacity(children.len() + 4);
    let mut touched: Vec<u64> = Vec::new();
    let mut rest = muts;
    for (ci, &child) in children.iter().enumerate() {
        let sep = (ci > 0).then(|| keys[ci - 1].clone());
        let upto = match keys.get(ci) {
            Some(k) => rest.partition_point(|m| &m.key < k),
            None => rest.len(),
        };
        let (mine, tail) = rest.split_at(upto);
        rest = tail;
        if mine.is_empty() {
            entries.push((sep, child));
            continue;
        }
        let child_node = cx.src.node(child)?;
        let pieces = apply_node(cx, child, &child_node, mine)?;
        touched.push(child);
        if pieces.is_empty() {
            cx.out.deleted.push(child);
            continue;
        }
        for (pi, p) in pieces.into_iter().enumerate() {
            if pi == 0 {
                cx.out.written.insert(child, p.node);
                entries.push((sep.clone(), child));
            } else {
                let nid = (cx.new_id)();
                cx.out.written.insert(nid, p.node);
                entries.push((p.low, nid));
            }
        }
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    // A removed first child leaves its right neighbour first; it needs no separator.
    entries[0].0 = None;
    merge_small_leaves(cx, &mut entries, &touched)?;
    let n = entries.len().div_ceil(cx.slot);
    let base = entries.len() / n;
    let extra = entries.len() % n;
    let mut pieces = Vec::with_capacity(n);
    let mut it = entries.into_iter();
    for p in 0..n {
        let take = base + usize::from(p < extra);
        let mut chunk = it.by_ref().take(take);
        let (low, first) = chunk.next().expect("pieces are non-empty");
        let mut keys = Vec::with_capacity(take - 1);
        let mut children = vec![first];
        for (sep, c) in chunk {
            keys.push(sep.expect("only the first entry lacks a separator"));
            children.push(c);
        }
        pieces.push(Piece { low: if p == 0 { None } else { low }, node: Node::Inner { keys, children } });
    }
    Ok(pieces)
}

/// Merges a leaf that this batch shrank below a quarter of the slot length into a neighbour,
/// when both fit in half a node. Deletes then leave no trail of near-empty leaves (scans and
/// space stay proportional to the items), and a merged leaf has room before it splits again.
fn merge_small_leaves(cx: &mut Ctx<'_>, entries: &mut Vec<(Option<IKey>, u64)>, touched: &[u64]) -> Result<()> {
    let small = cx.slot / 4;
    let mut i = 0;
    while i + 1 < entries.len() {
        let (a, b) = (entries[i].1, entries[i + 1].1);
        if !touched.contains(&a) && !touched.contains(&b) {
            i += 1;
            continue;
        }
        // Only a leaf this batch shrank below a quarter triggers a merge; decide that from the
        // touched side alone, so the common case loads no neighbour and clones nothing.
        let small_touched = |cx: &Ctx<'_>, id: u64| -> Result<bool> {
            Ok(touched.contains(&id) && with_leaf(cx, id, <[Item]>::len)?.is_some_and(|n| n < small))
        };
        if !small_touched(cx, a)? && !small_touched(cx, b)? {
            i += 1;
            continue;
        }
        let (Some(la), Some(lb)) = (with_leaf(cx, a, <[Item]>::len)?, with_leaf(cx, b, <[Item]>::len)?) else {
            i += 1;
            continue;
        };
        if la + lb > cx.slot / 2 {
            i += 1;
            continue;
        }
        let (Some(left), Some(right)) = (with_leaf(cx, a, <[Item]>::to_vec)?, with_leaf(cx, b, <[Item]>::to_vec)?)
        else {
            i += 1;
            continue;
        };
        let mut merged = left;
        merged.extend(right);
        cx.out.written.insert(a, Node::Leaf(merged));
        cx.out.written.remove(&b);
        cx.out.deleted.push(b);
        retag_leaf(&mut cx.out, b, a);
        entries.remove(i + 1);
        // `a` may now merge with the next neighbour too.
    }
    Ok(())
}

/// `f` applied to the items of child `id` if it is a leaf: its image from this batch, or the
/// stored one.
fn with_leaf<T>(cx: &Ctx<'_>, id: u64, f: impl FnOnce(&[Item]) -> T) -> Result<Option<T>> {
    let stored;
    let node = match cx.out.written.get(&id) {
        Some(n) => n,
        None => {
            stored = cx.src.node(id)?;
            &*stored
        }
    };
    Ok(match node {
        Node::Leaf(items) => Some(f(items)),
        Node::Inner { .. } => None,
    })
}

/// A [`NodeSource`] over a map, for tests.
#[cfg(test)]
pub(crate) struct MapSource(pub HashMap<u64, Arc<Node>>);

#[cfg(test)]
impl NodeSource for MapSource {
    fn node(&self, id: u64) -> Result<Arc<Node>> {
        Ok(self.0.get(&id).cloned().expect("node present"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::cursor::TreeCursor;
    use bytes::Bytes;
    use std::collections::BTreeMap;

    fn key(i: u32) -> IKey {
        IKey::unique(Bytes::from(i.to_be_bytes().to_vec()))
    }

    #[test]
    fn random_batches_match_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut src = MapSource(HashMap::from([(1, Arc::new(Node::empty_leaf()))]));
        let mut model = BTreeMap::new();
        let mut next = 100u64;
        for round in 0..200 {
            let mut batch = BTreeMap::new();
            for _ in 0..rng.random_range(1..40) {
                let k = rng.random_range(0..500u32);
                let op = if rng.random_bool(0.3) { None } else { Some(round) };
                batch.insert(k, op);
            }
            let muts: Vec<Tagged> = batch
                .iter()
                .map(|(k, v)| Tagged {
                    key: key(*k),
                    op: match v {
                        Some(r) => Mutation::Put(Val::Inline(Bytes::from(format!("{r}")))),
                        None => Mutation::Delete,
                    },
                    tag: 0,
                })
                .collect();
            let before = model.len() as i64;
            for (k, v) in &batch {
                match v {
                    Some(r) => model.insert(*k, *r),
                    None => model.remove(k),
                };
            }
            let mut new_id = || {
                next += 1;
                next
            };
            let applied = apply(&src, 1, 4, &muts, &mut new_id).unwrap();
            assert_eq!(before + applied.count_delta, model.len() as i64);
            for id in &applied.deleted {
                src.0.remove(id);
            }
            for (id, n) in applied.written {
                src.0.insert(id, Arc::new(n));
            }
            // Walk forward and backward.
            let mut c = TreeCursor::default();
            let mut seen = Vec::new();
            let mut ok = c.first(&src, 1).unwrap();
            while ok {
                seen.push(c.item().unwrap().ikey.clone());
                ok = c.next(&src).unwrap();
            }
            let want: Vec<IKey> = model.keys().map(|k| key(*k)).collect();
            assert_eq!(seen, want);
            let mut back = Vec::new();
            let mut ok = c.last(&src, 1).unwrap();
            while ok {
                back.push(c.item().unwrap().ikey.clone());
                ok = c.prev(&src).unwrap();
            }
            back.reverse();
            assert_eq!(back, want);
            assert!(src.0.len() <= 2 * model.len() + 2, "no leaked nodes");
        }
    }
}
