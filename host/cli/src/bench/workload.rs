//! The workload: seeded data, the [`Engine`] trait every adapter implements, and the timed
//! phases with their checks.
//!
//! The shape follows db_bench (16-byte keys, 100-byte values) and SOP's own phases (insert,
//! read, delete, plus scan and update), with random key order and durable batched commits,
//! and a separate phase of single-item commits into a fresh database (the per-commit cost
//! of durability, bounded by the disk's flush rate).

use super::Workload;
use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

/// Key length in bytes.
pub const KEY_LEN: usize = 16;

/// A key and its value, borrowed from the workload's buffers.
pub type Item<'a> = (&'a [u8], &'a [u8]);

/// Checks one looked-up value: the key's position in the request and the value, if found.
pub type Check<'a> = dyn FnMut(usize, Option<&[u8]>) -> Result<()> + 'a;

/// Visits one scanned item (key, value).
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// What an engine adapter implements: each write call is **one durable commit** of the given
/// items; `read` and `scan` each run inside **one read transaction** (a snapshot). Adapters
/// use the engine's natural calls and report a write that did not find its key (where the
/// engine tells) as an error, so a broken adapter cannot look fast.
pub trait Engine {
    /// Inserts keys that are not in the database yet, in one durable commit.
    fn insert(&mut self, items: &[Item<'_>]) -> Result<()>;
    /// Replaces the values of existing keys, in one durable commit.
    fn update(&mut self, items: &[Item<'_>]) -> Result<()>;
    /// Removes existing keys, in one durable commit.
    fn delete(&mut self, keys: &[&[u8]]) -> Result<()>;
    /// Looks up every key in one read transaction and passes each value (`None` if absent)
    /// to `check` with the key's position in `keys`.
    fn read(&mut self, keys: &[&[u8]], check: &mut Check<'_>) -> Result<()>;
    /// Visits every item in key order in one read transaction.
    fn scan(&mut self, visit: &mut Visit<'_>) -> Result<()>;
}

/// Opens (creating) an engine's database in a folder.
pub type Opener<'a> = &'a dyn Fn(&Path) -> Result<Box<dyn Engine>>;

/// Operations per second of each phase, in [`super::report::PHASES`] order.
pub type PhaseOps = [f64; 6];

/// N unique random keys and a value for each, from a fixed seed: every engine (and every
/// run) sees the same bytes. Values are random so that compressing engines gain nothing.
struct Data {
    keys: Vec<[u8; KEY_LEN]>,
    values: Vec<u8>,
    value_size: usize,
}

impl Data {
    fn new(n: usize, value_size: usize) -> Data {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0001);
        let mut seen = HashSet::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        while keys.len() < n {
            let k: [u8; KEY_LEN] = rng.random();
            if seen.insert(k) {
                keys.push(k);
            }
        }
        let mut d = Data { keys, values: vec![0; n * value_size], value_size };
        d.fill_values(0x5eed_0002);
        d
    }

    /// New random values for every key (the update phase writes these).
    fn fill_values(&mut self, seed: u64) {
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut self.values);
    }

    fn key(&self, i: usize) -> &[u8] {
        &self.keys[i]
    }

    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * self.value_size..(i + 1) * self.value_size]
    }
}

/// A random permutation of 0..n from a seed.
fn order(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    v
}

fn bar(engine: &str, phase: &str, len: usize) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template("{prefix:>14} {bar:30} {pos}/{len} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b.set_prefix(format!("{engine} {phase}"));
    b
}

/// What one engine's run measured.
pub struct Measured {
    /// Operations per second of each phase.
    pub ops: PhaseOps,
    /// The disk's flush rate probed right before the single-commit phase: on a shared disk
    /// the rate moves a lot within a run, and commit1 is bounded by the rate of its moment.
    pub fsync_per_s: f64,
}

/// Runs every phase against databases in subfolders of `dir`.
pub fn run(engine: &str, w: &Workload, dir: &Path, open: Opener<'_>) -> Result<Measured> {
    let mut data = Data::new(w.n, w.value_size);
    let mut ops = [0.0; 6];
    let rate = |count: usize, t: Instant| count as f64 / t.elapsed().as_secs_f64().max(1e-9);

    let mut db = open(&dir.join("main")).context("cannot open the database")?;

    // insert: keys are random, so generation order is a random insertion order.
    let all: Vec<usize> = (0..w.n).collect();
    let b = bar(engine, "insert", w.n);
    let t = Instant::now();
    write_batches(&data, &all, w.batch, &b, |items| db.insert(items)).context("insert failed")?;
    ops[0] = rate(w.n, t);
    b.finish_and_clear();

    // read: every key in another random order, one read transaction, each value checked.
    let b = bar(engine, "read", w.n);
    ops[1] = {
        let ord = order(w.n, 2);
        let t = Instant::now();
        read_all(&mut *db, &data, &ord).context("read failed")?;
        rate(w.n, t)
    };
    b.finish_and_clear();

    // scan: everything in key order; count and strict order checked.
    let b = bar(engine, "scan", w.n);
    let t = Instant::now();
    let count = scan_count(&mut *db, w.value_size).context("scan failed")?;
    ops[2] = rate(w.n, t);
    b.finish_and_clear();
    ensure!(count == w.n, "the scan found {count} items, expected {}", w.n);

    // update: new values for every key, random order; then (untimed) every value re-read.
    data.fill_values(0x5eed_0003);
    let ord = order(w.n, 3);
    let b = bar(engine, "update", w.n);
    let t = Instant::now();
    write_batches(&data, &ord, w.batch, &b, |items| db.update(items)).context("update failed")?;
    ops[3] = rate(w.n, t);
    b.finish_and_clear();
    read_all(&mut *db, &data, &order(w.n, 5)).context("reading back the updated values failed")?;

    // delete: every key, random order; then (untimed) the store must be empty.
    let ord = order(w.n, 4);
    let b = bar(engine, "delete", w.n);
    let t = Instant::now();
    for chunk in ord.chunks(w.batch) {
        let keys: Vec<&[u8]> = chunk.iter().map(|&i| data.key(i)).collect();
        db.delete(&keys).context("delete failed")?;
        b.inc(chunk.len() as u64);
    }
    ops[4] = rate(w.n, t);
    b.finish_and_clear();
    let left = scan_count(&mut *db, w.value_size).context("the scan after delete failed")?;
    ensure!(left == 0, "{left} items are left after deleting every key");
    drop(db);

    // commit1: single-item commits into a fresh database.
    let fsync_per_s = super::fsync::probe(dir)?;
    let mut db = open(&dir.join("single")).context("cannot open the second database")?;
    let b = bar(engine, "commit1", w.single);
    let t = Instant::now();
    for i in 0..w.single {
        db.insert(&[(data.key(i), data.value(i))]).context("single-item commit failed")?;
        b.inc(1);
    }
    ops[5] = rate(w.single, t);
    b.finish_and_clear();
    let count = scan_count(&mut *db, w.value_size).context("the scan after single commits failed")?;
    ensure!(count == w.single, "the scan after single commits found {count} items, expected {}", w.single);
    Ok(Measured { ops, fsync_per_s })
}

/// Writes the items at positions `ord`, `batch` per call of `write` (one commit each).
fn write_batches(
    data: &Data,
    ord: &[usize],
    batch: usize,
    b: &ProgressBar,
    mut write: impl FnMut(&[Item<'_>]) -> Result<()>,
) -> Result<()> {
    let mut items = Vec::with_capacity(batch);
    for chunk in ord.chunks(batch) {
        items.clear();
        items.extend(chunk.iter().map(|&i| (data.key(i), data.value(i))));
        write(&items)?;
        b.inc(chunk.len() as u64);
    }
    Ok(())
}

/// Reads the keys at positions `ord` in one read transaction and checks every value.
fn read_all(db: &mut dyn Engine, data: &Data, ord: &[usize]) -> Result<()> {
    let keys: Vec<&[u8]> = ord.iter().map(|&i| data.key(i)).collect();
    db.read(&keys, &mut |pos, v| {
        let i = ord[pos];
        match v {
            Some(v) if v == data.value(i) => Ok(()),
            Some(_) => bail!("key #{i} read back a wrong value"),
            None => bail!("key #{i} is missing"),
        }
    })
}

/// Scans everything, checking strict key order and value size; returns the item count.
fn scan_count(db: &mut dyn Engine, value_size: usize) -> Result<usize> {
    let mut count = 0;
    let mut prev: Option<[u8; KEY_LEN]> = None;
    db.scan(&mut |k, v| {
        let k: [u8; KEY_LEN] = k.try_into().with_context(|| format!("the scan returned a {}-byte key", k.len()))?;
        if prev.is_some_and(|p| p >= k) {
            bail!("the scan returned keys out of order");
        }
        ensure!(v.len() == value_size, "the scan returned a {}-byte value", v.len());
        prev = Some(k);
        count += 1;
        Ok(())
    })?;
    Ok(count)
}
