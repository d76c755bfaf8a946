//! `sop`: the command-line door to sop databases.

mod bench;
mod demo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sop", version, about = "Scalable Objects Persistence: transactional B-tree stores in a folder")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Many writer threads on shared nodes: watch in-flight merges, conflicts and retries.
    Demo(demo::Args),
    /// Runs sop and its peers (redb, LMDB, fjall, SQLite) on the same workload and prints ratios.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Bench(a) => bench::run(a),
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
