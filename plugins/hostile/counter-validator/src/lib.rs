//! Test guest: a validator that counts its calls in a global and rejects every call but the
//! first one its instance sees. It passes only if no state survives from one call to the
//! next.

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

struct CounterValidator;

impl sop_plugin::Validator for CounterValidator {
    fn validate(_m: &sop_plugin::Mutation) -> Result<(), String> {
        // Once per write, so a batch of one write sees 1 unless state survived.
        let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 { Ok(()) } else { Err(format!("this instance has seen {n} writes: state survived a call")) }
    }
}

sop_plugin::export_validator!(CounterValidator);
