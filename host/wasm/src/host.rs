//! The plugin host: installs plugins into a database, loads them on demand, and serves the
//! engine's extension points.

use crate::bindings::compute::ComputePluginPre;
use crate::bindings::validator::ValidatorPluginPre;
use crate::bindings::validator::exports::sop::plugin::validator::{Mutation as WitMutation, Op};
use crate::breaker::{self, Breaker, BreakerPolicy, BreakerState};
use crate::compute::ComputeCtx;
use crate::determinism;
use crate::order::WasmOrder;
use crate::plugin::Loaded;
use crate::registry::{self, PluginRecord};
use crate::runtime::{self, Runtime};
use crate::state::HostState;
use crate::{Grant, Limits, PluginError, PluginKind};
use parking_lot::Mutex;
use sop::{Database, KeyOrder, Transaction};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// How a host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled code is cached on this node. `None` disables the cache. The default is
    /// `$SOP_WASM_CACHE`, else `$XDG_CACHE_HOME/sop/wasm` or `~/.cache/sop/wasm`. Never point
    /// it into the shared database folder.
    pub cache_dir: Option<PathBuf>,
    /// Limits given to plugins installed without their own, per kind.
    pub default_limits: HashMap<PluginKind, Limits>,
    /// When a plugin that keeps trapping or timing out is tripped, and for how long.
    pub breaker: BreakerPolicy,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: runtime::default_cache_dir(),
            default_limits: HashMap::new(),
            breaker: BreakerPolicy::default(),
        }
    }
}

impl HostConfig {
    fn breaker(&self, hash: &str) -> Breaker {
        Breaker::new(self.breaker, self.cache_dir.as_deref(), hash)
    }

    fn limits_for(&self, kind: PluginKind) -> Limits {
        self.default_limits.get(&kind).copied().unwrap_or(Limits::default_for(kind))
    }
}

/// How to install a plugin.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Stores a compute plugin may open (ignored for other kinds).
    pub grants: Vec<Grant>,
    /// Limits for this plugin; the host's defaults for its kind if `None`.
    pub limits: Option<Limits>,
    /// Validators only: allow the plugin to see the clock and random numbers (its verdicts
    /// may then differ between calls and nodes). Key orders are always deterministic;
    /// compute plugins always get the host's clocks.
    pub nondeterministic: bool,
}

/// An installed plugin, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// `name@version`.
    pub alias: String,
    /// sha256 of the component, hex.
    pub hash: String,
    /// The stored record.
    pub record: PluginRecord,
    /// Its circuit breaker on this node (this host's, else as another process recorded it).
    pub breaker: BreakerState,
}

/// How a plugin was made ready (see [`PluginHost::prepare`]).
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    /// Whether compiled code came from the node-local cache.
    pub from_cache: bool,
    /// Wall time to read, verify, compile or load, and link, in milliseconds.
    pub millis: f64,
}

/// A loaded plugin with its world's exports looked up.
type Ready<P> = (Arc<Loaded>, P);

/// Runs plugins for databases. One host serves any number of databases; all hosts in a
/// process share one wasmtime engine.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sop_wasm::{InstallOptions, PluginHost};
/// let db = sop::Database::open_or_create("/tmp/db")?;
/// let host = PluginHost::new(Default::default())?;
/// host.attach(&db);
/// let wasm = std::fs::read("target/plugins/casefold.wasm")?;
/// host.install(&db, "casefold", &wasm, InstallOptions::default())?;
/// let order = host.key_order(&db, "casefold")?;
/// db.transact(|tx| {
///     let s = tx.create_store("names", sop::StoreOptions { order: order.clone(), ..Default::default() })?;
///     s.upsert(b"Ada", b"1")
/// })?;
/// # Ok(()) }
/// ```
pub struct PluginHost {
    rt: &'static Runtime,
    config: HostConfig,
    /// Compiled and linked plugins, by hash.
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    orders: Mutex<HashMap<String, Arc<WasmOrder>>>,
    /// Validators and compute with their exports looked up, by hash.
    validators: Mutex<HashMap<String, Ready<ValidatorPluginPre<HostState>>>>,
    computes: Mutex<HashMap<String, Ready<ComputePluginPre<HostState>>>>,
}

