//! Observe (describe calls only) and plan: what exists for each env of the spec, and the
//! difference — create, modify (which attributes, and when AWS applies each), or nothing.

use crate::aws::alarms::{self, ObservedAlarms};
use crate::aws::aurora::{self, Member};
use crate::aws::spec::InstanceSpec;
use crate::aws::{code, describe, Aws};
use dbtools::contract::{AttributeChange, Instance, PlannedChange};
use dbtools::contract::{ChangeWhen, PlanAction, PlanResource};
use dbtools::{Error, Result};
use std::collections::BTreeMap;

/// Rules we manage in a security group carry this description; others (a machine's own rule
/// added by `rdsprov access`, a colleague's by hand) are never touched.
pub(crate) const SPEC_RULE: &str = "rdsprov:spec";
pub(crate) const PORT: i32 = 5432;

#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub vpc_id: String,
    /// Security group id and the CIDRs of the rules we manage.
    pub security_group: Option<(String, Vec<String>)>,
    /// The subnets of our DB subnet group, when the spec lists subnets and the group exists.
    pub subnet_group: Option<Vec<String>>,
    /// Parameters set by the user in the group, when it exists.
    pub parameters: Option<BTreeMap<String, String>>,
    pub secret_arn: Option<String>,
    /// The instance, or on Aurora the cluster.
    pub instance: Option<InstanceState>,
    /// Aurora only: the cluster's member instances.
    pub members: Vec<Member>,
    pub alarms: ObservedAlarms,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct InstanceState {
    pub status: String,
    pub attributes: BTreeMap<&'static str, String>,
    pub endpoint: Option<(String, i32)>,
    pub master_user: String,
    pub managed_secret_arn: Option<String>,
    pub security_groups: Vec<String>,
}

/// Reads what exists for one env.
pub(crate) fn observe(aws: &Aws, spec: &InstanceSpec) -> Result<Observed> {
    aws.block_on(async {
        let vpc_id = match &spec.vpc_id {
            Some(id) => id.clone(),
            None => {
                let vpcs = aws
                    .ec2
                    .describe_vpcs()
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("isDefault")
                            .values("true")
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| describe("finding the default VPC", e))?;
                vpcs.vpcs()
                    .first()
                    .and_then(|v| v.vpc_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::BadInput(format!(
                            "env {}: region {} has no default VPC: name one with vpc_id in the spec",
                            spec.env, aws.region
                        ))
                    })?
            }
        };
        let groups = aws
            .ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(spec.security_group_name())
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc_id)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| describe("reading security groups", e))?;
        let security_group = groups.security_groups().first().map(|group| {
            let cidrs = group
                .ip_permissions()
                .iter()
                .filter(|p| p.from_port() == Some(PORT))
                .flat_map(|p| {
                    let v4 = p
                        .ip_ranges()
                        .iter()
                        .filter(|r| r.description() == Some(SPEC_RULE))
                        .filter_map(|r| r.cidr_ip().map(str::to_string));
                    let v6 = p
                        .ipv6_ranges()
                        .iter()
                        .filter(|r| r.description() == Some(SPEC_RULE))
                        .filter_map(|r| r.cidr_ipv6().map(str::to_string));
                    let groups = p
                        .user_id_group_pairs()
                        .iter()
                        .filter(|g| g.description() == Some(SPEC_RULE))
                        .filter_map(|g| g.group_id().map(str::to_string));
                    v4.chain(v6).chain(groups).collect::<Vec<_>>()
                })
                .collect::<Vec<_>>();
            (group.group_id().unwrap_or_default().to_string(), cidrs)
        });
        let subnet_group = match spec.subnet_group_name() {
            None => None,
            Some(name) => match aws
                .rds
                .describe_db_subnet_groups()
                .db_subnet_group_name(&name)
                .send()
                .await
            {
                Ok(answer) => answer.db_subnet_groups().first().map(|group| {
                    let mut ids: Vec<String> = group
                        .subnets()
                        .iter()
                        .filter_map(|s| s.subnet_identifier().map(str::to_string))
                        .collect();
                    ids.sort();
                    ids
                }),
                Err(e) if code(&e) == Some("DBSubnetGroupNotFoundFault") => None,
                Err(e) => return Err(describe("reading the DB subnet group", e)),
            },
        };
        let parameters = if spec.is_aurora() {
            aurora::parameters(aws, spec).await?
        } else {
            match aws
                .rds
                .describe_db_parameters()
                .db_parameter_group_name(spec.parameter_group_name())
                .source("user")
                .send()
                .await
            {
                Ok(answer) => Some(
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
                ),
                Err(e) if code(&e) == Some("DBParameterGroupNotFound") => None,
                Err(e) => return Err(describe("reading the parameter group", e)),
            }
        };
        let secret_arn = if spec.rds_managed_password {
            None
        } else {
            match aws
                .secrets
                .describe_secret()
                .secret_id(spec.secret_name())
                .send()
                .await
            {
                Ok(answer) => answer.arn().map(str::to_string),
                Err(e) if code(&e) == Some("ResourceNotFoundException") => None,
                Err(e) => return Err(describe("reading the master secret", e)),
            }
        };
        let (instance, members) = if spec.is_aurora() {
            aurora::observe(aws, spec).await?
        } else {
            match aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(&spec.id)
                .send()
                .await
            {
                Ok(answer) => (answer.db_instances().first().map(instance_state), Vec::new()),
                Err(e) if code(&e) == Some("DBInstanceNotFound") => (None, Vec::new()),
                Err(e) => return Err(describe("reading the instance", e)),
            }
        };
        Ok(Observed {
            vpc_id,
            security_group,
            subnet_group,
            parameters,
            secret_arn,
            instance,
            members,
            alarms: ObservedAlarms::default(),
        })
    })
    .and_then(|mut observed| {
        observed.alarms = alarms::observe(aws, spec)?;
        Ok(observed)
    })
}

