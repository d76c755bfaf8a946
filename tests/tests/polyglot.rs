//! The Python and JavaScript example plugins (`plugins/polyglot/`) on the real host: a
//! validator built with componentize-py and a compute plugin built with componentize-js.
//!
//! The components are not built by cargo (the toolchains are large and come from PyPI and
//! npm), so these tests are ignored by default. To run them:
//!
//! ```text
//! plugins/polyglot/build.sh
//! cargo test --workspace -j2 --test polyglot -- --ignored --nocapture
//! ```

use sop::{Error, StoreOptions};
use sop_wasm::{Grant, InstallOptions, PluginError, PluginKind};
use std::time::Instant;

const NEEDS_BUILD: &str = "needs plugins/polyglot/build.sh (componentize-py, componentize-js)";

use sop_tests::plugins::PluginEnv as Env;

fn wasm(file: &str) -> Vec<u8> {
    let p = sop_tests::plugins::dir().join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} ({NEEDS_BUILD})", p.display()))
}

fn env() -> Env {
    Env::new()
}

trait FromCache {
    fn load_from_cache(&self, name: &str);
}

impl FromCache for Env {
    /// Loads `name` into a second host that shares the compile cache (as another process
    /// on this node would), and prints how long that took.
    /// Then loads it into this host too, so that the first call below times the first
    /// instantiation and call only.
    fn load_from_cache(&self, name: &str) {
        let other = self.sibling_host();
        let r = other.prepare(&self.db, name).unwrap();
        assert!(r.from_cache, "{name} was compiled again");
        eprintln!("{name}: load in another host from the compile cache: {:.1} ms", r.millis);
        assert!(self.host.prepare(&self.db, name).unwrap().from_cache);
    }
}

/// Runs `f`, and prints how long it took.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    eprintln!("{what}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    r
}

