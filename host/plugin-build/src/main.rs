//! `cargo run -p sop-plugin-build`: builds the plugins into `target/plugins/`.

fn main() {
    let root = sop_plugin_build::repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|| root.join("target"));
    match sop_plugin_build::build(&root, &target) {
        Ok(dir) => {
            for (name, _) in sop_plugin_build::packages(&root) {
                println!("{}", dir.join(format!("{name}.wasm")).display());
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
