//! A worker process for the multi-process tests.
//!
//! `sop-worker [--redis URL] [--prefix P] [--lease-ms N] [--skip-validation] DIR CMD ARGS`
//!
//! | command | what it does |
//! |---|---|
//! | `insert ID N BATCH SLOT` | adds keys `ID*1e6+i`, BATCH per plain commit (no retry) |
//! | `incr N [noretry]` | increments counter `c`; through `transact`, or with plain commits |
//! | `bank-init ACCOUNTS TOTAL` | creates accounts holding TOTAL in all |
//! | `bank ID TRANSFERS LOG` | random transfers (transact) and read-only snapshots (logged) |
//! | `append ID TXNS KEYS LOG` | list-append transactions, each logged as invoked and finished |
//! | `phantom ID RANGES` | per range: scan it, insert into it only if empty |
//! | `hold` | prints `holding` once the database is open, and keeps it open until stdin closes |
//! | `plugin-writer ID N` | writes store `names` (a Wasm key order and validator): N valid rows in batches of 10, a shared key in this worker's own case, and every 10th batch an invalid row that must be rejected |
//!
//! `--skip-validation` plants a bug (commits skip conflict checks) to prove the checkers catch it.
//!
//! Logs are JSON lines; a finished transaction's line is synced before the next begins.
//! Prints `ok <commits> <conflicts> <merges> <successes> <rejected>` on success.

use rand::Rng;
use serde_json::json;
use sop::{Database, DbOptions, Error, StoreOptions};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Opts {
    redis: Option<String>,
    prefix: String,
    lease_ms: u64,
    skip_validation: bool,
    rest: Vec<String>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts { redis: None, prefix: "sop".into(), lease_ms: 5000, skip_validation: false, rest: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--redis" => o.redis = Some(it.next().ok_or("--redis needs a URL")?),
            "--prefix" => o.prefix = it.next().ok_or("--prefix needs a value")?,
            "--lease-ms" => o.lease_ms = it.next().and_then(|v| v.parse().ok()).ok_or("--lease-ms needs a number")?,
            "--skip-validation" => o.skip_validation = true,
            _ => o.rest.push(a),
        }
    }
    Ok(o)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T, String> {
    args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} missing or invalid"))
}

fn e(err: Error) -> String {
    err.to_string()
}

struct Log(File);

