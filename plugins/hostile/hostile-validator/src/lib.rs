//! Test guest: a validator that loops or traps when a value asks it to, and accepts the rest.

use std::hint::black_box;

struct HostileValidator;

impl sop_plugin::Validator for HostileValidator {
    fn validate(m: &sop_plugin::Mutation) -> Result<(), String> {
        match m.value {
            Some(b"loop") => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            Some(b"trap") => panic!("hostile validator panics"),
            Some(b"reject") => Err("value says reject".into()),
            _ => Ok(()),
        }
    }
}

sop_plugin::export_validator!(HostileValidator);
