//! The retry loop behind [`crate::Database::transact`].

use crate::Database;
use crate::error::{Error, Result};
use crate::txn::Transaction;
use rand::Rng;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How [`crate::Database::transact_with`] retries conflicts.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts before giving up with [`Error::RetriesExhausted`].
    pub max_attempts: u32,
    /// First backoff ceiling; doubles per attempt.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 200, base_delay: Duration::from_micros(200), max_delay: Duration::from_millis(50) }
    }
}

pub(crate) fn run<T>(db: &Database, policy: &RetryPolicy, mut f: impl FnMut(&Transaction) -> Result<T>) -> Result<T> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let tx = db.begin_write()?;
        let err = match f(&tx) {
            Ok(v) => match tx.commit() {
                Ok(_) => return Ok(v),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if !err.is_retryable() {
            return Err(err);
        }
        if attempt >= policy.max_attempts {
            return Err(Error::RetriesExhausted { attempts: attempt, last: Box::new(err) });
        }
        db.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        // Full jitter: uniformly random up to an exponentially growing ceiling.
        let ceiling = policy.base_delay.saturating_mul(1u32 << attempt.min(16)).min(policy.max_delay);
        let nanos = rand::rng().random_range(0..=ceiling.as_nanos().max(1) as u64);
        std::thread::sleep(Duration::from_nanos(nanos));
    }
}
