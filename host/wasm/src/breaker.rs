//! The circuit breaker: a plugin that traps or times out on `failures` calls in a row is
//! tripped. While tripped, calls fail at once with [`PluginError::Tripped`] naming it; after
//! the cooldown one call is let through, and its outcome closes the breaker or trips it
//! again. Trips are mirrored to the node-local cache folder (`tripped/<sha256>`) so that
//! `sop plugin list` in another process shows them.

use crate::PluginError;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When a plugin is tripped and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive traps or timeouts that trip a plugin (0: never).
    pub failures: u32,
    /// How long a tripped plugin is refused before one call is tried again.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy { failures: 5, cooldown: Duration::from_secs(30) }
    }
}

/// A plugin's breaker as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cooldown ends (`retry_in` from now).
    Tripped {
        /// Failures in a row that tripped it.
        failures: u32,
        /// Time left before one call is tried again.
        retry_in: Duration,
        /// The last failure.
        last: String,
    },
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakerState::Closed => f.write_str("ok"),
            BreakerState::Tripped { failures, retry_in, .. } => {
                write!(f, "tripped ({failures} failures; retry in {} s)", retry_in.as_secs().max(1))
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    in_a_row: u32,
    tripped_at: Option<Instant>,
    last: String,
}

pub(crate) struct Breaker {
    policy: BreakerPolicy,
    /// `<cache>/tripped/<sha256>`, if there is a cache folder.
    mirror: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy, cache: Option<&std::path::Path>, hash: &str) -> Breaker {
        let mirror = cache.map(|c| c.join("tripped").join(hash));
        let mut inner = Inner::default();
        // A trip another process on this node recorded still holds for its cooldown.
        if let Some((failures, left, last)) = mirror.as_deref().and_then(|p| read_mirror(p, policy.cooldown)) {
            inner.in_a_row = failures;
            inner.tripped_at = Some(Instant::now() - (policy.cooldown - left));
            inner.last = last;
        }
        Breaker { policy, mirror, inner: Mutex::new(inner) }
    }

    /// Refuses the call while tripped and cooling down.
    pub fn admit(&self, plugin: &str) -> Result<(), PluginError> {
        let i = self.inner.lock();
        match i.tripped_at {
            Some(t) if t.elapsed() < self.policy.cooldown => Err(PluginError::Tripped {
                plugin: plugin.into(),
                failures: i.in_a_row,
                retry_in_ms: (self.policy.cooldown - t.elapsed()).as_millis() as u64,
                last: i.last.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Records a call's outcome: traps and timeouts count, anything else closes the breaker.
    pub fn record<T>(&self, r: &Result<T, PluginError>) {
        let failed =
            matches!(r, Err(PluginError::Trap { .. } | PluginError::Timeout { .. } | PluginError::MemoryLimit { .. }));
        let mut i = self.inner.lock();
        if !failed {
            if i.in_a_row > 0 || i.tripped_at.is_some() {
                *i = Inner::default();
                if let Some(p) = &self.mirror {
                    let _ = std::fs::remove_file(p);
                }
            }
            return;
        }
        i.in_a_row += 1;
        if let Err(e) = r {
            i.last = e.to_string();
        }
        if self.policy.failures > 0 && i.in_a_row >= self.policy.failures {
            i.tripped_at = Some(Instant::now());
            if let Some(p) = &self.mirror {
                // Only informs other processes; a cache that cannot be written changes nothing here.
                let _ = write_mirror(p, i.in_a_row, &i.last);
            }
        }
    }

    pub fn state(&self) -> BreakerState {
        let i = self.inner.lock();
        match i.tripped_at {
            Some(t) if t.elapsed() < self.policy.cooldown => BreakerState::Tripped {
                failures: i.in_a_row,
                retry_in: self.policy.cooldown - t.elapsed(),
                last: i.last.clone(),
            },
            _ => BreakerState::Closed,
        }
    }
}

/// A plugin's breaker state as recorded on this node (for processes that have not loaded it).
pub(crate) fn recorded(policy: BreakerPolicy, cache: Option<&std::path::Path>, hash: &str) -> BreakerState {
    match cache.and_then(|c| read_mirror(&c.join("tripped").join(hash), policy.cooldown)) {
        Some((failures, retry_in, last)) => BreakerState::Tripped { failures, retry_in, last },
        None => BreakerState::Closed,
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn write_mirror(path: &std::path::Path, failures: u32, last: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let last = last.replace('\n', " ");
    std::fs::write(path, format!("{} {failures} {last}", now_ms()))
}

/// (failures, time left, last failure) of a trip still cooling down.
fn read_mirror(path: &std::path::Path, cooldown: Duration) -> Option<(u32, Duration, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.splitn(3, ' ');
    let at: u64 = parts.next()?.parse().ok()?;
    let failures: u32 = parts.next()?.parse().ok()?;
    let last = parts.next().unwrap_or("").to_string();
    let age = Duration::from_millis(now_ms().saturating_sub(at));
    (age < cooldown).then(|| (failures, cooldown - age, last))
}
