//! A positioned path through the tree of one snapshot.

use super::NodeSource;
use crate::error::Result;
use crate::format::node::{IKey, Item, Node, Val};
use std::sync::Arc;

/// A root-to-leaf path. Non-root leaves are never empty (apply removes them), so a position
/// is valid whenever the leaf index is in range.
#[derive(Clone, Default)]
pub struct TreeCursor {
    /// (node, index): child index for inner nodes, item index for the leaf (last entry).
    path: Vec<(Arc<Node>, usize)>,
}

impl TreeCursor {
    /// The item under the cursor, if any.
    pub fn item(&self) -> Option<&Item> {
        let (node, i) = self.path.last()?;
        match &**node {
            Node::Leaf(items) => items.get(*i),
            Node::Inner { .. } => None,
        }
    }

    /// The items of the current leaf and the cursor's index in them.
    pub fn leaf(&self) -> Option<(&[Item], usize)> {
        match self.path.last() {
            Some((node, i)) => match &**node {
                Node::Leaf(items) => Some((items.as_slice(), *i)),
                Node::Inner { .. } => None,
            },
            None => None,
        }
    }

    /// Moves to the first item of the next leaf.
    pub fn next_leaf(&mut self, src: &dyn NodeSource) -> Result<bool> {
        self.advance_leaf(src)
    }

    /// Positions on the first item `>= key` (or `> key` when `strict`). Returns whether an
    /// item is under the cursor.
    pub fn seek(&mut self, src: &dyn NodeSource, root: u64, key: &IKey, strict: bool) -> Result<bool> {
        self.path.clear();
        let mut node = src.node(root)?;
        loop {
            match &*node {
                Node::Inner { keys, children } => {
                    let i = keys.partition_point(|k| k <= key);
                    let child = children[i];
                    self.path.push((node.clone(), i));
                    node = src.node(child)?;
                }
                Node::Leaf(items) => {
                    let i = if strict {
                        items.partition_point(|it| &it.ikey <= key)
                    } else {
                        items.partition_point(|it| &it.ikey < key)
                    };
                    let len = items.len();
                    self.path.push((node.clone(), i));
                    if i >= len {
                        return self.advance_leaf(src);
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// Positions on the last item `<= key` (or `< key` when `strict`).
    pub fn seek_back(&mut self, src: &dyn NodeSource, root: u64, key: &IKey, strict: bool) -> Result<bool> {
        // The first item at or after the bound, then one step back.
        let found = self.seek(src, root, key, !strict)?;
        if found { self.prev(src) } else { self.last(src, root) }
    }

    /// Positions on the first item.
    pub fn first(&mut self, src: &dyn NodeSource, root: u64) -> Result<bool> {
        self.path.clear();
        self.descend(src, src.node(root)?, false)
    }

    /// Positions on the last item.
    pub fn last(&mut self, src: &dyn NodeSource, root: u64) -> Result<bool> {
        self.path.clear();
        self.descend(src, src.node(root)?, true)
    }

    /// Moves to the next item; false (and unpositioned) at the end.
    pub fn next(&mut self, src: &dyn NodeSource) -> Result<bool> {
        match self.path.last_mut() {
            Some((node, i)) => {
                if let Node::Leaf(items) = &**node {
                    if *i + 1 < items.len() {
                        *i += 1;
                        return Ok(true);
                    }
                    *i = items.len();
                }
            }
            None => return Ok(false),
        }
        self.advance_leaf(src)
    }

    /// Moves to the previous item; false (and unpositioned) at the start.
    pub fn prev(&mut self, src: &dyn NodeSource) -> Result<bool> {
        match self.path.last_mut() {
            Some((_, i)) if *i > 0 => {
                *i -= 1;
                return Ok(true);
            }
            Some(_) => {}
            None => return Ok(false),
        }
        self.path.pop();
        while let Some((node, i)) = self.path.last_mut() {
            if *i > 0 {
                *i -= 1;
                let child = match &**node {
                    Node::Inner { children, .. } => children[*i],
                    Node::Leaf(_) => unreachable!("leaves are only at the bottom of a path"),
                };
                let child = src.node(child)?;
                return self.descend(src, child, true);
            }
            self.path.pop();
        }
        Ok(false)
    }

    /// From a leaf position at or past its end, moves to the first item of the next leaf.
    fn advance_leaf(&mut self, src: &dyn NodeSource) -> Result<bool> {
        self.path.pop();
        while let Some((node, i)) = self.path.last_mut() {
            let children = match &**node {
                Node::Inner { children, .. } => children,
                Node::Leaf(_) => unreachable!("leaves are only at the bottom of a path"),
            };
            if *i + 1 < children.len() {
                *i += 1;
                let child = src.node(children[*i])?;
                return self.descend(src, child, false);
            }
            self.path.pop();
        }
        Ok(false)
    }

    fn descend(&mut self, src: &dyn NodeSource, mut node: Arc<Node>, rightmost: bool) -> Result<bool> {
        loop {
            match &*node {
                Node::Inner { children, .. } => {
                    let i = if rightmost { children.len() - 1 } else { 0 };
                    let child = children[i];
                    self.path.push((node.clone(), i));
                    node = src.node(child)?;
                }
                Node::Leaf(items) => {
                    if items.is_empty() {
                        // Only an empty root leaf can be empty.
                        self.path.clear();
                        return Ok(false);
                    }
                    let i = if rightmost { items.len() - 1 } else { 0 };
                    self.path.push((node.clone(), i));
                    return Ok(true);
                }
            }
        }
    }
}

/// Exact lookup without a cursor (the point-read fast path).
pub fn get(src: &dyn NodeSource, root: u64, key: &IKey) -> Result<Option<Item>> {
    lookup(src, root, key, |it| it.clone())
}

/// The value stored at exactly `key`.
pub fn get_val(src: &dyn NodeSource, root: u64, key: &IKey) -> Result<Option<Val>> {
    lookup(src, root, key, |it| it.val.clone())
}

/// [`get_val`] for a borrowed key, with no allocation (the read-only fast path).
pub fn get_val_borrowed(src: &dyn NodeSource, root: u64, key: &[u8], dup: u64) -> Result<Option<Val>> {
    use crate::format::node::prefix_of;
    use std::cmp::Ordering;
    let prefix = prefix_of(key);
    let cmp = |k: &IKey| -> Ordering { k.cmp_parts(prefix, key, dup) };
    let mut node = src.node(root)?;
    loop {
        let next = match &*node {
            Node::Inner { keys, children } => children[keys.partition_point(|k| cmp(k) != Ordering::Greater)],
            Node::Leaf(items) => {
                return Ok(items.binary_search_by(|it| cmp(&it.ikey)).ok().map(|i| items[i].val.clone()));
            }
        };
        node = src.node(next)?;
    }
}

fn lookup<T>(src: &dyn NodeSource, root: u64, key: &IKey, f: impl FnOnce(&Item) -> T) -> Result<Option<T>> {
    let mut node = src.node(root)?;
    loop {
        let next = match &*node {
            Node::Inner { keys, children } => children[keys.partition_point(|k| k <= key)],
            Node::Leaf(items) => {
                return Ok(items.binary_search_by(|it| it.ikey.cmp(key)).ok().map(|i| f(&items[i])));
            }
        };
        node = src.node(next)?;
    }
}
