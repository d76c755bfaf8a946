//! Order-preserving key encodings.
//!
//! The engine orders keys bytewise: `memcmp` over the common length, and if one key is a
//! prefix of the other the shorter sorts first. A typed key is stored as the bytes produced
//! by [`Key::encode_key`], chosen so that for any two values `a` and `b` of the same type
//! `a.cmp(&b) == a.to_key_bytes().cmp(&b.to_key_bytes())`. Decoding is the exact inverse and
//! accepts only canonical encodings, so `decode(encode(x)) == x` and every successfully
//! decoded value re-encodes to exactly the bytes it was decoded from.
//!
//! # Encodings
//!
//! | type | encoding |
//! | --- | --- |
//! | `u8`, `u16`, `u32`, `u64`, `u128` | the value in big-endian, fixed width (1, 2, 4, 8, 16 bytes) |
//! | `i8`, `i16`, `i32`, `i64`, `i128` | the two's-complement value in big-endian, fixed width, with the most significant (sign) bit flipped: `MIN` → `0x00 00..`, `-1` → `0x7F FF..`, `0` → `0x80 00..`, `MAX` → `0xFF FF..` |
//! | `bool` | 1 byte: `false` → `0x00`, `true` → `0x01`; any other byte is invalid |
//! | `Vec<u8>`, `String` | the content bytes (UTF-8 for `String`), each `0x00` byte written as `0x00 0xFF` and every other byte as itself, followed by the terminator `0x00 0x00` |
//! | [`uuid::Uuid`] | its 16 bytes, as given by `Uuid::as_bytes` |
//! | tuples `(A, B)`, `(A, B, C)`, `(A, B, C, D)` | the encodings of the components, concatenated in order, with nothing between them |
//! | [`Desc<T>`] | the encoding of `T` with every byte complemented (`b` → `!b`, i.e. `0xFF - b`) |
//!
//! Byte strings: in the escaped form a `0x00` is always followed by `0xFF` (an escaped content
//! zero) or `0x00` (the end). Compare two strings at the first position where they differ:
//! if both have a byte there, a smaller content byte gives a smaller encoded byte (a content
//! `0x00` encodes as `0x00`, below any other content byte); if one string has ended there, its
//! terminator `0x00 0x00` sorts below the other's `0x00 0xFF` or non-zero byte. So
//! `"" < "\0" < "a" < "a\0" < "ab"`, exactly as the strings themselves order. Decoding fails with
//! [`KeyDecodeError::Invalid`] on `0x00` followed by anything other than `0x00` or `0xFF`, and
//! for `String` on content that is not valid UTF-8.
//!
//! Every encoding above is *self-delimiting*: no value's encoding is a proper prefix of
//! another value's encoding of the same type, and the decoder knows where a value ends
//! without outside help. This is what makes concatenation work for tuples: two tuples compare
//! by their first components unless those are equal, exactly like Rust's tuple `Ord`, so
//! `("a", 2u32) < ("ab", 1u32)` also holds for the encodings. It is also what makes [`Desc`]
//! work for variable-length types: two different encodings always differ at some byte inside
//! both, and complementing reverses the order at that byte. For example `Desc("a")` encodes
//! as `0x9E 0xFF 0xFF` and `Desc("ab")` as `0x9E 0x9D 0xFF 0xFF`, so `Desc("a") > Desc("ab")`.
//!
//! Implementors of [`Key`] for further types must keep both properties: order-preserving and
//! self-delimiting (decoding `encode(x) ++ rest` yields `x` and leaves exactly `rest`).
//!
//! The encoding carries no type tags: keys of different types stored in one tree order by
//! their bytes alone, which is meaningful only for values of the same type.

use std::cmp::Ordering;

use uuid::Uuid;

/// Why a key could not be decoded. Decoding never panics: bad input yields one of these.
///
/// ```
/// use sop::keys::{Key, KeyDecodeError};
/// assert_eq!(u32::from_key_bytes(&[1, 2]), Err(KeyDecodeError::Truncated { expected: "u32" }));
/// assert_eq!(bool::from_key_bytes(&[1, 9]), Err(KeyDecodeError::TrailingBytes { n: 1 }));
/// ```
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyDecodeError {
    /// The input ended before the value did.
    #[error("key truncated: expected {expected}")]
    Truncated {
        /// What was still expected (a type name or a terminator).
        expected: &'static str,
    },
    /// The bytes are not a canonical encoding of the type.
    #[error("invalid key encoding: {what}")]
    Invalid {
        /// What was wrong.
        what: &'static str,
    },
    /// [`Key::from_key_bytes`] decoded a whole value but bytes were left over.
    #[error("{n} trailing byte(s) after key")]
    TrailingBytes {
        /// How many bytes were left.
        n: usize,
    },
}

