//! Typed plugin errors.

use crate::PluginKind;

/// Everything that can go wrong with a plugin. Each case is contained: the guest's store is
/// discarded, and the host and the database are untouched.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access).
    #[error("plugin {plugin:?} trapped: {detail}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// wasmtime's description of the trap.
        detail: String,
    },
    /// The call ran past its CPU deadline and was interrupted.
    #[error("plugin {plugin:?} ran past its deadline of {deadline_ms} ms and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The deadline.
        deadline_ms: u64,
    },
    /// The guest asked for more memory than its cap.
    #[error("plugin {plugin:?} tried to grow its memory to {wanted} bytes; its cap is {cap} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Bytes the guest asked for.
        wanted: u64,
        /// The cap.
        cap: u64,
    },
    /// The guest returned more output than allowed.
    #[error("plugin {plugin:?} returned {len} bytes; the cap is {cap}")]
    OutputTooLarge {
        /// The plugin.
        plugin: String,
        /// Bytes returned.
        len: u64,
        /// The cap.
        cap: u64,
    },
    /// The guest made more host calls than allowed in one invocation.
    #[error("plugin {plugin:?} made more than {cap} host calls in one invocation")]
    HostCallLimit {
        /// The plugin.
        plugin: String,
        /// The cap.
        cap: u64,
    },
    /// The guest used a store it was not granted, or wrote one granted read-only.
    #[error("plugin {plugin:?} was denied: {detail}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// What it tried.
        detail: String,
    },
    /// The guest ran and reported an error of its own.
    #[error("plugin {plugin:?} failed: {message}")]
    Guest {
        /// The plugin.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// No plugin of that name (or hash) is installed in this database.
    #[error("no plugin {0:?} is installed in this database")]
    NotInstalled(String),
    /// The stored bytes do not hash to the expected value (tampering or corruption).
    #[error("plugin bytes for {name:?} hash to {found}, expected {expected}")]
    HashMismatch {
        /// The plugin.
        name: String,
        /// The pinned hash.
        expected: String,
        /// The hash of the stored bytes.
        found: String,
    },
    /// The plugin is of another kind than the use needs.
    #[error("plugin {plugin:?} is a {found} plugin; a {expected} plugin is needed here")]
    WrongKind {
        /// The plugin.
        plugin: String,
        /// The kind needed.
        expected: PluginKind,
        /// The plugin's kind.
        found: PluginKind,
    },
    /// The bytes are not a component this host can run.
    #[error("not a usable sop plugin: {0}")]
    Invalid(String),
    /// A key order whose encoding disagrees with its own comparison, or is not deterministic.
    #[error("key order {plugin:?} is not order-preserving: {detail}")]
    NotOrderPreserving {
        /// The plugin.
        plugin: String,
        /// The counterexample.
        detail: String,
    },
    /// A key order (or a validator not installed as nondeterministic) imports something
    /// whose answers can differ between calls or hosts: a clock, random numbers, the network.
    #[error(
        "plugin {plugin:?} imports {import}, whose answers can differ between calls and hosts; a {kind} plugin must be deterministic{}",
        if *kind == PluginKind::Validator { " (install it as nondeterministic to allow this)" } else { "" }
    )]
    Nondeterministic {
        /// The plugin.
        plugin: String,
        /// Its kind.
        kind: PluginKind,
        /// The import refused.
        import: String,
    },
    /// The plugin trapped or timed out on too many calls in a row; it is refused until its
    /// cooldown ends (then one call is tried again).
    #[error(
        "plugin {plugin:?} is tripped after {failures} failed calls in a row (last: {last}); it is retried in {} s",
        retry_in_ms.div_ceil(1000)
    )]
    Tripped {
        /// The plugin.
        plugin: String,
        /// Failures in a row.
        failures: u32,
        /// Milliseconds until one call is tried again.
        retry_in_ms: u64,
        /// The last failure.
        last: String,
    },
    /// Removal refused: stores still depend on the plugin.
    #[error("plugin {plugin:?} is used by store(s) {}: remove them first (or force)", stores.join(", "))]
    InUse {
        /// The plugin.
        plugin: String,
        /// The stores.
        stores: Vec<String>,
    },
    /// The plugin host could not be set up (engine, compile cache).
    #[error("plugin host: {0}")]
    Host(String),
    /// The database failed underneath (a conflict, I/O); retrying the transaction may help.
    #[error(transparent)]
    Engine(#[from] sop::Error),
}

impl From<PluginError> for sop::Error {
    /// Database errors pass through unchanged (so the retry helper still sees conflicts);
    /// plugin failures become [`sop::Error::Plugin`] with this error as the source.
    fn from(e: PluginError) -> sop::Error {
        match e {
            PluginError::Engine(e) => e,
            other => sop::Error::plugin(other.plugin().unwrap_or_default(), Box::new(other)),
        }
    }
}

impl PluginError {
    /// The plugin the error is about, when there is one.
    pub fn plugin(&self) -> Option<String> {
        use PluginError::*;
        match self {
            Trap { plugin, .. }
            | Timeout { plugin, .. }
            | MemoryLimit { plugin, .. }
            | OutputTooLarge { plugin, .. }
            | HostCallLimit { plugin, .. }
            | Denied { plugin, .. }
            | Guest { plugin, .. }
            | WrongKind { plugin, .. }
            | NotOrderPreserving { plugin, .. }
            | Nondeterministic { plugin, .. }
            | Tripped { plugin, .. }
            | InUse { plugin, .. } => Some(plugin.clone()),
            NotInstalled(n) => Some(n.clone()),
            HashMismatch { name, .. } => Some(name.clone()),
            Invalid(_) | Host(_) | Engine(_) => None,
        }
    }

    /// Finds a `PluginError` inside a database error (as returned by commits and store
    /// operations that called a plugin).
    pub fn find(e: &sop::Error) -> Option<&PluginError> {
        match e {
            sop::Error::Plugin { source, .. } => source.downcast_ref::<PluginError>(),
            _ => None,
        }
    }
}
