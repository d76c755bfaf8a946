//! One test per way the commit protocol used to depend on timing (issue "Nothing lost,
//! whatever the timing"). Each simulates two processes as two handles on one `SimVfs`, with
//! unshared (embedded) coordinators, so nothing but the files connects them.

use sop::vfs::{SimVfs, Vfs};
use sop::{Database, DbOptions, Error, StoreOptions};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Duration;

fn open(vfs: &SimVfs) -> Database {
    open_with_ratio(vfs, 0.5)
}

fn open_with_ratio(vfs: &SimVfs, compact_dead_ratio: f64) -> Database {
    Database::open_with(
        "/db",
        DbOptions {
            vfs: Arc::new(vfs.clone()),
            create_if_missing: true,
            reclaim_grace: Duration::ZERO,
            compact_min_bytes: 0,
            checkpoint_every: 1_000_000,
            compact_dead_ratio,
            ..DbOptions::default()
        },
    )
    .unwrap()
}

fn put(db: &Database, key: &[u8], value: &[u8]) -> sop::Result<()> {
    db.transact(|tx| tx.open_or_create_store("s", StoreOptions::default())?.upsert(key, value).map(|_| ()))
}

fn get(db: &Database, key: &[u8]) -> sop::Result<Option<Vec<u8>>> {
    let tx = db.begin_read()?;
    let s = tx.open_store("s")?;
    Ok(s.get(key)?.map(|v| v.to_vec()))
}

/// Rewrites every key many times and checkpoints, so every older commit file is dead,
/// covered and reclaimed.
fn churn(db: &Database, rounds: u32) {
    for i in 0..rounds {
        put(db, b"k", format!("v{i}").as_bytes()).unwrap();
    }
    db.maintain().unwrap();
}

fn commit_names(vfs: &SimVfs) -> Vec<String> {
    let mut n = vfs.list_dir(Path::new("/db/commits")).unwrap();
    n.sort();
    n
}

#[test]
fn an_idle_process_catches_up_past_reclaimed_files() {
    let vfs = SimVfs::new();
    let (a, b) = (open(&vfs), open(&vfs));
    put(&a, b"k", b"first").unwrap();
    assert_eq!(get(&b, b"k").unwrap().as_deref(), Some(&b"first"[..]));
    // `b` sleeps while `a` commits, checkpoints and reclaims the file after `b`'s state.
    churn(&a, 20);
    assert!(!commit_names(&vfs).iter().any(|n| n.starts_with("00000000000000000002")), "commit 2 was reclaimed");
    assert_eq!(get(&b, b"k").unwrap().as_deref(), Some(&b"v19"[..]), "no stale read after idling");
    put(&b, b"k", b"from b").unwrap();
    assert_eq!(get(&a, b"k").unwrap().as_deref(), Some(&b"from b"[..]));
}

#[test]
fn an_old_snapshot_never_reads_another_file_under_a_reused_number() {
    let vfs = SimVfs::new();
    let (a, b) = (open(&vfs), open(&vfs));
    put(&a, b"k", b"old").unwrap();
    let old_file = commit_names(&vfs).pop().unwrap();
    let snap = b.begin_read().unwrap(); // holds commit 1, has opened no file yet
    churn(&a, 20);
    assert!(!commit_names(&vfs).contains(&old_file), "the old file was reclaimed");
    // A paused writer publishes a (void) file under the reclaimed number: copy a live
    // commit file there, as a structurally valid file with another identity.
    let newest = commit_names(&vfs).pop().unwrap();
    let bytes = vfs.open(&Path::new("/db/commits").join(&newest)).unwrap().read_all().unwrap();
    let f = vfs.create_new(&Path::new("/db/commits").join(&old_file)).unwrap();
    f.write_at(&bytes, 0).unwrap();
    let r = snap.open_store("s").and_then(|s| s.get(b"k"));
    assert!(matches!(r, Err(Error::SnapshotTooOld(_))), "expected SnapshotTooOld, got {r:?}");
}

