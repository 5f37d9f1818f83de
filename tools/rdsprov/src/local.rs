//! The local provider: each instance is a PostgreSQL cluster under `<state>/local/<id>/`, with
//! its own TLS certificate from a CA shared by the state dir (`<state>/local/ca/ca.crt`, so
//! `verify-full` works against 127.0.0.1), scram-sha-256 only, no plain TCP, a generated master
//! password in the local secret store, and per env a database owned by a least-privilege role
//! (LOGIN only; CONNECT revoked from PUBLIC so other roles cannot even connect).
//!
//! Creation happens in `<state>/local/.<id>.partial-<pid>` and is renamed into place only when the
//! cluster is complete, so a failure leaves nothing half-created. Secrets never reach argv or the
//! server's files in plain text: initdb and CREATE ROLE get SCRAM verifiers, computed here.

use crate::tenancy::{self, exists, DatabaseSpec};
use dbtools::config::Config;
use dbtools::contract::{
    Conn, DatabaseRecord, Endpoint, Instance, Protection, SecretRef, SslMode, Stamp,
};
use dbtools::names::quote_ident;
use dbtools::server::{self, Cluster, PgBinaries, ServerSettings};
use dbtools::{guard, owner, pg, secrets, state, Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One local instance as the spec wants it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceSpec {
    pub id: String,
    pub master_user: String,
    pub databases: Vec<DatabaseSpec>,
}

/// The local instances a command works on: those of the named envs, else all of them.
pub(crate) fn instance_specs(config: &Config, envs: &[String]) -> Result<Vec<InstanceSpec>> {
    let mut ids: Vec<String> = Vec::new();
    if envs.is_empty() {
        ids.extend(
            config
                .instances
                .iter()
                .filter(|(_, i)| i.provider == dbtools::contract::Provider::Local)
                .map(|(id, _)| id.clone()),
        );
    } else {
        for env in envs {
            let (id, instance) = config.env_instance(env)?.ok_or_else(|| {
                Error::BadInput(format!(
                    "env {env} names no instance in {}",
                    config.path.display()
                ))
            })?;
            if instance.provider != dbtools::contract::Provider::Local {
                return Err(Error::BadInput(format!(
                    "env {env}: instance {id} uses provider {}, which this rdsprov does not provision yet (only local)",
                    instance.provider
                )));
            }
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let databases = config
                .envs
                .iter()
                .filter(|(_, env)| env.instance.as_deref() == Some(id.as_str()))
                .map(|(name, env)| DatabaseSpec {
                    env: name.clone(),
                    name: env.database.clone(),
                    owner: env.user.clone(),
                    protection: config.protection(name),
                })
                .collect();
            let master_user = config.instances[&id].master_user().to_string();
            InstanceSpec {
                id,
                master_user,
                databases,
            }
        })
        .collect())
}

/// One database an instance action puts at risk: its env and level as its stamp (or, when the
/// stamp cannot be read, the instance record) says; `None` level: only the env name is known.
#[derive(Debug, Clone)]
pub(crate) struct AtStake {
    pub database: String,
    pub env: String,
    pub protection: Option<Protection>,
}

/// What is at stake on an instance, and whether it was read from the databases themselves.
#[derive(Debug, Clone)]
pub(crate) struct Stakes {
    pub read_live: bool,
    pub stamps: Vec<AtStake>,
    /// Databases the live read could not connect to.
    pub unreadable: Vec<String>,
}

pub(crate) struct LocalProvider<'a> {
    pub state: &'a state::StateDir,
}

fn master_secret_name(id: &str) -> String {
    format!("{id}/master")
}

