//! Any bytes on stdin where a profile is expected: read (and then never with a password, which
//! no JSON can put in a profile), or rejected with a bad-input error that says what is wrong —
//! never a panic. (An upstream tool's error object passes its own
//! exit class on, so any class is allowed there, with a message.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match dbtools::contract::profile_from_bytes(bytes) {
        Ok(profile) => assert!(
            profile.conn.password.is_none(),
            "a password was read from JSON"
        ),
        Err(error) => assert!(!error.message().trim().is_empty()),
    }
});