impl PluginHost {
    /// A host with its own in-process plugin table (the engine is shared).
    pub fn new(config: HostConfig) -> Result<Arc<PluginHost>, PluginError> {
        Ok(Arc::new(PluginHost {
            rt: Runtime::global()?,
            config,
            loaded: Mutex::new(HashMap::new()),
            orders: Mutex::new(HashMap::new()),
            validators: Mutex::new(HashMap::new()),
            computes: Mutex::new(HashMap::new()),
        }))
    }

    /// Makes this host serve `db`'s key orders and validators.
    pub fn attach(self: &Arc<Self>, db: &Database) {
        db.set_extensions(self.clone());
    }

    /// Whether the engine runs with the pooling allocator (else it allocates on demand).
    pub fn pooling(&self) -> bool {
        self.rt.pooling
    }

    /// Installs a component under `name` (`name` or `name@version`; the version defaults to
    /// 0.1.0), in one transaction. The component is compiled and checked first: it must
    /// implement one sop world, and a key order must pass the order checks.
    pub fn install(
        &self,
        db: &Database,
        name: &str,
        wasm: &[u8],
        opts: InstallOptions,
    ) -> Result<PluginInfo, PluginError> {
        registry::check_name(name)?;
        let alias = match registry::split_name(name) {
            (_, Some(_)) => name.to_string(),
            (n, None) => format!("{n}@0.1.0"),
        };
        let hash = registry::sha256_hex(wasm);
        let (component, _) = self.rt.load(&hash, wasm, self.config.cache_dir.as_deref())?;
        let (kind, wit_version) = runtime::classify(&self.rt.engine, &component)?;
        let limits = opts.limits.unwrap_or(self.config.limits_for(kind));
        if opts.nondeterministic && kind != PluginKind::Validator {
            return Err(PluginError::Invalid(format!(
                "only validators can be installed as nondeterministic; {alias} is a {kind} plugin"
            )));
        }
        let deterministic = determinism::required(kind, opts.nondeterministic);
        if deterministic {
            determinism::check_imports(&self.rt.engine, &component, &alias, kind)?;
        }
        let loaded = Arc::new(Loaded::new(
            self.rt,
            alias.clone(),
            hash.clone(),
            kind,
            limits,
            deterministic,
            self.config.breaker(&hash),
            &component,
        )?);
        match kind {
            PluginKind::KeyOrder => WasmOrder::new(loaded.clone())?.verify()?,
            PluginKind::Validator => {
                ValidatorPluginPre::new(loaded.pre.clone())
                    .map_err(|e| PluginError::Invalid(crate::runtime::one_line(&e)))?;
            }
            PluginKind::Compute => {
                ComputePluginPre::new(loaded.pre.clone())
                    .map_err(|e| PluginError::Invalid(crate::runtime::one_line(&e)))?;
            }
        }
        let grants = if kind == PluginKind::Compute { opts.grants } else { Vec::new() };
        let record = PluginRecord {
            kind,
            wit_version,
            size: wasm.len() as u64,
            limits,
            grants,
            installed_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            nondeterministic: opts.nondeterministic,
        };
        db.transact(|tx| registry::put(tx, &alias, &hash, wasm, &record).map_err(sop::Error::from))
            .map_err(unwrap_plugin)?;
        // This host may hold the component under its old record (limits): load it afresh.
        self.forget(&hash);
        Ok(PluginInfo { alias, hash, record, breaker: BreakerState::Closed })
    }

    /// The kind of plugin a component is (compiling it, or loading it from the cache).
    pub fn kind_of(&self, wasm: &[u8]) -> Result<PluginKind, PluginError> {
        let hash = registry::sha256_hex(wasm);
        let (component, _) = self.rt.load(&hash, wasm, self.config.cache_dir.as_deref())?;
        Ok(runtime::classify(&self.rt.engine, &component)?.0)
    }

    /// Every installed alias.
    pub fn list(&self, db: &Database) -> Result<Vec<PluginInfo>, PluginError> {
        let tx = db.begin_read()?;
        let mut out = Vec::new();
        for (alias, hash) in registry::aliases(&tx)? {
            if let Some(record) = registry::record(&tx, &hash)? {
                let breaker = match self.loaded.lock().get(&hash) {
                    Some(l) => l.breaker.state(),
                    None => breaker::recorded(self.config.breaker, self.config.cache_dir.as_deref(), &hash),
                };
                out.push(PluginInfo { alias, hash, record, breaker });
            }
        }
        Ok(out)
    }

