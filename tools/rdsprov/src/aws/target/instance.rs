//! An RDS for PostgreSQL instance: everything the env needs is the instance's own — engine,
//! size, storage, backups, protection, a DB parameter group — and its endpoint is the env's.

use crate::aws::attributes::{self, Attribute, Timing};
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Attributes, Member, TargetState};
use crate::aws::target::api::{self, Modify, Pending, Readiness, Restore, RestoreSource, Target};
use crate::aws::{code, describe, Aws};
use dbtools::contract::PlanResource;
use dbtools::{Error, Result};
use std::collections::BTreeMap;

pub(crate) struct RdsInstance;

/// The instance `id` as RDS describes it, or None when there is none.
pub(crate) async fn describe_instance(
    aws: &Aws,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbInstance>> {
    match aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(answer) => Ok(answer.db_instances().first().cloned()),
        Err(e) if code(&e) == Some("DBInstanceNotFound") => Ok(None),
        Err(e) => Err(describe("reading the instance", e)),
    }
}

/// The attributes an instance reports, for the rows `held` names.
pub(crate) fn read(
    db: &aws_sdk_rds::types::DbInstance,
    held: impl Iterator<Item = (&'static Attribute, &'static attributes::OnInstance)>,
) -> Attributes {
    held.filter_map(|(attribute, on)| Some((attribute.name, (on.read)(db)?)))
        .collect()
}

fn state(db: &aws_sdk_rds::types::DbInstance) -> TargetState {
    TargetState {
        status: status_of(db),
        attributes: read(db, attributes::on_instance()),
        endpoint: db
            .endpoint()
            .and_then(|e| Some((e.address()?.to_string(), e.port()?))),
        master_user: db.master_username().unwrap_or_default().to_string(),
        managed_secret_arn: db
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_string),
        security_groups: db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
    }
}

pub(crate) fn status_of(db: &aws_sdk_rds::types::DbInstance) -> String {
    db.db_instance_status().unwrap_or("unknown").to_string()
}

/// A modify of instance `modify.id` with the planned changes of the rows `held` names: the
/// RDS instance's own, or an Aurora member's.
pub(crate) async fn modify_instance(
    aws: &Aws,
    spec: &InstanceSpec,
    modify: Modify<'_>,
    what: &str,
) -> Result<()> {
    let mut request = aws
        .rds
        .modify_db_instance()
        .db_instance_identifier(modify.id)
        .apply_immediately(modify.immediately);
    for change in modify.changes {
        request = match attributes::named(&change.name).and_then(|a| a.instance.as_ref()) {
            Some(on) => (on.modify)(request, &change.to, spec),
            None if change.name == "security_groups" => {
                request.set_vpc_security_group_ids(modify.group_id.map(|id| vec![id.to_string()]))
            }
            None => request,
        };
    }
    if let Some(password) = modify.password {
        request = request.master_user_password(password);
    }
    request
        .send()
        .await
        .map(drop)
        .map_err(|e| describe(what, e))
}

