//! Rejects writes whose value is not a JSON object with the fields and types of
//! `schema.json` (compiled in: edit it and rebuild to change the rules; removes always pass).
//!
//! Types: `string`, `number`, `integer`, `boolean`, `object`, `array`, `null`.

use serde_json::{Map, Value};

struct JsonSchema;

const SCHEMA: &str = include_str!("../schema.json");

fn type_ok(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn fields<'a>(schema: &'a Value, part: &str) -> impl Iterator<Item = (&'a String, &'a str)> {
    schema.get(part).and_then(Value::as_object).into_iter().flatten().map(|(k, v)| (k, v.as_str().unwrap_or("?")))
}

fn check(doc: &Map<String, Value>) -> Result<(), String> {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| format!("schema.json: {e}"))?;
    for (name, ty) in fields(&schema, "required") {
        match doc.get(name) {
            None => return Err(format!("missing required field {name:?}")),
            Some(v) if !type_ok(v, ty) => return Err(format!("field {name:?} must be of type {ty}")),
            _ => {}
        }
    }
    for (name, ty) in fields(&schema, "optional") {
        if let Some(v) = doc.get(name)
            && !type_ok(v, ty)
        {
            return Err(format!("field {name:?} must be of type {ty}"));
        }
    }
    if schema.get("additional") == Some(&Value::Bool(false)) {
        let known = |k: &String| fields(&schema, "required").chain(fields(&schema, "optional")).any(|(n, _)| n == k);
        if let Some(k) = doc.keys().find(|k| !known(k)) {
            return Err(format!("unknown field {k:?}"));
        }
    }
    Ok(())
}

impl sop_plugin::Validator for JsonSchema {
    fn validate(m: &sop_plugin::Mutation) -> Result<(), String> {
        let Some(value) = m.value else { return Ok(()) };
        match serde_json::from_slice::<Value>(value) {
            Ok(Value::Object(doc)) => check(&doc),
            Ok(_) => Err("value is not a JSON object".into()),
            Err(e) => Err(format!("value is not JSON: {e}")),
        }
    }
}

sop_plugin::export_validator!(JsonSchema);
