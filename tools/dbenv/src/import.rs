//! `rdsprov apply | dbenv import` (or `rdsprov tenant add … | dbenv import`): writes what
//! provisioning made into dbtools.toml so `dbenv resolve ENV` works right after — per AWS
//! instance an `[instance.ID]` table (provider, region), per database record (an env's, or a
//! tenant's) the keys of `[env.NAME]` that say where it is: instance, host, port, database,
//! user, secret, sslmode = verify-full and sslrootcert. Everything else in the file —
//! comments, order, protection, other envs — is kept as written (toml_edit), and a key that
//! already has the value is not rewritten, so a second import changes nothing. Local
//! instances need nothing: their envs resolve from the instance record already.

use dbtools::contract::{Instance, Resources};
use dbtools::{names, state, Error, Result};
use std::path::Path;
use toml_edit::{DocumentMut, Item, Table};

/// Applies `resources` to the config text; returns the new text and one line per change.
pub(crate) fn apply_to_config(
    text: &str,
    origin: &Path,
    resources: &Resources,
    sslrootcert: Option<&str>,
) -> Result<(String, Vec<String>)> {
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::BadInput(format!(
            "{}: not valid TOML, nothing imported: {}",
            origin.display(),
            e.to_string().trim()
        ))
    })?;
    let mut changes = Vec::new();
    for instance in &resources.instances {
        if instance.provider != dbtools::contract::Provider::Aws {
            continue;
        }
        names::check_instance_id(&instance.id)?;
        import_instance(&mut document, instance, sslrootcert, &mut changes)?;
    }
    Ok((document.to_string(), changes))
}

fn table<'a>(document: &'a mut DocumentMut, group: &str, name: &str) -> Result<&'a mut Table> {
    let groups = document
        .entry(group)
        .or_insert_with(|| {
            let mut implicit = Table::new();
            implicit.set_implicit(true);
            Item::Table(implicit)
        })
        .as_table_mut()
        .ok_or_else(|| Error::BadInput(format!("dbtools.toml: `{group}` is not a table")))?;
    groups
        .entry(name)
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::BadInput(format!("dbtools.toml: `{group}.{name}` is not a table")))
}

/// Sets `key` unless it already holds `wanted`; records the change.
fn set(
    table: &mut Table,
    where_: &str,
    key: &str,
    wanted: toml_edit::Value,
    changes: &mut Vec<String>,
) {
    let current = table
        .get(key)
        .and_then(Item::as_value)
        .map(|v| v.to_string());
    let shown = wanted.to_string();
    if current.as_deref().map(str::trim) == Some(shown.trim()) {
        return;
    }
    changes.push(format!("[{where_}] {key} = {}", shown.trim()));
    table.insert(key, Item::Value(wanted));
}

fn import_instance(
    document: &mut DocumentMut,
    instance: &Instance,
    sslrootcert: Option<&str>,
    changes: &mut Vec<String>,
) -> Result<()> {
    let where_ = format!("instance.{}", instance.id);
    let entry = table(document, "instance", &instance.id)?;
    set(entry, &where_, "provider", "aws".into(), changes);
    if let Some(region) = &instance.region {
        set(entry, &where_, "region", region.as_str().into(), changes);
    }
    if instance.databases.is_empty() {
        if let Some(env) = &instance.env {
            changes.push(format!(
                "note: env {env} has no database and role on {} yet: `rdsprov tenant add NAME --env {env} --spec …` makes them (pipe it into `dbenv import`)",
                instance.id
            ));
        }
        return Ok(());
    }
    for database in &instance.databases {
        names::check_env_name(&database.env)?;
        let where_ = format!("env.{}", database.env);
        let env = table(document, "env", &database.env)?;
        set(
            env,
            &where_,
            "instance",
            instance.id.as_str().into(),
            changes,
        );
        set(
            env,
            &where_,
            "host",
            instance.endpoint.host.as_str().into(),
            changes,
        );
        set(
            env,
            &where_,
            "port",
            i64::from(instance.endpoint.port).into(),
            changes,
        );
        set(
            env,
            &where_,
            "database",
            database.name.as_str().into(),
            changes,
        );
        set(
            env,
            &where_,
            "user",
            database.owner.as_str().into(),
            changes,
        );
        set(
            env,
            &where_,
            "secret",
            database.secret.to_string().into(),
            changes,
        );
        set(env, &where_, "sslmode", "verify-full".into(), changes);
        match sslrootcert {
            Some(path) => set(env, &where_, "sslrootcert", path.into(), changes),
            None if env.get("sslrootcert").is_none() => changes.push(format!(
                "note: env {} has no sslrootcert: verify-full needs the RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); import again with --sslrootcert FILE",
                database.env
            )),
            None => {}
        }
    }
    Ok(())
}

