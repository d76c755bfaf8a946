//! Checkpoints: the whole state at one commit (registry, catalog, space accounting and the
//! identities of the last commits), so that commit files it covers can be reclaimed and a
//! lagging or opening process can start from it (`docs/PROTOCOL.md`, "Checkpoints").
//!
//! A checkpoint is taken under the apply lock, the lock that installs states, so the registry
//! and the space accounting in it describe the same commit. It is published with an exclusive
//! rename and never rewritten; only checkpoints older than the two newest are removed, so the
//! newest checkpoint number never goes down.

use super::DbInner;
use super::catch_up::read_header;
use crate::error::{Error, Result};
use crate::format::meta::{ChainWindow, CheckpointBody, Decided, FileHeader};
use crate::format::record::{self, MAGIC_CHECKPOINT, tag};
use crate::state::State;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl DbInner {
    /// Writes a checkpoint of the current state, unless one at its number exists.
    pub(super) fn write_checkpoint(&self) -> Result<()> {
        let (st, files) = {
            let _apply = self.apply_lock.lock();
            let st = self.current();
            crate::failpoint::hit("checkpoint-state");
            let sp = self.space.lock();
            if st.seq == 0 || st.seq <= sp.last_checkpoint {
                return Ok(());
            }
            (st, sp.stats())
        };
        let chain = st.chain_window();
        let body = CheckpointBody {
            seq: st.seq,
            registry: st.registry.iter().map(|(k, v)| (*k, *v)).collect(),
            catalog: st.catalog.values().map(|m| (**m).clone()).collect(),
            files,
            next_store_id: st.next_store_id,
        };
        let mut buf = Vec::new();
        record::begin_file(&mut buf, MAGIC_CHECKPOINT);
        let header = FileHeader { db_id: self.db_id, seq: st.seq, writer: self.writer, nonce: st.head(), prev: 0 };
        record::put_record(&mut buf, tag::HEADER, &postcard::to_allocvec(&header).expect("header serialises"));
        record::put_record(&mut buf, tag::CHAIN, &postcard::to_allocvec(&chain).expect("chain serialises"));
        let verdicts: Vec<&Decided> = st.verdicts.iter().map(|d| &**d).collect();
        record::put_record(&mut buf, tag::VERDICTS, &postcard::to_allocvec(&verdicts).expect("verdicts serialise"));
        record::put_record(&mut buf, tag::CHECKPOINT, &postcard::to_allocvec(&body).expect("body serialises"));
        let dir = self.layout.checkpoints();
        let target = self.layout.checkpoint(st.seq);
        match self.vfs.put_new(&target, &buf) {
            Ok(()) => {}
            // Another process checkpointed the same commit: the same state, so keep theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.vfs.persist_name(&target).map_err(|e| self.poison(&Error::io(&target, e)))?;
            }
            // Our work file was swept while we were paused: no checkpoint this time.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.poison(&Error::io(&target, e))),
        }
        {
            let mut sp = self.space.lock();
            sp.last_checkpoint = sp.last_checkpoint.max(st.seq);
            sp.commits_since_checkpoint = 0;
        }
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        // Keep the previous checkpoint too; older ones are redundant.
        let seqs = self.list_seqs(&dir, "ckpt")?;
        if seqs.len() > 2 {
            for s in &seqs[..seqs.len() - 2] {
                let _ = self.vfs.remove_file(&self.layout.checkpoint(*s));
            }
        }
        Ok(())
    }

    /// The header of checkpoint `seq`; `None` if it was removed (a newer one exists).
    pub(super) fn checkpoint_header(&self, seq: u64) -> Result<Option<FileHeader>> {
        let path = self.layout.checkpoint(seq);
        let Some(f) = self.open_if_exists(&path)? else { return Ok(None) };
        let len = f.len().map_err(|e| Error::io(&path, e))?;
        let h = read_header(&path, &*f, MAGIC_CHECKPOINT, len)?;
        self.check_checkpoint_header(&path, &h, seq)?;
        Ok(Some(h))
    }

    /// The commit identities checkpoint `seq` covers; `None` if it was removed.
    pub(super) fn checkpoint_chain(&self, seq: u64) -> Result<Option<ChainWindow>> {
        let path = self.layout.checkpoint(seq);
        let Some(f) = self.open_if_exists(&path)? else { return Ok(None) };
        // Header and chain come first; the registry after them can be large.
        let len = f.len().map_err(|e| Error::io(&path, e))?;
        let mut buf = vec![0u8; len.min(64 << 10) as usize];
        f.read_exact_at(&mut buf, 0).map_err(|e| Error::io(&path, e))?;
        record::check_prefix(&path, &buf, MAGIC_CHECKPOINT)?;
        let mut at = record::FILE_PREFIX_LEN;
        for want in [tag::HEADER, tag::CHAIN] {
            let (t, payload, used) = record::parse_record(&path, at as u64, &buf[at..])?;
            if t != want {
                return Err(Error::corrupt(&path, format!("record {t} where record {want} belongs")));
            }
            if t == tag::CHAIN {
                return postcard::from_bytes(payload)
                    .map(Some)
                    .map_err(|e| Error::corrupt(&path, format!("bad chain record: {e}")));
            }
            at += used;
        }
        unreachable!("the loop returns at the chain record")
    }

    fn check_checkpoint_header(&self, path: &std::path::Path, h: &FileHeader, seq: u64) -> Result<()> {
        if h.db_id != self.db_id {
            return Err(Error::corrupt(path, "checkpoint belongs to another database"));
        }
        if h.seq != seq {
            return Err(Error::corrupt(path, "checkpoint sequence does not match its name"));
        }
        Ok(())
    }

    /// Replaces the in-memory state with checkpoint `seq`. Returns `false` if the checkpoint
    /// was removed before we could read it (a newer one exists). Call with the apply lock held.
    pub(super) fn load_checkpoint(&self, seq: u64) -> Result<bool> {
        let path = self.layout.checkpoint(seq);
        let Some(f) = self.open_if_exists(&path)? else { return Ok(false) };
        let buf = f.read_all().map_err(|e| Error::io(&path, e))?;
        record::check_prefix(&path, &buf, MAGIC_CHECKPOINT)?;
        let (mut header, mut chain, mut body) = (None::<FileHeader>, None::<ChainWindow>, None::<CheckpointBody>);
        let mut verdicts = None::<Vec<Decided>>;
        for rec in record::records(&path, &buf) {
            let (_, t, payload) = rec?;
            let bad = |what: &str, e: postcard::Error| Error::corrupt(&path, format!("bad {what}: {e}"));
            match t {
                tag::HEADER => header = Some(postcard::from_bytes(payload).map_err(|e| bad("header", e))?),
                tag::CHAIN => chain = Some(postcard::from_bytes(payload).map_err(|e| bad("chain record", e))?),
                tag::VERDICTS => verdicts = Some(postcard::from_bytes(payload).map_err(|e| bad("verdicts record", e))?),
                tag::CHECKPOINT => body = Some(postcard::from_bytes(payload).map_err(|e| bad("checkpoint body", e))?),
                other => return Err(Error::corrupt(&path, format!("unexpected record tag {other}"))),
            }
        }
        let header = header.ok_or_else(|| Error::corrupt(&path, "missing header record"))?;
        let chain = chain.ok_or_else(|| Error::corrupt(&path, "missing chain record"))?;
        let verdicts = verdicts.ok_or_else(|| Error::corrupt(&path, "missing verdicts record"))?;
        let body = body.ok_or_else(|| Error::corrupt(&path, "missing checkpoint body (truncated file)"))?;
        self.check_checkpoint_header(&path, &header, seq)?;
        if body.seq != seq || chain.seq != seq || chain.nonces.last().copied().unwrap_or(0) != header.nonce {
            return Err(Error::corrupt(&path, "checkpoint header, chain and body disagree"));
        }
        let st = State {
            seq,
            registry: body.registry.iter().copied().collect(),
            catalog: body.catalog.into_iter().map(|m| (m.name.clone(), Arc::new(m))).collect(),
            next_store_id: body.next_store_id,
            chain: chain.nonces.into_iter().collect(),
            verdicts: verdicts.into_iter().map(Arc::new).collect(),
        };
        let commits = self.list_seqs(&self.layout.commits(), "commit")?;
        let mut space = self.space.lock();
        space.reset(&body.files, seq);
        for s in commits {
            if s <= seq && !space.tracks(s) {
                // Dead files a reclaimer had not removed yet, or a paused writer's void file.
                space.add_file(s, 0, 0, 0);
                space.mark_dead(s, seq);
            }
        }
        let mut state = self.state.write();
        self.history.lock().reset(seq);
        *state = Arc::new(st);
        Ok(true)
    }
}
