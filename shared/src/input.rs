//! Reading stdin: the whole of it, once, decoded and parsed by the contract module; and the one
//! rule for where a tool's env comes from.
//!
//! **The rule.** `--env NAME` means stdin is never read. Without it, stdin is read when it is a
//! pipe or a file; a terminal or a device such as `/dev/null` (cron, CI, `ssh -n`; a closed
//! stdin is reopened on `/dev/null` before `main`) counts as empty, and then `DBTOOLS_ENV`, then
//! `dev`, apply. A pipe or file that holds nothing is an error, never a fallback: the command
//! before `|` failed without a word, and acting on another env would be a guess. A piped
//! profile for another env than a set `DBTOOLS_ENV` is an error naming both. On Windows the
//! console and `NUL` (character devices) count as empty, a pipe or file as data: the same rule.

use crate::config;
use crate::contract::{self, Profile};
use crate::envvars;
use crate::exit::{Error, Result};
use std::io::{IsTerminal, Read};

/// Reads stdin to the end.
pub fn read_stdin() -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Error::BadInput(format!("cannot read stdin: {e}")))?;
    Ok(bytes)
}

/// Where the env a tool acts on was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvSource {
    /// `--env NAME` (or the tool's env argument).
    Flag,
    /// The `DBTOOLS_ENV` variable.
    Variable,
    /// Neither was given: `dev`.
    Default,
}

impl EnvSource {
    /// How a message says where the name came from.
    pub fn describe(self) -> &'static str {
        match self {
            EnvSource::Flag => "named by --env",
            EnvSource::Variable => "named by DBTOOLS_ENV",
            EnvSource::Default => "the default env: neither --env nor DBTOOLS_ENV was given",
        }
    }
}

/// The env to act on when no profile is piped in: `flag`, then `DBTOOLS_ENV`, then `dev`; with
/// where the name came from.
pub fn select_env(flag: Option<&str>) -> (String, EnvSource) {
    if let Some(env) = flag {
        return (env.to_string(), EnvSource::Flag);
    }
    match std::env::var(envvars::DBTOOLS_ENV) {
        Ok(env) if !env.is_empty() => (env, EnvSource::Variable),
        _ => (config::DEFAULT_ENV.to_string(), EnvSource::Default),
    }
}

/// What stdin is, for the rule above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdinKind {
    /// A terminal, or a device such as `/dev/null`: nothing is piped in.
    Nothing,
    /// A pipe or a file: whatever it holds is meant for this tool.
    Data,
}

#[cfg(unix)]
fn stdin_kind() -> StdinKind {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return StdinKind::Nothing;
    }
    let device = stdin
        .as_fd()
        .try_clone_to_owned()
        .and_then(|fd| std::fs::File::from(fd).metadata())
        .map_or(true, |meta| meta.file_type().is_char_device());
    match device {
        true => StdinKind::Nothing,
        false => StdinKind::Data,
    }
}

/// On Windows: the console, `NUL` (character devices) or no stdin at all mean nothing is piped.
#[cfg(windows)]
fn stdin_kind() -> StdinKind {
    match std::io::stdin().is_terminal() || crate::windows::stdin_is_device_or_absent() {
        true => StdinKind::Nothing,
        false => StdinKind::Data,
    }
}

/// The profile piped in, or None when nothing is (see the rule above). A profile for another
/// env than a set `DBTOOLS_ENV` is an error naming both.
pub(crate) fn piped_profile() -> Result<Option<Profile>> {
    if stdin_kind() == StdinKind::Nothing {
        return Ok(None);
    }
    let bytes = read_stdin()?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadInput(
            "stdin is an empty pipe or file: the command before `|` printed nothing (see its \
             error above), or pass --env NAME (stdin from /dev/null, or NUL on Windows, uses DBTOOLS_ENV, then dev)"
                .into(),
        ));
    }
    let profile = contract::profile_from_bytes(&bytes)?;
    if let (wanted, EnvSource::Variable) = select_env(None) {
        if wanted != profile.env {
            return Err(Error::BadInput(format!(
                "the profile on stdin is for env {:?} but DBTOOLS_ENV is {wanted:?}: pipe a \
                 {wanted} profile, unset DBTOOLS_ENV, or pass --env NAME instead of piping",
                profile.env
            )));
        }
    }
    Ok(Some(profile))
}
