//! Compaction: files that stay mostly dead have their live records copied into a new commit
//! (a *relocation*) that changes no key, so it conflicts with no transaction, after which the
//! old files are dead and can be reclaimed.

use super::DbInner;
use super::View;
use super::nodes::parse_blob_header;
use super::space::FileInfo;
use super::writer::{Publish, Sealed};
use crate::error::{Error, Result};
use crate::format::meta::{CommitMeta, Loc};
use crate::format::node::{IKey, Node, Val};
use crate::format::record::{self, tag};
use crate::tree::apply::{self, Mutation, Tagged};
use crate::tree::cursor;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;

impl DbInner {
    /// Relocates the live records of mostly-dead files into one new commit. Returns whether a
    /// relocation was published.
    pub(super) fn compact(&self) -> Result<bool> {
        match self.relocate() {
            // A file we meant to copy from was reclaimed by another process: our state was
            // behind; try again another time.
            Err(Error::SnapshotTooOld(_)) => Ok(false),
            r => r,
        }
    }

    fn relocate(&self) -> Result<bool> {
        const BUDGET: u64 = 32 << 20;
        let base = self.current();
        let victims: HashSet<u64> = {
            let sp = self.space.lock();
            let mut cands: Vec<(u64, &FileInfo)> = sp
                .files
                .iter()
                .filter(|(s, f)| **s < base.seq && f.live > 0 && (f.live as f64) < 0.25 * f.total as f64)
                .map(|(s, f)| (*s, f))
                .collect();
            cands.sort_by(|a, b| (a.1.live * b.1.total).cmp(&(b.1.live * a.1.total)));
            let mut sum = 0;
            cands
                .into_iter()
                .take_while(|(_, f)| {
                    sum += f.live;
                    sum <= BUDGET
                })
                .map(|(s, _)| s)
                .collect()
        };
        if victims.is_empty() {
            return Ok(false);
        }
        let seq = base.seq + 1;
        let (mut buf, nonce) = self.begin_commit_file(&base);
        let mut written: HashMap<u64, Node> = HashMap::new();
        for (id, h) in base.registry.iter() {
            if h.records().any(|l| victims.contains(&l.seq)) {
                written.insert(*id, (*self.node_at(*id, h)?).clone());
            }
        }
        // Blobs: each blob record names its store and key, so liveness is one lookup.
        let by_id: HashMap<u64, _> = base.catalog.values().map(|m| (m.id, m.clone())).collect();
        let mut per_store: BTreeMap<u64, Vec<Tagged>> = BTreeMap::new();
        let mut blob_live = 0u64;
        let view = View { db: self, state: &base };
        for &v in &victims {
            let path = self.layout.commit(v);
            let f = self.files.get(v, &|s| self.space.lock().nonce(s))?;
            let data = f.read_all().map_err(|e| Error::io(&path, e))?;
            for rec in record::records(&path, &data) {
                let (off, t, payload) = rec?;
                if t != tag::BLOB {
                    continue;
                }
                let (store, (krange, dup), value_at) =
                    parse_blob_header(payload).ok_or_else(|| Error::corrupt(&path, "bad blob record"))?;
                let Some(meta) = by_id.get(&store) else { continue };
                let from = Loc { seq: v, off: off as u32, len: (payload.len() + record::RECORD_HEADER_LEN) as u32 };
                let ikey = IKey::new(Bytes::copy_from_slice(&payload[krange]), dup);
                let live = cursor::get(&view, meta.root, &ikey)?
                    .is_some_and(|it| matches!(it.val, Val::Blob { loc, .. } if loc == from));
                if live {
                    let value = &payload[value_at..];
                    let mut p = payload[..value_at].to_vec();
                    p.extend_from_slice(value);
                    let off = record::put_record(&mut buf, tag::BLOB, &p);
                    let to = Loc { seq, off: off as u32, len: (buf.len() - off) as u32 };
                    blob_live += u64::from(to.len);
                    per_store.entry(store).or_default().push(Tagged {
                        key: ikey,
                        op: Mutation::Relocate { from, to: Val::Blob { loc: to, len: value.len() as u32 } },
                        tag: u32::MAX,
                    });
                }
            }
        }
        let mut freed = Vec::new();
        let mut deleted = Vec::new();
        let mut used: HashSet<u64> = HashSet::new();
        let mut new_id = || loop {
            let id: u64 = rand::random();
            if id != 0 && !base.registry.contains_key(&id) && used.insert(id) {
                return id;
            }
        };
        for (store, mut muts) in per_store {
            muts.sort_by(|a, b| a.key.cmp(&b.key));
            let meta = &by_id[&store];
            let applied = apply::apply(&view, meta.root, meta.options.slot_length as usize, &muts, &mut new_id)?;
            written.extend(applied.written);
            deleted.extend(applied.deleted);
            freed.extend(applied.freed_blobs);
        }
        let relocated: u64 = {
            let sp = self.space.lock();
            victims.iter().filter_map(|v| sp.files.get(v)).map(|f| f.live).sum()
        };
        let meta = CommitMeta { next_store_id: base.next_store_id, freed_blobs: freed, ..CommitMeta::default() };
        let sealed = Sealed { force_full: true, written: written.into_iter().collect(), deleted, meta, blob_live };
        match self.seal(&base, nonce, buf, sealed) {
            Ok(Publish::Done) => {
                self.stats.relocated_bytes.fetch_add(relocated, Ordering::Relaxed);
                Ok(true)
            }
            // Someone else committed meanwhile (or a file we read went away): try another time.
            Ok(Publish::Rebase) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
