//! Crash consistency: for every write and sync point of a commit (and of the checkpoint,
//! compaction and reclamation work that follows it), simulate a power cut that drops, keeps
//! or tears the unsynced writes, reopen, and check that the database equals exactly the state
//! before the commit or exactly the state after it — and the state after it whenever the
//! commit had returned `Ok`.

use sop::vfs::{CrashMode, SimVfs};
use sop::{Database, DbOptions, Error, StoreOptions, ValuePlacement};
use sop_tests::{Contents, dump};
use std::sync::Arc;
use std::time::Duration;

const ROOT: &str = "/db";

fn open(fs: &SimVfs) -> sop::Result<Database> {
    Database::open_with(
        ROOT,
        DbOptions {
            vfs: Arc::new(fs.clone()),
            create_if_missing: true,
            checkpoint_every: 3,
            compact_min_bytes: 0,
            compact_dead_ratio: 0.3,
            reclaim_grace: Duration::ZERO,
            ..DbOptions::default()
        },
    )
}

/// One step of the workload: a transaction over two stores (one with blob values).
fn step(db: &Database, i: u32) -> sop::Result<()> {
    let tx = db.begin_write()?;
    let a = tx.open_or_create_store("a", StoreOptions { slot_length: 4, ..StoreOptions::default() })?;
    let b = tx.open_or_create_store(
        "b",
        StoreOptions {
            slot_length: 4,
            unique: false,
            value_placement: ValuePlacement::Blob,
            ..StoreOptions::default()
        },
    )?;
    for j in 0..12u32 {
        let k = (i * 7 + j * 13) % 40;
        if (i + j).is_multiple_of(5) {
            a.remove(&k.to_be_bytes())?;
        } else {
            a.upsert(&k.to_be_bytes(), format!("v{i}-{j}").as_bytes())?;
        }
    }
    b.add(&(i % 3).to_be_bytes(), &vec![i as u8; 300 + i as usize])?;
    if i % 4 == 3 {
        b.remove(&((i + 1) % 3).to_be_bytes())?;
    }
    if i == 5 {
        tx.create_store("c", StoreOptions::default())?.add(b"x", b"y")?;
    }
    if i == 7 {
        tx.remove_store("c")?;
    }
    tx.commit().map(|_| ())
}

/// Rewrites one hot key: every commit supersedes the last, so commit files die, are
/// reclaimed after each checkpoint.
fn hot_step(db: &Database, i: u32) -> sop::Result<()> {
    let tx = db.begin_write()?;
    let h = tx.open_or_create_store("hot", StoreOptions::default())?;
    h.upsert(&[(i % 2) as u8], &vec![i as u8; 64 + i as usize])?;
    tx.commit().map(|_| ())
}

type Step = fn(&Database, u32) -> sop::Result<()>;

/// Whether `err` is the power cut `SimVfs` simulates (every operation after the crash point
/// fails with "simulated crash"), reported directly or as the handle's poison. Any other
/// error is a bug, not the crash.
fn is_simulated_crash(err: &Error) -> bool {
    const CRASH: &str = "simulated crash";
    match err {
        Error::Io { source, .. } => source.to_string() == CRASH,
        Error::Poisoned(why) => why.ends_with(CRASH),
        _ => false,
    }
}

/// The states after 0..=n steps, computed on a fault-free file system.
fn expected_states(step: Step, n: u32) -> Vec<Contents> {
    let fs = SimVfs::new();
    let db = open(&fs).unwrap();
    let mut out = vec![dump(&db).unwrap()];
    for i in 0..n {
        step(&db, i).unwrap();
        out.push(dump(&db).unwrap());
    }
    out
}

const PRE: u32 = 4;
const MORE: u32 = 5;

#[test]
fn every_crash_point_recovers_to_a_commit_boundary() {
    crash_points(step, PRE, MORE);
}

#[test]
fn every_crash_point_recovers_while_files_are_compacted_and_reclaimed() {
    crash_points(hot_step, 8, 10);
}

