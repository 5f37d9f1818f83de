//! Aurora Serverless v2 (engine `aurora-postgresql`): the env's id names a DB cluster whose
//! capacity floats between min_acu and max_acu, with a `db.serverless` writer `<id>-1` (and a
//! reader `<id>-2` in another zone when the spec asks for Multi-AZ). The cluster carries what
//! RDS keeps per instance elsewhere — engine version, backups, deletion protection, IAM auth,
//! encryption, the master password, the security group and a *cluster* parameter group — and
//! its endpoint is the writer's. Observed, planned and applied like an RDS instance, with the
//! same attribute names where they mean the same thing, so `plan`, `status`, `registry`,
//! tenants and `dbenv import` read a cluster as they read an instance.

use crate::aws::plan::{
    differences, modify_or_none, security_group_change, InstanceState, Observed,
};
use crate::aws::spec::{InstanceSpec, AURORA};
use crate::aws::{code, describe, Aws};
use dbtools::contract::PlannedChange;
use dbtools::contract::{ChangeWhen, PlanAction, PlanResource};
use dbtools::{Error, Result};
use std::collections::BTreeMap;
use std::time::Duration;

/// One member instance of the cluster, as RDS describes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Member {
    pub id: String,
    /// The cluster's writer (after a failover, not necessarily `<id>-1`).
    pub writer: bool,
    pub status: String,
    pub attributes: BTreeMap<&'static str, String>,
}

/// ACUs as the spec and the plan print them: `0.5`, `4`.
fn acu(value: f64) -> String {
    value.to_string()
}

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

/// The cluster (as an instance state, attributes named like the spec's) and its members.
pub(crate) async fn observe(
    aws: &Aws,
    spec: &InstanceSpec,
) -> Result<(Option<InstanceState>, Vec<Member>)> {
    let Some(cluster) = describe_cluster(aws, &spec.id).await? else {
        return Ok((None, Vec::new()));
    };
    let mut members = Vec::new();
    for member in cluster.db_cluster_members() {
        let Some(id) = member.db_instance_identifier() else {
            continue;
        };
        let answer = match aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(answer) => answer,
            // Deleted between the two calls.
            Err(e) if code(&e) == Some("DBInstanceNotFound") => continue,
            Err(e) => return Err(describe("reading the cluster's instances", e)),
        };
        if let Some(db) = answer.db_instances().first() {
            let mut state = member_state(db);
            state.writer = member.is_cluster_writer() == Some(true);
            members.push(state);
        }
    }
    Ok((Some(cluster_state(&cluster, &members)), members))
}

fn member_state(db: &aws_sdk_rds::types::DbInstance) -> Member {
    let mut attributes = BTreeMap::new();
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            attributes.insert(name, value);
        }
    };
    put("class", db.db_instance_class().map(str::to_string));
    put(
        "publicly_accessible",
        db.publicly_accessible().map(|v| v.to_string()),
    );
    put(
        "performance_insights",
        Some(
            db.performance_insights_enabled()
                .unwrap_or(false)
                .to_string(),
        ),
    );
    put(
        "ca_certificate",
        db.ca_certificate_identifier().map(str::to_string),
    );
    put(
        "monitoring_interval",
        Some(db.monitoring_interval().unwrap_or(0).to_string()),
    );
    Member {
        id: db.db_instance_identifier().unwrap_or_default().to_string(),
        writer: false,
        status: db.db_instance_status().unwrap_or("unknown").to_string(),
        attributes,
    }
}

