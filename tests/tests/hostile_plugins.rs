//! Hostile plugins: each is contained within its deadline with a typed error, its
//! transaction rolls back, and the next operation on the same database works.
//!
//! The guests are in `plugins/hostile/` (built for tests only, never installed for real).

use sop::{Error, StoreOptions};
use sop_wasm::{Grant, InstallOptions, Limits, PluginError, PluginKind};
use std::time::{Duration, Instant};

/// The deadline these tests configure.
const DEADLINE_MS: u64 = 100;
/// What "contained" allows on a loaded 2-core CI machine: the deadline plus the epoch tick
/// and scheduling noise. The measured stop time is printed.
const CONTAINED: Duration = Duration::from_millis(DEADLINE_MS + 400);

use sop_tests::plugins::{PluginEnv as Env, wasm};

/// A database whose plugins get the deadline these tests configure, and two stores.
fn env() -> Env {
    let e = Env::with(|config| {
        for kind in [PluginKind::KeyOrder, PluginKind::Validator, PluginKind::Compute] {
            config.default_limits.insert(kind, Limits { deadline_ms: DEADLINE_MS, ..Limits::default_for(kind) });
        }
    });
    e.db.transact(|tx| {
        tx.create_store("public", StoreOptions::default())?.upsert(b"k", b"v")?;
        tx.create_store("secret", StoreOptions::default())?.upsert(b"k", b"v")
    })
    .unwrap();
    e
}

trait Hostile {
    fn hostile_compute(&self, grants: Vec<Grant>, limits: Option<Limits>);
    fn run(&self, input: &str) -> (Error, Duration);
    fn assert_untouched(&self);
}

impl Hostile for Env {
    fn hostile_compute(&self, grants: Vec<Grant>, limits: Option<Limits>) {
        self.host.install(&self.db, "hostile", &wasm("hostile-compute"), InstallOptions { grants, limits }).unwrap();
    }

    /// Runs the hostile compute plugin inside a transaction that also writes, and returns
    /// the plugin error, how long it took, and checks the transaction left nothing behind.
    fn run(&self, input: &str) -> (Error, Duration) {
        let t = Instant::now();
        let r = self.db.transact(|tx| {
            tx.open_store("public")?.upsert(b"caller", b"wrote")?;
            Ok(self.host.run_in(tx, "hostile", input.as_bytes())?)
        });
        let took = t.elapsed();
        let err = r.expect_err("the hostile call must fail");
        assert!(PluginError::find(&err).is_some(), "not a plugin error: {err:?}");
        self.assert_untouched();
        (err, took)
    }

    /// Nothing from failed transactions is visible, and the database still works.
    fn assert_untouched(&self) {
        let tx = self.db.begin_read().unwrap();
        for k in [&b"caller"[..], b"ok", b"defaced", b"half"] {
            assert!(tx.open_store("public").unwrap().get(k).unwrap().is_none(), "{}", String::from_utf8_lossy(k));
        }
        assert!(tx.open_store("secret").unwrap().get(b"stolen").unwrap().is_none());
        drop(tx);
        self.db.transact(|tx| tx.open_store("public")?.upsert(b"after", b"fine")).unwrap();
        self.db.transact(|tx| tx.open_store("public")?.remove(b"after").map(|_| ())).unwrap();
    }
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let (err, took) = e.run("loop");
    let err = PluginError::find(&err).unwrap();
    eprintln!("infinite loop stopped after {took:?}");
    assert!(matches!(err, PluginError::Timeout { deadline_ms: DEADLINE_MS, .. }), "{err:?}");
    assert!(took >= Duration::from_millis(DEADLINE_MS), "stopped before its deadline: {took:?}");
    assert!(took < CONTAINED, "took {took:?}");
    // The plugin itself still works for honest input afterwards.
    assert_eq!(e.host.run(&e.db, "hostile", b"echo").unwrap(), b"echo");
}

#[test]
fn a_memory_bomb_hits_its_cap() {
    let e = env();
    let limits = Limits { memory_bytes: 8 << 20, ..Limits::default_for(PluginKind::Compute) };
    e.hostile_compute(vec![Grant::write("public")], Some(Limits { deadline_ms: DEADLINE_MS, ..limits }));
    let (err, took) = e.run("bomb");
    let err = PluginError::find(&err).unwrap();
    eprintln!("memory bomb stopped after {took:?}: {err}");
    assert!(matches!(err, PluginError::MemoryLimit { cap, .. } if *cap == 8 << 20), "{err:?}");
    assert!(took < CONTAINED, "took {took:?}");
}

#[test]
fn a_trap_is_a_typed_error() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let (err, _) = e.run("trap");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
}

#[test]
fn a_huge_output_is_refused() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let (err, _) = e.run("huge");
    let err = PluginError::find(&err).unwrap();
    assert!(
        matches!(err, PluginError::OutputTooLarge { len, cap, .. } if *len == 8 << 20 && *cap == 4 << 20),
        "{err:?}"
    );
}

#[test]
fn writing_a_store_not_granted_is_denied_and_rolled_back() {
    let e = env();
    // Granted "public" (read-write) only; it writes "public", then tries "secret".
    e.hostile_compute(vec![Grant::write("public")], None);
    let (err, _) = e.run("rogue");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Denied { detail, .. } if detail.contains("secret")), "{err:?}");
    // Read-only grant: the write is refused.
    e.host.remove(&e.db, "hostile", false).unwrap();
    e.hostile_compute(vec![Grant::read("public")], None);
    let (err, _) = e.run("rogue-write");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Denied { detail, .. } if detail.contains("read-only")), "{err:?}");
}