/// Fails on states an instance does not leave by itself; otherwise its status.
pub(crate) fn check_status(id: &str, status: &str) -> Result<()> {
    if matches!(
        status,
        "failed" | "incompatible-parameters" | "incompatible-network" | "storage-full"
    ) {
        return Err(Error::Failed(format!(
            "instance {id} is {status}: see the RDS console's events for it"
        )));
    }
    if matches!(status, "stopped" | "inaccessible-encryption-credentials") {
        return Err(Error::Failed(format!(
            "instance {id} is {status}: it will not become available by itself{}",
            if status == "stopped" {
                " — start it (aws rds start-db-instance) and wait again"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

impl Target for RdsInstance {
    fn kind(&self) -> &'static str {
        "instance"
    }

    fn resource(&self) -> PlanResource {
        PlanResource::DbInstance
    }

    fn attributes(&self) -> Vec<(&'static Attribute, Timing)> {
        attributes::on_instance()
            .map(|(attribute, on)| (attribute, on.timing))
            .collect()
    }

    fn observe<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
    ) -> Pending<'a, Option<(TargetState, Vec<Member>)>> {
        Box::pin(async move {
            Ok(describe_instance(aws, id)
                .await?
                .map(|db| (state(&db), Vec::new())))
        })
    }

    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        group_id: &'a str,
        password: Option<&'a str>,
    ) -> Pending<'a, String> {
        Box::pin(async move {
            let mut request = aws
                .rds
                .create_db_instance()
                .db_instance_identifier(&spec.id)
                .engine(&spec.engine)
                .storage_type("gp3")
                .master_username(&spec.master_user)
                .vpc_security_group_ids(group_id)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(api::tags(spec)));
            for (_, on) in attributes::on_instance() {
                request = (on.create)(request, spec);
            }
            request = match password {
                Some(password) => request.master_user_password(password),
                None => request.manage_master_user_password(true),
            };
            request
                .send()
                .await
                .map_err(|e| describe("creating the instance", e))?;
            Ok(format!(
                "created instance {} ({}, PostgreSQL {})",
                spec.id, spec.class, spec.engine_version
            ))
        })
    }

    fn modify<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        modify: Modify<'a>,
    ) -> Pending<'a, ()> {
        Box::pin(modify_instance(aws, spec, modify, "modifying the instance"))
    }

    fn delete<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
        final_snapshot: Option<&'a str>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .delete_db_instance()
                .db_instance_identifier(id)
                .skip_final_snapshot(final_snapshot.is_none())
                .set_final_db_snapshot_identifier(final_snapshot.map(str::to_string))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("deleting the instance", e))
        })
    }

    fn snapshot<'a>(&'a self, aws: &'a Aws, id: &'a str, snapshot_id: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .create_db_snapshot()
                .db_instance_identifier(id)
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| match code(&e) {
                    Some("DBInstanceNotFound") => not_found(id),
                    _ => describe("taking the snapshot", e),
                })
        })
    }

    fn snapshot_status<'a>(
        &'a self,
        aws: &'a Aws,
        snapshot_id: &'a str,
    ) -> Pending<'a, Option<String>> {
        Box::pin(async move {
            Ok(aws
                .rds
                .describe_db_snapshots()
                .db_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map_err(|e| describe("reading the snapshot", e))?
                .db_snapshots()
                .first()
                .and_then(|s| s.status())
                .map(str::to_string))
        })
    }

    fn restore<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        restore: Restore<'a>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            match restore.source {
                RestoreSource::Snapshot(snapshot) => aws
                    .rds
                    .restore_db_instance_from_db_snapshot()
                    .db_instance_identifier(restore.id)
                    .db_snapshot_identifier(snapshot)
                    .db_instance_class(&spec.class)
                    .db_parameter_group_name(spec.parameter_group_name())
                    .set_db_subnet_group_name(spec.subnet_group_name())
                    .set_vpc_security_group_ids(Some(restore.groups))
                    .deletion_protection(spec.deletion_protection)
                    .publicly_accessible(spec.publicly_accessible)
                    .multi_az(spec.multi_az)
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(restore.tags))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| match code(&e) {
                        Some("DBSnapshotNotFound") => Error::BadInput(format!(
                            "snapshot {snapshot} does not exist (`aws rds describe-db-snapshots --db-instance-identifier {}` lists them)",
                            spec.id
                        )),
                        _ => describe("restoring from the snapshot", e),
                    }),
                RestoreSource::Time(_) | RestoreSource::Latest => {
                    let mut request = aws
                        .rds
                        .restore_db_instance_to_point_in_time()
                        .source_db_instance_identifier(&spec.id)
                        .target_db_instance_identifier(restore.id)
                        .db_instance_class(&spec.class)
                        .db_parameter_group_name(spec.parameter_group_name())
                        .set_db_subnet_group_name(spec.subnet_group_name())
                        .set_vpc_security_group_ids(Some(restore.groups))
                        .deletion_protection(spec.deletion_protection)
                        .publicly_accessible(spec.publicly_accessible)
                        .multi_az(spec.multi_az)
                        .copy_tags_to_snapshot(true)
                        .set_tags(Some(restore.tags));
                    request = match restore.source {
                        RestoreSource::Time(time) => request.restore_time(api::parse_time(time)?),
                        _ => request.use_latest_restorable_time(true),
                    };
                    request
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| describe("restoring to a point in time", e))
                }
            }
        })
    }

    fn readiness<'a>(&'a self, aws: &'a Aws, spec: &'a InstanceSpec) -> Pending<'a, Readiness> {
        Box::pin(async move {
            let answer = aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(&spec.id)
                .send()
                .await
                .map_err(|e| describe("reading the instance status", e))?;
            let Some(db) = answer.db_instances().first() else {
                return Err(Error::Failed(format!(
                    "instance {} vanished while waiting",
                    spec.id
                )));
            };
            let status = status_of(db);
            check_status(&spec.id, &status)?;
            Ok((status != "available").then_some(status))
        })
    }

    fn parameters<'a>(
        &'a self,
        aws: &'a Aws,
        name: String,
    ) -> Pending<'a, Option<BTreeMap<String, String>>> {
        Box::pin(async move {
            match aws
                .rds
                .describe_db_parameters()
                .db_parameter_group_name(name)
                .source("user")
                .send()
                .await
            {
                Ok(answer) => Ok(Some(api::user_parameters(answer.parameters()))),
                Err(e) if code(&e) == Some("DBParameterGroupNotFound") => Ok(None),
                Err(e) => Err(describe("reading the parameter group", e)),
            }
        })
    }

    fn create_parameter_group<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .create_db_parameter_group()
                .db_parameter_group_name(spec.parameter_group_name())
                .db_parameter_group_family(spec.parameter_group_family())
                .description(format!(
                    "rdsprov: parameters of {} (env {})",
                    spec.id, spec.env
                ))
                .set_tags(Some(api::tags(spec)))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("creating the parameter group", e))
        })
    }

    fn set_parameters<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        parameters: Vec<aws_sdk_rds::types::Parameter>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .modify_db_parameter_group()
                .db_parameter_group_name(spec.parameter_group_name())
                .set_parameters(Some(parameters))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("setting parameters", e))
        })
    }
}

fn not_found(id: &str) -> Error {
    Error::BadInput(format!("instance {id} does not exist: nothing to snapshot"))
}