/// Reads, edits and writes the config file (creating it when missing).
pub(crate) fn import_into(
    path: &Path,
    resources: &Resources,
    sslrootcert: Option<&str>,
) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::BadInput(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let (updated, changes) = apply_to_config(&text, path, resources, sslrootcert)?;
    if updated != text {
        state::write_public(path, updated.as_bytes())?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtools::contract::{DatabaseRecord, Endpoint, SecretRef};

    fn resources() -> Resources {
        Resources {
            provider: dbtools::contract::Provider::Aws,
            changes: Vec::new(),
            instances: vec![Instance {
                id: "combine-test".into(),
                provider: dbtools::contract::Provider::Aws,
                engine: "postgres".into(),
                engine_version: "16.4".into(),
                status: "available".into(),
                endpoint: Endpoint {
                    host: "combine-test.abc.eu-west-1.rds.amazonaws.com".into(),
                    port: 5432,
                },
                master_user: "postgres".into(),
                master_secret: SecretRef {
                    source: dbtools::contract::SecretSource::AwsSm,
                    reference: "arn:master".into(),
                },
                ca_cert: None,
                databases: vec![DatabaseRecord {
                    name: "combine_test".into(),
                    owner: "combine_app".into(),
                    env: "test".into(),
                    secret: SecretRef {
                        source: dbtools::contract::SecretSource::AwsSm,
                        reference: "arn:aws:secretsmanager:eu-west-1:1:secret:x".into(),
                    },
                    stamp: None,
                }],
                env: Some("test".into()),
                class: None,
                security_group: None,
                parameter_group: None,
                alarms: Vec::new(),
                alarm_topic: None,
                region: Some("eu-west-1".into()),
            }],
        }
    }

    #[test]
    fn keeps_comments_and_other_keys_and_converges() {
        let before = "# our envs\napp = \"combine\"\n\n[env.test]\nprotection = \"confirm\" # typed confirm\nhost = \"old.example.com\"\n";
        let origin = Path::new("dbtools.toml");
        let (after, changes) =
            apply_to_config(before, origin, &resources(), Some("certs/rds.pem")).unwrap();
        assert!(
            after.starts_with("# our envs\napp = \"combine\""),
            "{after}"
        );
        assert!(
            after.contains("protection = \"confirm\" # typed confirm"),
            "{after}"
        );
        assert!(after.contains("host = \"combine-test.abc.eu-west-1.rds.amazonaws.com\""));
        assert!(after.contains("secret = \"aws-sm:arn:aws:secretsmanager:eu-west-1:1:secret:x\""));
        assert!(
            after.contains("[instance.combine-test]\nprovider = \"aws\"\nregion = \"eu-west-1\"")
        );
        assert!(changes
            .iter()
            .any(|c| c == "[env.test] host = \"combine-test.abc.eu-west-1.rds.amazonaws.com\""));
        let (again, changes) =
            apply_to_config(&after, origin, &resources(), Some("certs/rds.pem")).unwrap();
        assert_eq!(again, after);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn broken_toml_is_refused_whole() {
        let error = apply_to_config("[env.test\n", Path::new("x.toml"), &resources(), None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("x.toml: not valid TOML, nothing imported"),
            "{error}"
        );
    }
}
