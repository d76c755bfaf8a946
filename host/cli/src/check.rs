//! `sop inspect` and `sop verify`.

use crate::conn::Conn;
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    dir: PathBuf,
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
}

pub fn inspect(a: Args, conn: &Conn) -> Result<()> {
    let db = conn.open(&a.dir, false)?;
    let r = db.inspect()?;
    println!("database {} at commit {}", a.dir.display(), r.seq);
    println!(
        "{:<24} {:>10} {:>6} {:>7} {:>6} {:>8} {:>8} {:>6} {:>7}  plugins",
        "store", "items", "height", "leaves", "inner", "fill", "slot", "unique", "values"
    );
    for s in &r.stores {
        let o = &s.meta.options;
        let mut plugins = Vec::new();
        if let sop::KeyOrder::Custom { name, id } = &o.order {
            plugins.push(format!("order {name} ({})", &id[..id.len().min(12)]));
        }
        if let Some(v) = &o.validator {
            plugins.push(format!("validator {v}"));
        }
        let line = format!(
            "{:<24} {:>10} {:>6} {:>7} {:>6} {:>7.0}% {:>8} {:>6} {:>7}  {}",
            s.meta.name,
            s.meta.count,
            s.height,
            s.leaves,
            s.inner,
            s.leaf_fill * 100.0,
            o.slot_length,
            if o.unique { "yes" } else { "no" },
            match o.value_placement {
                sop::ValuePlacement::InNode => "node",
                sop::ValuePlacement::Blob => "blob",
            },
            plugins.join(", ")
        );
        println!("{}", line.trim_end());
    }
    println!(
        "commit files: {}  size: {}  live: {}  awaiting reclamation: {}  nodes: {}",
        r.commit_files,
        mib(r.file_bytes),
        mib(r.live_bytes),
        mib(r.file_bytes.saturating_sub(r.live_bytes)),
        r.nodes
    );
    Ok(())
}

pub fn verify(a: Args, conn: &Conn) -> Result<()> {
    let db = conn.open(&a.dir, false)?;
    let r = db.verify()?;
    if r.is_ok() {
        println!("ok: {} nodes and {} items checked, no problems", r.nodes_checked, r.items_checked);
        return Ok(());
    }
    for p in &r.problems {
        println!("problem: {p}");
    }
    bail!("{} problems found in {}", r.problems.len(), a.dir.display())
}
