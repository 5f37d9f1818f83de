//! Secret resolution: where a profile's password comes from.
//!
//! - `local:NAME` — a 0600 JSON file `<state>/secrets/NAME.json` (`{"username","password",…}`, the
//!   same shape as an RDS secret in AWS Secrets Manager).
//! - `env:VAR` — the password is the variable's value.
//! - `aws-sm:ID` — AWS Secrets Manager. The AWS SDK lives in `rdsprov` only, so the other tools
//!   start in milliseconds; we run `rdsprov secret get ID` and read the value from its stdout
//!   (never argv). Only a profile that references `aws-sm` pays for it.
//! - `aws-iam:REGION` — no stored password: an RDS IAM auth token (15 minutes) made for the
//!   profile's host, port and user by `rdsprov secret iam-token` when a tool connects.
//! - `pgpass:PATH` and `url:VAR` — where an ad-hoc profile's password lives the way libpq finds
//!   it: a password file ([`crate::pgpass`]), or the URL in a variable (`DATABASE_URL`).
//!
//! Profiles carry only the reference; the tool that connects resolves it ([`password_for`]).
//! AWS answers are kept a few minutes ([`crate::secret_cache`]), so a pipeline asks once.

use crate::contract::{self, SecretRef, SecretSource, SecretValue};
use crate::envvars;
use crate::exit::{Error, ExitStatus, Result};
use crate::state::{self, StateDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of a local secret, refusing names that could escape the store.
pub(crate) fn local_path(state: &StateDir, name: &str) -> Result<PathBuf> {
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok {
        return Err(Error::BadInput(format!(
            "local secret name {name:?} is not allowed: use letters, digits, '-', '_', '.' and '/'"
        )));
    }
    Ok(state.secrets_dir().join(format!("{name}.json")))
}

/// Stores a local secret (0600 file in a 0700 dir).
pub fn store_local(
    state: &StateDir,
    name: &str,
    username: &str,
    password: &str,
) -> Result<SecretRef> {
    let path = local_path(state, name)?;
    state.ensure_private_dir(&state.secrets_dir())?;
    state.ensure_private_dir(path.parent().unwrap_or(&state.secrets_dir()))?;
    let body =
        serde_json::json!({"engine": "postgres", "username": username, "password": password});
    state::write_private(&path, body.to_string().as_bytes())?;
    Ok(SecretRef {
        source: crate::contract::SecretSource::Local,
        reference: name.to_string(),
    })
}

/// Removes a local secret if it exists.
pub fn remove_local(state: &StateDir, name: &str) -> Result<()> {
    let path = local_path(state, name)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Failed(format!(
            "cannot remove secret {}: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Resolves a secret reference to its value; `region` is where an AWS secret named without an
/// ARN lives (the env's instance region), else the AWS defaults apply.
pub fn resolve(secret: &SecretRef, state: &StateDir, region: Option<&str>) -> Result<SecretValue> {
    match secret.source {
        SecretSource::Local => resolve_local(secret, state),
        SecretSource::Env => resolve_env(secret),
        SecretSource::AwsSm => resolve_through_rdsprov(secret, region),
        SecretSource::AwsIam | SecretSource::Pgpass | SecretSource::Url => {
            Err(Error::BadInput(format!(
                "secret {secret}: made or found for a host and user when a tool connects, not read from a store"
            )))
        }
    }
}

/// The password `secret` holds for connecting to `conn`: what [`resolve`] reads, and also the
/// ad-hoc sources (`pgpass:PATH`, `url:VAR`) and IAM tokens for `conn`'s host, port and user.
/// AWS answers come from the cache in `state` when fresh (`fresh` skips it: the server
/// rejected what it held).
pub(crate) fn password_for(
    secret: &SecretRef,
    conn: &contract::Conn,
    state: Option<&StateDir>,
    region: Option<&str>,
    fresh: bool,
) -> Result<String> {
    let key = match secret.source {
        SecretSource::Pgpass => return crate::pgpass::lookup(Path::new(&secret.reference), conn),
        SecretSource::Url => {
            let text = std::env::var(&secret.reference).map_err(|_| {
                Error::BadInput(format!(
                    "secret {secret}: environment variable {} is not set",
                    secret.reference
                ))
            })?;
            let url = crate::url::parse(&text)?;
            // The URL's password is for the URL's server and role only.
            if (url.host.as_str(), url.port, url.user.as_str())
                != (conn.host.as_str(), conn.port, conn.user.as_str())
            {
                return Err(Error::BadInput(format!(
                    "secret {secret}: the URL in {} is for {}@{}:{}, not this profile's {}@{}:{}: its password goes only there",
                    secret.reference, url.user, url.host, url.port, conn.user, conn.host, conn.port
                )));
            }
            return url.password.ok_or_else(|| {
                Error::BadInput(format!(
                    "secret {secret}: the URL in {} has no password",
                    secret.reference
                ))
            });
        }
        SecretSource::Local => {
            let state = state.ok_or_else(|| {
                Error::BadInput(format!(
                    "secret {secret} lives in a project's local store: run this inside the project (where dbtools.toml is), or set DBTOOLS_STATE_DIR"
                ))
            })?;
            return Ok(resolve_local(secret, state)?.password);
        }
        SecretSource::AwsSm => format!("{secret}\0{}", region.unwrap_or_default()),
        SecretSource::AwsIam => format!("{secret}\0{}\0{}\0{}", conn.host, conn.port, conn.user),
        SecretSource::Env => return Ok(resolve_env(secret)?.password),
    };
    if let (Some(state), false) = (state, fresh) {
        if let Some(password) = crate::secret_cache::get(state, &key) {
            return Ok(password);
        }
    }
    let (password, seconds) = match secret.source {
        SecretSource::AwsIam => (
            iam_auth_token(secret, &conn.host, conn.port, &conn.user)?.password,
            crate::secret_cache::TOKEN_SECONDS,
        ),
        _ => (
            resolve_through_rdsprov(secret, region)?.password,
            crate::secret_cache::SECRET_SECONDS,
        ),
    };
    if let Some(state) = state {
        crate::secret_cache::put(state, &key, &password, seconds);
    }
    Ok(password)
}

/// The password a profile's secret holds for its target (None: the profile names no secret).
/// `fresh` skips the cache of AWS answers.
pub(crate) fn profile_password(profile: &contract::Profile, fresh: bool) -> Result<Option<String>> {
    let Some(secret) = &profile.secret else {
        return Ok(None);
    };
    let region = profile.instance.as_ref().and_then(|i| i.region.as_deref());
    password_for(secret, &profile.conn, profile.state.as_ref(), region, fresh).map(Some)
}

/// Whether a reference that costs nothing to read can be read: the variable is set, the local
/// file exists. AWS references are not checked here (that is a call); they fail on connect.
pub fn check(secret: &SecretRef, state: &StateDir) -> Result<()> {
    match secret.source {
        SecretSource::Local | SecretSource::Env => resolve(secret, state, None).map(|_| ()),
        SecretSource::AwsSm | SecretSource::AwsIam | SecretSource::Pgpass | SecretSource::Url => {
            Ok(())
        }
    }
}

fn resolve_env(secret: &SecretRef) -> Result<SecretValue> {
    match std::env::var(&secret.reference) {
        Ok(password) if !password.is_empty() => Ok(value(secret, None, password)),
        _ => Err(Error::BadInput(format!(
            "secret {secret}: environment variable {} is not set",
            secret.reference
        ))),
    }
}

fn value(secret: &SecretRef, username: Option<String>, password: String) -> SecretValue {
    SecretValue {
        source: secret.source,
        reference: secret.reference.clone(),
        username,
        password,
    }
}

fn resolve_local(secret: &SecretRef, state: &StateDir) -> Result<SecretValue> {
    let path = local_path(state, &secret.reference)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::BadInput(format!(
                "secret {secret} is missing ({} does not exist): run `rdsprov apply` to create it, or fix the env's secret in dbtools.toml",
                path.display()
            )))
        }
        Err(e) => return Err(Error::BadInput(format!("secret {secret}: cannot read {}: {e}", path.display()))),
    };
    parse_secret_string(secret, &text)
}

/// Reads a secret string the way RDS stores it: JSON with `password` (and `username`), or the
/// bare password.
pub fn parse_secret_string(secret: &SecretRef, text: &str) -> Result<SecretValue> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            let password = map
                .get("password")
                .and_then(|p| p.as_str())
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "secret {secret} is JSON without a \"password\" string"
                    ))
                })?;
            let username = map
                .get("username")
                .and_then(|u| u.as_str())
                .map(str::to_string);
            Ok(value(secret, username, password.to_string()))
        }
        Ok(_) | Err(_) if !text.trim().is_empty() && !text.trim_start().starts_with('{') => {
            Ok(value(
                secret,
                None,
                text.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
        _ => Err(Error::BadInput(format!(
            "secret {secret} is not valid JSON with a password"
        ))),
    }
}

/// Finds a sibling dbtools binary: `DBTOOLS_BIN_DIR`, the running binary's directory, then `PATH`.
pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(envvars::DBTOOLS_BIN_DIR) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        dirs.push(dir.to_path_buf());
    }
    dirs.into_iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(file))
}

