//! `sop demo`: writers commit into one store, as threads of this process (the embedded
//! default) or as separate processes sharing the folder and a Redis (`--procs K --redis URL`).
//!
//! Each writer adds its own keys, interleaved with the other writers' keys so that their
//! commits land in the same nodes (in-flight merges), and increments shared counters with
//! read-modify-write (true conflicts, retried by `Database::transact`). At the end every
//! committed item is read back.

use crate::conn::Conn;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sop::{Database, DbOptions, StoreOptions};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Database folder (default: a fresh temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Writer processes; more than one needs --redis (the swarm).
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// Writer threads per process.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Items each writer adds.
    #[arg(long, default_value_t = 5_000)]
    items: usize,
    /// Items per transaction.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Items per node (small nodes make writers share nodes and split often).
    #[arg(long, default_value_t = 32)]
    slot_length: u32,
}

/// What each transaction of a writer does.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Keys interleaved with the other writers' (in-flight merges) plus a read-modify-write
    /// of one of four shared counters (true conflicts, retried).
    Demo,
    /// Keys drawn uniformly from a large key space into one store; no hot key.
    Uniform,
    /// `uniform` plus an increment of one counter shared by every transaction.
    Hot,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Demo => "demo",
            Workload::Uniform => "uniform",
            Workload::Hot => "hot",
        }
    }

    /// How many shared counters a transaction picks from (0: none).
    fn counters(self) -> u64 {
        match self {
            Workload::Demo => COUNTERS,
            Workload::Uniform => 0,
            Workload::Hot => 1,
        }
    }

    /// The key of item `n`: interleaved (`demo`) or scattered over the whole key space by a
    /// bijection, so keys stay distinct (splitmix64's finaliser).
    fn key(self, run: u32, n: u64) -> [u8; 12] {
        let n = match self {
            Workload::Demo => n,
            Workload::Uniform | Workload::Hot => {
                let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
        };
        key(run, n)
    }
}

/// What one writer process is told to do.
#[derive(clap::Args)]
pub struct WorkerArgs {
    dir: PathBuf,
    #[arg(long)]
    run: u32,
    #[arg(long)]
    first: usize,
    #[arg(long)]
    threads: usize,
    #[arg(long)]
    writers: usize,
    #[arg(long)]
    items: usize,
    #[arg(long)]
    batch: usize,
    #[arg(long, value_enum, default_value = "demo")]
    workload: Workload,
    /// Wait for the commit lease instead of offering batches to its holder.
    #[arg(long)]
    no_offer: bool,
}

const COUNTERS: u64 = 4;

/// The keys of writer `w` interleave with every other writer's keys.
fn key(run: u32, n: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&run.to_be_bytes());
    k[4..].copy_from_slice(&n.to_be_bytes());
    k
}

fn value(w: usize, j: usize) -> Vec<u8> {
    format!("writer {w} item {j}").into_bytes()
}

/// Writer `w` of `writers`: adds its items, `batch` per transaction, each transaction also
/// incrementing a shared counter if the workload has them.
#[allow(clippy::too_many_arguments)]
fn write(
    db: &Database,
    workload: Workload,
    run: u32,
    w: usize,
    writers: usize,
    items: usize,
    batch: usize,
    done: &AtomicU64,
) -> sop::Result<()> {
    let mut i = 0;
    while i < items {
        let n = batch.min(items - i);
        db.transact(|tx| {
            let st = tx.open_store("demo")?;
            for j in i..i + n {
                st.add(&workload.key(run, (j * writers + w) as u64), &value(w, j))?;
            }
            if workload.counters() == 0 {
                return Ok(());
            }
            let c = tx.open_store("counters")?;
            let k = ((i / batch) as u64 % workload.counters()).to_be_bytes();
            let v = c.get(&k)?.map_or(0, |b| u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8])));
            c.upsert(&k, &(v + 1).to_be_bytes())
        })?;
        done.fetch_add(n as u64, Ordering::Relaxed);
        i += n;
    }
    Ok(())
}

fn sum_counters(tx: &sop::Transaction) -> Result<u64> {
    let mut sum = 0;
    for r in tx.open_store("counters")?.iter()? {
        let (_, v) = r?;
        sum += u64::from_be_bytes(v[..8].try_into().context("counter value is not 8 bytes")?);
    }
    Ok(sum)
}

