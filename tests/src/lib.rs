//! Shared helpers for the integration tests.

pub mod checker;
pub mod lists;
pub mod plugins;
pub mod redis_server;
pub mod swarm;

use sop::Database;
use std::collections::BTreeMap;

/// Every store's full contents, read in one snapshot.
pub type Contents = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// A store's items, in order.
pub type Items = Vec<(Vec<u8>, Vec<u8>)>;

/// A store's items by a forward scan, and by a reverse scan put back in forward order.
pub fn scans(s: &sop::Store<'_>) -> sop::Result<(Items, Items)> {
    let fwd = s.iter()?.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<Vec<_>>>()?;
    let mut rev = s.iter_rev()?.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<Vec<_>>>()?;
    rev.reverse();
    Ok((fwd, rev))
}

/// Reads every store forward, checks the reverse scan agrees, and returns the contents.
pub fn dump(db: &Database) -> sop::Result<Contents> {
    let tx = db.begin_read()?;
    let mut out = Contents::new();
    for name in tx.store_names()? {
        let s = tx.open_store(&name)?;
        let (fwd, rev) = scans(&s)?;
        assert_eq!(fwd, rev, "forward and reverse scans of {name} disagree");
        assert_eq!(s.count()?, fwd.len() as u64, "count of {name} disagrees with a scan");
        out.insert(name, fwd);
    }
    Ok(out)
}