fn resolve_through_rdsprov(secret: &SecretRef, region: Option<&str>) -> Result<SecretValue> {
    let mut args = vec!["secret", "get", "--json", &secret.reference];
    if let Some(region) = region {
        args.extend(["--region", region]);
    }
    run_rdsprov(secret, &args)
}

/// An RDS IAM auth token for `user` at `host:port` (`aws-iam:REGION` secrets), made by rdsprov
/// (which holds the AWS credentials chain); host, port and user are no secrets, the token comes
/// back on a pipe.
pub(crate) fn iam_auth_token(
    secret: &SecretRef,
    host: &str,
    port: u16,
    user: &str,
) -> Result<SecretValue> {
    let port = port.to_string();
    run_rdsprov(
        secret,
        &[
            "secret",
            "iam-token",
            "--json",
            "--host",
            host,
            "--port",
            &port,
            "--user",
            user,
            "--region",
            &secret.reference,
        ],
    )
}

fn run_rdsprov(secret: &SecretRef, args: &[&str]) -> Result<SecretValue> {
    let text = run_sibling("rdsprov", args, None).map_err(|error| {
        let message = format!("secret {secret}: {}", error.message());
        match error {
            Error::Unreachable(_) => Error::Unreachable(message),
            Error::BadInput(_) => Error::BadInput(message),
            _ => Error::Failed(message),
        }
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Failed(format!(
            "secret {secret}: rdsprov printed an unreadable answer: {e}"
        ))
    })
}