/// A key type with an order-preserving, self-delimiting byte encoding.
///
/// See the [module docs](self) for the exact encoding of every type.
///
/// ```
/// use sop::keys::Key;
/// let a = ("user".to_string(), 7u64).to_key_bytes();
/// let b = ("user".to_string(), 10u64).to_key_bytes();
/// assert!(a < b);
/// assert_eq!(<(String, u64)>::from_key_bytes(&a).unwrap(), ("user".to_string(), 7));
/// ```
pub trait Key: Sized {
    /// Appends the encoding of `self` to `out`. Bytewise order of encodings == `Ord` of values.
    fn encode_key(&self, out: &mut Vec<u8>);

    /// Decodes a value from the front of `input`, advancing it past the consumed bytes.
    ///
    /// # Errors
    /// [`KeyDecodeError::Truncated`] if `input` ends before the value does,
    /// [`KeyDecodeError::Invalid`] if the bytes are not a canonical encoding. On error, how far
    /// `input` has been advanced is unspecified.
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError>;

    /// Convenience: encode into a fresh `Vec`.
    fn to_key_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_key(&mut out);
        out
    }

    /// Convenience: decode a whole buffer.
    ///
    /// # Errors
    /// As [`Key::decode_key`], and [`KeyDecodeError::TrailingBytes`] if bytes remain after the value.
    fn from_key_bytes(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let mut input = bytes;
        let value = Self::decode_key(&mut input)?;
        match input.len() {
            0 => Ok(value),
            n => Err(KeyDecodeError::TrailingBytes { n }),
        }
    }
}

/// Takes exactly `N` bytes from the front of `input`.
fn take<const N: usize>(input: &mut &[u8], expected: &'static str) -> Result<[u8; N], KeyDecodeError> {
    let (head, rest) = input.split_first_chunk::<N>().ok_or(KeyDecodeError::Truncated { expected })?;
    *input = rest;
    Ok(*head)
}

macro_rules! unsigned_key {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                Ok(<$t>::from_be_bytes(take(input, stringify!($t))?))
            }
        }
    )*};
}
unsigned_key!(u8, u16, u32, u64, u128);

macro_rules! signed_key {
    ($($t:ty => $u:ty),*) => {$(
        impl Key for $t {
            fn encode_key(&self, out: &mut Vec<u8>) {
                let flipped = self.cast_unsigned() ^ <$t>::MIN.cast_unsigned();
                out.extend_from_slice(&flipped.to_be_bytes());
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                let raw = <$u>::from_be_bytes(take(input, stringify!($t))?);
                Ok((raw ^ <$t>::MIN.cast_unsigned()).cast_signed())
            }
        }
    )*};
}
signed_key!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl Key for bool {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        match take::<1>(input, "bool")? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(KeyDecodeError::Invalid { what: "bool byte is neither 0x00 nor 0x01" }),
        }
    }
}

/// Writes `bytes` escaped (`0x00` → `0x00 0xFF`) and terminated by `0x00 0x00`.
fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Reads an escaped, terminated byte string written by [`encode_bytes`].
fn decode_bytes(input: &mut &[u8]) -> Result<Vec<u8>, KeyDecodeError> {
    let mut content = Vec::new();
    let mut rest = *input;
    loop {
        let zero = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        content.extend_from_slice(&rest[..zero]);
        rest = match &rest[zero..] {
            [0x00, 0x00, tail @ ..] => {
                *input = tail;
                return Ok(content);
            }
            [0x00, 0xFF, tail @ ..] => {
                content.push(0);
                tail
            }
            [0x00, _, ..] => {
                return Err(KeyDecodeError::Invalid { what: "byte string: 0x00 followed by neither 0x00 nor 0xFF" });
            }
            _ => {
                return Err(KeyDecodeError::Truncated { expected: "byte string terminator 0x00 0x00" });
            }
        };
    }
}

impl Key for Vec<u8> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self, out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        decode_bytes(input)
    }
}

impl Key for String {
    fn encode_key(&self, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out);
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        String::from_utf8(decode_bytes(input)?)
            .map_err(|_| KeyDecodeError::Invalid { what: "string is not valid UTF-8" })
    }
}

impl Key for Uuid {
    fn encode_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        Ok(Uuid::from_bytes(take(input, "uuid")?))
    }
}

macro_rules! tuple_key {
    ($($idx:tt $T:ident),+) => {
        impl<$($T: Key),+> Key for ($($T,)+) {
            fn encode_key(&self, out: &mut Vec<u8>) {
                $(self.$idx.encode_key(out);)+
            }
            fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
                Ok(($($T::decode_key(input)?,)+))
            }
        }
    };
}
tuple_key!(0 A, 1 B);
tuple_key!(0 A, 1 B, 2 C);
tuple_key!(0 A, 1 B, 2 C, 3 D);

