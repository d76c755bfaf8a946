//! Results: the JSON a child prints, the parent's JSON object and its table.

use super::Workload;
use super::workload::PhaseOps;
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;

/// Phase names, in [`PhaseOps`] order.
pub const PHASES: [&str; 6] = ["insert", "read", "scan", "update", "delete", "commit1"];

/// One engine's figures.
#[derive(Clone, Debug)]
pub struct EngineResult {
    /// Operations per second of each phase.
    pub ops: PhaseOps,
    /// Peak resident memory of the process that ran the engine, in MiB.
    pub peak_rss_mb: f64,
    /// The disk's flush rate probed just before this engine's commit1 phase (or its run).
    pub fsync_per_s: Option<f64>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `{"insert": ops, ..., "commit1": ops, "peak_rss_mb": x}`, plus `"fsync_per_s"` between
/// child and parent (`with_probe`); the `--json` output keeps the documented shape.
pub fn engine_json(r: &EngineResult, with_probe: bool) -> Value {
    let mut m = Map::new();
    for (p, v) in PHASES.iter().zip(r.ops) {
        m.insert((*p).into(), json!(round1(v)));
    }
    m.insert("peak_rss_mb".into(), json!(round1(r.peak_rss_mb)));
    if let (true, Some(f)) = (with_probe, r.fsync_per_s) {
        m.insert("fsync_per_s".into(), json!(round1(f)));
    }
    Value::Object(m)
}

/// Parses what a child (or the SOP-Go script) printed: its last line that is a JSON object
/// with every phase and `peak_rss_mb` (and, from a child, `fsync_per_s`).
pub fn parse_child(stdout: &[u8]) -> Result<EngineResult> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON object in its output")?;
    let v: Value = serde_json::from_str(line).context("its JSON does not parse")?;
    let num = |name: &str| -> Result<f64> {
        match v.get(name).and_then(Value::as_f64) {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => bail!("its JSON has no valid {name:?}"),
        }
    };
    let mut ops = [0.0; 6];
    for (o, p) in ops.iter_mut().zip(PHASES) {
        *o = num(p)?;
    }
    let fsync_per_s = v.get("fsync_per_s").and_then(Value::as_f64).filter(|x| x.is_finite() && *x > 0.0);
    Ok(EngineResult { ops, peak_rss_mb: num("peak_rss_mb")?, fsync_per_s })
}

