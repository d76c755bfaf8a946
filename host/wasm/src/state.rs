//! What a guest's store holds: a deny-all WASI context, the limiter, counters and the log.

use crate::compute::ComputeCtx;
use crate::limits::{Limiter, Limits};
use crate::{PluginError, bindings};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Log lines kept per call.
const LOG_LINES: usize = 64;
/// Longest log line kept.
const LOG_LINE: usize = 1024;

pub(crate) struct HostState {
    /// No preopened directories, no environment or arguments, stdin closed, stdout and
    /// stderr discarded, every socket address denied: toolchains that import WASI get
    /// nothing from it (`determinism::wasi_ctx`).
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub plugin: String,
    pub limits: Limits,
    pub host_calls: u64,
    /// Set by a host function just before it traps, so the trap is reported precisely.
    pub violation: Option<PluginError>,
    pub log: Vec<String>,
    pub compute: Option<ComputeCtx>,
}

impl HostState {
    pub fn new(plugin: &str, limits: Limits, deterministic: bool) -> HostState {
        HostState {
            wasi: crate::determinism::wasi_ctx(deterministic),
            table: ResourceTable::new(),
            limiter: Limiter { cap: limits.memory_bytes, refused: None },
            plugin: plugin.to_string(),
            limits,
            host_calls: 0,
            violation: None,
            log: Vec::new(),
            compute: None,
        }
    }

    fn emit(&mut self, level: &str, message: String) {
        if self.log.len() < LOG_LINES {
            let mut m = message;
            m.truncate(m.floor_char_boundary(LOG_LINE));
            self.log.push(format!("{level}: {m}"));
        }
    }

    /// Records a violation and returns the trap that ends the call.
    pub fn violate(&mut self, e: PluginError) -> wasmtime::Error {
        let msg = e.to_string();
        self.violation = Some(e);
        wasmtime::Error::msg(msg)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

macro_rules! impl_log {
    ($($world:ident),*) => {$(
        impl bindings::$world::sop::plugin::log::Host for HostState {
            fn emit(
                &mut self,
                level: bindings::$world::sop::plugin::log::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                HostState::emit(self, &format!("{level:?}").to_lowercase(), message);
                Ok(())
            }
        }
    )*};
}
impl_log!(order, validator, compute);
impl bindings::compute::sop::plugin::types::Host for HostState {}