pub(crate) fn setup(db: &Database, slot_length: u32) -> Result<()> {
    let opts = StoreOptions { slot_length, ..StoreOptions::default() };
    db.transact(|tx| {
        tx.open_or_create_store("demo", opts.clone())?;
        tx.open_or_create_store("counters", StoreOptions::default())?;
        Ok(())
    })?;
    Ok(())
}

/// Totals reported by writer processes (or this process).
#[derive(Default)]
pub(crate) struct Totals {
    pub commits: u64,
    pub merges: u64,
    pub conflicts: u64,
    pub retries: u64,
    pub batches: u64,
}

pub fn run(a: Args, conn: &Conn) -> Result<()> {
    if a.threads == 0 || a.batch == 0 || a.procs == 0 {
        bail!("--procs, --threads and --batch must be at least 1");
    }
    if a.procs > 1 && conn.redis.is_none() {
        bail!("--procs {} needs --redis URL (or SOP_REDIS_URL): processes coordinate through Redis", a.procs);
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let db = conn.open(&dir, true)?;
    setup(&db, a.slot_length)?;
    let (before, counters_before) = {
        let tx = db.begin_read()?;
        (tx.open_store("demo")?.count()?, sum_counters(&tx)?)
    };
    let writers = a.procs * a.threads;
    let mode = match &conn.redis {
        Some(url) => format!("{} processes x {} threads, swarm via {url}", a.procs, a.threads),
        None => format!("{} threads, embedded coordinator", a.threads),
    };
    println!("sop demo: {mode}; {} items per writer, slot length {}, in {}", a.items, a.slot_length, dir.display());

    let total = (writers * a.items) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} items  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let run_id: u32 = rand::random();
    let start = Instant::now();
    let totals = if a.procs == 1 {
        run_threads(&db, &a, Workload::Demo, run_id, 0, writers, &bar)?
    } else {
        run_procs(&db, &dir, &a, conn, run_id, writers, &bar)?
    };
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    // Verify: every committed item reads back, the count is exact, no increment was lost.
    let tx = db.begin_read()?;
    let st = tx.open_store("demo")?;
    let mut missing = 0u64;
    for w in 0..writers {
        for j in 0..a.items {
            match st.get(&key(run_id, (j * writers + w) as u64))? {
                Some(v) if v[..] == value(w, j)[..] => {}
                _ => missing += 1,
            }
        }
    }
    let count = st.count()?;
    let counted = sum_counters(&tx)? - counters_before;
    let increments = (writers * a.items.div_ceil(a.batch)) as u64;
    let rows = [
        ("transactions committed", totals.commits.to_string()),
        ("commit files (shared flushes)", totals.batches.to_string()),
        ("merged in flight", totals.merges.to_string()),
        ("conflicts (then retried)", totals.conflicts.to_string()),
        ("retries", totals.retries.to_string()),
        ("items added", total.to_string()),
        ("items in store", count.to_string()),
        ("time", format!("{:.2} s", elapsed.as_secs_f64())),
        ("commits/s", format!("{:.0}", totals.commits as f64 / elapsed.as_secs_f64())),
        ("items/s", format!("{:.0}", total as f64 / elapsed.as_secs_f64())),
        ("items read back", format!("{} of {}", total - missing, total)),
        ("counter increments", format!("{counted} of {increments}")),
    ];
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:-<1$}", "", w + 16);
    for (k, v) in rows {
        println!("{k:<w$}  {v:>12}");
    }
    println!("{:-<1$}", "", w + 16);
    if missing != 0 || count != before + total || counted != increments {
        bail!("verification failed: {missing} items missing, count {count}, {counted} of {increments} increments");
    }
    println!("verified: every committed item reads back and no increment was lost");
    Ok(())
}

fn stats_of(db: &Database) -> Totals {
    let s = db.stats();
    Totals { commits: s.commits, merges: s.merges, conflicts: s.conflicts, retries: s.retries, batches: s.batches }
}

