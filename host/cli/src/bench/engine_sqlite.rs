//! SQLite (bundled, through rusqlite): one `WITHOUT ROWID` table, so the key is the B-tree
//! key as in the other engines, with prepared statements reused across calls.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` (the WAL is synced at every
//! commit). WAL with the default `NORMAL` would not be durable ("might roll back following
//! a power loss"). Other settings (page cache, page size) are SQLite's defaults.

use super::workload::{Check, Engine, Item, Visit};
use anyhow::{Context, Result, bail, ensure};
use rusqlite::{Connection, params};
use std::path::Path;

pub struct SqliteEngine {
    conn: Connection,
}

impl SqliteEngine {
    pub fn open(dir: &Path) -> Result<SqliteEngine> {
        let path = dir.join("bench.sqlite");
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open an SQLite database at {}", path.display()))?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        ensure!(mode.eq_ignore_ascii_case("wal"), "SQLite refused WAL mode (journal_mode is {mode})");
        conn.pragma_update(None, "synchronous", "FULL")?;
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        ensure!(sync == 2, "SQLite did not take synchronous=FULL (it is {sync})");
        conn.execute_batch("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")?;
        Ok(SqliteEngine { conn })
    }

    /// Runs `sql` once per item in one transaction; each execution must change one row.
    fn write(&mut self, sql: &str, items: &[Item<'_>], what: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(sql)?;
            for (k, v) in items {
                if st.execute(params![k, v])? != 1 {
                    bail!("{what} found no row for a key that was inserted");
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Engine for SqliteEngine {
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()> {
        self.write("INSERT INTO kv (k, v) VALUES (?1, ?2)", items, "insert")
    }

    fn update(&mut self, items: &[Item<'_>]) -> Result<()> {
        self.write("UPDATE kv SET v = ?2 WHERE k = ?1", items, "update")
    }

    fn delete(&mut self, keys: &[&[u8]]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("DELETE FROM kv WHERE k = ?1")?;
            for k in keys {
                if st.execute(params![k])? != 1 {
                    bail!("delete found no row for a key that was inserted");
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
            for (i, k) in keys.iter().enumerate() {
                let mut rows = st.query(params![k])?;
                match rows.next()? {
                    Some(row) => check(i, Some(row.get_ref(0)?.as_blob()?))?,
                    None => check(i, None)?,
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("SELECT k, v FROM kv ORDER BY k")?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                visit(row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
