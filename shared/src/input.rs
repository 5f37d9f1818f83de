//! Reading stdin: the whole of it, once, decoded and parsed by the contract module.

use crate::contract::{self, Profile};
use crate::exit::{Error, Result};
use std::io::Read;

/// Reads stdin to the end.
pub fn read_stdin() -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::BadInput(format!("cannot read stdin: {e}")))?;
    Ok(bytes)
}

/// The profile piped in: a bare profile or a result carrying one.
pub fn profile_from_stdin() -> Result<Profile> {
    contract::profile_from_bytes(&read_stdin()?)
}