/// Runs a sibling dbtools binary with `input` on its stdin (a profile or secret travels
/// there, never on argv) and returns its stdout; a failure comes back with the message it
/// reported (its JSON error object, else its stderr) and its exit class.
pub fn run_sibling(name: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let binary = sibling_binary(name);
    let mut child = Command::new(&binary)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::BadInput(format!(
                "cannot run {} ({e}): install it beside this tool",
                binary.display()
            ))
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A child that stops before reading all of stdin says why itself; its exit counts.
        match std::io::Write::write_all(&mut stdin, text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Failed(format!("{name}: {e}")));
            }
            _ => {}
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::Failed(format!("{name}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if output.status.success() {
        return Ok(stdout);
    }
    let message = serde_json::from_str::<contract::ErrorMessage>(&stdout)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&output.stderr).trim().to_string());
    Err(
        match output
            .status
            .code()
            .and_then(|c| ExitStatus::from_code(c.into()))
        {
            Some(ExitStatus::Unreachable) => Error::Unreachable(message),
            Some(ExitStatus::BadInput) => Error::BadInput(message),
            _ => Error::Failed(message),
        },
    )
}

/// A fresh random password: 32 characters from an alphabet that needs no quoting anywhere
/// (URLs, pgpass, shell), from the OS's random source.
pub fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 64];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Failed(format!("no random source: {e}")))?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % ALPHABET.len());
    let password: String = bytes
        .iter()
        .filter(|&&b| (b as usize) < limit)
        .take(32)
        .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect();
    if password.len() < 32 {
        return generate_password();
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_secrets_round_trip_and_names_cannot_escape() {
        let dir = std::env::temp_dir().join(format!("dbtools-secrets-{}", std::process::id()));
        let state = StateDir::new(&dir);
        let reference = store_local(&state, "inst/app", "app", "s3cret").unwrap();
        let value = resolve(&reference, &state, None).unwrap();
        assert_eq!(value.password, "s3cret");
        assert_eq!(value.username.as_deref(), Some("app"));
        assert!(local_path(&state, "../etc/passwd").is_err());
        assert!(local_path(&state, "/abs").is_err());
        let missing =
            resolve(&SecretRef::parse("local:inst/none").unwrap(), &state, None).unwrap_err();
        assert!(missing.to_string().contains("rdsprov apply"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passwords_are_long_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn secret_strings_are_json_or_bare() {
        let r = SecretRef::parse("aws-sm:x").unwrap();
        assert_eq!(
            parse_secret_string(&r, r#"{"username":"u","password":"p"}"#)
                .unwrap()
                .password,
            "p"
        );
        assert_eq!(parse_secret_string(&r, "bare\n").unwrap().password, "bare");
        assert!(parse_secret_string(&r, r#"{"user":"u"}"#).is_err());
    }
}
