//! A worker process for the multi-process tests.
//!
//! `sop-worker [FLAGS] DIR CMD ARGS`
//!
//! | command | what it does |
//! |---|---|
//! | `insert ID N BATCH SLOT` | adds keys `ID*1e6+i`, BATCH per plain commit (no retry) |
//! | `incr N [noretry]` | increments counter `c`; through `transact` (waiting out coordinator outages), or with plain commits |
//! | `bank-init ACCOUNTS TOTAL` | creates accounts holding TOTAL in all |
//! | `bank ID TRANSFERS` | per thread: random transfers, and before every 4th a read-only snapshot of all accounts (logged) |
//! | `append ID TXNS KEYS` | per thread: TXNS list-append transactions over keys `0..KEYS` (logged, see below) |
//! | `phantom ID RANGES` | per thread, per range (`sop_tests::swarm::phantom_range`): scan it, insert key `lo+1+process` only if it is empty (logged) |
//! | `plugin-writer ID N` | writes store `names` (a Wasm key order and validator): N valid rows in batches of 10, a shared key in this worker's own case, and every 10th batch an invalid row that must be rejected |
//!
//! | flag | |
//! |---|---|
//! | `--redis URL`, `--prefix P` | join the swarm through Redis; connecting is retried for 60 s, so a worker may start while Redis restarts |
//! | `--lease-ms N`, `--grace-ms N`, `--checkpoint-every N`, `--cache-bytes N` | `DbOptions::lease_ttl`, `reclaim_grace`, `checkpoint_every`, `cache_bytes` |
//! | `--log PATH` | the JSON-lines log; `bank`, `append` and `phantom` need one |
//! | `--threads N` | threads of `bank`, `append` and `phantom` (default 3, at most 16) |
//! | `--idle-ms MS --idle-every K [--idle-threads T]` | the first T threads (default: all) sleep MS to 2·MS ms after every K transactions |
//! | `--maintain-ms MS` | one more thread calls `Database::maintain` about every MS ms while the others run |
//! | `--think-ms MS` | sleep between a transaction's reads and its commit (widens races) |
//! | `--secs S` | threads stop after S seconds if they are not done before (soaks) |
//! | `--shape skew` | `append` reads every key and appends to the thread's own, `(ID*threads+t) % KEYS` (at most 7 keys); default `mixed`: 1-4 reads or read-then-appends of random keys |
//! | `--volatile-keys K --drop-every N` | `append` also reads and appends to keys `0..K` of store `vol`, and every Nth transaction of a thread drops `vol` and creates it again (see `sop_tests::lists`) |
//! | `--skip-validation` | plants a bug (commits skip conflict checks) to prove the checkers catch it |
//!
//! Thread `t` of worker `ID` is history process `ID*16+t`; its `j`th transaction has id
//! `process << 24 | j`, and its `i`th operation appends value `id*8+i` (`ID` < 2^20, `j` < 2^24:
//! ids stay below the 2^48 that `sop_tests::lists` has room for).
//!
//! The list-append log: after a transaction's reads and before its commit,
//! `{"invoke": id, "process", "invoked", "ops"}` (written only then because the logical key of
//! a `vol` list depends on what was read; `invoked` is taken before the transaction began);
//! after the commit, `{"id", "process", "ops", "outcome", "invoked", "completed"}`, with outcome
//! `ok`, `fail` or `info` (unknown). Times are µs since the Unix epoch; `completed` is taken
//! after the commit returned. A finished `ok` line is synced before the thread begins its next
//! transaction. Ops are `["r", key, list]` and `["append", key, value]`; every append follows a
//! read of its key in the same transaction. `bank` logs `{"snap": balances}`, `phantom`
//! `{"range", "txn", "saw_empty", "outcome"}`.
//!
//! Errors: `Conflict` and `SnapshotTooOld` fail the transaction; so does `Coordinator`, which is
//! logged as `{"unavailable": ..}` (a failed connection at start as `{"unreachable": ..}`).
//! `Corrupt` is printed as a `corrupt: ` line on stderr and logged as `{"corrupt": ..}`; the
//! transaction fails (or, met while committing, gets outcome `info`), the worker goes on so the
//! history stays checkable (up to 1,000 of them), and exits with a failure at the end. Any other
//! error stops the worker at once. Every 16 finished transactions, and at the end, a
//! `{"stats": ..}` line. Prints `ok <commits> <conflicts> <merges> <successes> <rejected>
//! <unavailable>` on success.