#[test]
#[ignore = "needs plugins/polyglot/build.sh (componentize-py, componentize-js)"]
fn python_validator_accepts_decimals_and_rejects_the_rest() {
    let e = env();
    let bytes = wasm("py-validator.wasm");
    eprintln!("py-validator.wasm: {} KiB", bytes.len() / 1024);
    // The default validator limits (1 s, 32 MiB) are enough: measured, one commit needs about
    // 12.3 MiB of linear memory (a 12 MiB cap fails, 14 MiB passes) and 3-4 ms.
    let info = timed("py-validator: install (compile, no cache)", || {
        // componentize-py imports clocks, random numbers and sockets.
        let opts = InstallOptions { nondeterministic: true, ..Default::default() };
        e.host.install(&e.db, "decimals", &bytes, opts).unwrap()
    });
    assert_eq!(info.record.kind, PluginKind::Validator);
    e.load_from_cache("decimals");
    e.db.transact(|tx| {
        tx.create_store("prices", StoreOptions { validator: Some("decimals".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap();

    // Good values commit (the first commit instantiates the component for the first time).
    timed("py-validator: first call (commit of 4 good writes)", || {
        e.db.transact(|tx| {
            let s = tx.open_store("prices")?;
            for (k, v) in [("a", "12"), ("b", "0.5"), ("c", "0"), ("d", "007.250")] {
                s.upsert(k.as_bytes(), v.as_bytes())?;
            }
            Ok(())
        })
        .unwrap()
    });
    timed("py-validator: second call (commit of 1 good write)", || {
        e.db.transact(|tx| tx.open_store("prices")?.upsert(b"e", b"1")).unwrap()
    });

    // One reason per bad write, each naming the store and the key; the good write of the
    // same commit is not written either.
    let bad: [(&str, &[u8]); 7] = [
        ("neg", b"-1"),
        ("word", b"twelve"),
        ("empty", b""),
        ("exp", b"1e3"),
        ("nan", b"nan"),
        ("spaced", b" 12"),
        ("binary", b"\xff\xfe1"),
    ];
    let err = timed("py-validator: rejecting call", || {
        e.db.transact(|tx| {
            let s = tx.open_store("prices")?;
            s.upsert(b"fine", b"3.25")?;
            for (k, v) in bad {
                s.upsert(k.as_bytes(), v)?;
            }
            Ok(())
        })
        .unwrap_err()
    });
    match &err {
        Error::Rejected { validator, reasons } => {
            assert_eq!(validator, "decimals");
            assert_eq!(reasons.len(), bad.len(), "{reasons:#?}");
            for (k, _) in bad {
                let hits: Vec<_> = reasons.iter().filter(|r| r.contains(&format!("key '{k}'"))).collect();
                assert_eq!(hits.len(), 1, "no single reason names {k:?}: {reasons:#?}");
                assert!(hits[0].contains("'prices'"), "{hits:?}");
            }
            assert!(reasons.iter().any(|r| r.contains("not UTF-8")), "{reasons:#?}");
            assert!(!reasons.iter().any(|r| r.contains("'fine'")), "{reasons:#?}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let tx = e.db.begin_read().unwrap();
    let s = tx.open_store("prices").unwrap();
    assert_eq!(s.count().unwrap(), 5);
    assert!(s.get(b"fine").unwrap().is_none());
    assert!(s.get(b"neg").unwrap().is_none());
    drop(tx);

    // Removes always pass.
    e.db.transact(|tx| {
        let s = tx.open_store("prices")?;
        s.remove(b"a")?;
        s.remove(b"never-written")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(e.db.begin_read().unwrap().open_store("prices").unwrap().count().unwrap(), 4);
}

#[test]
#[ignore = "needs plugins/polyglot/build.sh (componentize-py, componentize-js)"]
fn js_compute_counts_items_and_value_bytes() {
    let e = env();
    let bytes = wasm("js-compute.wasm");
    eprintln!("js-compute.wasm: {} KiB", bytes.len() / 1024);
    // The default compute limits (1 s, 64 MiB) are enough: measured, a call needs about
    // 9.1 MiB of linear memory (a 9 MiB cap fails, 10 MiB passes) and 4-60 ms.
    let opts = InstallOptions { grants: vec![Grant::read("src"), Grant::write("out")], ..Default::default() };
    let info =
        timed("js-compute: install (compile, no cache)", || e.host.install(&e.db, "stats", &bytes, opts).unwrap());
    assert_eq!(info.record.kind, PluginKind::Compute);
    e.load_from_cache("stats");

    // More items than one batch of the plugin (512), values of many lengths.
    let items: Vec<(Vec<u8>, Vec<u8>)> =
        (0..1300u32).map(|i| (format!("k{i:05}").into_bytes(), vec![b'x'; (i % 97) as usize])).collect();
    let want_bytes: usize = items.iter().map(|(_, v)| v.len()).sum();
    e.db.transact(|tx| {
        tx.create_store("src", StoreOptions::default())?.upsert_many(items.iter().map(|(k, v)| (&k[..], &v[..])))?;
        tx.create_store("out", StoreOptions::default()).map(|_| ())
    })
    .unwrap();

    let input = br#"{"source":"src","target":"out","key":"all"}"#;
    let out = timed("js-compute: first call (1300 items)", || e.host.run(&e.db, "stats", input).unwrap());
    let want = format!(r#"{{"count":{},"bytes":{want_bytes}}}"#, items.len());
    assert_eq!(String::from_utf8(out).unwrap(), want);
    let out = timed("js-compute: second call (1300 items)", || e.host.run(&e.db, "stats", input).unwrap());
    assert_eq!(String::from_utf8(out).unwrap(), want);
    // Its write committed with the transaction `run` made.
    let tx = e.db.begin_read().unwrap();
    assert_eq!(tx.open_store("out").unwrap().get(b"all").unwrap().as_deref(), Some(want.as_bytes()));
    drop(tx);

    // Inside the caller's transaction: it sees the caller's uncommitted writes, and its own
    // write commits with them.
    let out =
        e.db.transact(|tx| {
            let s = tx.open_store("src")?;
            s.upsert(b"new", b"12345")?;
            s.remove(b"k00000")?;
            Ok(e.host.run_in(tx, "stats", br#"{"source":"src","target":"out","key":"later"}"#)?)
        })
        .unwrap();
    let later = format!(r#"{{"count":{},"bytes":{}}}"#, items.len(), want_bytes + 5);
    assert_eq!(String::from_utf8(out).unwrap(), later);
    let tx = e.db.begin_read().unwrap();
    assert_eq!(tx.open_store("out").unwrap().get(b"later").unwrap().as_deref(), Some(later.as_bytes()));
    drop(tx);

    // An empty store.
    e.db.transact(|tx| tx.create_store("empty", StoreOptions::default()).map(|_| ())).unwrap();
    e.host.remove(&e.db, "stats", false).unwrap();
    // "gone" is granted but does not exist.
    let opts = InstallOptions {
        grants: vec![Grant::read("empty"), Grant::write("out"), Grant::write("gone")],
        ..Default::default()
    };
    e.host.install(&e.db, "stats", &bytes, opts).unwrap();
    let out = e.host.run(&e.db, "stats", br#"{"source":"empty","target":"out","key":"none"}"#).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"count":0,"bytes":0}"#);

    // Errors come back as the guest's string: bad input, and a storage error from the host.
    for (input, needle) in [
        (&b"not json"[..], "input is not JSON"),
        (br#"{"source":"empty"}"#, "\"target\""),
        (br#"{"source":"empty","target":"gone","key":"k"}"#, "invalid-input"),
    ] {
        match e.host.run(&e.db, "stats", input) {
            Err(PluginError::Guest { message, .. }) => assert!(message.contains(needle), "{message}"),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
    // A store it was not granted: denied by the host, and nothing written.
    let r = e.host.run(&e.db, "stats", br#"{"source":"src","target":"out","key":"nope"}"#);
    assert!(matches!(r, Err(PluginError::Denied { .. })), "{r:?}");
    assert!(e.db.begin_read().unwrap().open_store("out").unwrap().get(b"nope").unwrap().is_none());
}
