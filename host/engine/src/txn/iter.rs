//! Range iteration over a store, in either direction.

use super::write_set::WriteOp;
use super::{Store, ValSrc};
use crate::error::Result;
use crate::format::node::IKey;
use crate::tree::cursor::TreeCursor;
use bytes::Bytes;
use std::ops::Bound;

/// An iterator over `(key, value)` pairs of a key range. It sees the transaction's own writes
/// as of its creation. In a read-write transaction the part of the range it walked counts as
/// read (recorded when the iterator ends or is dropped).
pub struct Iter<'t> {
    store: Store<'t>,
    tree: TreeCursor,
    tree_live: bool,
    own: Vec<(IKey, WriteOp)>,
    oi: usize,
    lo: Bound<IKey>,
    hi: Bound<IKey>,
    forward: bool,
    last: Option<IKey>,
    done: bool,
}

impl<'t> Iter<'t> {
    pub(crate) fn new(store: Store<'t>, lo: Bound<IKey>, hi: Bound<IKey>, forward: bool) -> Result<Self> {
        store.check_open()?;
        if range_is_empty(&lo, &hi) {
            // std's BTreeMap::range panics on inverted bounds; an inverted range is empty.
            return Ok(Iter {
                store,
                tree: TreeCursor::default(),
                tree_live: false,
                own: Vec::new(),
                oi: 0,
                lo,
                hi,
                forward,
                last: None,
                done: false,
            });
        }
        let (root, mut own) = {
            let inner = store.tx.inner.borrow();
            let st = &inner.stores[store.idx];
            let own: Vec<(IKey, WriteOp)> =
                st.ops.range((lo.clone(), hi.clone())).map(|(k, v)| (k.clone(), v.clone())).collect();
            (st.root, own)
        };
        if !forward {
            own.reverse();
        }
        let mut tree = TreeCursor::default();
        let tree_live = match root {
            None => false,
            Some(root) => {
                let view = store.tx.view();
                match (&lo, &hi, forward) {
                    (Bound::Unbounded, _, true) => tree.first(&view, root)?,
                    (Bound::Included(k), _, true) => tree.seek(&view, root, k, false)?,
                    (Bound::Excluded(k), _, true) => tree.seek(&view, root, k, true)?,
                    (_, Bound::Unbounded, false) => tree.last(&view, root)?,
                    (_, Bound::Included(k), false) => tree.seek_back(&view, root, k, false)?,
                    (_, Bound::Excluded(k), false) => tree.seek_back(&view, root, k, true)?,
                }
            }
        };
        Ok(Iter { store, tree, tree_live, own, oi: 0, lo, hi, forward, last: None, done: false })
    }

    fn beyond(&self, k: &IKey) -> bool {
        if self.forward {
            match &self.hi {
                Bound::Included(h) => k > h,
                Bound::Excluded(h) => k >= h,
                Bound::Unbounded => false,
            }
        } else {
            match &self.lo {
                Bound::Included(l) => k < l,
                Bound::Excluded(l) => k <= l,
                Bound::Unbounded => false,
            }
        }
    }

    fn step_tree(&mut self) -> Result<()> {
        let view = self.store.tx.view();
        self.tree_live = if self.forward { self.tree.next(&view)? } else { self.tree.prev(&view)? };
        Ok(())
    }

    fn next_raw(&mut self) -> Result<Option<(IKey, ValSrc)>> {
        if self.oi >= self.own.len() {
            // No buffered writes left in the range: walk the tree alone.
            let Some(item) = (if self.tree_live { self.tree.item().cloned() } else { None }) else { return Ok(None) };
            self.step_tree()?;
            return Ok(Some((item.ikey, ValSrc::Tree(item.val))));
        }
        loop {
            let t = if self.tree_live { self.tree.item().map(|it| it.ikey.clone()) } else { None };
            let o = self.own.get(self.oi).map(|(k, _)| k.clone());
            let pick_own = match (&t, &o) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(t), Some(o)) => {
                    if self.forward {
                        o <= t
                    } else {
                        o >= t
                    }
                }
            };
            if pick_own {
                let (k, op) = self.own[self.oi].clone();
                self.oi += 1;
                if t.as_ref() == Some(&k) {
                    self.step_tree()?;
                }
                match op {
                    WriteOp::Put(v) => return Ok(Some((k, ValSrc::Own(v)))),
                    WriteOp::Delete => continue,
                }
            }
            let Some(item) = (if self.tree_live { self.tree.item().cloned() } else { None }) else { return Ok(None) };
            self.step_tree()?;
            return Ok(Some((item.ikey, ValSrc::Tree(item.val))));
        }
    }

    fn finish(&mut self, exhausted: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let reached = match (&self.last, exhausted) {
            (Some(k), false) => Bound::Included(k.clone()),
            _ => {
                if self.forward {
                    self.hi.clone()
                } else {
                    self.lo.clone()
                }
            }
        };
        let (lo, hi) = if self.forward { (self.lo.clone(), reached) } else { (reached, self.hi.clone()) };
        self.store.tx.record_read(self.store.idx, lo, hi);
    }
}

fn range_is_empty(lo: &Bound<IKey>, hi: &Bound<IKey>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_raw() {
            Ok(Some((k, v))) if !self.beyond(&k) => {
                if !self.store.tx.is_read_only() {
                    // Only read-write transactions record how far they scanned.
                    self.last = Some(k.clone());
                }
                Some(self.store.tx.resolve(v).and_then(|v| self.store.surface(k.key, v)))
            }
            Ok(_) => {
                self.finish(true);
                None
            }
            Err(e) => {
                self.finish(false);
                Some(Err(e))
            }
        }
    }
}

impl Drop for Iter<'_> {
    fn drop(&mut self) {
        self.finish(false);
    }
}
