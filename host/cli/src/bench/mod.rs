//! `sop bench`: sop and its peers on one workload, in one run, with durable commits.
//!
//! Each engine runs in its own child process (this binary, re-executed with the hidden
//! `--engine-child` flag), so engines never share a heap and the peak resident memory
//! reported for each (the child's own `VmHWM`) is that engine's alone. The disk's raw
//! write+fdatasync rate (the physical limit for durable single-item commits) is probed at the
//! start and again by each child just before its single-commit phase, because on a shared
//! disk it moves a lot within one run; the run's figure is the median of those probes. The
//! parent collects each child's JSON result and prints a table or one JSON object.
//!
//! Module map: [`workload`] generates the data and runs the timed phases against the small
//! [`workload::Engine`] trait; `engine_*` are the adapters (one per engine); [`child`] is the child
//! side; [`report`] formats the table and JSON; [`fsync`] probes the disk; [`sop_go`] drives
//! the reference implementation through its Python wheel.

mod child;
#[cfg(feature = "peers")]
mod engine_fjall;
#[cfg(feature = "peers")]
mod engine_lmdb;
#[cfg(feature = "peers")]
mod engine_redb;
mod engine_sop;
#[cfg(feature = "peers")]
mod engine_sqlite;
mod fsync;
mod model;
mod plugins;
mod report;
mod sop_go;
mod swarm;
mod workload;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args)]
pub struct Args {
    /// `sop bench swarm`: several processes on one store.
    #[command(subcommand)]
    sub: Option<BenchCmd>,
    /// Engines to run, comma-separated (default: every engine built in).
    #[arg(long, value_enum, value_delimiter = ',')]
    engines: Vec<EngineKind>,
    /// Number of keys (16 random bytes each).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Items per commit in the insert, update and delete phases.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Single-item commits in the commit1 phase (into a fresh database).
    #[arg(long, default_value_t = 2_000)]
    single: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Folder under which each engine gets a fresh subfolder (default: the system temp dir).
    /// It should be on the disk you want to measure: tmpfs makes every fsync free.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Items per node of sop's store (SOP's SlotLength).
    #[arg(long, default_value_t = sop::StoreOptions::default().slot_length)]
    slot_length: u32,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also run SOP-Go (the reference implementation) through the `sop4py` Python wheel.
    #[arg(long)]
    with_sop_go: bool,
    /// Internal: run one engine's phases in this process and print its JSON result.
    #[arg(long, value_enum, hide = true)]
    engine_child: Option<EngineKind>,
}

#[derive(clap::Subcommand)]
enum BenchCmd {
    /// Aggregate throughput of 1, 2, 4 processes writing one store (the storage swarm).
    Swarm(swarm::Args),
    /// What Wasm plugins cost: key-order inserts against the built-in order, loading, calls.
    Plugins(plugins::Args),
}

/// The engines `sop bench` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    Sop,
    Redb,
    Lmdb,
    Fjall,
    Sqlite,
}

impl EngineKind {
    pub const ALL: [EngineKind; 5] =
        [EngineKind::Sop, EngineKind::Redb, EngineKind::Lmdb, EngineKind::Fjall, EngineKind::Sqlite];

    /// The name used on the command line, in the JSON and in the table.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Sop => "sop",
            EngineKind::Redb => "redb",
            EngineKind::Lmdb => "lmdb",
            EngineKind::Fjall => "fjall",
            EngineKind::Sqlite => "sqlite",
        }
    }

    /// Whether this binary was built with the engine (peers need the `peers` feature).
    pub fn built_in(self) -> bool {
        self == EngineKind::Sop || cfg!(feature = "peers")
    }
}

/// The workload's shape, shared by the parent, every child and the SOP-Go script.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub n: usize,
    pub batch: usize,
    pub single: usize,
    pub value_size: usize,
    pub slot_length: u32,
}

