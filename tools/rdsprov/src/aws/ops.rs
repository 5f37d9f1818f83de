//! Operations on an existing AWS instance: a manual snapshot (before a risky migration), and
//! destroy — destructive, through the shared guard: `--confirm <instance-id>` on every env,
//! `--break-glass` on locked ones; refused while deletion protection is on unless
//! `--disable-deletion-protection` is given too; a final snapshot unless skipped, which only
//! an open env may do.

use crate::aws::spec::InstanceSpec;
use crate::aws::{code, describe, Aws};
use dbtools::contract::{self, Protection, Snapshot};
use dbtools::guard::{Confirmation, Guard};
use dbtools::{Error, Result};
use std::time::Duration;

const TOOL: &str = "rdsprov";

/// Takes a manual snapshot and waits until it is available.
pub fn snapshot(
    aws: &Aws,
    spec: &InstanceSpec,
    name: Option<&str>,
    poll: Duration,
) -> Result<Snapshot> {
    let id = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{}", spec.id, dbtools::time::compact_now()));
    dbtools::names::check_instance_id(&id)?;
    aws.block_on(
        aws.rds
            .create_db_snapshot()
            .db_instance_identifier(&spec.id)
            .db_snapshot_identifier(&id)
            .send(),
    )
    .map_err(|e| match code(&e) {
        Some("DBInstanceNotFound") => Error::BadInput(format!(
            "env {}: instance {} does not exist: nothing to snapshot",
            spec.env, spec.id
        )),
        _ => describe("taking the snapshot", e),
    })?;
    let status = wait_snapshot(aws, &id, poll)?;
    Ok(Snapshot {
        kind: contract::SNAPSHOT.into(),
        env: spec.env.clone(),
        instance: spec.id.clone(),
        snapshot: id,
        status,
    })
}

fn wait_snapshot(aws: &Aws, id: &str, poll: Duration) -> Result<String> {
    crate::aws::wait_for(aws, &format!("snapshot {id}"), poll, || async {
        let answer = aws
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(id)
            .send()
            .await
            .map_err(|e| describe("reading the snapshot", e))?;
        let status = answer
            .db_snapshots()
            .first()
            .and_then(|s| s.status())
            .unwrap_or("unknown")
            .to_string();
        if status == "failed" {
            return Err(Error::Failed(format!("snapshot {id} failed")));
        }
        Ok(((status == "available").then(|| status.clone()), status))
    })
}

pub struct DestroyOptions {
    pub confirmation: Confirmation,
    pub protection: Protection,
    pub disable_deletion_protection: bool,
    pub skip_final_snapshot: bool,
}

/// Deletes the env's instance after the guard, deletion protection and the final snapshot
/// have had their say. Returns what was done.
pub fn destroy(
    aws: &Aws,
    spec: &InstanceSpec,
    options: &DestroyOptions,
    config: Option<&dbtools::config::Config>,
) -> Result<Vec<String>> {
    // An AWS instance is gone for good: its id is typed on every env, open ones included.
    let guard = Guard::for_instance(
        TOOL,
        "destroy",
        &spec.env,
        options.protection.max(Protection::Confirm),
        &spec.id,
        config,
    )?
    .confirmed_by(&spec.id);
    guard.check_protection(&options.confirmation)?;
    if options.skip_final_snapshot && options.protection != Protection::Open {
        return Err(guard.refuse(
            None,
            format!(
                "destroy of {} without a final snapshot refused: env {} is {}; only open envs may skip it",
                spec.id,
                spec.env,
                options.protection.as_str()
            ),
        ));
    }
    let answer = aws
        .block_on(
            aws.rds
                .describe_db_instances()
                .db_instance_identifier(&spec.id)
                .send(),
        )
        .map_err(|e| match code(&e) {
            Some("DBInstanceNotFound") => Error::BadInput(format!(
                "env {}: instance {} does not exist: nothing to destroy",
                spec.env, spec.id
            )),
            _ => describe("reading the instance", e),
        })?;
    let protected = answer
        .db_instances()
        .first()
        .and_then(|db| db.deletion_protection())
        .unwrap_or(false);
    let mut done = Vec::new();
    if protected {
        if !options.disable_deletion_protection {
            return Err(guard.refuse(
                None,
                format!(
                    "instance {} has deletion protection on: add --disable-deletion-protection to turn it off and delete",
                    spec.id
                ),
            ));
        }
        aws.block_on(
            aws.rds
                .modify_db_instance()
                .db_instance_identifier(&spec.id)
                .deletion_protection(false)
                .apply_immediately(true)
                .send(),
        )
        .map_err(|e| describe("turning deletion protection off", e))?;
        done.push(format!("turned deletion protection off on {}", spec.id));
    }
    guard.record_allowed(None, &options.confirmation)?;
    let final_snapshot = format!("{}-final-{}", spec.id, dbtools::time::compact_now());
    let mut request = aws
        .rds
        .delete_db_instance()
        .db_instance_identifier(&spec.id);
    request = if options.skip_final_snapshot {
        request.skip_final_snapshot(true)
    } else {
        request
            .skip_final_snapshot(false)
            .final_db_snapshot_identifier(&final_snapshot)
    };
    aws.block_on(request.send())
        .map_err(|e| describe("deleting the instance", e))?;
    done.push(if options.skip_final_snapshot {
        format!("deleted instance {} (no final snapshot)", spec.id)
    } else {
        format!(
            "deleted instance {} (final snapshot {final_snapshot})",
            spec.id
        )
    });
    Ok(done)
}

