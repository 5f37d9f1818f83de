//! Any bytes as a migration file: parsed or rejected with a bad-input error that says what is
//! wrong — never a panic, never another kind of error. And the promise of the checksum (README,
//! "Migrations"): a Windows checkout of the same file — CRLF line ends, a UTF-8 byte-order
//! mark — parses the same way (the same blocks, lines and options) with the same checksum.
#![no_main]

use dbtools::migration_files::{parse, Migration};
use dbtools::Error;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// The blocks with their SQL's line ends as LF: what must not depend on CRLF or a BOM.
fn shape(migration: &Migration) -> Vec<(String, usize, bool, String, usize, bool)> {
    migration
        .sections
        .iter()
        .map(|s| {
            (
                s.up.sql.replace("\r\n", "\n"),
                s.up.first_line,
                s.up.transaction,
                s.down.sql.replace("\r\n", "\n"),
                s.down.first_line,
                s.down.transaction,
            )
        })
        .collect()
}

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("migrations/20260101000000_fuzz.sql");
    let parsed = parse(path, bytes);
    match &parsed {
        Ok(migration) => {
            assert_eq!(migration.version, "20260101000000");
            assert_eq!(
                migration.checksum,
                dbtools::migration_files::checksum(&migration.text),
                "the checksum is the text's"
            );
        }
        Err(Error::BadInput(message)) => assert!(!message.trim().is_empty()),
        Err(other) => panic!("a migration file is bad input, not {other:?}"),
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if text.contains('\r') || text.starts_with('\u{feff}') {
        return;
    }
    let crlf = text.replace('\n', "\r\n");
    for variant in [format!("\u{feff}{crlf}"), crlf, format!("\u{feff}{text}")] {
        match (&parsed, &parse(path, variant.as_bytes())) {
            (Ok(lf), Ok(other)) => {
                assert_eq!(lf.checksum, other.checksum, "CRLF or a BOM changed the checksum");
                assert_eq!(shape(lf), shape(other), "CRLF or a BOM changed the blocks");
            }
            (Err(_), Err(_)) => {}
            (lf, other) => panic!(
                "CRLF or a BOM changed whether the file parses: {:?} vs {:?}",
                lf.as_ref().err(),
                other.as_ref().err()
            ),
        }
    }
});
