//! The storage swarm with real processes and a real Redis: every worker process is a master
//! writing into one folder, coordinating only through short-lived leases in Redis.

use sop::{Database, DbOptions, Error};
use sop_tests::redis_server::RedisServer;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Worker {
    /// The swarm's Redis; `None` for an embedded worker.
    redis: Option<String>,
    dir: std::path::PathBuf,
    extra: Vec<String>,
}

impl Worker {
    fn new(redis: &RedisServer, dir: &Path) -> Worker {
        Worker { redis: Some(redis.url()), dir: dir.to_path_buf(), extra: Vec::new() }
    }

    fn embedded(dir: &Path) -> Worker {
        Worker { redis: None, dir: dir.to_path_buf(), extra: Vec::new() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sop-worker"));
        if let Some(url) = &self.redis {
            c.args(["--redis", url]);
        }
        c.args(&self.extra).arg(&self.dir).args(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn spawn_env(&self, args: &[&str], env: &[(&str, String)]) -> Child {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("spawn worker")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.spawn_env(args, &[])
    }

    /// A worker that keeps the database open until the returned guard is dropped.
    fn hold(&self) -> Held {
        let mut child = self.command(&["hold"]).stdin(Stdio::piped()).spawn().expect("spawn worker");
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read");
        assert_eq!(line.trim(), "holding", "the holding worker did not open the database");
        Held(Some(child))
    }
}

/// Ends its worker's hold (by closing its stdin) when dropped.
struct Held(Option<Child>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

/// Runs a worker that must be refused because the folder is in use in `other` mode.
fn refused(w: &Worker, other: &str) {
    let out = w.spawn(&["incr", "1"]).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a worker opened a folder in {other} use: {err}");
    assert!(err.contains(&format!("open in {other} mode by another process")), "unclear refusal: {err}");
}

/// Waits for a worker; returns (commits, conflicts, merges, successes).
fn finish(c: Child) -> (u64, u64, u64, u64) {
    let out = c.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "worker failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let n: Vec<u64> = stdout.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    (n[0], n[1], n[2], n[3])
}

fn open(redis: &RedisServer, dir: &Path) -> Database {
    try_open(redis, dir).unwrap()
}

fn try_open(redis: &RedisServer, dir: &Path) -> sop::Result<Database> {
    let coord = sop_redis::RedisCoordinator::connect(sop_redis::RedisOptions::new(redis.url(), "sop")).unwrap();
    Database::open_with(
        dir,
        DbOptions { coordinator: Arc::new(coord), create_if_missing: true, ..DbOptions::default() },
    )
}

fn counter(db: &Database) -> u64 {
    let v = db.begin_read().unwrap().open_store("s").unwrap().get(b"c").unwrap().unwrap();
    u64::from_le_bytes(v[..8].try_into().unwrap())
}

#[test]
fn processes_merge_into_a_new_store_with_tiny_nodes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(&redis, dir.path());
    let (k, n) = (4u64, 400u64);
    // Slot length 4: concurrent splits, root splits and removals under contention.
    let kids: Vec<_> = (0..k).map(|id| w.spawn(&["insert", &id.to_string(), &n.to_string(), "4", "4"])).collect();
    let merges: u64 = kids.into_iter().map(|c| finish(c).2).sum();
    let db = open(&redis, dir.path());
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("s").unwrap();
    assert_eq!(s.count().unwrap(), k * n);
    for id in 0..k {
        for j in 0..n {
            assert!(s.get(&(id * 1_000_000 + j).to_be_bytes()).unwrap().is_some(), "worker {id} key {j} lost");
        }
    }
    let report = db.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    eprintln!("{merges} commits merged in flight across {k} processes");
}

#[test]
fn same_key_conflicts_lose_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(&redis, dir.path());
    // Without the retry helper: losers see Conflict; the value counts exactly the winners.
    let kids: Vec<_> = (0..4).map(|_| w.spawn(&["incr", "60", "noretry"])).collect();
    let (mut wins, mut conflicts) = (0, 0);
    for c in kids {
        let r = finish(c);
        wins += r.3;
        conflicts += r.1;
    }
    let db = open(&redis, dir.path());
    assert_eq!(counter(&db), wins);
    assert!(conflicts > 0, "four processes incrementing one key must conflict");
    drop(db);
    // With the retry helper every increment lands.
    let kids: Vec<_> = (0..4).map(|_| w.spawn(&["incr", "40"])).collect();
    kids.into_iter().for_each(|c| {
        finish(c);
    });
    assert_eq!(counter(&open(&redis, dir.path())), wins + 160);
}

#[test]
fn phantom_inserts_into_an_empty_range_at_most_once() {
    for planted in [false, true] {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut w = Worker::new(&redis, dir.path());
        if planted {
            w.extra.push("--skip-validation".into());
        }
        let kids: Vec<_> = (0..4).map(|id| w.spawn(&["phantom", &id.to_string(), "150"])).collect();
        kids.into_iter().for_each(|c| {
            finish(c);
        });
        let db = open(&redis, dir.path());
        let tx = db.begin_read().unwrap();
        let s = tx.open_store("p").unwrap();
        let mut doubled = 0;
        for r in 0..150u64 {
            let n = s.range(&(r * 1000).to_be_bytes()[..]..&((r + 1) * 1000).to_be_bytes()[..]).unwrap().count();
            assert!(n >= 1, "range {r} got no insert at all");
            doubled += usize::from(n > 1);
        }
        if planted {
            // Proof that the check can fail: without read validation, write skew gets through.
            assert!(doubled > 0, "the planted bug (no validation) went unnoticed");
        } else {
            assert_eq!(doubled, 0, "{doubled} ranges got two inserts: a phantom slipped through");
        }
    }
}

#[test]
fn redis_down_fails_fast_and_recovers_on_its_own() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&redis, dir.path());
    db.transact(|tx| tx.create_store("s", Default::default()).map(|_| ())).unwrap();
    redis.kill();
    let t = Instant::now();
    let r = db.transact(|tx| tx.open_store("s")?.upsert(b"k", b"v"));
    assert!(matches!(r, Err(Error::Coordinator(_))), "expected a coordinator error, got {r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "failing took {:?}", t.elapsed());
    // Reads never need the coordinator.
    assert!(db.begin_read().unwrap().open_store("s").unwrap().get(b"k").unwrap().is_none());
    redis.restart();
    db.transact(|tx| tx.open_store("s")?.upsert(b"k", b"v")).unwrap();
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn redis_restart_mid_run_loses_nothing() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let w = Worker::new(&redis, dir.path());
    let kids: Vec<_> = (0..3).map(|_| w.spawn(&["incr", "150"])).collect();
    std::thread::sleep(Duration::from_millis(300));
    redis.kill(); // every lease vanishes; commits fail cleanly until it is back
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let mut unavailable = 0;
    for c in kids {
        unavailable += finish(c).1;
    }
    // Workers retry an increment that failed with "coordinator unavailable": had any such
    // failure left a partial write, or had any acknowledged increment been lost, the total
    // would differ.
    let db = open(&redis, dir.path());
    assert_eq!(counter(&db), 450);
    assert!(db.verify().unwrap().is_ok());
    eprintln!("{unavailable} commits failed cleanly while Redis was down");
}

#[test]
fn paused_lease_holder_cannot_clobber() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut w = Worker::new(&redis, dir.path());
    w.extra = vec!["--lease-ms".into(), "500".into()];
    // Create the counter first.
    finish(w.spawn(&["incr", "1"]));
    let marker = dir.path().join("paused");
    let env = [("SOP_FAILPOINTS", format!("before-publish=pause:300:{}", marker.display()))];
    let holder = w.spawn_env(&["incr", "1", "noretry"], &env);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the holder never reached the publish point");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The holder has its commit file written and holds the lease: freeze it past the TTL.
    let pid = holder.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let t = Instant::now();
    let other = finish(w.spawn(&["incr", "1", "noretry"]));
    assert_eq!(other.3, 1, "the other process must commit while the holder is frozen");
    assert!(t.elapsed() < Duration::from_secs(5), "the expired lease held the other writer for {:?}", t.elapsed());
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let stale = finish(holder);
    assert_eq!(stale.3, 0, "the stale holder's read-modify-write must be rejected, not applied");
    let db = open(&redis, dir.path());
    assert_eq!(counter(&db), 2, "exactly the two acknowledged increments");
    assert!(db.verify().unwrap().is_ok());
}

