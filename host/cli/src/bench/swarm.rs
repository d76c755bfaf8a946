//! `sop bench swarm`: K processes write one store through the shared folder (and Redis, with
//! `--redis`), for K = 1, 2, 4. Each process runs the `sop demo` writer: interleaved keys
//! (so commits merge in flight) and shared counters (so some conflict and are retried).

use crate::conn::Conn;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Process counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    procs: Vec<usize>,
    /// Writer threads per process (they share commits: group commit).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Items each writer adds.
    #[arg(long, default_value_t = 2_000)]
    items: usize,
    /// Items per transaction.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Items per node.
    #[arg(long, default_value_t = 32)]
    slot_length: u32,
    /// What each transaction does (default `uniform`: 10 keys drawn from a large key space,
    /// no hot key).
    #[arg(long, value_enum, default_value = "uniform")]
    workload: crate::demo::Workload,
    /// Shorthand for `--workload hot`: every transaction also increments one shared counter.
    #[arg(long, conflicts_with = "workload")]
    hot: bool,
    /// Folder for the databases (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also run each process count with batch offers off (`DbOptions::offer_batches`), to
    /// show what cross-process group commit adds, in the same run.
    #[arg(long)]
    compare: bool,
    /// Predict instead of measuring: commits/s for these process counts, from the model of
    /// docs/SCALING.md (calibrated by the flags below, whose defaults were measured here).
    #[arg(long, value_delimiter = ',')]
    simulate: Vec<usize>,
    /// Model: durable publication of one commit file, ms.
    #[arg(long, default_value_t = 1.5)]
    publish_ms: f64,
    /// Model: coordinator round trip, ms.
    #[arg(long, default_value_t = 0.1)]
    rtt_ms: f64,
    /// Model: CPU per transaction at its writer, µs.
    #[arg(long, default_value_t = 200.0)]
    txn_us: f64,
    /// Model: CPU per transaction at the publisher, µs.
    #[arg(long, default_value_t = 50.0)]
    merge_us: f64,
    /// Model: fixed cost per commit file besides publication, µs.
    #[arg(long, default_value_t = 300.0)]
    fixed_us: f64,
    /// Model: processes per host.
    #[arg(long, default_value_t = 4)]
    procs_per_host: usize,
    /// Model: cores per host.
    #[arg(long, default_value_t = 2.0)]
    cores: f64,
    /// Model: coordinator operations per second.
    #[arg(long, default_value_t = 100_000.0)]
    redis_ops: f64,
    /// Model: metadata operations (stat, list) per second of the shared medium.
    #[arg(long, default_value_t = 200_000.0)]
    meta_ops: f64,
}

/// Runs `k` writer processes on a fresh database in `dir` and checks every item arrived.
fn measure(
    a: &Args,
    conn: &Conn,
    dir: &std::path::Path,
    k: usize,
    offer: bool,
    workload: crate::demo::Workload,
) -> Result<Run> {
    let prefix = format!("{}-bench-{}-{k}-{offer}", conn.redis_prefix, std::process::id());
    let c = Conn { redis: conn.redis.clone(), redis_prefix: prefix };
    crate::demo::setup(&c.open(dir, true)?, a.slot_length)?;
    let writers = k * a.threads;
    let run: u32 = rand::random();
    let start = Instant::now();
    let plan = crate::demo::Plan { run, threads: a.threads, writers, items: a.items, batch: a.batch, workload, offer };
    let kids = crate::demo::spawn_writers(&c, dir, k, &plan)?;
    let t = crate::demo::collect(kids)?;
    let r = Run {
        procs: k,
        offer,
        secs: start.elapsed().as_secs_f64(),
        commits: t.commits,
        items: (writers * a.items) as u64,
        merges: t.merges,
        conflicts: t.conflicts,
        files: t.batches,
    };
    let db = c.open(dir, false)?;
    let count = db.begin_read()?.open_store("demo")?.count()?;
    if count != r.items {
        bail!("verification failed with {k} processes: {count} items in the store, {} written", r.items);
    }
    Ok(r)
}

