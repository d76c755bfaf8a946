//! Test guest: a key order that reads the clock and random numbers, so two processes would
//! order the same key differently. Install must refuse it, naming the import.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::SystemTime;

struct ClockOrder;

impl sop_plugin::KeyOrder for ClockOrder {
    const NAME: &'static str = "clock-order";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        out.extend_from_slice(&(now as u64).to_be_bytes());
        out.extend_from_slice(&RandomState::new().hash_one(key).to_be_bytes());
        out.extend_from_slice(key);
        Ok(())
    }
}

sop_plugin::export_key_order!(ClockOrder);