fn cluster_state(cluster: &aws_sdk_rds::types::DbCluster, members: &[Member]) -> InstanceState {
    let mut attributes = BTreeMap::new();
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            attributes.insert(name, value);
        }
    };
    put(
        "engine_version",
        cluster.engine_version().map(str::to_string),
    );
    let scaling = cluster.serverless_v2_scaling_configuration();
    put("min_acu", scaling.and_then(|s| s.min_capacity()).map(acu));
    put("max_acu", scaling.and_then(|s| s.max_capacity()).map(acu));
    put(
        "encrypted",
        cluster.storage_encrypted().map(|v| v.to_string()),
    );
    put(
        "backup_retention_days",
        cluster.backup_retention_period().map(|v| v.to_string()),
    );
    put(
        "backup_window",
        cluster.preferred_backup_window().map(str::to_string),
    );
    put(
        "maintenance_window",
        cluster.preferred_maintenance_window().map(str::to_string),
    );
    put(
        "deletion_protection",
        cluster.deletion_protection().map(|v| v.to_string()),
    );
    put(
        "iam_auth",
        cluster
            .iam_database_authentication_enabled()
            .map(|v| v.to_string()),
    );
    put(
        "parameter_group",
        cluster.db_cluster_parameter_group().map(str::to_string),
    );
    put(
        "subnet_group",
        cluster.db_subnet_group().map(str::to_string),
    );
    // What the registry and status show of a cluster: its writer's class, and whether a
    // second member stands by in another zone.
    put(
        "class",
        members
            .first()
            .and_then(|m| m.attributes.get("class").cloned()),
    );
    put("multi_az", Some((members.len() > 1).to_string()));
    InstanceState {
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

/// The parameters set by the user in the env's cluster parameter group, None when it is missing.
pub(crate) async fn parameters(
    aws: &Aws,
    spec: &InstanceSpec,
) -> Result<Option<BTreeMap<String, String>>> {
    match aws
        .rds
        .describe_db_cluster_parameters()
        .db_cluster_parameter_group_name(spec.parameter_group_name())
        .source("user")
        .send()
        .await
    {
        Ok(answer) => Ok(Some(
            answer
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_name()?.to_string(),
                        p.parameter_value()?.to_string(),
                    ))
                })
                .collect(),
        )),
        Err(e) if code(&e) == Some("DBParameterGroupNotFound") => Ok(None),
        Err(e) => Err(describe("reading the cluster parameter group", e)),
    }
}

/// Cluster attributes the spec asks for, with when AWS applies a change of each.
fn wanted_cluster(spec: &InstanceSpec) -> Vec<(&'static str, String, ChangeWhen)> {
    let window = if spec.apply_immediately {
        ChangeWhen::Immediately
    } else {
        ChangeWhen::MaintenanceWindow
    };
    let range = spec
        .serverless
        .expect("an Aurora spec has a capacity range");
    let mut wanted = vec![
        ("engine_version", spec.engine_version.clone(), window),
        ("min_acu", acu(range.min_acu), ChangeWhen::Immediately),
        ("max_acu", acu(range.max_acu), ChangeWhen::Immediately),
        (
            "encrypted",
            spec.encrypted.to_string(),
            ChangeWhen::CannotChangeInPlace,
        ),
        (
            "backup_retention_days",
            spec.backup_retention_days.to_string(),
            ChangeWhen::Immediately,
        ),
        (
            "deletion_protection",
            spec.deletion_protection.to_string(),
            ChangeWhen::Immediately,
        ),
        (
            "iam_auth",
            spec.iam_auth.to_string(),
            ChangeWhen::Immediately,
        ),
        (
            "parameter_group",
            spec.parameter_group_name(),
            ChangeWhen::OnReboot,
        ),
    ];
    if let Some(group) = spec.subnet_group_name() {
        wanted.push(("subnet_group", group, ChangeWhen::CannotChangeInPlace));
    }
    if let Some(w) = &spec.backup_window {
        wanted.push(("backup_window", w.clone(), ChangeWhen::Immediately));
    }
    if let Some(w) = &spec.maintenance_window {
        wanted.push(("maintenance_window", w.clone(), ChangeWhen::Immediately));
    }
    wanted
}

/// Member attributes the spec asks for.
fn wanted_member(spec: &InstanceSpec) -> Vec<(&'static str, String, ChangeWhen)> {
    let window = if spec.apply_immediately {
        ChangeWhen::Immediately
    } else {
        ChangeWhen::MaintenanceWindow
    };
    let mut wanted = vec![
        ("class", spec.class.clone(), window),
        (
            "publicly_accessible",
            spec.publicly_accessible.to_string(),
            ChangeWhen::Immediately,
        ),
        (
            "performance_insights",
            spec.performance_insights.to_string(),
            ChangeWhen::Immediately,
        ),
        crate::aws::plan::monitoring_attribute(spec),
    ];
    if let Some(ca) = &spec.ca_certificate {
        wanted.push(("ca_certificate", ca.clone(), window));
    }
    wanted
}

