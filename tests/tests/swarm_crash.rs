//! kill -9 under load: a supervisor kills worker processes at random moments of their
//! commits and restarts them. Every worker logs each acknowledged commit (synced) before it
//! starts the next. Afterwards: no acknowledged commit is lost, no partial commit is visible,
//! nothing aborted is visible, and the tree passes `verify`.
//!
//! `SOP_KILLS` sets the number of kills (CI: 200; `just soak`: 1,000+).

use rand::Rng;
use serde_json::Value;
use sop::{Database, DbOptions};
use sop_tests::redis_server::RedisServer;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spawn(redis: &RedisServer, dir: &Path, id: u64, env: &[(&str, String)], extra: &[&str]) -> Child {
    let log = dir.join("logs").join(format!("{id}.log"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_sop-worker"));
    c.args(["--redis", &redis.url(), "--lease-ms", "1000"])
        .arg(dir.join("db"))
        .args(["append", &id.to_string(), "1000000", "12"])
        .arg(&log)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn worker")
}

fn open(redis: &RedisServer, dir: &Path) -> Database {
    let coord = sop_redis::RedisCoordinator::connect(sop_redis::RedisOptions::new(redis.url(), "sop")).unwrap();
    Database::open_with(
        dir.join("db"),
        DbOptions { coordinator: Arc::new(coord), create_if_missing: true, ..Default::default() },
    )
    .unwrap()
}

struct Logged {
    /// value -> (txn, outcome): "ok", "fail", or "" when the worker died before finishing it.
    values: HashMap<u64, (u64, String)>,
    /// txn -> its planned appended values.
    txns: HashMap<u64, Vec<u64>>,
    acked: usize,
}

fn read_logs(dir: &Path) -> Logged {
    let mut l = Logged { values: HashMap::new(), txns: HashMap::new(), acked: 0 };
    for entry in std::fs::read_dir(dir.join("logs")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // A killed worker may leave a torn last line; every complete line parses.
        for v in text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
            if let Some(t) = v["invoke"].as_u64() {
                let planned: Vec<u64> =
                    v["appends"].as_array().unwrap().iter().map(|a| a[1].as_u64().unwrap()).collect();
                for val in &planned {
                    l.values.insert(*val, (t, String::new()));
                }
                l.txns.insert(t, planned);
            } else if let Some(t) = v["id"].as_u64() {
                let outcome = v["outcome"].as_str().unwrap().to_owned();
                l.acked += usize::from(outcome == "ok");
                for val in l.txns.get(&t).cloned().unwrap_or_default() {
                    l.values.insert(val, (t, outcome.clone()));
                }
            }
        }
    }
    l
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_commit() {
    let kills_wanted: usize = std::env::var("SOP_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    drop(open(&redis, dir.path()));
    let mut rng = rand::rng();
    let mut next_id = 1u64;
    let mut kids: Vec<Child> = (0..4)
        .map(|_| {
            next_id += 1;
            spawn(&redis, dir.path(), next_id - 1, &[], &[])
        })
        .collect();
    let mut kills = 0;
    let started = Instant::now();
    while kills < kills_wanted {
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        let victims: Vec<usize> =
            if kills % 50 == 49 { (0..kids.len()).collect() } else { vec![rng.random_range(0..kids.len())] };
        for v in victims {
            let _ = kids[v].kill(); // SIGKILL
            let _ = kids[v].wait();
            kills += 1;
            next_id += 1;
            kids[v] = spawn(&redis, dir.path(), next_id - 1, &[], &[]);
        }
    }
    for mut k in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    let elapsed = started.elapsed();

    let logged = read_logs(dir.path());
    let db = open(&redis, dir.path());
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "verify after {kills} kills: {:?}", report.problems);
    let tx = db.begin_read().unwrap();
    let mut present: HashMap<u64, usize> = HashMap::new();
    for r in tx.open_store("lists").unwrap().iter().unwrap() {
        let (_, v) = r.unwrap();
        for c in v.chunks_exact(8) {
            *present.entry(u64::from_le_bytes(c.try_into().unwrap())).or_default() += 1;
        }
    }
    assert!(present.values().all(|n| *n == 1), "a value appears twice");
    // Durability: every acknowledged append is there. Nothing aborted is there.
    let mut partial_checked = 0;
    for (val, (txn, outcome)) in &logged.values {
        match outcome.as_str() {
            "ok" => assert!(present.contains_key(val), "acknowledged txn {txn:#x} lost its append {val:#x}"),
            "fail" => assert!(!present.contains_key(val), "aborted txn {txn:#x} is visible"),
            _ => partial_checked += 1,
        }
    }
    // Atomicity: a transaction killed mid-commit is all there or not there at all.
    for (txn, vals) in &logged.txns {
        let seen = vals.iter().filter(|v| present.contains_key(v)).count();
        assert!(seen == 0 || seen == vals.len(), "txn {txn:#x} is partially visible: {seen} of {}", vals.len());
    }
    // Every value in the store was written by a logged transaction.
    let known: HashSet<u64> = logged.values.keys().copied().collect();
    assert!(present.keys().all(|v| known.contains(v)), "a value from nowhere");
    assert!(logged.acked > 100, "only {} acknowledged commits", logged.acked);
    eprintln!(
        "{kills} kills in {elapsed:?}: {} acknowledged commits all present, {partial_checked} in-flight appends resolved atomically",
        logged.acked
    );
}

#[test]
fn a_dead_lease_holder_delays_others_by_at_most_the_ttl() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    drop(open(&redis, dir.path()));
    let marker = dir.path().join("holding");
    let env = [("SOP_FAILPOINTS", format!("before-publish=pause:60000:{}", marker.display()))];
    let mut holder = spawn(&redis, dir.path(), 1, &env, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the holder never reached the publish point");
        std::thread::sleep(Duration::from_millis(5));
    }
    // It holds the commit lease (TTL 1 s) with its commit file written but unpublished.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let t = Instant::now();
    let db = open(&redis, dir.path());
    let coord_ttl = Duration::from_secs(1);
    db.transact(|tx| tx.open_or_create_store("lists", Default::default())?.upsert(b"after", b"x")).unwrap();
    let waited = t.elapsed();
    // Stated bound: the lease TTL plus 2 s for process start, recovery and one commit.
    assert!(waited < coord_ttl + Duration::from_secs(2), "survivor waited {waited:?}");
    assert!(db.verify().unwrap().is_ok());
    eprintln!("survivor committed {waited:?} after the holder died");
}