/// Inverts the order of `T`, as a component of a key: sorts descending where `T` sorts
/// ascending. Its `Ord` is the reverse of `T`'s, and its encoding is `T`'s with every byte
/// complemented. Works for every `Key` type, fixed-width or not, because key encodings are
/// self-delimiting (see the [module docs](self)).
///
/// Decoding copies the remaining input once (complemented) to decode `T` from it, so it costs
/// time proportional to the rest of the key.
///
/// ```
/// use sop::keys::{Desc, Key};
/// // Newest first within a user: (user ascending, timestamp descending).
/// let older = ("ann".to_string(), Desc(100u64)).to_key_bytes();
/// let newer = ("ann".to_string(), Desc(200u64)).to_key_bytes();
/// assert!(newer < older);
/// assert!(Desc("a".to_string()).to_key_bytes() > Desc("ab".to_string()).to_key_bytes());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Desc<T>(pub T);

impl<T: Ord> Ord for Desc<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.cmp(&self.0)
    }
}

impl<T: Ord> PartialOrd for Desc<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Key> Key for Desc<T> {
    fn encode_key(&self, out: &mut Vec<u8>) {
        let start = out.len();
        self.0.encode_key(out);
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
    fn decode_key(input: &mut &[u8]) -> Result<Self, KeyDecodeError> {
        let flipped: Vec<u8> = input.iter().map(|b| !b).collect();
        let mut view = flipped.as_slice();
        let value = T::decode_key(&mut view)?;
        let used = flipped.len() - view.len();
        *input = &input[used..];
        Ok(Desc(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fmt::Debug;

    /// Order of encodings equals order of values; both decode back exactly, and decoding
    /// from `enc ++ junk` consumes exactly `enc`.
    fn check<T: Key + Ord + Debug>(a: &T, b: &T, junk: &[u8]) -> Result<(), TestCaseError> {
        let (ea, eb) = (a.to_key_bytes(), b.to_key_bytes());
        prop_assert_eq!(a.cmp(b), ea.cmp(&eb), "{:?} vs {:?}: {:02x?} vs {:02x?}", a, b, ea, eb);
        prop_assert_eq!(&T::from_key_bytes(&ea)?, a);
        let mut buf = ea.clone();
        buf.extend_from_slice(junk);
        let mut input = buf.as_slice();
        prop_assert_eq!(&T::decode_key(&mut input)?, a);
        prop_assert_eq!(input, junk);
        Ok(())
    }

    /// Decoding arbitrary bytes returns Ok or Err without panicking; on Ok the value
    /// re-encodes to exactly the consumed bytes (encodings are canonical).
    fn no_panic<T: Key + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
        let mut input = bytes;
        if let Ok(v) = T::decode_key(&mut input) {
            let used = bytes.len() - input.len();
            prop_assert_eq!(v.to_key_bytes(), &bytes[..used]);
        }
        let _ = T::from_key_bytes(bytes);
        Ok(())
    }

    fn junk() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop_oneof![Just(0u8), Just(0xFF), any::<u8>()], 0..4)
    }

    /// Short byte strings over a small alphabet, so prefixes and 0x00/0xFF are common.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let b = prop_oneof![Just(0u8), Just(0xFF), Just(1), Just(b'a'), Just(b'b'), any::<u8>()];
        prop::collection::vec(b, 0..6)
    }

    fn string() -> impl Strategy<Value = String> {
        let c = prop_oneof![Just('\0'), Just('a'), Just('b'), Just('\u{FF}'), Just('\u{10FFFF}'), any::<char>()];
        prop::collection::vec(c, 0..5).prop_map(String::from_iter)
    }

    /// Any integer, with the extremes, 0 and 1 made likely.
    macro_rules! int {
        ($t:ty) => {
            prop_oneof![Just(<$t>::MIN), Just(<$t>::MAX), Just(0 as $t), Just(1 as $t), any::<$t>()]
        };
    }

    /// Generates an order/roundtrip test and a no-panic decode test for each listed type.
    macro_rules! key_tests {
        ($($name:ident: $T:ty = $s:expr;)*) => {$(
            mod $name {
                use super::*;
                proptest! {
                    #[test]
                    fn order_and_roundtrip(a in $s, b in $s, j in junk()) {
                        check::<$T>(&a, &b, &j)?;
                        check::<$T>(&a, &a, &j)?;
                    }
                    #[test]
                    fn decode_never_panics(raw in prop::collection::vec(
                        prop_oneof![Just(0u8), Just(1), Just(0xFF), Just(0x80), any::<u8>()], 0..40)) {
                        no_panic::<$T>(&raw)?;
                    }
                }
            }
        )*};
    }