    /// Removes `name` (every version) or `name@version`. Refused while a store's key order
    /// pins the plugin or a store names it as validator, unless `force`: such stores then
    /// fail to open (or commit) with a clear error until the plugin is installed again.
    pub fn remove(&self, db: &Database, name: &str, force: bool) -> Result<Vec<String>, PluginError> {
        let removed = db.transact(|tx| {
            let targets: Vec<(String, String)> = match registry::split_name(name) {
                (_, Some(_)) => registry::resolve(tx, name)?.into_iter().collect(),
                (n, None) => registry::versions(tx, n)?.into_iter().map(|(_, a, h)| (a, h)).collect(),
            };
            if targets.is_empty() {
                return Err(PluginError::NotInstalled(name.into()).into());
            }
            if !force {
                let users = users(tx, name, &targets);
                if !users.is_empty() {
                    return Err(PluginError::InUse { plugin: name.into(), stores: users }.into());
                }
            }
            for (alias, hash) in &targets {
                registry::unlink(tx, alias, hash)?;
            }
            Ok(targets.into_iter().map(|(a, _)| a).collect::<Vec<_>>())
        });
        let removed = removed.map_err(unwrap_plugin)?;
        Ok(removed)
    }

    /// The key order to create a store with: the plugin `name` resolves to its hash, which
    /// the store then pins forever.
    pub fn key_order(&self, db: &Database, name: &str) -> Result<KeyOrder, PluginError> {
        let tx = db.begin_read()?;
        let (alias, hash) = registry::resolve(&tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let rec = registry::record(&tx, &hash)?.ok_or_else(|| PluginError::NotInstalled(alias.clone()))?;
        if rec.kind != PluginKind::KeyOrder {
            return Err(PluginError::WrongKind { plugin: alias, expected: PluginKind::KeyOrder, found: rec.kind });
        }
        Ok(KeyOrder::Custom { name: alias, id: hash })
    }

    /// Checks that `name` is an installed validator (to name it in store options).
    pub fn check_validator(&self, db: &Database, name: &str) -> Result<(), PluginError> {
        let tx = db.begin_read()?;
        let (alias, hash) = registry::resolve(&tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let rec = registry::record(&tx, &hash)?.ok_or_else(|| PluginError::NotInstalled(alias.clone()))?;
        if rec.kind != PluginKind::Validator {
            return Err(PluginError::WrongKind { plugin: alias, expected: PluginKind::Validator, found: rec.kind });
        }
        Ok(())
    }

    /// Loads `name` into this host (read from the database, hash checked, compiled or taken
    /// from the local cache, linked), and says how.
    pub fn prepare(&self, db: &Database, name: &str) -> Result<LoadReport, PluginError> {
        let t = Instant::now();
        let tx = db.begin_read()?;
        let (alias, hash) = registry::resolve(&tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        self.forget(&hash);
        let (_, from_cache) = self.load(&tx, &alias, &hash)?;
        Ok(LoadReport { from_cache, millis: t.elapsed().as_secs_f64() * 1e3 })
    }

    fn forget(&self, hash: &str) {
        self.loaded.lock().remove(hash);
        self.orders.lock().remove(hash);
        self.validators.lock().remove(hash);
        self.computes.lock().remove(hash);
    }

    /// A key-order plugin as a codec (to call it directly: benches, tools).
    pub fn order_codec(&self, db: &Database, name: &str) -> Result<Arc<WasmOrder>, PluginError> {
        let tx = db.begin_read()?;
        let (alias, hash) = registry::resolve(&tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        self.order(&tx, &alias, &hash)
    }

    fn order(&self, tx: &Transaction, alias: &str, hash: &str) -> Result<Arc<WasmOrder>, PluginError> {
        if let Some(o) = self.orders.lock().get(hash) {
            return Ok(o.clone());
        }
        let (loaded, _) = self.load(tx, alias, hash)?;
        let o = Arc::new(WasmOrder::new(loaded)?);
        self.orders.lock().insert(hash.to_string(), o.clone());
        Ok(o)
    }

    fn validator(
        &self,
        tx: &Transaction,
        alias: &str,
        hash: &str,
    ) -> Result<Ready<ValidatorPluginPre<HostState>>, PluginError> {
        self.ready(&self.validators, tx, alias, hash, PluginKind::Validator, ValidatorPluginPre::new)
    }

    fn compute(
        &self,
        tx: &Transaction,
        alias: &str,
        hash: &str,
    ) -> Result<Ready<ComputePluginPre<HostState>>, PluginError> {
        self.ready(&self.computes, tx, alias, hash, PluginKind::Compute, ComputePluginPre::new)
    }

    /// A plugin of `kind` with its world's exports looked up, loaded once per hash.
    fn ready<P: Clone>(
        &self,
        cache: &Mutex<HashMap<String, Ready<P>>>,
        tx: &Transaction,
        alias: &str,
        hash: &str,
        kind: PluginKind,
        bind: impl FnOnce(wasmtime::component::InstancePre<HostState>) -> wasmtime::Result<P>,
    ) -> Result<Ready<P>, PluginError> {
        if let Some(v) = cache.lock().get(hash) {
            return Ok(v.clone());
        }
        let (loaded, _) = self.load(tx, alias, hash)?;
        if loaded.kind != kind {
            return Err(PluginError::WrongKind { plugin: alias.into(), expected: kind, found: loaded.kind });
        }
        let pre = bind(loaded.pre.clone()).map_err(|e| PluginError::Invalid(crate::runtime::one_line(&e)))?;
        cache.lock().insert(hash.to_string(), (loaded.clone(), pre.clone()));
        Ok((loaded, pre))
    }

    fn load(&self, tx: &Transaction, alias: &str, hash: &str) -> Result<(Arc<Loaded>, bool), PluginError> {
        if let Some(l) = self.loaded.lock().get(hash) {
            return Ok((l.clone(), true));
        }
        let rec = registry::record(tx, hash)?.ok_or_else(|| PluginError::NotInstalled(format!("{alias} ({hash})")))?;
        let bytes = registry::bytes(tx, alias, hash, rec.size)?;
        let (component, from_cache) = self.rt.load(hash, &bytes, self.config.cache_dir.as_deref())?;
        let (kind, _) = runtime::classify(&self.rt.engine, &component)?;
        if kind != rec.kind {
            return Err(PluginError::Invalid(format!(
                "{alias}: the record says {}, the component is {kind}",
                rec.kind
            )));
        }
        let deterministic = determinism::required(kind, rec.nondeterministic);
        let l = Arc::new(Loaded::new(
            self.rt,
            alias.to_string(),
            hash.to_string(),
            kind,
            rec.limits,
            deterministic,
            self.config.breaker(hash),
            &component,
        )?);
        self.loaded.lock().insert(hash.to_string(), l.clone());
        Ok((l, from_cache))
    }

    /// Runs compute plugin `name` in its own transaction, committed on success (retried on
    /// conflicts).
    pub fn run(&self, db: &Database, name: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        db.transact(|tx| self.run_in(tx, name, input).map_err(sop::Error::from)).map_err(unwrap_plugin)
    }

    /// Runs compute plugin `name` inside the caller's transaction: its reads see the
    /// transaction's writes, and its writes commit or roll back with it.
    ///
    /// ```no_run
    /// # fn demo(db: &sop::Database, host: &sop_wasm::PluginHost) -> sop::Result<()> {
    /// db.transact(|tx| {
    ///     tx.open_store("orders")?.upsert(b"o-1", b"12.5")?;
    ///     let out = host.run_in(tx, "aggregate", br#"{"source":"orders","target":"totals","key":"all"}"#)?;
    ///     println!("{}", String::from_utf8_lossy(&out));
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn run_in(&self, tx: &Transaction, name: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let (alias, hash) = registry::resolve(tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let rec = registry::record(tx, &hash)?.ok_or_else(|| PluginError::NotInstalled(alias.clone()))?;
        if rec.kind != PluginKind::Compute {
            return Err(PluginError::WrongKind { plugin: alias, expected: PluginKind::Compute, found: rec.kind });
        }
        let (loaded, pre) = self.compute(tx, &alias, &hash)?;
        loaded.guarded(|| self.call_compute(tx, &alias, &loaded, &pre, &rec, input))
    }

    fn call_compute(
        &self,
        tx: &Transaction,
        alias: &str,
        loaded: &Loaded,
        pre: &ComputePluginPre<HostState>,
        rec: &PluginRecord,
        input: &[u8],
    ) -> Result<Vec<u8>, PluginError> {
        let mut store = loaded.store_with(rec.limits);
        store.data_mut().compute = Some(ComputeCtx::new(tx, rec.grants.clone()));
        let r = pre.instantiate(&mut store).and_then(|b| b.sop_plugin_compute().call_run(&mut store, input));
        let r = r.map_err(|e| loaded.failure(&mut store, e));
        // The store holds a pointer to `tx`: it must not outlive this call.
        drop(store);
        let out = r?.map_err(|message| PluginError::Guest { plugin: alias.to_string(), message })?;
        if out.len() as u64 > rec.limits.output_bytes {
            return Err(PluginError::OutputTooLarge {
                plugin: alias.to_string(),
                len: out.len() as u64,
                cap: rec.limits.output_bytes,
            });
        }
        Ok(out)
    }

    fn validate_batch(&self, db: &Database, name: &str, batch: &[sop::Mutation]) -> Result<sop::Verdict, PluginError> {
        let tx = db.begin_read()?;
        let (alias, hash) = registry::resolve(&tx, name)?.ok_or_else(|| PluginError::NotInstalled(name.into()))?;
        let (loaded, pre) = self.validator(&tx, &alias, &hash)?;
        // Limits are read per call: reinstalling the same bytes with new limits applies them.
        let limits = registry::record(&tx, &hash)?.map_or(loaded.limits, |r| r.limits);
        drop(tx);
        let wit: Vec<WitMutation> = batch
            .iter()
            .map(|m| WitMutation {
                store: m.store.clone(),
                op: if m.value.is_some() { Op::Put } else { Op::Remove },
                key: m.key.to_vec(),
                value: m.value.as_ref().map(|v| v.to_vec()),
            })
            .collect();
        loaded.guarded(|| {
            // A fresh instance per commit: validators see only the batch they are given.
            let mut store = loaded.store_with(limits);
            let r = pre.instantiate(&mut store).and_then(|b| b.sop_plugin_validator().call_validate(&mut store, &wit));
            let verdict = r.map_err(|e| loaded.failure(&mut store, e))?;
            if let Err(reasons) = &verdict {
                let len: usize = reasons.iter().map(String::len).sum();
                if len as u64 > limits.output_bytes {
                    return Err(PluginError::OutputTooLarge {
                        plugin: alias.clone(),
                        len: len as u64,
                        cap: limits.output_bytes,
                    });
                }
            }
            Ok(verdict)
        })
    }
}

/// Stores that depend on `name`: key orders pinning one of `targets`, validators naming it.
fn users(tx: &Transaction, name: &str, targets: &[(String, String)]) -> Vec<String> {
    let base = registry::split_name(name).0;
    tx.store_metas()
        .into_iter()
        .filter(|m| {
            let by_order =
                matches!(&m.options.order, KeyOrder::Custom { id, .. } if targets.iter().any(|(_, h)| h == id));
            // A validator named without a version follows whichever version is highest.
            let by_validator =
                m.options.validator.as_deref().is_some_and(|v| v == base || targets.iter().any(|(a, _)| a == v));
            by_order || by_validator
        })
        .map(|m| m.name)
        .collect()
}

/// Takes a plugin error back out of a database error.
fn unwrap_plugin(e: sop::Error) -> PluginError {
    match e {
        sop::Error::Plugin { source, .. } => match source.downcast_ref::<PluginError>() {
            Some(p) => p.clone(),
            None => PluginError::Host(source.to_string()),
        },
        other => PluginError::Engine(other),
    }
}

impl sop::Extensions for PluginHost {
    fn key_order(&self, db: &Database, name: &str, id: &str) -> Result<Arc<dyn sop::OrderCodec>, sop::ExtError> {
        let tx = db.begin_read()?;
        let o = self.order(&tx, name, id)?;
        Ok(o)
    }

    fn validate(&self, db: &Database, validator: &str, batch: &[sop::Mutation]) -> Result<sop::Verdict, sop::ExtError> {
        Ok(self.validate_batch(db, validator, batch)?)
    }
}
