//! Values of stores with a custom key order carry the key the application wrote: the B-tree
//! key is the order's sort key, which need not decode back (a case-insensitive order folds
//! case away). Layout: `varint(key length) ++ key ++ value`.

use crate::error::{Error, Result};
use crate::format::codec::{Reader, put_varint};
use bytes::Bytes;

/// Wraps `value` with `key`.
pub(crate) fn seal(key: &[u8], value: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(key.len() + value.len() + 3);
    put_varint(&mut out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Bytes::from(out)
}

/// Splits a sealed value into `(key, value)` without copying.
pub(crate) fn open(sealed: &Bytes) -> Result<(Bytes, Bytes)> {
    let bad = || Error::corrupt("(value envelope)", "a custom-order value lacks its key envelope");
    let mut r = Reader::new(sealed);
    let len = r.varint().map_err(|_| bad())? as usize;
    let start = sealed.len() - r.remaining();
    if len > r.remaining() {
        return Err(bad());
    }
    Ok((sealed.slice(start..start + len), sealed.slice(start + len..)))
}
