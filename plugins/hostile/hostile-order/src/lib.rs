//! Test guest: a bytewise key order that misbehaves on keys that start with a keyword.

use std::hint::black_box;

struct HostileOrder;

impl sop_plugin::KeyOrder for HostileOrder {
    const NAME: &'static str = "hostile-order";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if key.starts_with(b"loop") {
            let mut i = 0u64;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        if key.starts_with(b"bomb") {
            let mut hoard = Vec::new();
            loop {
                hoard.push(vec![7u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        if key.starts_with(b"trap") {
            panic!("hostile order panics");
        }
        if key.starts_with(b"huge") {
            out.extend(std::iter::repeat_n(b'h', 64 << 10));
        }
        out.extend_from_slice(key);
        Ok(())
    }

    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        a.cmp(b)
    }
}

sop_plugin::export_key_order!(HostileOrder);
