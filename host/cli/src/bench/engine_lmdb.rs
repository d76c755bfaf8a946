//! LMDB through heed: the unnamed database of one environment, default flags.
//!
//! Durability: heed's defaults set none of `NO_SYNC`/`NO_META_SYNC`, so every commit syncs
//! (data pages, then the meta page). The map size only reserves address space; it is set
//! large enough for the workload with room for copy-on-write garbage.

use super::Workload;
use super::workload::{Check, Engine, Item, KEY_LEN, Visit};
use anyhow::{Context, Result, anyhow, bail};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions};
use std::path::Path;

pub struct LmdbEngine {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
}

impl LmdbEngine {
    pub fn open(dir: &Path, w: &Workload) -> Result<LmdbEngine> {
        // Pages are copied on write and freed pages are reused only once no reader needs
        // them, so leave several times the live data, and at least 1 GiB.
        let live = w.n.saturating_mul(KEY_LEN + w.value_size + 64);
        let map_size = live.saturating_mul(8).max(1 << 30).next_multiple_of(1 << 20);
        // SAFETY: the environment is opened once, in a fresh folder that nothing else maps
        // or modifies while this process runs (heed's requirements for `open`).
        let env = unsafe { EnvOpenOptions::new().map_size(map_size).open(dir) }
            .with_context(|| format!("cannot open an LMDB environment in {}", dir.display()))?;
        let wtxn = env.write_txn()?;
        let created = env.create_databases_and_commit(wtxn, |dbo, wtxn| {
            dbo.create_database::<Bytes, Bytes>(wtxn, None).map(CommitOrAbort::<_, ()>::Commit)
        })?;
        let db = match created {
            CommitOrAbort::Commit(db) => db,
            CommitOrAbort::Abort(()) => return Err(anyhow!("creating the LMDB database was aborted")),
        };
        Ok(LmdbEngine { env, db })
    }
}

impl Engine for LmdbEngine {
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for (k, v) in items {
            self.db.put(&mut tx, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `put` overwrites without saying whether the key existed; the re-read after the
    /// update phase checks the result.
    fn update(&mut self, items: &[Item<'_>]) -> Result<()> {
        self.insert(items)
    }

    fn delete(&mut self, keys: &[&[u8]]) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for k in keys {
            if !self.db.delete(&mut tx, k)? {
                bail!("delete found no item for a key that was inserted");
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()> {
        let tx = self.env.read_txn()?;
        for (i, k) in keys.iter().enumerate() {
            check(i, self.db.get(&tx, k)?)?;
        }
        Ok(())
    }

    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let tx = self.env.read_txn()?;
        for r in self.db.iter(&tx)? {
            let (k, v) = r?;
            visit(k, v)?;
        }
        Ok(())
    }
}
