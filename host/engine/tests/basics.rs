//! End-to-end behaviour of the public API on the real file system.

use sop::{Database, Error, StoreOptions, ValuePlacement};

fn opts(slot: u32, unique: bool) -> StoreOptions {
    StoreOptions { slot_length: slot, unique, ..StoreOptions::default() }
}

#[test]
fn write_reopen_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path()).unwrap();
        db.transact(|tx| {
            let s = tx.create_store("s", opts(4, true))?;
            for i in 0..500u32 {
                assert!(s.add(&i.to_be_bytes(), format!("v{i}").as_bytes())?);
            }
            assert!(!s.add(&7u32.to_be_bytes(), b"dup")?);
            Ok(())
        })
        .unwrap();
        db.transact(|tx| {
            let s = tx.open_store("s")?;
            for i in (0..500u32).step_by(2) {
                assert!(s.remove(&i.to_be_bytes())?);
            }
            Ok(())
        })
        .unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("s").unwrap();
    assert_eq!(s.count().unwrap(), 250);
    let keys: Vec<u32> = s.iter().unwrap().map(|r| u32::from_be_bytes(r.unwrap().0[..].try_into().unwrap())).collect();
    assert_eq!(keys, (1..500).step_by(2).collect::<Vec<_>>());
    let rev: Vec<u32> =
        s.iter_rev().unwrap().map(|r| u32::from_be_bytes(r.unwrap().0[..].try_into().unwrap())).collect();
    assert_eq!(rev, (1..500).step_by(2).rev().collect::<Vec<_>>());
    assert_eq!(s.get(&3u32.to_be_bytes()).unwrap().as_deref(), Some(&b"v3"[..]));
    assert_eq!(s.get(&4u32.to_be_bytes()).unwrap(), None);
}

#[test]
fn blobs_and_large_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    let big = vec![7u8; 100_000];
    db.transact(|tx| {
        let s = tx.create_store("b", StoreOptions { value_placement: ValuePlacement::Blob, ..opts(8, true) })?;
        s.add(b"small", b"x")?;
        s.add(b"big", &big)?;
        let n = tx.create_store("n", opts(8, true))?;
        n.add(b"big", &big)?;
        Ok(())
    })
    .unwrap();
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    let tx = db.begin_read().unwrap();
    assert_eq!(tx.open_store("b").unwrap().get(b"big").unwrap().unwrap().len(), 100_000);
    assert_eq!(tx.open_store("b").unwrap().get(b"small").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(tx.open_store("n").unwrap().get(b"big").unwrap().unwrap(), big);
}

#[test]
fn limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    let tx = db.begin_write().unwrap();
    let s = tx.create_store("s", StoreOptions::default()).unwrap();
    assert!(matches!(s.add(&vec![0; sop::MAX_KEY_LEN + 1], b""), Err(Error::KeyTooLarge { .. })));
    assert!(matches!(s.add(b"", b""), Err(Error::EmptyKey(_))));
    assert!(matches!(s.add(b"k", &vec![0; sop::MAX_VALUE_LEN + 1]), Err(Error::ValueTooLarge { .. })));
    assert!(matches!(tx.create_store("bad name", StoreOptions::default()), Err(Error::InvalidStoreName(_))));
    assert!(matches!(
        tx.create_store("x", StoreOptions { slot_length: 1, ..StoreOptions::default() }),
        Err(Error::InvalidOptions(_))
    ));
    assert!(matches!(tx.open_store("missing"), Err(Error::StoreNotFound(_))));
    tx.commit().unwrap();
    let r = db.begin_read().unwrap();
    assert!(matches!(r.open_store("s").unwrap().add(b"k", b"v"), Err(Error::ReadOnly)));
    assert!(matches!(Database::open(dir.path().join("nope")), Err(Error::NotADatabase(_))));
    assert!(matches!(Database::create(dir.path()), Err(Error::AlreadyExists(_))));
}

