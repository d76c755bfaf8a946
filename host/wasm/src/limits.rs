//! Per-call limits, their defaults per plugin kind, and the memory limiter.

use crate::PluginKind;
use serde::{Deserialize, Serialize};

/// What one plugin call may use. Defaults depend on the kind ([`Limits::default_for`]); a
/// plugin's install options and the host configuration can override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU deadline per call, in milliseconds (enforced with epoch interruption, at a 5 ms
    /// granularity).
    pub deadline_ms: u64,
    /// Linear memory cap per instance, in bytes. Growing past it traps.
    pub memory_bytes: u64,
    /// Cap on what one call returns, in bytes.
    pub output_bytes: u64,
    /// Cap on host calls (storage operations) per invocation.
    pub host_calls: u64,
}

impl Limits {
    /// The defaults for a kind of plugin.
    ///
    /// | kind | deadline | memory | output | host calls |
    /// |---|---|---|---|---|
    /// | key order | 100 ms | 16 MiB | 8 MiB per batch | 0 |
    /// | validator | 1 s | 32 MiB | 64 KiB of reasons | 0 |
    /// | compute | 1 s | 64 MiB | 4 MiB | 1,000,000 |
    pub const fn default_for(kind: PluginKind) -> Limits {
        match kind {
            PluginKind::KeyOrder => {
                Limits { deadline_ms: 100, memory_bytes: 16 << 20, output_bytes: 8 << 20, host_calls: 0 }
            }
            PluginKind::Validator => {
                Limits { deadline_ms: 1000, memory_bytes: 32 << 20, output_bytes: 64 << 10, host_calls: 0 }
            }
            PluginKind::Compute => {
                Limits { deadline_ms: 1000, memory_bytes: 64 << 20, output_bytes: 4 << 20, host_calls: 1_000_000 }
            }
        }
    }
}

/// Refuses memory growth past the cap, and remembers that it did, so the trap that follows
/// is reported as [`crate::PluginError::MemoryLimit`] rather than a bare trap.
pub(crate) struct Limiter {
    pub cap: u64,
    /// The size the guest asked for when it was refused.
    pub refused: Option<u64>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.cap {
            self.refused = Some(desired as u64);
            return Err(wasmtime::Error::msg("memory cap reached"));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }

    fn instances(&self) -> usize {
        // Python and JavaScript components hold many core instances.
        256
    }
}
