//! The commands that work on a whole database, run as a user runs them: `sop demo`,
//! `sop inspect`, `sop verify`, and the refusal to mix embedded and swarm users of a folder.

mod common;

use common::{fails, ok, plugins, row};
use sop_redis::{RedisCoordinator, RedisOptions};
use sop_tests::redis_server::RedisServer;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Runs `sop demo` on `dir` with `threads` writers of `items` each, 10 per transaction, and
/// checks its report: every item read back, every counter increment kept.
fn demo(node: &Path, dir: &Path, threads: usize, items: usize) -> String {
    let (t, n) = (threads.to_string(), items.to_string());
    let d = dir.to_str().unwrap();
    let out = ok(node, &["demo", "--threads", &t, "--items", &n, "--batch", "10", "--slot-length", "8", "--dir", d]);
    let total = threads * items;
    assert_eq!(row(&out, "items read back"), Some(format!("{total} of {total}").as_str()), "{out}");
    let increments = threads * items.div_ceil(10);
    assert_eq!(row(&out, "counter increments"), Some(format!("{increments} of {increments}").as_str()), "{out}");
    assert!(out.contains("verified: every committed item reads back"), "{out}");
    out
}

/// `sop inspect`'s table: store name to (items, plugins column).
fn inspect(node: &Path, dir: &str) -> BTreeMap<String, (u64, String)> {
    let out = ok(node, &["inspect", dir]);
    assert!(out.starts_with(&format!("database {dir} at commit ")), "{out}");
    assert!(row(&out, "commit files:").is_some(), "{out}");
    let mut lines = out.lines().skip_while(|l| !l.starts_with("store "));
    assert!(lines.next().is_some(), "no table header: {out}");
    lines
        .take_while(|l| !l.starts_with("commit files:"))
        .map(|l| {
            // name, items, height, leaves, inner, fill, slot, unique, values, then plugins.
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert!(cols.len() >= 9, "short row {l:?} in {out}");
            (cols[0].to_string(), (cols[1].parse().unwrap(), cols[9..].join(" ")))
        })
        .collect()
}

#[test]
fn demo_reads_back_every_item_it_committed() {
    let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = dir.path().join("db");
    demo(node.path(), &db, 2, 150);
    // A second run on the same folder adds to what the first left and still checks all.
    demo(node.path(), &db, 3, 40);
    let stores = inspect(node.path(), db.to_str().unwrap());
    assert_eq!(stores["demo"].0, 2 * 150 + 3 * 40);
}

#[test]
fn inspect_lists_stores_counts_and_plugins() {
    let wasm = plugins();
    let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n, d) = (node.path(), dir.path().to_str().unwrap());
    let file = |p: &str| wasm.join(format!("{p}.wasm")).to_str().unwrap().to_string();
    let installed = ok(n, &["plugin", "install", d, &file("casefold"), "--name", "casefold"]);
    let hash = installed.split("sha256 ").nth(1).and_then(|s| s.get(..12)).unwrap_or_else(|| panic!("{installed}"));
    ok(n, &["plugin", "install", d, &file("json-schema"), "--name", "people-schema"]);
    ok(
        n,
        &["store", "create", d, "people", "--order", "casefold", "--validator", "people-schema", "--slot-length", "4"],
    );
    for name in ["Ada", "bea", "Cy", "dan", "Eve"] {
        ok(n, &["put", d, "people", name, &format!(r#"{{"name":"{name}","age":1}}"#)]);
    }
    ok(n, &["store", "create", d, "empty"]);
    for k in ["a", "b", "c"] {
        ok(n, &["put", d, "plain", k, "v"]);
    }

    let stores = inspect(n, d);
    assert_eq!(stores["people"], (5, format!("order casefold@0.1.0 ({hash}), validator people-schema")));
    assert_eq!(stores["plain"], (3, String::new()));
    assert_eq!(stores["empty"], (0, String::new()));
}

#[test]
fn verify_passes_a_healthy_database_and_names_a_damaged_file() {
    let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db = dir.path().join("db");
    let d = db.to_str().unwrap();
    demo(node.path(), &db, 1, 100);
    let out = ok(node.path(), &["verify", d]);
    assert!(out.starts_with("ok: ") && out.trim_end().ends_with("no problems"), "{out}");

    // Damage one byte in the middle of the newest commit file.
    let newest = std::fs::read_dir(db.join("commits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "commit"))
        .max()
        .expect("a commit file");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();

    let report = fails(node.path(), &["verify", d]);
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(report.contains(name) && report.contains("corrupt"), "the report does not name {name}: {report}");
}

/// Opens `dir` in this process, in swarm mode through `redis` or embedded without it.
fn hold(dir: &Path, redis: Option<&RedisServer>) -> sop::Database {
    let mut o = sop::DbOptions { create_if_missing: true, ..Default::default() };
    if let Some(r) = redis {
        o.coordinator = Arc::new(RedisCoordinator::connect(RedisOptions::new(r.url(), "sop")).unwrap());
    }
    sop::Database::open_with(dir, o).unwrap()
}

#[test]
fn embedded_and_swarm_commands_refuse_a_folder_in_the_other_mode() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (n, d) = (node.path(), dir.path().to_str().unwrap());
    let put = |swarm: bool, key: &'static str| {
        let mut args = if swarm { vec!["--redis", url.as_str()] } else { vec![] };
        args.extend(["put", d, "s", key, "v"]);
        args
    };

    // A swarm user holds the folder: embedded commands are refused, swarm ones share it.
    let held = hold(dir.path(), Some(&redis));
    let err = fails(n, &put(false, "a"));
    assert!(err.contains(&format!("cannot open or create the database in {d}")), "{err}");
    assert!(err.contains("is open in cluster mode by another process"), "{err}");
    ok(n, &put(true, "b"));
    drop(held);

    // An embedded user holds it: swarm commands are refused, embedded ones share it.
    let held = hold(dir.path(), None);
    let err = fails(n, &put(true, "c"));
    assert!(err.contains("is open in embedded mode by another process"), "{err}");
    ok(n, &put(false, "d"));
    drop(held);

    // Nothing refused wrote anything.
    let scan = ok(n, &["--redis", &url, "scan", d, "s"]);
    let keys: Vec<&str> = scan.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(keys, ["b", "d"], "{scan}");
}
