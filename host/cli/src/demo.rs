//! `sop demo`: T writer threads commit into one store on the embedded default.
//!
//! Each thread adds its own keys, interleaved with the other threads' keys so that their
//! commits land in the same nodes (in-flight merges), and increments shared counters with
//! read-modify-write (true conflicts, retried by `Database::transact`). At the end every
//! committed item is read back.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sop::{Database, StoreOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Database folder (default: a fresh temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Items each thread adds.
    #[arg(long, default_value_t = 5_000)]
    items: usize,
    /// Items per transaction.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Items per node (small nodes make threads share nodes and split often).
    #[arg(long, default_value_t = 32)]
    slot_length: u32,
}

const COUNTERS: u64 = 4;

pub fn run(a: Args) -> Result<()> {
    if a.threads == 0 || a.batch == 0 {
        bail!("--threads and --batch must be at least 1");
    }
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let db = Database::open_or_create(&dir).with_context(|| format!("cannot open a database in {}", dir.display()))?;
    let opts = StoreOptions { slot_length: a.slot_length, ..StoreOptions::default() };
    db.transact(|tx| {
        if !tx.store_exists("demo")? {
            tx.create_store("demo", opts.clone())?;
        }
        if !tx.store_exists("counters")? {
            tx.create_store("counters", StoreOptions::default())?;
        }
        Ok(())
    })?;
    let (before, counters_before) = {
        let tx = db.begin_read()?;
        (tx.open_store("demo")?.count()?, sum_counters(&tx)?)
    };
    println!(
        "sop demo: {} threads x {} items into one store (slot length {}), in {}",
        a.threads,
        a.items,
        a.slot_length,
        dir.display()
    );

    let total = (a.threads * a.items) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} items  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let increments = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let run_id: u32 = rand::random();
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::new();
        for t in 0..a.threads {
            let (db, bar, inc) = (db.clone(), bar.clone(), increments.clone());
            let (items, batch, threads) = (a.items, a.batch, a.threads);
            handles.push(s.spawn(move || -> sop::Result<()> {
                let mut i = 0;
                while i < items {
                    let n = batch.min(items - i);
                    db.transact(|tx| {
                        let st = tx.open_store("demo")?;
                        for j in i..i + n {
                            // Thread t owns keys j*threads + t: neighbours belong to other
                            // threads, so concurrent commits touch the same leaves.
                            st.add(&key(run_id, (j * threads + t) as u64), &value(t, j))?;
                        }
                        // A read-modify-write on a shared counter: a real conflict.
                        let c = tx.open_store("counters")?;
                        let k = ((i / batch) as u64 % COUNTERS).to_be_bytes();
                        let v = c.get(&k)?.map_or(0, |b| u64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8])));
                        c.upsert(&k, &(v + 1).to_be_bytes())?;
                        Ok(())
                    })?;
                    inc.fetch_add(1, Ordering::Relaxed);
                    bar.inc(n as u64);
                    i += n;
                }
                Ok(())
            }));
        }
        while handles.iter().any(|h| !h.is_finished()) {
            let st = db.stats();
            bar.set_message(format!(
                "commits {}  merges {}  conflicts {}  retries {}  flushes {}",
                st.commits, st.merges, st.conflicts, st.retries, st.batches
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();

    // Verify: every committed item reads back, the count is exact, no increment was lost.
    let tx = db.begin_read()?;
    let st = tx.open_store("demo")?;
    let mut missing = 0u64;
    for t in 0..a.threads {
        for j in 0..a.items {
            match st.get(&key(run_id, (j * a.threads + t) as u64))? {
                Some(v) if v[..] == value(t, j)[..] => {}
                _ => missing += 1,
            }
        }
    }
    let count = st.count()?;
    let counted = sum_counters(&tx)? - counters_before;
    let stats = db.stats();
    let rows = [
        ("transactions committed", stats.commits.to_string()),
        ("commit files (shared flushes)", stats.batches.to_string()),
        ("merged in flight", stats.merges.to_string()),
        ("conflicts (then retried)", stats.conflicts.to_string()),
        ("retries", stats.retries.to_string()),
        ("items added", total.to_string()),
        ("items in store", count.to_string()),
        ("time", format!("{:.2} s", elapsed.as_secs_f64())),
        ("commits/s", format!("{:.0}", stats.commits as f64 / elapsed.as_secs_f64())),
        ("items/s", format!("{:.0}", total as f64 / elapsed.as_secs_f64())),
        ("items read back", format!("{} of {}", total - missing, total)),
        ("counter increments", format!("{} of {}", counted, increments.load(Ordering::Relaxed))),
    ];
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:-<1$}", "", w + 16);
    for (k, v) in rows {
        println!("{k:<w$}  {v:>12}");
    }
    println!("{:-<1$}", "", w + 16);
    let ok = missing == 0 && count == before + total && counted == increments.load(Ordering::Relaxed);
    if !ok {
        bail!("verification failed: {missing} items missing, count {count}, counters {counted}");
    }
    println!("verified: every committed item reads back and no increment was lost");
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

fn key(run: u32, n: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&run.to_be_bytes());
    k[4..].copy_from_slice(&n.to_be_bytes());
    k
}

fn value(t: usize, j: usize) -> Vec<u8> {
    format!("thread {t} item {j}").into_bytes()
}
