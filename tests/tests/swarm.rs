//! The storage swarm with real processes and a real Redis: every worker process is a master
//! writing into one folder, coordinating only through short-lived leases in Redis.
//!
//! The history tests run workers the way users do (see `sop_tests::swarm::MIXED`): several
//! threads each, threads idle for longer than the reclaim grace, `maintain()` callers, mixed
//! options, a store dropped and re-created. `SOP_SOAK_SECS` makes them run longer.

use sop::{Database, DbOptions, Error};
use sop_tests::checker::{self, BankOptions, Tail};
use sop_tests::redis_server::RedisServer;
use sop_tests::swarm::{self, MIXED, Swarm, Worker};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sop-worker");

/// A ceiling that only catches hangs: a loaded 2-core machine can be many times slower than usual.
const HANG: Duration = Duration::from_secs(60);

fn counter(db: &Database) -> u64 {
    let tx = db.begin_read().unwrap();
    match tx.open_store("s") {
        Ok(s) => s.get(b"c").unwrap().map_or(0, |v| u64::from_le_bytes(v[..8].try_into().unwrap())),
        Err(Error::StoreNotFound(_)) => 0,
        Err(e) => panic!("{e}"),
    }
}

/// Polls `done` until it holds; fails after [`HANG`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {HANG:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long the time-boxed history workloads run: `default` seconds, or `SOP_SOAK_SECS`.
fn secs(default: u64) -> String {
    swarm::soak_secs().unwrap_or(default).to_string()
}

/// [`MIXED`], each with `extra` flags.
fn mixed(extra: &str) -> Vec<String> {
    MIXED.iter().map(|f| format!("{f} {extra}")).collect()
}

/// Starts one worker per entry of `flags`, named `{prefix}-{i}` and running `cmd(i)`; returns
/// the workers and their names.
fn spawn_each(
    sw: &Swarm,
    prefix: &str,
    flags: &[String],
    cmd: impl Fn(usize) -> Vec<String>,
) -> (Vec<Worker>, Vec<String>) {
    let names: Vec<String> = (0..flags.len()).map(|i| format!("{prefix}-{i}")).collect();
    let kids = names
        .iter()
        .zip(flags)
        .enumerate()
        .map(|(i, (name, f))| sw.spawn(name, f, &cmd(i).iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    (kids, names)
}

fn planted(on: bool) -> &'static str {
    if on { "--skip-validation" } else { "" }
}

#[test]
fn processes_merge_into_a_new_store_with_tiny_nodes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sw = Swarm::new(BIN, &redis, dir.path());
    let (k, n) = (4u64, 400u64);
    // Slot length 4: concurrent splits, root splits and removals under contention.
    let kids: Vec<_> = (0..k)
        .map(|id| sw.spawn(&format!("insert-{id}"), "", &["insert", &id.to_string(), &n.to_string(), "4", "4"]))
        .collect();
    let merges: u64 = kids.into_iter().map(|c| c.finish().merges).sum();
    let db = sw.open();
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
    let sw = Swarm::new(BIN, &redis, dir.path());
    // Without the retry helper: losers see Conflict; the value counts exactly the winners.
    let kids: Vec<_> = (0..4).map(|i| sw.spawn(&format!("noretry-{i}"), "", &["incr", "60", "noretry"])).collect();
    let (mut wins, mut conflicts) = (0, 0);
    for c in kids {
        let r = c.finish();
        wins += r.successes;
        conflicts += r.conflicts;
    }
    let db = sw.open();
    assert_eq!(counter(&db), wins);
    assert!(conflicts > 0, "four processes incrementing one key must conflict");
    drop(db);
    // With the retry helper every increment lands.
    let kids: Vec<_> = (0..4).map(|i| sw.spawn(&format!("retry-{i}"), "", &["incr", "40"])).collect();
    kids.into_iter().for_each(|c| {
        c.finish();
    });
    assert_eq!(counter(&sw.open()), wins + 160);
}