#[test]
fn uncommitted_store_is_invisible_and_concurrent_creates_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    let a = db.begin_write().unwrap();
    a.create_store("s", StoreOptions::default()).unwrap().add(b"k", b"a").unwrap();
    let b = db.begin_write().unwrap();
    assert!(!b.store_exists("s").unwrap());
    b.create_store("s", StoreOptions::default()).unwrap().add(b"k", b"b").unwrap();
    a.commit().unwrap();
    assert!(matches!(b.commit(), Err(Error::Conflict(_))));
    // Removal is transactional too.
    let c = db.begin_write().unwrap();
    c.remove_store("s").unwrap();
    assert!(db.begin_read().unwrap().store_exists("s").unwrap());
    c.commit().unwrap();
    assert!(!db.begin_read().unwrap().store_exists("s").unwrap());
}

#[test]
fn different_keys_in_one_node_merge_same_key_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    db.transact(|tx| tx.create_store("s", opts(64, true)).map(|_| ())).unwrap();
    let a = db.begin_write().unwrap();
    let b = db.begin_write().unwrap();
    a.open_store("s").unwrap().add(b"a", b"1").unwrap();
    b.open_store("s").unwrap().add(b"b", b"2").unwrap();
    a.commit().unwrap();
    let info = b.commit().unwrap();
    assert!(info.merged, "b was replayed on the node a changed");
    // Same key: exactly one wins.
    let c = db.begin_write().unwrap();
    let d = db.begin_write().unwrap();
    c.open_store("s").unwrap().upsert(b"a", b"c").unwrap();
    d.open_store("s").unwrap().upsert(b"a", b"d").unwrap();
    c.commit().unwrap();
    assert!(matches!(d.commit(), Err(Error::Conflict(_))));
    // Read then another writes what was read: the reader-writer loses.
    let e = db.begin_write().unwrap();
    let f = db.begin_write().unwrap();
    let _ = e.open_store("s").unwrap().get(b"b").unwrap();
    e.open_store("s").unwrap().upsert(b"z", b"e").unwrap();
    f.open_store("s").unwrap().upsert(b"b", b"f").unwrap();
    f.commit().unwrap();
    assert!(matches!(e.commit(), Err(Error::Conflict(_))));
    let r = db.begin_read().unwrap();
    let s = r.open_store("s").unwrap();
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"c"[..]));
    assert_eq!(s.get(b"b").unwrap().as_deref(), Some(&b"f"[..]));
    assert_eq!(s.get(b"z").unwrap(), None);
}

#[test]
fn phantom_scans_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    db.transact(|tx| tx.create_store("s", opts(8, true)).map(|_| ())).unwrap();
    let a = db.begin_write().unwrap();
    let b = db.begin_write().unwrap();
    assert_eq!(a.open_store("s").unwrap().range(&b"m"[..]..&b"n"[..]).unwrap().count(), 0);
    assert_eq!(b.open_store("s").unwrap().range(&b"m"[..]..&b"n"[..]).unwrap().count(), 0);
    a.open_store("s").unwrap().add(b"ma", b"1").unwrap();
    b.open_store("s").unwrap().add(b"mb", b"1").unwrap();
    a.commit().unwrap();
    assert!(matches!(b.commit(), Err(Error::Conflict(_))), "write skew on an empty range must not commit");
}

#[test]
fn duplicates_keep_insertion_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    db.transact(|tx| {
        let s = tx.create_store("d", opts(4, false))?;
        for i in 0..20u8 {
            s.add(b"k", &[i])?;
        }
        s.add(b"a", b"x")?;
        Ok(())
    })
    .unwrap();
    let tx = db.begin_write().unwrap();
    let s = tx.open_store("d").unwrap();
    assert_eq!(s.count().unwrap(), 21);
    let vals: Vec<u8> = s.range(&b"k"[..]..=&b"k"[..]).unwrap().map(|r| r.unwrap().1[0]).collect();
    assert_eq!(vals, (0..20).collect::<Vec<_>>());
    let mut c = s.cursor();
    assert!(c.find_last(b"k").unwrap());
    assert_eq!(c.value().unwrap().unwrap()[0], 19);
    assert!(s.remove(b"k").unwrap());
    assert_eq!(s.get(b"k").unwrap().unwrap()[0], 1);
    tx.commit().unwrap();
}

/// A coordinator that claims to span processes, to exercise mode detection without Redis.
struct FakeCluster(sop::coord::EmbeddedCoordinator);

