//! The child side: one engine's phases in this process, then one JSON line on stdout with
//! its ops/s, this process's peak resident memory and the flush rate probed before commit1.

use super::workload::{self, Engine};
use super::{EngineKind, Workload, report};
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(kind: EngineKind, w: &Workload, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let open = |path: &Path| open_engine(kind, path, w);
    let m =
        workload::run(kind.name(), w, dir, &open).with_context(|| format!("{} failed the benchmark", kind.name()))?;
    let r = report::EngineResult { ops: m.ops, peak_rss_mb: peak_rss_mb(), fsync_per_s: Some(m.fsync_per_s) };
    println!("{}", serde_json::to_string(&report::engine_json(&r, true))?);
    Ok(())
}

/// Creates the folder and opens the engine's database in it.
fn open_engine(kind: EngineKind, dir: &Path, w: &Workload) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    Ok(match kind {
        EngineKind::Sop => Box::new(super::engine_sop::SopEngine::open(dir, w.slot_length)?),
        #[cfg(feature = "peers")]
        EngineKind::Redb => Box::new(super::engine_redb::RedbEngine::open(dir)?),
        #[cfg(feature = "peers")]
        EngineKind::Lmdb => Box::new(super::engine_lmdb::LmdbEngine::open(dir, w)?),
        #[cfg(feature = "peers")]
        EngineKind::Fjall => Box::new(super::engine_fjall::FjallEngine::open(dir)?),
        #[cfg(feature = "peers")]
        EngineKind::Sqlite => Box::new(super::engine_sqlite::SqliteEngine::open(dir)?),
        #[cfg(not(feature = "peers"))]
        other => anyhow::bail!("{} is not built into this binary (feature `peers`)", other.name()),
    })
}

/// Peak resident set size of this process in MiB: `VmHWM` from /proc/self/status, or
/// `getrusage`'s `ru_maxrss` where /proc is missing.
fn peak_rss_mb() -> f64 {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    });
    let kib = from_proc.unwrap_or_else(|| {
        // SAFETY: `ru` is a properly sized out-parameter.
        unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 { ru.ru_maxrss as f64 } else { 0.0 }
        }
    });
    kib / 1024.0
}
