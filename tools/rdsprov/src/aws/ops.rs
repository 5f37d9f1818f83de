//! Operations on an existing AWS instance: a manual snapshot (before a risky migration), and
//! destroy — destructive, through the shared guard: `--confirm <instance-id>` on every env,
//! `--break-glass` on locked ones; refused while deletion protection is on unless
//! `--disable-deletion-protection` is given too; a final snapshot unless skipped, which only
//! an open env may do.

use crate::aws::spec::InstanceSpec;
use crate::aws::{code, describe, Aws};
use dbtools::contract::{Protection, Snapshot};
use dbtools::guard::{Confirmation, Guard};
use dbtools::{Error, Result};
use std::time::Duration;

const TOOL: &str = "rdsprov";

/// What an operation acts on: an env's RDS instance or Aurora cluster, by id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub env: &'a str,
    pub id: &'a str,
    pub aurora: bool,
}

impl<'a> Subject<'a> {
    pub(crate) fn of(spec: &'a InstanceSpec) -> Subject<'a> {
        Subject {
            env: &spec.env,
            id: &spec.id,
            aurora: spec.is_aurora(),
        }
    }

    fn kind(&self) -> &'static str {
        if self.aurora {
            "Aurora cluster"
        } else {
            "instance"
        }
    }
}

/// Takes a manual snapshot (a cluster snapshot on Aurora) and waits until it is available.
pub(crate) fn snapshot(
    aws: &Aws,
    subject: Subject,
    name: Option<&str>,
    poll: Duration,
) -> Result<Snapshot> {
    let id = name
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}-{}", subject.id, dbtools::time::compact_now()));
    check_snapshot_id(&id)?;
    if subject.aurora {
        aws.block_on(
            aws.rds
                .create_db_cluster_snapshot()
                .db_cluster_identifier(subject.id)
                .db_cluster_snapshot_identifier(&id)
                .send(),
        )
        .map_err(|e| snapshot_error(subject, e))?;
    } else {
        aws.block_on(
            aws.rds
                .create_db_snapshot()
                .db_instance_identifier(subject.id)
                .db_snapshot_identifier(&id)
                .send(),
        )
        .map_err(|e| snapshot_error(subject, e))?;
    }
    let status = wait_snapshot(aws, subject, &id, poll)?;
    Ok(Snapshot {
        env: subject.env.to_string(),
        instance: subject.id.to_string(),
        snapshot: id,
        status,
    })
}

/// RDS's rule for snapshot ids: 1 to 255 letters, digits and hyphens, starting with a letter,
/// no two hyphens in a row, not ending with one (instance ids have the same rule at 63).
fn check_snapshot_id(id: &str) -> Result<()> {
    let valid = (1..=255).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "snapshot id {id:?}: use 1 to 255 letters, digits and hyphens, starting with a letter, without -- or a trailing -"
        )))
    }
}

fn snapshot_error<E, R>(subject: Subject, error: aws_sdk_rds::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match code(&error) {
        Some("DBInstanceNotFound" | "DBClusterNotFoundFault") => not_found(subject, "snapshot"),
        _ => describe("taking the snapshot", error),
    }
}

/// "env dev: instance X does not exist: nothing to snapshot".
fn not_found(subject: Subject, what: &str) -> Error {
    Error::BadInput(format!(
        "env {}: {} {} does not exist: nothing to {what}",
        subject.env,
        subject.kind(),
        subject.id
    ))
}

fn wait_snapshot(aws: &Aws, subject: Subject, id: &str, poll: Duration) -> Result<String> {
    crate::aws::wait_for(aws, &format!("snapshot {id}"), poll, || async {
        let status = if subject.aurora {
            aws.rds
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(id)
                .send()
                .await
                .map_err(|e| describe("reading the snapshot", e))?
                .db_cluster_snapshots()
                .first()
                .and_then(|s| s.status())
                .map(str::to_string)
        } else {
            aws.rds
                .describe_db_snapshots()
                .db_snapshot_identifier(id)
                .send()
                .await
                .map_err(|e| describe("reading the snapshot", e))?
                .db_snapshots()
                .first()
                .and_then(|s| s.status())
                .map(str::to_string)
        };
        let status = status.unwrap_or_else(|| "unknown".into());
        if status == "failed" {
            return Err(Error::Failed(format!("snapshot {id} failed")));
        }
        Ok(((status == "available").then(|| status.clone()), status))
    })
}