fn crash_points(step: Step, pre: u32, more: u32) {
    let states = expected_states(step, pre + more);

    // A durable base state.
    let base = SimVfs::new();
    {
        let db = open(&base).unwrap();
        for i in 0..pre {
            step(&db, i).unwrap();
        }
    }
    // Acknowledged commits must survive losing everything unsynced.
    let durable = base.crash_image(CrashMode::DropUnsynced, 0);
    assert_eq!(dump(&open(&durable).unwrap()).unwrap(), states[pre as usize]);

    // Count the operations of the remaining workload.
    let probe = base.crash_image(CrashMode::KeepAll, 0);
    let total_ops = {
        let db = open(&probe).unwrap();
        let start = probe.op_count();
        for i in pre..pre + more {
            step(&db, i).unwrap();
        }
        probe.op_count() - start
    };
    assert!(total_ops > 20, "the workload should have many crash points, has {total_ops}");

    let mut crashes = 0;
    let mut checked = 0;
    for k in 0..=total_ops {
        let fs = base.crash_image(CrashMode::KeepAll, 0);
        let db = open(&fs).unwrap();
        let start = fs.op_count();
        fs.crash_after(k);
        let mut acked = pre;
        for i in pre..pre + more {
            match step(&db, i) {
                Ok(()) => acked = i + 1,
                Err(e) if is_simulated_crash(&e) => break,
                Err(e) => panic!("crash point {k}: step {i} failed, and not because of the crash: {e:?}"),
            }
        }
        if fs.is_crashed() {
            crashes += 1;
            // Once the file system failed, the handle must refuse further work.
            match step(&db, 99) {
                Err(e) if is_simulated_crash(&e) => {}
                r => panic!("crash point {k}: a write after the crash gave {r:?}"),
            }
        } else {
            // Op counts vary a little between runs (random node ids change record sizes, and
            // with them when compaction is due), so a point may lie past this run's end; one
            // inside it must fire.
            let ran = fs.op_count() - start;
            assert!(ran <= k, "crash point {k}: the run made {ran} operations, yet the crash never fired");
            assert_eq!(acked, pre + more, "crash point {k}: no crash, yet not every step was acknowledged");
        }
        drop(db);
        let modes = [
            (CrashMode::DropUnsynced, 0),
            (CrashMode::KeepAll, 0),
            (CrashMode::Torn, k),
            (CrashMode::Torn, k ^ 0x5555),
        ];
        for (mode, seed) in modes {
            let image = fs.crash_image(mode, seed);
            let db = open(&image).unwrap_or_else(|e| panic!("crash point {k} {mode:?}: reopen failed: {e}"));
            let got = dump(&db).unwrap_or_else(|e| panic!("crash point {k} {mode:?}: read failed: {e}"));
            // The in-flight commit may or may not have landed; nothing acknowledged is lost
            // and no partial commit is visible.
            let ok = got == states[acked as usize] || (acked < pre + more && got == states[acked as usize + 1]);
            assert!(
                ok,
                "crash point {k} {mode:?}: recovered state is not the state after commit {acked} (or the next)"
            );
            // The recovered database accepts new commits.
            step(&db, 50).unwrap_or_else(|e| panic!("crash point {k} {mode:?}: commit after recovery failed: {e}"));
            checked += 1;
        }
    }
    // Most points the dry run counted lie inside each run (see above): a crash injection that
    // stopped working would leave this far below.
    assert!(crashes * 4 >= total_ops * 3, "only {crashes} of {total_ops} crash points fired");
    eprintln!("checked {checked} crash images over {total_ops} crash points");
}

#[test]
fn failed_fsync_poisons_the_handle_and_reopen_recovers() {
    let states = expected_states(step, PRE + 1);
    let fs = SimVfs::new();
    let db = open(&fs).unwrap();
    for i in 0..PRE {
        step(&db, i).unwrap();
    }
    fs.fail_next_sync();
    let err = step(&db, PRE).unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "expected Poisoned, got {err:?}");
    assert!(matches!(db.begin_write(), Err(Error::Poisoned(_))));
    drop(db);
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepAll, CrashMode::Torn] {
        let db = open(&fs.crash_image(mode, 3)).unwrap();
        // The failed commit was never acknowledged: its data never became durable.
        assert_eq!(dump(&db).unwrap(), states[PRE as usize], "{mode:?}");
    }
}
