//! `sop`: the command-line door to sop databases.

mod bench;
mod check;
mod conn;
mod demo;
mod kv;
mod plugin;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sop", version, about = "Scalable Objects Persistence: transactional B-tree stores in a folder")]
struct Cli {
    #[command(flatten)]
    conn: conn::Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Many writer threads on shared nodes: watch in-flight merges, conflicts and retries.
    Demo(demo::Args),
    /// Runs sop and its peers (redb, LMDB, fjall, SQLite) on the same workload and prints ratios.
    Bench(bench::Args),
    /// Shows stores, their options, counts, tree shape and space use.
    Inspect(check::Args),
    /// Checks the whole structure; exits non-zero with a report on any problem.
    Verify(check::Args),
    /// Creates, lists or removes stores.
    #[command(subcommand)]
    Store(kv::StoreCmd),
    /// Prints a key's value (keys and values: UTF-8 text or 0x hex).
    Get(kv::GetArgs),
    /// Inserts or replaces a key (creates the store, and the database, if missing).
    Put(kv::PutArgs),
    /// Removes a key.
    Del(kv::DelArgs),
    /// Lists items in key order.
    Scan(kv::ScanArgs),
    /// Installs, lists, removes and runs Wasm plugins stored in the database.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// One writer process of `sop demo --procs` (internal).
    #[command(hide = true)]
    DemoWorker(demo::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo::run(a, &cli.conn),
        Cmd::DemoWorker(a) => demo::worker(a, &cli.conn),
        Cmd::Bench(a) => bench::run(a, &cli.conn),
        Cmd::Inspect(a) => check::inspect(a, &cli.conn),
        Cmd::Verify(a) => check::verify(a, &cli.conn),
        Cmd::Store(c) => kv::store(c, &cli.conn),
        Cmd::Get(a) => kv::get(a, &cli.conn),
        Cmd::Put(a) => kv::put(a, &cli.conn),
        Cmd::Del(a) => kv::del(a, &cli.conn),
        Cmd::Scan(a) => kv::scan(a, &cli.conn),
        Cmd::Plugin(c) => plugin::run(c, &cli.conn),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear sentence per cause, no debug output.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
