//! The process-wide wasmtime engine, its epoch ticker, the compile cache and linking.

use crate::state::HostState;
use crate::{PluginError, PluginKind, bindings};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of CPU deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// The WIT package version this host implements, and the ones it accepts from guests (while
/// the package is 0.x, guests built against 0.1.y run on any 0.1.z host).
pub const WIT_VERSION: &str = "0.1.0";

/// One engine per process: compiled code, the pooling allocator and the epoch are shared by
/// every database and plugin host in it.
pub(crate) struct Runtime {
    pub engine: Engine,
    /// Whether the pooling allocator could reserve its address space.
    pub pooling: bool,
    /// Distinguishes compiled code of this engine build and configuration in the cache.
    pub compat: u64,
}

impl Runtime {
    pub fn global() -> Result<&'static Runtime, PluginError> {
        static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
        RT.get_or_init(Runtime::new).as_ref().map_err(|e| PluginError::Host(e.clone()))
    }

    fn new() -> Result<Runtime, String> {
        let base = || {
            let mut c = Config::new();
            c.epoch_interruption(true);
            c.max_wasm_stack(512 << 10);
            // Plugins are synchronous; without async support a component call costs about
            // half as much (measured with wasmtime 48 on these machines).
            c.concurrency_support(false);
            // The same bits on every host: NaNs produced by float operations are
            // canonicalised, and relaxed SIMD takes its deterministic lowering. A key order
            // decides where keys live in every node's tree; a validator's verdict must not
            // depend on the CPU either.
            c.cranelift_nan_canonicalization(true);
            c.relaxed_simd_deterministic(true);
            c
        };
        let mut pooled = base();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(512)
            .max_memory_size(128 << 20)
            .max_component_instance_size(16 << 20)
            .max_core_instance_size(16 << 20)
            .max_memories_per_component(32)
            .max_tables_per_component(64)
            .max_core_instances_per_component(64)
            // Calls instantiate afresh (no state survives a call); resetting a slot by
            // rewriting only its dirty pages, without returning them to the kernel, keeps the
            // next instance free of page faults.
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // The pool reserves its address space up front; where that is refused (a small
        // `ulimit -v`, 32-bit hosts), fall back to allocating on demand.
        let (engine, pooling) = match Engine::new(&pooled) {
            Ok(e) => (e, true),
            Err(_) => (Engine::new(&base()).map_err(|e| format!("cannot create the wasmtime engine: {e}"))?, false),
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let compat = h.finish();
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("sop-wasm-epoch".into())
            .spawn(move || {
                while let Some(e) = ticker.upgrade() {
                    drop(e);
                    std::thread::sleep(TICK);
                    match ticker.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(Runtime { engine, pooling, compat })
    }

    /// Ticks for a deadline (one extra, since the current tick is partly gone).
    pub fn ticks(deadline_ms: u64) -> u64 {
        deadline_ms.div_ceil(TICK.as_millis() as u64) + 1
    }

    /// Compiles `bytes`, or loads the compiled code from the node-local cache.
    /// Compiled code is never read from the shared database folder: loading it is
    /// `unsafe` (it is native code), so write access to shared storage must not turn into
    /// code execution on every node.
    pub fn load(&self, hash: &str, bytes: &[u8], cache: Option<&Path>) -> Result<(Component, bool), PluginError> {
        let path = cache.map(|d| d.join(format!("{hash}-{:016x}.cwasm", self.compat)));
        if let Some(cached) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
            // Read into memory rather than mapped: a mapped file that someone truncates
            // under a running process would kill it with SIGBUS.
            // SAFETY: the bytes come from this node's private cache directory, written by
            // `store_compiled` below from code this engine compiled itself after checking
            // the component's sha256 (which names the file). wasmtime also checks that they
            // were produced by a compatible engine. Bytes that fail to load are recompiled
            // and replaced.
            if let Ok(c) = unsafe { Component::deserialize(&self.engine, &cached) } {
                return Ok((c, true));
            }
        }
        check_header(bytes)?;
        let c = Component::new(&self.engine, bytes).map_err(|e| PluginError::Invalid(one_line(&e)))?;
        if let Some(p) = path {
            // A cache that cannot be written only costs a recompile next time.
            let _ = store_compiled(&c, &p);
        }
        Ok((c, false))
    }

    /// A linker for one component: deny-all WASI, the sop interfaces, and traps for any
    /// other import.
    pub fn linker(&self, component: &Component) -> Result<Linker<HostState>, PluginError> {
        let mut l = Linker::<HostState>::new(&self.engine);
        let host = |e: wasmtime::Error| PluginError::Host(format!("linking: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_sync(&mut l).map_err(host)?;
        bindings::compute::sop::plugin::log::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(&mut l, |s| s)
            .map_err(host)?;
        bindings::compute::sop::plugin::types::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut l,
            |s| s,
        )
        .map_err(host)?;
        bindings::compute::sop::plugin::storage::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut l,
            |s| s,
        )
        .map_err(host)?;
        // Stub only when something is really missing: wasmtime 48's
        // `define_unknown_imports_as_traps` looks instances up by exact name, so an import of
        // `wasi:cli/environment@0.2.9` (componentize-py 0.25) gets a trapping stub that then
        // shadows the semver-compatible `@0.2.12` that `add_to_linker_sync` defined.
        if l.instantiate_pre(component).is_err() {
            l.define_unknown_imports_as_traps(component).map_err(host)?;
        }
        Ok(l)
    }
}

/// Names what the bytes are when they are not a component, in one sentence.
fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
        return Err(PluginError::Invalid("the file is not WebAssembly (it does not start with \\0asm)".into()));
    }
    // Bytes 4..8: version and layer. A core module is version 1, layer 0.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::Invalid(
            "the file is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
             (or wrap it with `wasm-tools component new`)"
                .into(),
        ));
    }
    Ok(())
}

