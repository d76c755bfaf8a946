//! The Wasm plugin host for sop.
//!
//! Plugins are WebAssembly components (WIT package `sop:plugin@0.1.0`, in `wit/`) stored in
//! the database itself, so every process that opens the database can load them:
//!
//! - **key orders** give a store a custom order through an order-preserving encoding;
//! - **validators** accept or reject each commit's writes to the stores they guard;
//! - **compute** functions run inside a transaction, through a `storage` interface limited
//!   to the stores they were granted.
//!
//! Guests run sandboxed in wasmtime with no ambient authority (no files, network,
//! environment or arguments), under a CPU deadline, a memory cap, an output cap and a
//! host-call cap per call. Every failure is a typed [`PluginError`]; the guest's store is
//! discarded and the host and the database carry on.
//!
//! The engine crate (`sop`) does not depend on this one: it calls plugins through
//! [`sop::Extensions`], which [`PluginHost`] implements.

mod bindings;
mod breaker;
mod compute;
mod determinism;
mod error;
mod host;
mod limits;
mod order;
mod plugin;
pub mod registry;
mod runtime;
mod state;

pub use breaker::{BreakerPolicy, BreakerState};
pub use error::PluginError;
pub use host::{HostConfig, InstallOptions, LoadReport, PluginHost, PluginInfo};
pub use limits::Limits;
pub use order::WasmOrder;
pub use registry::PluginRecord;
pub use runtime::WIT_VERSION;

use serde::{Deserialize, Serialize};

/// The kinds of plugin, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginKind {
    /// `key-order-plugin`: a custom key order.
    KeyOrder,
    /// `validator-plugin`: checks each commit's writes.
    Validator,
    /// `compute-plugin`: runs inside a transaction.
    Compute,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::KeyOrder => "key-order",
            PluginKind::Validator => "validator",
            PluginKind::Compute => "compute",
        })
    }
}

/// A store a compute plugin may open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The store's name.
    pub store: String,
    /// Whether it may write (else read only).
    pub write: bool,
}

impl Grant {
    /// Read access to `store`.
    pub fn read(store: &str) -> Grant {
        Grant { store: store.into(), write: false }
    }
    /// Read and write access to `store`.
    pub fn write(store: &str) -> Grant {
        Grant { store: store.into(), write: true }
    }
}
