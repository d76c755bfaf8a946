//! `sop bench --json` end to end on a small workload: one well-formed JSON object on stdout
//! with every engine and phase. Checks shape and sanity only, never timing.

use serde_json::Value;
use std::process::Command;

const PHASES: [&str; 6] = ["insert", "read", "scan", "update", "delete", "commit1"];

#[cfg(feature = "peers")]
const ENGINES: &[&str] = &["sop", "redb", "lmdb", "fjall", "sqlite"];
#[cfg(not(feature = "peers"))]
const ENGINES: &[&str] = &["sop"];

#[test]
fn bench_json_has_every_engine_and_phase() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_sop"))
        .args(["bench", "--json", "--n", "2000", "--batch", "100", "--single", "50", "--engines"])
        .arg(ENGINES.join(","))
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run sop bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sop bench failed: {stderr}");

    // stdout is exactly one JSON object.
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let w = &v["workload"];
    assert_eq!(w["n"], 2000);
    assert_eq!(w["batch"], 100);
    assert_eq!(w["single"], 50);
    assert_eq!(w["value_size"], 100);
    assert_eq!(w["slot_length"], 64);
    assert!(v["fsync_per_s"].as_f64().is_some_and(|x| x > 0.0), "fsync_per_s: {}", v["fsync_per_s"]);

    let engines = v["engines"].as_object().expect("engines is an object");
    assert_eq!(engines.len(), ENGINES.len(), "engines: {:?}", engines.keys().collect::<Vec<_>>());
    for name in ENGINES {
        let e = engines.get(*name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(e.as_object().map(|o| o.len()), Some(PHASES.len() + 1), "{name} has other fields: {e}");
        for field in PHASES.iter().chain(&["peak_rss_mb"]) {
            let x = e[*field].as_f64();
            assert!(x.is_some_and(|x| x.is_finite() && x > 0.0), "{name}.{field} = {}", e[*field]);
        }
    }

    // The run cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(left.is_empty(), "left behind in --dir: {left:?}");
}

#[test]
fn bench_rejects_bad_flags_with_one_sentence() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_sop")).args(["bench", "--json", "--n", "0"]).output().expect("run sop bench");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("--n"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}
