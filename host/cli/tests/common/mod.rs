//! What the CLI tests share: `sop` run as a separate process, as a user would run it.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Builds the plugins in `plugins/` (if needed) and returns the folder of their `.wasm` files.
pub fn plugins() -> PathBuf {
    let root = sop_plugin_build::repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    sop_plugin_build::build(&root, &target).expect("build the plugins")
}

/// `sop` on "node" `cache` (its private compile cache), in embedded mode unless the
/// arguments say `--redis`.
pub fn command(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sop"));
    c.env("SOP_WASM_CACHE", cache).env_remove("SOP_REDIS_URL");
    c
}

pub fn sop(cache: &Path, args: &[&str]) -> Output {
    command(cache).args(args).output().expect("run sop")
}

/// Runs `sop` and expects success; returns stdout.
pub fn ok(cache: &Path, args: &[&str]) -> String {
    let o = sop(cache, args);
    assert!(
        o.status.success(),
        "sop {args:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// Runs `sop` and expects the failure exit code (1) with an error and no panic; returns
/// stdout and stderr together.
pub fn fails(cache: &Path, args: &[&str]) -> String {
    let o = sop(cache, args);
    let printed = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "sop {args:?} should fail with exit code 1; printed {printed}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.starts_with("error: ") && !stderr.contains("panicked"), "sop {args:?}: {stderr}");
    printed
}

/// The value of a `label   value` row of a report.
pub fn row<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines().find_map(|l| l.strip_prefix(label)).map(str::trim)
}
