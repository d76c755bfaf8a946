//! `sop bench --json` and `sop bench swarm --json` end to end on small workloads: one
//! well-formed JSON object on stdout with the documented keys. Checks shape and sanity only,
//! never timing.

mod common;

use common::{fails, ok};
use serde_json::Value;
use sop_tests::redis_server::RedisServer;

const PHASES: [&str; 6] = ["insert", "read", "scan", "update", "delete", "commit1"];

#[cfg(feature = "peers")]
const ENGINES: &[&str] = &["sop", "redb", "lmdb", "fjall", "sqlite"];
#[cfg(not(feature = "peers"))]
const ENGINES: &[&str] = &["sop"];

/// Parses stdout, which must be exactly one JSON object.
fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

fn is_rate(x: &Value) -> bool {
    x.as_f64().is_some_and(|x| x.is_finite() && x > 0.0)
}

fn assert_empty(dir: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(dir).expect("read dir").collect();
    assert!(left.is_empty(), "left behind in --dir: {left:?}");
}

#[test]
fn bench_json_has_every_engine_and_phase() {
    let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let engines = ENGINES.join(",");
    let d = dir.path().to_str().unwrap();
    let args =
        ["bench", "--json", "--n", "2000", "--batch", "100", "--single", "50", "--engines", &engines, "--dir", d];
    let v = json(&ok(node.path(), &args));
    let w = &v["workload"];
    assert_eq!(w["n"], 2000);
    assert_eq!(w["batch"], 100);
    assert_eq!(w["single"], 50);
    assert_eq!(w["value_size"], 100);
    assert_eq!(w["slot_length"], 64);
    assert!(is_rate(&v["fsync_per_s"]), "fsync_per_s: {}", v["fsync_per_s"]);

    let engines = v["engines"].as_object().expect("engines is an object");
    assert_eq!(engines.len(), ENGINES.len(), "engines: {:?}", engines.keys().collect::<Vec<_>>());
    for name in ENGINES {
        let e = engines.get(*name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(e.as_object().map(|o| o.len()), Some(PHASES.len() + 1), "{name} has other fields: {e}");
        for field in PHASES.iter().chain(&["peak_rss_mb"]) {
            assert!(is_rate(&e[*field]), "{name}.{field} = {}", e[*field]);
        }
    }
    // The run cleans up after itself.
    assert_empty(dir.path());
}

#[test]
fn bench_rejects_bad_flags_with_one_sentence() {
    let node = tempfile::tempdir().unwrap();
    let printed = fails(node.path(), &["bench", "--json", "--n", "0"]);
    // stdout comes first in what `fails` returns: it is empty.
    assert!(printed.starts_with("error: ") && printed.contains("--n"), "{printed}");
}

#[test]
fn bench_swarm_json_has_a_run_per_process_count() {
    let redis = RedisServer::start();
    // Without Redis the processes share the folder alone; with it, they coordinate (the
    // documented setup).
    for url in [None, Some(redis.url())] {
        let (node, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut args = url.as_deref().map_or(vec![], |u| vec!["--redis", u]);
        let d = dir.path().to_str().unwrap();
        args.extend(["bench", "swarm", "--json", "--procs", "1,2", "--threads", "2", "--items", "30", "--dir", d]);
        let v = json(&ok(node.path(), &args));
        assert_eq!(v["workload"], "uniform", "{v}");
        let runs = v["runs"].as_array().unwrap_or_else(|| panic!("no runs: {v}"));
        let procs: Vec<u64> = runs.iter().map(|r| r["procs"].as_u64().unwrap()).collect();
        assert_eq!(procs, [1, 2], "{v}");
        for r in runs {
            // The documented keys stay; later ones (offer_batches, commit_files) only add.
            let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
            for k in ["procs", "commits_per_s", "items_per_s", "merges", "conflicts"] {
                assert!(keys.contains(&k), "{k} missing: {r}");
            }
            assert!(r["offer_batches"].is_boolean() && r["commit_files"].is_u64(), "{r}");
            assert!(is_rate(&r["commits_per_s"]) && is_rate(&r["items_per_s"]), "{r}");
            assert!(r["merges"].is_u64() && r["conflicts"].is_u64(), "{r}");
        }
        assert_empty(dir.path());
    }
}
