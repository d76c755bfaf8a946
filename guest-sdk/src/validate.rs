//! Validators: accept or reject the writes of a commit.

use crate::validator_bindings::exports::sop::plugin::validator::{Mutation as WitMutation, Op};

/// Reasons kept per rejection; a commit with a million bad rows gets the first ones.
const MAX_REASONS: usize = 100;

/// One write of the committing transaction.
pub struct Mutation<'a> {
    /// The store written.
    pub store: &'a str,
    /// The key as the application wrote it.
    pub key: &'a [u8],
    /// The new value, or `None` for a remove.
    pub value: Option<&'a [u8]>,
}

/// Checks writes. The host calls it once per commit; the SDK hands over each write in turn.
pub trait Validator {
    /// Accepts the write, or rejects it with a reason. One rejection fails the whole commit.
    fn validate(m: &Mutation) -> Result<(), String>;
}

#[doc(hidden)]
pub fn validate<T: Validator>(batch: Vec<WitMutation>) -> Result<(), Vec<String>> {
    let mut reasons = Vec::new();
    for w in &batch {
        let m = Mutation {
            store: &w.store,
            key: &w.key,
            value: match w.op {
                Op::Put => w.value.as_deref(),
                Op::Remove => None,
            },
        };
        if let Err(r) = T::validate(&m) {
            if reasons.len() == MAX_REASONS {
                reasons.push("(more rejected writes not listed)".to_string());
                break;
            }
            reasons.push(format!("{}[{}]: {r}", w.store, String::from_utf8_lossy(&w.key)));
        }
    }
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// Exports a [`Validator`] as the plugin's validator.
#[macro_export]
macro_rules! export_validator {
    ($t:ty) => {
        struct __SopValidator;
        impl $crate::validator_bindings::exports::sop::plugin::validator::Guest for __SopValidator {
            fn validate(
                batch: Vec<$crate::validator_bindings::exports::sop::plugin::validator::Mutation>,
            ) -> Result<(), Vec<String>> {
                $crate::__validate::validate::<$t>(batch)
            }
        }
        $crate::validator_bindings::__export_validator_world!(__SopValidator);
    };
}
