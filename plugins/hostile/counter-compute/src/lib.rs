//! Test guest: returns how many times this instance has been called (a count kept in a
//! global). Every call must return 1: no state survives from one call to the next.

use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

struct CounterCompute;

impl sop_plugin::Compute for CounterCompute {
    fn run(_input: &[u8]) -> Result<Vec<u8>, String> {
        Ok((CALLS.fetch_add(1, Ordering::Relaxed) + 1).to_string().into_bytes())
    }
}

sop_plugin::export_compute!(CounterCompute);
