//! Many threads sharing one `Database` handle: in-flight merging of disjoint writes, counters
//! under contention, and snapshot consistency of read-only transactions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sop::{Database, Error, StoreOptions};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

const THREADS: usize = 8;

fn small_nodes() -> StoreOptions {
    StoreOptions { slot_length: 8, unique: true, ..StoreOptions::default() }
}

/// Keys of different threads interleave in key order, so every leaf holds keys of several
/// threads and concurrent commits keep landing in the same nodes.
fn key(thread: usize, i: usize) -> Vec<u8> {
    format!("{i:05}-{thread:02}").into_bytes()
}

fn value(thread: usize, i: usize) -> Vec<u8> {
    format!("value of {i} from thread {thread}").into_bytes()
}

/// Creates an empty store in its own transaction; returns the commit's sequence number.
fn create_empty_store(db: &Database, name: &str) -> u64 {
    let tx = db.begin_write().unwrap();
    tx.create_store(name, small_nodes()).unwrap();
    tx.commit().unwrap().seq
}

/// Checks that `store` holds exactly `expected`, by count, point reads and a full scan.
fn check_contents(db: &Database, store: &str, expected: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let tx = db.begin_read().unwrap();
    let s = tx.open_store(store).unwrap();
    assert_eq!(s.count().unwrap(), expected.len() as u64, "count of {store}");
    for (k, v) in expected {
        assert_eq!(s.get(k).unwrap().as_deref(), Some(&v[..]), "key {:?} of {store}", String::from_utf8_lossy(k));
    }
    let scanned: Vec<(Vec<u8>, Vec<u8>)> =
        s.iter().unwrap().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<sop::Result<_>>().unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = expected.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(scanned == want, "scan of {store}: {} items, expected {}", scanned.len(), want.len());
}

/// Disjoint keys never conflict: every plain `begin_write` + `commit` must succeed, no matter
/// how often the commits of different threads land in the same (constantly splitting) nodes.
#[test]
fn disjoint_writers_all_commit_without_retry() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    create_empty_store(&db, "s");
    const PER_THREAD: usize = 300;

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t as u64);
                let mut order: Vec<usize> = (0..PER_THREAD).collect();
                // Shuffle so inserts hit all parts of the tree, not only its right edge.
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.random_range(0..=i));
                }
                let mut commits = 0usize;
                let mut merged = 0usize;
                let mut rest = &order[..];
                while !rest.is_empty() {
                    let n = rng.random_range(1..=20).min(rest.len());
                    let (batch, tail) = rest.split_at(n);
                    rest = tail;
                    let tx = db.begin_write().unwrap();
                    let s = tx.open_store("s").unwrap();
                    for &i in batch {
                        assert!(s.add(&key(t, i), &value(t, i)).unwrap(), "key {i} of thread {t} was new");
                    }
                    match tx.commit() {
                        Ok(info) => merged += usize::from(info.merged),
                        Err(e) => panic!("thread {t}: commit of disjoint keys failed: {e}"),
                    }
                    commits += 1;
                }
                (commits, merged)
            })
        })
        .collect();
    let mut commits = 0;
    let mut merged = 0;
    for h in handles {
        let (c, m) = h.join().unwrap();
        commits += c;
        merged += m;
    }

    let expected: BTreeMap<_, _> =
        (0..THREADS).flat_map(|t| (0..PER_THREAD).map(move |i| (key(t, i), value(t, i)))).collect();
    check_contents(&db, "s", &expected);
    let stats = db.stats();
    println!(
        "disjoint writers: {commits} commits ({merged} reported merged), stats: {} batches, {} merges, {} conflicts, {} rebases, {:?}",
        stats.batches,
        stats.merges,
        stats.conflicts,
        stats.rebases,
        started.elapsed()
    );
    assert_eq!(stats.conflicts, 0, "disjoint keys must never conflict");
    assert!(stats.merges > 0, "concurrent commits into shared nodes should have been merged in flight");
    assert_eq!(stats.merges as usize, merged, "CommitInfo::merged agrees with Stats::merges");

    // And it is all durable.
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    check_contents(&db, "s", &expected);
}

