//! Test guest: claims bytewise order but encodes keys reversed, which does not preserve it.
//! The host must refuse to install it.

struct BadOrder;

impl sop_plugin::KeyOrder for BadOrder {
    const NAME: &'static str = "bad-order";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.extend(key.iter().rev());
        Ok(())
    }

    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        a.cmp(b)
    }
}

sop_plugin::export_key_order!(BadOrder);
