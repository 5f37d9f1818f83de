//! Aurora Serverless v2 (engine `aurora-postgresql`): the env's id names a DB cluster whose
//! capacity floats between min_acu and max_acu, with a `db.serverless` writer `<id>-1` (and a
//! reader `<id>-2` in another zone when the spec asks for Multi-AZ). The cluster carries what
//! RDS keeps per instance elsewhere — engine version, backups, deletion protection, IAM auth,
//! encryption, the master password, the security group and a *cluster* parameter group — and
//! its endpoint is the writer's. Its state is named like an instance's, so `plan`, `status`,
//! `registry`, tenants and `dbenv import` read a cluster as they read an instance.

use crate::aws::attributes::{self, Attribute, Name, Timing};
use crate::aws::spec::{InstanceSpec, AURORA};
use crate::aws::state::{Member, TargetState};
use crate::aws::target::api::{
    self, with_master_and_tags, Answered, Found, Modify, New, On, Parameter, Parameters, Readiness,
    Restore, RestoreSource, Status, Target,
};
use crate::aws::target::instance::{check_status, modify_instance, read, ready, status_of};
use crate::aws::{code, describe, Aws};
use dbtools::contract::PlanResource;
use dbtools::{Error, Result};

pub(crate) struct AuroraCluster;

/// The Aurora cluster `id` as RDS describes it, or None when there is none.
pub(crate) async fn describe_cluster(
    aws: &Aws,
    id: &str,
) -> Result<Option<aws_sdk_rds::types::DbCluster>> {
    match aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(answer) => Ok(answer.db_clusters().first().cloned()),
        Err(e) if code(&e) == Some("DBClusterNotFoundFault") => Ok(None),
        Err(e) => Err(describe("reading the Aurora cluster", e)),
    }
}

fn cluster_state(cluster: &aws_sdk_rds::types::DbCluster, members: &[Member]) -> TargetState {
    let mut attributes: crate::aws::state::Attributes = attributes::on_cluster()
        .filter_map(|(attribute, on)| Some((attribute.name, (on.read)(cluster)?)))
        .collect();
    // What the registry and status show of a cluster: its writer's class, and whether a
    // second member stands by in another zone.
    if let Some(class) = members.first().and_then(|m| m.attributes.get(&Name::Class)) {
        attributes.insert(Name::Class, class.clone());
    }
    attributes.insert(Name::MultiAz, (members.len() > 1).to_string());
    TargetState {
        status: cluster.status().unwrap_or("unknown").to_string(),
        attributes,
        endpoint: cluster
            .endpoint()
            .map(|host| (host.to_string(), cluster.port().unwrap_or(5432))),
        master_user: cluster.master_username().unwrap_or_default().to_string(),
        managed_secret_arn: cluster
            .master_user_secret()
            .and_then(|s| s.secret_arn())
            .map(str::to_string),
        security_groups: api::group_ids(cluster.vpc_security_groups()),
        pending: pending(cluster),
        tags: cluster
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    }
}

