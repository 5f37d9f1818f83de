//! Turns an env name into a profile: config + instance state + where the secret lives. This is
//! what `dbenv resolve` prints and what every tool's `--env` does by itself. A profile never
//! carries a password: the tool that connects resolves its `secret` ([`connect_fresh`]), and a
//! profile piped in is believed only as far as the project's config agrees with it
//! ([`admit_piped_profile`]): its secret is the one the config names for that env (and its
//! target the env's), or one of libpq's own sources.

use crate::config::Config;
use crate::contract::{
    self, Conn, Instance, InstanceRef, Profile, Protection, SecretSource, SslMode,
};
use crate::envvars;
use crate::exit::{Error, Result};
use crate::{names, secrets, url};

/// Resolves `env` from the config and the local instance record (for host, port and CA). The
/// secret is referenced, not read: a local or variable secret that is missing is an error now,
/// an AWS one is read by the tool that connects.
pub fn resolve_profile(config: &Config, env_name: &str) -> Result<Profile> {
    names::check_env_name(env_name)?;
    let env = config.env(env_name)?;
    let instance = config.env_instance(env_name)?;
    let record = match instance {
        Some((id, instance))
            if instance.provider == crate::contract::Provider::Local && env.host.is_none() =>
        {
            Some(read_local_instance(config, id, env_name)?)
        }
        _ => None,
    };
    let (host, port) = match (&env.host, &record) {
        (Some(host), _) => (host.clone(), env.port.unwrap_or(5432)),
        (None, Some(record)) => (record.endpoint.host.clone(), record.endpoint.port),
        (None, None) => {
            let how = match instance {
                Some((id, i)) if i.provider == crate::contract::Provider::Aws => format!(
                    "its AWS instance {id}'s endpoint is not in dbtools.toml yet: `rdsprov status --spec ops/aws/rds.toml | dbenv import` writes it (or set host in [env.{env_name}])"
                ),
                _ => format!("set host in [env.{env_name}] (or give it a local `instance`)"),
            };
            return Err(Error::BadInput(format!(
                "env {env_name} has no host: {how}"
            )));
        }
    };
    let sslrootcert = match (&env.sslrootcert, &record) {
        (Some(path), _) if path == "system" => Some(path.clone()),
        (Some(path), _) => Some(config.resolve_path(path).display().to_string()),
        (None, Some(record)) => record.ca_cert.clone(),
        (None, None) => None,
    };
    let secret = config.env_secret(env_name)?;
    if let Some(reference) = &secret {
        secrets::check(reference, &config.state)?;
    }
    Ok(Profile {
        env: env_name.to_string(),
        protection: config.protection(env_name),
        app: config.app.clone(),
        conn: Conn {
            host,
            port,
            dbname: env.database.clone(),
            user: env.user.clone(),
            password: None,
            sslmode: env.sslmode.unwrap_or(SslMode::VerifyFull),
            sslrootcert,
        },
        instance: instance.map(|(id, instance)| InstanceRef {
            provider: instance.provider,
            id: id.to_string(),
            region: instance.region.clone(),
        }),
        secret,
        snapshot: None,
        state: Some(config.state.clone()),
    })
}