/// Where a restore takes its data from.
pub enum RestoreSource {
    Snapshot(String),
    /// RFC 3339, e.g. `2026-11-23T08:00:00Z`.
    Time(String),
    Latest,
}

/// Restores the env's instance — from a snapshot or to a point in time — into a new instance
/// `target_id` with the spec's class, parameter group, security group, protection and tags;
/// never over the live one. Waits for it and returns what was done.
pub fn restore(
    aws: &Aws,
    spec: &InstanceSpec,
    source: &RestoreSource,
    target_id: &str,
    security_group: Option<String>,
    poll: Duration,
) -> Result<Vec<String>> {
    dbtools::names::check_instance_id(target_id)?;
    if target_id == spec.id {
        return Err(Error::BadInput(format!(
            "--as {target_id} is env {}'s live instance: a restore goes into a new instance id, never over the live one",
            spec.env
        )));
    }
    match aws.block_on(
        aws.rds
            .describe_db_instances()
            .db_instance_identifier(target_id)
            .send(),
    ) {
        Ok(_) => {
            return Err(Error::BadInput(format!(
                "instance {target_id} already exists: pick another --as id"
            )))
        }
        Err(e) if code(&e) == Some("DBInstanceNotFound") => {}
        Err(e) => return Err(describe("reading the target instance", e)),
    }
    let from = match source {
        RestoreSource::Snapshot(id) => format!("snapshot {id}"),
        RestoreSource::Time(time) => format!("{} as of {time}", spec.id),
        RestoreSource::Latest => format!("{} as of its latest restorable time", spec.id),
    };
    let mut tags: Vec<aws_sdk_rds::types::Tag> = spec
        .tags
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect();
    tags.push(
        aws_sdk_rds::types::Tag::builder()
            .key("restored-from")
            .value(&from)
            .build(),
    );
    let groups = security_group.into_iter().collect::<Vec<_>>();
    match source {
        RestoreSource::Snapshot(snapshot) => aws
            .block_on(
                aws.rds
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(target_id)
                    .db_snapshot_identifier(snapshot)
                    .db_instance_class(&spec.class)
                    .db_parameter_group_name(spec.parameter_group_name())
                    .set_vpc_security_group_ids(Some(groups))
                    .deletion_protection(spec.deletion_protection)
                    .publicly_accessible(spec.publicly_accessible)
                    .multi_az(spec.multi_az)
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(tags))
                    .send(),
            )
            .map(drop)
            .map_err(|e| match code(&e) {
                Some("DBSnapshotNotFound") => Error::BadInput(format!(
                    "snapshot {snapshot} does not exist (`aws rds describe-db-snapshots --db-instance-identifier {}` lists them)",
                    spec.id
                )),
                _ => describe("restoring from the snapshot", e),
            })?,
        RestoreSource::Time(_) | RestoreSource::Latest => {
            let mut request = aws
                .rds
                .restore_db_instance_to_point_in_time()
                .source_db_instance_identifier(&spec.id)
                .target_db_instance_identifier(target_id)
                .db_instance_class(&spec.class)
                .db_parameter_group_name(spec.parameter_group_name())
                .set_vpc_security_group_ids(Some(groups))
                .deletion_protection(spec.deletion_protection)
                .publicly_accessible(spec.publicly_accessible)
                .multi_az(spec.multi_az)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags));
            request = match source {
                RestoreSource::Time(time) => request.restore_time(
                    aws_sdk_rds::primitives::DateTime::from_str(
                        time,
                        aws_sdk_rds::primitives::DateTimeFormat::DateTime,
                    )
                    .map_err(|_| {
                        Error::BadInput(format!(
                            "--to-time {time:?}: use RFC 3339 UTC, e.g. 2026-11-23T08:00:00Z"
                        ))
                    })?,
                ),
                _ => request.use_latest_restorable_time(true),
            };
            aws.block_on(request.send())
                .map(drop)
                .map_err(|e| describe("restoring to a point in time", e))?
        }
    }
    let mut done = vec![format!("restoring {from} into new instance {target_id}")];
    let mut target = spec.clone();
    target.id = target_id.to_string();
    crate::aws::apply::wait_available(aws, &target, poll)?;
    done.push(format!(
        "instance {target_id} is available; the live instance {} was not touched",
        spec.id
    ));
    Ok(done)
}
