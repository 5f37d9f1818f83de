//! What an instance's owner knows outside its databases: how its master user connects (the
//! role that owns each database's `dbtools` schema and writes its stamp), and the stamps it
//! recorded for the instance's databases. Physical copies (a restored snapshot, a copied data
//! directory) carry a stamp and its nonce but not this record, which is how they are told from
//! the original.
//!
//! Local instances keep the record in their instance record (`<state>/local/<id>/instance.json`);
//! AWS instances in a tag per database, `dbtools:stamp:<database>` = `<env>:<protection>:<nonce>`,
//! which `rdsprov` writes (it alone links the AWS SDK: `rdsprov stamp-record`).

use crate::config::Config;
use crate::contract::{
    Conn, Instance, Profile, Protection, Provider, RecordedStamp, SecretRef, Stamp,
};
use crate::exit::{Error, Result};
use crate::{resolve, secrets, state};

/// The tag key an AWS instance records a database's stamp under.
pub fn stamp_tag_key(database: &str) -> String {
    format!("dbtools:stamp:{database}")
}

/// The tag value for a recorded stamp.
pub fn stamp_tag_value(recorded: &RecordedStamp) -> String {
    format!(
        "{}:{}:{}",
        recorded.env,
        recorded.protection.as_str(),
        recorded.nonce
    )
}

/// Reads a tag written by [`stamp_tag_value`]; `None` for anything else.
pub fn parse_stamp_tag(value: &str) -> Option<RecordedStamp> {
    let mut parts = value.splitn(3, ':');
    let env = parts.next()?.to_string();
    let protection = match parts.next()? {
        "open" => Protection::Open,
        "confirm" => Protection::Confirm,
        "locked" => Protection::Locked,
        _ => return None,
    };
    let nonce = parts.next()?.to_string();
    (!env.is_empty() && !nonce.is_empty()).then_some(RecordedStamp {
        env,
        protection,
        nonce,
    })
}

/// The recorded form of a stamp just written (`None` for a stamp without a nonce).
pub fn recorded(stamp: &Stamp) -> Option<RecordedStamp> {
    Some(RecordedStamp {
        env: stamp.env.clone(),
        protection: stamp.protection,
        nonce: stamp.nonce.clone()?,
    })
}

/// How the instance's master reaches the profile's database, when the config names the env's
/// instance: its master user and secret (the local store; `rdsprov/<id>/master` in Secrets
/// Manager), at the profile's host and port — which must be the instance's own, so a master
/// password never goes to another server. `None` when the env has no instance in the config.
pub fn master_conn(config: &Config, profile: &Profile) -> Result<Option<(String, Conn)>> {
    if !config.envs.contains_key(&profile.env) {
        return Ok(None);
    }
    let Some((id, instance)) = config.env_instance(&profile.env)? else {
        return Ok(None);
    };
    // Host, port, sslmode and sslrootcert as dbtools.toml resolves the env, never as a piped
    // profile says: a master password goes only where the config points, verified as the
    // config says. A profile that points elsewhere is refused below.
    let configured = resolve::resolve_profile(config, &profile.env)?.conn;
    if (configured.host.as_str(), configured.port)
        != (profile.conn.host.as_str(), profile.conn.port)
    {
        return Err(Error::Refused(format!(
            "the profile for env {} points at {}:{}, but dbtools.toml resolves it to {}:{}: refusing to send the instance's master password elsewhere; make the profile again with `dbenv resolve {}`",
            profile.env, profile.conn.host, profile.conn.port, configured.host, configured.port, profile.env
        )));
    }
    let mut conn = configured;
    conn.dbname = profile.conn.dbname.clone();
    match instance.provider {
        Provider::Local => {
            let record = owned_record(config, id, &profile.env)?;
            if (record.endpoint.host.as_str(), record.endpoint.port)
                != (conn.host.as_str(), conn.port)
            {
                return Err(Error::Refused(format!(
                    "the profile for env {} points at {}:{}, but its instance {id} listens on {}:{}: refusing to send the instance's master password elsewhere; check host and port of env {}",
                    profile.env, conn.host, conn.port, record.endpoint.host, record.endpoint.port, profile.env
                )));
            }
            conn.user = record.master_user.clone();
            conn.password =
                Some(secrets::resolve(&record.master_secret, &config.state, None)?.password);
        }
        Provider::Aws => {
            let env = config.env(&profile.env)?;
            if env.host.as_deref().is_some_and(|host| host != conn.host) {
                return Err(Error::Refused(format!(
                    "the profile for env {} points at {}, not the host dbtools.toml gives it: refusing to send the instance's master password elsewhere",
                    profile.env, conn.host
                )));
            }
            let secret = SecretRef {
                source: crate::contract::SecretSource::AwsSm,
                reference: format!("rdsprov/{id}/master"),
            };
            conn.user = instance.master_user().to_string();
            conn.password = Some(
                secrets::resolve(&secret, &config.state, instance.region.as_deref())?.password,
            );
        }
    }
    Ok(Some((id.to_string(), conn)))
}

