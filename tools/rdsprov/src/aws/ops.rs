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