/// The cluster's changes (`db-cluster`) and its members' (`db-instance`, writer first).
pub(crate) fn plan(spec: &InstanceSpec, observed: &Observed) -> Vec<PlannedChange> {
    let change =
        |resource: PlanResource, name: &str, action: PlanAction, attributes| PlannedChange {
            env: spec.env.clone(),
            resource,
            name: name.into(),
            action,
            attributes,
        };
    let mut changes = Vec::new();
    match &observed.instance {
        None => changes.push(change(
            PlanResource::DbCluster,
            &spec.id,
            PlanAction::Create,
            differences(wanted_cluster(spec), None),
        )),
        Some(state) => {
            let mut attributes = differences(wanted_cluster(spec), Some(&state.attributes));
            attributes.extend(security_group_change(observed, state));
            changes.push(change(
                PlanResource::DbCluster,
                &spec.id,
                modify_or_none(&attributes),
                attributes,
            ));
        }
    }
    for id in spec.member_ids() {
        match observed.members.iter().find(|m| m.id == id) {
            None => changes.push(change(
                PlanResource::DbInstance,
                &id,
                PlanAction::Create,
                differences(wanted_member(spec), None),
            )),
            Some(member) => {
                let attributes = differences(wanted_member(spec), Some(&member.attributes));
                changes.push(change(
                    PlanResource::DbInstance,
                    &id,
                    modify_or_none(&attributes),
                    attributes,
                ));
            }
        }
    }
    // The reader we added for Multi-AZ goes when Multi-AZ is turned off; members added by
    // hand (other names) are not ours to remove.
    let reader = format!("{}-2", spec.id);
    if !spec.multi_az && observed.members.iter().any(|m| m.id == reader) {
        changes.push(change(
            PlanResource::DbInstance,
            &reader,
            PlanAction::Delete,
            Vec::new(),
        ));
    }
    changes
}

fn tags(spec: &InstanceSpec) -> Vec<aws_sdk_rds::types::Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn scaling(spec: &InstanceSpec) -> aws_sdk_rds::types::ServerlessV2ScalingConfiguration {
    let range = spec
        .serverless
        .expect("an Aurora spec has a capacity range");
    aws_sdk_rds::types::ServerlessV2ScalingConfiguration::builder()
        .min_capacity(range.min_acu)
        .max_capacity(range.max_acu)
        .build()
}

/// Creates the cluster parameter group (family `aurora-postgresqlNN`).
pub(crate) fn create_parameter_group(aws: &Aws, spec: &InstanceSpec) -> Result<()> {
    aws.block_on(
        aws.rds
            .create_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(spec.parameter_group_name())
            .db_parameter_group_family(spec.parameter_group_family())
            .description(format!(
                "rdsprov: parameters of Aurora cluster {} (env {})",
                spec.id, spec.env
            ))
            .set_tags(Some(tags(spec)))
            .send(),
    )
    .map(drop)
    .map_err(|e| describe("creating the cluster parameter group", e))
}

pub(crate) fn set_parameters(
    aws: &Aws,
    spec: &InstanceSpec,
    parameters: Vec<aws_sdk_rds::types::Parameter>,
) -> Result<()> {
    aws.block_on(
        aws.rds
            .modify_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(spec.parameter_group_name())
            .set_parameters(Some(parameters))
            .send(),
    )
    .map(drop)
    .map_err(|e| describe("setting cluster parameters", e))
}