/// The settings a modify left for the maintenance window (ClusterPendingModifiedValues).
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ClusterPendingModifiedValues.html>
fn pending(cluster: &aws_sdk_rds::types::DbCluster) -> crate::aws::state::Attributes {
    let Some(values) = cluster.pending_modified_values() else {
        return Default::default();
    };
    [
        (
            Name::EngineVersion,
            values.engine_version().map(str::to_string),
        ),
        (
            Name::BackupRetentionDays,
            values.backup_retention_period().map(|v| v.to_string()),
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

/// The spec's settings on a cluster restored either way — capacity, parameters, protection,
/// IAM auth — in the live env's security group, with the spec's tags copied to its snapshots.
macro_rules! as_specified {
    ($request:expr, $spec:expr, $restore:expr) => {
        $request
            .copy_tags_to_snapshot(true)
            .set_tags(Some($restore.tags))
            .set_serverless_v2_scaling_configuration(attributes::scaling($spec))
            .db_cluster_parameter_group_name($spec.parameter_group_name())
            .set_db_subnet_group_name($spec.subnet_group_name())
            .set_vpc_security_group_ids(Some($restore.groups))
            .deletion_protection($spec.deletion_protection)
            .enable_iam_database_authentication($spec.iam_auth)
    };
}

#[async_trait::async_trait]
impl Target for AuroraCluster {
    fn kind(&self) -> &'static str {
        "Aurora cluster"
    }

    fn resource(&self) -> PlanResource {
        PlanResource::DbCluster
    }

    fn attributes(&self) -> Vec<(&'static Attribute, Timing)> {
        attributes::on_cluster()
            .map(|(attribute, on)| (attribute, on.timing))
            .collect()
    }

    fn member_attributes(&self) -> Vec<(&'static Attribute, Timing)> {
        attributes::on_members()
            .map(|(attribute, on)| (attribute, on.timing))
            .collect()
    }

    async fn observe(&self, aws: &Aws, id: &str) -> Result<Found> {
        let Some(cluster) = describe_cluster(aws, id).await? else {
            return Ok(None);
        };
        let mut members = Vec::new();
        for member in cluster.db_cluster_members() {
            let Some(member_id) = member.db_instance_identifier() else {
                continue;
            };
            // None: deleted between the two calls.
            if let Some(db) =
                crate::aws::target::instance::describe_instance(aws, member_id).await?
            {
                members.push(Member {
                    id: member_id.to_string(),
                    writer: member.is_cluster_writer() == Some(true),
                    status: status_of(&db),
                    attributes: read(&db, attributes::on_members()),
                    pending: crate::aws::target::instance::pending(&db),
                });
            }
        }
        Ok(Some((cluster_state(&cluster, &members), members)))
    }

    async fn create(&self, On { aws, spec }: On<'_>, new: New<'_>) -> Result<String> {
        let mut request = with_master_and_tags!(
            aws.rds
                .create_db_cluster()
                .db_cluster_identifier(&spec.id)
                .engine(AURORA),
            spec,
            new
        );
        for (_, on) in attributes::on_cluster() {
            request = (on.create)(request, spec);
        }
        request
            .send()
            .await
            .map_err(|e| describe("creating the Aurora cluster", e))?;
        let range = spec
            .serverless
            .expect("an Aurora spec has a capacity range");
        Ok(format!(
            "created Aurora cluster {} (Serverless v2 {}–{} ACU, PostgreSQL {})",
            spec.id, range.min_acu, range.max_acu, spec.engine_version
        ))
    }

    async fn modify(&self, On { aws, spec }: On<'_>, modify: Modify<'_>) -> Result<()> {
        let mut request = aws
            .rds
            .modify_db_cluster()
            .db_cluster_identifier(modify.id)
            .apply_immediately(modify.immediately)
            .set_allow_major_version_upgrade(
                attributes::crosses_major(modify.changes).then_some(true),
            );
        for change in modify.changes {
            request = match attributes::named(&change.name).map(|a| &a.aurora) {
                Some(attributes::OnAurora::Cluster(on)) => (on.modify)(request, &change.to, spec),
                _ if change.name == "security_groups" => request
                    .set_vpc_security_group_ids(modify.group_id.map(|id| vec![id.to_string()])),
                _ => request,
            };
        }
        request = request.set_master_user_password(modify.password.map(str::to_string));
        request.send().await.done("modifying the Aurora cluster")
    }

    async fn delete(&self, aws: &Aws, id: &str, snapshot: Option<&str>) -> Result<()> {
        aws.rds
            .delete_db_cluster()
            .db_cluster_identifier(id)
            .skip_final_snapshot(snapshot.is_none())
            .set_final_db_snapshot_identifier(snapshot.map(str::to_string))
            .send()
            .await
            .done("deleting the Aurora cluster")
    }

    async fn snapshot(&self, aws: &Aws, id: &str, snapshot_id: &str) -> Result<()> {
        aws.rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(id)
            .db_cluster_snapshot_identifier(snapshot_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| match code(&e) {
                Some("DBClusterNotFoundFault") => Error::BadInput(format!(
                    "Aurora cluster {id} does not exist: nothing to snapshot"
                )),
                _ => describe("taking the cluster snapshot", e),
            })
    }

    async fn snapshot_status(&self, aws: &Aws, snapshot_id: &str) -> Result<Status> {
        let answer = aws
            .rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(snapshot_id)
            .send()
            .await;
        let found = answer.map_err(|e| describe("reading the cluster snapshot", e))?;
        let first = found.db_cluster_snapshots().first();
        Ok(first.and_then(|s| s.status()).map(str::to_string))
    }

    async fn snapshot_version(&self, aws: &Aws, snapshot_id: &str) -> Result<Option<String>> {
        match aws
            .rds
            .describe_db_cluster_snapshots()
            .db_cluster_snapshot_identifier(snapshot_id)
            .send()
            .await
        {
            Ok(answer) => Ok(answer
                .db_cluster_snapshots()
                .first()
                .and_then(|found| found.engine_version().map(str::to_string))),
            Err(e) if code(&e) == Some("DBClusterSnapshotNotFoundFault") => Ok(None),
            Err(e) => Err(describe("reading the cluster snapshot", e)),
        }
    }

    async fn restore(&self, On { aws, spec }: On<'_>, restore: Restore<'_>) -> Result<()> {
        match restore.source {
            RestoreSource::Snapshot(snapshot) => {
                // The snapshot's own version: without one AWS takes the region's default
                // version, perhaps another major ("If you don't specify an engine version, the
                // default version for the database engine in the AWS Region is used"), and the
                // spec may name a major alone.
                let version = self.snapshot_version(aws, snapshot).await?;
                let request = aws.rds.restore_db_cluster_from_snapshot();
                let request = request
                    .db_cluster_identifier(restore.id)
                    .snapshot_identifier(snapshot)
                    .engine(AURORA)
                    .set_engine_version(version);
                let answer = as_specified!(request, spec, restore).send().await;
                answer.map(drop).map_err(|e| match code(&e) {
                    Some("DBClusterSnapshotNotFoundFault" | "DBSnapshotNotFound") => {
                        let listing = "describe-db-cluster-snapshots --db-cluster-identifier";
                        api::no_snapshot("cluster snapshot", snapshot, listing, &spec.id)
                    }
                    _ => describe("restoring from the cluster snapshot", e),
                })
            }
            RestoreSource::Time(_) | RestoreSource::Latest => {
                let request = aws.rds.restore_db_cluster_to_point_in_time();
                let request = request
                    .source_db_cluster_identifier(&spec.id)
                    .db_cluster_identifier(restore.id);
                let mut request = as_specified!(request, spec, restore);
                request = match restore.source {
                    RestoreSource::Time(time) => request.restore_to_time(api::parse_time(time)?),
                    _ => request.use_latest_restorable_time(true),
                };
                request
                    .send()
                    .await
                    .done("restoring the cluster to a point in time")
            }
        }
    }

    async fn readiness(&self, On { aws, spec }: On<'_>) -> Result<Readiness> {
        let Some((cluster, members)) = AuroraCluster.observe(aws, &spec.id).await? else {
            return Err(Error::Failed(format!(
                "Aurora cluster {} vanished while waiting",
                spec.id
            )));
        };
        if matches!(
            cluster.status.as_str(),
            "failed" | "inaccessible-encryption-credentials" | "incompatible-network"
        ) {
            return Err(Error::Failed(format!(
                "Aurora cluster {} is {}: see the RDS console's events for it",
                spec.id, cluster.status
            )));
        }
        if cluster.status == "stopped" {
            return Err(Error::Failed(format!(
                "Aurora cluster {} is stopped: it will not become available by itself — start it (aws rds start-db-cluster) and wait again",
                spec.id
            )));
        }
        let mut status = format!("cluster {}", cluster.status);
        let mut all_ready = cluster.status == "available";
        for id in spec.member_ids() {
            let member = members
                .iter()
                .find(|m| m.id == id)
                .map_or("missing", |m| m.status.as_str());
            if member != "missing" && member != "stopped" {
                check_status(&id, member)?;
            }
            status.push_str(&format!(", {id} {member}"));
            all_ready &= ready(member);
        }
        Ok((!all_ready).then_some(status))
    }

    async fn parameters(&self, aws: &Aws, name: String) -> Result<Option<Parameters>> {
        let answer = aws
            .rds
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name(name)
            .source("user")
            .send()
            .await;
        let parameters = answer.map(|a| a.parameters().to_vec());
        api::found_parameters(parameters, "reading the cluster parameter group")
    }

    async fn group_family(&self, aws: &Aws, name: &str) -> Result<Option<String>> {
        let answer = aws
            .rds
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(name)
            .send()
            .await
            .map(|a| {
                let group = a.db_cluster_parameter_groups().first();
                group.and_then(|g| g.db_parameter_group_family().map(str::to_string))
            });
        api::found_family(answer)
    }

    /// The cluster parameter group (family `aurora-postgresqlNN`).
    async fn create_parameter_group(&self, On { aws, spec }: On<'_>) -> Result<String> {
        aws.rds
            .create_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(spec.parameter_group_name())
            .db_parameter_group_family(spec.parameter_group_family())
            .description(format!(
                "rdsprov: parameters of Aurora cluster {} (env {})",
                spec.id, spec.env
            ))
            .set_tags(Some(api::tags(spec)))
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key(CREATED_AT)
                    .value(unix_now().to_string())
                    .build(),
            )
            .send()
            .await
            .done("creating the cluster parameter group")?;
        Ok(format!(
            "created cluster parameter group {}",
            spec.parameter_group_name()
        ))
    }

    async fn group_created_at(&self, aws: &Aws, name: &str) -> Result<Option<u64>> {
        let found = aws
            .rds
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(name)
            .send()
            .await
            .map_err(|e| describe("reading the cluster parameter group", e))?;
        let Some(arn) = found
            .db_cluster_parameter_groups()
            .first()
            .and_then(|g| g.db_cluster_parameter_group_arn())
        else {
            return Ok(None);
        };
        let tags = aws
            .rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| describe("reading the cluster parameter group's tags", e))?;
        Ok(tags
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(CREATED_AT))
            .and_then(|t| t.value()?.parse().ok()))
    }

    async fn set_parameters(&self, On { aws, spec }: On<'_>, set: Vec<Parameter>) -> Result<()> {
        aws.rds
            .modify_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(spec.parameter_group_name())
            .set_parameters(Some(set))
            .send()
            .await
            .done("setting cluster parameters")
    }

    /// The reader we added for Multi-AZ goes when Multi-AZ is turned off; members added by
    /// hand (other names) are not ours to remove.
    fn surplus_members(&self, spec: &InstanceSpec, members: &[Member]) -> Vec<String> {
        let reader = format!("{}-2", spec.id);
        let ours = !spec.multi_az && members.iter().any(|m| m.id == reader);
        ours.then_some(reader).into_iter().collect()
    }

    /// A `db.serverless` member of `cluster_id` with the spec's per-instance settings.
    async fn create_member(
        &self,
        On { aws, spec }: On<'_>,
        cluster_id: &str,
        id: &str,
    ) -> Result<()> {
        // Any member made while another one writes (a reader, or `<id>-1` again after a
        // failover) goes in another zone than the writer's.
        let zone = reader_zone(aws, cluster_id).await?;
        let mut request = aws
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(cluster_id)
            .engine(AURORA)
            .set_availability_zone(zone)
            .copy_tags_to_snapshot(true)
            .set_tags(Some(api::tags(spec)));
        for (_, on) in attributes::on_members() {
            request = (on.create)(request, spec);
        }
        request
            .send()
            .await
            .done(&format!("creating instance {id}"))
    }

    async fn modify_member(&self, On { aws, spec }: On<'_>, modify: Modify<'_>) -> Result<()> {
        let what = format!("modifying instance {}", modify.id);
        modify_instance(aws, spec, modify, &what).await
    }

    async fn delete_member(&self, aws: &Aws, id: &str) -> Result<()> {
        aws.rds
            .delete_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .done(&format!("deleting instance {id}"))
    }
}

/// The tag a new cluster parameter group carries: when it was made (Unix seconds), so a rerun
/// knows how long a new cluster must still wait for it.
const CREATED_AT: &str = "rdsprov-created-at";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A zone of the cluster other than its writer's, for a member that must survive the loss of
/// the writer's zone: left to itself Aurora "automatically chooses an appropriate Availability
/// Zone", which may be the writer's (CreateDBInstance, AvailabilityZone). None when there is no
/// writer yet, or its zone is not known yet.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html>
async fn reader_zone(aws: &Aws, cluster_id: &str) -> Result<Option<String>> {
    let answer = aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(cluster_id)
        .send()
        .await
        .map_err(|e| describe("reading the cluster's zones", e))?;
    let Some(cluster) = answer.db_clusters().first() else {
        return Ok(None);
    };
    let writer = cluster
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier());
    let writer_zone = match writer {
        Some(id) => crate::aws::target::instance::describe_instance(aws, id)
            .await?
            .and_then(|db| db.availability_zone().map(str::to_string)),
        None => None,
    };
    Ok(writer_zone.and_then(|taken| {
        cluster
            .availability_zones()
            .iter()
            .find(|zone| **zone != taken)
            .cloned()
    }))
}
