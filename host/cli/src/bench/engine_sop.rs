//! sop itself, opened with default `DbOptions` and one store of `--slot-length` items per node.
//!
//! Inserts are `upsert`s (blind writes, as the peers' insert/put calls are); updates and
//! deletes use `update` and `remove`, which look the key up and say whether it existed, so
//! the adapter checks every one.

use super::workload::{Check, Engine, Item, Visit};
use anyhow::{Context, Result, bail};
use sop::{Database, StoreOptions};
use std::path::Path;

const STORE: &str = "bench";

pub struct SopEngine {
    db: Database,
}

impl SopEngine {
    pub fn open(dir: &Path, slot_length: u32) -> Result<SopEngine> {
        let db = Database::create(dir).with_context(|| format!("cannot create a sop database in {}", dir.display()))?;
        let opts = StoreOptions { slot_length, ..StoreOptions::default() };
        db.transact(|tx| tx.create_store(STORE, opts.clone()).map(|_| ())).context("cannot create the store")?;
        Ok(SopEngine { db })
    }
}

impl Engine for SopEngine {
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()> {
        let tx = self.db.begin_write()?;
        let s = tx.open_store(STORE)?;
        for (k, v) in items {
            s.upsert(k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn update(&mut self, items: &[Item<'_>]) -> Result<()> {
        let tx = self.db.begin_write()?;
        let s = tx.open_store(STORE)?;
        for (k, v) in items {
            if !s.update(k, v)? {
                bail!("update found no item for a key that was inserted");
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete(&mut self, keys: &[&[u8]]) -> Result<()> {
        let tx = self.db.begin_write()?;
        let s = tx.open_store(STORE)?;
        for k in keys {
            if !s.remove(k)? {
                bail!("remove found no item for a key that was inserted");
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()> {
        let tx = self.db.begin_read()?;
        let s = tx.open_store(STORE)?;
        for (i, k) in keys.iter().enumerate() {
            check(i, s.get(k)?.as_deref())?;
        }
        Ok(())
    }

    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        // The zero-copy visitor, as the peers' adapters read borrowed slices too.
        let tx = self.db.begin_read()?;
        let mut failed = None;
        tx.open_store(STORE)?.scan::<&[u8]>(.., |k, v| match visit(k, v) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}
