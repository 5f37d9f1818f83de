//! Any bytes on stdin where a profile is expected: read (and then never with a password, which
//! no JSON can put in a profile), or rejected with a bad-input error that says what is wrong —
//! never a panic, never another class. The one exception: an upstream tool's error object
//! (`dbtools.error/v1`) passes its own exit class on, with a message.
#![no_main]

use dbtools::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match dbtools::contract::profile_from_bytes(bytes) {
        Ok(profile) => assert!(
            profile.conn.password.is_none(),
            "a password was read from JSON"
        ),
        Err(Error::BadInput(message)) => assert!(!message.trim().is_empty()),
        Err(Error::Upstream { message, .. }) => {
            // Only an error object is passed on as the upstream tool's own failure.
            let text = dbtools::contract::decode_text(bytes).expect("it decoded once");
            let value: serde_json::Value =
                serde_json::from_str(text.trim()).expect("an upstream error is JSON");
            assert_eq!(value["kind"], "dbtools.error/v1", "{value}");
            let _ = message;
        }
        Err(other) => panic!("a bad profile is bad input, not {other:?}"),
    }
});
