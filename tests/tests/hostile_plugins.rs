//! Hostile plugins: each is stopped with a typed error, its transaction rolls back, and the
//! next operation on the same database works; and the sandbox gives a guest no files,
//! sockets, environment, arguments or preopened directories.
//!
//! The guests are in `plugins/hostile/` (built for tests only, never installed for real).

use sop::{Error, StoreOptions};
use sop_wasm::{Grant, InstallOptions, Limits, PluginError, PluginKind};
use std::time::{Duration, Instant};

/// The deadline these tests configure.
const DEADLINE_MS: u64 = 100;
/// Catches a guest that is never stopped. How soon it is stopped depends on the machine's
/// load, so it is measured by `sop bench plugins`, not asserted here.
const HANG: Duration = Duration::from_secs(30);

/// Runs `f`, which a limit must stop, and fails the test only if it hangs.
fn contained<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    eprintln!("{what}: ended after {took:?}");
    assert!(took < HANG, "{what} was not stopped: {took:?}");
    r
}

use sop_tests::plugins::{PluginEnv as Env, wasm};

/// A database whose plugins get the deadline these tests configure, and two stores.
fn env() -> Env {
    let e = Env::with(|config| {
        for kind in [PluginKind::KeyOrder, PluginKind::Validator, PluginKind::Compute] {
            config.default_limits.insert(kind, Limits { deadline_ms: DEADLINE_MS, ..Limits::default_for(kind) });
        }
    });
    e.db.transact(|tx| {
        tx.create_store("public", StoreOptions::default())?.upsert(b"k", b"v")?;
        tx.create_store("secret", StoreOptions::default())?.upsert(b"k", b"v")
    })
    .unwrap();
    e
}

trait Hostile {
    fn hostile_compute(&self, grants: Vec<Grant>, limits: Option<Limits>);
    fn run(&self, input: &str) -> Error;
    fn assert_untouched(&self);
}

impl Hostile for Env {
    fn hostile_compute(&self, grants: Vec<Grant>, limits: Option<Limits>) {
        self.host
            .install(
                &self.db,
                "hostile",
                &wasm("hostile-compute"),
                InstallOptions { grants, limits, ..Default::default() },
            )
            .unwrap();
    }

    /// Runs the hostile compute plugin inside a transaction that also writes, returns the
    /// plugin error, and checks the transaction left nothing behind.
    fn run(&self, input: &str) -> Error {
        let r = contained(input, || {
            self.db.transact(|tx| {
                tx.open_store("public")?.upsert(b"caller", b"wrote")?;
                Ok(self.host.run_in(tx, "hostile", input.as_bytes())?)
            })
        });
        let err = r.expect_err("the hostile call must fail");
        assert!(PluginError::find(&err).is_some(), "not a plugin error: {err:?}");
        self.assert_untouched();
        err
    }

    /// Nothing from failed transactions is visible, and the database still works.
    fn assert_untouched(&self) {
        let tx = self.db.begin_read().unwrap();
        for k in [&b"caller"[..], b"ok", b"defaced", b"half"] {
            assert!(tx.open_store("public").unwrap().get(k).unwrap().is_none(), "{}", String::from_utf8_lossy(k));
        }
        assert!(tx.open_store("secret").unwrap().get(b"stolen").unwrap().is_none());
        drop(tx);
        self.db.transact(|tx| tx.open_store("public")?.upsert(b"after", b"fine")).unwrap();
        self.db.transact(|tx| tx.open_store("public")?.remove(b"after").map(|_| ())).unwrap();
    }
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let err = e.run("loop");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::Timeout { deadline_ms: DEADLINE_MS, .. }), "{err:?}");
    // The plugin itself still works for honest input afterwards.
    assert_eq!(e.host.run(&e.db, "hostile", b"echo").unwrap(), b"echo");
}

#[test]
fn a_memory_bomb_hits_its_cap() {
    let e = env();
    let limits = Limits { memory_bytes: 8 << 20, ..Limits::default_for(PluginKind::Compute) };
    e.hostile_compute(vec![Grant::write("public")], Some(Limits { deadline_ms: DEADLINE_MS, ..limits }));
    let err = e.run("bomb");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::MemoryLimit { cap, .. } if *cap == 8 << 20), "{err:?}");
}

#[test]
fn a_trap_is_a_typed_error() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let err = e.run("trap");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
}

#[test]
fn a_huge_output_is_refused() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let err = e.run("huge");
    let err = PluginError::find(&err).unwrap();
    assert!(
        matches!(err, PluginError::OutputTooLarge { len, cap, .. } if *len == 8 << 20 && *cap == 4 << 20),
        "{err:?}"
    );
}

