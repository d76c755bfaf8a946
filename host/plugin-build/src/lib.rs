//! Builds the plugins in `plugins/` for `wasm32-wasip2` and copies them to
//! `<target>/plugins/<name>.wasm`.
//!
//! Used by build scripts (so the normal build and test flow produce the plugins), by
//! `sop bench plugins`, and by `cargo run -p sop-plugin-build` (`just plugins`). Each plugin
//! is built alone: each enables one feature of the guest SDK, and building them together
//! would unify those features.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (this crate lives in `host/plugin-build`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// The plugin packages: every directory under `plugins/` (and `plugins/hostile/`) with a
/// `Cargo.toml`, as (package name, directory).
pub fn packages(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for dir in [root.join("plugins"), root.join("plugins/hostile")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.join("Cargo.toml").is_file()
                && p.join("src/lib.rs").is_file()
                && let Some(name) = p.file_name().and_then(|n| n.to_str())
            {
                out.push((name.to_string(), p));
            }
        }
    }
    out.sort();
    out
}

/// Builds every plugin (release, `wasm32-wasip2`) with the target directory
/// `<target>/wasm`, and copies each to `<target>/plugins/<name>.wasm`. Returns that folder.
pub fn build(root: &Path, target: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let wasm_target = target.join("wasm");
    let out_dir = target.join("plugins");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let manifest = root.join("plugins/Cargo.toml");
    for (name, _) in packages(root) {
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--release", "--quiet", "--target", "wasm32-wasip2", "-p", &name])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&wasm_target);
        // A build script runs with its own cargo's settings in the environment; the inner
        // build must not inherit the outer target's flags or wrappers.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "building plugin {name} failed ({status}); is the wasm32-wasip2 target installed? (rustup target add wasm32-wasip2)"
            ));
        }
        let artifact = wasm_target.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
        let dest = out_dir.join(format!("{name}.wasm"));
        let fresh = std::fs::read(&artifact).map_err(|e| format!("{}: {e}", artifact.display()))?;
        if std::fs::read(&dest).ok().as_ref() != Some(&fresh) {
            std::fs::write(&dest, &fresh).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
    }
    Ok(out_dir)
}

/// The workspace target directory as seen from a build script (`OUT_DIR` is
/// `<target>/<profile>/build/<package>-<hash>/out`).
pub fn target_from_out_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map(Path::to_path_buf).unwrap_or_else(|| repo_root().join("target"))
}

/// For build scripts: builds the plugins, reruns when their sources change, and exports
/// `SOP_PLUGINS_DIR` to the crate being built.
pub fn build_script() {
    let root = repo_root();
    for dir in ["plugins", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    let target = target_from_out_dir(&out_dir);
    match build(&root, &target) {
        Ok(dir) => println!("cargo:rustc-env=SOP_PLUGINS_DIR={}", dir.display()),
        Err(e) => panic!("{e}"),
    }
}
