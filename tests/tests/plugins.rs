//! The Wasm plugin host with the first-party plugins, built from `plugins/` by this crate's
//! build script: key orders against reference models, validators, compute inside
//! transactions, pinning, removal, the compile cache and tampering.

use proptest::prelude::*;
use sop::{Database, Error, KeyOrder, StoreOptions};
use sop_wasm::{Grant, HostConfig, InstallOptions, PluginError, PluginHost, PluginKind};
use std::collections::BTreeMap;

use sop_tests::plugins::{PluginEnv as Env, wasm};

fn env() -> Env {
    Env::new()
}

trait EnvExt {
    fn install(&self, name: &str, file: &str);
    fn store_with_order(&self, store: &str, plugin: &str);
    fn keys(&self, store: &str) -> Vec<Vec<u8>>;
}

impl EnvExt for Env {
    fn install(&self, name: &str, file: &str) {
        self.host.install(&self.db, name, &wasm(file), InstallOptions::default()).unwrap();
    }

    fn store_with_order(&self, store: &str, plugin: &str) {
        let order = self.host.key_order(&self.db, plugin).unwrap();
        self.db
            .transact(|tx| {
                tx.create_store(store, StoreOptions { order: order.clone(), ..Default::default() }).map(|_| ())
            })
            .unwrap();
    }

    fn keys(&self, store: &str) -> Vec<Vec<u8>> {
        let tx = self.db.begin_read().unwrap();
        tx.open_store(store).unwrap().iter().unwrap().map(|r| r.unwrap().0.to_vec()).collect()
    }
}