#[test]
fn writing_a_store_not_granted_is_denied_and_rolled_back() {
    let e = env();
    // Granted "public" (read-write) only; it writes "public", then tries "secret".
    e.hostile_compute(vec![Grant::write("public")], None);
    let err = e.run("rogue");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Denied { detail, .. } if detail.contains("secret")), "{err:?}");
    // Read-only grant: the write is refused.
    e.host.remove(&e.db, "hostile", false).unwrap();
    e.hostile_compute(vec![Grant::read("public")], None);
    let err = e.run("rogue-write");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Denied { detail, .. } if detail.contains("read-only")), "{err:?}");
}

#[test]
fn a_guest_error_after_writes_rolls_them_back() {
    let e = env();
    e.hostile_compute(vec![Grant::write("public")], None);
    let err = e.run("write-then-fail");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(&err, PluginError::Guest { message, .. } if message.contains("gave up")), "{err:?}");
}

#[test]
fn a_host_call_flood_hits_its_cap() {
    let e = env();
    let limits = Limits { host_calls: 1000, deadline_ms: 5000, ..Limits::default_for(PluginKind::Compute) };
    e.hostile_compute(vec![Grant::write("public")], Some(limits));
    let err = e.run("flood");
    let err = PluginError::find(&err).unwrap();
    assert!(matches!(err, PluginError::HostCallLimit { cap: 1000, .. }), "{err:?}");
}

#[test]
fn a_codec_that_does_not_preserve_order_is_refused_at_install() {
    let e = env();
    let r = e.host.install(&e.db, "bad", &wasm("bad-order"), InstallOptions::default());
    match r {
        Err(PluginError::NotOrderPreserving { detail, .. }) => eprintln!("refused: {detail}"),
        other => panic!("{other:?}"),
    }
    assert!(e.host.list(&e.db).unwrap().is_empty());
}

#[test]
fn a_key_order_that_misbehaves_fails_the_operation_and_nothing_else() {
    let e = env();
    e.host.install(&e.db, "hostile-order", &wasm("hostile-order"), InstallOptions::default()).unwrap();
    let order = e.host.key_order(&e.db, "hostile-order").unwrap();
    e.db.transact(|tx| tx.create_store("h", StoreOptions { order: order.clone(), ..Default::default() }).map(|_| ()))
        .unwrap();
    e.db.transact(|tx| tx.open_store("h")?.upsert(b"fine", b"1")).unwrap();
    let attempt = |key: &str| {
        let r = contained(&format!("key order on {key:?}"), || {
            e.db.transact(|tx| {
                let s = tx.open_store("h")?;
                s.upsert(b"also-fine", b"2")?;
                s.upsert(key.as_bytes(), b"x")
            })
        });
        r.expect_err("must fail")
    };
    let err = attempt("loop-forever");
    assert!(matches!(PluginError::find(&err), Some(PluginError::Timeout { .. })), "{err:?}");
    let err = attempt("trap");
    assert!(matches!(PluginError::find(&err), Some(PluginError::Trap { .. })), "{err:?}");
    let err = attempt("bomb");
    assert!(matches!(PluginError::find(&err), Some(PluginError::MemoryLimit { .. })), "{err:?}");
    // A sort key longer than any key may be is refused by the engine.
    let err = attempt("huge");
    assert!(matches!(err, Error::KeyTooLarge { .. }), "{err:?}");
    // Batched writes fail as a whole.
    let r = e.db.transact(|tx| tx.open_store("h")?.upsert_many([(&b"ok-1"[..], &b"1"[..]), (b"trap", b"2")]));
    assert!(matches!(PluginError::find(&r.unwrap_err()), Some(PluginError::Trap { .. })));
    // Only the honest item is there, and the store keeps working.
    let tx = e.db.begin_read().unwrap();
    let keys: Vec<_> = tx.open_store("h").unwrap().iter().unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, [&b"fine"[..]]);
    drop(tx);
    e.db.transact(|tx| tx.open_store("h")?.upsert(b"later", b"3")).unwrap();
}

