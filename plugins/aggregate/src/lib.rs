//! Reads a range of one store and writes an aggregate of it into another, inside the
//! caller's transaction.
//!
//! Input (JSON): `{"source": "orders", "target": "totals", "key": "all",
//! "start": "a", "end": "m", "field": "amount"}`. `start`, `end` and `field` are optional.
//! Values are JSON numbers, or JSON objects whose `field` is a number. Writes
//! `{"count": n, "sum": s}` under `key` in `target` and returns the same JSON.

use serde_json::{Value, json};
use sop_plugin::Store;

struct Aggregate;

fn text<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>, String> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("input field {name:?} must be a string")),
    }
}

impl sop_plugin::Compute for Aggregate {
    fn run(input: &[u8]) -> Result<Vec<u8>, String> {
        let input: Value = serde_json::from_slice(input).map_err(|e| format!("input is not JSON: {e}"))?;
        let need = |name| text(&input, name)?.ok_or_else(|| format!("input needs {name:?}"));
        let (source, target, key) = (need("source")?, need("target")?, need("key")?);
        let (start, end, field) = (text(&input, "start")?, text(&input, "end")?, text(&input, "field")?);
        let src = Store::open(source)?;
        let (mut count, mut sum) = (0u64, 0f64);
        for item in src.range(start.map(str::as_bytes), end.map(str::as_bytes))? {
            let (k, v) = item?;
            let v: Value = serde_json::from_slice(&v)
                .map_err(|e| format!("{source}[{}]: value is not JSON: {e}", String::from_utf8_lossy(&k)))?;
            let n = match field {
                Some(f) => v.get(f).and_then(Value::as_f64),
                None => v.as_f64(),
            };
            sum += n.ok_or_else(|| format!("{source}[{}]: no number to add", String::from_utf8_lossy(&k)))?;
            count += 1;
        }
        let out = json!({ "count": count, "sum": sum }).to_string();
        Store::open(target)?.put(key.as_bytes(), out.as_bytes())?;
        Ok(out.into_bytes())
    }
}

sop_plugin::export_compute!(Aggregate);
