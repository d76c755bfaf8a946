//! `sop bench plugins`: what Wasm plugins cost. Insert throughput of a store ordered by a
//! Wasm key order against the same store in the built-in order; loading a plugin cold, from
//! the node-local cache, and its first call; and the per-call cost of validators and compute.

use anyhow::{Context, Result, bail};
use rand::Rng;
use sop::{Database, StoreOptions};
use sop_wasm::{Grant, HostConfig, InstallOptions, PluginHost};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Keys inserted per store and round (16 random letters each, mixed case).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Keys per commit.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Rounds; stores alternate within a round and the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The Wasm key order to insert with (a first-party plugin: casefold, descending,
    /// last-word).
    #[arg(long, default_value = "casefold")]
    order: String,
    /// Calls timed for the per-call figures.
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Folder for the databases (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

struct Figures {
    order: String,
    /// Guest time per key of a 1,000-key `encode` call, in ns.
    encode_ns_per_key: f64,
    insert_builtin: f64,
    insert_wasm_order: f64,
    load_cold_ms: f64,
    load_cached_ms: f64,
    first_call_ms: f64,
    validator_call_us: f64,
    compute_call_us: f64,
}

pub fn run(a: Args) -> Result<()> {
    if a.n == 0 || a.batch == 0 || a.rounds == 0 || a.calls == 0 {
        bail!("--n, --batch, --rounds and --calls must be at least 1");
    }
    let root = sop_plugin_build::repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    eprintln!("building the plugins (wasm32-wasip2) into {}", target.join("plugins").display());
    let plugins = sop_plugin_build::build(&root, &target).map_err(anyhow::Error::msg)?;
    let wasm = |n: &str| std::fs::read(plugins.join(format!("{n}.wasm"))).with_context(|| format!("plugin {n}"));
    let base = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot create a temporary folder")?;
    let cache = tempfile::tempdir().context("cannot create a cache folder")?;
    let config = || HostConfig { cache_dir: Some(cache.path().into()), ..Default::default() };

    let db = Database::open_or_create(base.path().join("db"))?;
    let host = PluginHost::new(config())?;
    host.attach(&db);
    host.install(&db, "casefold", &wasm("casefold")?, InstallOptions::default())?;
    if a.order != "casefold" {
        host.install(&db, &a.order, &wasm(&a.order)?, InstallOptions::default())?;
    }
    host.install(&db, "json-schema", &wasm("json-schema")?, InstallOptions::default())?;
    let grants = vec![Grant::read("orders"), Grant::write("totals")];
    host.install(&db, "aggregate", &wasm("aggregate")?, InstallOptions { grants, ..Default::default() })?;
    eprintln!(
        "engine: wasmtime 48, {} allocator; durable commits (fsync) of {} keys; {} rounds",
        if host.pooling() { "pooling" } else { "on-demand" },
        a.batch,
        a.rounds
    );

    let (insert_builtin, insert_wasm_order) = inserts(&db, &host, &a)?;
    let (load_cold_ms, load_cached_ms, first_call_ms) = loads(&db, &config)?;
    let validator_call_us = validator_calls(&db, &host, a.calls)?;
    let compute_call_us = compute_calls(&db, &host, a.calls)?;
    let encode_ns_per_key = encode_cost(&db, &host, &a.order)?;
    let f = Figures {
        order: a.order.clone(),
        encode_ns_per_key,
        insert_builtin,
        insert_wasm_order,
        load_cold_ms,
        load_cached_ms,
        first_call_ms,
        validator_call_us,
        compute_call_us,
    };
    if a.json {
        let v = serde_json::json!({
            "insert_builtin": f.insert_builtin,
            "insert_wasm_order": f.insert_wasm_order,
            "load_cold_ms": f.load_cold_ms,
            "load_cached_ms": f.load_cached_ms,
            "first_call_ms": f.first_call_ms,
            "validator_call_us": f.validator_call_us,
            "compute_call_us": f.compute_call_us,
        });
        println!("{v}");
    } else {
        print!("{}", table(&f));
    }
    Ok(())
}

fn table(f: &Figures) -> String {
    let cost = f.insert_builtin / f.insert_wasm_order;
    let rows = [
        ("insert, built-in order", format!("{:.0} ops/s", f.insert_builtin), String::new()),
        (
            &*format!("insert, Wasm key order ({})", f.order),
            format!("{:.0} ops/s", f.insert_wasm_order),
            format!("{cost:.2}x the cost (target <= 1.3x: {})", if cost <= 1.3 { "met" } else { "missed" }),
        ),
        ("encode call, per key (1,000 keys a call)", format!("{:.0} ns", f.encode_ns_per_key), String::new()),
        ("load cold (read, verify, compile, link)", format!("{:.1} ms", f.load_cold_ms), String::new()),
        (
            "load from the local cache",
            format!("{:.2} ms", f.load_cached_ms),
            format!("target < 5 ms: {}", if f.load_cached_ms < 5.0 { "met" } else { "missed" }),
        ),
        ("first call after a cached load", format!("{:.2} ms", f.first_call_ms), String::new()),
        ("validator call (fresh instance, 1 write)", format!("{:.1} us", f.validator_call_us), String::new()),
        (
            "compute call (fresh instance, 1-item range + 1 write)",
            format!("{:.1} us", f.compute_call_us),
            String::new(),
        ),
    ];
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let v = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, val, note) in rows {
        out.push_str(format!("{name:<w$}  {val:>v$}  {note}").trim_end());
        out.push('\n');
    }
    out
}

fn random_keys(n: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            (0..16)
                .map(|_| if rng.random() { rng.random_range(b'a'..=b'z') } else { rng.random_range(b'A'..=b'Z') })
                .collect()
        })
        .collect()
}