#[test]
fn phantom_inserts_into_an_empty_range_at_most_once() {
    const RANGES: u64 = 60;
    for bug in [false, true] {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let sw = Swarm::new(BIN, &redis, dir.path());
        let (kids, names) = spawn_each(&sw, "phantom", &mixed(planted(bug)), |i| {
            vec!["phantom".into(), i.to_string(), RANGES.to_string()]
        });
        let (_, failures) = swarm::finish_all(kids);
        let logs = swarm::complete_logs(&sw, &names);
        let attempts = checker::load_logs(&logs, checker::parse_predicate_attempts).unwrap();
        let pairs = checker::check_predicate_pairs(&attempts);
        if bug {
            // Proof that the check can fail: without read validation, phantoms get through.
            assert!(pairs.iter().any(|p| p.contains("(phantom)")), "the planted bug went unnoticed: {pairs:?}");
        } else {
            let db = sw.open();
            let inserts = (|| -> sop::Result<Vec<usize>> {
                let tx = db.begin_read()?;
                let s = tx.open_store("p")?;
                let range = |r: u64| {
                    let (lo, hi) = swarm::phantom_range(r);
                    s.range(&lo.to_be_bytes()[..]..&hi.to_be_bytes()[..])
                };
                (0..RANGES).map(|r| Ok(range(r)?.collect::<sop::Result<Vec<_>>>()?.len())).collect()
            })();
            let mut findings = pairs;
            match inserts {
                Ok(inserts) => {
                    let doubled = inserts.iter().filter(|&&n| n > 1).count();
                    findings.extend((doubled > 0).then(|| format!("{doubled} ranges got two inserts: a phantom")));
                    let empty = inserts.iter().filter(|&&n| n == 0).count();
                    findings.extend((empty > 0).then(|| format!("{empty} ranges got no insert at all")));
                }
                Err(e) => findings.push(format!("the final read failed: {e}")),
            }
            findings.extend(swarm::verify_findings(&db));
            let problems = swarm::problems(&failures, &swarm::events(&logs), &findings);
            assert!(problems.is_none(), "{}", problems.unwrap_or_default());
            assert!(attempts.len() as u64 >= RANGES * 4, "only {} attempts logged", attempts.len());
        }
    }
}

#[test]
fn redis_down_fails_fast_and_recovers_on_its_own() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = Swarm::new(BIN, &redis, dir.path()).open();
    db.transact(|tx| tx.create_store("s", Default::default()).map(|_| ())).unwrap();
    redis.kill();
    let t = Instant::now();
    let r = db.transact(|tx| tx.open_store("s")?.upsert(b"k", b"v"));
    assert!(matches!(r, Err(Error::Coordinator(_))), "expected a coordinator error, got {r:?}");
    assert!(t.elapsed() < HANG, "failing took {:?}", t.elapsed());
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
    let sw = Swarm::new(BIN, &redis, dir.path());
    let db = sw.open();
    let names: Vec<String> = (0..3).map(|i| format!("incr-{i}")).collect();
    let kids: Vec<_> = names.iter().map(|n| sw.spawn(n, "", &["incr", "150"])).collect();
    // Down while the workers are surely mid-run, and until one of them has seen it.
    wait_until("increments before the outage", || counter(&db) >= 30);
    redis.kill(); // every lease vanishes; commits fail cleanly until it is back
    let logs: Vec<_> = names.iter().map(|n| (sw.log(n), Tail::MayBeTorn)).collect();
    wait_until("a worker reporting Redis unavailable", || swarm::events(&logs).unavailable > 0);
    redis.restart();
    let unavailable: u64 = kids.into_iter().map(|c| c.finish().unavailable).sum();
    assert!(unavailable > 0, "no worker saw Redis unavailable");
    // Workers retry an increment that failed with "coordinator unavailable": had any such
    // failure left a partial write, or had any acknowledged increment been lost, the total
    // would differ.
    assert_eq!(counter(&db), 450);
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn paused_lease_holder_cannot_clobber() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sw = Swarm::new(BIN, &redis, dir.path());
    let flags = "--lease-ms 500";
    // Create the counter first.
    sw.spawn("first", flags, &["incr", "1"]).finish();
    let marker = dir.path().join("paused");
    let env = [("SOP_FAILPOINTS", format!("before-publish=pause:300:{}", marker.display()))];
    let holder = sw.spawn_env("holder", flags, &["incr", "1", "noretry"], &env);
    wait_until("the holder reaching the publish point", || marker.exists());
    // The holder has its commit file written and holds the lease: freeze it past the TTL.
    let pid = holder.child.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let t = Instant::now();
    let other = sw.spawn("other", flags, &["incr", "1", "noretry"]).finish();
    assert_eq!(other.successes, 1, "the other process must commit while the holder is frozen");
    assert!(t.elapsed() < HANG, "the expired lease held the other writer for {:?}", t.elapsed());
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let stale = holder.finish();
    assert_eq!(stale.successes, 0, "the stale holder's read-modify-write must be rejected, not applied");
    let db = sw.open();
    assert_eq!(counter(&db), 2, "exactly the two acknowledged increments");
    assert!(db.verify().unwrap().is_ok());
}

