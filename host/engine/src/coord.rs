//! The coordination seam ("pheromones").
//!
//! A coordinator hands out short-lived leases that keep processes from doing the same work
//! twice. It is an efficiency device only: correctness never depends on a lease, because the
//! commit point is an exclusive, version-checked publication on storage (see
//! `docs/PROTOCOL.md`). The embedded coordinator serves threads of one process; a Redis
//! coordinator (swarm mode) implements the same trait across processes and hosts.

use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A granted lease. Release it with [`Coordinator::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased.
    pub name: String,
    /// Unique owner token; release and renew compare it.
    pub token: u64,
}

/// Errors a coordinator can report.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The coordinator cannot be reached.
    #[error("coordinator unavailable: {0}")]
    Unavailable(String),
}

/// Short-lived leases shared by every participant of one database.
pub trait Coordinator: Send + Sync {
    /// Tries to take `name` for `ttl`; `Ok(None)` if someone else holds it.
    fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, CoordError>;
    /// Waits up to `wait` for `name`.
    fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<Lease>, CoordError>;
    /// Extends a lease still held; false if it was lost.
    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordError>;
    /// Releases a lease if (and only if) it is still ours: compare-and-delete.
    fn release(&self, lease: &Lease) -> Result<(), CoordError>;
    /// Whether this coordinator spans processes and hosts ("cluster" mode) rather than one
    /// process ("embedded"). A folder is never used in both modes at once.
    fn is_cluster(&self) -> bool {
        false
    }
}

/// In-process coordinator: the embedded default.
#[derive(Default)]
pub struct EmbeddedCoordinator {
    leases: Mutex<HashMap<String, (u64, Instant)>>,
    freed: Condvar,
}

impl Coordinator for EmbeddedCoordinator {
    fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, CoordError> {
        let mut m = self.leases.lock();
        let now = Instant::now();
        if m.get(name).is_some_and(|(_, exp)| *exp > now) {
            return Ok(None);
        }
        let token: u64 = rand::random();
        m.insert(name.to_owned(), (token, now + ttl));
        Ok(Some(Lease { name: name.to_owned(), token }))
    }

    fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Option<Lease>, CoordError> {
        let deadline = Instant::now() + wait;
        let mut m = self.leases.lock();
        loop {
            let now = Instant::now();
            match m.get(name) {
                Some((_, exp)) if *exp > now => {
                    if now >= deadline {
                        return Ok(None);
                    }
                    let until = (*exp).min(deadline);
                    self.freed.wait_until(&mut m, until);
                }
                _ => {
                    let token: u64 = rand::random();
                    m.insert(name.to_owned(), (token, now + ttl));
                    return Ok(Some(Lease { name: name.to_owned(), token }));
                }
            }
        }
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordError> {
        let mut m = self.leases.lock();
        match m.get_mut(&lease.name) {
            Some((tok, exp)) if *tok == lease.token && *exp > Instant::now() => {
                *exp = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release(&self, lease: &Lease) -> Result<(), CoordError> {
        let mut m = self.leases.lock();
        if m.get(&lease.name).is_some_and(|(tok, _)| *tok == lease.token) {
            m.remove(&lease.name);
            self.freed.notify_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_owner_checked() {
        let c = EmbeddedCoordinator::default();
        let ttl = Duration::from_secs(5);
        let a = c.try_acquire("x", ttl).unwrap().unwrap();
        assert!(c.try_acquire("x", ttl).unwrap().is_none());
        // A stale token cannot release someone else's lease.
        c.release(&Lease { name: "x".into(), token: a.token ^ 1 }).unwrap();
        assert!(c.try_acquire("x", ttl).unwrap().is_none());
        assert!(c.renew(&a, ttl).unwrap());
        c.release(&a).unwrap();
        let b = c.try_acquire("x", Duration::from_millis(1)).unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!c.renew(&b, ttl).unwrap(), "an expired lease cannot be renewed");
        assert!(c.acquire("x", ttl, Duration::from_millis(10)).unwrap().is_some());
    }
}