/// The very first commits into a store created empty race each other: all threads take their
/// snapshot of the empty store, then commit at once, each splitting the (single, empty) root
/// leaf. No seeding commit is needed: all of them must succeed.
#[test]
fn racing_first_commits_into_an_empty_store() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    const ROUNDS: usize = 10;
    const PER_TXN: usize = 20; // more than slot_length: each first commit splits the root

    let mut expected: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let name = format!("fresh{round}");
        let created = create_empty_store(&db, &name);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, barrier, name) = (db.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    // Round 0..5: one big first transaction; later rounds: a few small ones.
                    let txns = if round < ROUNDS / 2 { 1 } else { 4 };
                    let per = PER_TXN / txns;
                    barrier.wait();
                    let mut pending = Vec::new();
                    for j in 0..txns {
                        let tx = db.begin_write().unwrap();
                        {
                            let s = tx.open_store(&name).unwrap();
                            // (No `count()` here: it reads the whole store and would conflict.)
                            assert_eq!(tx.snapshot_seq(), created, "every snapshot sees the empty store");
                            for i in j * per..(j + 1) * per {
                                assert!(s.add(&key(t, i), &value(t, i)).unwrap());
                            }
                        }
                        pending.push(tx);
                    }
                    // Everyone holds snapshots of the empty store now.
                    barrier.wait();
                    for tx in pending {
                        if let Err(e) = tx.commit() {
                            panic!("round {round} thread {t}: first commit failed: {e}");
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        expected.insert(name, (0..THREADS).flat_map(|t| (0..PER_TXN).map(move |i| (key(t, i), value(t, i)))).collect());
    }
    for (name, want) in &expected {
        check_contents(&db, name, want);
    }
    let stats = db.stats();
    println!(
        "racing first commits: stats {} commits, {} batches, {} merges, {} conflicts, {:?}",
        stats.commits,
        stats.batches,
        stats.merges,
        stats.conflicts,
        started.elapsed()
    );
    assert_eq!(stats.conflicts, 0);
    assert!(stats.merges > 0, "first commits into one empty root must have been merged");
}

fn decode_u64(v: Option<&[u8]>) -> u64 {
    v.map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8-byte counter")))
}

/// Read-modify-write of one hot key through the retry helper: no increment is lost.
#[test]
fn shared_counter_with_transact() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    create_empty_store(&db, "c");
    const K: u64 = 100;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..K {
                    db.transact(|tx| {
                        let s = tx.open_store("c")?;
                        let n = decode_u64(s.get(b"n")?.as_deref());
                        s.upsert(b"n", &(n + 1).to_be_bytes())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let tx = db.begin_read().unwrap();
    let n = decode_u64(tx.open_store("c").unwrap().get(b"n").unwrap().as_deref());
    let stats = db.stats();
    println!(
        "counter via transact: {n}, stats {} commits, {} conflicts, {} retries, {} batches, {:?}",
        stats.commits,
        stats.conflicts,
        stats.retries,
        stats.batches,
        started.elapsed()
    );
    assert_eq!(n, THREADS as u64 * K);
}

/// The same counter without the retry helper: every attempt is one plain begin / get / upsert /
/// commit. The final value equals the number of successful commits (no lost update, no
/// phantom increment), and with this much contention some attempts must conflict.
#[test]
fn shared_counter_without_retry_counts_exactly() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    create_empty_store(&db, "c");
    const ATTEMPTS: usize = 100;
    let successes = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, successes, conflicts, barrier) =
                (db.clone(), successes.clone(), conflicts.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..ATTEMPTS {
                    let tx = db.begin_write().unwrap();
                    {
                        let s = tx.open_store("c").unwrap();
                        let n = decode_u64(s.get(b"n").unwrap().as_deref());
                        // Widen the window between read and commit a little.
                        std::thread::yield_now();
                        s.upsert(b"n", &(n + 1).to_be_bytes()).unwrap();
                    }
                    match tx.commit() {
                        Ok(_) => {
                            successes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Conflict(_)) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("unexpected commit error: {e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let tx = db.begin_read().unwrap();
    let n = decode_u64(tx.open_store("c").unwrap().get(b"n").unwrap().as_deref());
    let (ok, conflicted) = (successes.load(Ordering::Relaxed), conflicts.load(Ordering::Relaxed));
    println!(
        "counter without retry: value {n}, {ok} successful commits, {conflicted} conflicts of {} attempts, stats.conflicts {}, {:?}",
        THREADS * ATTEMPTS,
        db.stats().conflicts,
        started.elapsed()
    );
    assert_eq!(ok + conflicted, (THREADS * ATTEMPTS) as u64);
    assert_eq!(n, ok, "the counter must equal the number of successful increments");
    assert!(conflicted > 0, "8 threads hammering one key must produce at least one Error::Conflict");
    assert_eq!(db.stats().conflicts, conflicted);
}

/// Bank transfers: writers move money between accounts, readers sum all balances in read-only
/// snapshots. Every snapshot must show the same total.
#[test]
fn bank_snapshots_are_consistent() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    const ACCOUNTS: u64 = 10;
    const START: u64 = 1_000;
    const TOTAL: u64 = ACCOUNTS * START;
    const WRITERS: usize = 4;
    const READERS: usize = 2;
    const TRANSFERS: usize = 150;
    let acct = |i: u64| format!("acct{i:02}").into_bytes();
    db.transact(|tx| {
        let s = tx.create_store("bank", small_nodes())?;
        for i in 0..ACCOUNTS {
            s.add(&acct(i), &START.to_be_bytes())?;
        }
        Ok(())
    })
    .unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (db, done) = (db.clone(), done.clone());
            std::thread::spawn(move || {
                let mut snapshots = 0u64;
                let mut seqs = std::collections::BTreeSet::new();
                // At least a few snapshots even if the writers finish first.
                while !done.load(Ordering::Relaxed) || snapshots < 5 {
                    let tx = db.begin_read().unwrap();
                    let s = tx.open_store("bank").unwrap();
                    let mut sum = 0u64;
                    let mut n = 0;
                    for item in s.iter().unwrap() {
                        let (_, v) = item.unwrap();
                        sum += decode_u64(Some(&v[..]));
                        n += 1;
                    }
                    assert_eq!(n, ACCOUNTS, "reader {r}: accounts in snapshot {}", tx.snapshot_seq());
                    assert_eq!(sum, TOTAL, "reader {r}: scan total in snapshot {}", tx.snapshot_seq());
                    // Point reads of the same snapshot agree with the scan.
                    let by_get: u64 = (0..ACCOUNTS).map(|i| decode_u64(s.get(&acct(i)).unwrap().as_deref())).sum();
                    assert_eq!(by_get, TOTAL, "reader {r}: point-read total in snapshot {}", tx.snapshot_seq());
                    seqs.insert(tx.snapshot_seq());
                    snapshots += 1;
                }
                (snapshots, seqs.len())
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(1000 + w as u64);
                for _ in 0..TRANSFERS {
                    let from = rng.random_range(0..ACCOUNTS);
                    let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    let want: u64 = rng.random_range(1..=300);
                    db.transact(|tx| {
                        let s = tx.open_store("bank")?;
                        let a = decode_u64(s.get(&acct(from))?.as_deref());
                        let b = decode_u64(s.get(&acct(to))?.as_deref());
                        let amount = want.min(a);
                        s.update(&acct(from), &(a - amount).to_be_bytes())?;
                        s.update(&acct(to), &(b + amount).to_be_bytes())?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for h in writers {
        h.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut total_snapshots = 0;
    let mut distinct = 0;
    for h in readers {
        let (n, d) = h.join().unwrap();
        total_snapshots += n;
        distinct += d;
    }
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("bank").unwrap();
    let final_sum: u64 = (0..ACCOUNTS).map(|i| decode_u64(s.get(&acct(i)).unwrap().as_deref())).sum();
    let stats = db.stats();
    println!(
        "bank: {total_snapshots} reader snapshots ({distinct} distinct per-reader seqs), {} commits, {} conflicts, {} retries, {:?}",
        stats.commits,
        stats.conflicts,
        stats.retries,
        started.elapsed()
    );
    assert_eq!(final_sum, TOTAL);
    assert_eq!(stats.commits, 1 + (WRITERS * TRANSFERS) as u64);
    assert!(distinct > READERS, "readers should have seen several different snapshots");
}