/// Inserts the same random keys into a bytewise store and a casefold store, alternating, and
/// returns the median ops/s of each.
fn inserts(db: &Database, host: &Arc<PluginHost>, a: &Args) -> Result<(f64, f64)> {
    let order = host.key_order(db, &a.order)?;
    let value = [7u8; 100];
    let (mut builtin, mut wasm) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let keys = random_keys(a.n);
        for (i, (opts, out)) in [
            (StoreOptions::default(), &mut builtin),
            (StoreOptions { order: order.clone(), ..Default::default() }, &mut wasm),
        ]
        .into_iter()
        .enumerate()
        {
            let name = format!("s{round}-{i}");
            db.transact(|tx| tx.create_store(&name, opts.clone()).map(|_| ()))?;
            let t = Instant::now();
            for chunk in keys.chunks(a.batch) {
                db.transact(|tx| tx.open_store(&name)?.upsert_many(chunk.iter().map(|k| (k.as_slice(), &value[..]))))?;
            }
            out.push(a.n as f64 / t.elapsed().as_secs_f64());
        }
    }
    Ok((median(builtin), median(wasm)))
}

/// What one `encode` call of 1,000 keys costs per key: the guest's work plus crossing the
/// boundary, without the engine.
fn encode_cost(db: &Database, host: &Arc<PluginHost>, order: &str) -> Result<f64> {
    let codec = host.order_codec(db, order)?;
    let keys = random_keys(1_000);
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    codec.encode_many(&refs)?;
    let t = Instant::now();
    let rounds = 50;
    for _ in 0..rounds {
        codec.encode_many(&refs)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e9 / (rounds * refs.len()) as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Cold load (empty cache), cached load (fresh host, warm cache), and the first call.
fn loads(db: &Database, config: &dyn Fn() -> HostConfig) -> Result<(f64, f64, f64)> {
    let empty = tempfile::tempdir()?;
    let cold = PluginHost::new(HostConfig { cache_dir: Some(empty.path().into()), ..config() })?;
    let c = cold.prepare(db, "casefold")?;
    let warm = PluginHost::new(HostConfig { cache_dir: Some(empty.path().into()), ..config() })?;
    let w = warm.prepare(db, "casefold")?;
    if c.from_cache || !w.from_cache {
        bail!("the compile cache did not behave: cold from cache {}, warm from cache {}", c.from_cache, w.from_cache);
    }
    let codec = warm.order_codec(db, "casefold")?;
    let t = Instant::now();
    codec.encode_many(&[b"Hello"])?;
    Ok((c.millis, w.millis, t.elapsed().as_secs_f64() * 1e3))
}

fn validator_calls(db: &Database, host: &Arc<PluginHost>, calls: usize) -> Result<f64> {
    use sop::Extensions;
    let batch =
        [sop::Mutation { store: "people".into(), key: "ada".into(), value: Some(r#"{"name":"Ada","age":36}"#.into()) }];
    let run = |n: usize| -> Result<()> {
        for _ in 0..n {
            match host.validate(db, "json-schema", &batch) {
                Ok(Ok(())) => {}
                Ok(Err(r)) => bail!("the validator rejected a valid row: {r:?}"),
                Err(e) => bail!("validator failed: {e}"),
            }
        }
        Ok(())
    };
    run(50)?;
    let t = Instant::now();
    run(calls)?;
    Ok(t.elapsed().as_secs_f64() * 1e6 / calls as f64)
}

fn compute_calls(db: &Database, host: &Arc<PluginHost>, calls: usize) -> Result<f64> {
    db.transact(|tx| {
        tx.create_store("orders", StoreOptions::default())?.upsert(b"o1", b"10")?;
        tx.create_store("totals", StoreOptions::default()).map(|_| ())
    })?;
    let input = br#"{"source":"orders","target":"totals","key":"all"}"#;
    let tx = db.begin_write()?;
    for _ in 0..50 {
        host.run_in(&tx, "aggregate", input)?;
    }
    let t = Instant::now();
    for _ in 0..calls {
        host.run_in(&tx, "aggregate", input)?;
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
    tx.rollback();
    Ok(us)
}