fn fold(s: &str) -> String {
    // The reference for the casefold plugin: full case folding of the characters these
    // tests generate (ASCII, German sharp s, Greek sigma forms).
    s.chars()
        .flat_map(|c| match c {
            'ß' => "ss".chars().collect::<Vec<_>>(),
            'ς' => vec!['σ'],
            c => c.to_lowercase().collect(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// A case-insensitive store behaves like a map keyed by the folded key that remembers
    /// the last spelling written, and iterates in folded order.
    #[test]
    fn casefold_store_matches_a_model(ops in prop::collection::vec(("[a-cA-CßσςΣ]{1,4}", any::<bool>(), 0u8..100), 1..60)) {
        let e = env();
        e.install("casefold", "casefold");
        e.store_with_order("names", "casefold");
        let mut model: BTreeMap<String, (String, u8)> = BTreeMap::new();
        for chunk in ops.chunks(7) {
            e.db.transact(|tx| {
                let s = tx.open_store("names")?;
                for (k, put, v) in chunk {
                    if *put { s.upsert(k.as_bytes(), &[*v])?; } else { s.remove(k.as_bytes())?; }
                }
                Ok(())
            }).unwrap();
            for (k, put, v) in chunk {
                if *put { model.insert(fold(k), (k.clone(), *v)); } else { model.remove(&fold(k)); }
            }
        }
        let tx = e.db.begin_read().unwrap();
        let s = tx.open_store("names").unwrap();
        let got: Vec<(String, u8)> = s.iter().unwrap().map(|r| {
            let (k, v) = r.unwrap();
            (String::from_utf8(k.to_vec()).unwrap(), v[0])
        }).collect();
        let want: Vec<(String, u8)> = model.values().cloned().collect();
        prop_assert_eq!(got, want);
        for (k, (_, v)) in &model {
            // Any spelling finds the item.
            prop_assert_eq!(s.get(k.to_uppercase().as_bytes()).unwrap().map(|b| b[0]), Some(*v));
        }
    }

    /// Descending order, prefixes included, and ranges in that order.
    #[test]
    fn descending_store_iterates_largest_first(keys in prop::collection::btree_set(prop::collection::vec(any::<u8>(), 1..6), 1..80)) {
        let e = env();
        e.install("descending", "descending");
        e.store_with_order("d", "descending");
        e.db.transact(|tx| tx.open_store("d")?.upsert_many(keys.iter().map(|k| (k.clone(), k.clone())))).unwrap();
        let want: Vec<Vec<u8>> = keys.iter().rev().cloned().collect();
        prop_assert_eq!(e.keys("d"), want.clone());
        // A range [a, b) in a descending store holds keys from a down to (not including) b.
        let (a, b) = (&want[0], &want[want.len() / 2]);
        let tx = e.db.begin_read().unwrap();
        let got: Vec<Vec<u8>> = tx.open_store("d").unwrap().range(&a[..]..&b[..]).unwrap().map(|r| r.unwrap().0.to_vec()).collect();
        prop_assert_eq!(got, want[..want.len() / 2].to_vec());
    }
}

#[test]
fn json_field_orders_by_the_id_field() {
    let e = env();
    e.install("json-field", "json-field");
    e.store_with_order("docs", "json-field");
    let keys = [
        r#"{"id":10}"#,
        r#"{"id":-3.5}"#,
        r#"{"id":"b"}"#,
        r#"{"id":2}"#,
        r#"{"id":"a","v":1}"#,
        r#"{"x":1}"#,
        r#"{"id":null}"#,
    ];
    e.db.transact(|tx| tx.open_store("docs")?.upsert_many(keys.iter().map(|k| (k.as_bytes(), b"v")))).unwrap();
    let got: Vec<String> = e.keys("docs").into_iter().map(|k| String::from_utf8(k).unwrap()).collect();
    assert_eq!(
        got,
        [
            r#"{"x":1}"#,
            r#"{"id":null}"#,
            r#"{"id":-3.5}"#,
            r#"{"id":2}"#,
            r#"{"id":10}"#,
            r#"{"id":"a","v":1}"#,
            r#"{"id":"b"}"#
        ]
    );
    // Keys the order cannot encode are rejected with the plugin's reason, and nothing changes.
    let err = e.db.transact(|tx| tx.open_store("docs")?.upsert(b"not json", b"v")).unwrap_err();
    let p = PluginError::find(&err).expect("a plugin error");
    assert!(matches!(p, PluginError::Guest { .. }), "{p:?}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert_eq!(e.keys("docs").len(), keys.len());
}

/// The example plugin of `guest-sdk/README.md` keeps its promise: keys in the order of their
/// last word, then of the whole key ("Cy Adams, Ann Lee, Bo Leeds"); a last word that is a
/// prefix of another sorts first whatever precedes it ("zoe Lee" before "Bo Leeds").
#[test]
fn last_word_orders_by_the_last_word_then_the_whole_key() {
    let e = env();
    e.install("last-word", "last-word");
    e.store_with_order("people", "last-word");
    let keys = ["Bo Leeds", "zoe Lee", "Ann Lee", "Cher", "Cy Adams"];
    e.db.transact(|tx| tx.open_store("people")?.upsert_many(keys.iter().map(|k| (k.as_bytes(), b"v")))).unwrap();
    let got: Vec<String> = e.keys("people").into_iter().map(|k| String::from_utf8(k).unwrap()).collect();
    assert_eq!(got, ["Cy Adams", "Cher", "Ann Lee", "zoe Lee", "Bo Leeds"]);
    let tx = e.db.begin_read().unwrap();
    assert!(tx.open_store("people").unwrap().get(b"zoe Lee").unwrap().is_some());
    drop(tx);
    // A key it cannot read as text is refused with its reason, and nothing changes.
    let err = e.db.transact(|tx| tx.open_store("people")?.upsert(b"\xff lee", b"v")).unwrap_err();
    assert!(matches!(PluginError::find(&err), Some(PluginError::Guest { .. })), "{err:?}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    assert_eq!(e.keys("people").len(), keys.len());
}

#[test]
fn validator_rejects_bad_writes_with_reasons_and_writes_nothing() {
    let e = env();
    e.install("json-schema", "json-schema");
    e.host.check_validator(&e.db, "json-schema").unwrap();
    e.db.transact(|tx| {
        tx.create_store("people", StoreOptions { validator: Some("json-schema".into()), ..Default::default() })
            .map(|_| ())
    })
    .unwrap();
    e.db.transact(|tx| tx.open_store("people")?.upsert(b"ada", br#"{"name":"Ada","age":36}"#)).unwrap();
    let err =
        e.db.transact(|tx| {
            let s = tx.open_store("people")?;
            s.upsert(b"bob", br#"{"name":"Bob","age":41}"#)?;
            s.upsert(b"eve", br#"{"name":"Eve"}"#)?;
            s.upsert(b"kid", br#"{"name":"Kid","age":"seven"}"#)
        })
        .unwrap_err();
    match &err {
        Error::Rejected { validator, reasons } => {
            assert_eq!(validator, "json-schema");
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert!(reasons[0].contains("eve") && reasons[0].contains("missing required field \"age\""), "{reasons:?}");
            assert!(reasons[1].contains("kid") && reasons[1].contains("integer"), "{reasons:?}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // Nothing of the rejected commit was written, not even the valid row.
    let tx = e.db.begin_read().unwrap();
    let s = tx.open_store("people").unwrap();
    assert!(s.get(b"bob").unwrap().is_none());
    assert_eq!(s.count().unwrap(), 1);
    drop(tx);
    // Removes pass the schema; stores without a validator are not checked.
    e.db.transact(|tx| tx.open_store("people")?.remove(b"ada").map(|_| ())).unwrap();
    e.db.transact(|tx| tx.create_store("free", StoreOptions::default())?.upsert(b"x", b"not json")).unwrap();
}

#[test]
fn a_store_whose_validator_is_missing_refuses_writes() {
    let e = env();
    e.db.transact(|tx| {
        tx.create_store("people", StoreOptions { validator: Some("nope".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap_err();
    // Created by a process that had the validator, then removed by force.
    e.install("json-schema", "json-schema");
    e.db.transact(|tx| {
        tx.create_store("people", StoreOptions { validator: Some("json-schema".into()), ..Default::default() })
            .map(|_| ())
    })
    .unwrap();
    assert!(matches!(e.host.remove(&e.db, "json-schema", false), Err(PluginError::InUse { .. })));
    e.host.remove(&e.db, "json-schema", true).unwrap();
    let err = e.db.transact(|tx| tx.open_store("people")?.upsert(b"a", br#"{"name":"A","age":1}"#)).unwrap_err();
    assert!(matches!(PluginError::find(&err), Some(PluginError::NotInstalled(_))), "{err:?}");
}

#[test]
fn compute_aggregates_inside_the_callers_transaction() {
    let e = env();
    let opts = InstallOptions { grants: vec![Grant::read("orders"), Grant::write("totals")], ..Default::default() };
    let info = e.host.install(&e.db, "aggregate", &wasm("aggregate"), opts).unwrap();
    assert_eq!(info.record.kind, PluginKind::Compute);
    e.db.transact(|tx| {
        let o = tx.create_store("orders", StoreOptions::default())?;
        o.upsert_many([(b"a1", &b"10"[..]), (b"a2", b"2.5"), (b"b1", b"100")])?;
        tx.create_store("totals", StoreOptions::default()).map(|_| ())
    })
    .unwrap();
    // The plugin sees the transaction's own uncommitted write and writes into it.
    let out =
        e.db.transact(|tx| {
            tx.open_store("orders")?.upsert(b"a3", b"0.5")?;
            Ok(e.host.run_in(
                tx,
                "aggregate",
                br#"{"source":"orders","target":"totals","key":"a","start":"a","end":"b"}"#,
            )?)
        })
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"count":3,"sum":13.0}"#);
    let tx = e.db.begin_read().unwrap();
    assert_eq!(tx.open_store("totals").unwrap().get(b"a").unwrap().as_deref(), Some(&br#"{"count":3,"sum":13.0}"#[..]));
    drop(tx);
    // When the caller's transaction fails, the plugin's writes go with it.
    let r: sop::Result<()> = e.db.transact(|tx| {
        e.host.run_in(tx, "aggregate", br#"{"source":"orders","target":"totals","key":"all"}"#)?;
        Err(Error::InvalidOptions("caller gives up".into()))
    });
    assert!(r.is_err());
    assert!(e.db.begin_read().unwrap().open_store("totals").unwrap().get(b"all").unwrap().is_none());
    // Its own transaction: committed.
    let out = e.host.run(&e.db, "aggregate", br#"{"source":"orders","target":"totals","key":"all"}"#).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"count":4,"sum":113.0}"#);
    // A guest error is typed and carries the guest's message.
    match e.host.run(&e.db, "aggregate", b"{}") {
        Err(PluginError::Guest { message, .. }) => assert!(message.contains("source"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_store_pins_its_order_plugin_by_hash() {
    let e = env();
    e.install("casefold", "casefold");
    e.store_with_order("names", "casefold");
    e.db.transact(|tx| tx.open_store("names")?.upsert(b"Ada", b"1")).unwrap();
    assert!(
        matches!(e.host.remove(&e.db, "casefold", false), Err(PluginError::InUse { stores, .. }) if stores == ["names"])
    );

    // Another component under the same name does not take over the store's order.
    e.host.remove(&e.db, "casefold", true).unwrap();
    e.install("casefold", "descending");
    let fresh = Database::open(e.path()).unwrap();
    let host = e.sibling_host();
    host.attach(&fresh);
    let err = fresh.begin_read().unwrap().open_store("names").err().expect("the pinned plugin is gone");
    match &err {
        Error::OrderUnavailable { store, reason, .. } => {
            assert_eq!(store, "names");
            assert!(reason.contains("no plugin"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The exact component back: the store reads again, in its order.
    host.install(&fresh, "casefold@2.0.0", &wasm("casefold"), InstallOptions::default()).unwrap();
    let tx = fresh.begin_read().unwrap();
    assert_eq!(tx.open_store("names").unwrap().get(b"ADA").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn without_a_plugin_host_a_custom_order_store_is_refused() {
    let e = env();
    e.install("casefold", "casefold");
    e.store_with_order("names", "casefold");
    let plain = Database::open(e.path()).unwrap();
    let err = plain.begin_read().unwrap().open_store("names").err().unwrap();
    assert!(matches!(err, Error::OrderUnavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("no plugin host"), "{err}");
}

#[test]
fn plugins_load_from_the_database_and_compile_once_per_node() {
    let e = env();
    e.install("casefold", "casefold");
    let order = e.host.key_order(&e.db, "casefold").unwrap();
    let KeyOrder::Custom { name, id } = &order else { panic!() };
    assert_eq!(name, "casefold@0.1.0");
    assert_eq!(id, &sop_wasm::registry::sha256_hex(&wasm("casefold")));

    // Another host with an empty cache compiles; a third with the filled cache loads.
    let cold = tempfile::tempdir().unwrap();
    let h1 = PluginHost::new(HostConfig { cache_dir: Some(cold.path().into()), ..Default::default() }).unwrap();
    assert!(!h1.prepare(&e.db, "casefold").unwrap().from_cache);
    let h2 = PluginHost::new(HostConfig { cache_dir: Some(cold.path().into()), ..Default::default() }).unwrap();
    assert!(h2.prepare(&e.db, "casefold").unwrap().from_cache);
    // A damaged cache entry is recompiled, not trusted.
    for f in std::fs::read_dir(cold.path()).unwrap() {
        std::fs::write(f.unwrap().path(), b"garbage").unwrap();
    }
    let h3 = PluginHost::new(HostConfig { cache_dir: Some(cold.path().into()), ..Default::default() }).unwrap();
    assert!(!h3.prepare(&e.db, "casefold").unwrap().from_cache);
    // Nothing compiled lands in the database folder.
    let in_db: Vec<_> = walk(e.path()).into_iter().filter(|p| p.extension().is_some_and(|x| x == "cwasm")).collect();
    assert!(in_db.is_empty(), "{in_db:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn tampered_plugin_bytes_are_refused() {
    let e = env();
    e.install("descending", "descending");
    let hash = sop_wasm::registry::sha256_hex(&wasm("descending"));
    // Someone with write access to the folder swaps a byte of the stored component.
    e.db.transact(|tx| {
        let s = tx.open_store("sop.plugin-bytes")?;
        let (k, v) = s.iter()?.next().unwrap()?;
        let mut v = v.to_vec();
        let n = v.len();
        v[n / 2] ^= 0x55;
        s.upsert(&k, &v)
    })
    .unwrap();
    let host = PluginHost::new(HostConfig { cache_dir: None, ..Default::default() }).unwrap();
    match host.prepare(&e.db, "descending") {
        Err(PluginError::HashMismatch { expected, .. }) => assert_eq!(expected, hash),
        other => panic!("{other:?}"),
    }
}

#[test]
fn installing_garbage_or_the_wrong_kind_fails_cleanly() {
    let e = env();
    let r = e.host.install(&e.db, "junk", b"\0asm not really", InstallOptions::default());
    assert!(matches!(r, Err(PluginError::Invalid(_))), "{r:?}");
    // Each refusal is one readable sentence with the cause, never a dump of bytes.
    let component_garbage = [&b"\0asm\x0d\0\x01\0"[..], &[0xff; 64]].concat();
    for (bytes, says) in [
        (&b"hello, I am a text file"[..], "not WebAssembly"),
        (b"\0asm\x01\0\0\0", "core WebAssembly module, not a component"),
        (&component_garbage, "not a usable sop plugin"),
    ] {
        let msg = e.host.install(&e.db, "junk", bytes, InstallOptions::default()).unwrap_err().to_string();
        eprintln!("{msg}");
        assert!(msg.contains(says) && !msg.contains('\n') && !msg.contains("[0") && msg.len() < 600, "{msg}");
    }
    assert!(matches!(
        e.host.install(&e.db, "bad name!", &wasm("casefold"), Default::default()),
        Err(PluginError::Invalid(_))
    ));
    e.install("json-schema", "json-schema");
    assert!(matches!(e.host.key_order(&e.db, "json-schema"), Err(PluginError::WrongKind { .. })));
    assert!(matches!(e.host.run(&e.db, "json-schema", b""), Err(PluginError::WrongKind { .. })));
    assert!(matches!(e.host.key_order(&e.db, "missing"), Err(PluginError::NotInstalled(_))));
    assert_eq!(e.host.list(&e.db).unwrap().len(), 1);
}

#[test]
fn versions_resolve_to_the_highest_and_list_shows_each() {
    let e = env();
    e.install("order@1.0.0", "casefold");
    e.install("order@1.2.0", "descending");
    e.install("order@1.10.0", "json-field");
    let KeyOrder::Custom { name, .. } = e.host.key_order(&e.db, "order").unwrap() else { panic!() };
    assert_eq!(name, "order@1.10.0");
    let KeyOrder::Custom { name, .. } = e.host.key_order(&e.db, "order@1.2.0").unwrap() else { panic!() };
    assert_eq!(name, "order@1.2.0");
    assert_eq!(e.host.list(&e.db).unwrap().len(), 3);
    assert_eq!(e.host.remove(&e.db, "order@1.10.0", false).unwrap(), ["order@1.10.0"]);
    assert_eq!(e.host.remove(&e.db, "order", false).unwrap().len(), 2);
    assert!(e.host.list(&e.db).unwrap().is_empty());
    // Components with no alias left are gone too.
    let tx = e.db.begin_read().unwrap();
    assert_eq!(tx.open_store("sop.plugins").unwrap().count().unwrap(), 0);
    assert_eq!(tx.open_store("sop.plugin-bytes").unwrap().count().unwrap(), 0);
}

/// Runs a cargo command for the SDK test, without the outer build's flags.
fn cargo(args: &[&str], dir: &std::path::Path) {
    let mut cmd = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(dir);
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "RUSTC_WRAPPER", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_plugin_builds_outside_the_workspace_from_the_packaged_sdk() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The SDK as crates.io would get it: `cargo package`, unpacked.
    let manifest = root.join("guest-sdk/Cargo.toml");
    let pkg_target = w.join("pkg");
    cargo(
        &[
            "package",
            "--offline",
            "--no-verify",
            "--allow-dirty",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--target-dir",
            pkg_target.to_str().unwrap(),
        ],
        w,
    );
    let krate = pkg_target.join("package/sop-plugin-0.1.0.crate");
    let status = std::process::Command::new("tar").arg("xzf").arg(&krate).arg("-C").arg(w).status().unwrap();
    assert!(status.success());
    assert!(w.join("sop-plugin-0.1.0/wit/plugin.wit").is_file(), "the WIT must ship inside the package");
    // A plugin crate of its own, depending on the unpacked package only.
    let app = w.join("reverse-order");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"reverse-order\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[lib]\ncrate-type = [\"cdylib\"]\n\
             [dependencies]\nsop-plugin = {{ path = {:?}, features = [\"key-order\"] }}\n\
             [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\nstrip = true\npanic = \"abort\"\n\
             [workspace]\n",
            w.join("sop-plugin-0.1.0").to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        app.join("src/lib.rs"),
        "struct Rev;\nimpl sop_plugin::KeyOrder for Rev {\n    const NAME: &'static str = \"reverse\";\n    \
         fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {\n        \
         out.extend(key.iter().map(|b| !b));\n        out.push(0xff);\n        Ok(())\n    }\n}\n\
         sop_plugin::export_key_order!(Rev);\n",
    )
    .unwrap();
    // The first-party plugins' target folder and release profile: their compiled
    // dependencies (wit-bindgen) are reused.
    let target = sop_tests::plugins::dir().join("../wasm");
    cargo(
        &[
            "build",
            "--offline",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
            target.to_str().unwrap(),
        ],
        &app,
    );
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/reverse_order.wasm")).unwrap();
    let e = env();
    e.host.install(&e.db, "reverse", &wasm, InstallOptions::default()).unwrap();
    let order = e.host.key_order(&e.db, "reverse").unwrap();
    e.db.transact(|tx| {
        let s = tx.create_store("r", StoreOptions { order: order.clone(), ..Default::default() })?;
        s.upsert_many([(&b"a"[..], &b"1"[..]), (b"c", b"3"), (b"b", b"2")])
    })
    .unwrap();
    let tx = e.db.begin_read().unwrap();
    let keys: Vec<_> = tx.open_store("r").unwrap().iter().unwrap().map(|r| r.unwrap().0.to_vec()).collect();
    assert_eq!(keys, [b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
}