/// Reads every JSON line of the workers' logs.
fn log_lines(paths: &[std::path::PathBuf]) -> Vec<serde_json::Value> {
    paths
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

#[test]
fn bank_snapshots_always_sum_to_the_total() {
    const TOTAL: i64 = 10_000;
    for planted in [false, true] {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut w = Worker::new(&redis, dir.path());
        finish(w.spawn(&["bank-init", "8", &TOTAL.to_string()]));
        if planted {
            w.extra.push("--skip-validation".into());
        }
        let logs: Vec<_> = (0..4).map(|i| dir.path().join(format!("bank-{i}.log"))).collect();
        let kids: Vec<_> =
            (0..4).map(|i| w.spawn(&["bank", &i.to_string(), "250", logs[i].to_str().unwrap()])).collect();
        let committed: u64 = kids.into_iter().map(|c| finish(c).3).sum();
        let snaps: Vec<Vec<i64>> = log_lines(&logs)
            .iter()
            .filter_map(|v| v["snap"].as_array().map(|a| a.iter().filter_map(|x| x.as_i64()).collect()))
            .collect();
        let db = open(&redis, dir.path());
        let tx = db.begin_read().unwrap();
        let fin: Vec<i64> = tx
            .open_store("bank")
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| i64::from_le_bytes(r.unwrap().1[..8].try_into().unwrap()))
            .collect();
        let torn = snaps.iter().chain(std::iter::once(&fin)).filter(|s| s.iter().sum::<i64>() != TOTAL).count();
        if planted {
            assert!(torn > 0, "the planted bug (no validation) lost no money: the check is blind");
        } else {
            assert!(snaps.len() >= 200, "only {} snapshots", snaps.len());
            assert_eq!(torn, 0, "{torn} snapshots (of {}) do not sum to {TOTAL}", snaps.len() + 1);
            assert!(fin.iter().all(|b| *b >= 0));
            assert!(db.verify().unwrap().is_ok());
            eprintln!("{committed} transfers committed, {} snapshots all sum to {TOTAL}", snaps.len());
        }
    }
}