#[test]
fn bank_snapshots_always_sum_to_the_total() {
    const TOTAL: i64 = 10_000;
    const ACCOUNTS: usize = 8;
    for bug in [false, true] {
        let redis = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let sw = Swarm::new(BIN, &redis, dir.path());
        sw.spawn("init", "", &["bank-init", &ACCOUNTS.to_string(), &TOTAL.to_string()]).finish();
        // The planted bug shows within seconds; only the real run soaks.
        let extra = if bug { format!("{} --secs 4", planted(bug)) } else { format!("--secs {}", secs(8)) };
        let (kids, names) =
            spawn_each(&sw, "bank", &mixed(&extra), |i| vec!["bank".into(), i.to_string(), "100000".into()]);
        let (exits, failures) = swarm::finish_all(kids);
        let logs = swarm::complete_logs(&sw, &names);
        let mut snaps = checker::load_logs(&logs, checker::parse_bank_snapshots).unwrap();
        let db = sw.open();
        // The final state is one more snapshot. The planted bug may break the tree itself.
        let last = (|| -> sop::Result<Vec<i64>> {
            let tx = db.begin_read()?;
            let balances = tx.open_store("bank")?.iter()?;
            balances.map(|r| r.map(|(_, v)| i64::from_le_bytes(v[..8].try_into().unwrap()))).collect()
        })();
        let mut findings = Vec::new();
        match last {
            Ok(last) => snaps.push((snaps.len() as u64, last)),
            Err(e) => findings.push(format!("the final read failed: {e}")),
        }
        let opts = BankOptions { forbid_negative: true, accounts: Some(ACCOUNTS) };
        findings.extend(checker::check_bank_with(TOTAL, &snaps, &opts));
        if bug {
            assert!(!findings.is_empty(), "the planted bug (no validation) lost no money: the check is blind");
        } else {
            findings.extend(swarm::verify_findings(&db));
            let problems = swarm::problems(&failures, &swarm::events(&logs), &findings);
            assert!(problems.is_none(), "{} snapshots checked: {}", snaps.len(), problems.unwrap_or_default());
            assert!(snaps.len() >= 100, "only {} snapshots", snaps.len());
            let transfers: u64 = exits.iter().map(|e| e.successes).sum();
            eprintln!("{transfers} transfers committed, {} snapshots all sum to {TOTAL}", snaps.len());
        }
    }
}

/// A list-append run: the report of its history with a final read, and what else went wrong.
struct Run {
    report: checker::Report,
    problems: Option<String>,
    events: swarm::Events,
}

/// Runs `append` workers (`flags` each, `keys` lists, `volatile_keys` lists in the store that is
/// dropped and re-created) and checks the history with a final read.
fn list_append(flags: &[String], txns: u64, keys: u64, volatile_keys: u64) -> Run {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sw = Swarm::new(BIN, &redis, dir.path());
    let (kids, names) =
        spawn_each(&sw, "append", flags, |i| vec!["append".into(), i.to_string(), txns.to_string(), keys.to_string()]);
    let (_, mut failures) = swarm::finish_all(kids);
    let logs = swarm::complete_logs(&sw, &names);
    let db = sw.open();
    let (report, last) = swarm::check_list_append(&db, &logs, keys, volatile_keys);
    failures.extend(last.err().map(|e| format!("the final read failed: {e}")));
    let events = swarm::events(&logs);
    let mut findings = swarm::report_findings(&report);
    findings.extend(swarm::verify_findings(&db));
    let problems = swarm::problems(&failures, &events, &findings);
    Run { report, problems, events }
}