fn instance_state(db: &aws_sdk_rds::types::DbInstance) -> InstanceState {
    let mut attributes = BTreeMap::new();
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            attributes.insert(name, value);
        }
    };
    put("class", db.db_instance_class().map(str::to_string));
    put("engine_version", db.engine_version().map(str::to_string));
    put("storage_gb", db.allocated_storage().map(|v| v.to_string()));
    put(
        "max_storage_gb",
        db.max_allocated_storage().map(|v| v.to_string()),
    );
    put("multi_az", db.multi_az().map(|v| v.to_string()));
    put("encrypted", db.storage_encrypted().map(|v| v.to_string()));
    put(
        "backup_retention_days",
        db.backup_retention_period().map(|v| v.to_string()),
    );
    put(
        "backup_window",
        db.preferred_backup_window().map(str::to_string),
    );
    put(
        "maintenance_window",
        db.preferred_maintenance_window().map(str::to_string),
    );
    put(
        "deletion_protection",
        db.deletion_protection().map(|v| v.to_string()),
    );
    put(
        "publicly_accessible",
        db.publicly_accessible().map(|v| v.to_string()),
    );
    put(
        "iam_auth",
        db.iam_database_authentication_enabled()
            .map(|v| v.to_string()),
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
    put(
        "subnet_group",
        db.db_subnet_group()
            .and_then(|g| g.db_subnet_group_name())
            .map(str::to_string),
    );
    put(
        "parameter_group",
        db.db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
    );
    InstanceState {
        status: db.db_instance_status().unwrap_or("unknown").to_string(),
        attributes,
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

/// Attribute values the spec asks of the instance, with when AWS applies a change of each.
pub(crate) fn wanted_attributes(spec: &InstanceSpec) -> Vec<(&'static str, String, ChangeWhen)> {
    let window = if spec.apply_immediately {
        ChangeWhen::Immediately
    } else {
        ChangeWhen::MaintenanceWindow
    };
    let mut wanted = vec![
        ("class", spec.class.clone(), window),
        ("engine_version", spec.engine_version.clone(), window),
        ("storage_gb", spec.storage_gb.to_string(), window),
        ("multi_az", spec.multi_az.to_string(), window),
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
            "publicly_accessible",
            spec.publicly_accessible.to_string(),
            ChangeWhen::Immediately,
        ),
        ("iam_auth", spec.iam_auth.to_string(), window),
        (
            "performance_insights",
            spec.performance_insights.to_string(),
            ChangeWhen::Immediately,
        ),
        (
            "parameter_group",
            spec.parameter_group_name(),
            ChangeWhen::OnReboot,
        ),
        monitoring_attribute(spec),
    ];
    if let Some(group) = spec.subnet_group_name() {
        wanted.push(("subnet_group", group, ChangeWhen::CannotChangeInPlace));
    }
    if let Some(max) = spec.max_storage_gb {
        wanted.push(("max_storage_gb", max.to_string(), ChangeWhen::Immediately));
    }
    if let Some(w) = &spec.backup_window {
        wanted.push(("backup_window", w.clone(), ChangeWhen::Immediately));
    }
    if let Some(w) = &spec.maintenance_window {
        wanted.push(("maintenance_window", w.clone(), ChangeWhen::Immediately));
    }
    if let Some(ca) = &spec.ca_certificate {
        wanted.push(("ca_certificate", ca.clone(), window));
    }
    wanted
}

/// Enhanced monitoring's interval (0 when off), changed at once.
pub(crate) fn monitoring_attribute(spec: &InstanceSpec) -> (&'static str, String, ChangeWhen) {
    (
        "monitoring_interval",
        spec.monitoring.as_ref().map_or(0, |m| m.0).to_string(),
        ChangeWhen::Immediately,
    )
}

/// The changes for one env, in the order `apply` makes them.
pub(crate) fn plan(spec: &InstanceSpec, observed: &Observed) -> Vec<PlannedChange> {
    let change =
        |resource: PlanResource, name: String, action: PlanAction, attributes| PlannedChange {
            env: spec.env.clone(),
            resource,
            name,
            action,
            attributes,
        };
    let mut changes = Vec::new();

    let mut wanted_cidrs = spec.ingress.clone();
    wanted_cidrs.sort();
    match &observed.security_group {
        None => changes.push(change(
            PlanResource::SecurityGroup,
            spec.security_group_name(),
            PlanAction::Create,
            vec![attribute(
                "ingress 5432",
                None,
                wanted_cidrs.join(", "),
                ChangeWhen::Immediately,
            )],
        )),
        Some((id, cidrs)) => {
            let mut have = cidrs.clone();
            have.sort();
            let action = if have == wanted_cidrs {
                PlanAction::None
            } else {
                PlanAction::Modify
            };
            let attributes = if action == PlanAction::None {
                Vec::new()
            } else {
                vec![attribute(
                    "ingress 5432",
                    Some(have.join(", ")),
                    wanted_cidrs.join(", "),
                    ChangeWhen::Immediately,
                )]
            };
            changes.push(change(
                PlanResource::SecurityGroup,
                id.clone(),
                action,
                attributes,
            ));
        }
    }

    if let Some(name) = spec.subnet_group_name() {
        let wanted = spec.subnet_ids.join(", ");
        changes.push(match &observed.subnet_group {
            None => change(
                PlanResource::DbSubnetGroup,
                name,
                PlanAction::Create,
                vec![attribute("subnets", None, wanted, ChangeWhen::Immediately)],
            ),
            Some(have) if *have == spec.subnet_ids => change(
                PlanResource::DbSubnetGroup,
                name,
                PlanAction::None,
                Vec::new(),
            ),
            Some(have) => change(
                PlanResource::DbSubnetGroup,
                name,
                PlanAction::Modify,
                vec![attribute(
                    "subnets",
                    Some(have.join(", ")),
                    wanted,
                    ChangeWhen::Immediately,
                )],
            ),
        });
    }

    match &observed.parameters {
        None => changes.push(change(
            PlanResource::ParameterGroup,
            spec.parameter_group_name(),
            PlanAction::Create,
            spec.parameters
                .iter()
                .map(|(k, v)| attribute(k, None, v.clone(), parameter_timing(k)))
                .collect(),
        )),
        Some(have) => {
            let attributes: Vec<AttributeChange> = spec
                .parameters
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(v))
                .map(|(k, v)| attribute(k, have.get(k).cloned(), v.clone(), parameter_timing(k)))
                .collect();
            let action = if attributes.is_empty() {
                PlanAction::None
            } else {
                PlanAction::Modify
            };
            changes.push(change(
                PlanResource::ParameterGroup,
                spec.parameter_group_name(),
                action,
                attributes,
            ));
        }
    }

    if !spec.rds_managed_password {
        let action = if observed.secret_arn.is_some() {
            PlanAction::None
        } else {
            PlanAction::Create
        };
        changes.push(change(
            PlanResource::Secret,
            spec.secret_name(),
            action,
            Vec::new(),
        ));
    }

    if spec.is_aurora() {
        changes.extend(aurora::plan(spec, observed));
    } else {
        changes.push(plan_instance(spec, observed));
    }
    changes.extend(alarms::plan(spec, &observed.alarms));
    changes
}