/// The local instance record of `id`, refused unless it is that instance's own: its id and
/// its master secret (`<id>/master`) name `id` (a record copied from another instance's would
/// carry that instance's secret, and speak for it).
fn owned_record(config: &Config, id: &str, env: &str) -> Result<Instance> {
    let record = resolve::read_local_instance(config, id, env)?;
    let own_secret = format!("{id}/master");
    if record.id != id
        || record.master_secret.source != crate::contract::SecretSource::Local
        || record.master_secret.reference != own_secret
    {
        return Err(Error::Refused(format!(
            "the instance record of {id} ({}) names instance {} and master secret {}: it is not {id}'s own, so nothing it says is believed",
            config.state.instance_record(id).display(),
            record.id,
            record.master_secret
        )));
    }
    Ok(record)
}

/// The instance dbtools.toml gives env `env` (none for an env it does not define).
fn configured_instance<'a>(
    config: &'a Config,
    env: &str,
) -> Result<Option<(&'a str, &'a crate::config::InstanceConfig)>> {
    if !config.envs.contains_key(env) {
        return Ok(None);
    }
    config.env_instance(env)
}

/// The env's own local instance record, when it listens where `conn` points: the record that
/// speaks for the database `conn` reaches. Another instance's record never does.
fn local_record_for(config: &Config, env: &str, conn: &Conn) -> Result<Option<Instance>> {
    let Some((id, instance)) = configured_instance(config, env)? else {
        return Ok(None);
    };
    if instance.provider != Provider::Local {
        return Ok(None);
    }
    let record = owned_record(config, id, env)?;
    Ok((record.endpoint.host == conn.host && record.endpoint.port == conn.port).then_some(record))
}

/// Whether a database whose identity matches its stamp is that stamp's original or a
/// physical copy, by what the instance's owner recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The instance's record lists this stamp's nonce for this database.
    Original,
    /// The instance's record does not: the stamp came with the data (a restore, a copy).
    Copy,
    /// No record to judge by (no local instance listens there; an AWS instance, whose tags
    /// only `rdsprov` reads): treated as the original.
    Unknown,
}

