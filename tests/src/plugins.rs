//! What the plugin tests share: the components built by this crate's build script, and a
//! fresh database with a plugin host attached.

use sop::Database;
use sop_wasm::{HostConfig, PluginHost};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The folder the build script put the plugins in (`target/plugins`).
pub fn dir() -> PathBuf {
    PathBuf::from(env!("SOP_PLUGINS_DIR"))
}

/// The bytes of `target/plugins/<name>.wasm`.
pub fn wasm(name: &str) -> Vec<u8> {
    let p = dir().join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A database in a temporary folder, with a plugin host whose compile cache is another
/// temporary folder (a node of its own).
pub struct PluginEnv {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
    pub db: Database,
    pub host: Arc<PluginHost>,
}

impl PluginEnv {
    /// With the host's default limits.
    pub fn new() -> PluginEnv {
        PluginEnv::with(|_| {})
    }

    /// With the host configuration adjusted by `tune`.
    pub fn with(tune: impl FnOnce(&mut HostConfig)) -> PluginEnv {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let db = Database::open_or_create(dir.path()).unwrap();
        let mut config = HostConfig { cache_dir: Some(cache.path().into()), ..Default::default() };
        tune(&mut config);
        let host = PluginHost::new(config).unwrap();
        host.attach(&db);
        PluginEnv { dir, cache, db, host }
    }

    /// Another host on the same node (sharing the compile cache), as another process would be.
    pub fn sibling_host(&self) -> Arc<PluginHost> {
        PluginHost::new(HostConfig { cache_dir: Some(self.cache.path().into()), ..Default::default() }).unwrap()
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for PluginEnv {
    fn default() -> Self {
        PluginEnv::new()
    }
}