/// An error and its causes on one line, cut to a readable length.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let mut s: String = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 400 {
        s.truncate(s.floor_char_boundary(400));
        s.push_str("...");
    }
    s
}

fn store_compiled(c: &Component, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Private to this user: whoever can write here can have native code loaded.
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let bytes = c.serialize().map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), rand_suffix()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The kind and WIT version of a component, from the interfaces it exports.
pub(crate) fn classify(engine: &Engine, c: &Component) -> Result<(PluginKind, String), PluginError> {
    let ty = c.component_type();
    let mut found = None;
    for (name, _) in ty.exports(engine) {
        let Some(rest) = name.strip_prefix("sop:plugin/") else { continue };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let kind = match iface {
            "key-order" => PluginKind::KeyOrder,
            "validator" => PluginKind::Validator,
            "compute" => PluginKind::Compute,
            _ => continue,
        };
        if found.is_some() {
            return Err(PluginError::Invalid("the component exports more than one plugin interface".into()));
        }
        found = Some((kind, version.to_string()));
    }
    let (kind, version) = found.ok_or_else(|| {
        PluginError::Invalid("the component exports none of sop:plugin/key-order, validator or compute".into())
    })?;
    if !compatible(&version) {
        return Err(PluginError::Invalid(format!(
            "the component was built for sop:plugin@{version}; this host implements {WIT_VERSION}"
        )));
    }
    Ok((kind, version))
}

/// Semver compatibility as the component model applies it: same major, and for 0.x the same
/// minor.
fn compatible(version: &str) -> bool {
    let (Ok(v), Ok(h)) = (semver::Version::parse(version), semver::Version::parse(WIT_VERSION)) else { return false };
    if h.major == 0 { v.major == 0 && v.minor == h.minor } else { v.major == h.major }
}

/// The default node-local compile cache: `$SOP_WASM_CACHE`, else the user's cache directory.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SOP_WASM_CACHE") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("sop").join("wasm"))
}