/// Makes the planned cluster and member changes. `password` is the master password when the
/// spec keeps it in Secrets Manager and the cluster is new or its secret was just made.
pub(crate) fn apply(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &Observed,
    planned: &[PlannedChange],
    group_id: &str,
    master: crate::aws::apply::MasterPassword,
    done: &mut Vec<String>,
) -> Result<()> {
    let (password, new_password) = (master.value, master.fresh);
    let cluster = planned
        .iter()
        .find(|c| c.resource == PlanResource::DbCluster)
        .filter(|c| c.action != PlanAction::None);
    match cluster {
        Some(change) if change.action == PlanAction::Create => {
            let mut request = aws
                .rds
                .create_db_cluster()
                .db_cluster_identifier(&spec.id)
                .engine(AURORA)
                .engine_version(&spec.engine_version)
                .serverless_v2_scaling_configuration(scaling(spec))
                .master_username(&spec.master_user)
                .vpc_security_group_ids(group_id)
                .db_cluster_parameter_group_name(spec.parameter_group_name())
                .set_db_subnet_group_name(spec.subnet_group_name())
                .storage_encrypted(spec.encrypted)
                .backup_retention_period(spec.backup_retention_days)
                .deletion_protection(spec.deletion_protection)
                .enable_iam_database_authentication(spec.iam_auth)
                .copy_tags_to_snapshot(true)
                .set_preferred_backup_window(spec.backup_window.clone())
                .set_preferred_maintenance_window(spec.maintenance_window.clone())
                .set_tags(Some(tags(spec)));
            request = match password {
                Some(password) => request.master_user_password(password),
                None => request.manage_master_user_password(true),
            };
            aws.block_on(request.send())
                .map_err(|e| describe("creating the Aurora cluster", e))?;
            let range = spec
                .serverless
                .expect("an Aurora spec has a capacity range");
            done.push(format!(
                "created Aurora cluster {} (Serverless v2 {}–{} ACU, PostgreSQL {})",
                spec.id, range.min_acu, range.max_acu, spec.engine_version
            ));
        }
        Some(change) => {
            let mut request = aws
                .rds
                .modify_db_cluster()
                .db_cluster_identifier(&spec.id)
                .apply_immediately(spec.apply_immediately);
            for attribute in &change.attributes {
                let to = attribute.to.as_str();
                let flag = to == "true";
                request = match attribute.name.as_str() {
                    "engine_version" => request.engine_version(to),
                    "min_acu" | "max_acu" => {
                        request.serverless_v2_scaling_configuration(scaling(spec))
                    }
                    "backup_retention_days" => {
                        request.backup_retention_period(spec.backup_retention_days)
                    }
                    "backup_window" => request.preferred_backup_window(to),
                    "maintenance_window" => request.preferred_maintenance_window(to),
                    "deletion_protection" => request.deletion_protection(flag),
                    "iam_auth" => request.enable_iam_database_authentication(flag),
                    "parameter_group" => request.db_cluster_parameter_group_name(to),
                    "security_groups" => request.vpc_security_group_ids(group_id),
                    _ => request,
                };
            }
            if let (Some(password), true) = (password, new_password) {
                request = request.master_user_password(password);
            }
            aws.block_on(request.send())
                .map_err(|e| describe("modifying the Aurora cluster", e))?;
            done.push(crate::aws::apply::modified(
                spec,
                "Aurora cluster",
                &spec.id,
                change,
            ));
        }
        None => {
            if let (Some(password), true) = (password, new_password) {
                // The secret was lost while the cluster lived: it gets the new password.
                aws.block_on(
                    aws.rds
                        .modify_db_cluster()
                        .db_cluster_identifier(&spec.id)
                        .master_user_password(password)
                        .apply_immediately(true)
                        .send(),
                )
                .map_err(|e| describe("setting the new master password", e))?;
                done.push(format!("set a new master password on {}", spec.id));
            }
        }
    }
    for change in planned
        .iter()
        .filter(|c| c.resource == PlanResource::DbInstance && c.action != PlanAction::None)
    {
        match change.action {
            PlanAction::Create => {
                create_member(aws, spec, &spec.id, &change.name)?;
                done.push(format!(
                    "created {} instance {} in cluster {}",
                    spec.class, change.name, spec.id
                ));
            }
            PlanAction::Delete => {
                // After a failover the reader we added may be the writer: deleting it would
                // fail over again, unplanned.
                if observed
                    .members
                    .iter()
                    .any(|m| m.id == change.name && m.writer)
                {
                    return Err(Error::BadInput(format!(
                        "{} is the writer of {} now (after a failover): fail over to {}-1 first (aws rds failover-db-cluster --db-cluster-identifier {} --target-db-instance-identifier {}-1), then apply again",
                        change.name, spec.id, spec.id, spec.id, spec.id
                    )));
                }
                aws.block_on(
                    aws.rds
                        .delete_db_instance()
                        .db_instance_identifier(&change.name)
                        .send(),
                )
                .map_err(|e| describe(&format!("deleting reader {}", change.name), e))?;
                done.push(format!("deleted reader {} (Multi-AZ is off)", change.name));
            }
            _ => {
                let mut request = aws
                    .rds
                    .modify_db_instance()
                    .db_instance_identifier(&change.name)
                    .apply_immediately(spec.apply_immediately);
                for attribute in &change.attributes {
                    let to = attribute.to.as_str();
                    let flag = to == "true";
                    request = match attribute.name.as_str() {
                        "class" => request.db_instance_class(to),
                        "publicly_accessible" => request.publicly_accessible(flag),
                        "performance_insights" => request.enable_performance_insights(flag),
                        "ca_certificate" => request.ca_certificate_identifier(to),
                        "monitoring_interval" => request
                            .monitoring_interval(to.parse().unwrap_or(0))
                            .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1)),
                        _ => request,
                    };
                }
                aws.block_on(request.send())
                    .map_err(|e| describe(&format!("modifying instance {}", change.name), e))?;
                done.push(crate::aws::apply::modified(
                    spec,
                    "instance",
                    &change.name,
                    change,
                ));
            }
        }
    }
    Ok(())
}

