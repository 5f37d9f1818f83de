//! Restore an env's target into a NEW one — from a snapshot, to a point in time, or to the
//! latest restorable time — with the spec's class, parameter group, security group,
//! protection and tags; never over the live one.

use crate::aws::progress::Progress;
use crate::aws::spec::InstanceSpec;
use crate::aws::target::{self, On, Restore, RestoreSource};
use crate::aws::{apply, stamps, Aws};
use dbtools::{Error, Result};

/// Restores the env's instance — from a snapshot or to a point in time — into a new instance
/// `target_id` with the spec's class, parameter group, security group, protection and tags;
/// never over the live one. Waits for it and returns what was done.
pub(crate) fn restore(
    aws: &Aws,
    spec: &InstanceSpec,
    source: &RestoreSource,
    target_id: &str,
    security_group: Option<String>,
    progress: &mut Progress,
) -> Result<()> {
    let target = target::of(spec);
    dbtools::names::check_instance_id(target_id)?;
    if target_id == spec.id {
        return Err(Error::BadInput(format!(
            "--as {target_id} is env {}'s live instance: a restore goes into a new instance id, never over the live one",
            spec.env
        )));
    }
    let mut restored = spec.clone();
    restored.id = target_id.to_string();
    if aws.block_on(target.observe(aws, target_id))?.is_some() {
        return Err(Error::BadInput(format!(
            "{} {target_id} already exists: pick another --as id",
            target.kind()
        )));
    }
    let from = match source {
        RestoreSource::Snapshot(id) => format!("snapshot {id}"),
        RestoreSource::Time(time) => format!("{} as of {time}", spec.id),
        RestoreSource::Latest => format!("{} as of its latest restorable time", spec.id),
    };
    let mut tags = target::tags(spec);
    tags.push(
        aws_sdk_rds::types::Tag::builder()
            .key("restored-from")
            .value(&from)
            .build(),
    );
    aws.block_on(target.restore(
        On { aws, spec },
        Restore {
            source,
            id: target_id,
            groups: security_group.into_iter().collect(),
            tags,
        },
    ))?;
    progress.did(format!(
        "restoring {from} into new {} {target_id}",
        target.kind()
    ));
    for member in restored.member_ids() {
        aws.block_on(target.create_member(On { aws, spec }, target_id, &member))?;
        progress.did(format!("created instance {member} in cluster {target_id}"));
    }
    apply::wait_available(aws, &restored, progress, apply::Settle::Once)?;
    // The restored databases carry their source's stamps, not the source's record of them:
    // they are copies, adopted by whichever env takes them (`dbguard adopt ENV`).
    if stamps::forget(aws, target_id)? > 0 {
        progress.did(format!(
            "removed the stamp records {target_id} copied from its source: its databases are copies until an env adopts them (`dbguard adopt ENV`)"
        ));
    }
    progress.did(format!(
        "{} {target_id} is available; the live {} {} was not touched",
        target.kind(),
        target.kind(),
        spec.id
    ));
    Ok(())
}
