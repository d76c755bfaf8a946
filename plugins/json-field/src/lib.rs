//! Orders JSON object keys by their `"id"` field, then by the whole key.
//!
//! The field's value is encoded by type, in this order: missing, null, false, true, numbers
//! (numerically), strings (bytewise). Keys that are not JSON objects are rejected. To order by
//! another field, change `FIELD` and rebuild: the new component has a new hash, so stores
//! made with the old one keep their order.

use serde_json::Value;
use std::cmp::Ordering;

const FIELD: &str = "id";

struct JsonField;

fn field(key: &[u8]) -> Result<Option<Value>, String> {
    match serde_json::from_slice::<Value>(key) {
        Ok(Value::Object(mut m)) => Ok(m.remove(FIELD)),
        Ok(_) => Err("key is not a JSON object".into()),
        Err(e) => Err(format!("key is not JSON: {e}")),
    }
}

/// Bits of an f64 whose unsigned order is the numeric order.
fn f64_key(f: f64) -> u64 {
    let b = f.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

fn rank(v: &Option<Value>) -> u8 {
    match v {
        None => 0,
        Some(Value::Null) => 1,
        Some(Value::Bool(false)) => 2,
        Some(Value::Bool(true)) => 3,
        Some(Value::Number(_)) => 4,
        Some(Value::String(_)) => 5,
        Some(_) => 6,
    }
}

impl sop_plugin::KeyOrder for JsonField {
    const NAME: &'static str = "json-field(id)";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let v = field(key)?;
        out.push(rank(&v));
        match &v {
            Some(Value::Number(n)) => out.extend_from_slice(&f64_key(n.as_f64().unwrap_or(0.0)).to_be_bytes()),
            Some(Value::String(s)) => escape(s.as_bytes(), out),
            Some(other @ (Value::Array(_) | Value::Object(_))) => escape(other.to_string().as_bytes(), out),
            _ => {}
        }
        // The whole key breaks ties, so distinct keys stay distinct.
        out.extend_from_slice(key);
        Ok(())
    }

    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        let (Ok(va), Ok(vb)) = (field(a), field(b)) else { return a.cmp(b) };
        let by_field = rank(&va).cmp(&rank(&vb)).then_with(|| match (&va, &vb) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => {
                x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0))
            }
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
            _ => Ordering::Equal,
        });
        by_field.then_with(|| a.cmp(b))
    }
}

/// Escapes 0x00 as 00 FF and terminates with 00 00, so a string sorts before its extensions
/// and the tie-breaking key that follows cannot reorder it.
fn escape(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

sop_plugin::export_key_order!(JsonField);
