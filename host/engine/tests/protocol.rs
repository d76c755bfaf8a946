//! One test per way the commit protocol used to depend on timing (issue "Nothing lost,
//! whatever the timing"). Each simulates two processes as two handles on one `SimVfs`, with
//! unshared (embedded) coordinators, so nothing but the files connects them.

use sop::vfs::{SimVfs, Vfs};
use sop::{Database, DbOptions, Error, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn open(vfs: &SimVfs) -> Database {
    Database::open_with(
        "/db",
        DbOptions {
            vfs: Arc::new(vfs.clone()),
            create_if_missing: true,
            reclaim_grace: Duration::ZERO,
            compact_min_bytes: 0,
            checkpoint_every: 1_000_000,
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
    // `b` prepares a commit on its current state, then pauses right before publishing while
    // `a` uses the next numbers, checkpoints and reclaims them.
    let (a2, vfs2) = (a.clone(), vfs.clone());
    let mut once = Some(move || {
        churn(&a2, 20);
        let names = commit_names(&vfs2);
        assert!(!names.iter().any(|n| n.starts_with("00000000000000000003")), "commit 3 was reclaimed: {names:?}");
    });
    sop::failpoint::set_thread_hook(Some(Box::new(move |point| {
        if point == "before-publish"
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
