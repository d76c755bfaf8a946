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
    /// Folder for the databases (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

struct Run {
    procs: usize,
    secs: f64,
    commits: u64,
    items: u64,
    merges: u64,
    conflicts: u64,
}

pub fn run(a: Args, conn: &Conn) -> Result<()> {
    if a.procs.is_empty() || a.procs.contains(&0) || a.threads == 0 || a.batch == 0 {
        bail!("--procs, --threads and --batch must be at least 1");
    }
    let base = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot create a temporary folder")?;
    let mode = match &conn.redis {
        Some(url) => format!("coordinated through {url}"),
        None => "no Redis: processes share the folder, fenced by the file system alone".into(),
    };
    eprintln!("sop bench swarm: {} threads per process, {} items per writer, {mode}", a.threads, a.items);
    let mut runs = Vec::new();
    for &k in &a.procs {
        let dir = base.path().join(format!("procs-{k}"));
        let prefix = format!("{}-bench-{}-{k}", conn.redis_prefix, std::process::id());
        let c = Conn { redis: conn.redis.clone(), redis_prefix: prefix.clone() };
        crate::demo::setup(&c.open(&dir, true)?, a.slot_length)?;
        let writers = k * a.threads;
        let run: u32 = rand::random();
        eprintln!("  {k} process(es)...");
        let start = Instant::now();
        let plan = crate::demo::Plan { run, threads: a.threads, writers, items: a.items, batch: a.batch };
        let kids = crate::demo::spawn_writers(&c, &dir, k, &plan)?;
        let mut r = Run { procs: k, secs: 0.0, commits: 0, items: (writers * a.items) as u64, merges: 0, conflicts: 0 };
        for kid in kids {
            let out = kid.wait_with_output()?;
            if !out.status.success() {
                bail!("a writer process failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let n: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if n.len() == 5 {
                r.commits += n[0];
                r.merges += n[1];
                r.conflicts += n[2];
            }
        }
        r.secs = start.elapsed().as_secs_f64();
        let db = c.open(&dir, false)?;
        let count = db.begin_read()?.open_store("demo")?.count()?;
        if count != r.items {
            bail!("verification failed with {k} processes: {count} items in the store, {} written", r.items);
        }
        runs.push(r);
    }
    if a.json {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "procs": r.procs,
                    "commits_per_s": r.commits as f64 / r.secs,
                    "items_per_s": r.items as f64 / r.secs,
                    "merges": r.merges,
                    "conflicts": r.conflicts,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "runs": runs }));
        return Ok(());
    }
    let one = runs.first().map(|r| r.commits as f64 / r.secs).unwrap_or(1.0);
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>10} {:>10} {:>9}",
        "procs", "commits/s", "items/s", "x K=1", "merged", "conflicts", "verified"
    );
    for r in &runs {
        let cps = r.commits as f64 / r.secs;
        println!(
            "{:>6} {:>12.0} {:>12.0} {:>7.2}x {:>9.0}% {:>9.1}% {:>9}",
            r.procs,
            cps,
            r.items as f64 / r.secs,
            cps / one,
            100.0 * r.merges as f64 / r.commits.max(1) as f64,
            100.0 * r.conflicts as f64 / (r.commits + r.conflicts).max(1) as f64,
            "yes"
        );
    }
    println!("durable commits (synced file + directory); {mode}");
    Ok(())
}
