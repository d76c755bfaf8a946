//! Key orders: an order-preserving encoding of keys.

use crate::flat::{FlatBuilder, items};
use crate::order_bindings::exports::sop::plugin::key_order::OrderInfo;
use crate::order_bindings::sop::plugin::types::{FlatKeys, PluginError};
use core::cmp::Ordering;

/// A custom key order, expressed as an encoding: `encode(a) < encode(b)` bytewise exactly
/// when `a` sorts before `b`. The host stores the encoded key, so the B-tree never calls the
/// plugin to compare.
pub trait KeyOrder {
    /// A name for error messages.
    const NAME: &'static str;
    /// Whether distinct keys always encode differently. A case-insensitive order is not
    /// injective: in a unique store, "Foo" and "foo" are then the same key.
    const INJECTIVE: bool = true;

    /// Appends the sort key of `key` to `out`. An error rejects the key (the write or read
    /// that used it fails with the message).
    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String>;

    /// The order as a comparison. The host checks `encode` against it at install time, so
    /// a plugin that states its order independently here gets its encoding verified. The
    /// default compares the encodings (and checks nothing).
    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        match (Self::encode(a, &mut x), Self::encode(b, &mut y)) {
            (Ok(()), Ok(())) => x.cmp(&y),
            // Unencodable keys never reach a store; any fixed answer is consistent.
            (Err(_), Ok(())) => Ordering::Less,
            (Ok(()), Err(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        }
    }
}

#[doc(hidden)]
pub fn info<T: KeyOrder>() -> OrderInfo {
    OrderInfo { name: T::NAME.into(), injective: T::INJECTIVE }
}

#[doc(hidden)]
pub fn encode<T: KeyOrder>(keys: FlatKeys) -> Result<FlatKeys, PluginError> {
    let mut out = FlatBuilder::with_capacity(keys.ends.len(), keys.data.len() + keys.ends.len() * 2);
    for (i, k) in items(&keys.data, &keys.ends).enumerate() {
        T::encode(k, &mut out.data).map_err(|e| PluginError::InvalidInput(format!("key {i}: {e}")))?;
        out.close();
    }
    Ok(FlatKeys { data: out.data, ends: out.ends })
}

#[doc(hidden)]
pub fn compare<T: KeyOrder>(a: &[u8], b: &[u8]) -> i8 {
    T::compare(a, b) as i8
}

/// Exports a [`KeyOrder`] as the plugin's key order.
#[macro_export]
macro_rules! export_key_order {
    ($t:ty) => {
        struct __SopKeyOrder;
        impl $crate::order_bindings::exports::sop::plugin::key_order::Guest for __SopKeyOrder {
            fn info() -> $crate::order_bindings::exports::sop::plugin::key_order::OrderInfo {
                $crate::__order::info::<$t>()
            }
            fn encode(
                keys: $crate::order_bindings::sop::plugin::types::FlatKeys,
            ) -> Result<
                $crate::order_bindings::sop::plugin::types::FlatKeys,
                $crate::order_bindings::sop::plugin::types::PluginError,
            > {
                $crate::__order::encode::<$t>(keys)
            }
            fn compare(a: Vec<u8>, b: Vec<u8>) -> i8 {
                $crate::__order::compare::<$t>(&a, &b)
            }
        }
        $crate::order_bindings::__export_key_order_world!(__SopKeyOrder);
    };
}
