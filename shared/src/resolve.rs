//! Turns an env name into a profile: config + instance state + secret. This is what `dbenv resolve`
//! prints and what every tool's `--env` does by itself.

use crate::config::Config;
use crate::contract::{self, Conn, Instance, InstanceRef, Profile, Protection, SslMode};
use crate::envvars;
use crate::exit::{Error, Result};
use crate::{names, secrets, url};

/// Resolves `env` from the config, the local instance record (for host, port and CA) and the
/// secret store (for the password).
pub fn resolve_profile(config: &Config, env_name: &str) -> Result<Profile> {
    names::check_env_name(env_name)?;
    let env = config.env(env_name)?;
    let instance = config.env_instance(env_name)?;
    let record = match instance {
        Some((id, instance)) if instance.provider == "local" && env.host.is_none() => {
            Some(read_local_instance(config, id, env_name)?)
        }
        _ => None,
    };
    let (host, port) = match (&env.host, &record) {
        (Some(host), _) => (host.clone(), env.port.unwrap_or(5432)),
        (None, Some(record)) => (record.endpoint.host.clone(), record.endpoint.port),
        (None, None) => {
            return Err(Error::BadInput(format!(
                "env {env_name} has no host: set host in [env.{env_name}] (for a local instance, its `instance` table)"
            )))
        }
    };
    let sslrootcert = match (&env.sslrootcert, &record) {
        (Some(path), _) if path == "system" => Some(path.clone()),
        (Some(path), _) => Some(config.resolve_path(path).display().to_string()),
        (None, Some(record)) => record.ca_cert.clone(),
        (None, None) => None,
    };
    let secret = config.env_secret(env_name)?;
    let password = match &secret {
        Some(reference) if reference.source == "aws-iam" => {
            Some(secrets::iam_auth_token(reference, &host, port, &env.user)?.password)
        }
        Some(reference) => {
            let region = instance.and_then(|(_, i)| i.region.as_deref());
            Some(secrets::resolve(reference, &config.state, region)?.password)
        }
        None => None,
    };
    Ok(Profile {
        kind: contract::PROFILE.into(),
        env: env_name.to_string(),
        protection: config.protection(env_name),
        app: config.app.clone(),
        conn: Conn {
            host,
            port,
            dbname: env.database.clone(),
            user: env.user.clone(),
            password,
            sslmode: env.sslmode.unwrap_or(SslMode::VerifyFull),
            sslrootcert,
        },
        instance: instance.map(|(id, instance)| InstanceRef {
            provider: instance.provider.clone(),
            id: id.to_string(),
            region: instance.region.clone(),
        }),
        secret,
        snapshot: None,
    })
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
        return Ok(profile);
    };
    let floor = if profile.env == ADHOC_ENV && !config.envs.contains_key(ADHOC_ENV) {
        Protection::Confirm
    } else {
        config.env(&profile.env).map_err(|e| {
            Error::BadInput(format!(
                "the profile on stdin is for env {:?}, which this project does not define: {}",
                profile.env,
                e.message()
            ))
        })?;
        config.protection(&profile.env)
    };
    profile.protection = profile.protection.max(floor);
    Ok(profile)
}

/// Reads a local instance's record, written by `rdsprov apply`.
pub fn read_local_instance(config: &Config, id: &str, env_name: &str) -> Result<Instance> {
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
    let conn = if let Some(database_url) = var(envvars::DATABASE_URL) {
        url::parse(&database_url)?
    } else if let Some(host) = var(envvars::PGHOST) {
        let port = match var(envvars::PGPORT) {
            Some(p) => p
                .parse()
                .map_err(|_| Error::BadInput(format!("PGPORT {p:?} is not a port number")))?,
            None => 5432,
        };
        let user = var(envvars::PGUSER)
            .or_else(|| var("USER"))
            .unwrap_or_else(|| "postgres".into());
        let loopback = url::is_loopback(&host);
        Conn {
            dbname: var(envvars::PGDATABASE).unwrap_or_else(|| user.clone()),
            user,
            password: var(envvars::PGPASSWORD),
            sslmode: match var(envvars::PGSSLMODE) {
                Some(mode) => SslMode::parse(&mode)?,
                None if loopback => SslMode::Prefer,
                None => SslMode::VerifyFull,
            },
            sslrootcert: var(envvars::PGSSLROOTCERT),
            host,
            port,
        }
    } else {
        return Err(Error::BadInput(
            "--from-env: neither DATABASE_URL nor PGHOST is set".into(),
        ));
    };
    let protection = match config {
        Some(config) if config.envs.contains_key(env_name) => config.protection(env_name),
        _ => Protection::Confirm,
    };
    let secret = conn.password.as_ref().map(|_| contract::SecretRef {
        source: "env".into(),
        reference: if var(envvars::DATABASE_URL).is_some() {
            envvars::DATABASE_URL
        } else {
            envvars::PGPASSWORD
        }
        .into(),
    });
    Ok(Profile {
        kind: contract::PROFILE.into(),
        env: env_name.to_string(),
        protection,
        app: config.and_then(|c| c.app.clone()),
        conn,
        instance: None,
        secret,
        snapshot: None,
    })
}

/// Connects with `connect` as the profile says; when the server rejects the password and it
/// came from AWS Secrets Manager, the secret is read again once — it may have been rotated
/// since the profile was resolved (a pipeline's first tool, an exported PGPASSFILE) — and the
/// connect is retried with the new value, saying so on stderr. A secret that still holds the
/// rejected password is named in the error: the server's password changed without it.
pub fn connect_fresh<T>(
    profile: &Profile,
    tool: &str,
    mut connect: impl FnMut(&crate::contract::Conn) -> Result<T>,
) -> Result<T> {
    let error = match connect(&profile.conn) {
        Err(error) if crate::pg::is_auth_failure(&error) => error,
        other => return other,
    };
    let Some(secret) = profile.secret.as_ref().filter(|s| s.source == "aws-sm") else {
        return Err(error);
    };
    let region = profile.instance.as_ref().and_then(|i| i.region.as_deref());
    let fresh = crate::secrets::resolve_aws(secret, region).map_err(|reread| {
        Error::Unreachable(format!(
            "{}; reading the secret {secret} again to see whether it was rotated failed too: {}",
            error.message(),
            reread.message()
        ))
    })?;
    if profile.conn.password.as_deref() == Some(fresh.password.as_str()) {
        return Err(Error::Unreachable(format!(
            "{}; the secret {secret} in AWS Secrets Manager still holds that password, read again just now: the server's password was changed without updating the secret",
            error.message()
        )));
    }
    crate::cli::note(
        tool,
        format!("the secret {secret} had changed since this profile was resolved (rotated?): connecting with its new value"),
    );
    let mut conn = profile.conn.clone();
    conn.password = Some(fresh.password);
    connect(&conn)
}
