//! The databases on an RDS instance (or Aurora cluster), reached as its master over
//! `verify-full` TLS with the RDS CA bundle the user downloaded (`--sslrootcert`): what
//! `tenant add` works through, what `apply --sslrootcert` upgrades in place (each database's
//! `dbtools` schema moved to the master, its stamp given an identity and a nonce, recorded as
//! a tag), and what `restore --for ENV` adopts (a restored instance's databases are copies).

use crate::aws::secrets::read_secret_password;
use crate::aws::spec::InstanceSpec;
use crate::aws::{observe, stamps, Aws};
use dbtools::contract::{Conn, Protection, SslMode, Stamp};
use dbtools::stamp::{self, NewStamp};
use dbtools::{owner, pg, Error, Result};
use std::path::Path;

/// How the master reaches any database of one instance.
pub(crate) struct MasterAccess {
    host: String,
    port: u16,
    user: String,
    password: String,
    sslrootcert: String,
}

/// The RDS CA bundle, checked to exist.
fn ca_bundle(sslrootcert: Option<&Path>, what: &str) -> Result<String> {
    let path = sslrootcert.ok_or_else(|| {
        Error::BadInput(format!(
            "{what} connects to the databases with verify-full: pass --sslrootcert with the RDS CA bundle (download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
        ))
    })?;
    if !path.is_file() {
        return Err(Error::BadInput(format!(
            "--sslrootcert {}: no such file (the RDS CA bundle: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
            path.display()
        )));
    }
    Ok(path.display().to_string())
}

impl MasterAccess {
    /// The master of `spec`'s instance. `secret_of` is the spec whose master secret holds the
    /// password: the instance's own, or — for an instance restored from it — its source's.
    pub(crate) fn of(
        aws: &Aws,
        spec: &InstanceSpec,
        secret_of: &InstanceSpec,
        sslrootcert: Option<&Path>,
        what: &str,
    ) -> Result<MasterAccess> {
        let sslrootcert = ca_bundle(sslrootcert, what)?;
        let observed = observe::observe(aws, spec)?;
        let state = observed.target.as_ref().ok_or_else(|| {
            Error::BadInput(format!(
                "env {}: instance {} does not exist: run `rdsprov apply --spec …` first",
                spec.env, spec.id
            ))
        })?;
        let (host, port) = state.endpoint.clone().ok_or_else(|| {
            Error::Failed(format!(
                "instance {} has no endpoint yet ({}): `rdsprov wait` for it",
                spec.id, state.status
            ))
        })?;
        let secret = if std::ptr::eq(spec, secret_of) {
            observed.secret_arn.clone()
        } else {
            observe::observe(aws, secret_of)?.secret_arn
        };
        let master_secret = secret.or(state.managed_secret_arn.clone()).ok_or_else(|| {
            Error::Failed(format!(
                "instance {}: no master secret found in Secrets Manager",
                spec.id
            ))
        })?;
        Ok(MasterAccess {
            host,
            port: u16::try_from(port).unwrap_or(5432),
            user: state.master_user.clone(),
            password: read_secret_password(aws, &master_secret)?,
            sslrootcert,
        })
    }

    /// The master's connection settings for database `dbname`.
    pub(crate) fn conn(&self, dbname: &str) -> Conn {
        Conn {
            host: self.host.clone(),
            port: self.port,
            dbname: dbname.into(),
            user: self.user.clone(),
            password: Some(self.password.clone()),
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some(self.sslrootcert.clone()),
        }
    }

    pub(crate) fn connect(&self, dbname: &str) -> Result<pg::Client> {
        pg::connect(&self.conn(dbname), "rdsprov", pg::DEFAULT_CONNECT_TIMEOUT)
    }

    /// Every database of the instance that carries a stamp, with it.
    pub(crate) fn stamped(&self) -> Result<Vec<(String, Stamp, pg::Client)>> {
        let mut client = self.connect("postgres")?;
        let names: Vec<String> = client
            .query(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'rdsadmin' ORDER BY 1",
                &[],
            )
            .map_err(|e| pg::statement_error("listing the databases", &e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut found = Vec::new();
        for name in names {
            let mut client = self.connect(&name)?;
            if let Some(stamp) = stamp::read(&mut client)?.stamp {
                found.push((name, stamp, client));
            }
        }
        Ok(found)
    }
}

/// `apply --sslrootcert`: every stamped database of the instance brought to the current
/// schema (owned by the master), its stamp given an identity and nonce when it has none, and
/// the stamp recorded as a tag. Returns what changed.
pub(crate) fn upgrade(
    aws: &Aws,
    spec: &InstanceSpec,
    access: &MasterAccess,
) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    let recorded = stamps::recorded(aws, &spec.id)?.unwrap_or_default();
    for (database, old, mut client) in access.stamped()? {
        let moved = stamp::upgrade_schema(&mut client)?;
        let current = if old.nonce.is_none() {
            let new = NewStamp {
                env: &old.env,
                protection: old.protection,
                app: None,
                tool: "rdsprov",
                adopted_from: None,
            };
            stamp::write(&mut client, &new, Some(&old))?
        } else {
            old
        };
        if moved || current.nonce.is_some() && !recorded.iter().any(|(d, _)| *d == database) {
            changes.push(format!(
                "database {database} on {}: the dbtools schema belongs to the master, its {} stamp is recorded on the instance",
                spec.id, current.env
            ));
        }
        if let Some(record) = owner::recorded(&current) {
            if !recorded.iter().any(|(d, r)| *d == database && *r == record) {
                stamps::record(aws, &spec.id, &database, &record)?;
            }
        }
    }
    Ok(changes)
}

/// `restore --for ENV`: the restored instance's stamped databases are copies of the source's;
/// each is adopted for `env` (stamped with it, `adopted_from` naming the source), and the new
/// stamps are recorded as tags on the restored instance.
pub(crate) fn adopt_restored(
    aws: &Aws,
    target_id: &str,
    access: &MasterAccess,
    env: &str,
    level: Protection,
    source: &str,
) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    for (database, old, mut client) in access.stamped()? {
        let written = stamp::write(
            &mut client,
            &NewStamp {
                env,
                protection: level,
                app: None,
                tool: "rdsprov",
                adopted_from: Some(format!("{} (restored from {source})", old.env)),
            },
            Some(&old),
        )?;
        if let Some(record) = owner::recorded(&written) {
            stamps::record(aws, target_id, &database, &record)?;
        }
        changes.push(format!(
            "adopted database {database} of {target_id} for env {env} (it was {}'s, restored from {source})",
            old.env
        ));
    }
    Ok(changes)
}
