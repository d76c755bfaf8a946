//! Descending bytewise order: the largest key first, and a key before its own prefixes
//! ("ab" before "a").

struct Descending;

impl sop_plugin::KeyOrder for Descending {
    const NAME: &'static str = "descending";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        // Escape 0x00 as 00 FF and end with 00 00, which sorts a prefix first; then invert
        // every byte, which reverses the order, prefixes included.
        for &b in key {
            if b == 0 {
                out.extend_from_slice(&[!0u8, !0xFFu8]);
            } else {
                out.push(!b);
            }
        }
        out.extend_from_slice(&[!0u8, !0u8]);
        Ok(())
    }

    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        b.cmp(a)
    }
}

sop_plugin::export_key_order!(Descending);