use bytes::Bytes;
use rand::Rng;
use rand::rngs::ThreadRng;
use serde_json::{Value, json};
use sop::{Database, DbOptions, Error, StoreOptions, Transaction};
use sop_tests::lists;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_THREADS: usize = 16;
const MAX_CORRUPT: u64 = 1000;
/// Bits of a thread's transaction counter in a transaction id.
const TXN_BITS: u32 = 24;
/// Worker ids stay below this.
const MAX_ID: u64 = 1 << 20;

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

#[derive(Default)]
struct Opts {
    redis: Option<String>,
    prefix: String,
    log: Option<String>,
    lease_ms: u64,
    grace_ms: Option<u64>,
    checkpoint_every: Option<u64>,
    cache_bytes: Option<usize>,
    threads: usize,
    idle_ms: u64,
    idle_every: u64,
    idle_threads: Option<usize>,
    maintain_ms: Option<u64>,
    think_ms: u64,
    secs: Option<u64>,
    skew: bool,
    volatile_keys: u64,
    drop_every: u64,
    skip_validation: bool,
    rest: Vec<String>,
}

fn parse() -> Result<Opts, String> {
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        v.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a number"))
    }
    let mut o = Opts { prefix: "sop".into(), lease_ms: 5000, threads: 3, idle_every: 1, ..Opts::default() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let flag = a.as_str();
        match flag {
            "--redis" => o.redis = Some(it.next().ok_or("--redis needs a URL")?),
            "--prefix" => o.prefix = it.next().ok_or("--prefix needs a value")?,
            "--log" => o.log = Some(it.next().ok_or("--log needs a path")?),
            "--lease-ms" => o.lease_ms = num(flag, it.next())?,
            "--grace-ms" => o.grace_ms = Some(num(flag, it.next())?),
            "--checkpoint-every" => o.checkpoint_every = Some(num(flag, it.next())?),
            "--cache-bytes" => o.cache_bytes = Some(num(flag, it.next())?),
            "--threads" => o.threads = num(flag, it.next())?,
            "--idle-ms" => o.idle_ms = num(flag, it.next())?,
            "--idle-every" => o.idle_every = num::<u64>(flag, it.next())?.max(1),
            "--idle-threads" => o.idle_threads = Some(num(flag, it.next())?),
            "--maintain-ms" => o.maintain_ms = Some(num(flag, it.next())?),
            "--think-ms" => o.think_ms = num(flag, it.next())?,
            "--secs" => o.secs = Some(num(flag, it.next())?),
            "--shape" => match it.next().as_deref() {
                Some("skew") => o.skew = true,
                Some("mixed") => o.skew = false,
                _ => return Err("--shape is mixed or skew".into()),
            },
            "--volatile-keys" => o.volatile_keys = num(flag, it.next())?,
            "--drop-every" => o.drop_every = num(flag, it.next())?,
            "--skip-validation" => o.skip_validation = true,
            _ => o.rest.push(a),
        }
    }
    if !(1..=MAX_THREADS).contains(&o.threads) {
        return Err(format!("--threads must be 1 to {MAX_THREADS}"));
    }
    if o.volatile_keys > lists::MAX_VOLATILE_KEYS {
        return Err(format!("--volatile-keys must be at most {}", lists::MAX_VOLATILE_KEYS));
    }
    Ok(o)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T, String> {
    args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} missing or invalid"))
}