/// Asserts a list-append run found nothing wrong and did at least `min_committed` commits;
/// prints what was checked.
fn assert_clean(what: &str, run: &Run, min_committed: usize) {
    assert!(run.problems.is_none(), "{what}: {}", run.problems.as_deref().unwrap_or_default());
    let r = &run.report;
    assert!(r.committed >= min_committed, "{what}: only {} committed transactions: {r}", r.committed);
    eprintln!(
        "{what}: {} transactions checked ({} committed, {} aborted), {} edges, {} checkpoints, {} files reclaimed",
        r.txns_checked, r.committed, r.aborted, r.edges, run.events.checkpoints, run.events.reclaimed
    );
}

#[test]
fn list_append_with_idle_threads_and_maintain_is_strict_serializable() {
    // Contended keys; threads that sleep past the reclaim grace while others checkpoint,
    // reclaim and call maintain(), then read and write again.
    let keys = 16;
    let run = list_append(&mixed(&format!("--secs {}", secs(15))), 1_000_000, keys, 0);
    assert_clean("idle threads", &run, 1_000);
    // The run did what it is for: checkpoints and reclamation while threads idled.
    assert!(run.events.reclaimed > 0 && run.events.checkpoints > 0, "nothing reclaimed: {:?}", run.events);
}

#[test]
fn list_append_with_store_drops_is_strict_serializable() {
    // Transactions that read a store another one drops and creates again, on the engine's
    // default options, so that only the drops are new here.
    let (keys, volatile_keys) = (8, 4);
    let extra = format!("--volatile-keys {volatile_keys} --drop-every 20 --secs {}", secs(10));
    let flags = vec![format!("--threads 3 {extra}"); 3];
    assert_clean("store drops", &list_append(&flags, 1_000_000, keys, volatile_keys), 500);
}

/// The planted bug (commits skip validation) on targeted workloads must show as the anomaly it
/// causes, by name.
#[test]
fn planted_lost_updates_are_g_single() {
    // Read-then-append on two keys: two commits from one snapshot clobber each other's append.
    let flags = vec!["--threads 3 --think-ms 2 --skip-validation".to_string(); 3];
    let run = list_append(&flags, 40, 2, 0);
    assert!(run.report.anomaly_names().contains("G-single"), "{}", run.report);
}

#[test]
fn planted_write_skew_is_g2() {
    // Each thread reads all six keys and appends to its own: only write skew can go wrong.
    let flags = vec!["--threads 2 --shape skew --think-ms 2 --skip-validation".to_string(); 3];
    let run = list_append(&flags, 40, 6, 0);
    assert!(run.report.anomaly_names().contains("G2"), "{}", run.report);
}

#[test]
fn embedded_and_swarm_users_of_one_folder_exclude_each_other() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sw = Swarm::new(BIN, &redis, dir.path());
    // An embedded process (this one) has the folder open: a swarm process must be refused.
    let embedded =
        Database::open_with(sw.db_dir(), DbOptions { create_if_missing: true, ..Default::default() }).unwrap();
    let err = sw.spawn("refused", "", &["incr", "1"]).finish_failing();
    assert!(err.contains("embedded mode"), "unclear refusal: {err}");
    drop(embedded);
    // Once it is gone, the same folder joins the swarm, and comes back to embedded use later.
    sw.spawn("joins", "", &["incr", "1"]).finish();
    let db = Database::open(sw.db_dir()).unwrap();
    assert_eq!(counter(&db), 1);
}

/// Plugins in the swarm: processes coordinating through Redis all load the key order and
/// the validator from the database, merge writes to one custom-order store, and reject bad
/// rows; one process installed the plugins, none of the others had them.
#[test]
fn processes_share_plugins_from_the_database() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sw = Swarm::new(BIN, &redis, dir.path());
    let db = sw.open();
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

    let (k, n) = (3u64, 120u64);
    let kids: Vec<_> = (0..k)
        .map(|id| {
            // Each process is its own node, with its own compile cache.
            let cache = dir.path().join(format!("cache-{id}"));
            sw.spawn_env(
                &format!("plugins-{id}"),
                "",
                &["plugin-writer", &id.to_string(), &n.to_string()],
                &[("SOP_WASM_CACHE", cache.display().to_string())],
            )
        })
        .collect();
    let rejected: u64 = kids.into_iter().map(|c| c.finish().rejected).sum();
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
}