pub(crate) struct DestroyOptions {
    pub confirmation: Confirmation,
    pub protection: Protection,
    pub disable_deletion_protection: bool,
    pub skip_final_snapshot: bool,
    /// The RDS CA bundle: read the stamps in the instance's databases too (as its master),
    /// beside those its tags record.
    pub sslrootcert: Option<std::path::PathBuf>,
}

/// Deletes the env's instance after the guard, deletion protection and the final snapshot
/// have had their say. Returns what was done.
pub(crate) fn destroy(
    aws: &Aws,
    spec: &InstanceSpec,
    options: &DestroyOptions,
    config: Option<&dbtools::config::Config>,
    poll: Duration,
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
    let observed = crate::aws::plan::observe(aws, spec)?;
    let Some(state) = &observed.instance else {
        return Err(not_found(Subject::of(spec), "destroy"));
    };
    // Every env whose data is on the instance is at risk, whatever env the spec calls it: the
    // stamps recorded on it decide (its databases are not read from here), and with no record
    // at all it counts as locked. Each protected env is confirmed beside the instance id.
    let recorded = crate::aws::stamps::recorded(aws, &spec.id)?.unwrap_or_default();
    let mut at_risk: Vec<(String, Protection)> = recorded
        .into_iter()
        .map(|(_, stamp)| {
            let level = dbtools::guard::floor(&stamp.env, stamp.protection, config);
            (stamp.env, level)
        })
        .collect();
    if options.sslrootcert.is_some() {
        // With a route and the CA bundle, the databases speak for themselves too; when they
        // cannot be reached, the recorded stamps decide alone.
        let live = crate::aws::databases::MasterAccess::of(
            aws,
            spec,
            spec,
            options.sslrootcert.as_deref(),
            "destroy --sslrootcert",
        )
        .and_then(|access| access.stamped());
        match live {
            Ok(stamped) => at_risk.extend(stamped.into_iter().map(|(_, stamp, _)| {
                let level = dbtools::guard::floor(&stamp.env, stamp.protection, config);
                (stamp.env, level)
            })),
            Err(e) => dbtools::cli::note(
                TOOL,
                format!(
                    "the databases of {} cannot be read from here ({}): the stamps recorded on the instance decide",
                    spec.id,
                    e.message()
                ),
            ),
        }
    }
    if at_risk.is_empty() {
        at_risk.push((spec.env.clone(), Protection::Locked));
    } else {
        at_risk.push((spec.env.clone(), options.protection));
    }
    if let Some(reason) =
        dbtools::guard::instance_refusal("destroy", &spec.id, &at_risk, &options.confirmation)
    {
        let unrecorded = if at_risk.len() == 1 {
            " (no database stamp is recorded on it — `dbguard stamp` records one as a tag — so it counts as locked)"
        } else {
            ""
        };
        return Err(guard.refuse(
            None,
            format!(
                "{reason}{unrecorded}; the instance id {} is typed in the same list",
                spec.id
            ),
        ));
    }
    let protected = state
        .attributes
        .get("deletion_protection")
        .map(String::as_str)
        == Some("true");
    let what = if spec.is_aurora() {
        "Aurora cluster"
    } else {
        "instance"
    };
    let mut done = Vec::new();
    if protected {
        if !options.disable_deletion_protection {
            return Err(guard.refuse(
                None,
                format!(
                    "{what} {} has deletion protection on: add --disable-deletion-protection to turn it off and delete",
                    spec.id
                ),
            ));
        }
        let turning_off = "turning deletion protection off";
        if spec.is_aurora() {
            aws.block_on(
                aws.rds
                    .modify_db_cluster()
                    .db_cluster_identifier(&spec.id)
                    .deletion_protection(false)
                    .apply_immediately(true)
                    .send(),
            )
            .map_err(|e| describe(turning_off, e))?;
        } else {
            aws.block_on(
                aws.rds
                    .modify_db_instance()
                    .db_instance_identifier(&spec.id)
                    .deletion_protection(false)
                    .apply_immediately(true)
                    .send(),
            )
            .map_err(|e| describe(turning_off, e))?;
        }
        done.push(format!("turned deletion protection off on {}", spec.id));
    }
    guard.record_allowed(None, &options.confirmation)?;
    let final_snapshot = (!options.skip_final_snapshot)
        .then(|| format!("{}-final-{}", spec.id, dbtools::time::compact_now()));
    if spec.is_aurora() {
        // A cluster goes after its instances; the final snapshot is the cluster's.
        let members: Vec<String> = observed.members.iter().map(|m| m.id.clone()).collect();
        for member in &members {
            aws.block_on(
                aws.rds
                    .delete_db_instance()
                    .db_instance_identifier(member)
                    .send(),
            )
            .map_err(|e| describe(&format!("deleting instance {member}"), e))?;
            done.push(format!("deleted instance {member}"));
        }
        crate::aws::aurora::wait_deleted(aws, &members, poll)?;
        aws.block_on(
            aws.rds
                .delete_db_cluster()
                .db_cluster_identifier(&spec.id)
                .skip_final_snapshot(final_snapshot.is_none())
                .set_final_db_snapshot_identifier(final_snapshot.clone())
                .send(),
        )
        .map_err(|e| describe("deleting the Aurora cluster", e))?;
    } else {
        aws.block_on(
            aws.rds
                .delete_db_instance()
                .db_instance_identifier(&spec.id)
                .skip_final_snapshot(final_snapshot.is_none())
                .set_final_db_snapshot_identifier(final_snapshot.clone())
                .send(),
        )
        .map_err(|e| describe("deleting the instance", e))?;
    }
    done.push(match final_snapshot {
        None => format!("deleted {what} {} (no final snapshot)", spec.id),
        Some(snapshot) => format!("deleted {what} {} (final snapshot {snapshot})", spec.id),
    });
    Ok(done)
}