impl Log {
    fn open(path: &str) -> Result<Log, String> {
        OpenOptions::new().create(true).append(true).open(path).map(Log).map_err(|e| format!("{path}: {e}"))
    }
    fn line(&mut self, v: serde_json::Value, sync: bool) -> Result<(), String> {
        writeln!(self.0, "{v}").map_err(|e| e.to_string())?;
        if sync {
            self.0.sync_data().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn decode_list(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

fn run() -> Result<String, String> {
    let o = parse()?;
    let args = &o.rest;
    let dir: String = arg(args, 0)?;
    let cmd: String = arg(args, 1)?;
    let mut opts =
        DbOptions { create_if_missing: true, lease_ttl: Duration::from_millis(o.lease_ms), ..DbOptions::default() };
    if let Some(url) = &o.redis {
        let ro = sop_redis::RedisOptions::new(url.clone(), o.prefix.clone());
        opts.coordinator = Arc::new(sop_redis::RedisCoordinator::connect(ro).map_err(|e| e.to_string())?);
    }
    let db = Database::open_with(&dir, opts).map_err(e)?;
    let begin = || -> sop::Result<sop::Transaction> {
        let tx = db.begin_write()?;
        if o.skip_validation {
            tx.unsafe_skip_validation();
        }
        Ok(tx)
    };
    let mut successes = 0u64;
    let mut unavailable = 0u64;
    let mut rejected = 0u64;
    let mut rng = rand::rng();
    match cmd.as_str() {
        "hold" => {
            println!("holding");
            std::io::stdout().flush().map_err(|e| e.to_string())?;
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).map_err(|e| e.to_string())?;
        }
        "plugin-writer" => {
            let (id, n): (u64, u64) = (arg(args, 2)?, arg(args, 3)?);
            let host = sop_wasm::PluginHost::new(Default::default()).map_err(|e| e.to_string())?;
            host.attach(&db);
            let shared = if id % 2 == 0 { "SHARED" } else { "shared" };
            for (b, start) in (0..n).step_by(10).enumerate() {
                db.transact(|tx| {
                    let s = tx.open_store("names")?;
                    let rows: Vec<(String, String)> = (start..(start + 10).min(n))
                        .map(|j| {
                            let key = if j % 2 == 0 { format!("user-{id}-{j}") } else { format!("USER-{id}-{j}") };
                            (key, format!(r#"{{"name":"w{id}","age":{j}}}"#))
                        })
                        .collect();
                    s.upsert_many(rows.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))?;
                    s.upsert(shared.as_bytes(), format!(r#"{{"name":"w{id}","age":{b}}}"#).as_bytes())
                })
                .map_err(e)?;
                successes += 1;
                if b % 10 == 0 {
                    match db.transact(|tx| tx.open_store("names")?.upsert(format!("bad-{id}-{b}").as_bytes(), b"{}")) {
                        Err(Error::Rejected { .. }) => rejected += 1,
                        other => return Err(format!("an invalid row was not rejected: {other:?}")),
                    }
                }
            }
        }
        "insert" => {
            let (id, n, batch, slot): (u64, u64, u64, u32) =
                (arg(args, 2)?, arg(args, 3)?, arg(args, 4)?, arg(args, 5)?);
            let so = StoreOptions { slot_length: slot, ..StoreOptions::default() };
            db.transact(|tx| tx.open_or_create_store("s", so.clone()).map(|_| ())).map_err(e)?;
            let mut i = 0;
            while i < n {
                let tx = begin().map_err(e)?;
                let s = tx.open_store("s").map_err(e)?;
                for j in i..(i + batch).min(n) {
                    if !s.add(&(id * 1_000_000 + j).to_be_bytes(), &j.to_le_bytes()).map_err(e)? {
                        return Err(format!("key {j} of worker {id} already exists"));
                    }
                }
                tx.commit().map_err(e)?;
                successes += 1;
                i += batch;
            }
        }
        "incr" => {
            let n: u64 = arg(args, 2)?;
            let no_retry = args.get(3).is_some_and(|a| a == "noretry");
            db.transact(|tx| tx.open_or_create_store("s", StoreOptions::default()).map(|_| ())).map_err(e)?;
            let incr = |tx: &sop::Transaction| -> sop::Result<()> {
                let s = tx.open_store("s")?;
                let v = s.get(b"c")?.map_or(0, |b| u64::from_le_bytes(b[..8].try_into().unwrap_or_default()));
                s.upsert(b"c", &(v + 1).to_le_bytes())
            };
            for _ in 0..n {
                if no_retry {
                    let tx = begin().map_err(e)?;
                    incr(&tx).map_err(e)?;
                    match tx.commit() {
                        Ok(_) => successes += 1,
                        Err(Error::Conflict(_)) => {}
                        Err(err) => return Err(err.to_string()),
                    }
                } else {
                    // An application-level retry of what `transact` does not retry: the
                    // coordinator being away fails the commit cleanly, so try again later.
                    loop {
                        match db.transact(incr) {
                            Ok(()) => break,
                            Err(Error::Coordinator(_)) => {
                                unavailable += 1;
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(err) => return Err(err.to_string()),
                        }
                    }
                    successes += 1;
                }
            }
        }
        "bank-init" => {
            let (accounts, total): (u64, i64) = (arg(args, 2)?, arg(args, 3)?);
            db.transact(|tx| {
                let s = tx.open_or_create_store("bank", StoreOptions { slot_length: 8, ..StoreOptions::default() })?;
                for a in 0..accounts {
                    let share = total / accounts as i64 + i64::from(a == 0) * (total % accounts as i64);
                    s.upsert(&a.to_be_bytes(), &share.to_le_bytes())?;
                }
                Ok(())
            })
            .map_err(e)?;
        }
        "bank" => {
            let (_id, transfers, log): (u64, u64, String) = (arg(args, 2)?, arg(args, 3)?, arg(args, 4)?);
            let mut log = Log::open(&log)?;
            let accounts = db.begin_read().map_err(e)?.open_store("bank").map_err(e)?.count().map_err(e)?;
            let balance =
                |b: Option<bytes::Bytes>| b.map_or(0, |b| i64::from_le_bytes(b[..8].try_into().unwrap_or_default()));
            for i in 0..transfers {
                let (from, to) = (rng.random_range(0..accounts), rng.random_range(0..accounts));
                let amount: i64 = rng.random_range(1..20);
                let tx = begin().map_err(e)?;
                let s = tx.open_store("bank").map_err(e)?;
                let (a, b) =
                    (balance(s.get(&from.to_be_bytes()).map_err(e)?), balance(s.get(&to.to_be_bytes()).map_err(e)?));
                if from != to && a >= amount {
                    s.upsert(&from.to_be_bytes(), &(a - amount).to_le_bytes()).map_err(e)?;
                    s.upsert(&to.to_be_bytes(), &(b + amount).to_le_bytes()).map_err(e)?;
                }
                match tx.commit() {
                    Ok(_) => successes += 1,
                    Err(Error::Conflict(_)) => {}
                    Err(err) => return Err(err.to_string()),
                }
                if i % 4 == 0 {
                    let r = db.begin_read().map_err(e)?;
                    let balances: Vec<i64> = r
                        .open_store("bank")
                        .map_err(e)?
                        .iter()
                        .map_err(e)?
                        .map(|kv| kv.map(|(_, v)| balance(Some(v))))
                        .collect::<sop::Result<_>>()
                        .map_err(e)?;
                    log.line(json!({ "snap": balances }), false)?;
                }
            }
        }
        "append" => {
            let (id, txns, keys, log): (u64, u64, u64, String) =
                (arg(args, 2)?, arg(args, 3)?, arg(args, 4)?, arg(args, 5)?);
            let mut log = Log::open(&log)?;
            db.transact(|tx| {
                tx.open_or_create_store("lists", StoreOptions { slot_length: 8, ..StoreOptions::default() }).map(|_| ())
            })
            .map_err(e)?;
            // Unique per key: this process's id and a counter that survives restarts
            // (restarted workers get a new id from the supervisor).
            for t in 0..txns {
                let txn_id = id << 32 | t;
                let n_ops = rng.random_range(1..=4);
                let plan: Vec<(bool, u64)> =
                    (0..n_ops).map(|_| (rng.random_bool(0.5), rng.random_range(0..keys))).collect();
                // The invocation names the values it may append, so a value seen in a read can
                // always be traced to its transaction, even one killed before it finished.
                let planned: Vec<serde_json::Value> = plan
                    .iter()
                    .enumerate()
                    .filter(|(_, (append, _))| *append)
                    .map(|(i, (_, k))| json!([k, txn_id * 8 + i as u64]))
                    .collect();
                log.line(json!({ "invoke": txn_id, "process": id, "appends": planned }), false)?;
                let tx = begin().map_err(e)?;
                let s = tx.open_store("lists").map_err(e)?;
                let mut ops = Vec::new();
                for (i, (append, k)) in plan.iter().enumerate() {
                    let cur = s.get(&k.to_be_bytes()).map_err(e)?.map(|b| decode_list(&b)).unwrap_or_default();
                    if *append {
                        let v = txn_id * 8 + i as u64;
                        let mut next: Vec<u8> = cur.iter().flat_map(|x| x.to_le_bytes()).collect();
                        next.extend_from_slice(&v.to_le_bytes());
                        s.upsert(&k.to_be_bytes(), &next).map_err(e)?;
                        ops.push(json!(["append", k, v]));
                    } else {
                        ops.push(json!(["r", k, cur]));
                    }
                }
                let outcome = match tx.commit() {
                    Ok(_) => {
                        successes += 1;
                        "ok"
                    }
                    Err(Error::Conflict(_)) => "fail",
                    Err(err) => return Err(err.to_string()),
                };
                // Synced before the next transaction: an acknowledged commit is never missing
                // from the log, even if this process is killed right after.
                log.line(json!({ "id": txn_id, "process": id, "ops": ops, "outcome": outcome }), outcome == "ok")?;
            }
        }
        "phantom" => {
            let (id, ranges): (u64, u64) = (arg(args, 2)?, arg(args, 3)?);
            db.transact(|tx| tx.open_or_create_store("p", StoreOptions::default()).map(|_| ())).map_err(e)?;
            for r in 0..ranges {
                let tx = begin().map_err(e)?;
                let s = tx.open_store("p").map_err(e)?;
                let (lo, hi) = ((r * 1000).to_be_bytes(), ((r + 1) * 1000).to_be_bytes());
                if s.range(&lo[..]..&hi[..]).map_err(e)?.next().is_none() {
                    s.add(&(r * 1000 + id + 1).to_be_bytes(), b"x").map_err(e)?;
                }
                match tx.commit() {
                    Ok(_) => successes += 1,
                    Err(Error::Conflict(_)) => {}
                    Err(err) => return Err(err.to_string()),
                }
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    }
    let st = db.stats();
    // `incr` reports coordinator outages where the others report conflicts.
    let conflicts = if cmd == "incr" && unavailable > 0 { unavailable } else { st.conflicts };
    Ok(format!("ok {} {} {} {} {rejected}", st.commits, conflicts, st.merges, successes))
}