/// The flush rate of the run: the median of the probe at the start and the one before each
/// engine's commit1 phase.
pub fn median_fsync(first: f64, results: &[(String, EngineResult)]) -> f64 {
    let mut v: Vec<f64> = std::iter::once(first).chain(results.iter().filter_map(|(_, r)| r.fsync_per_s)).collect();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// The `--json` output: one object.
pub fn json(w: &Workload, fsync_per_s: f64, results: &[(String, EngineResult)]) -> Result<String> {
    let mut engines = Map::new();
    for (name, r) in results {
        engines.insert(name.clone(), engine_json(r, false));
    }
    let v = json!({
        "workload": {
            "n": w.n,
            "batch": w.batch,
            "single": w.single,
            "value_size": w.value_size,
            "slot_length": w.slot_length,
        },
        "fsync_per_s": round1(fsync_per_s),
        "engines": engines,
    });
    Ok(serde_json::to_string_pretty(&v)?)
}

/// 1234567 → "1.23M", 84123 → "84.1k", 950 → "950".
fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A progress line for one engine.
pub fn one_line(r: &EngineResult) -> String {
    let mut s = String::new();
    for (p, v) in PHASES.iter().zip(r.ops) {
        let _ = write!(s, "{p} {}/s  ", human(v));
    }
    let _ = write!(s, "peak {:.0} MiB", r.peak_rss_mb);
    if let Some(f) = r.fsync_per_s {
        let _ = write!(s, "  (disk {}/s)", human(f));
    }
    s
}

/// The table: ops/s per engine and phase, peak RSS, commits per device flush, then sop's
/// ratio to each peer, then how each engine was made durable.
pub fn table(w: &Workload, fsync_per_s: f64, results: &[(String, EngineResult)]) -> String {
    const COL: usize = 10;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nsop bench: {} keys of 16 B, values of {} B; {} items per commit; {} single-item commits; sop slot length {}",
        w.n, w.value_size, w.batch, w.single, w.slot_length
    );
    let _ = writeln!(
        s,
        "disk flush rate (4 KiB write + fdatasync, same folder, same run): {}/s (median of the probes)\n",
        human(fsync_per_s)
    );

    let header = |s: &mut String, title: &str, names: &[&str]| {
        let _ = write!(s, "{title:<16}");
        for n in names {
            let _ = write!(s, "{n:>COL$}");
        }
        let _ = writeln!(s);
    };
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    header(&mut s, "ops/s", &names);
    for (i, p) in PHASES.iter().enumerate() {
        let _ = write!(s, "{p:<16}");
        for (_, r) in results {
            let _ = write!(s, "{:>COL$}", human(r.ops[i]));
        }
        let _ = writeln!(s);
    }
    let _ = write!(s, "{:<16}", "peak RSS MiB");
    for (_, r) in results {
        let _ = write!(s, "{:>COL$.0}", r.peak_rss_mb);
    }
    let _ = writeln!(s);
    // The disk's rate moves within a run: compare commit1 with the probe taken just before it.
    let _ = write!(s, "{:<16}", "flushes/s then");
    for (_, r) in results {
        let _ = write!(s, "{:>COL$}", human(r.fsync_per_s.unwrap_or(fsync_per_s)));
    }
    let _ = writeln!(s);
    let _ = write!(s, "{:<16}", "commit1 / flush");
    for (_, r) in results {
        let _ = write!(s, "{:>COL$.2}", r.ops[5] / r.fsync_per_s.unwrap_or(fsync_per_s));
    }
    let _ = writeln!(s);

    if let Some((_, ours)) = results.iter().find(|(n, _)| n == "sop") {
        let peers: Vec<&(String, EngineResult)> = results.iter().filter(|(n, _)| n != "sop").collect();
        if !peers.is_empty() {
            let _ = writeln!(s);
            let names: Vec<&str> = peers.iter().map(|(n, _)| n.as_str()).collect();
            header(&mut s, "sop ÷ peer", &names);
            for (i, p) in PHASES.iter().enumerate() {
                let _ = write!(s, "{p:<16}");
                for (_, r) in &peers {
                    let ratio = if r.ops[i] > 0.0 { format!("{:.2}x", ours.ops[i] / r.ops[i]) } else { "-".into() };
                    let _ = write!(s, "{ratio:>COL$}");
                }
                let _ = writeln!(s);
            }
        }
    }

    let _ = writeln!(s, "\nDurability (a durable commit has reached the disk when it returns):");
    let notes = [
        ("sop", "durable: default DbOptions: one synced commit file per batch, directory synced"),
        ("redb", "durable: default Durability::Immediate (fsync per commit)"),
        ("lmdb", "durable: heed defaults: sync on commit (no NO_SYNC / NO_META_SYNC)"),
        ("fjall", "durable: each batch with PersistMode::SyncAll (its default only buffers in the OS)"),
        ("sqlite", "durable: journal_mode=WAL, synchronous=FULL, WITHOUT ROWID table"),
    ];
    for (name, how) in notes {
        if names.contains(&name) {
            let _ = writeln!(s, "  {name:<7} {how}");
        }
    }
    if names.contains(&"sop_go") {
        let _ = writeln!(
            s,
            "  sop_go  NOT durable: the reference engine (SOP-Go via sop4py, standalone) never calls fsync;\n          \
             it runs from Python, one FFI call per batch, SlotLength 1000"
        );
    } else {
        let _ = writeln!(s, "  (the reference engine, SOP-Go, does not fsync at all; add it with --with-sop-go)");
    }
    let data_mib = (w.n * (16 + w.value_size)) as f64 / f64::from(1 << 20);
    let _ = writeln!(
        s,
        "Peak RSS: each engine's own process, including the workload's keys and values (~{data_mib:.0} MiB)."
    );
    s
}