/// Judges where a stamped database came from by what the owner of the env's own instance
/// recorded — its local instance record, or its AWS tags — and only when that instance is the
/// one at `conn`'s host and port.
pub fn origin(config: Option<&Config>, env: &str, conn: &Conn, stamp: &Stamp) -> Result<Origin> {
    let Some(config) = config else {
        return Ok(Origin::Unknown);
    };
    let listed = |recorded: &mut dyn Iterator<Item = (String, RecordedStamp)>| {
        let mut recorded = recorded.filter(|(database, _)| *database == conn.dbname);
        if recorded.any(|(_, r)| Some(&r.nonce) == stamp.nonce.as_ref()) {
            Origin::Original
        } else {
            Origin::Copy
        }
    };
    if let Some(record) = local_record_for(config, env, conn)? {
        // A database the record lists without a stamp (a record older than stamps, or one
        // edited by hand) proves nothing either way.
        if record
            .databases
            .iter()
            .any(|d| d.name == conn.dbname && d.stamp.is_none())
        {
            return Ok(Origin::Unknown);
        }
        let mut stamps = record
            .databases
            .into_iter()
            .filter_map(|d| Some((d.name, d.stamp?)));
        return Ok(listed(&mut stamps));
    }
    let Some((id, instance)) = configured_instance(config, env)? else {
        return Ok(Origin::Unknown);
    };
    if instance.provider != Provider::Aws {
        return Ok(Origin::Unknown);
    }
    let recorded = aws_recorded(id, instance.region.as_deref())?;
    let at_conn = recorded
        .endpoint
        .as_ref()
        .is_some_and(|e| e.host == conn.host && e.port == conn.port);
    if !at_conn {
        return Ok(Origin::Unknown);
    }
    let mut stamps = recorded.stamps.into_iter().map(|s| (s.database, s.stamp));
    Ok(listed(&mut stamps))
}

/// The stamps AWS instance `id` records in its tags, and its endpoint (`rdsprov stamps`).
pub(crate) fn aws_recorded(
    id: &str,
    region: Option<&str>,
) -> Result<crate::contract::RecordedStamps> {
    let mut args = vec!["stamps", "--json", "--instance", id];
    if let Some(region) = region {
        args.extend(["--region", region]);
    }
    let text = secrets::run_sibling("rdsprov", &args, None)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Failed(format!("rdsprov stamps printed an unreadable answer: {e}")))
}

/// Records a stamp in the local instance record `id` (under the state dir's lock), adding the
/// database to the record when it is not listed yet.
pub fn record_local_stamp(
    config: &Config,
    id: &str,
    database: &str,
    owner: &str,
    env: &str,
    recorded: RecordedStamp,
) -> Result<()> {
    let _lock = config.state.lock_local()?;
    let path = config.state.instance_record(id);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let mut record: Instance = serde_json::from_str(&text).map_err(|e| {
        Error::BadInput(format!(
            "instance record {} is damaged: {e}",
            path.display()
        ))
    })?;
    match record.databases.iter_mut().find(|d| d.name == database) {
        Some(entry) => {
            entry.env = env.to_string();
            entry.stamp = Some(recorded);
        }
        None => record.databases.push(crate::contract::DatabaseRecord {
            name: database.to_string(),
            owner: owner.to_string(),
            env: env.to_string(),
            secret: SecretRef {
                source: crate::contract::SecretSource::Local,
                reference: format!("{id}/{owner}"),
            },
            stamp: Some(recorded),
        }),
    }
    let json = serde_json::to_string_pretty(&record).map_err(|e| Error::Failed(e.to_string()))?;
    state::write_public(&path, (json + "\n").as_bytes())
}

/// Records a stamp as a tag on AWS instance `id`, through `rdsprov stamp-record` (which holds
/// the AWS credentials chain); the nonce is no secret, but it goes on stdin like everything a
/// sibling tool is handed.
pub fn record_aws_stamp(
    id: &str,
    region: Option<&str>,
    database: &str,
    recorded: &RecordedStamp,
) -> Result<()> {
    let mut args = vec!["stamp-record", "--instance", id, "--database", database];
    if let Some(region) = region {
        args.extend(["--region", region]);
    }
    let input = serde_json::to_string(recorded).map_err(|e| Error::Failed(e.to_string()))?;
    secrets::run_sibling("rdsprov", &args, Some(&input)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_tags_round_trip_and_refuse_anything_else() {
        let recorded = RecordedStamp {
            env: "test".into(),
            protection: Protection::Confirm,
            nonce: "00ff".into(),
        };
        assert_eq!(stamp_tag_value(&recorded), "test:confirm:00ff");
        assert_eq!(parse_stamp_tag("test:confirm:00ff"), Some(recorded));
        assert_eq!(parse_stamp_tag("test:sometimes:00ff"), None);
        assert_eq!(parse_stamp_tag("test:open"), None);
        assert_eq!(parse_stamp_tag(":open:1"), None);
    }
}
