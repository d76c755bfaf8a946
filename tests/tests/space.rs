//! Space is reclaimed: rewriting the same keys over and over keeps the folder's size bounded
//! (checkpoints, compaction and deletion of dead commit files keep up), on the real file system.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sop::{Database, DbOptions, StoreOptions, ValuePlacement};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const KEYS: usize = 2_000;
const ROUNDS: usize = 300;
const PER_ROUND: usize = 50;
/// Rounds at the end whose sizes must all stay under the bound.
const TAIL: usize = 100;

fn options() -> DbOptions {
    DbOptions {
        checkpoint_every: 8,
        compact_min_bytes: 64 * 1024,
        reclaim_grace: Duration::ZERO,
        create_if_missing: true,
        ..Default::default()
    }
}

/// Total size of the regular files under `dir`, recursively.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        if md.is_dir() {
            total += du(&e.path());
        } else {
            total += md.len();
        }
    }
    total
}

fn key(i: usize) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

/// A value that tells which round wrote it (the rest is filler of the requested length).
fn value(i: usize, round: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{i}:{round}:").into_bytes();
    v.resize(len, b'a' + (round % 26) as u8);
    v
}

struct Run {
    label: &'static str,
    keys: usize,
    value_len: usize,
    placement: ValuePlacement,
    slot_length: u32,
}

fn run(cfg: Run) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), options()).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let store_opts =
        StoreOptions { value_placement: cfg.placement, slot_length: cfg.slot_length, ..StoreOptions::default() };
    db.transact(|tx| tx.create_store("s", store_opts.clone()).map(|_| ())).unwrap();
    // Initial load, in several commits.
    for chunk in (0..cfg.keys).collect::<Vec<_>>().chunks(250) {
        db.transact(|tx| {
            let s = tx.open_store("s")?;
            for &i in chunk {
                s.add(&key(i), &value(i, 0, cfg.value_len))?;
            }
            Ok(())
        })
        .unwrap();
        for &i in chunk {
            model.insert(key(i), value(i, 0, cfg.value_len));
        }
    }
    let loaded = du(dir.path());
    // Live data plus dead files awaiting the next checkpoint (at most `checkpoint_every`
    // commits' worth), compaction output and two checkpoints; the constant covers the header,
    // checkpoints and slack. Nothing here grows with the number of rounds.
    let bound = 4 * loaded + 256 * 1024;

    let mut rng = StdRng::seed_from_u64(7);
    let mut sizes = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
        let picks: Vec<usize> = (0..PER_ROUND).map(|_| rng.random_range(0..cfg.keys)).collect();
        db.transact(|tx| {
            let s = tx.open_store("s")?;
            for &i in &picks {
                assert!(s.update(&key(i), &value(i, round, cfg.value_len))?);
            }
            Ok(())
        })
        .unwrap();
        for &i in &picks {
            model.insert(key(i), value(i, round, cfg.value_len));
        }
        sizes.push(du(dir.path()));
    }
    let stats = db.stats();
    let written = stats.bytes_written;
    let max_all = *sizes.iter().max().unwrap();
    let tail = &sizes[ROUNDS - TAIL..];
    let max_tail = *tail.iter().max().unwrap();
    let files = std::fs::read_dir(dir.path().join("commits")).unwrap().count();
    println!(
        "[{}] after load {loaded} B, bound {bound} B; max {max_all} B overall, {max_tail} B in the last {TAIL} rounds; \
         final {} B in {files} commit files; {written} B written in total; stats: {} checkpoints, {} reclaimed files, \
         {} relocated bytes, file_bytes {}, live_bytes {}",
        cfg.label,
        sizes.last().unwrap(),
        stats.checkpoints,
        stats.reclaimed_files,
        stats.relocated_bytes,
        stats.file_bytes,
        stats.live_bytes,
    );
    println!("[{}] size per 10 rounds: {:?}", cfg.label, sizes.iter().step_by(10).collect::<Vec<_>>());

    assert!(stats.reclaimed_files > 0, "dead commit files must be deleted");
    // Without reclamation the folder would hold everything ever written.
    assert!(written > 5 * bound, "the workload must write far more than the bound to mean anything");
    for (i, s) in tail.iter().enumerate() {
        assert!(*s <= bound, "round {}: {s} bytes on disk exceeds the bound of {bound}", ROUNDS - TAIL + i + 1);
    }
    // No roughly linear growth: the average size over the last 100 rounds is about that over
    // rounds 51..150 (linear growth would make it ~2x, plus the load's share).
    let avg = |w: &[u64]| w.iter().sum::<u64>() / w.len() as u64;
    let (early, late) = (avg(&sizes[ROUNDS / 6..ROUNDS / 2]), avg(tail));
    println!("[{}] average size: {early} B in rounds 51..150, {late} B in the last {TAIL}", cfg.label);
    assert!(late * 4 <= early * 5, "size still growing: average {early} B early, {late} B late");

    // Data is intact, also after reopening.
    drop(db);
    let db = Database::open_with(dir.path(), options()).unwrap();
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("s").unwrap();
    assert_eq!(s.count().unwrap(), cfg.keys as u64);
    let mut n = 0;
    for (item, (k, v)) in s.iter().unwrap().zip(&model) {
        let (gk, gv) = item.unwrap();
        assert_eq!(&gk[..], &k[..]);
        assert!(gv[..] == v[..], "value of {}", String::from_utf8_lossy(k));
        n += 1;
    }
    assert_eq!(n, cfg.keys);
    println!("[{}] took {:?}", cfg.label, started.elapsed());
}

/// 100-byte values kept in the leaves. slot_length 32 keeps one commit (50 random updates) well
/// below the size of the whole tree; with the default 128, 50 random updates rewrite ~80% of
/// the leaves, so the 8 commits between two checkpoints alone hold ~4x the live data (fully
/// dead files are only deleted once a periodic checkpoint covers them).
#[test]
fn space_is_reclaimed_inline_values() {
    run(Run { label: "inline", keys: KEYS, value_len: 100, placement: ValuePlacement::InNode, slot_length: 32 });
}

/// 5,000-byte values, each in its own blob record: old blobs die one by one, so files stay
/// partly live and only compaction (relocation) can free them.
#[test]
fn space_is_reclaimed_blob_values() {
    run(Run { label: "blob", keys: 500, value_len: 5_000, placement: ValuePlacement::Blob, slot_length: 128 });
}