/// Runs the list-append workload and returns the Elle-style report.
fn list_append(procs: u64, txns: u64, keys: u64, planted: bool) -> sop_tests::checker::Report {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut w = Worker::new(&redis, dir.path());
    if planted {
        w.extra.push("--skip-validation".into());
    }
    let logs: Vec<_> = (0..procs).map(|i| dir.path().join(format!("append-{i}.log"))).collect();
    let kids: Vec<_> = (0..procs)
        .map(|i| {
            w.spawn(&[
                "append",
                &(i + 1).to_string(),
                &txns.to_string(),
                &keys.to_string(),
                logs[i as usize].to_str().unwrap(),
            ])
        })
        .collect();
    kids.into_iter().for_each(|c| {
        finish(c);
    });
    let history = sop_tests::checker::load_history_files(&logs).unwrap();
    assert_eq!(history.len() as u64, procs * txns);
    let db = open(&redis, dir.path());
    assert!(db.verify().unwrap().is_ok());
    // Session order too: a process must see its own earlier commits (worker ids grow).
    let opts = sop_tests::checker::CheckOptions { process_order: true, ..Default::default() };
    sop_tests::checker::check_list_append_with(&history, &opts)
}

#[test]
fn list_append_histories_are_serializable() {
    // ≥ 4 processes and ≥ 10,000 transactions, on few keys so they contend.
    let report = list_append(4, 2_500, 16, false);
    assert!(report.anomalies.is_empty(), "anomalies: {:#?}", &report.anomalies[..report.anomalies.len().min(5)]);
    eprintln!("list-append: {} transactions checked, no G0/G1/G2 anomaly", report.txns_checked);
}

