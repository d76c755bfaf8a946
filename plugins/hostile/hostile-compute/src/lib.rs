//! Test guest, never install it for real: misbehaves as its input asks.

use sop_plugin::Store;
use std::hint::black_box;

struct Hostile;

impl sop_plugin::Compute for Hostile {
    fn run(input: &[u8]) -> Result<Vec<u8>, String> {
        match input {
            b"loop" => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            b"bomb" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            b"trap" => panic!("hostile plugin panics"),
            b"huge" => Ok(vec![b'x'; 8 << 20]),
            b"rogue" => {
                // Granted "public" only; "secret" was never granted.
                Store::open("public")?.put(b"ok", b"1")?;
                Store::open("secret")?.put(b"stolen", b"1")?;
                Ok(b"wrote".to_vec())
            }
            b"rogue-write" => {
                // "public" was granted read-only.
                Store::open("public")?.put(b"defaced", b"1")?;
                Ok(b"wrote".to_vec())
            }
            b"flood" => {
                let s = Store::open("public")?;
                loop {
                    s.get(b"k")?;
                }
            }
            b"write-then-fail" => {
                Store::open("public")?.put(b"half", b"done")?;
                Err("gave up after writing".into())
            }
            _ => Ok(input.to_vec()),
        }
    }
}

sop_plugin::export_compute!(Hostile);