    key_tests! {
        k_u8: u8 = int!(u8);
        k_u16: u16 = int!(u16);
        k_u32: u32 = int!(u32);
        k_u64: u64 = int!(u64);
        k_u128: u128 = int!(u128);
        k_i8: i8 = int!(i8);
        k_i16: i16 = int!(i16);
        k_i32: i32 = int!(i32);
        k_i64: i64 = int!(i64);
        k_i128: i128 = int!(i128);
        k_bool: bool = any::<bool>();
        k_bytes: Vec<u8> = bytes();
        k_string: String = string();
        k_uuid: Uuid = prop_oneof![any::<[u8; 16]>(), Just([0; 16]), Just([0xFF; 16])].prop_map(Uuid::from_bytes);
        k_str_int: (String, i32) = (string(), int!(i32));
        k_int_bytes: (u8, Vec<u8>) = (0u8..3, bytes());
        k_str_bytes_bool: (String, Vec<u8>, bool) = (string(), bytes(), any::<bool>());
        k_four: (Vec<u8>, i64, String, u16) = (bytes(), -2i64..2, string(), 0u16..3);
        k_desc_u64: Desc<u64> = int!(u64).prop_map(Desc);
        k_desc_string: Desc<String> = string().prop_map(Desc);
        k_desc_str_u64: (Desc<String>, u64) = (string().prop_map(Desc), 0u64..3);
        k_desc_u64_str: (Desc<u64>, String) = (prop_oneof![Just(0u64), Just(u64::MAX), 0u64..3].prop_map(Desc), string());
        k_str_desc_str_int: (String, Desc<String>, i32) = (string(), string().prop_map(Desc), -1i32..2);
        k_desc_tuple: Desc<(Vec<u8>, Desc<u8>)> = (bytes(), (0u8..3).prop_map(Desc)).prop_map(Desc);
        k_desc_desc: Desc<Desc<Vec<u8>>> = bytes().prop_map(|b| Desc(Desc(b)));
    }

    proptest! {
        /// A proper extension sorts after its prefix, and before it under `Desc`.
        #[test]
        fn prefix_extension_sorts_after(a in bytes(), ext in bytes().prop_filter("non-empty", |e| !e.is_empty())) {
            let mut b = a.clone();
            b.extend_from_slice(&ext);
            prop_assert!(a.to_key_bytes() < b.to_key_bytes());
            prop_assert!(Desc(a).to_key_bytes() > Desc(b).to_key_bytes());
        }
    }

    #[test]
    fn documented_examples() {
        let s = |x: &str| x.to_string();
        let order = ["", "\0", "\0\0", "a", "a\0", "a\0b", "ab", "b"].map(|x| s(x).to_key_bytes());
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:02x?}");
        assert!((s("a"), 2u32).to_key_bytes() < (s("ab"), 1u32).to_key_bytes());
        assert_eq!(s("a\0").to_key_bytes(), [b'a', 0, 0xFF, 0, 0]);
        assert_eq!(Desc(s("a")).to_key_bytes(), [0x9E, 0xFF, 0xFF]);
        assert_eq!(Desc(s("ab")).to_key_bytes(), [0x9E, 0x9D, 0xFF, 0xFF]);
        assert_eq!(i16::MIN.to_key_bytes(), [0x00, 0x00]);
        assert_eq!((-1i16).to_key_bytes(), [0x7F, 0xFF]);
        assert_eq!(0i16.to_key_bytes(), [0x80, 0x00]);
        assert_eq!(1u32.to_key_bytes(), [0, 0, 0, 1]);
        assert_eq!(vec![0xFFu8, 0].to_key_bytes(), [0xFF, 0, 0xFF, 0, 0]);
    }

    #[test]
    fn decode_errors() {
        use KeyDecodeError::*;
        assert_eq!(u64::from_key_bytes(&[1; 7]), Err(Truncated { expected: "u64" }));
        assert_eq!(i8::from_key_bytes(&[]), Err(Truncated { expected: "i8" }));
        assert_eq!(u16::from_key_bytes(&[1, 2, 3]), Err(TrailingBytes { n: 1 }));
        assert!(matches!(bool::from_key_bytes(&[2]), Err(Invalid { .. })));
        assert!(matches!(String::from_key_bytes(b"ab"), Err(Truncated { .. })));
        assert!(matches!(String::from_key_bytes(b"ab\0"), Err(Truncated { .. })));
        assert!(matches!(Vec::<u8>::from_key_bytes(b"a\0\x01\0\0"), Err(Invalid { .. })));
        assert!(matches!(String::from_key_bytes(b"\xC3\0\0"), Err(Invalid { .. })));
        assert!(matches!(Uuid::from_key_bytes(&[0; 15]), Err(Truncated { expected: "uuid" })));
        assert!(matches!(Desc::<String>::from_key_bytes(&[0x9E]), Err(Truncated { .. })));
        assert!(matches!(<(String, u8)>::from_key_bytes(b"a\0\0"), Err(Truncated { expected: "u8" })));
    }
}
