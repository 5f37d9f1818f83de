//! The SQL that gives an application its own place on an instance, the same on every provider:
//! a role (LOGIN only, no other attribute) with a generated password, a database it owns,
//! CONNECT revoked from PUBLIC so other roles — other tenants — cannot even connect, and the
//! database stamped with its env. Used for each env's database by `apply` and for
//! `rdsprov tenant add NAME`. Where passwords live (local store, Secrets Manager) is the
//! caller's: it passes whether the role's secret exists and how to store a new password,
//! which happens before the role gets it, so a crash never leaves a password nobody knows.

use dbtools::contract::{Protection, Stamp};
use dbtools::names::{quote_ident, quote_literal};
use dbtools::stamp::{self, NewStamp};
use dbtools::{pg, secrets, Error, Result};

/// One database and the role that owns it, for an env.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseSpec {
    pub env: String,
    pub name: String,
    pub owner: String,
    /// The env's level, written into the stamp (a stricter stamp already there stays).
    pub protection: Protection,
}

/// A tenant's database and role (both named NAME) for an env, the name checked: an SQL name
/// of our safe alphabet, not the master user, not a name PostgreSQL or RDS keeps for itself,
/// and not the app role (`user`) of any env in `config`: a tenant sharing an env's role would
/// get that env's privileges, and a missing tenant secret would re-password the env's role.
pub(crate) fn checked_tenant(
    env: &str,
    name: &str,
    master_user: &str,
    config: Option<&dbtools::config::Config>,
) -> Result<DatabaseSpec> {
    dbtools::names::check_env_name(env)?;
    dbtools::names::check_sql_name(name, "tenant name")?;
    const RESERVED: &[&str] = &["postgres", "template0", "template1", "rdsadmin", "public"];
    if name == master_user || RESERVED.contains(&name) || name.starts_with("rds") {
        return Err(Error::BadInput(format!(
            "tenant name {name:?} is taken by PostgreSQL, RDS or the master user: pick another"
        )));
    }
    // Another env's app role would give the tenant that env's privileges (its database
    // included). The env's own role is the documented AWS flow (`tenant add NAME --env E |
    // dbenv import` writes `user = NAME` into env E), so a rerun of it stays allowed.
    let role_of = config
        .into_iter()
        .flat_map(|c| &c.envs)
        .find(|(owner, e)| e.user == name && owner.as_str() != env);
    if let Some((owner, _)) = role_of {
        return Err(Error::BadInput(format!(
            "tenant name {name:?} is env {owner}'s app role: a tenant gets its own role; pick another"
        )));
    }
    Ok(DatabaseSpec {
        env: env.into(),
        name: name.into(),
        owner: name.into(),
        protection: config.map_or_else(
            || dbtools::config::default_protection(env),
            |c| c.protection(env),
        ),
    })
}

pub(crate) fn exists(client: &mut pg::Client, sql: &str, name: &str) -> Result<bool> {
    client
        .query_opt(sql, &[&name])
        .map(|row| row.is_some())
        .map_err(|e| pg::statement_error("reading the catalog", &e))
}

/// The role and database: created when missing; a role whose secret is gone gets a new
/// password (and secret) rather than leaving the env unusable. `client` is the master user's,
/// on any database of the instance.
pub(crate) fn ensure_role_and_database(
    client: &mut pg::Client,
    spec: &DatabaseSpec,
    secret_exists: bool,
    store_password: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    let role_exists = exists(
        client,
        "SELECT 1 FROM pg_roles WHERE rolname = $1",
        &spec.owner,
    )?;
    if !role_exists || !secret_exists {
        let password = secrets::generate_password()?;
        // A SCRAM verifier, not the password: the server never sees it in plain text.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        store_password(&password)?;
        let (verb, change) = if role_exists {
            (
                "ALTER",
                format!(
                    "reset the password of role {} (its secret was missing)",
                    spec.owner
                ),
            )
        } else {
            (
                "CREATE",
                format!("created role {} (login only)", spec.owner),
            )
        };
        let sql = format!(
            "{verb} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}",
            quote_ident(&spec.owner),
            quote_literal(&verifier)
        );
        client
            .batch_execute(&sql)
            .map_err(|e| pg::statement_error(&format!("{verb} ROLE {}", spec.owner), &e))?;
        changes.push(change);
    }
    let db = quote_ident(&spec.name);
    let owner = quote_ident(&spec.owner);
    let current_owner = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
            &[&spec.name],
        )
        .map_err(|e| pg::statement_error("reading the catalog", &e))?
        .map(|row| row.get::<_, String>(0));
    if let Some(other) = current_owner.filter(|o| o != &spec.owner) {
        return Err(Error::Refused(format!(
            "database {} exists and belongs to {other}, not {}: pick another name",
            spec.name, spec.owner
        )));
    }
    if !exists(
        client,
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &spec.name,
    )? {
        // On RDS the master user is no superuser: it must be a member of the role to give it
        // a database. A superuser (the local provider) is a member of everything already.
        client
            .batch_execute(&format!(
                "DO $rdsprov$ BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                 AND NOT pg_has_role(current_user, {}, 'USAGE') THEN EXECUTE format('GRANT %I TO %I', {}, current_user); \
                 END IF; END $rdsprov$",
                quote_literal(&spec.owner),
                quote_literal(&spec.owner)
            ))
            .map_err(|e| pg::statement_error(&format!("GRANT {} to the master user", spec.owner), &e))?;
        // Alone in its message: CREATE DATABASE refuses to run in a multi-statement one.
        let created = client.batch_execute(&format!(
            "CREATE DATABASE {db} OWNER {owner} ENCODING 'UTF8' TEMPLATE template0"
        ));
        match created {
            Ok(()) => changes.push(format!(
                "created database {} (env {}, owner {})",
                spec.name, spec.env, spec.owner
            )),
            // A killed run's CREATE DATABASE can still be finishing on the server, and commit
            // between the check above and this one (23505 on pg_database, or 42P04): the same
            // database, owned as asked, is kept; anything else is the error it was.
            Err(e)
                if matches!(e.code().map(|c| c.code()), Some("23505" | "42P04"))
                    && exists(
                        client,
                        &format!(
                            "SELECT 1 FROM pg_database WHERE datname = $1 AND pg_get_userbyid(datdba) = {}",
                            quote_literal(&spec.owner)
                        ),
                        &spec.name,
                    )? =>
            {
                changes.push(format!(
                    "kept database {} (env {}, owner {}): an interrupted run's CREATE DATABASE finished it",
                    spec.name, spec.env, spec.owner
                ));
            }
            Err(e) => {
                return Err(pg::statement_error(
                    &format!("CREATE DATABASE {}", spec.name),
                    &e,
                ))
            }
        }
    }
    // Checked apart from creation: a run killed between CREATE and REVOKE converges here.
    if exists(
        client,
        "SELECT 1 WHERE has_database_privilege('public', $1, 'CONNECT')",
        &spec.name,
    )? {
        client
            .batch_execute(&format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {owner}"
            ))
            .map_err(|e| pg::statement_error(&format!("GRANT on {}", spec.name), &e))?;
        changes.push(format!("restricted CONNECT on {} to its owner", spec.name));
    }
    Ok(changes)
}