pub fn run(a: Args, conn: &crate::conn::Conn) -> Result<()> {
    match a.sub {
        Some(BenchCmd::Swarm(s)) => return swarm::run(s, conn),
        Some(BenchCmd::Plugins(p)) => return plugins::run(p),
        None => {}
    }
    let w = Workload { n: a.n, batch: a.batch, single: a.single, value_size: a.value_size, slot_length: a.slot_length };
    check_workload(&w)?;
    if let Some(kind) = a.engine_child {
        let dir = a.dir.context("--engine-child needs --dir")?;
        return child::run(kind, &w, &dir);
    }

    let engines: Vec<EngineKind> = if a.engines.is_empty() {
        EngineKind::ALL.into_iter().filter(|e| e.built_in()).collect()
    } else {
        let mut v = Vec::new();
        for e in a.engines {
            if !e.built_in() {
                bail!("{} is not built into this binary: rebuild sop-cli with the `peers` feature", e.name());
            }
            if !v.contains(&e) {
                v.push(e);
            }
        }
        v
    };

    // One fresh folder for the whole run; each engine works in its own subfolder of it.
    let parent = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create the folder {}", d.display()))?;
            d.clone()
        }
        None => std::env::temp_dir(),
    };
    let base = tempfile::Builder::new()
        .prefix("sop-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
    if fsync::is_tmpfs(base.path()) {
        eprintln!(
            "note: {} is on tmpfs, where fsync costs nothing: durable-commit figures will be meaningless (use --dir)",
            base.path().display()
        );
    }

    eprintln!(
        "sop bench: {} keys x {} B values, {} per commit, {} single commits, in {}",
        w.n,
        w.value_size,
        w.batch,
        w.single,
        base.path().display()
    );
    let first_probe = fsync::probe(base.path())?;
    eprintln!("disk: 4 KiB write + fdatasync at offset 0: {first_probe:.0}/s");

    // Check SOP-Go first, so that a missing wheel is said before the long part.
    let sop_go = a.with_sop_go
        && match sop_go::available() {
            Ok(()) => true,
            Err(why) => {
                eprintln!("note: skipping SOP-Go: {why}");
                false
            }
        };

    let mut results = Vec::new();
    let exe = std::env::current_exe().context("cannot find the path of this program to run engine children")?;
    for (i, kind) in engines.iter().enumerate() {
        eprintln!("[{}/{}] {}", i + 1, engines.len(), kind.name());
        let dir = base.path().join(kind.name());
        let r = run_child(&exe, *kind, &w, &dir)?;
        eprintln!("      {}", report::one_line(&r));
        results.push((kind.name().to_string(), r));
        // Free the disk space before the next engine runs.
        let _ = std::fs::remove_dir_all(&dir);
    }
    if sop_go {
        eprintln!("[+] sop_go (SOP-Go through sop4py; it never fsyncs)");
        let dir = base.path().join("sop_go");
        let probe = fsync::probe(base.path())?;
        let mut r = sop_go::run(&w, base.path(), &dir)?;
        r.fsync_per_s = Some(probe);
        eprintln!("      {}", report::one_line(&r));
        results.push(("sop_go".to_string(), r));
        let _ = std::fs::remove_dir_all(&dir);
    }

    let fsync_per_s = report::median_fsync(first_probe, &results);
    if a.json {
        println!("{}", report::json(&w, fsync_per_s, &results)?);
    } else {
        print!("{}", report::table(&w, fsync_per_s, &results));
    }
    base.close().context("cannot remove the benchmark folder")?;
    Ok(())
}

fn check_workload(w: &Workload) -> Result<()> {
    if w.n == 0 || w.batch == 0 || w.single == 0 {
        bail!("--n, --batch and --single must be at least 1");
    }
    if w.single > w.n {
        bail!("--single ({}) must not exceed --n ({}): the single commits reuse the workload's keys", w.single, w.n);
    }
    if w.value_size > sop::MAX_VALUE_LEN {
        bail!("--value-size must be at most {} bytes (sop's limit)", sop::MAX_VALUE_LEN);
    }
    if !(4..=4096).contains(&w.slot_length) {
        bail!("--slot-length must be between 4 and 4096");
    }
    Ok(())
}

/// Runs one engine in a child process and parses the JSON it prints.
fn run_child(exe: &Path, kind: EngineKind, w: &Workload, dir: &Path) -> Result<report::EngineResult> {
    let out = Command::new(exe)
        .arg("bench")
        .args(["--engine-child", kind.name()])
        .args(workload_args(w))
        .args(["--slot-length", &w.slot_length.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start the {} child process", kind.name()))?;
    if !out.status.success() {
        bail!("the {} run failed ({}); its error is printed above", kind.name(), out.status);
    }
    report::parse_child(&out.stdout).with_context(|| format!("the {} child printed no valid result", kind.name()))
}

/// The workload flags that a child (or the SOP-Go script) takes.
fn workload_args(w: &Workload) -> Vec<String> {
    vec![
        "--n".into(),
        w.n.to_string(),
        "--batch".into(),
        w.batch.to_string(),
        "--single".into(),
        w.single.to_string(),
        "--value-size".into(),
        w.value_size.to_string(),
    ]
}
