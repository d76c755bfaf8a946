//! redb: one table of byte keys and values in one file, default settings.
//!
//! Durability: redb's default `Durability::Immediate` (commit returns after its fsync; one
//! flush per commit with the default 1PC+checksum strategy). Its default cache is 1 GiB,
//! which shows in its peak RSS only as far as it is filled.

use super::workload::{Check, Engine, Item, Visit};
use anyhow::{Context, Result, bail};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

pub struct RedbEngine {
    db: Database,
}

impl RedbEngine {
    pub fn open(dir: &Path) -> Result<RedbEngine> {
        let path = dir.join("bench.redb");
        let db =
            Database::create(&path).with_context(|| format!("cannot create a redb database at {}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(TABLE)?;
        tx.commit()?;
        Ok(RedbEngine { db })
    }
}

impl Engine for RedbEngine {
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for (k, v) in items {
                t.insert(*k, *v)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn update(&mut self, items: &[Item<'_>]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for (k, v) in items {
                if t.insert(*k, *v)?.is_none() {
                    bail!("update found no item for a key that was inserted");
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete(&mut self, keys: &[&[u8]]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for k in keys {
                if t.remove(*k)?.is_none() {
                    bail!("remove found no item for a key that was inserted");
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TABLE)?;
        for (i, k) in keys.iter().enumerate() {
            let v = t.get(*k)?;
            check(i, v.as_ref().map(|g| g.value()))?;
        }
        Ok(())
    }

    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TABLE)?;
        for r in t.iter()? {
            let (k, v) = r?;
            visit(k.value(), v.value())?;
        }
        Ok(())
    }
}
