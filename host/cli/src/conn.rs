//! How a command reaches a database: the folder, and in swarm mode a Redis URL.

use anyhow::{Context, Result, bail};
use sop::{Database, DbOptions};
use std::path::Path;
use std::sync::Arc;

/// Connection settings shared by every command (`--redis`, `SOP_REDIS_URL`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Conn {
    /// Join the swarm: coordinate with other processes through this Redis
    /// (e.g. redis://127.0.0.1:6379). Without it, the embedded coordinator is used.
    #[arg(long, global = true, env = "SOP_REDIS_URL")]
    pub redis: Option<String>,
    /// Key prefix in Redis, so several databases can share one server.
    #[arg(long, global = true, default_value = "sop")]
    pub redis_prefix: String,
}

impl Conn {
    /// Database options for this connection.
    pub fn options(&self, create: bool) -> Result<DbOptions> {
        let mut o = DbOptions { create_if_missing: create, ..DbOptions::default() };
        if let Some(url) = &self.redis {
            let c = sop_redis::RedisCoordinator::connect(sop_redis::RedisOptions::new(
                url.clone(),
                self.redis_prefix.clone(),
            ))
            .with_context(|| format!("cannot reach Redis at {url}"))?;
            o.coordinator = Arc::new(c);
        }
        Ok(o)
    }

    /// Opens the database in `dir` (creating it when `create`).
    pub fn open(&self, dir: &Path, create: bool) -> Result<Database> {
        self.open_with(dir, self.options(create)?)
    }

    /// Opens the database in `dir` with `opts` (from [`Conn::options`], adjusted).
    pub fn open_with(&self, dir: &Path, opts: DbOptions) -> Result<Database> {
        let create = opts.create_if_missing;
        if !create && !dir.exists() {
            bail!("folder {} does not exist", dir.display());
        }
        let what = if create { "open or create" } else { "open" };
        let db = Database::open_with(dir, opts)
            .with_context(|| format!("cannot {what} the database in {}", dir.display()))?;
        // Stores with plugin key orders or validators work from every command.
        host()?.attach(&db);
        Ok(db)
    }
}

/// The process's plugin host (compiled plugins cached in `SOP_WASM_CACHE` or the user's
/// cache directory, never in the database folder).
pub fn host() -> Result<Arc<sop_wasm::PluginHost>> {
    static HOST: std::sync::OnceLock<Arc<sop_wasm::PluginHost>> = std::sync::OnceLock::new();
    if let Some(h) = HOST.get() {
        return Ok(h.clone());
    }
    let h = sop_wasm::PluginHost::new(Default::default()).context("cannot start the plugin host")?;
    Ok(HOST.get_or_init(|| h).clone())
}