#[test]
fn a_guest_error_after_writes_rolls_them_back() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let (err, _) = e.run("write-then-fail");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Guest { message, .. } if message.contains("gave up")), "{err:?}");
}

#[test]
fn a_host_call_flood_hits_its_cap() {
    let e = env();
    let limits = Limits { host_calls: 1000, deadline_ms: 5000, ..Limits::default_for(PluginKind::Compute) };
    e.hostile_compute(vec![Grant::write("public")], Some(limits));
    let (err, _) = e.run("flood");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::HostCallLimit { cap: 1000, .. }), "{err:?}");
}

#[test]
fn a_codec_that_does_not_preserve_order_is_refused_at_install() {
    let e = env();
    let r = e.host.install(&e.db, "bad", &wasm("bad-order"), InstallOptions::default());
    match r {
        Err(PluginError::NotOrderPreserving { detail, .. }) => eprintln!("refused: {detail}"),
        other => panic!("{other:?}"),
    }
    assert!(e.host.list(&e.db).unwrap().is_empty());
}

#[test]
fn a_key_order_that_misbehaves_fails_the_operation_and_nothing_else() {
    let e = env();
    e.host.install(&e.db, "hostile-order", &wasm("hostile-order"), InstallOptions::default()).unwrap();
    let order = e.host.key_order(&e.db, "hostile-order").unwrap();
    e.db.transact(|tx| tx.create_store("h", StoreOptions { order: order.clone(), ..Default::default() }).map(|_| ()))
        .unwrap();
    e.db.transact(|tx| tx.open_store("h")?.upsert(b"fine", b"1")).unwrap();
    let attempt = |key: &[u8]| {
        let t = Instant::now();
        let r = e.db.transact(|tx| {
            let s = tx.open_store("h")?;
            s.upsert(b"also-fine", b"2")?;
            s.upsert(key, b"x")
        });
        (r.expect_err("must fail"), t.elapsed())
    };
    let (err, took) = attempt(b"loop-forever");
    eprintln!("key-order loop stopped after {took:?}");
    assert!(matches!(PluginError::find(&err), Some(PluginError::Timeout { .. })), "{err:?}");
    assert!(took < CONTAINED, "took {took:?}");
    let (err, _) = attempt(b"trap");
    assert!(matches!(PluginError::find(&err), Some(PluginError::Trap { .. })), "{err:?}");
    let (err, _) = attempt(b"bomb");
    assert!(matches!(PluginError::find(&err), Some(PluginError::MemoryLimit { .. })), "{err:?}");
    // A sort key longer than any key may be is refused by the engine.
    let (err, _) = attempt(b"huge");
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err:?}");
    // Batched writes fail as a whole.
    let r = e.db.transact(|tx| tx.open_store("h")?.upsert_many([(&b"ok-1"[..], &b"1"[..]), (b"trap", b"2")]));
    assert!(matches!(PluginError::find(&r.unwrap_err()), Some(PluginError::Trap { .. })));
    // Only the honest item is there, and the store keeps working.
    let tx = e.db.begin_read().unwrap();
    let keys: Vec<_> = tx.open_store("h").unwrap().iter().unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, [&b"fine"[..]]);
    drop(tx);
    e.db.transact(|tx| tx.open_store("h")?.upsert(b"later", b"3")).unwrap();
}

#[test]
fn a_validator_that_loops_or_traps_fails_the_commit() {
    let e = env();
    e.host.install(&e.db, "hv", &wasm("hostile-validator"), InstallOptions::default()).unwrap();
    e.db.transact(|tx| {
        tx.create_store("v", StoreOptions { validator: Some("hv".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap();
    for (value, want) in [("loop", "timeout"), ("trap", "trap"), ("reject", "rejected")] {
        let t = Instant::now();
        let err =
            e.db.transact(|tx| {
                let s = tx.open_store("v")?;
                s.upsert(b"good", b"ok")?;
                s.upsert(b"bad", value.as_bytes())
            })
            .unwrap_err();
        let took = t.elapsed();
        eprintln!("validator {value}: {took:?}: {err}");
        let got = match (&err, PluginError::find(&err)) {
            (Error::Rejected { .. }, _) => "rejected",
            (_, Some(PluginError::Timeout { .. })) => "timeout",
            (_, Some(PluginError::Trap { .. })) => "trap",
            _ => panic!("{err:?}"),
        };
        assert_eq!(got, want);
        assert!(took < CONTAINED, "took {took:?}");
        assert_eq!(e.db.begin_read().unwrap().open_store("v").unwrap().count().unwrap(), 0);
    }
    e.db.transact(|tx| tx.open_store("v")?.upsert(b"good", b"ok")).unwrap();
    assert_eq!(e.db.begin_read().unwrap().open_store("v").unwrap().count().unwrap(), 1);
    // Reinstalling the same component with other limits applies them at once.
    let limits = Limits { deadline_ms: 300, ..Limits::default_for(PluginKind::Validator) };
    e.host
        .install(&e.db, "hv", &wasm("hostile-validator"), InstallOptions { grants: vec![], limits: Some(limits) })
        .unwrap();
    let err = e.db.transact(|tx| tx.open_store("v")?.upsert(b"bad", b"loop")).unwrap_err();
    assert!(matches!(PluginError::find(&err), Some(PluginError::Timeout { deadline_ms: 300, .. })), "{err:?}");
}
