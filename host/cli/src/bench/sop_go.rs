//! SOP-Go, the reference implementation, as a peer: `bench/sop_go.py` drives it through the
//! `sop4py` wheel (SOP's Go engine as a shared library) in standalone mode, runs the same
//! phases and prints the same per-engine JSON. The script is compiled into this binary and
//! written to the benchmark folder, so `sop bench` works from any directory.
//!
//! SOP-Go never calls fsync, so its figures are not durable commits; the table says so.

use super::{Workload, report, workload_args};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};

const SCRIPT: &str = include_str!("../../../../bench/sop_go.py");

/// `Ok` if `python3` can import the wheel, else why not (one sentence).
pub fn available() -> std::result::Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import importlib.metadata as m; m.version('sop4py'); import sop, sop.transaction"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match out {
        Err(_) => Err("python3 is not on PATH".into()),
        Ok(s) if !s.success() => Err("python3 cannot import the sop4py wheel (pip install sop4py==2.3.3)".into()),
        Ok(_) => Ok(()),
    }
}

/// Runs the script with the workload's flags and a database folder `dir`.
pub fn run(w: &Workload, base: &Path, dir: &Path) -> Result<report::EngineResult> {
    let script = base.join("sop_go.py");
    std::fs::write(&script, SCRIPT).with_context(|| format!("cannot write {}", script.display()))?;
    let out = Command::new("python3")
        .arg(&script)
        .args(workload_args(w))
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start python3 for SOP-Go")?;
    if !out.status.success() {
        bail!("the SOP-Go run failed ({}); its error is printed above", out.status);
    }
    report::parse_child(&out.stdout).context("the SOP-Go script printed no valid result")
}