/// Resolves the env `flag` names, else `DBTOOLS_ENV`'s, else dev's (the rule in
/// [`crate::input`]); an unknown name says where it came from.
pub fn resolve_selected(config: &Config, flag: Option<&str>) -> Result<Profile> {
    let (name, source) = crate::input::select_env(flag);
    config.env_from(&name, Some(source.describe()))?;
    // A dbmate or libpq user's DATABASE_URL / PGHOST is not what a dbtools env reaches: said
    // once, by the tool that resolves the env (not every tool of a pipeline).
    let set = [envvars::DATABASE_URL, envvars::PGHOST]
        .into_iter()
        .filter(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
        .collect::<Vec<_>>();
    if !set.is_empty() {
        crate::diag::note(
            crate::diag::tool(),
            format!(
                "{} set but not used: env {name} comes from {} (`dbenv resolve --from-env` builds a profile from them)",
                match set.as_slice() {
                    [one] => format!("{one} is"),
                    _ => format!("{} are", set.join(" and ")),
                },
                config.path.display()
            ),
        );
    }
    resolve_profile(config, &name)
}

/// The env name of ad-hoc profiles (`dbenv resolve --from-env` without a configured env name).
pub const ADHOC_ENV: &str = "adhoc";

/// Checks a profile that arrived on stdin against the project's config, so a hand-edited, stale
/// or foreign profile cannot lower a guard: its env must be one the config defines (or the
/// ad-hoc env), and its protection becomes the strictest of what it says, what the config
/// says and the default for its name. Without a config (outside any project) the default by
/// name still applies.
pub fn admit_piped_profile(mut profile: Profile, config: Option<&Config>) -> Result<Profile> {
    names::check_env_name(&profile.env)?;
    let Some(config) = config else {
        // Outside a project the default by env name still holds: a TEST profile edited to
        // "open" stays confirm.
        profile.protection = crate::guard::floor(&profile.env, profile.protection, None);
        check_libpq_secret(&profile, "outside a project (no dbtools.toml here)")?;
        profile.state = state_from_environment();
        return Ok(profile);
    };
    let floor = if profile.env == ADHOC_ENV && !config.envs.contains_key(ADHOC_ENV) {
        check_libpq_secret(&profile, "for an ad-hoc database")?;
        Protection::Confirm
    } else {
        config.env(&profile.env).map_err(|e| {
            Error::BadInput(format!(
                "the profile on stdin is for env {:?}, which this project does not define: {}",
                profile.env,
                e.message()
            ))
        })?;
        if profile.secret != config.env_secret(&profile.env)? {
            check_libpq_secret(
                &profile,
                "unless it is the one dbtools.toml names for the env",
            )?;
        } else if profile.secret.is_some() {
            // The env's own secret goes only to the env's own target, over its own TLS.
            let expected = resolve_profile(config, &profile.env)?;
            if profile.conn != expected.conn {
                return Err(Error::BadInput(format!(
                    "the profile on stdin for env {} points at {}:{}/{} as {} (sslmode {}), but dbtools.toml resolves it to {}:{}/{} as {} (sslmode {}): its secret goes only there; make the profile again with `dbenv resolve {}`",
                    profile.env, profile.conn.host, profile.conn.port, profile.conn.dbname,
                    profile.conn.user, profile.conn.sslmode.as_str(),
                    expected.conn.host, expected.conn.port, expected.conn.dbname,
                    expected.conn.user, expected.conn.sslmode.as_str(), profile.env
                )));
            }
        }
        config.protection(&profile.env)
    };
    profile.protection = profile.protection.max(floor);
    profile.state = Some(config.state.clone());
    Ok(profile)
}

/// The state dir named by `DBTOOLS_STATE_DIR`, outside a project.
fn state_from_environment() -> Option<crate::state::StateDir> {
    std::env::var_os(envvars::DBTOOLS_STATE_DIR)
        .filter(|dir| !dir.is_empty())
        .map(crate::state::StateDir::new)
}

/// A secret a piped profile may name without the project's config vouching for it: libpq's own
/// sources as this machine has them (`PGPASSWORD`, the URL in `DATABASE_URL`, the password file
/// libpq would read), or none. Anything else — a variable such as `AWS_SECRET_ACCESS_KEY`, a
/// file elsewhere, another env's AWS secret — would send whatever it holds to the host the
/// profile names.
fn check_libpq_secret(profile: &Profile, why: &str) -> Result<()> {
    let Some(secret) = &profile.secret else {
        return Ok(());
    };
    let allowed = match (secret.source, secret.reference.as_str()) {
        (SecretSource::Env, envvars::PGPASSWORD) | (SecretSource::Url, envvars::DATABASE_URL) => {
            true
        }
        (SecretSource::Pgpass, path) => {
            let service = std::env::var(envvars::PGSERVICE)
                .ok()
                .and_then(|name| crate::pgservice::read(&name).ok())
                .and_then(|(settings, file)| passfile_of(&settings, &file));
            [crate::pgpass::default_file(), service]
                .into_iter()
                .flatten()
                .any(|file| file == std::path::Path::new(path))
        }
        _ => false,
    };
    match allowed {
        true => Ok(()),
        false => Err(Error::BadInput(format!(
            "the profile on stdin names the secret {secret}, which is not honoured {why}: only env:PGPASSWORD, url:DATABASE_URL or this machine's password file (PGPASSFILE or ~/.pgpass) are; run the tool with --env ENV inside the project instead"
        ))),
    }
}

/// The password file a service section names (`passfile=`), relative to the service file.
fn passfile_of(
    service: &std::collections::BTreeMap<String, String>,
    service_file: &std::path::Path,
) -> Option<std::path::PathBuf> {
    let written = std::path::Path::new(service.get("passfile")?);
    Some(match written.is_absolute() {
        true => written.to_path_buf(),
        false => service_file
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(written),
    })
}

/// The profile with its password read, for a command that was asked to show it
/// (`dbenv export`, `dbconnect url --reveal`) or hands it to psql.
pub fn with_password(profile: &Profile) -> Result<Profile> {
    let mut shown = profile.clone();
    shown.conn.password = secrets::profile_password(profile, false)?;
    Ok(shown)
}

/// Reads a local instance's record, written by `rdsprov apply`.
pub(crate) fn read_local_instance(config: &Config, id: &str, env_name: &str) -> Result<Instance> {
    let path = config.state.instance_record(id);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        Error::Unreachable(format!(
            "env {env_name}: local instance {id} is not provisioned ({} is missing): run `rdsprov apply` (or `make up`)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Error::BadInput(format!(
            "instance record {} is damaged: {e}",
            path.display()
        ))
    })
}