#[test]
fn a_paused_writer_cannot_publish_into_a_reclaimed_number() {
    let vfs = SimVfs::new();
    let (a, b) = (open(&vfs), open(&vfs));
    put(&a, b"k", b"0").unwrap();
    put(&a, b"other", b"0").unwrap();
    let _ = get(&b, b"k").unwrap();
    // `b` prepares a commit on its current state and finds no checkpoint above it, then
    // pauses right before publishing while `a` uses the next numbers, checkpoints and
    // reclaims them.
    let (a2, vfs2) = (a.clone(), vfs.clone());
    let mut once = Some(move || {
        churn(&a2, 20);
        let names = commit_names(&vfs2);
        assert!(!names.iter().any(|n| n.starts_with("00000000000000000003")), "commit 3 was reclaimed: {names:?}");
    });
    sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
        if point == "publish-checked"
            && let Some(f) = once.take()
        {
            f();
        }
    })));
    let tx = b.begin_write().unwrap();
    tx.open_store("s").unwrap().upsert(b"other", b"from the paused writer").unwrap();
    let r = tx.commit();
    sop::failpoint::set_thread_hook(None);
    // Its number was used and reclaimed: its file is void, so the commit must not report Ok
    // unless it was really applied (after a rebase).
    if let Err(e) = &r {
        assert!(e.is_retryable(), "expected a retryable error, got {e}");
    }
    let applied = r.is_ok();
    let fresh = open(&vfs);
    assert_eq!(get(&fresh, b"k").unwrap().as_deref(), Some(&b"v19"[..]));
    let other = get(&fresh, b"other").unwrap();
    assert_eq!(other.as_deref() == Some(&b"from the paused writer"[..]), applied, "Ok if and only if applied");
    assert!(fresh.verify().unwrap().is_ok());
}

#[test]
fn a_retransmitted_link_is_recognised_as_our_own_commit() {
    let vfs = SimVfs::new();
    let db = open(&vfs);
    put(&db, b"k", b"1").unwrap();
    vfs.echo_next_link();
    let r = db.begin_write().and_then(|tx| {
        tx.open_store("s")?.upsert(b"k", b"2")?;
        tx.commit()
    });
    assert!(r.is_ok(), "the commit landed; it must report Ok, got {r:?}");
    assert_eq!(get(&open(&vfs), b"k").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn dropping_and_recreating_a_store_still_validates_what_was_read_before() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_or_create(dir.path()).unwrap();
    put(&db, b"n", b"1").unwrap();
    let t1 = db.begin_write().unwrap();
    let n = t1.open_store("s").unwrap().get(b"n").unwrap().unwrap();
    t1.remove_store("s").unwrap();
    let s = t1.create_store("s", StoreOptions::default()).unwrap();
    s.add(b"n", &[n[0] + 1]).unwrap();
    put(&db, b"n", b"5").unwrap(); // a concurrent update of what t1 read
    let r = t1.commit();
    assert!(matches!(r, Err(Error::Conflict(_))), "lost update: {r:?}");
}

#[test]
fn listing_the_stores_conflicts_with_a_concurrent_creation() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_or_create(dir.path()).unwrap();
    let (t1, t2) = (db.begin_write().unwrap(), db.begin_write().unwrap());
    // Each creates a store only if there is none yet (write skew if both commit).
    for (t, name) in [(&t1, "a"), (&t2, "b")] {
        assert!(t.store_names().unwrap().is_empty());
        t.create_store(name, StoreOptions::default()).unwrap();
    }
    t1.commit().unwrap();
    let r = t2.commit();
    assert!(matches!(r, Err(Error::Conflict(_))), "write skew on the catalog: {r:?}");
}

#[test]
fn a_checkpoint_never_mixes_one_state_with_another_states_accounting() {
    // Finding 1, made deterministic: while a checkpoint is being taken (after it read the
    // state), another thread of the same process installs a newer commit by another process.
    // The checkpoint must describe one commit; a process that later loads it must find its
    // accounting equal to what its registry references.
    let dir = tempfile::tempdir().unwrap();
    let opts =
        || DbOptions { create_if_missing: true, reclaim_grace: Duration::from_secs(3600), ..DbOptions::default() };
    let writer = Database::open_with(dir.path(), opts()).unwrap();
    let reader = Database::open_with(dir.path(), opts()).unwrap();
    writer
        .transact(|tx| {
            let s = tx.create_store("s", StoreOptions { slot_length: 4, ..StoreOptions::default() })?;
            (0..64u32).try_for_each(|i| s.add(format!("k{i:02}").as_bytes(), b"0").map(|_| ()))
        })
        .unwrap();
    let _ = get(&reader, b"k00").unwrap();
    let (w, r) = (writer.clone(), reader.clone());
    let mut once = Some(move || {
        // Another process commits a change to one leaf of the big file...
        put(&w, b"k17", b"1").unwrap();
        // ...and another thread of this process catches up on it, now.
        let t = std::thread::spawn(move || r.begin_read().map(|_| ()));
        let deadline = std::time::Instant::now() + Duration::from_millis(300);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        t
    });
    let caught_up = Arc::new(parking_lot::Mutex::new(None));
    let slot = caught_up.clone();
    sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
        if point == "checkpoint-state"
            && let Some(f) = once.take()
        {
            *slot.lock() = Some(f());
        }
    })));
    reader.maintain().unwrap();
    sop::failpoint::set_thread_hook(None);
    caught_up.lock().take().expect("the checkpoint was taken").join().unwrap().unwrap();
    let loader = Database::open_with(dir.path(), opts()).unwrap();
    let report = loader.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(get(&loader, b"k17").unwrap().as_deref(), Some(&b"1"[..]));
}

