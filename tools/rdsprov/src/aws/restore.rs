//! Restore an env's target into a NEW one — from a snapshot, to a point in time, or to the
//! latest restorable time — with the spec's class, parameter group, security group,
//! protection and tags; never over the live one. An Aurora cluster's members are created once
//! the restored cluster is available, and a rerun of the same restore finishes one cut short.

use crate::aws::attributes::Name;
use crate::aws::observe;
use crate::aws::progress::Progress;
use crate::aws::spec::InstanceSpec;
use crate::aws::state::Observed;
use crate::aws::target::{self, On, Restore, RestoreSource};
use crate::aws::{apply, stamps, Aws};
use dbtools::{Error, Result};

/// The tag a restored target carries: where it came from, so a rerun of the same restore
/// finishes it instead of refusing the id.
const RESTORED_FROM: &str = "restored-from";

/// Restores the env's instance — from a snapshot or to a point in time — into a new instance
/// `target_id` with the spec's class, parameter group, security group, protection and tags;
/// never over the live one. Waits for it and returns what was done.
pub(crate) fn restore(
    aws: &Aws,
    spec: &InstanceSpec,
    live: &Observed,
    source: &RestoreSource,
    target_id: &str,
    progress: &mut Progress,
) -> Result<()> {
    let security_group = live.security_group.as_ref().map(|g| g.id.clone());
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
    let from = match source {
        RestoreSource::Snapshot(id) => format!("snapshot {id}"),
        RestoreSource::Time(time) => format!("{} as of {time}", spec.id),
        RestoreSource::Latest => format!("{} as of its latest restorable time", spec.id),
    };
    match aws.block_on(target.observe(aws, target_id))? {
        // The same restore, cut short (a failure, Ctrl-C): a rerun finishes it. One that
        // finished is not done again.
        Some((state, members))
            if state.tags.get(RESTORED_FROM) == Some(&from)
                && (state.status != "available"
                    || restored
                        .member_ids()
                        .iter()
                        .any(|id| !members.iter().any(|m| m.id == *id))) =>
        {
            progress.did(format!(
                "resuming the restore of {from} into {} {target_id}",
                target.kind()
            ));
        }
        Some(_) => {
            return Err(Error::BadInput(format!(
                "{} {target_id} already exists: pick another --as id",
                target.kind()
            )))
        }
        None => {
            let spec = &parameters_for_source(aws, spec, live, source, progress)?;
            let mut tags = target::tags(spec);
            tags.push(
                aws_sdk_rds::types::Tag::builder()
                    .key(RESTORED_FROM)
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
        }
    }
    let members = restored.member_ids();
    if !members.is_empty() {
        // "You can create DB instances only after the RestoreDBClusterFromSnapshot operation
        // has completed and the DB cluster is available."
        // https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterFromSnapshot.html
        let have = progress.wait_for(aws, &format!("cluster {target_id}"), || async {
            let found = target.observe(aws, target_id).await?;
            let Some((state, members)) = found else {
                return Err(Error::Failed(format!(
                    "{} {target_id} vanished while restoring: see the RDS console's events",
                    target.kind()
                )));
            };
            let ready = state.status == "available";
            let ids: Vec<String> = members.into_iter().map(|m| m.id).collect();
            Ok((ready.then_some(ids), format!("cluster {}", state.status)))
        })?;
        for member in members.iter().filter(|id| !have.contains(id)) {
            progress.check_interrupt()?;
            aws.block_on(target.create_member(On { aws, spec }, target_id, member))?;
            progress.did(format!("created instance {member} in cluster {target_id}"));
        }
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

/// The spec to restore with: its parameter group is the env's one of the source's family (a
/// snapshot from before a major upgrade needs the old family's; AWS refuses another), made
/// with the spec's parameters when there is none yet — a new instance reads them all as it
/// starts, so each is set `pending-reboot`, which AWS takes for any parameter.
fn parameters_for_source(
    aws: &Aws,
    spec: &InstanceSpec,
    live: &Observed,
    source: &RestoreSource,
    progress: &mut Progress,
) -> Result<InstanceSpec> {
    let target = target::of(spec);
    let version = match source {
        RestoreSource::Snapshot(id) => aws.block_on(target.snapshot_version(aws, id))?,
        RestoreSource::Time(_) | RestoreSource::Latest => live
            .target
            .as_ref()
            .map(|state| state.get(Name::EngineVersion)),
    };
    let mut restoring = spec.clone();
    if let Some(version) = version.filter(|v| !v.is_empty()) {
        restoring.engine_version = version;
    }
    let family = restoring.parameter_group_family();
    let group = aws.block_on(observe::group_of_family(aws, spec, &family, None))?;
    restoring.parameter_group = Some(group.name.clone());
    if !group.exists {
        progress.did(aws.block_on(target.create_parameter_group(On {
            aws,
            spec: &restoring,
        }))?);
        let parameters: Vec<_> = restoring
            .parameters
            .iter()
            .map(|(name, value)| {
                crate::aws::plan::attribute(
                    name,
                    None,
                    value.clone(),
                    dbtools::contract::ChangeWhen::OnReboot,
                )
            })
            .collect();
        apply::set_parameters(aws, &restoring, &parameters, progress)?;
    }
    Ok(restoring)
}
