//! fjall (an LSM tree): one keyspace, every write as an atomic `WriteBatch`.
//!
//! Durability: fjall's default only hands the journal to the OS (`PersistMode::Buffer`),
//! which is not durable; each batch here is committed with `PersistMode::SyncAll` (fsync of
//! the journal before `commit` returns), as the redb benchmark harness does. Reads and scans
//! go through one snapshot. Its writes are blind, so updates and deletes cannot check that
//! the key existed; the re-read after update and the empty scan after delete do.

use super::workload::{Check, Engine, Item, Visit};
use anyhow::{Context, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use std::path::Path;

pub struct FjallEngine {
    db: Database,
    ks: Keyspace,
}

impl FjallEngine {
    pub fn open(dir: &Path) -> Result<FjallEngine> {
        let db = Database::builder(dir)
            .open()
            .with_context(|| format!("cannot open a fjall database in {}", dir.display()))?;
        let ks = db.keyspace("bench", KeyspaceCreateOptions::default)?;
        Ok(FjallEngine { db, ks })
    }

    fn batch(&self) -> fjall::OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::SyncAll))
    }
}

impl Engine for FjallEngine {
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()> {
        let mut b = self.batch();
        for (k, v) in items {
            b.insert(&self.ks, *k, *v);
        }
        b.commit()?;
        Ok(())
    }

    fn update(&mut self, items: &[Item<'_>]) -> Result<()> {
        self.insert(items)
    }

    fn delete(&mut self, keys: &[&[u8]]) -> Result<()> {
        let mut b = self.batch();
        for k in keys {
            b.remove(&self.ks, *k);
        }
        b.commit()?;
        Ok(())
    }

    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()> {
        let snap = self.db.snapshot();
        for (i, k) in keys.iter().enumerate() {
            check(i, snap.get(&self.ks, k)?.as_deref())?;
        }
        Ok(())
    }

    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let snap = self.db.snapshot();
        for g in snap.iter(&self.ks) {
            let (k, v) = g.into_inner()?;
            visit(&k, &v)?;
        }
        Ok(())
    }
}