/// An ad-hoc profile from `DATABASE_URL`, else libpq's `PG*` variables. The env name is the one
/// given (or `adhoc`); its protection comes from config when it names a known env, else `confirm`
/// — an unknown database is treated with care.
pub fn profile_from_environment(env_name: &str, config: Option<&Config>) -> Result<Profile> {
    names::check_env_name(env_name)?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(unsupported) = envvars::PGSSL_UNSUPPORTED
        .iter()
        .find(|name| var(name).is_some())
    {
        return Err(Error::BadInput(format!(
            "--from-env: {unsupported} is set, which dbtools cannot honour (its TLS is native-tls: no client certificates, CRLs or protocol pins); unset it rather than have it ignored"
        )));
    }
    // A service (PGSERVICE) supplies what it names; the PG* variables the rest, as in libpq.
    let (service, service_file) = match var(envvars::PGSERVICE) {
        Some(name) => {
            let (settings, path) = crate::pgservice::read(&name)?;
            (settings, Some(path))
        }
        None => Default::default(),
    };
    let setting = |key: &str, variable: &str| service.get(key).cloned().or_else(|| var(variable));
    let mut passfile = None;
    let conn = if let Some(database_url) = var(envvars::DATABASE_URL) {
        url::parse(&database_url)?
    } else if let Some(host) = setting("host", envvars::PGHOST) {
        let port = match setting("port", envvars::PGPORT) {
            Some(p) => p.parse().map_err(|_| {
                let from = match service.contains_key("port") {
                    true => "the service's port",
                    false => "PGPORT",
                };
                Error::BadInput(format!("{from} {p:?} is not a port number"))
            })?,
            None => 5432,
        };
        let user = setting("user", envvars::PGUSER)
            .or_else(|| var("USER"))
            .unwrap_or_else(|| "postgres".into());
        let loopback = url::is_loopback(&host);
        passfile = service_file
            .as_deref()
            .and_then(|file| passfile_of(&service, file));
        Conn {
            dbname: setting("dbname", envvars::PGDATABASE).unwrap_or_else(|| user.clone()),
            user,
            password: None,
            sslmode: match setting("sslmode", envvars::PGSSLMODE) {
                Some(mode) => SslMode::parse(&mode)?,
                None if loopback => SslMode::Prefer,
                None => SslMode::VerifyFull,
            },
            sslrootcert: setting("sslrootcert", envvars::PGSSLROOTCERT),
            host,
            port,
        }
    } else {
        return Err(Error::BadInput(
            "--from-env: none of DATABASE_URL, PGHOST or PGSERVICE is set".into(),
        ));
    };
    let protection = match config {
        Some(config) if config.envs.contains_key(env_name) => config.protection(env_name),
        _ => Protection::Confirm,
    };
    // Where libpq would find the password, in its order: the URL, PGPASSWORD, the password
    // file. The profile names the place; each tool reads it when it connects.
    let secret = if conn.password.is_some() {
        Some(contract::SecretRef {
            source: crate::contract::SecretSource::Url,
            reference: envvars::DATABASE_URL.into(),
        })
    } else if var(envvars::PGPASSWORD).is_some() {
        Some(contract::SecretRef {
            source: crate::contract::SecretSource::Env,
            reference: envvars::PGPASSWORD.into(),
        })
    } else {
        passfile
            .or_else(crate::pgpass::default_file)
            .map(|path| contract::SecretRef {
                source: crate::contract::SecretSource::Pgpass,
                reference: path.display().to_string(),
            })
    };
    Ok(Profile {
        env: env_name.to_string(),
        protection,
        app: config.and_then(|c| c.app.clone()),
        conn: Conn {
            password: None,
            ..conn
        },
        instance: None,
        secret,
        snapshot: None,
        state: config.map(|c| c.state.clone()),
    })
}

