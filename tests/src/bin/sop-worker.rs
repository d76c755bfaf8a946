//! A worker process for multi-process tests: `sop-worker <dir> <command> [args]`.
//!
//! * `insert <id> <n> <batch> <slot>`: adds keys `id*1_000_000 + i` (big-endian u64) for
//!   `i < n`, `batch` per transaction, into store `s` (created on first use by whichever
//!   process gets there first), with plain commits and no retry helper.
//! * `incr <n>`: increments counter `c` in store `s` `n` times through `transact`.
//!
//! Prints one line `ok <commits> <conflicts> <merges>` on success.

use sop::{Database, Error, StoreOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
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

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> Result<T, String> {
    args.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| format!("argument {i} missing or invalid"))
}

fn run(args: &[String]) -> Result<String, String> {
    let dir: String = arg(args, 1)?;
    let cmd: String = arg(args, 2)?;
    let db = Database::open_or_create(&dir).map_err(|e| e.to_string())?;
    let e = |e: Error| e.to_string();
    match cmd.as_str() {
        "insert" => {
            let (id, n, batch, slot): (u64, u64, u64, u32) = (arg(args, 3)?, arg(args, 4)?, arg(args, 5)?, arg(args, 6)?);
            let opts = StoreOptions { slot_length: slot, ..StoreOptions::default() };
            // Whoever comes first creates the store; the others see a conflict and open it.
            db.transact(|tx| tx.open_or_create_store("s", opts.clone()).map(|_| ())).map_err(e)?;
            let mut i = 0;
            while i < n {
                let tx = db.begin_write().map_err(e)?;
                let s = tx.open_store("s").map_err(e)?;
                for j in i..(i + batch).min(n) {
                    let k = (id * 1_000_000 + j).to_be_bytes();
                    if !s.add(&k, &j.to_le_bytes()).map_err(e)? {
                        return Err(format!("key {j} of worker {id} already exists"));
                    }
                }
                tx.commit().map_err(e)?;
                i += batch;
            }
        }
        "incr" => {
            let n: u64 = arg(args, 3)?;
            db.transact(|tx| tx.open_or_create_store("s", StoreOptions::default()).map(|_| ())).map_err(e)?;
            for _ in 0..n {
                db.transact(|tx| {
                    let s = tx.open_store("s")?;
                    let v = s.get(b"c")?.map_or(0, |b| u64::from_le_bytes(b[..8].try_into().unwrap_or_default()));
                    s.upsert(b"c", &(v + 1).to_le_bytes())
                })
                .map_err(e)?;
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    }
    let st = db.stats();
    Ok(format!("ok {} {} {}", st.commits, st.conflicts, st.merges))
}
