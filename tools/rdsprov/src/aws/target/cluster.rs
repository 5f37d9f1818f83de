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
use crate::aws::target::api::{self, Modify, Pending, Readiness, Restore, RestoreSource, Target};
use crate::aws::target::instance::{check_status, modify_instance, read, status_of};
use crate::aws::{code, describe, Aws};
use dbtools::contract::PlanResource;
use dbtools::{Error, Result};
use std::collections::BTreeMap;

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
        security_groups: cluster
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
            .collect(),
    }
}

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

    fn observe<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
    ) -> Pending<'a, Option<(TargetState, Vec<Member>)>> {
        Box::pin(async move {
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
                    });
                }
            }
            Ok(Some((cluster_state(&cluster, &members), members)))
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
                .create_db_cluster()
                .db_cluster_identifier(&spec.id)
                .engine(AURORA)
                .master_username(&spec.master_user)
                .vpc_security_group_ids(group_id)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(api::tags(spec)));
            for (_, on) in attributes::on_cluster() {
                request = (on.create)(request, spec);
            }
            request = match password {
                Some(password) => request.master_user_password(password),
                None => request.manage_master_user_password(true),
            };
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
        })
    }

    fn modify<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        modify: Modify<'a>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            let mut request = aws
                .rds
                .modify_db_cluster()
                .db_cluster_identifier(modify.id)
                .apply_immediately(modify.immediately);
            for change in modify.changes {
                request = match attributes::named(&change.name).map(|a| &a.aurora) {
                    Some(attributes::OnAurora::Cluster(on)) => {
                        (on.modify)(request, &change.to, spec)
                    }
                    _ if change.name == "security_groups" => request
                        .set_vpc_security_group_ids(modify.group_id.map(|id| vec![id.to_string()])),
                    _ => request,
                };
            }
            if let Some(password) = modify.password {
                request = request.master_user_password(password);
            }
            request
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("modifying the Aurora cluster", e))
        })
    }

    fn delete<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
        final_snapshot: Option<&'a str>,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .delete_db_cluster()
                .db_cluster_identifier(id)
                .skip_final_snapshot(final_snapshot.is_none())
                .set_final_db_snapshot_identifier(final_snapshot.map(str::to_string))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("deleting the Aurora cluster", e))
        })
    }

    fn snapshot<'a>(&'a self, aws: &'a Aws, id: &'a str, snapshot_id: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
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
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(snapshot_id)
                .send()
                .await
                .map_err(|e| describe("reading the snapshot", e))?
                .db_cluster_snapshots()
                .first()
                .and_then(|s| s.status())
                .map(str::to_string))
        })
    }

    /// A new cluster from a cluster snapshot or the live cluster's backups, with the spec's
    /// capacity, parameter group and protection; its members are added after.
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
                    .restore_db_cluster_from_snapshot()
                    .db_cluster_identifier(restore.id)
                    .snapshot_identifier(snapshot)
                    .engine(AURORA)
                    .engine_version(&spec.engine_version)
                    .set_serverless_v2_scaling_configuration(attributes::scaling(spec))
                    .db_cluster_parameter_group_name(spec.parameter_group_name())
                    .set_db_subnet_group_name(spec.subnet_group_name())
                    .set_vpc_security_group_ids(Some(restore.groups))
                    .deletion_protection(spec.deletion_protection)
                    .enable_iam_database_authentication(spec.iam_auth)
                    .copy_tags_to_snapshot(true)
                    .set_tags(Some(restore.tags))
                    .send()
                    .await
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
                        .db_cluster_identifier(restore.id)
                        .set_serverless_v2_scaling_configuration(attributes::scaling(spec))
                        .db_cluster_parameter_group_name(spec.parameter_group_name())
                        .set_db_subnet_group_name(spec.subnet_group_name())
                        .set_vpc_security_group_ids(Some(restore.groups))
                        .deletion_protection(spec.deletion_protection)
                        .enable_iam_database_authentication(spec.iam_auth)
                        .copy_tags_to_snapshot(true)
                        .set_tags(Some(restore.tags));
                    request = match restore.source {
                        RestoreSource::Time(time) => {
                            request.restore_to_time(api::parse_time(time)?)
                        }
                        _ => request.use_latest_restorable_time(true),
                    };
                    request
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| describe("restoring the cluster to a point in time", e))
                }
            }
        })
    }

    fn readiness<'a>(&'a self, aws: &'a Aws, spec: &'a InstanceSpec) -> Pending<'a, Readiness> {
        Box::pin(async move {
            let Some((cluster, members)) = self.observe(aws, &spec.id).await? else {
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
            let mut ready = cluster.status == "available";
            for id in spec.member_ids() {
                let member = members
                    .iter()
                    .find(|m| m.id == id)
                    .map_or("missing", |m| m.status.as_str());
                if member != "missing" {
                    check_status(&id, member)?;
                }
                status.push_str(&format!(", {id} {member}"));
                ready &= member == "available";
            }
            Ok((!ready).then_some(status))
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
                .describe_db_cluster_parameters()
                .db_cluster_parameter_group_name(name)
                .source("user")
                .send()
                .await
            {
                Ok(answer) => Ok(Some(api::user_parameters(answer.parameters()))),
                Err(e) if code(&e) == Some("DBParameterGroupNotFound") => Ok(None),
                Err(e) => Err(describe("reading the cluster parameter group", e)),
            }
        })
    }

    /// The cluster parameter group (family `aurora-postgresqlNN`).
    fn create_parameter_group<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .create_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(spec.parameter_group_name())
                .db_parameter_group_family(spec.parameter_group_family())
                .description(format!(
                    "rdsprov: parameters of Aurora cluster {} (env {})",
                    spec.id, spec.env
                ))
                .set_tags(Some(api::tags(spec)))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("creating the cluster parameter group", e))
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
                .modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(spec.parameter_group_name())
                .set_parameters(Some(parameters))
                .send()
                .await
                .map(drop)
                .map_err(|e| describe("setting cluster parameters", e))
        })
    }

    /// A `db.serverless` member of `cluster_id` with the spec's per-instance settings.
    fn create_member<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        cluster_id: &'a str,
        id: &'a str,
    ) -> Pending<'a, ()> {
        Box::pin(async move {
            let mut request = aws
                .rds
                .create_db_instance()
                .db_instance_identifier(id)
                .db_cluster_identifier(cluster_id)
                .engine(AURORA)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(api::tags(spec)));
            for (_, on) in attributes::on_members() {
                request = (on.create)(request, spec);
            }
            request
                .send()
                .await
                .map(drop)
                .map_err(|e| describe(&format!("creating instance {id}"), e))
        })
    }

    fn modify_member<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        modify: Modify<'a>,
    ) -> Pending<'a, ()> {
        let what = format!("modifying instance {}", modify.id);
        Box::pin(async move { modify_instance(aws, spec, modify, &what).await })
    }

    fn delete_member<'a>(&'a self, aws: &'a Aws, id: &'a str) -> Pending<'a, ()> {
        Box::pin(async move {
            aws.rds
                .delete_db_instance()
                .db_instance_identifier(id)
                .send()
                .await
                .map(drop)
                .map_err(|e| describe(&format!("deleting instance {id}"), e))
        })
    }
}