#[test]
fn list_append_checker_catches_a_planted_bug() {
    let report = list_append(4, 300, 4, true);
    assert!(!report.anomalies.is_empty(), "the checker missed the planted bug (commits without validation)");
}

#[test]
fn embedded_and_swarm_users_of_one_folder_exclude_each_other() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (swarm, embedded) = (Worker::new(&redis, dir.path()), Worker::embedded(dir.path()));
    let mode_conflict = |r: sop::Result<Database>, other: &str| match r {
        Err(Error::ModeConflict { other: o, .. }) if o == other => {}
        Err(e) => panic!("expected a mode conflict with {other} use, got {e:?}"),
        Ok(_) => panic!("opened a folder in {other} use"),
    };

    // An embedded process has the folder open: swarm users are refused, embedded ones share it.
    {
        let _held = embedded.hold();
        refused(&swarm, "embedded");
        mode_conflict(try_open(&redis, dir.path()), "embedded");
        finish(embedded.spawn(&["incr", "1"]));
    }
    // A swarm process has it open: embedded users are refused, swarm ones share it.
    {
        let _held = swarm.hold();
        refused(&embedded, "cluster");
        mode_conflict(Database::open(dir.path()), "cluster");
        finish(swarm.spawn(&["incr", "1"]));
    }
    // Once both are gone, the same files serve either mode.
    assert_eq!(counter(&open(&redis, dir.path())), 2);
    assert_eq!(counter(&Database::open(dir.path()).unwrap()), 2);
}

/// Plugins in the swarm: processes coordinating through Redis all load the key order and
/// the validator from the database, merge writes to one custom-order store, and reject bad
/// rows; one process installed the plugins, none of the others had them.
#[test]
fn processes_share_plugins_from_the_database() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = open(&redis, dir.path());
    let host = sop_wasm::PluginHost::new(Default::default()).unwrap();
    host.attach(&db);
    let plugins = Path::new(env!("SOP_PLUGINS_DIR"));
    for (name, file) in [("casefold", "casefold"), ("people", "json-schema")] {
        let wasm = std::fs::read(plugins.join(format!("{file}.wasm"))).unwrap();
        host.install(&db, name, &wasm, Default::default()).unwrap();
    }
    let order = host.key_order(&db, "casefold").unwrap();
    let opts = sop::StoreOptions { order, validator: Some("people".into()), slot_length: 8, ..Default::default() };
    db.transact(|tx| tx.create_store("names", opts.clone()).map(|_| ())).unwrap();

    let w = Worker::new(&redis, dir.path());
    let (k, n) = (3u64, 120u64);
    let kids: Vec<_> = (0..k)
        .map(|id| {
            // Each process is its own node, with its own compile cache.
            let cache = dir.path().with_extension(format!("cache-{id}"));
            w.spawn_env(
                &["plugin-writer", &id.to_string(), &n.to_string()],
                &[("SOP_WASM_CACHE", cache.display().to_string())],
            )
        })
        .collect();
    let mut rejected = 0;
    for c in kids {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "worker failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        rejected += stdout.split_whitespace().nth(5).unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(rejected, k * n.div_ceil(100), "every 10th batch of each worker was rejected");
    let tx = db.begin_read().unwrap();
    let s = tx.open_store("names").unwrap();
    let keys: Vec<String> = s.iter().unwrap().map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap()).collect();
    // Every row once, one "shared" row whatever its case, nothing invalid, in folded order.
    assert_eq!(keys.len() as u64, k * n + 1, "{keys:?}");
    let mut folded: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
    let in_order = folded.clone();
    folded.sort();
    assert_eq!(in_order, folded);
    assert!(keys.iter().all(|k| !k.starts_with("bad-")));
    for id in 0..k {
        for j in 0..n {
            assert!(s.get(format!("User-{id}-{j}").as_bytes()).unwrap().is_some(), "row {id}-{j} lost");
        }
    }
    drop(tx);
    for id in 0..k {
        let _ = std::fs::remove_dir_all(dir.path().with_extension(format!("cache-{id}")));
    }
}