// Finding 7 inside one process (from an independent review): while one thread's catch-up has
// read a paused writer's void file, other threads must neither begin on it nor build on it.

/// Runs W's commit (base = seq 2) with: P drops store x as commit 3 (no live records),
/// checkpoints and reclaims it before W publishes; W then publishes a void file 3 and,
/// before W's verdict, `during_void` runs.
fn paused_writer_publishes_void(
    vfs: &SimVfs,
    p: &Database,
    w: &Database,
    during_void: Box<dyn FnOnce()>,
) -> sop::Result<sop::CommitInfo> {
    let (p2, vfs2) = (p.clone(), vfs.clone());
    let mut before = Some(move || {
        p2.transact(|tx| tx.remove_store("x")).unwrap();
        p2.maintain().unwrap();
        let names = commit_names(&vfs2);
        assert!(!names.iter().any(|n| n.starts_with("00000000000000000003")), "commit 3 reclaimed: {names:?}");
    });
    let mut after = Some(during_void);
    sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
        let step = match point {
            "publish-checked" => before.take().map(|f| Box::new(f) as Box<dyn FnOnce()>),
            "after-publish" => after.take(),
            _ => None,
        };
        if let Some(f) = step {
            f();
        }
    })));
    let tx = w.begin_write().unwrap();
    tx.open_store("s").unwrap().upsert(b"other", b"from the paused writer").unwrap();
    let r = tx.commit();
    sop::failpoint::set_thread_hook(None);
    r
}

fn setup() -> (SimVfs, Database, Database, Database) {
    let vfs = SimVfs::new();
    let (p, w, r) = (open_with_ratio(&vfs, 2.0), open(&vfs), open(&vfs));
    put(&p, b"k", b"0").unwrap(); // 1
    p.transact(|tx| tx.create_store("x", StoreOptions::default()).map(|_| ())).unwrap(); // 2
    assert_eq!(get(&r, b"k").unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(get(&w, b"k").unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(r.stats().last_seq, 2);
    (vfs, p, w, r)
}

/// Spawns a thread that runs `r.begin_read()` and parks at the first vfs call after its
/// catch-up installed the (void) commit 3, i.e. before the checkpoint check.
fn park_catch_up(r: &Database) -> (std::thread::JoinHandle<()>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (installed_tx, installed_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r_t = r.clone();
    let t = std::thread::spawn(move || {
        let r_h = r_t.clone();
        let mut armed = true;
        sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
            if armed && point == "vfs" && r_h.stats().last_seq == 3 {
                armed = false;
                installed_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            }
        })));
        let _ = r_t.begin_read();
        sop::failpoint::set_thread_hook(None);
    });
    (t, installed_rx, go_tx)
}

/// Runs `f` while another thread of `r` is parked inside a catch-up, then lets it finish.
fn while_catching_up(r: &Database, f: impl FnOnce()) {
    let (t, installed, go) = park_catch_up(r);
    installed.recv().unwrap();
    f();
    go.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn a_concurrent_begin_never_snapshots_a_void_commit() {
    let (vfs, p, w, r) = setup();
    let seen = Arc::new(parking_lot::Mutex::new(None));
    let seen2 = seen.clone();
    let r2 = r.clone();
    let res = paused_writer_publishes_void(
        &vfs,
        &p,
        &w,
        Box::new(move || {
            while_catching_up(&r2, || {
                let tx = r2.begin_read().unwrap();
                let other = tx.open_store("s").unwrap().get(b"other").unwrap().map(|v| v.to_vec());
                let names = tx.store_names().unwrap();
                *seen2.lock() = Some((tx.snapshot_seq(), other, names));
            })
        }),
    );
    let (seq, other, names) = seen.lock().take().unwrap();
    assert!(other.is_none() || res.is_ok(), "a reader saw a write that was never committed");
    assert!(!names.iter().any(|n| n == "x") || seq < 3, "snapshot at 3 still has the store dropped by commit 3");
}

#[test]
fn a_leader_never_builds_on_a_void_commit() {
    let (vfs, p, w, r) = setup();
    // L: a commit in process r that pauses right after its catch-up (state 2).
    let (at_base_tx, at_base_rx) = mpsc::channel::<()>();
    let (go_l_tx, go_l_rx) = mpsc::channel::<()>();
    let r_l = r.clone();
    let l = std::thread::spawn(move || {
        let mut armed = true;
        sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
            if armed && point == "leader-base" {
                armed = false;
                at_base_tx.send(()).unwrap();
                go_l_rx.recv().unwrap();
            }
        })));
        let tx = r_l.begin_write().unwrap();
        tx.open_store("s").unwrap().upsert(b"l", b"from L").unwrap();
        let res = tx.commit();
        sop::failpoint::set_thread_hook(None);
        res
    });
    at_base_rx.recv().unwrap();
    let r2 = r.clone();
    let _ = paused_writer_publishes_void(
        &vfs,
        &p,
        &w,
        Box::new(move || {
            while_catching_up(&r2, || {
                go_l_tx.send(()).unwrap(); // L takes its base now, then blocks on the apply lock
                std::thread::sleep(Duration::from_millis(300));
            })
        }),
    );
    let l_res = l.join().unwrap();
    let fresh = Database::open_with("/db", DbOptions { vfs: Arc::new(vfs.clone()), ..DbOptions::default() });
    if l_res.is_ok() {
        let fresh = fresh.expect("an acknowledged commit left the database unopenable");
        assert_eq!(get(&fresh, b"l").unwrap().as_deref(), Some(&b"from L"[..]));
    }
}

