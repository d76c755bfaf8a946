//! Builds the plugins in `plugins/` (for `wasm32-wasip2`) so the plugin tests can load them
//! from `SOP_PLUGINS_DIR`.

fn main() {
    sop_plugin_build::build_script();
}
