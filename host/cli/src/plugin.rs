//! `sop plugin`: install, list, remove and run Wasm plugins stored in the database.

use crate::conn::{Conn, host};
use anyhow::{Context, Result, bail};
use sop_wasm::{Grant, InstallOptions, Limits, PluginKind};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum PluginCmd {
    /// Installs a component (.wasm) into the database under a name. Every process that
    /// opens the database can then load it.
    Install(InstallArgs),
    /// Lists installed plugins.
    List { dir: PathBuf },
    /// Removes a plugin (`name`: every version; `name@version`: that one).
    Remove {
        dir: PathBuf,
        name: String,
        /// Remove even if stores use it (they then refuse to open or commit until it is back).
        #[arg(long)]
        force: bool,
    },
    /// Runs a component without a database and prints what it returns, so authors can
    /// iterate: a key order's encodings and the order they give, a validator's verdict, a
    /// compute plugin's output. The component goes through the same checks as at install.
    Test(TestArgs),
    /// Runs a compute plugin in a transaction of its own and prints its output.
    Run {
        dir: PathBuf,
        name: String,
        /// Input text.
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// Input read from a file.
        #[arg(long)]
        input_file: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct TestArgs {
    file: PathBuf,
    /// Key orders: the keys to encode (validators: the keys of the writes, in order).
    #[arg(long, num_args = 1..)]
    keys: Vec<String>,
    /// Validators: a value to write (repeat for more writes). Compute: the input text.
    #[arg(long)]
    input: Vec<String>,
}

#[derive(clap::Args)]
pub struct InstallArgs {
    dir: PathBuf,
    file: PathBuf,
    /// `name` or `name@version` (the version defaults to 0.1.0).
    #[arg(long)]
    name: String,
    /// Compute: a store it may read (repeat for more).
    #[arg(long, value_name = "STORE")]
    read: Vec<String>,
    /// Compute: a store it may read and write (repeat for more).
    #[arg(long, value_name = "STORE")]
    write: Vec<String>,
    /// CPU deadline per call, in ms (default: by kind).
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap, in MiB (default: by kind).
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Output cap per call, in KiB (default: by kind).
    #[arg(long)]
    output_kib: Option<u64>,
    /// Compute: storage calls per invocation (default 1,000,000).
    #[arg(long)]
    host_calls: Option<u64>,
    /// Validators: let it see the clock and random numbers (its verdicts may then differ
    /// between calls and nodes). Key orders are always deterministic.
    #[arg(long)]
    nondeterministic: bool,
}

pub fn run(cmd: PluginCmd, conn: &Conn) -> Result<()> {
    match cmd {
        PluginCmd::Install(a) => install(a, conn),
        PluginCmd::List { dir } => list(dir, conn),
        PluginCmd::Test(a) => test(a),
        PluginCmd::Remove { dir, name, force } => {
            let db = conn.open(&dir, false)?;
            for alias in host()?.remove(&db, &name, force)? {
                println!("removed {alias}");
            }
            Ok(())
        }
        PluginCmd::Run { dir, name, input, input_file } => {
            let input = match (input, input_file) {
                (Some(s), _) => s.into_bytes(),
                (None, Some(f)) => std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?,
                (None, None) => Vec::new(),
            };
            let db = conn.open(&dir, false)?;
            let out = host()?.run(&db, &name, &input)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out)?;
            if !out.ends_with(b"\n") {
                writeln!(stdout)?;
            }
            Ok(())
        }
    }
}

fn install(a: InstallArgs, conn: &Conn) -> Result<()> {
    let wasm = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let db = conn.open(&a.dir, true)?;
    let grants: Vec<Grant> =
        a.read.iter().map(|s| Grant::read(s)).chain(a.write.iter().map(|s| Grant::write(s))).collect();
    let host = host()?;
    // Compiling a Python or JavaScript component takes seconds on a small machine.
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    spinner.set_message(format!(
        "checking and compiling {} ({:.1} MiB)",
        a.file.display(),
        wasm.len() as f64 / (1 << 20) as f64
    ));
    let kind = host.kind_of(&wasm);
    spinner.finish_and_clear();
    let kind = kind?;
    let d = Limits::default_for(kind);
    let limits = Limits {
        deadline_ms: a.deadline_ms.unwrap_or(d.deadline_ms),
        memory_bytes: a.memory_mib.map_or(d.memory_bytes, |m| m << 20),
        output_bytes: a.output_kib.map_or(d.output_bytes, |k| k << 10),
        host_calls: a.host_calls.unwrap_or(d.host_calls),
    };
    if kind != PluginKind::Compute && !grants.is_empty() {
        bail!("--read and --write apply to compute plugins; this is a {kind} plugin");
    }
    let opts = InstallOptions { grants, limits: Some(limits), nondeterministic: a.nondeterministic };
    let info = host.install(&db, &a.name, &wasm, opts)?;
    println!(
        "installed {} ({} plugin, sha256 {}, {} bytes)",
        info.alias, info.record.kind, info.hash, info.record.size
    );
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn test(a: TestArgs) -> Result<()> {
    let wasm = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    // A throwaway database: the component is checked exactly as `install` checks it.
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let db = sop::Database::open_or_create(tmp.path())?;
    let host = host()?;
    host.attach(&db);
    let kind = host.kind_of(&wasm)?;
    host.install(&db, "under-test", &wasm, InstallOptions::default())?;
    match kind {
        PluginKind::KeyOrder => {
            if a.keys.is_empty() {
                bail!("give the keys to encode with --keys");
            }
            let codec = host.order_codec(&db, "under-test")?;
            let (name, injective) = codec.info()?;
            let keys: Vec<&[u8]> = a.keys.iter().map(|k| k.as_bytes()).collect();
            let enc = codec.encode_many(&keys)?;
            println!("key order {name:?} ({}injective); in order:", if injective { "" } else { "not " });
            let mut rows: Vec<(&String, &Vec<u8>)> = a.keys.iter().zip(&enc).collect();
            rows.sort_by(|x, y| x.1.cmp(y.1));
            let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            for (i, (k, e)) in rows.iter().enumerate() {
                let same = i > 0 && rows[i - 1].1 == *e;
                println!(
                    "{k:<w$}  {}{}",
                    hex(e),
                    if same { "  (same sort key as the previous: one item)" } else { "" }
                );
            }
        }
        PluginKind::Validator => {
            use sop::Extensions;
            let batch: Vec<sop::Mutation> = a
                .input
                .iter()
                .enumerate()
                .map(|(i, v)| sop::Mutation {
                    store: "test".into(),
                    key: a.keys.get(i).cloned().unwrap_or_else(|| format!("k{i}")).into(),
                    value: Some(v.clone().into()),
                })
                .collect();
            match host.validate(&db, "under-test", &batch).map_err(anyhow::Error::msg)? {
                Ok(()) => println!("accepted ({} writes)", batch.len()),
                Err(reasons) => {
                    println!("rejected:");
                    for r in reasons {
                        println!("  {r}");
                    }
                }
            }
        }
        PluginKind::Compute => {
            let input = a.input.concat().into_bytes();
            let out = host.run(&db, "under-test", &input)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out)?;
            if !out.ends_with(b"\n") {
                writeln!(stdout)?;
            }
        }
    }
    Ok(())
}

fn list(dir: PathBuf, conn: &Conn) -> Result<()> {
    let db = conn.open(&dir, false)?;
    let plugins = host()?.list(&db)?;
    if plugins.is_empty() {
        println!("no plugins installed");
        return Ok(());
    }
    let rows: Vec<[String; 7]> = plugins
        .iter()
        .map(|p| {
            let l = p.record.limits;
            let grants: Vec<String> = p
                .record
                .grants
                .iter()
                .map(|g| format!("{}{}", g.store, if g.write { "" } else { " (read)" }))
                .collect();
            [
                p.alias.clone(),
                p.record.kind.to_string(),
                p.hash[..16].to_string(),
                format!("{:.1} KiB", p.record.size as f64 / 1024.0),
                format!("{} ms, {} MiB", l.deadline_ms, l.memory_bytes >> 20),
                if grants.is_empty() { "-".into() } else { grants.join(", ") },
                p.breaker.to_string(),
            ]
        })
        .collect();
    let head = ["name", "kind", "sha256", "size", "limits", "grants", "state"];
    let widths: Vec<usize> =
        (0..7).map(|i| rows.iter().map(|r| r[i].len()).chain([head[i].len()]).max().unwrap_or(0)).collect();
    let line = |cells: &[String]| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string()
    };
    println!("{}", line(&head.map(String::from)));
    for r in &rows {
        println!("{}", line(r));
    }
    Ok(())
}