impl LocalProvider<'_> {
    fn ca_dir(&self) -> PathBuf {
        self.state.local_dir().join("ca")
    }

    fn cluster(&self, bins: PgBinaries, dir: &Path) -> Cluster {
        Cluster::new(bins, dir.join("data"), dir.join("server.log"))
    }

    /// Serializes provider runs on this state dir (two `make up`s at once must not race).
    pub(crate) fn lock(&self) -> Result<std::fs::File> {
        self.state.lock_local()
    }

    /// Whether anything of instance `id` is on disk (a record, or a directory without one).
    pub(crate) fn exists(&self, id: &str) -> bool {
        self.state.instance_dir(id).exists()
    }

    pub(crate) fn read_record(&self, id: &str) -> Result<Option<Instance>> {
        let path = self.state.instance_record(id);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Error::Failed(format!(
                    "instance record {} is damaged: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::BadInput(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn write_record(&self, record: &Instance) -> Result<()> {
        let json =
            serde_json::to_string_pretty(record).map_err(|e| Error::Failed(e.to_string()))?;
        state::write_public(
            &self.state.instance_record(&record.id),
            (json + "\n").as_bytes(),
        )
    }

    /// Brings one instance to the spec; returns what changed (empty: nothing to do).
    pub(crate) fn apply(&self, spec: &InstanceSpec) -> Result<(Instance, Vec<String>)> {
        let mut changes = Vec::new();
        let bins = PgBinaries::locate()?;
        let mut record = match self.read_record(&spec.id)? {
            Some(record) => record,
            None => {
                dbtools::cli::note(
                    "rdsprov",
                    format!(
                        "creating instance {} (initdb, a TLS certificate, the first start: a few seconds)",
                        spec.id
                    ),
                );
                let record = self.create(spec, &bins)?;
                changes.push(format!(
                    "created instance {} (PostgreSQL {} on {}:{})",
                    record.id, record.engine_version, record.endpoint.host, record.endpoint.port
                ));
                record
            }
        };
        let cluster = self.cluster(bins, &self.state.instance_dir(&spec.id));
        if !cluster.is_running() {
            // A run killed during `pg_ctl start` leaves a server coming up on its own: if our
            // start fails because of it, that server is the one we wanted.
            if let Err(error) = cluster.start() {
                if !cluster.is_running() {
                    return Err(error);
                }
            }
            changes.push(format!("started instance {}", spec.id));
        }
        let mut client = self.connect_master(&record, "postgres")?;
        let mut stamps = Vec::new();
        for database in &spec.databases {
            changes.extend(self.ensure_database(&mut client, &record, database)?);
            let (change, stamp) = self.ensure_stamp(&record, database)?;
            changes.extend(change);
            stamps.push(owner::recorded(&stamp));
        }
        let databases: Vec<DatabaseRecord> = spec
            .databases
            .iter()
            .zip(stamps)
            .map(|(d, stamp)| DatabaseRecord {
                name: d.name.clone(),
                owner: d.owner.clone(),
                env: d.env.clone(),
                secret: SecretRef {
                    source: dbtools::contract::SecretSource::Local,
                    reference: format!("{}/{}", spec.id, d.owner),
                },
                stamp,
            })
            .collect();
        // Tenants added with `tenant add` stay in the record beside the envs' databases.
        let mut databases = databases;
        databases.extend(
            record
                .databases
                .iter()
                .filter(|kept| !databases.iter().any(|d| d.name == kept.name))
                .cloned()
                .collect::<Vec<_>>(),
        );
        if record.databases != databases {
            record.databases = databases;
            self.write_record(&record)?;
        }
        record.status = "running".into();
        Ok((record, changes))
    }

    fn create(&self, spec: &InstanceSpec, bins: &PgBinaries) -> Result<Instance> {
        let version = bins.version()?;
        self.state.ensure_public_dir(&self.state.local_dir())?;
        let (ca_cert, ca_key) = server::tls::ensure_ca(&self.ca_dir())?;
        // A run killed mid-create may have left a staging dir (and an orphaned initdb still
        // writing into it): clear what we can and build in a fresh one of our own.
        let prefix = format!(".{}.partial-", spec.id);
        for entry in std::fs::read_dir(self.state.local_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let staging = self
            .state
            .local_dir()
            .join(format!("{prefix}{}", std::process::id()));
        let result = self.build_cluster(spec, bins, &staging, &ca_cert, &ca_key);
        let port = match result {
            Ok(port) => port,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                let _ = secrets::remove_local(self.state, &master_secret_name(&spec.id));
                return Err(e.context(format!("creating local instance {}", spec.id)));
            }
        };
        let target = self.state.instance_dir(&spec.id);
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&staging, &target).map_err(|e| {
            Error::Failed(format!("cannot move {} into place: {e}", staging.display()))
        })?;
        let record = Instance {
            id: spec.id.clone(),
            provider: dbtools::contract::Provider::Local,
            engine: "postgres".into(),
            engine_version: version,
            status: "stopped".into(),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port,
            },
            master_user: spec.master_user.clone(),
            master_secret: SecretRef {
                source: dbtools::contract::SecretSource::Local,
                reference: master_secret_name(&spec.id),
            },
            ca_cert: Some(ca_cert.display().to_string()),
            databases: Vec::new(),
            env: None,
            class: None,
            security_group: None,
            parameter_group: None,
            alarms: Vec::new(),
            alarm_topic: None,
            region: None,
        };
        self.write_record(&record)?;
        Ok(record)
    }

    /// initdb + TLS + config in `staging`; returns the port it will listen on.
    fn build_cluster(
        &self,
        spec: &InstanceSpec,
        bins: &PgBinaries,
        staging: &Path,
        ca_cert: &Path,
        ca_key: &Path,
    ) -> Result<u16> {
        let _ = std::fs::remove_dir_all(staging);
        let data = staging.join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", data.display())))?;
        state::set_mode(staging, 0o755)?;
        state::set_mode(&data, 0o700)?;
        server::give_to_server_user(staging)?;
        if server::running_as_root() {
            let reachable = server::server_command(Path::new("test"))
                .arg("-w")
                .arg(staging)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !reachable {
                return Err(Error::BadInput(format!(
                    "the {} user cannot reach {} (a parent directory is not searchable by it): point DBTOOLS_STATE_DIR at a path it can reach, e.g. /var/tmp/dbtools",
                    server::SERVER_USER,
                    staging.display()
                )));
            }
        }
        let password = secrets::generate_password()?;
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let password_file = staging.join(".pwfile");
        state::write_private(&password_file, verifier.as_bytes())?;
        server::give_to_server_user(&password_file)?;
        let cluster = self.cluster(bins.clone(), staging);
        let initialized = cluster.init(&spec.master_user, &password_file);
        let _ = std::fs::remove_file(&password_file);
        initialized?;
        server::tls::issue_server_cert(ca_cert, ca_key, &data)?;
        let port = server::free_port()?;
        cluster.configure(ServerSettings {
            listen_addresses: "127.0.0.1",
            port,
            tls: true,
            tls_only: true,
        })?;
        secrets::store_local(
            self.state,
            &master_secret_name(&spec.id),
            &spec.master_user,
            &password,
        )?;
        Ok(port)
    }

    fn connect_master(&self, record: &Instance, dbname: &str) -> Result<pg::Client> {
        let secret = secrets::resolve(&record.master_secret, self.state, None)?;
        let conn = Conn {
            host: record.endpoint.host.clone(),
            port: record.endpoint.port,
            dbname: dbname.into(),
            user: record.master_user.clone(),
            password: Some(secret.password),
            sslmode: SslMode::VerifyFull,
            sslrootcert: record.ca_cert.clone(),
        };
        // Retried: a server started by a killed earlier run may still be starting up.
        pg::connect_with_retry(&conn, "rdsprov", Duration::from_secs(30), |_, _| {})
            .map(|(client, _)| client)
    }

    /// `tenant add NAME`: a database and an owning role for one more application on the env's
    /// instance, stamped with the env and remembered in the instance record.
    pub(crate) fn add_tenant(
        &self,
        spec: &InstanceSpec,
        tenant: &DatabaseSpec,
    ) -> Result<(Instance, Vec<String>)> {
        let mut record = self.require_record(&spec.id)?;
        if let Some(env_db) = spec.databases.iter().find(|d| d.name == tenant.name) {
            return Err(Error::BadInput(format!(
                "{} is env {}'s database on instance {}: a tenant needs a name of its own",
                tenant.name, env_db.env, spec.id
            )));
        }
        let mut client = self.connect_master(&record, "postgres")?;
        let mut changes = self.ensure_database(&mut client, &record, tenant)?;
        let (change, stamp) = self.ensure_stamp(&record, tenant)?;
        changes.extend(change);
        let entry = DatabaseRecord {
            name: tenant.name.clone(),
            owner: tenant.owner.clone(),
            env: tenant.env.clone(),
            secret: SecretRef {
                source: dbtools::contract::SecretSource::Local,
                reference: format!("{}/{}", spec.id, tenant.owner),
            },
            stamp: owner::recorded(&stamp),
        };
        match record.databases.iter_mut().find(|d| d.name == tenant.name) {
            Some(known) if *known == entry => {}
            Some(known) => {
                *known = entry;
                self.write_record(&record)?;
            }
            None => {
                record.databases.push(entry);
                self.write_record(&record)?;
            }
        }
        record.status = "running".into();
        Ok((record, changes))
    }

    /// The role and database of one env (or tenant), the password in the local store.
    fn ensure_database(
        &self,
        client: &mut pg::Client,
        record: &Instance,
        spec: &DatabaseSpec,
    ) -> Result<Vec<String>> {
        let secret_name = format!("{}/{}", record.id, spec.owner);
        let secret_ref = SecretRef {
            source: dbtools::contract::SecretSource::Local,
            reference: secret_name.clone(),
        };
        let secret_exists = secrets::resolve(&secret_ref, self.state, None).is_ok();
        tenancy::ensure_role_and_database(client, spec, secret_exists, &mut |password| {
            secrets::store_local(self.state, &secret_name, &spec.owner, password).map(drop)
        })
    }

    /// What an instance holds that a destroy or reset puts at risk: the stamp of every
    /// database on it, read as its master while it runs; else (stopped, unreachable) what its
    /// record says. `None` when neither can tell (no record at all).
    pub(crate) fn stakes(&self, id: &str) -> Result<Option<Stakes>> {
        let Some(record) = self.read_record(id)? else {
            return Ok(None);
        };
        let running = self
            .cluster(PgBinaries::locate()?, &self.state.instance_dir(id))
            .is_running();
        let recorded: Vec<AtStake> = record
            .databases
            .iter()
            .map(|d| AtStake {
                database: d.name.clone(),
                env: d.stamp.as_ref().map_or(d.env.clone(), |s| s.env.clone()),
                protection: d.stamp.as_ref().map(|s| s.protection),
            })
            .collect();
        if running {
            if let Ok(mut stakes) = self.read_stakes(&record) {
                // What the record knows and the live read did not see (a database that takes
                // no connections, say) is at stake too.
                // A database the live read could not open says nothing for itself (its owner
                // can switch its connections off): it counts as locked, under the env the
                // record gives it, else under its own name.
                let unseen: Vec<AtStake> = recorded
                    .into_iter()
                    .filter(|r| !stakes.stamps.iter().any(|s| s.database == r.database))
                    .map(|mut r| {
                        if stakes.unreadable.contains(&r.database) {
                            r.protection = Some(Protection::Locked);
                        }
                        r
                    })
                    .collect();
                let unknown: Vec<AtStake> = stakes
                    .unreadable
                    .iter()
                    .filter(|name| !unseen.iter().any(|r| &r.database == *name))
                    .map(|name| AtStake {
                        database: name.clone(),
                        env: name.clone(),
                        protection: Some(Protection::Locked),
                    })
                    .collect();
                stakes.stamps.extend(unseen);
                stakes.stamps.extend(unknown);
                return Ok(Some(stakes));
            }
        }
        Ok((!recorded.is_empty()).then_some(Stakes {
            read_live: false,
            stamps: recorded,
            unreadable: Vec::new(),
        }))
    }

    fn read_stakes(&self, record: &Instance) -> Result<Stakes> {
        let mut client = self.connect_master(record, "postgres")?;
        let names: Vec<String> = client
            .query(
                "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
                &[],
            )
            .map_err(|e| pg::statement_error("listing the databases", &e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut stamps = Vec::new();
        let mut unreadable = Vec::new();
        for name in names {
            // A database that takes no connections (ALLOW_CONNECTIONS false) cannot be read:
            // it counts as locked under its own name.
            let Ok(mut client) = self.connect_master(record, &name) else {
                unreadable.push(name);
                continue;
            };
            if let Some(stamp) = guard::read_stamp(&mut client)? {
                stamps.push(AtStake {
                    database: name,
                    env: stamp.env,
                    protection: Some(stamp.protection),
                });
            }
        }
        Ok(Stakes {
            read_live: true,
            stamps,
            unreadable,
        })
    }

    /// The stamp of an env's database as the instance's master user reads it (`None` when the
    /// database or the stamp does not exist).
    pub(crate) fn read_stamp(&self, spec: &InstanceSpec, env: &str) -> Result<Option<Stamp>> {
        let record = self.require_record(&spec.id)?;
        let database = database_of(spec, env)?;
        let mut client = self.connect_master(&record, "postgres")?;
        if !exists(
            &mut client,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &database.name,
        )? {
            return Ok(None);
        }
        let mut client = self.connect_master(&record, &database.name)?;
        guard::read_stamp(&mut client)
    }

    /// Drops an env's database and creates it again, empty and stamped (`make reset`). The
    /// caller has been through the guard.
    pub(crate) fn reset_database(&self, spec: &InstanceSpec, env: &str) -> Result<Vec<String>> {
        let record = self.require_record(&spec.id)?;
        let database = database_of(spec, env)?;
        let mut client = self.connect_master(&record, "postgres")?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&database.name)
            ))
            .map_err(|e| pg::statement_error(&format!("DROP DATABASE {}", database.name), &e))?;
        let mut changes = vec![format!("dropped database {} (env {env})", database.name)];
        changes.extend(self.ensure_database(&mut client, &record, database)?);
        let (change, stamp) = self.ensure_stamp(&record, database)?;
        changes.extend(change);
        // The new database's stamp has a new nonce: the record follows, or it would call the
        // database a copy.
        let mut record = record;
        if let Some(entry) = record
            .databases
            .iter_mut()
            .find(|d| d.name == database.name)
        {
            entry.stamp = owner::recorded(&stamp);
            self.write_record(&record)?;
        }
        Ok(changes)
    }

    fn require_record(&self, id: &str) -> Result<Instance> {
        self.read_record(id)?.ok_or_else(|| {
            Error::Unreachable(format!(
                "instance {id} is not provisioned: run `rdsprov apply` (or `make up`)"
            ))
        })
    }

    fn ensure_stamp(
        &self,
        record: &Instance,
        spec: &DatabaseSpec,
    ) -> Result<(Option<String>, Stamp)> {
        let mut client = self.connect_master(record, &spec.name)?;
        tenancy::ensure_stamp(&mut client, spec, &record.id)
    }

    /// The record with its live status.
    pub(crate) fn status(&self, id: &str) -> Result<Option<Instance>> {
        let Some(mut record) = self.read_record(id)? else {
            return Ok(None);
        };
        let bins = PgBinaries::locate()?;
        record.status = if self
            .cluster(bins, &self.state.instance_dir(id))
            .is_running()
        {
            "running"
        } else {
            "stopped"
        }
        .into();
        Ok(Some(record))
    }

    pub(crate) fn start(&self, id: &str) -> Result<Option<String>> {
        let cluster = self.cluster(PgBinaries::locate()?, &self.state.instance_dir(id));
        if self.read_record(id)?.is_none() || cluster.is_running() {
            return Ok(None);
        }
        cluster.start()?;
        Ok(Some(format!("started instance {id}")))
    }

    pub(crate) fn stop(&self, id: &str) -> Result<Option<String>> {
        let cluster = self.cluster(PgBinaries::locate()?, &self.state.instance_dir(id));
        if !cluster.is_running() {
            return Ok(None);
        }
        cluster.stop("fast")?;
        Ok(Some(format!("stopped instance {id}")))
    }

    /// Stops the server and deletes its directory, every secret of the instance and the
    /// pgpass files `dbenv export` wrote for its envs.
    pub(crate) fn destroy(&self, spec: &InstanceSpec) -> Result<Option<String>> {
        let id = spec.id.as_str();
        let dir = self.state.instance_dir(id);
        if !dir.exists() {
            return Ok(None);
        }
        self.cluster(PgBinaries::locate()?, &dir).stop("fast")?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::Failed(format!("cannot remove {}: {e}", dir.display())))?;
        let secrets_dir = self.state.secrets_dir().join(id);
        if secrets_dir.exists() {
            std::fs::remove_dir_all(&secrets_dir).map_err(|e| {
                Error::Failed(format!("cannot remove {}: {e}", secrets_dir.display()))
            })?;
        }
        for database in &spec.databases {
            let pgpass = self.state.pgpass_file(&database.env);
            match std::fs::remove_file(&pgpass) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Failed(format!(
                        "cannot remove {}: {e}",
                        pgpass.display()
                    )))
                }
                _ => {}
            }
        }
        Ok(Some(format!(
            "destroyed instance {id} (data and secrets deleted)"
        )))
    }
}

fn database_of<'a>(spec: &'a InstanceSpec, env: &str) -> Result<&'a DatabaseSpec> {
    spec.databases.iter().find(|d| d.env == env).ok_or_else(|| {
        Error::BadInput(format!("env {env} has no database on instance {}", spec.id))
    })
}