impl sop::coord::Coordinator for FakeCluster {
    fn try_acquire(
        &self,
        name: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<sop::coord::Lease>, sop::coord::CoordError> {
        self.0.try_acquire(name, ttl)
    }
    fn acquire(
        &self,
        name: &str,
        ttl: std::time::Duration,
        wait: std::time::Duration,
    ) -> Result<Option<sop::coord::Lease>, sop::coord::CoordError> {
        self.0.acquire(name, ttl, wait)
    }
    fn renew(&self, lease: &sop::coord::Lease, ttl: std::time::Duration) -> Result<bool, sop::coord::CoordError> {
        self.0.renew(lease, ttl)
    }
    fn release(&self, lease: &sop::coord::Lease) -> Result<(), sop::coord::CoordError> {
        self.0.release(lease)
    }
    fn is_cluster(&self) -> bool {
        true
    }
}

#[test]
fn embedded_and_cluster_modes_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = || sop::DbOptions {
        coordinator: std::sync::Arc::new(FakeCluster(Default::default())),
        create_if_missing: true,
        ..Default::default()
    };
    let embedded = Database::create(dir.path()).unwrap();
    let second = Database::open(dir.path()).expect("two embedded handles may share a folder");
    assert!(matches!(Database::open_with(dir.path(), cluster()), Err(Error::ModeConflict { .. })));
    drop((embedded, second));
    let c = Database::open_with(dir.path(), cluster()).expect("cluster mode once embedded users are gone");
    assert!(matches!(Database::open(dir.path()), Err(Error::ModeConflict { .. })));
    drop(c);
    Database::open(dir.path()).expect("and back to embedded");
}

#[test]
fn scan_visits_what_range_yields() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    db.transact(|tx| {
        let s = tx.create_store("s", StoreOptions { slot_length: 4, ..StoreOptions::default() })?;
        for i in 0..300u32 {
            s.add(&i.to_be_bytes(), &vec![i as u8; if i % 50 == 0 { 5000 } else { 3 }])?;
        }
        Ok(())
    })
    .unwrap();
    let bounds = [(0u32, 300u32), (17, 18), (99, 250), (250, 99), (5, 5)];
    for write in [false, true] {
        let tx = if write { db.begin_write().unwrap() } else { db.begin_read().unwrap() };
        let s = tx.open_store("s").unwrap();
        if write {
            s.remove(&100u32.to_be_bytes()).unwrap();
            s.upsert(&1000u32.to_be_bytes(), b"new").unwrap();
        }
        for (a, b) in bounds {
            let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                s.range(&a[..]..&b[..]).unwrap().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
            let mut got = Vec::new();
            let n = s
                .scan(&a[..]..&b[..], |k, v| {
                    got.push((k.to_vec(), v.to_vec()));
                    true
                })
                .unwrap();
            assert_eq!(got, want, "write={write}");
            assert_eq!(n as usize, want.len());
        }
        let mut first = 0;
        assert_eq!(
            s.scan::<&[u8]>(.., |_, _| {
                first += 1;
                false
            })
            .unwrap(),
            1,
            "stops when asked"
        );
    }
}

#[test]
fn deletes_merge_small_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path()).unwrap();
    db.transact(|tx| {
        let s = tx.create_store("s", StoreOptions { slot_length: 16, ..StoreOptions::default() })?;
        for i in 0..2000u32 {
            s.add(&i.to_be_bytes(), b"v")?;
        }
        Ok(())
    })
    .unwrap();
    // Delete 95% of the keys, scattered, in many small transactions.
    let doomed: Vec<u32> = (0..2000u32).filter(|i| i % 20 != 0).collect();
    for chunk in doomed.chunks(37) {
        db.transact(|tx| tx.open_store("s")?.remove_many(chunk.iter().map(|i| i.to_be_bytes())).map(|_| ())).unwrap();
    }
    let report = db.inspect().unwrap();
    let s = &report.stores[0];
    assert_eq!(s.items, 100);
    // Without merging, ~100 leaves would hold one item each (fill ~6%).
    assert!(s.leaf_fill > 0.2, "leaves stay sparse after deletes: {} leaves, fill {:.2}", s.leaves, s.leaf_fill);
    assert!(db.verify().unwrap().is_ok());
}
