//! Shared helpers for the integration tests.

pub mod checker;
pub mod redis_server;

use sop::Database;
use std::collections::BTreeMap;

/// Every store's full contents, read in one snapshot.
pub type Contents = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// Reads every store forward, checks the reverse scan agrees, and returns the contents.
pub fn dump(db: &Database) -> sop::Result<Contents> {
    let tx = db.begin_read()?;
    let mut out = Contents::new();
    for name in tx.store_names()? {
        let s = tx.open_store(&name)?;
        let fwd: Vec<(Vec<u8>, Vec<u8>)> =
            s.iter()?.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<_>>()?;
        let mut rev: Vec<(Vec<u8>, Vec<u8>)> =
            s.iter_rev()?.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<_>>()?;
        rev.reverse();
        assert_eq!(fwd, rev, "forward and reverse scans of {name} disagree");
        assert_eq!(s.count()?, fwd.len() as u64, "count of {name} disagrees with a scan");
        out.insert(name, fwd);
    }
    Ok(out)
}