/// A coordinator that never grants the commit lease: its process always finds it taken, so
/// it offers its batches to others (cross-process group commit).
struct AlwaysTaken;

impl sop::coord::Coordinator for AlwaysTaken {
    fn try_acquire(&self, _: &str, _: Duration) -> Result<Option<sop::coord::Lease>, sop::coord::CoordError> {
        Ok(None)
    }
    fn acquire(&self, _: &str, _: Duration, _: Duration) -> Result<Option<sop::coord::Lease>, sop::coord::CoordError> {
        Ok(None)
    }
    fn renew(&self, _: &sop::coord::Lease, _: Duration) -> Result<bool, sop::coord::CoordError> {
        Ok(false)
    }
    fn release(&self, _: &sop::coord::Lease) -> Result<(), sop::coord::CoordError> {
        Ok(())
    }
}

/// Waits until some process has offered a batch.
fn wait_for_offer(vfs: &SimVfs) {
    while vfs.list_dir(Path::new("/db/pending")).unwrap().iter().all(|n| !n.ends_with(".batch")) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn open_offering(vfs: &SimVfs, lease_ttl: Duration) -> Database {
    Database::open_with(
        "/db",
        DbOptions {
            vfs: Arc::new(vfs.clone()),
            coordinator: Arc::new(AlwaysTaken),
            lease_ttl,
            checkpoint_every: 1_000_000,
            ..DbOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn an_offered_batch_commits_once_inside_another_process_commit() {
    let vfs = SimVfs::new();
    let a = open(&vfs);
    put(&a, b"seed", b"0").unwrap();
    // B never gets the lease within its patience: only A's commits can decide its batch.
    let b = open_offering(&vfs, Duration::from_secs(3600));
    let committer = std::thread::spawn(move || {
        let r = b.transact(|tx| {
            let s = tx.open_store("s")?;
            let v = s.get(b"seed")?.map(|v| v.to_vec()).unwrap_or_default();
            s.upsert(b"from-b", &v).map(|_| ())
        });
        (r, b.stats())
    });
    wait_for_offer(&vfs);
    put(&a, b"from-a", b"1").unwrap();
    let (r, b_stats) = committer.join().unwrap();
    r.unwrap();
    let sa = a.stats();
    assert_eq!((sa.adopted, b_stats.contributed, b_stats.commits, b_stats.batches), (1, 1, 1, 0));
    assert_eq!(get(&a, b"from-b").unwrap().as_deref(), Some(&b"0"[..]));
    // One commit file holds both transactions, and nothing is left offered.
    assert_eq!(commit_names(&vfs).len(), 2);
    put(&a, b"again", b"2").unwrap();
    assert_eq!(a.stats().adopted, 1, "a decided batch is never included again");
    assert!(vfs.list_dir(Path::new("/db/pending")).unwrap().iter().all(|n| !n.ends_with(".batch")));
}

#[test]
fn an_offered_batch_that_conflicts_is_rejected_on_the_chain_and_reported() {
    let vfs = SimVfs::new();
    let a = open(&vfs);
    put(&a, b"k", b"0").unwrap();
    let b = open_offering(&vfs, Duration::from_secs(3600));
    // B reads k at its snapshot, then A changes k before anyone commits B's batch.
    let tx = b.begin_write().unwrap();
    let s = tx.open_store("s").unwrap();
    assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"0"[..]));
    s.upsert(b"derived", b"from 0").unwrap();
    put(&a, b"k", b"1").unwrap();
    let committer = std::thread::spawn(move || {
        let r = tx.commit();
        (r, b)
    });
    wait_for_offer(&vfs);
    put(&a, b"other", b"x").unwrap();
    let (r, _b) = committer.join().unwrap();
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
    assert_eq!(get(&a, b"derived").unwrap(), None);
}
