//! A loaded plugin: compiled, linked, ready to instantiate; and how its failures are named.

use crate::breaker::Breaker;
use crate::limits::Limits;
use crate::runtime::Runtime;
use crate::state::HostState;
use crate::{PluginError, PluginKind};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

pub(crate) struct Loaded {
    /// The alias it was loaded under (or the hash), for messages.
    pub name: String,
    pub hash: String,
    pub kind: PluginKind,
    /// Limits declared in the plugin's record when it was loaded (key orders and
    /// validators; compute reads its record again per call).
    pub limits: Limits,
    /// Whether its WASI context has stopped clocks and zero random numbers
    /// (`determinism.rs`).
    pub deterministic: bool,
    pub pre: InstancePre<HostState>,
    /// Trips the plugin after repeated traps or timeouts.
    pub breaker: Breaker,
    rt: &'static Runtime,
}

impl Loaded {
    // Each argument is a separate fact about the plugin being loaded, all taken at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rt: &'static Runtime,
        name: String,
        hash: String,
        kind: PluginKind,
        limits: Limits,
        deterministic: bool,
        breaker: Breaker,
        component: &wasmtime::component::Component,
    ) -> Result<Loaded, PluginError> {
        let linker = rt.linker(component)?;
        let pre = linker.instantiate_pre(component).map_err(|e| PluginError::Invalid(crate::runtime::one_line(&e)))?;
        Ok(Loaded { name, hash, kind, limits, deterministic, pre, breaker, rt })
    }

    /// Runs one call of this plugin through its circuit breaker.
    pub fn guarded<T>(&self, call: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
        self.breaker.admit(&self.name)?;
        let r = call();
        self.breaker.record(&r);
        r
    }

    /// A fresh store under this plugin's limits.
    pub fn store(&self) -> Store<HostState> {
        self.store_with(self.limits)
    }

    /// A fresh store under the given limits.
    pub fn store_with(&self, limits: Limits) -> Store<HostState> {
        let mut s = Store::new(&self.rt.engine, HostState::new(&self.name, limits, self.deterministic));
        s.limiter(|h| &mut h.limiter);
        s.epoch_deadline_trap();
        self.arm(&mut s);
        s
    }

    /// Starts a call: a new CPU deadline, counters and log cleared.
    pub fn arm(&self, s: &mut Store<HostState>) {
        s.set_epoch_deadline(Runtime::ticks(s.data().limits.deadline_ms));
        let h = s.data_mut();
        h.host_calls = 0;
        h.violation = None;
        h.limiter.refused = None;
        h.log.clear();
    }

    /// Names what ended a call.
    pub fn failure(&self, s: &mut Store<HostState>, e: wasmtime::Error) -> PluginError {
        let h = s.data_mut();
        if let Some(v) = h.violation.take() {
            return v;
        }
        if let Some(wanted) = h.limiter.refused {
            return PluginError::MemoryLimit { plugin: self.name.clone(), wanted, cap: h.limiter.cap };
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return PluginError::Timeout { plugin: self.name.clone(), deadline_ms: h.limits.deadline_ms };
        }
        let mut detail = format!("{e:#}");
        if let Some(last) = h.log.last() {
            detail.push_str(&format!(" (last log line: {last})"));
        }
        PluginError::Trap { plugin: self.name.clone(), detail }
    }
}
