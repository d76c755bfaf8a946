//! Plugins across processes, through the CLI: one process installs, others (with their own
//! compile caches, as on other nodes) load the plugins from the database and use them.

mod common;

use common::{fails, ok, plugins};

#[test]
fn one_process_installs_the_others_use() {
    let wasm = plugins();
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (node_a.path(), node_b.path());
    let d = dir.path().to_str().unwrap();
    let file = |n: &str| wasm.join(format!("{n}.wasm")).to_str().unwrap().to_string();

    // Node A installs a key order and a validator.
    let out = ok(a, &["plugin", "install", d, &file("casefold"), "--name", "casefold"]);
    assert!(out.starts_with("installed casefold@0.1.0 (key-order plugin"), "{out}");
    ok(a, &["plugin", "install", d, &file("json-schema"), "--name", "people-schema", "--deadline-ms", "250"]);

    // Node B creates a store with both and writes through them.
    ok(b, &["store", "create", d, "people", "--order", "casefold", "--validator", "people-schema"]);
    ok(b, &["put", d, "people", "Zoe", r#"{"name":"Zoe","age":3}"#]);
    ok(b, &["put", d, "people", "adam", r#"{"name":"Adam","age":30}"#]);
    ok(b, &["put", d, "people", "bea", r#"{"name":"Bea","age":7}"#]);
    // Same key in another case: replaces (the order is case-insensitive).
    ok(b, &["put", d, "people", "ADAM", r#"{"name":"Adam","age":31}"#]);
    let err = fails(b, &["put", d, "people", "eve", r#"{"name":"Eve"}"#]);
    assert!(err.contains("rejected by validator") && err.contains("missing required field"), "{err}");
    // Node B compiled both plugins into its own cache; nothing compiled sits in the database.
    assert_eq!(std::fs::read_dir(b).unwrap().count(), 2);

    // Node A (its own cache already warm) reads in the plugin's order.
    let scan = ok(a, &["scan", d, "people"]);
    let keys: Vec<&str> = scan.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(keys, ["ADAM", "bea", "Zoe"], "{scan}");
    assert!(ok(a, &["get", d, "people", "zoe"]).contains("\"age\":3"));

    // Compute, granted one store to read and one to write.
    ok(a, &["put", d, "orders", "o1", "10"]);
    ok(a, &["put", d, "orders", "o2", "5"]);
    ok(a, &["store", "create", d, "totals"]);
    ok(
        a,
        &["plugin", "install", d, &file("aggregate"), "--name", "aggregate", "--read", "orders", "--write", "totals"],
    );
    let out =
        ok(b, &["plugin", "run", d, "aggregate", "--input", r#"{"source":"orders","target":"totals","key":"all"}"#]);
    assert_eq!(out.trim(), r#"{"count":2,"sum":15.0}"#);
    assert_eq!(ok(a, &["get", d, "totals", "all"]).trim(), r#"{"count":2,"sum":15.0}"#);
    let err = fails(b, &["plugin", "install", d, &file("casefold"), "--name", "x", "--write", "totals"]);
    assert!(err.contains("apply to compute plugins"), "{err}");

    let list = ok(b, &["plugin", "list", d]);
    for name in ["casefold@0.1.0", "people-schema@0.1.0", "aggregate@0.1.0"] {
        assert!(list.contains(name), "{name} missing from:\n{list}");
    }
    assert!(list.contains("totals") && list.contains("orders (read)"), "{list}");

    // Removal: refused while a store uses it; forced, the store refuses to open.
    let err = fails(a, &["plugin", "remove", d, "casefold"]);
    assert!(err.contains("used by store(s) people"), "{err}");
    ok(a, &["plugin", "remove", d, "casefold", "--force"]);
    let err = fails(b, &["scan", d, "people"]);
    assert!(err.contains("key order") && err.contains("not available"), "{err}");
    ok(a, &["plugin", "install", d, &file("casefold"), "--name", "casefold"]);
    assert_eq!(ok(b, &["scan", d, "people"]), scan);
}

#[test]
fn plugin_test_runs_a_component_without_a_database() {
    let wasm = plugins();
    let node = tempfile::tempdir().unwrap();
    let c = node.path();
    let file = |n: &str| wasm.join(format!("{n}.wasm")).to_str().unwrap().to_string();
    // A key order: the encodings, in the order they give; equal sort keys are pointed out.
    let out = ok(c, &["plugin", "test", &file("casefold"), "--keys", "bea", "Adam", "ADAM", "zoe"]);
    let keys: Vec<&str> = out.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(keys, ["Adam", "ADAM", "bea", "zoe"], "{out}");
    assert!(out.contains("not injective") && out.contains("one item"), "{out}");
    // A validator: the verdict and its reasons.
    let good = r#"{"name":"Ada","age":36}"#;
    let out = ok(c, &["plugin", "test", &file("json-schema"), "--input", good, "--input", r#"{"name":"Eve"}"#]);
    assert!(out.starts_with("rejected") && out.contains("k1") && out.contains("missing required field"), "{out}");
    assert!(ok(c, &["plugin", "test", &file("json-schema"), "--input", good]).starts_with("accepted"));
    // Compute: the output.
    assert_eq!(ok(c, &["plugin", "test", &file("counter-compute"), "--input", "x"]).trim(), "1");
    // A nondeterministic key order is refused, naming the import, in one line.
    let err = fails(c, &["plugin", "test", &file("clock-order"), "--keys", "a"]);
    assert!(err.contains("wasi:") && err.contains("must be deterministic") && err.lines().count() == 1, "{err}");
}