fn simulate(a: &Args) -> Result<()> {
    let c = super::model::Calib {
        publish_s: a.publish_ms / 1e3,
        rtt_s: a.rtt_ms / 1e3,
        txn_cpu_s: a.txn_us / 1e6,
        merge_cpu_s: a.merge_us / 1e6,
        commit_fixed_s: a.fixed_us / 1e6,
        threads: a.threads,
        procs_per_host: a.procs_per_host.max(1),
        cores: a.cores,
        redis_ops_per_s: a.redis_ops,
        meta_ops_per_s: a.meta_ops,
    };
    let preds: Vec<_> = a.simulate.iter().map(|&p| super::model::predict(&c, p)).collect();
    if a.json {
        println!("{}", serde_json::json!({ "model": c, "predictions": preds }));
        return Ok(());
    }
    let one = super::model::predict(&c, 1).commits_per_s;
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["procs", "commits/s", "x K=1", "txns/file", "bound by"]);
    for p in &preds {
        t.add_row([
            p.procs.to_string(),
            format!("{:.0}", p.commits_per_s),
            format!("{:.2}x", p.commits_per_s / one),
            format!("{:.1}", p.group),
            p.bound.to_string(),
        ]);
    }
    println!("{t}");
    println!("model of docs/SCALING.md: {c:?}");
    Ok(())
}

struct Run {
    procs: usize,
    offer: bool,
    secs: f64,
    commits: u64,
    items: u64,
    merges: u64,
    conflicts: u64,
    files: u64,
}

pub fn run(a: Args, conn: &Conn) -> Result<()> {
    if !a.simulate.is_empty() {
        if a.simulate.contains(&0) {
            bail!("--simulate takes process counts of at least 1");
        }
        return simulate(&a);
    }
    if a.procs.is_empty() || a.procs.contains(&0) || a.threads == 0 || a.batch == 0 {
        bail!("--procs, --threads and --batch must be at least 1");
    }
    let workload = if a.hot { crate::demo::Workload::Hot } else { a.workload };
    let base = match &a.dir {
        Some(d) => std::fs::create_dir_all(d)
            .with_context(|| format!("cannot create {}", d.display()))
            .and_then(|()| tempfile::tempdir_in(d).context("cannot create a temporary folder")),
        None => tempfile::tempdir().context("cannot create a temporary folder"),
    }?;
    let mode = match &conn.redis {
        Some(url) => format!("coordinated through {url}"),
        None => "no Redis: processes share the folder, fenced by the file system alone".into(),
    };
    eprintln!(
        "sop bench swarm: workload {}, {} threads per process, {} items per writer, {} per transaction, {mode}",
        workload.name(),
        a.threads,
        a.items,
        a.batch
    );
    let offers: &[bool] = if a.compare { &[false, true] } else { &[true] };
    let mut runs = Vec::new();
    for &offer in offers {
        for &k in &a.procs {
            let dir = base.path().join(format!("procs-{k}-{}", if offer { "offer" } else { "wait" }));
            eprintln!("  {k} process(es){}...", if offer { "" } else { ", batch offers off" });
            runs.push(measure(&a, conn, &dir, k, offer, workload)?);
        }
    }
    if a.json {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "procs": r.procs,
                    "offer_batches": r.offer,
                    "commits_per_s": r.commits as f64 / r.secs,
                    "items_per_s": r.items as f64 / r.secs,
                    "merges": r.merges,
                    "conflicts": r.conflicts,
                    "commit_files": r.files,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "workload": workload.name(), "runs": runs }));
        return Ok(());
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["procs", "offers", "commits/s", "items/s", "x K=1", "merged", "conflicts", "txns/file", "verified"]);
    for r in &runs {
        let cps = r.commits as f64 / r.secs;
        // Ratios against the first process count measured with the same setting.
        let one = runs.iter().find(|o| o.offer == r.offer).map_or(cps, |o| o.commits as f64 / o.secs);
        t.add_row([
            r.procs.to_string(),
            if r.offer { "on" } else { "off" }.to_string(),
            format!("{cps:.0}"),
            format!("{:.0}", r.items as f64 / r.secs),
            format!("{:.2}x", cps / one),
            format!("{:.0}%", 100.0 * r.merges as f64 / r.commits.max(1) as f64),
            format!("{:.1}%", 100.0 * r.conflicts as f64 / (r.commits + r.conflicts).max(1) as f64),
            format!("{:.1}", r.commits as f64 / r.files.max(1) as f64),
            "yes".to_string(),
        ]);
    }
    for i in 2..9 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    println!("{t}");
    println!("workload {}; durable commits (synced file + directory); {mode}", workload.name());
    Ok(())
}