/// Runs `threads` writers (numbered from `first`) in this process, updating `bar`.
fn run_threads(
    db: &Database,
    a: &Args,
    workload: Workload,
    run: u32,
    first: usize,
    writers: usize,
    bar: &ProgressBar,
) -> Result<Totals> {
    let done = AtomicU64::new(0);
    let before = stats_of(db);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..a.threads)
            .map(|t| {
                let done = &done;
                s.spawn(move || write(db, workload, run, first + t, writers, a.items, a.batch, done))
            })
            .collect();
        while handles.iter().any(|h| !h.is_finished()) {
            let st = db.stats();
            bar.set_position(done.load(Ordering::Relaxed));
            bar.set_message(format!(
                "commits {}  merges {}  conflicts {}  retries {}  flushes {}",
                st.commits - before.commits,
                st.merges - before.merges,
                st.conflicts - before.conflicts,
                st.retries - before.retries,
                st.batches - before.batches
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    let after = stats_of(db);
    Ok(Totals {
        commits: after.commits - before.commits,
        merges: after.merges - before.merges,
        conflicts: after.conflicts - before.conflicts,
        retries: after.retries - before.retries,
        batches: after.batches - before.batches,
    })
}

/// Starts `a.procs` writer processes and sums what they report.
fn run_procs(
    db: &Database,
    dir: &Path,
    a: &Args,
    conn: &Conn,
    run: u32,
    writers: usize,
    bar: &ProgressBar,
) -> Result<Totals> {
    let plan = Plan {
        run,
        threads: a.threads,
        writers,
        items: a.items,
        batch: a.batch,
        workload: Workload::Demo,
        offer: true,
    };
    let mut kids = spawn_writers(conn, dir, a.procs, &plan)?;
    // Progress from the shared store itself: every process sees every commit.
    loop {
        let running = kids.iter_mut().map(|k| k.try_wait().ok().flatten()).filter(Option::is_none).count();
        let n = db.begin_read()?.open_store("demo")?.count()?;
        bar.set_position(n.min(bar.length().unwrap_or(n)));
        bar.set_message(format!("{running} writer processes running"));
        if running == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    collect(kids)
}

/// Waits for writer processes and sums the totals each printed as its last line.
pub(crate) fn collect(kids: Vec<std::process::Child>) -> Result<Totals> {
    let mut t = Totals::default();
    for k in kids {
        let out = k.wait_with_output()?;
        if !out.status.success() {
            bail!("a writer process failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let line = out.stdout.lines().map_while(|l| l.ok()).last().unwrap_or_default();
        let n: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if n.len() == 5 {
            t.commits += n[0];
            t.merges += n[1];
            t.conflicts += n[2];
            t.retries += n[3];
            t.batches += n[4];
        }
    }
    Ok(t)
}

/// What every writer process of a run is told.
pub(crate) struct Plan {
    pub run: u32,
    pub threads: usize,
    pub writers: usize,
    pub items: usize,
    pub batch: usize,
    pub workload: Workload,
    /// Offer batches to the commit lease holder (`DbOptions::offer_batches`).
    pub offer: bool,
}

/// Starts `procs` `sop demo-worker` processes on `dir`, each with `plan.threads` writers.
pub(crate) fn spawn_writers(conn: &Conn, dir: &Path, procs: usize, plan: &Plan) -> Result<Vec<std::process::Child>> {
    let exe = std::env::current_exe().context("cannot find the sop executable")?;
    let mut kids = Vec::new();
    for p in 0..procs {
        let mut c = Command::new(&exe);
        if let Some(url) = &conn.redis {
            c.args(["--redis", url, "--redis-prefix", &conn.redis_prefix]);
        }
        let n = |v: usize| v.to_string();
        c.arg("demo-worker").arg(dir).args(["--run", &plan.run.to_string(), "--first", &n(p * plan.threads)]);
        c.args(["--threads", &n(plan.threads), "--writers", &n(plan.writers)]);
        c.args(["--items", &n(plan.items), "--batch", &n(plan.batch), "--workload", plan.workload.name()]);
        if !plan.offer {
            c.arg("--no-offer");
        }
        kids.push(c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("cannot start a writer process")?);
    }
    Ok(kids)
}

/// `sop demo-worker`: one process of `sop demo --procs`.
pub fn worker(a: WorkerArgs, conn: &Conn) -> Result<()> {
    let db = conn.open_with(&a.dir, DbOptions { offer_batches: !a.no_offer, ..conn.options(false)? })?;
    let args = Args { dir: None, procs: 1, threads: a.threads, items: a.items, batch: a.batch, slot_length: 0 };
    let t = run_threads(&db, &args, a.workload, a.run, a.first, a.writers, &ProgressBar::hidden())?;
    println!("{} {} {} {} {}", t.commits, t.merges, t.conflicts, t.retries, t.batches);
    Ok(())
}