/// A connection for the profile within `timeout` (see [`connect_fresh`]): what every tool
/// that works on a profile's database opens.
pub fn connect(
    profile: &Profile,
    tool: &str,
    timeout: std::time::Duration,
) -> Result<crate::pg::Client> {
    connect_fresh(profile, tool, |conn| {
        crate::pg::connect(conn, tool, timeout)
    })
}

/// Connects to the profile's database, retrying what may pass (refused, no answer, starting
/// up) with backoff until `timeout`, each miss a progress line with the time left (the error
/// in full only when it is new), and saying how long it took when that was long:
/// `dbconnect wait`, and `dbmigrate wait` (dbmate's verb). Returns the client and how long
/// the attempt that succeeded took.
pub fn wait_for(
    profile: &Profile,
    tool: &str,
    timeout: std::time::Duration,
) -> Result<(crate::pg::Client, std::time::Duration)> {
    let target = format!(
        "{} at {}:{}",
        profile.env, profile.conn.host, profile.conn.port
    );
    let started = std::time::Instant::now();
    let mut last_error = String::new();
    let connected = connect_fresh(profile, tool, |conn| {
        crate::pg::connect_with_retry(conn, tool, timeout, |elapsed, error| {
            let cause = if error.message() == last_error {
                "the same error".to_string()
            } else {
                last_error = error.message().to_string();
                error.message().to_string()
            };
            crate::diag::note(
                tool,
                format!(
                    "waiting for {target}: {:.1}s of {:.0}s ({cause})",
                    elapsed.as_secs_f64(),
                    timeout.as_secs_f64()
                ),
            )
        })
    })?;
    if started.elapsed() > std::time::Duration::from_millis(500) {
        crate::diag::note(
            tool,
            format!(
                "{target} answered after {:.1}s",
                started.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(connected)
}

/// Connects with `connect` as the profile says, its password read now from the profile's
/// secret. When the server rejects a password that came from AWS (a Secrets Manager secret or
/// an IAM token, possibly cached), it is read again once, past the cache — the secret may have
/// been rotated since — and the connect retried with the new value, saying so on stderr. A
/// secret that still holds the rejected password is named in the error: the server's password
/// changed without it.
pub fn connect_fresh<T>(
    profile: &Profile,
    tool: &str,
    connect: impl FnMut(&crate::contract::Conn) -> Result<T>,
) -> Result<T> {
    connect_reading_again(profile, tool, connect).map_err(|error| with_advice(profile, error))
}

/// A connect error with what to do about it, by where the profile's settings came from: the
/// password's source for a refused password; for an env on a local instance, how to start it
/// or create its database; for a profile made from libpq's variables (no instance, a libpq
/// secret), where its settings were read.
fn with_advice(profile: &Profile, error: Error) -> Error {
    let advice = match (&error, &profile.instance, &profile.secret) {
        (Error::AuthFailed(_), _, Some(secret)) => Some(match secret.source {
            SecretSource::Local => format!(
                "the password came from the local secret store ({}): `rdsprov apply` writes it for local instances",
                secret.reference
            ),
            SecretSource::Env => format!("the password came from ${}", secret.reference),
            SecretSource::Url => format!("the password came from the URL in ${}", secret.reference),
            SecretSource::Pgpass => format!("the password came from {}", secret.reference),
            SecretSource::AwsSm => format!("the password came from Secrets Manager secret {}", secret.reference),
            SecretSource::AwsIam => format!(
                "an IAM token for region {} was refused: the role needs rds_iam, the caller rds-db:connect",
                secret.reference
            ),
        }),
        (Error::Unreachable(_), Some(instance), _) if instance.provider == crate::contract::Provider::Local => Some(format!(
            "env {} lives on local instance {}: `rdsprov start --env {}` starts it when stopped, `rdsprov apply` creates what is missing",
            profile.env, instance.id, profile.env
        )),
        (Error::Unreachable(_), None, Some(secret))
            if matches!(secret.source, SecretSource::Url | SecretSource::Pgpass | SecretSource::Env) =>
        {
            Some("the profile came from libpq's settings (DATABASE_URL, PG* variables): check them, or `dbconnect doctor` walks the chain".into())
        }
        _ => None,
    };
    match (advice, error) {
        (Some(advice), Error::AuthFailed(message)) => {
            Error::AuthFailed(format!("{message}; {advice}"))
        }
        (Some(advice), Error::Unreachable(message)) => {
            Error::Unreachable(format!("{message}; {advice}"))
        }
        (_, error) => error,
    }
}

fn connect_reading_again<T>(
    profile: &Profile,
    tool: &str,
    mut connect: impl FnMut(&crate::contract::Conn) -> Result<T>,
) -> Result<T> {
    let mut conn = profile.conn.clone();
    conn.password = secrets::profile_password(profile, false)?;
    let error = match connect(&conn) {
        Err(error) if crate::pg::is_auth_failure(&error) => error,
        other => return other,
    };
    let Some(secret) = profile
        .secret
        .as_ref()
        .filter(|s| matches!(s.source, SecretSource::AwsSm | SecretSource::AwsIam))
    else {
        return Err(error);
    };
    let fresh = secrets::profile_password(profile, true).map_err(|reread| {
        Error::Unreachable(format!(
            "{}; reading the secret {secret} again to see whether it was rotated failed too: {}",
            error.message(),
            reread.message()
        ))
    })?;
    if fresh == conn.password {
        return Err(Error::Unreachable(format!(
            "{}; the secret {secret} still holds that password, read again just now: the server's password was changed without updating the secret",
            error.message()
        )));
    }
    crate::diag::note(
        tool,
        format!("the secret {secret} had changed since it was last read (rotated?): connecting with its new value"),
    );
    conn.password = fresh;
    connect(&conn)
}
