//! Determinism by construction. A key order decides where every key lives in every node's
//! tree, and a validator's verdict decides whether a commit exists; neither may depend on the
//! time, on random numbers or on the host it runs on. Three layers keep them deterministic:
//!
//! 1. the engine canonicalises NaNs and lowers relaxed SIMD deterministically
//!    (`runtime.rs`), so the same code computes the same bits on every CPU;
//! 2. at install, a component that imports anything whose answers can vary (clocks, random
//!    numbers, sockets, HTTP, or anything unknown) is refused, naming the import;
//! 3. at run time, their WASI context answers clocks with zero and random numbers with
//!    zeros, so even a component installed before these checks cannot see the time or
//!    entropy.
//!
//! Validators may opt out at install (`InstallOptions::nondeterministic`); compute plugins
//! run inside one transaction on one node and get the host's clocks and random numbers.

use crate::{PluginError, PluginKind};
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// Imports whose answers are the same on every call and host in the deny-all context:
/// the plugin interfaces, streams (stdin is empty, stdout and stderr are discarded),
/// exit, an empty environment and argument list, and a file system with nothing preopened.
const STABLE: [&str; 4] = ["sop:plugin/", "wasi:io/", "wasi:cli/", "wasi:filesystem/"];

/// Whether plugins of `kind` must be deterministic (validators unless installed with
/// `nondeterministic`).
pub(crate) fn required(kind: PluginKind, nondeterministic: bool) -> bool {
    match kind {
        PluginKind::KeyOrder => true,
        PluginKind::Validator => !nondeterministic,
        PluginKind::Compute => false,
    }
}

/// Refuses a component that imports anything that could make it nondeterministic, naming
/// the first such import.
pub(crate) fn check_imports(
    engine: &Engine,
    component: &Component,
    plugin: &str,
    kind: PluginKind,
) -> Result<(), PluginError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if !STABLE.iter().any(|p| name.starts_with(p)) {
            return Err(PluginError::Nondeterministic { plugin: plugin.into(), kind, import: name.to_string() });
        }
    }
    Ok(())
}

/// A clock stopped at zero (the Unix epoch for the wall clock).
struct Stopped;

impl HostWallClock for Stopped {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Stopped {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The deny-all WASI context: no preopened directories, no environment or arguments, stdin
/// closed, stdout and stderr discarded, every socket address denied. A deterministic one
/// also has stopped clocks and random numbers that are all zeros.
pub(crate) fn wasi_ctx(deterministic: bool) -> WasiCtx {
    let mut b = WasiCtx::builder();
    if deterministic {
        b.wall_clock(Stopped)
            .monotonic_clock(Stopped)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0]))
            .insecure_random_seed(0);
    }
    b.build()
}