/// The RDS instance's change: create, modify (which attributes, and when), or none.
fn plan_instance(spec: &InstanceSpec, observed: &Observed) -> PlannedChange {
    let (action, attributes) = match &observed.instance {
        None => (
            PlanAction::Create,
            differences(wanted_attributes(spec), None),
        ),
        Some(state) => {
            let mut attributes = differences(wanted_attributes(spec), Some(&state.attributes));
            attributes.extend(security_group_change(observed, state));
            (modify_or_none(&attributes), attributes)
        }
    };
    PlannedChange {
        env: spec.env.clone(),
        resource: PlanResource::DbInstance,
        name: spec.id.clone(),
        action,
        attributes,
    }
}

pub(crate) fn modify_or_none(attributes: &[AttributeChange]) -> PlanAction {
    if attributes.is_empty() {
        PlanAction::None
    } else {
        PlanAction::Modify
    }
}

/// The wanted attributes that differ from what is (all of them, applied at creation, when
/// nothing is there yet).
pub(crate) fn differences(
    wanted: Vec<(&'static str, String, ChangeWhen)>,
    have: Option<&BTreeMap<&'static str, String>>,
) -> Vec<AttributeChange> {
    wanted
        .into_iter()
        .filter(|(name, to, _)| have.and_then(|h| h.get(name)) != Some(to))
        .map(|(name, to, when)| match have {
            None => attribute(name, None, to, ChangeWhen::Immediately),
            Some(have) => attribute(name, have.get(name).cloned(), to, when),
        })
        .collect()
}

/// The spec's security group, when the instance (or cluster) is not in it.
pub(crate) fn security_group_change(
    observed: &Observed,
    state: &InstanceState,
) -> Option<AttributeChange> {
    let (group, _) = observed.security_group.as_ref()?;
    (!state.security_groups.contains(group)).then(|| {
        attribute(
            "security_groups",
            Some(state.security_groups.join(", ")),
            group.clone(),
            ChangeWhen::Immediately,
        )
    })
}

/// The instance (or Aurora cluster) as the contract describes it, from an observation; None
/// when it does not exist.
pub(crate) fn record(
    region: &str,
    instance: &InstanceSpec,
    observed: Observed,
) -> Option<Instance> {
    let state = observed.instance?;
    Some(Instance {
        id: instance.id.clone(),
        provider: dbtools::contract::Provider::Aws,
        engine: instance.engine.clone(),
        engine_version: state
            .attributes
            .get("engine_version")
            .cloned()
            .unwrap_or_default(),
        status: state.status.clone(),
        endpoint: dbtools::contract::Endpoint {
            host: state.endpoint.clone().map(|e| e.0).unwrap_or_default(),
            port: state
                .endpoint
                .as_ref()
                .and_then(|e| u16::try_from(e.1).ok())
                .unwrap_or(5432),
        },
        master_user: state.master_user.clone(),
        master_secret: dbtools::contract::SecretRef {
            source: dbtools::contract::SecretSource::AwsSm,
            reference: observed
                .secret_arn
                .clone()
                .or(state.managed_secret_arn.clone())
                .unwrap_or_default(),
        },
        ca_cert: None,
        databases: Vec::new(),
        env: Some(instance.env.clone()),
        class: state.attributes.get("class").cloned(),
        security_group: observed.security_group.map(|g| g.0),
        parameter_group: state.attributes.get("parameter_group").cloned(),
        alarms: observed.alarms.alarms.keys().cloned().collect(),
        alarm_topic: observed.alarms.topic_arn.clone(),
        region: Some(region.to_string()),
    })
}

pub(crate) fn attribute(
    name: &str,
    from: Option<String>,
    to: String,
    when: ChangeWhen,
) -> AttributeChange {
    AttributeChange {
        name: name.into(),
        from,
        to,
        when,
    }
}

/// Static parameters take effect on the next reboot; the rest at once.
pub(crate) fn parameter_timing(name: &str) -> ChangeWhen {
    const STATIC: &[&str] = &[
        "shared_preload_libraries",
        "max_connections",
        "shared_buffers",
        "max_worker_processes",
        "wal_level",
        "max_wal_senders",
    ];
    if STATIC.contains(&name) {
        ChangeWhen::OnReboot
    } else {
        ChangeWhen::Immediately
    }
}
