//! Driving `sop-worker` processes that share one folder and one Redis, and reading back what
//! they logged.

use crate::checker::{self, CheckOptions, Report, Tail};
use crate::lists;
use crate::redis_server::RedisServer;
use sop::{Database, DbOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// Worker options that users combine in one swarm, one string per worker: 3-4 threads each;
/// some threads idle for longer than a small reclaim grace (so reclamation runs while they
/// sleep) and some not; frequent checkpoints; `maintain()` callers; lease TTLs and node caches
/// small and large; one worker on the engine's defaults.
pub const MIXED: [&str; 4] = [
    "--threads 3 --grace-ms 200 --checkpoint-every 8 --cache-bytes 65536 --lease-ms 1000 --idle-ms 400 --idle-every 6",
    "--threads 3 --grace-ms 200 --checkpoint-every 16 --maintain-ms 150 --idle-ms 300 --idle-every 5 --idle-threads 1",
    "--threads 3 --idle-ms 400 --idle-every 8 --idle-threads 2",
    "--threads 4 --grace-ms 300 --checkpoint-every 12 --lease-ms 2000 --cache-bytes 1048576 --maintain-ms 300 \
     --idle-ms 500 --idle-every 10 --idle-threads 2",
];

/// The id (and process) of the final read added to checked histories.
pub const FINAL_READ: u64 = u64::MAX;

/// The keys `[lo, hi)` of range `r` of the `phantom` workload: wide enough for one key per
/// history process (`lo + 1 + process`).
pub fn phantom_range(r: u64) -> (u64, u64) {
    (r << 24, (r + 1) << 24)
}

/// Seconds of a soak (`SOP_SOAK_SECS`), if one was asked for.
pub fn soak_secs() -> Option<u64> {
    std::env::var("SOP_SOAK_SECS").ok().and_then(|v| v.parse().ok())
}

/// One database folder (`ROOT/db`), its workers' logs (`ROOT/logs`) and the Redis they share.
pub struct Swarm {
    bin: PathBuf,
    redis: String,
    root: PathBuf,
}

impl Swarm {
    /// `bin` is the `sop-worker` executable (`env!("CARGO_BIN_EXE_sop-worker")`).
    pub fn new(bin: &str, redis: &RedisServer, root: &Path) -> Swarm {
        std::fs::create_dir_all(root.join("logs")).expect("create the log folder");
        Swarm { bin: bin.into(), redis: redis.url(), root: root.to_path_buf() }
    }

    pub fn db_dir(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The log of worker `name`.
    pub fn log(&self, name: &str) -> PathBuf {
        self.root.join("logs").join(format!("{name}.log"))
    }

    /// Opens the folder in this process, in the swarm.
    pub fn open(&self) -> Database {
        let coord = sop_redis::RedisCoordinator::connect(sop_redis::RedisOptions::new(&self.redis, "sop"))
            .expect("connect to Redis");
        let opts = DbOptions { coordinator: Arc::new(coord), create_if_missing: true, ..DbOptions::default() };
        Database::open_with(self.db_dir(), opts).expect("open the database")
    }

    /// Starts worker `name` with `flags` (whitespace-separated) and its log, running `cmd`.
    pub fn spawn(&self, name: &str, flags: &str, cmd: &[&str]) -> Worker {
        self.spawn_env(name, flags, cmd, &[])
    }

    /// [`Swarm::spawn`] with extra environment variables.
    pub fn spawn_env(&self, name: &str, flags: &str, cmd: &[&str], env: &[(&str, String)]) -> Worker {
        let err = self.root.join("logs").join(format!("{name}.err"));
        let mut c = Command::new(&self.bin);
        c.args(["--redis", &self.redis, "--log"])
            .arg(self.log(name))
            .args(flags.split_whitespace())
            .arg(self.db_dir())
            .args(cmd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            // A file, not a pipe: nobody reads a long-running worker's stderr while it runs.
            .stderr(std::fs::File::create(&err).expect("create the stderr file"));
        Worker { name: name.into(), child: c.spawn().expect("spawn sop-worker"), err }
    }
}

/// What a worker that ended on its own printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    pub commits: u64,
    pub conflicts: u64,
    pub merges: u64,
    pub successes: u64,
    pub rejected: u64,
    /// `Error::Coordinator`s met.
    pub unavailable: u64,
}

/// A running `sop-worker`.
pub struct Worker {
    pub name: String,
    pub child: Child,
    err: PathBuf,
}

impl Worker {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits for the worker, which must succeed, and returns its counts.
    pub fn finish(self) -> Exit {
        self.result().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the worker: its counts, or how it failed.
    pub fn result(self) -> Result<Exit, String> {
        let (name, status, stdout, stderr) = self.wait();
        if !status.success() {
            return Err(format!("worker {name} failed ({status}): {}", describe(&stderr)));
        }
        let n: Vec<u64> = stdout.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        match n[..] {
            [commits, conflicts, merges, successes, rejected, unavailable] => {
                Ok(Exit { commits, conflicts, merges, successes, rejected, unavailable })
            }
            _ => Err(format!("worker {name}: unexpected output {stdout:?}")),
        }
    }

    /// Waits for a worker that must fail, and returns its stderr.
    pub fn finish_failing(self) -> String {
        let (name, status, _, stderr) = self.wait();
        assert!(!status.success(), "worker {name} succeeded");
        stderr
    }

    /// Kills the worker (SIGKILL). It must have been running without trouble until then: an
    /// error if it had died on its own or written anything to stderr.
    pub fn kill(mut self) -> Result<(), String> {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for a worker");
        let stderr = self.stderr();
        if status.signal() != Some(9) {
            return Err(format!("worker {} died on its own ({status}): {}", self.name, describe(&stderr)));
        }
        if !stderr.trim().is_empty() {
            return Err(format!("worker {} reported before it was killed: {}", self.name, describe(&stderr)));
        }
        Ok(())
    }

    /// Whether the worker has exited (while nobody killed it).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("poll a worker").is_some()
    }

    fn wait(self) -> (String, std::process::ExitStatus, String, String) {
        let out = self.child.wait_with_output().expect("wait for a worker");
        let stderr = std::fs::read_to_string(&self.err).unwrap_or_default();
        (self.name, out.status, String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }
}

/// A worker's stderr: its last line (the error it stopped on) and the first few others.
fn describe(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    match lines.split_last() {
        Some((last, rest)) if rest.len() > 3 => {
            format!("{last}\n  {}\n  ... {} more lines", rest[..3].join("\n  "), rest.len() - 3)
        }
        Some((last, rest)) => format!("{last}\n  {}", rest.join("\n  ")),
        None => "(no stderr)".into(),
    }
}

/// Waits for every worker: the counts of those that succeeded, and how the others failed.
pub fn finish_all(workers: Vec<Worker>) -> (Vec<Exit>, Vec<String>) {
    let mut exits = Vec::new();
    let mut failures = Vec::new();
    for w in workers {
        match w.result() {
            Ok(e) => exits.push(e),
            Err(e) => failures.push(e),
        }
    }
    (exits, failures)
}

/// Everything wrong with a run, in one message: `Corrupt` errors the logs recorded, workers
/// that failed, and what the checkers found (the first 10 findings).
pub fn problems(failures: &[String], events: &Events, findings: &[String]) -> Option<String> {
    let mut out = String::new();
    if !events.corrupt.is_empty() {
        let first: Vec<&String> = events.corrupt.iter().take(3).collect();
        out += &format!("{} Corrupt errors in the logs, first: {first:?}\n", events.corrupt.len());
    }
    for f in failures {
        out += &format!("{f}\n");
    }
    if !findings.is_empty() {
        out += &format!("{} findings:\n", findings.len());
        for f in findings.iter().take(10) {
            out += &format!("{f}\n");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The report as a finding, if it found anything.
pub fn report_findings(report: &Report) -> Vec<String> {
    if report.is_valid() { Vec::new() } else { vec![format!("history: {report}")] }
}

/// `verify`'s problems as findings.
pub fn verify_findings(db: &Database) -> Vec<String> {
    match db.verify() {
        Ok(r) => r.problems.iter().map(|p| format!("verify: {p:?}")).collect(),
        Err(e) => vec![format!("verify failed: {e}")],
    }
}

/// What the workers' logs say besides their histories.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// Every `Corrupt` error a worker met.
    pub corrupt: Vec<String>,
    /// `Error::Coordinator`s met (commits, `maintain()`, setup transactions).
    pub unavailable: usize,
    /// Failed attempts to connect to Redis at start.
    pub unreachable: usize,
    /// Sums over the workers of their last `stats` line.
    pub merges: u64,
    pub checkpoints: u64,
    pub reclaimed: u64,
    pub too_old: u64,
}

/// Reads the events of several workers' logs.
pub fn events(logs: &[(PathBuf, Tail)]) -> Events {
    let mut ev = Events::default();
    for (path, tail) in logs {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines = checker::json_lines(&text, *tail).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut last_stats = None;
        for (_, v) in lines {
            if let Some(c) = v.get("corrupt") {
                ev.corrupt.push(c.to_string());
            }
            ev.unavailable += usize::from(v.get("unavailable").is_some());
            ev.unreachable += usize::from(v.get("unreachable").is_some());
            if let Some(s) = v.get("stats") {
                last_stats = Some(s.clone());
            }
        }
        let stat = |name: &str| last_stats.as_ref().and_then(|s| s[name].as_u64()).unwrap_or(0);
        ev.merges += stat("merges");
        ev.checkpoints += stat("checkpoints");
        ev.reclaimed += stat("reclaimed");
        ev.too_old += stat("too_old");
    }
    ev
}

/// Checks the list-append history in `logs` together with a final read of every list, made now
/// (every worker must have ended): serializable, in real-time and per-process order, and with
/// every counted append in the final read. If the final read fails, the history is checked
/// without it and the error is returned too.
pub fn check_list_append(
    db: &Database,
    logs: &[(PathBuf, Tail)],
    keys: u64,
    volatile_keys: u64,
) -> (Report, Result<(), sop::Error>) {
    let mut history = checker::load_history_files(logs).expect("readable logs");
    let last = lists::final_read(db, FINAL_READ, keys, volatile_keys).map(|t| history.push(t));
    let opts = CheckOptions {
        process_order: true,
        realtime: true,
        final_read: last.is_ok().then_some(FINAL_READ),
        ..CheckOptions::default()
    };
    (checker::check_list_append_with(&history, &opts), last)
}

/// Every log of `names`, complete (their workers ended on their own).
pub fn complete_logs(swarm: &Swarm, names: &[String]) -> Vec<(PathBuf, Tail)> {
    names.iter().map(|n| (swarm.log(n), Tail::Complete)).collect()
}