/// Where a restore takes its data from.
pub(crate) enum RestoreSource {
    Snapshot(String),
    /// RFC 3339, e.g. `2026-11-23T08:00:00Z`.
    Time(String),
    Latest,
}

/// Restores the env's instance — from a snapshot or to a point in time — into a new instance
/// `target_id` with the spec's class, parameter group, security group, protection and tags;
/// never over the live one. Waits for it and returns what was done.
pub(crate) fn restore(
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
    let mut target = spec.clone();
    target.id = target_id.to_string();
    if crate::aws::plan::observe(aws, &target)?.instance.is_some() {
        return Err(Error::BadInput(format!(
            "{} {target_id} already exists: pick another --as id",
            if spec.is_aurora() {
                "Aurora cluster"
            } else {
                "instance"
            }
        )));
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
    if spec.is_aurora() {
        restore_cluster(aws, spec, source, target_id, groups, tags)?;
    } else {
        restore_instance(aws, spec, source, target_id, groups, tags)?;
    }
    let mut done = vec![format!(
        "restoring {from} into new {} {target_id}",
        kind(spec)
    )];
    for member in target.member_ids() {
        crate::aws::aurora::create_member(aws, spec, target_id, &member)?;
        done.push(format!("created instance {member} in cluster {target_id}"));
    }
    crate::aws::apply::wait_available(aws, &target, poll)?;
    // The restored databases carry their source's stamps, not the source's record of them:
    // they are copies, adopted by whichever env takes them (`dbguard adopt ENV`).
    if crate::aws::stamps::forget(aws, target_id)? > 0 {
        done.push(format!(
            "removed the stamp records {target_id} copied from its source: its databases are copies until an env adopts them (`dbguard adopt ENV`)"
        ));
    }
    done.push(format!(
        "{} {target_id} is available; the live {} {} was not touched",
        kind(spec),
        kind(spec),
        spec.id
    ));
    Ok(done)
}

fn kind(spec: &InstanceSpec) -> &'static str {
    if spec.is_aurora() {
        "Aurora cluster"
    } else {
        "instance"
    }
}