/// A `db.serverless` member of `cluster_id` with the spec's per-instance settings.
pub(crate) fn create_member(
    aws: &Aws,
    spec: &InstanceSpec,
    cluster_id: &str,
    id: &str,
) -> Result<()> {
    aws.block_on(
        aws.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(cluster_id)
            .engine(AURORA)
            .db_instance_class(&spec.class)
            .publicly_accessible(spec.publicly_accessible)
            .enable_performance_insights(spec.performance_insights)
            .set_ca_certificate_identifier(spec.ca_certificate.clone())
            .set_monitoring_interval(spec.monitoring.as_ref().map(|m| m.0))
            .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1))
            .copy_tags_to_snapshot(true)
            .set_tags(Some(tags(spec)))
            .send(),
    )
    .map(drop)
    .map_err(|e| describe(&format!("creating instance {id}"), e))
}

/// Waits until the cluster and each of the spec's members are `available`.
pub(crate) fn wait_available(aws: &Aws, spec: &InstanceSpec, poll: Duration) -> Result<()> {
    crate::aws::wait_for(aws, &spec.id, poll, || async {
        let (cluster, members) = observe(aws, spec).await?;
        let Some(cluster) = cluster else {
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
            status.push_str(&format!(", {id} {member}"));
            ready &= member == "available";
        }
        Ok((ready.then_some(()), status))
    })
}

/// Waits until the listed instances are gone (deleting members before their cluster).
pub(crate) fn wait_deleted(aws: &Aws, ids: &[String], poll: Duration) -> Result<()> {
    crate::aws::wait_for(
        aws,
        &format!("{} to be deleted", ids.join(", ")),
        poll,
        || async {
            let mut left = Vec::new();
            for id in ids {
                match aws
                    .rds
                    .describe_db_instances()
                    .db_instance_identifier(id)
                    .send()
                    .await
                {
                    Ok(answer) => left.push(format!(
                        "{id} {}",
                        answer
                            .db_instances()
                            .first()
                            .and_then(|db| db.db_instance_status())
                            .unwrap_or("unknown")
                    )),
                    Err(e) if code(&e) == Some("DBInstanceNotFound") => {}
                    Err(e) => return Err(describe("reading the instances being deleted", e)),
                }
            }
            Ok((left.is_empty().then_some(()), left.join(", ")))
        },
    )
}
