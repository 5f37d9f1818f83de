//! The short-lived cache of passwords fetched from AWS (`aws-sm` secrets, `aws-iam` tokens), so
//! a pipeline of four tools asks AWS once, not four times with four SDK start-ups. One 0600 file
//! per secret (and, for a token, per host, port and user) in the state dir's 0700
//! `cache/secrets/`, holding the key it is for and when it expires: a secret for
//! [`SECRET_SECONDS`], a token (valid 15 minutes) for [`TOKEN_SECONDS`]. A password the server
//! rejects is dropped at once and read again (a rotated secret).

use crate::exit::Result;
use crate::state::{self, StateDir};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a secret read from AWS Secrets Manager is reused.
pub(crate) const SECRET_SECONDS: u64 = 300;
/// How long an IAM auth token is reused (it is valid for 900).
pub(crate) const TOKEN_SECONDS: u64 = 600;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    expires: u64,
    password: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn path(state: &StateDir, key: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    state
        .secret_cache_dir()
        .join(format!("{:016x}.json", hasher.finish()))
}

/// The cached password for `key`, if one is there and fresh.
pub(crate) fn get(state: &StateDir, key: &str) -> Option<String> {
    let path = path(state, key);
    let entry: Entry = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    if entry.key != key || entry.expires <= now() || loose(&path) {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    Some(entry.password)
}

/// Keeps `password` for `key` for `seconds`. A cache that cannot be written only costs time.
pub(crate) fn put(state: &StateDir, key: &str, password: &str, seconds: u64) {
    let entry = Entry {
        key: key.to_string(),
        expires: now() + seconds,
        password: password.to_string(),
    };
    let written = state
        .ensure_private_dir(&state.secret_cache_dir())
        .and_then(|()| {
            let json = serde_json::to_vec(&entry).unwrap_or_default();
            state::write_private(&path(state, key), &json)
        });
    let _: Result<()> = written;
}

#[cfg(unix)]
fn loose(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map_or(true, |m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn loose(_path: &std::path::Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_private_expire_and_can_be_forgotten() {
        let dir = std::env::temp_dir().join(format!("dbtools-cache-{}", std::process::id()));
        let state = StateDir::new(&dir);
        assert_eq!(get(&state, "aws-sm:a"), None);
        put(&state, "aws-sm:a", "pw", 60);
        assert_eq!(get(&state, "aws-sm:a").as_deref(), Some("pw"));
        assert_eq!(get(&state, "aws-sm:b"), None);
        if cfg!(unix) {
            use std::os::unix::fs::PermissionsExt;
            let file = path(&state, "aws-sm:a");
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            state::set_mode(&file, 0o644).unwrap();
            assert_eq!(
                get(&state, "aws-sm:a"),
                None,
                "a readable entry is not trusted"
            );
        }
        put(&state, "aws-sm:a", "pw", 0);
        assert_eq!(get(&state, "aws-sm:a"), None, "expired");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