fn parse_time(time: &str) -> Result<aws_sdk_rds::primitives::DateTime> {
    aws_sdk_rds::primitives::DateTime::from_str(
        time,
        aws_sdk_rds::primitives::DateTimeFormat::DateTime,
    )
    .map_err(|_| {
        Error::BadInput(format!(
            "--to-time {time:?}: use RFC 3339 UTC, e.g. 2026-11-23T08:00:00Z"
        ))
    })
}

fn restore_instance(
    aws: &Aws,
    spec: &InstanceSpec,
    source: &RestoreSource,
    target_id: &str,
    groups: Vec<String>,
    tags: Vec<aws_sdk_rds::types::Tag>,
) -> Result<()> {
    match source {
        RestoreSource::Snapshot(snapshot) => aws
            .block_on(
                aws.rds
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(target_id)
                    .db_snapshot_identifier(snapshot)
                    .db_instance_class(&spec.class)
                    .db_parameter_group_name(spec.parameter_group_name())
                    .set_db_subnet_group_name(spec.subnet_group_name())
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
                .set_db_subnet_group_name(spec.subnet_group_name())
                .set_vpc_security_group_ids(Some(groups))
                .deletion_protection(spec.deletion_protection)
                .publicly_accessible(spec.publicly_accessible)
                .multi_az(spec.multi_az)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags));
            request = match source {
                RestoreSource::Time(time) => request.restore_time(parse_time(time)?),
                _ => request.use_latest_restorable_time(true),
            };
            aws.block_on(request.send())
                .map(drop)
                .map_err(|e| describe("restoring to a point in time", e))?
        }
    }
    Ok(())
}

/// The Aurora side: a new cluster from a cluster snapshot or the live cluster's backups, with
/// the spec's capacity, parameter group and protection; its members are added after.
fn restore_cluster(
    aws: &Aws,
    spec: &InstanceSpec,
    source: &RestoreSource,
    target_id: &str,
    groups: Vec<String>,
    tags: Vec<aws_sdk_rds::types::Tag>,
) -> Result<()> {
    let range = spec
        .serverless
        .expect("an Aurora spec has a capacity range");
    let scaling = aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
        .min_capacity(range.min_acu)
        .max_capacity(range.max_acu)
        .build();
    match source {
        RestoreSource::Snapshot(snapshot) => aws
            .block_on(
                aws.rds
                    .restore_db_cluster_from_snapshot()
                    .db_cluster_identifier(target_id)
                    .snapshot_identifier(snapshot)
                    .engine(crate::aws::spec::AURORA)
                    .engine_version(&spec.engine_version)
                    .serverless_v2_scaling_configuration(scaling)
                    .db_cluster_parameter_group_name(spec.parameter_group_name())
                    .set_db_subnet_group_name(spec.subnet_group_name())
                    .set_vpc_security_group_ids(Some(groups))
                    .deletion_protection(spec.deletion_protection)
                    .enable_iam_database_authentication(spec.iam_auth)
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(tags))
                    .send(),
            )
            .map(drop)
            .map_err(|e| match code(&e) {
                Some("DBClusterSnapshotNotFoundFault" | "DBSnapshotNotFound") => Error::BadInput(format!(
                    "cluster snapshot {snapshot} does not exist (`aws rds describe-db-cluster-snapshots --db-cluster-identifier {}` lists them)",
                    spec.id
                )),
                _ => describe("restoring from the cluster snapshot", e),
            }),
        RestoreSource::Time(_) | RestoreSource::Latest => {
            let mut request = aws
                .rds
                .restore_db_cluster_to_point_in_time()
                .source_db_cluster_identifier(&spec.id)
                .db_cluster_identifier(target_id)
                .serverless_v2_scaling_configuration(scaling)
                .db_cluster_parameter_group_name(spec.parameter_group_name())
                .set_db_subnet_group_name(spec.subnet_group_name())
                .set_vpc_security_group_ids(Some(groups))
                .deletion_protection(spec.deletion_protection)
                .enable_iam_database_authentication(spec.iam_auth)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags));
            request = match source {
                RestoreSource::Time(time) => request.restore_to_time(parse_time(time)?),
                _ => request.use_latest_restorable_time(true),
            };
            aws.block_on(request.send())
                .map(drop)
                .map_err(|e| describe("restoring the cluster to a point in time", e))
        }
    }
}