/// The id of transaction `j` of history process `process`.
fn txn_id(process: u64, j: u64) -> u64 {
    process << TXN_BITS | j
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A JSON-lines log shared by the threads. Each line is written whole under a lock, so lines
/// never interleave and a kill can tear only the last one.
struct Log {
    file: File,
    write: Mutex<()>,
}

impl Log {
    fn open(path: &str) -> Result<Log, String> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(Log { file, write: Mutex::new(()) })
    }

    fn line(&self, v: &Value, sync: bool) -> Result<(), String> {
        let mut line = v.to_string();
        line.push('\n');
        {
            let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
            (&self.file).write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        }
        if sync {
            self.file.sync_data().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The log and the counts of what went wrong, from before the database is open.
#[derive(Default)]
struct Events {
    log: Option<Log>,
    unavailable: AtomicU64,
    corrupt: AtomicU64,
    too_old: AtomicU64,
}

impl Events {
    fn line(&self, v: Value, sync: bool) -> Result<(), String> {
        self.log.as_ref().map_or(Ok(()), |l| l.line(&v, sync))
    }

    fn unavailable(&self, process: Option<u64>, what: &str) -> Result<(), String> {
        self.unavailable.fetch_add(1, Relaxed);
        self.line(json!({ "unavailable": what, "process": process }), false)
    }

    fn corrupt(&self, process: Option<u64>, err: &Error) -> Result<(), String> {
        let n = self.corrupt.fetch_add(1, Relaxed) + 1;
        // The count is in the stats line and the log; stderr gets the first few.
        if n <= 20 {
            eprintln!("corrupt: process {process:?}: {err}");
        }
        self.line(json!({ "corrupt": err.to_string(), "process": process }), false)?;
        // A handle that fails every transaction would otherwise spin through its whole run.
        if n >= MAX_CORRUPT {
            return Err(format!("{n} Corrupt errors; stopping"));
        }
        Ok(())
    }

    /// An error that stops the worker, counted first if it is a `Corrupt`.
    fn fatal(&self, err: Error) -> String {
        if matches!(err, Error::Corrupt { .. }) {
            let _ = self.corrupt(None, &err);
        }
        err.to_string()
    }
}

/// One thread of a history workload.
struct Thread {
    index: usize,
    process: u64,
    rng: ThreadRng,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Lists,
    Volatile,
}

/// One planned operation of a list-append transaction.
struct Op {
    target: Target,
    key: u64,
    append: bool,
}

/// A list-append transaction's operations as logged.
#[derive(Default)]
struct Ops(Vec<Value>);

impl Ops {
    fn read(&mut self, key: u64, list: &[u64]) {
        self.0.push(json!(["r", key, list]));
    }
    fn append(&mut self, key: u64, value: u64) {
        self.0.push(json!(["append", key, value]));
    }
}

/// Reads list `k` of `s`, logs the read under the logical key `logical` gives for it, and, with
/// a value, appends it.
fn read_append(
    s: &sop::Store<'_>,
    k: u64,
    logical: impl Fn(&[u64]) -> u64,
    append: Option<u64>,
    ops: &mut Ops,
) -> sop::Result<()> {
    let mut list = s.get(&k.to_be_bytes())?.map(|b| lists::decode(&b)).unwrap_or_default();
    let key = logical(&list);
    ops.read(key, &list);
    if let Some(v) = append {
        list.push(v);
        s.upsert(&k.to_be_bytes(), &lists::encode(&list))?;
        ops.append(key, v);
    }
    Ok(())
}

fn balance(b: Option<Bytes>) -> i64 {
    b.map_or(0, |b| i64::from_le_bytes(b[..8].try_into().unwrap_or_default()))
}

struct Worker {
    o: Opts,
    db: Database,
    ev: Events,
    deadline: Option<Instant>,
    /// Set when a thread fails, so the others stop too.
    failed: AtomicBool,
    /// Set when the workload threads are done, so the maintenance thread stops.
    done: AtomicBool,
    successes: AtomicU64,
    rejected: AtomicU64,
    finished: AtomicU64,
}

fn open(o: &Opts, ev: &Events, dir: &str) -> Result<Database, String> {
    let mut opts = DbOptions { create_if_missing: true, lease_ttl: ms(o.lease_ms), ..DbOptions::default() };
    if let Some(g) = o.grace_ms {
        opts.reclaim_grace = ms(g);
    }
    if let Some(c) = o.checkpoint_every {
        opts.checkpoint_every = c;
    }
    if let Some(c) = o.cache_bytes {
        opts.cache_bytes = c;
    }
    if let Some(url) = &o.redis {
        let ro = sop_redis::RedisOptions::new(url.clone(), o.prefix.clone());
        let give_up = Instant::now() + Duration::from_secs(60);
        let coord = loop {
            match sop_redis::RedisCoordinator::connect(ro.clone()) {
                Ok(c) => break c,
                Err(e) if Instant::now() < give_up => {
                    ev.line(json!({ "unreachable": e.to_string() }), false)?;
                    std::thread::sleep(ms(100));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        opts.coordinator = Arc::new(coord);
    }
    Database::open_with(dir, opts).map_err(|e| ev.fatal(e))
}

fn run() -> Result<String, String> {
    let o = parse()?;
    let args = o.rest.clone();
    let (dir, cmd): (String, String) = (arg(&args, 0)?, arg(&args, 1)?);
    let ev = Events { log: o.log.as_deref().map(Log::open).transpose()?, ..Events::default() };
    let db = open(&o, &ev, &dir)?;
    let w = Worker {
        deadline: o.secs.map(|s| Instant::now() + Duration::from_secs(s)),
        o,
        db,
        ev,
        failed: AtomicBool::new(false),
        done: AtomicBool::new(false),
        successes: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        finished: AtomicU64::new(0),
    };
    w.command(&cmd, &args[2..])?;
    w.stats_line()?;
    let corrupt = w.ev.corrupt.load(Relaxed);
    if corrupt > 0 {
        return Err(format!("{corrupt} Corrupt errors (the first are on the `corrupt:` lines above)"));
    }
    let st = w.db.stats();
    Ok(format!(
        "ok {} {} {} {} {} {}",
        st.commits,
        st.conflicts,
        st.merges,
        w.successes.load(Relaxed),
        w.rejected.load(Relaxed),
        w.ev.unavailable.load(Relaxed)
    ))
}

impl Worker {
    fn command(&self, cmd: &str, args: &[String]) -> Result<(), String> {
        let needs_log = || self.ev.log.as_ref().map(|_| ()).ok_or(format!("{cmd} needs --log"));
        match cmd {
            "plugin-writer" => self.plugin_writer(arg(args, 0)?, arg(args, 1)?),
            "insert" => self.insert(arg(args, 0)?, arg(args, 1)?, arg(args, 2)?, arg(args, 3)?),
            "incr" => self.incr(arg(args, 0)?, args.get(1).is_some_and(|a| a == "noretry")),
            "bank-init" => {
                let (accounts, total): (u64, i64) = (arg(args, 0)?, arg(args, 1)?);
                self.setup(|tx| {
                    let s =
                        tx.open_or_create_store("bank", StoreOptions { slot_length: 8, ..StoreOptions::default() })?;
                    for a in 0..accounts {
                        let share = total / accounts as i64 + i64::from(a == 0) * (total % accounts as i64);
                        s.upsert(&a.to_be_bytes(), &share.to_le_bytes())?;
                    }
                    Ok(())
                })
            }
            "bank" => {
                needs_log()?;
                let (id, transfers): (u64, u64) = (arg(args, 0)?, arg(args, 1)?);
                let accounts = self.setup(|tx| tx.open_store("bank")?.count())?;
                self.threads(id, transfers, |t, j| self.bank(t, j, accounts))
            }
            "append" => {
                needs_log()?;
                let (id, txns, keys): (u64, u64, u64) = (arg(args, 0)?, arg(args, 1)?, arg(args, 2)?);
                if keys == 0 || (self.o.skew && keys > 7) {
                    return Err("append needs 1 to 7 keys with --shape skew, and at least 1".into());
                }
                let vol = self.o.volatile_keys > 0;
                self.setup(|tx| {
                    tx.open_or_create_store(lists::LISTS, lists::store_options())?;
                    if vol {
                        tx.open_or_create_store(lists::VOLATILE, lists::store_options())?;
                    }
                    Ok(())
                })?;
                self.threads(id, txns, |t, j| self.append(t, j, keys))
            }
            "phantom" => {
                needs_log()?;
                let (id, ranges): (u64, u64) = (arg(args, 0)?, arg(args, 1)?);
                self.setup(|tx| tx.open_or_create_store("p", StoreOptions::default()).map(|_| ()))?;
                self.threads(id, ranges, |t, r| self.phantom(t, r))
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }

    fn begin(&self) -> sop::Result<Transaction> {
        let tx = self.db.begin_write()?;
        if self.o.skip_validation {
            tx.unsafe_skip_validation();
        }
        Ok(tx)
    }

    /// Runs `f` through `transact`, waiting out coordinator outages (nothing was written then).
    fn setup<T>(&self, mut f: impl FnMut(&Transaction) -> sop::Result<T>) -> Result<T, String> {
        loop {
            match self.db.transact(&mut f) {
                Ok(v) => return Ok(v),
                Err(Error::Coordinator(m)) => {
                    self.ev.unavailable(None, &m)?;
                    std::thread::sleep(ms(50));
                }
                Err(e) => return Err(self.ev.fatal(e)),
            }
        }
    }

    /// What an engine error means for a transaction of a history workload: `Ok(outcome)` when
    /// the worker goes on (`fail`: it did not commit; `info`: a `Corrupt` met while committing,
    /// so it may have), `Err` when the worker must stop.
    fn failed(&self, process: Option<u64>, err: Error, committing: bool) -> Result<&'static str, String> {
        match err {
            Error::Conflict(_) => Ok("fail"),
            Error::SnapshotTooOld(_) => {
                self.ev.too_old.fetch_add(1, Relaxed);
                Ok("fail")
            }
            Error::Coordinator(m) => {
                self.ev.unavailable(process, &m)?;
                Ok("fail")
            }
            Error::Corrupt { .. } => {
                self.ev.corrupt(process, &err)?;
                Ok(if committing { "info" } else { "fail" })
            }
            other => Err(other.to_string()),
        }
    }

    /// Runs `body` in a write transaction, then `before_commit` with its result, then commits.
    /// Returns the result and the outcome (`ok`, `fail` or `info`); `None` when the transaction
    /// failed before its commit.
    fn write_txn<T>(
        &self,
        process: u64,
        body: impl FnOnce(&Transaction) -> sop::Result<T>,
        before_commit: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<Option<(T, &'static str)>, String> {
        let (tx, v) = match self.begin().and_then(|tx| body(&tx).map(|v| (tx, v))) {
            Ok(r) => r,
            Err(e) => return self.failed(Some(process), e, false).map(|_| None),
        };
        if self.o.think_ms > 0 {
            std::thread::sleep(ms(self.o.think_ms));
        }
        before_commit(&v)?;
        let outcome = match tx.commit() {
            Ok(_) => {
                self.successes.fetch_add(1, Relaxed);
                "ok"
            }
            Err(e) => self.failed(Some(process), e, true)?,
        };
        Ok(Some((v, outcome)))
    }

    /// Runs `step(thread, j)` for `j` in `0..txns` on each of `--threads` threads (plus the
    /// `--maintain-ms` thread), with the `--idle-*` pauses.
    fn threads(
        &self,
        id: u64,
        txns: u64,
        step: impl Fn(&mut Thread, u64) -> Result<(), String> + Sync,
    ) -> Result<(), String> {
        if id >= MAX_ID {
            return Err(format!("worker ids must be below {MAX_ID}"));
        }
        // Past its counter's room, a thread stops rather than reuse ids.
        let txns = txns.min(1 << TXN_BITS);
        std::thread::scope(|s| {
            let maintainer = self.o.maintain_ms.map(|every| s.spawn(move || self.maintain(every)));
            let step = &step;
            let threads: Vec<_> = (0..self.o.threads)
                .map(|index| {
                    s.spawn(move || {
                        let process = id * MAX_THREADS as u64 + index as u64;
                        let mut t = Thread { index, process, rng: rand::rng() };
                        let r = (0..txns).take_while(|_| !self.should_stop()).try_for_each(|j| {
                            step(&mut t, j)?;
                            self.idle(&mut t, j);
                            Ok(())
                        });
                        if r.is_err() {
                            self.failed.store(true, Relaxed);
                        }
                        r
                    })
                })
                .collect();
            let mut result = Ok(());
            for t in threads {
                result = result.and(t.join().unwrap_or_else(|_| Err("a thread panicked".into())));
            }
            self.done.store(true, Relaxed);
            if let Some(m) = maintainer {
                result = result.and(m.join().unwrap_or_else(|_| Err("the maintenance thread panicked".into())));
            }
            result
        })
    }

    fn should_stop(&self) -> bool {
        self.failed.load(Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn idle(&self, t: &mut Thread, j: u64) {
        let o = &self.o;
        if o.idle_ms > 0 && t.index < o.idle_threads.unwrap_or(o.threads) && (j + 1).is_multiple_of(o.idle_every) {
            std::thread::sleep(ms(t.rng.random_range(o.idle_ms..=2 * o.idle_ms)));
        }
    }

    /// Forced checkpoints and reclamation, at jittered intervals, while the workload runs.
    fn maintain(&self, every: u64) -> Result<(), String> {
        let mut rng = rand::rng();
        while !self.done.load(Relaxed) && !self.should_stop() {
            let until = Instant::now() + ms(rng.random_range(every / 2..=every + every / 2));
            while Instant::now() < until && !self.done.load(Relaxed) {
                std::thread::sleep(ms(5));
            }
            if let Err(e) = self.db.maintain() {
                self.failed(None, e, false)?;
            }
        }
        Ok(())
    }

    /// Counts a finished transaction, with a stats line every 16.
    fn finished(&self) -> Result<(), String> {
        if self.finished.fetch_add(1, Relaxed) % 16 == 15 { self.stats_line() } else { Ok(()) }
    }

    fn stats_line(&self) -> Result<(), String> {
        let st = self.db.stats();
        let ev = &self.ev;
        self.ev.line(
            json!({ "stats": {
                "commits": st.commits,
                "conflicts": st.conflicts,
                "merges": st.merges,
                "rebases": st.rebases,
                "checkpoints": st.checkpoints,
                "reclaimed": st.reclaimed_files,
                "successes": self.successes.load(Relaxed),
                "unavailable": ev.unavailable.load(Relaxed),
                "corrupt": ev.corrupt.load(Relaxed),
                "too_old": ev.too_old.load(Relaxed),
            }}),
            false,
        )
    }

    fn plan(&self, t: &mut Thread, keys: u64) -> Vec<Op> {
        let lists = |key, append| Op { target: Target::Lists, key, append };
        if self.o.skew {
            // Write skew: read every key, append to this thread's own; threads never append to
            // one key, so no lost update hides the skew.
            let own = (t.process / MAX_THREADS as u64 * self.o.threads as u64 + t.index as u64) % keys;
            let mut plan: Vec<Op> = (0..keys).map(|k| lists(k, false)).collect();
            plan.push(lists(own, true));
            return plan;
        }
        (0..t.rng.random_range(1..=4))
            .map(|_| {
                let append = t.rng.random_bool(0.5);
                if self.o.volatile_keys > 0 && t.rng.random_bool(0.3) {
                    Op { target: Target::Volatile, key: t.rng.random_range(0..self.o.volatile_keys), append }
                } else {
                    lists(t.rng.random_range(0..keys), append)
                }
            })
            .collect()
    }

    fn append(&self, t: &mut Thread, j: u64, keys: u64) -> Result<(), String> {
        let id = txn_id(t.process, j);
        let recreate =
            self.o.volatile_keys > 0 && self.o.drop_every > 0 && j % self.o.drop_every == self.o.drop_every - 1;
        let plan = if recreate { Vec::new() } else { self.plan(t, keys) };
        let invoked = lists::now_us();
        let body = |tx: &Transaction| {
            let mut ops = Ops::default();
            if recreate {
                self.recreate_volatile(tx, id, &mut ops)?;
            } else {
                run_plan(tx, id, &plan, &mut ops)?;
            }
            Ok(ops)
        };
        // The invocation names every operation: were the process killed during the commit,
        // a read that saw one of its appends could still be traced to it.
        let invoke = |ops: &Ops| {
            self.ev.line(json!({ "invoke": id, "process": t.process, "invoked": invoked, "ops": ops.0 }), false)
        };
        let Some((ops, outcome)) = self.write_txn(t.process, body, invoke)? else { return Ok(()) };
        let done = json!({
            "id": id, "process": t.process, "ops": ops.0, "outcome": outcome,
            "invoked": invoked, "completed": lists::now_us(),
        });
        // Synced before the next transaction: an acknowledged commit is never missing from the
        // log, even if this process is killed right after.
        self.ev.line(done, outcome == "ok")?;
        self.finished()
    }

    /// Drops store `vol` and creates it again (see `sop_tests::lists`): reads every key of the
    /// old generation and closes it with tombstones, then starts each list of the new one with
    /// its marker.
    fn recreate_volatile(&self, tx: &Transaction, id: u64, ops: &mut Ops) -> sop::Result<()> {
        let (keys, generation) = (self.o.volatile_keys, lists::generation_of(id));
        let old = tx.open_store(lists::VOLATILE)?;
        for k in 0..keys {
            let list = old.get(&k.to_be_bytes())?.map(|b| lists::decode(&b)).unwrap_or_default();
            let key = lists::volatile_key(lists::generation(&list), k);
            ops.read(key, &list);
            ops.append(key, lists::tombstone(id, k));
        }
        tx.remove_store(lists::VOLATILE)?;
        let new = tx.create_store(lists::VOLATILE, lists::store_options())?;
        for k in 0..keys {
            let (key, marker) = (lists::volatile_key(generation, k), lists::marker(generation, k));
            read_append(&new, k, |_| key, Some(marker), ops)?;
        }
        Ok(())
    }

    fn bank(&self, t: &mut Thread, j: u64, accounts: u64) -> Result<(), String> {
        if j.is_multiple_of(4) {
            let snapshot = || -> sop::Result<Vec<i64>> {
                let r = self.db.begin_read()?;
                r.open_store("bank")?.iter()?.map(|kv| kv.map(|(_, v)| balance(Some(v)))).collect()
            };
            match snapshot() {
                Ok(balances) => self.ev.line(json!({ "snap": balances, "process": t.process }), false)?,
                Err(e) => {
                    self.failed(Some(t.process), e, false)?;
                }
            }
        }
        let (from, to) = (t.rng.random_range(0..accounts), t.rng.random_range(0..accounts));
        let amount: i64 = t.rng.random_range(1..20);
        let transfer = |tx: &Transaction| {
            let s = tx.open_store("bank")?;
            let (a, b) = (balance(s.get(&from.to_be_bytes())?), balance(s.get(&to.to_be_bytes())?));
            if from != to && a >= amount {
                s.upsert(&from.to_be_bytes(), &(a - amount).to_le_bytes())?;
                s.upsert(&to.to_be_bytes(), &(b + amount).to_le_bytes())?;
            }
            Ok(())
        };
        self.write_txn(t.process, transfer, |_| Ok(()))?;
        self.finished()
    }

    fn phantom(&self, t: &mut Thread, r: u64) -> Result<(), String> {
        let (lo, hi) = sop_tests::swarm::phantom_range(r);
        let attempt = |tx: &Transaction| {
            let s = tx.open_store("p")?;
            let empty = s.range(&lo.to_be_bytes()[..]..&hi.to_be_bytes()[..])?.next().is_none();
            if empty {
                s.add(&(lo + 1 + t.process).to_be_bytes(), b"x")?;
            }
            Ok(empty)
        };
        let Some((saw_empty, outcome)) = self.write_txn(t.process, attempt, |_| Ok(()))? else { return Ok(()) };
        let id = txn_id(t.process, r);
        self.ev.line(
            json!({ "range": r, "txn": id, "process": t.process, "saw_empty": saw_empty, "outcome": outcome }),
            false,
        )?;
        self.finished()
    }

    fn plugin_writer(&self, id: u64, n: u64) -> Result<(), String> {
        let host = sop_wasm::PluginHost::new(Default::default()).map_err(|e| e.to_string())?;
        host.attach(&self.db);
        let shared = if id.is_multiple_of(2) { "SHARED" } else { "shared" };
        for (b, start) in (0..n).step_by(10).enumerate() {
            self.db
                .transact(|tx| {
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
                .map_err(|e| self.ev.fatal(e))?;
            self.successes.fetch_add(1, Relaxed);
            if b % 10 == 0 {
                match self.db.transact(|tx| tx.open_store("names")?.upsert(format!("bad-{id}-{b}").as_bytes(), b"{}")) {
                    Err(Error::Rejected { .. }) => _ = self.rejected.fetch_add(1, Relaxed),
                    other => return Err(format!("an invalid row was not rejected: {other:?}")),
                }
            }
        }
        Ok(())
    }

    fn insert(&self, id: u64, n: u64, batch: u64, slot: u32) -> Result<(), String> {
        let so = StoreOptions { slot_length: slot, ..StoreOptions::default() };
        self.setup(|tx| tx.open_or_create_store("s", so.clone()).map(|_| ()))?;
        let fatal = |e| self.ev.fatal(e);
        for i in (0..n).step_by(batch.max(1) as usize) {
            let tx = self.begin().map_err(fatal)?;
            let s = tx.open_store("s").map_err(fatal)?;
            for j in i..(i + batch).min(n) {
                if !s.add(&(id * 1_000_000 + j).to_be_bytes(), &j.to_le_bytes()).map_err(fatal)? {
                    return Err(format!("key {j} of worker {id} already exists"));
                }
            }
            tx.commit().map_err(fatal)?;
            self.successes.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn incr(&self, n: u64, no_retry: bool) -> Result<(), String> {
        self.setup(|tx| tx.open_or_create_store("s", StoreOptions::default()).map(|_| ()))?;
        let incr = |tx: &Transaction| -> sop::Result<()> {
            let s = tx.open_store("s")?;
            let v = s.get(b"c")?.map_or(0, |b| u64::from_le_bytes(b[..8].try_into().unwrap_or_default()));
            s.upsert(b"c", &(v + 1).to_le_bytes())
        };
        for _ in 0..n {
            if no_retry {
                let tx = self.begin().map_err(|e| self.ev.fatal(e))?;
                incr(&tx).map_err(|e| self.ev.fatal(e))?;
                match tx.commit() {
                    Ok(_) => _ = self.successes.fetch_add(1, Relaxed),
                    Err(Error::Conflict(_)) => {}
                    Err(err) => return Err(self.ev.fatal(err)),
                }
            } else {
                // `transact` retries conflicts; an application retries coordinator outages.
                self.setup(&incr)?;
                self.successes.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

fn run_plan(tx: &Transaction, id: u64, plan: &[Op], ops: &mut Ops) -> sop::Result<()> {
    // A store is opened only if used: opening `vol` makes the transaction depend on it.
    let open = |target: Target| {
        let name = match target {
            Target::Lists => lists::LISTS,
            Target::Volatile => lists::VOLATILE,
        };
        plan.iter().any(|op| op.target == target).then(|| tx.open_store(name)).transpose()
    };
    let (plain, volatile) = (open(Target::Lists)?, open(Target::Volatile)?);
    for (i, op) in plan.iter().enumerate() {
        let append = op.append.then_some(id * 8 + i as u64);
        match op.target {
            Target::Lists => read_append(plain.as_ref().expect("opened"), op.key, |_| op.key, append, ops)?,
            Target::Volatile => read_append(
                volatile.as_ref().expect("opened"),
                op.key,
                |l| lists::volatile_key(lists::generation(l), op.key),
                append,
                ops,
            )?,
        }
    }
    Ok(())
}
