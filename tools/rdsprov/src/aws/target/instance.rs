//! An RDS for PostgreSQL instance: everything the env needs is the instance's own — engine,
//! size, storage, backups, protection, a DB parameter group — and its endpoint is the env's.

use crate::aws::attributes::{self, Attribute, Name, Timing};
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Attributes, TargetState};
use crate::aws::target::api::{
    self, with_master_and_tags, Answered, Found, Modify, New, On, Parameter, Parameters, Readiness,
    Restore, RestoreSource, Status, Target,
};
use crate::aws::{code, describe, Aws};
use dbtools::contract::PlanResource;
use dbtools::{Error, Result};

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
        security_groups: api::group_ids(db.vpc_security_groups()),
        pending: pending(db),
        tags: db
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    }
}

/// The settings a modify left for the maintenance window, as PendingModifiedValues reports
/// them ("changes that will be applied during the next maintenance window"), by attribute.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_PendingModifiedValues.html>
pub(crate) fn pending(db: &aws_sdk_rds::types::DbInstance) -> Attributes {
    let Some(values) = db.pending_modified_values() else {
        return Attributes::new();
    };
    [
        (Name::Class, values.db_instance_class().map(str::to_string)),
        (
            Name::EngineVersion,
            values.engine_version().map(str::to_string),
        ),
        (
            Name::StorageGb,
            values.allocated_storage().map(|v| v.to_string()),
        ),
        (Name::MultiAz, values.multi_az().map(|v| v.to_string())),
        (
            Name::BackupRetentionDays,
            values.backup_retention_period().map(|v| v.to_string()),
        ),
        (
            Name::CaCertificate,
            values.ca_certificate_identifier().map(str::to_string),
        ),
        (
            Name::SubnetGroup,
            values.db_subnet_group_name().map(str::to_string),
        ),
        (
            Name::IamAuth,
            values
                .iam_database_authentication_enabled()
                .map(|v| v.to_string()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect()
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
        .apply_immediately(modify.immediately)
        .set_allow_major_version_upgrade(attributes::crosses_major(modify.changes).then_some(true));
    for change in modify.changes {
        request = match attributes::named(&change.name).and_then(|a| a.instance.as_ref()) {
            Some(on) => (on.modify)(request, &change.to, spec),
            None if change.name == "security_groups" => {
                request.set_vpc_security_group_ids(modify.group_id.map(|id| vec![id.to_string()]))
            }
            None => request,
        };
    }
    request = request.set_master_user_password(modify.password.map(str::to_string));
    request.send().await.done(what)
}

/// Whether an instance is ready: `available`, or `storage-optimization`, which follows every
/// storage change for hours while the instance serves as usual ("After you modify the storage
/// size for a DB instance, the status of the DB instance is storage-optimization").
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PIOPS.ModifyingExisting.ScalingUp.html>
pub(crate) fn ready(status: &str) -> bool {
    matches!(status, "available" | "storage-optimization")
}

/// Fails on the states an instance does not leave by itself, saying what to do; the states and
/// their meaning are RDS's ("Viewing Amazon RDS DB instance status").
/// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html>
pub(crate) fn check_status(id: &str, status: &str) -> Result<()> {
    let fix = match status {
        "failed" => "RDS could not recover it: see the RDS console's events for it",
        "incompatible-parameters" => {
            "a parameter of its parameter group does not fit its class or engine version: fix `parameters` in the spec, apply, and reboot it"
        }
        "incompatible-network" => {
            "its subnets cannot host it (no free address, or the subnet group lost a zone): fix subnet_ids, or free addresses"
        }
        "incompatible-option-group" => "its option group cannot be applied: see the RDS console's events",
        "incompatible-restore" | "restore-error" => {
            "the restore failed: delete this new instance and restore again (another snapshot or point in time)"
        }
        "insufficient-capacity" => {
            "RDS has no capacity for its class in its zone right now: retry later, or pick another class (RDS's advice for InsufficientDBInstanceCapacity)"
        }
        "storage-full" => "it ran out of storage: raise storage_gb (or max_storage_gb) and apply",
        "stopped" => {
            "it will not become available by itself — start it (aws rds start-db-instance) and wait again"
        }
        "inaccessible-encryption-credentials" | "inaccessible-encryption-credentials-recoverable" => {
            "it cannot reach its KMS key: restore the key's access (aws kms), then start it"
        }
        _ => return Ok(()),
    };
    Err(Error::Failed(format!("instance {id} is {status}: {fix}")))
}

/// The spec's settings on an instance restored either way, in the live env's security group,
/// with the spec's tags copied to its snapshots.
macro_rules! as_specified {
    ($request:expr, $spec:expr, $restore:expr) => {
        $request
            .copy_tags_to_snapshot(true)
            .set_tags(Some($restore.tags))
            .db_instance_class(&$spec.class)
            .db_parameter_group_name($spec.parameter_group_name())
            .set_db_subnet_group_name($spec.subnet_group_name())
            .set_vpc_security_group_ids(Some($restore.groups))
            .deletion_protection($spec.deletion_protection)
            .publicly_accessible($spec.publicly_accessible)
            .multi_az($spec.multi_az)
    };
}

#[async_trait::async_trait]
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

    async fn observe(&self, aws: &Aws, id: &str) -> Result<Found> {
        Ok(describe_instance(aws, id)
            .await?
            .map(|db| (state(&db), Vec::new())))
    }

    async fn create(&self, On { aws, spec }: On<'_>, new: New<'_>) -> Result<String> {
        let mut request = with_master_and_tags!(
            aws.rds
                .create_db_instance()
                .db_instance_identifier(&spec.id)
                .engine(&spec.engine)
                .storage_type("gp3"),
            spec,
            new
        );
        for (_, on) in attributes::on_instance() {
            request = (on.create)(request, spec);
        }
        request
            .send()
            .await
            .map_err(|e| describe("creating the instance", e))?;
        Ok(format!(
            "created instance {} ({}, PostgreSQL {})",
            spec.id, spec.class, spec.engine_version
        ))
    }

    async fn modify(&self, On { aws, spec }: On<'_>, modify: Modify<'_>) -> Result<()> {
        modify_instance(aws, spec, modify, "modifying the instance").await
    }

    async fn delete(&self, aws: &Aws, id: &str, snapshot: Option<&str>) -> Result<()> {
        aws.rds
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(snapshot.is_none())
            .set_final_db_snapshot_identifier(snapshot.map(str::to_string))
            .send()
            .await
            .done("deleting the instance")
    }

    async fn snapshot(&self, aws: &Aws, id: &str, snapshot_id: &str) -> Result<()> {
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
    }

    async fn snapshot_status(&self, aws: &Aws, snapshot_id: &str) -> Result<Status> {
        let answer = aws
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await;
        let found = answer.map_err(|e| describe("reading the snapshot", e))?;
        let first = found.db_snapshots().first();
        Ok(first.and_then(|s| s.status()).map(str::to_string))
    }

    async fn snapshot_version(&self, aws: &Aws, snapshot_id: &str) -> Result<Option<String>> {
        match aws
            .rds
            .describe_db_snapshots()
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(answer) => Ok(answer
                .db_snapshots()
                .first()
                .and_then(|found| found.engine_version().map(str::to_string))),
            Err(e) if code(&e) == Some("DBSnapshotNotFound") => Ok(None),
            Err(e) => Err(describe("reading the snapshot", e)),
        }
    }

    async fn restore(&self, On { aws, spec }: On<'_>, restore: Restore<'_>) -> Result<()> {
        match restore.source {
            RestoreSource::Snapshot(snapshot) => {
                let request = aws.rds.restore_db_instance_from_db_snapshot();
                let request = request
                    .db_instance_identifier(restore.id)
                    .db_snapshot_identifier(snapshot);
                let answer = as_specified!(request, spec, restore).send().await;
                answer.map(drop).map_err(|e| match code(&e) {
                    Some("DBSnapshotNotFound") => {
                        let listing = "describe-db-snapshots --db-instance-identifier";
                        api::no_snapshot("snapshot", snapshot, listing, &spec.id)
                    }
                    _ => describe("restoring from the snapshot", e),
                })
            }
            RestoreSource::Time(_) | RestoreSource::Latest => {
                let request = aws.rds.restore_db_instance_to_point_in_time();
                let request = request
                    .source_db_instance_identifier(&spec.id)
                    .target_db_instance_identifier(restore.id);
                let mut request = as_specified!(request, spec, restore);
                request = match restore.source {
                    RestoreSource::Time(time) => request.restore_time(api::parse_time(time)?),
                    _ => request.use_latest_restorable_time(true),
                };
                request.send().await.done("restoring to a point in time")
            }
        }
    }

    async fn readiness(&self, On { aws, spec }: On<'_>) -> Result<Readiness> {
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
        Ok((!ready(&status)).then_some(status))
    }

    async fn parameters(&self, aws: &Aws, name: String) -> Result<Option<Parameters>> {
        let answer = aws
            .rds
            .describe_db_parameters()
            .db_parameter_group_name(name)
            .source("user")
            .send()
            .await;
        let parameters = answer.map(|a| a.parameters().to_vec());
        api::found_parameters(parameters, "reading the parameter group")
    }

    async fn group_family(&self, aws: &Aws, name: &str) -> Result<Option<String>> {
        let answer = aws
            .rds
            .describe_db_parameter_groups()
            .db_parameter_group_name(name)
            .send()
            .await
            .map(|a| {
                let group = a.db_parameter_groups().first();
                group.and_then(|g| g.db_parameter_group_family().map(str::to_string))
            });
        api::found_family(answer)
    }

    async fn create_parameter_group(&self, On { aws, spec }: On<'_>) -> Result<String> {
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
            .done("creating the parameter group")?;
        Ok(format!(
            "created parameter group {}",
            spec.parameter_group_name()
        ))
    }

    async fn set_parameters(&self, On { aws, spec }: On<'_>, set: Vec<Parameter>) -> Result<()> {
        aws.rds
            .modify_db_parameter_group()
            .db_parameter_group_name(spec.parameter_group_name())
            .set_parameters(Some(set))
            .send()
            .await
            .done("setting parameters")
    }
}

fn not_found(id: &str) -> Error {
    Error::BadInput(format!("instance {id} does not exist: nothing to snapshot"))
}
