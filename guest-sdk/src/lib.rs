//! Write sop plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. Enable the feature of the
//! kind you write (`key-order`, `validator` or `compute`), implement one trait, and export it
//! with the matching macro:
//!
//! ```ignore
//! use sop_plugin::KeyOrder;
//!
//! struct CaseInsensitive;
//!
//! impl KeyOrder for CaseInsensitive {
//!     const NAME: &'static str = "case-insensitive";
//!     const INJECTIVE: bool = false;
//!     fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
//!         let s = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_string())?;
//!         out.extend(s.to_lowercase().bytes());
//!         Ok(())
//!     }
//! }
//!
//! sop_plugin::export_key_order!(CaseInsensitive);
//! ```
//!
//! The interface itself is `wit/plugin.wit` (package `sop:plugin@0.1.0`).

#[cfg(any(
    all(feature = "key-order", feature = "validator"),
    all(feature = "key-order", feature = "compute"),
    all(feature = "validator", feature = "compute")
))]
compile_error!("enable exactly one of the features key-order, validator and compute: a plugin is one kind");

mod flat;
pub use flat::FlatBuilder;

#[cfg(feature = "key-order")]
mod order;
#[cfg(feature = "key-order")]
pub use order::KeyOrder;
#[cfg(feature = "key-order")]
#[doc(hidden)]
pub mod __order {
    pub use crate::order::{compare, encode, info};
}

#[cfg(feature = "validator")]
mod validate;
#[cfg(feature = "validator")]
pub use validate::{Mutation, Validator};
#[cfg(feature = "validator")]
#[doc(hidden)]
pub mod __validate {
    pub use crate::validate::validate;
}

#[cfg(feature = "compute")]
mod compute;
#[cfg(feature = "compute")]
pub use compute::{Compute, Range, StorageError, Store};
#[cfg(feature = "compute")]
#[doc(hidden)]
pub mod __compute {
    pub use crate::compute::run;
}

/// Generated bindings of the key-order world.
#[cfg(feature = "key-order")]
#[doc(hidden)]
pub mod order_bindings {
    wit_bindgen::generate!({
        world: "key-order-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_key_order_world",
        default_bindings_module: "sop_plugin::order_bindings",
    });
}

/// Generated bindings of the validator world.
#[cfg(feature = "validator")]
#[doc(hidden)]
pub mod validator_bindings {
    wit_bindgen::generate!({
        world: "validator-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_validator_world",
        default_bindings_module: "sop_plugin::validator_bindings",
    });
}

/// Generated bindings of the compute world.
#[cfg(feature = "compute")]
#[doc(hidden)]
pub mod compute_bindings {
    wit_bindgen::generate!({
        world: "compute-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_compute_world",
        default_bindings_module: "sop_plugin::compute_bindings",
    });
}

#[cfg(feature = "compute")]
use compute_bindings::sop::plugin::log as wit_log;
#[cfg(feature = "key-order")]
use order_bindings::sop::plugin::log as wit_log;
#[cfg(feature = "validator")]
use validator_bindings::sop::plugin::log as wit_log;

/// Diagnostics for the host's log (a bounded tail per call; never stdout).
#[cfg(any(feature = "key-order", feature = "validator", feature = "compute"))]
pub mod log {
    use super::wit_log::{Level, emit};

    /// Logs at debug level.
    pub fn debug(message: &str) {
        emit(Level::Debug, message)
    }
    /// Logs at info level.
    pub fn info(message: &str) {
        emit(Level::Info, message)
    }
    /// Logs at warning level.
    pub fn warn(message: &str) {
        emit(Level::Warn, message)
    }
    /// Logs at error level.
    pub fn error(message: &str) {
        emit(Level::Error, message)
    }
}