#[test]
fn a_validator_that_loops_or_traps_fails_the_commit() {
    let e = env();
    e.host.install(&e.db, "hv", &wasm("hostile-validator"), InstallOptions::default()).unwrap();
    e.db.transact(|tx| {
        tx.create_store("v", StoreOptions { validator: Some("hv".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap();
    for (value, want) in [("loop", "timeout"), ("trap", "trap"), ("reject", "rejected")] {
        let err = contained(&format!("validator on {value:?}"), || {
            e.db.transact(|tx| {
                let s = tx.open_store("v")?;
                s.upsert(b"good", b"ok")?;
                s.upsert(b"bad", value.as_bytes())
            })
        })
        .unwrap_err();
        let got = match (&err, PluginError::find(&err)) {
            (Error::Rejected { .. }, _) => "rejected",
            (_, Some(PluginError::Timeout { .. })) => "timeout",
            (_, Some(PluginError::Trap { .. })) => "trap",
            _ => panic!("{err:?}"),
        };
        assert_eq!(got, want);
        assert_eq!(e.db.begin_read().unwrap().open_store("v").unwrap().count().unwrap(), 0);
    }
    e.db.transact(|tx| tx.open_store("v")?.upsert(b"good", b"ok")).unwrap();
    assert_eq!(e.db.begin_read().unwrap().open_store("v").unwrap().count().unwrap(), 1);
    // Reinstalling the same component with other limits applies them at once.
    let limits = Limits { deadline_ms: 300, ..Limits::default_for(PluginKind::Validator) };
    e.host
        .install(&e.db, "hv", &wasm("hostile-validator"), InstallOptions { limits: Some(limits), ..Default::default() })
        .unwrap();
    let err = e.db.transact(|tx| tx.open_store("v")?.upsert(b"bad", b"loop")).unwrap_err();
    assert!(matches!(PluginError::find(&err), Some(PluginError::Timeout { deadline_ms: 300, .. })), "{err:?}");
}

/// A fake secret in the host's environment, which no guest may see.
const SECRET_VAR: &str = "SOP_TEST_SANDBOX_SECRET";
const SECRET: &str = "canary-4b1d-not-a-real-secret";

fn redact(s: &str) -> String {
    s.replace(SECRET, "<SECRET>")
}

/// Runs this test binary again with only `test` selected and the secret in its environment,
/// and checks the secret appears nowhere in what it printed.
fn rerun_with_secret(test: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SECRET_VAR, SECRET)
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!printed.contains(SECRET), "the secret reached the output:\n{}", redact(&printed));
    assert!(out.status.success(), "{test} failed:\n{printed}");
    assert!(printed.contains("1 passed"), "{test} did not run:\n{printed}");
}

#[test]
fn the_sandbox_has_no_files_sockets_environment_or_preopens() {
    // The secret must be in the environment before the host starts, as a real one would be;
    // setting it now would race the other tests' threads, so a child process does the work.
    if std::env::var(SECRET_VAR).as_deref() != Ok(SECRET) {
        return rerun_with_secret("the_sandbox_has_no_files_sockets_environment_or_preopens");
    }
    let e = env();
    let limits = Limits::default_for(PluginKind::Compute);
    let install = InstallOptions { grants: vec![Grant::read("public")], limits: Some(limits), ..Default::default() };
    e.host.install(&e.db, "probe", &wasm("sandbox-probe"), install).unwrap();

    // Targets the host itself can reach, so that every denial below is the sandbox's doing.
    let db_file = e.path().join("sop.db");
    assert!(db_file.is_file() && std::fs::read("/etc/passwd").is_ok());
    let escaped = e.path().join("escaped");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let path = |p: &std::path::Path| p.display().to_string();
    let probes = [
        ("read", "/etc/passwd".to_string()),
        ("read", path(&db_file)),
        ("read", "sop.db".into()),
        ("write", path(&escaped)),
        ("list", "/".into()),
        ("list", ".".into()),
        ("list", path(e.path())),
        ("connect", tcp.local_addr().unwrap().to_string()),
        ("listen", "127.0.0.1:0".into()),
        ("udp", udp.local_addr().unwrap().to_string()),
        ("lookup", "localhost".into()),
        ("env", SECRET_VAR.into()),
        ("environ", String::new()),
        ("args", String::new()),
        ("preopens", String::new()),
    ];
    let mut said = Vec::new();
    for (what, arg) in probes {
        let probe = format!("{what} {arg}");
        let outcome = match e.host.run(&e.db, "probe", probe.as_bytes()) {
            Ok(out) => String::from_utf8_lossy(&out).into_owned(),
            // Failing by trapping is failing too, as long as it is a trap.
            Err(err @ PluginError::Trap { .. }) => format!("trapped: {err:?}"),
            Err(err) => format!("failed otherwise: {err:?}"),
        };
        // The first line is enough to see what happened (a file read may be binary).
        eprintln!("{probe}: {}", redact(&outcome.lines().next().unwrap_or("").chars().take(120).collect::<String>()));
        said.push((probe, outcome));
    }
    let all: String = said.iter().map(|(p, o)| format!("{p}: {o}\n")).collect();
    assert!(!all.contains(SECRET), "the guest got the secret:\n{}", redact(&all));
    let allowed: Vec<&str> = said
        .iter()
        .filter(|(_, o)| !o.starts_with("denied: ") && !o.starts_with("trapped: "))
        .map(|(p, _)| &p[..])
        .collect();
    assert!(allowed.is_empty(), "not denied: {allowed:?}");

    // Nothing the guest tried reached the host's side.
    assert!(!escaped.exists(), "the guest wrote a file");
    tcp.set_nonblocking(true).unwrap();
    assert!(tcp.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "the guest connected");
    udp.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(udp.recv_from(&mut buf).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "the guest sent");
    e.assert_untouched();
}

#[test]
fn a_key_order_that_reads_the_clock_is_refused_at_install_naming_the_import() {
    let e = env();
    let err = e.host.install(&e.db, "clock", &wasm("clock-order"), InstallOptions::default()).unwrap_err();
    let PluginError::Nondeterministic { import, kind: PluginKind::KeyOrder, .. } = &err else { panic!("{err:?}") };
    assert!(import.starts_with("wasi:clocks/") || import.starts_with("wasi:random/"), "{import}");
    let msg = err.to_string();
    assert!(msg.contains(import.as_str()) && !msg.contains('\n'), "{msg}");
    eprintln!("refused: {msg}");
    // Key orders cannot opt out, and nothing was installed.
    let opts = InstallOptions { nondeterministic: true, ..Default::default() };
    let err = e.host.install(&e.db, "clock", &wasm("clock-order"), opts).unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err:?}");
    assert!(e.host.list(&e.db).unwrap().is_empty());
}

#[test]
fn no_state_survives_from_one_call_to_the_next() {
    let e = env();
    e.host.install(&e.db, "count", &wasm("counter-compute"), InstallOptions::default()).unwrap();
    e.host.install(&e.db, "count-v", &wasm("counter-validator"), InstallOptions::default()).unwrap();
    let tx = e.db.begin_write().unwrap();
    for _ in 0..5 {
        assert_eq!(e.host.run_in(&tx, "count", b"").unwrap(), b"1", "a compute call saw an earlier call's state");
    }
    drop(tx);
    e.db.transact(|tx| {
        tx.create_store("counted", StoreOptions { validator: Some("count-v".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap();
    for i in 0..5u8 {
        // The validator rejects any call after the first its instance sees.
        e.db.transact(|tx| tx.open_store("counted")?.upsert(&[i], b"v")).unwrap();
    }
}

#[test]
fn a_plugin_that_keeps_trapping_is_tripped_then_retried_after_its_cooldown() {
    let cooldown = Duration::from_millis(300);
    let e = Env::with(|c| c.breaker = sop_wasm::BreakerPolicy { failures: 3, cooldown });
    e.host.install(&e.db, "hv", &wasm("hostile-validator"), InstallOptions::default()).unwrap();
    e.db.transact(|tx| {
        tx.create_store("v", StoreOptions { validator: Some("hv".into()), ..Default::default() }).map(|_| ())
    })
    .unwrap();
    let write = |value: &[u8]| e.db.transact(|tx| tx.open_store("v")?.upsert(b"k", value));
    for _ in 0..3 {
        let err = write(b"trap").unwrap_err();
        assert!(matches!(PluginError::find(&err), Some(PluginError::Trap { .. })), "{err:?}");
    }
    // Tripped: even a good write is refused at once, with an error naming the plugin.
    let err = write(b"fine").unwrap_err();
    let Some(PluginError::Tripped { plugin, failures: 3, .. }) = PluginError::find(&err) else { panic!("{err:?}") };
    assert_eq!(plugin, "hv@0.1.0");
    let listed = e.host.list(&e.db).unwrap();
    assert!(matches!(listed[0].breaker, sop_wasm::BreakerState::Tripped { failures: 3, .. }), "{listed:?}");
    // Another process on this node sees the trip too.
    let other = e.sibling_host();
    assert!(other.list(&e.db).unwrap()[0].breaker.to_string().starts_with("tripped"));
    // After the cooldown one call is let through; success closes the breaker.
    std::thread::sleep(cooldown);
    write(b"fine").unwrap();
    assert_eq!(e.host.list(&e.db).unwrap()[0].breaker, sop_wasm::BreakerState::Closed);
    write(b"fine").unwrap();
}