/// Stamps the database with its env (the guard refuses writes to unstamped ones) as the
/// instance's master, so the `dbtools` schema belongs to the master and app roles only read the
/// stamp and append to the audit; an older stamp of the same env is brought up to date (its
/// schema moved to the master, identity and nonce recorded, a raised level written). `client`
/// is the master user's, connected to the database itself. A database stamped for another env
/// is never re-stamped here: that is `dbguard stamp`'s destructive path, with that env's
/// confirmation. Returns what changed and the stamp as it stands.
pub(crate) fn ensure_stamp(
    client: &mut pg::Client,
    spec: &DatabaseSpec,
    instance: &str,
) -> Result<(Option<String>, Stamp)> {
    let reading = stamp::read(client)?;
    let new = NewStamp {
        env: &spec.env,
        protection: spec.protection,
        app: None,
        tool: "rdsprov",
        adopted_from: None,
    };
    match &reading.stamp {
        Some(old) if old.env == spec.env => {
            let upgraded = stamp::upgrade_schema(client)?;
            let wanted = spec.protection.max(old.protection);
            if old.nonce.is_none() || wanted != old.protection {
                let written = stamp::write(
                    client,
                    &NewStamp {
                        protection: wanted,
                        ..new
                    },
                    Some(old),
                )?;
                return Ok((
                    Some(format!(
                        "brought the stamp of database {} up to date (env {}, {}; the dbtools schema belongs to the master)",
                        spec.name,
                        spec.env,
                        wanted.as_str()
                    )),
                    written,
                ));
            }
            let change = upgraded.then(|| {
                format!(
                    "the dbtools schema of database {} now belongs to the master (app roles read the stamp and append to the audit)",
                    spec.name
                )
            });
            Ok((change, old.clone()))
        }
        Some(old) => Err(Error::Refused(format!(
            "database {} on instance {instance} is stamped {} but is wanted for env {}: fix the config, or — if it really changes hands — re-stamp it with `dbguard stamp {} --confirm {}`",
            spec.name, old.env, spec.env, spec.env, old.env
        ))),
        None => {
            let written = stamp::write(client, &new, None)?;
            Ok((
                Some(format!(
                    "stamped database {} as env {} ({})",
                    spec.name,
                    spec.env,
                    spec.protection.as_str()
                )),
                written,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtools::config::Config;

    const CONFIG: &str = r#"
[env.dev]
host = "127.0.0.1"
database = "app_dev"
user = "app_dev"
[env.test]
host = "db.example.com"
database = "app_test"
user = "app_test"
"#;

    #[test]
    fn a_tenant_named_like_an_env_app_role_is_refused() {
        let config = Config::parse(CONFIG, std::path::Path::new("/p/dbtools.toml")).unwrap();
        let err = checked_tenant("dev", "app_test", "postgres", Some(&config))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "tenant name \"app_test\" is env test's app role: a tenant gets its own role; pick another"
        );
        assert!(checked_tenant("test", "app_dev", "postgres", Some(&config))
            .unwrap_err()
            .to_string()
            .contains("env dev's app role"));
        // What it checked before stays.
        assert!(checked_tenant("dev", "postgres", "postgres", Some(&config))
            .unwrap_err()
            .to_string()
            .contains("taken by PostgreSQL"));
        assert!(checked_tenant("dev", "rds_x", "admin", None).is_err());
        assert!(checked_tenant("dev", "Billing", "admin", None).is_err());
        // Any other name, with or without a config.
        let tenant = checked_tenant("dev", "billing", "postgres", Some(&config)).unwrap();
        assert_eq!(
            (
                tenant.env.as_str(),
                tenant.name.as_str(),
                tenant.owner.as_str()
            ),
            ("dev", "billing", "billing")
        );
        assert!(checked_tenant("dev", "app_test", "postgres", None).is_ok());
        // The env's own role is the AWS flow (`tenant add NAME --env E | dbenv import`), so a
        // rerun of it is allowed, at the env's own level.
        let own = checked_tenant("test", "app_test", "postgres", Some(&config)).unwrap();
        assert_eq!(own.protection, dbtools::contract::Protection::Confirm);
    }
}
