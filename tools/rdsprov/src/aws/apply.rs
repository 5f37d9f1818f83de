//! Apply: exactly the planned changes, resource by resource (security group, parameter group,
//! secret, instance), then wait for `available` with a progress line. A failure names what was
//! already done; everything is looked up by name, so a rerun finds it and completes the rest.
//! The generated master password travels in the API request body only: never on a command
//! line, never printed, kept in Secrets Manager.

use crate::aws::alarms;
use crate::aws::plan::{self, parameter_timing, Observed, SPEC_RULE};
use crate::aws::spec::InstanceSpec;
use crate::aws::{describe, Aws};
use dbtools::contract::{ChangeWhen, PlanAction, PlanResource};
use dbtools::contract::{Instance, PlannedChange, SecretRef};
use dbtools::{secrets, Error, Result};
use std::time::Duration;

/// What one env's apply did, and the instance as it now is.
pub(crate) struct Applied {
    pub changes: Vec<String>,
    pub instance: Instance,
}

fn action_of(planned: &[PlannedChange], resource: PlanResource) -> Option<&PlannedChange> {
    planned
        .iter()
        .find(|c| c.resource == resource && c.action != PlanAction::None)
}

pub(crate) fn apply(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &Observed,
    planned: &[PlannedChange],
    poll: Duration,
) -> Result<Applied> {
    // What cannot change in place is refused before any call, so nothing is half done.
    for change in planned
        .iter()
        .filter(|c| c.resource == PlanResource::DbInstance || c.resource == PlanResource::DbCluster)
    {
        refuse_fixed(spec, change)?;
    }
    let mut done: Vec<String> = Vec::new();
    match apply_steps(aws, spec, observed, planned, poll, &mut done) {
        Ok(instance) => Ok(Applied {
            changes: done,
            instance,
        }),
        Err(error) if done.is_empty() => Err(error),
        Err(error) => Err(partial_failure(spec, &done, error)),
    }
}

fn partial_failure(spec: &InstanceSpec, done: &[String], error: Error) -> Error {
    {
        let message = format!(
            "env {}: {} — already done: {}; rerun `rdsprov apply` to complete the rest",
            spec.env,
            error.message(),
            done.join("; ")
        );
        match error {
            Error::Unreachable(_) => Error::Unreachable(message),
            Error::BadInput(_) => Error::BadInput(message),
            Error::Interrupted(_) => Error::Interrupted(message),
            _ => Error::Failed(message),
        }
    }
}

fn tags_ec2(spec: &InstanceSpec) -> Vec<aws_sdk_ec2::types::Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn tags_rds(spec: &InstanceSpec) -> Vec<aws_sdk_rds::types::Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn ingress(sources: &[String]) -> aws_sdk_ec2::types::IpPermission {
    crate::aws::access::permission(sources, SPEC_RULE)
}

fn apply_steps(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &Observed,
    planned: &[PlannedChange],
    poll: Duration,
    done: &mut Vec<String>,
) -> Result<Instance> {
    // Security group: created with the spec's rules, or its spec rules brought in line.
    let mut group_id = observed.security_group.as_ref().map(|(id, _)| id.clone());
    if let Some(change) = action_of(planned, PlanResource::SecurityGroup) {
        let have: Vec<String> = observed
            .security_group
            .as_ref()
            .map(|(_, cidrs)| cidrs.clone())
            .unwrap_or_default();
        let id = match &group_id {
            Some(id) => id.clone(),
            None => {
                let created = aws
                    .block_on(
                        aws.ec2
                            .create_security_group()
                            .group_name(spec.security_group_name())
                            .description(format!(
                                "rdsprov: PostgreSQL access to {} (env {})",
                                spec.id, spec.env
                            ))
                            .vpc_id(&observed.vpc_id)
                            .tag_specifications(
                                aws_sdk_ec2::types::TagSpecification::builder()
                                    .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                                    .set_tags(Some(tags_ec2(spec)))
                                    .build(),
                            )
                            .send(),
                    )
                    .map_err(|e| describe("creating the security group", e))?;
                let id = created.group_id().unwrap_or_default().to_string();
                done.push(format!("created security group {id}"));
                id
            }
        };
        let missing: Vec<String> = spec
            .ingress
            .iter()
            .filter(|c| !have.contains(c))
            .cloned()
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|c| !spec.ingress.contains(c))
            .cloned()
            .collect();
        if !missing.is_empty() {
            aws.block_on(
                aws.ec2
                    .authorize_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(ingress(&missing))
                    .send(),
            )
            .map_err(|e| describe("adding ingress rules", e))?;
            done.push(format!("allowed {} on 5432 in {id}", missing.join(", ")));
        }
        if !extra.is_empty() {
            aws.block_on(
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(ingress(&extra))
                    .send(),
            )
            .map_err(|e| describe("removing ingress rules", e))?;
            done.push(format!("removed {} from {id}", extra.join(", ")));
        }
        let _ = change;
        group_id = Some(id);
    }
    let group_id = group_id.unwrap_or_default();

    // Parameter group.
    if let Some(change) = action_of(planned, PlanResource::ParameterGroup) {
        if change.action == PlanAction::Create && spec.is_aurora() {
            crate::aws::aurora::create_parameter_group(aws, spec)?;
            done.push(format!(
                "created cluster parameter group {}",
                spec.parameter_group_name()
            ));
        } else if change.action == PlanAction::Create {
            aws.block_on(
                aws.rds
                    .create_db_parameter_group()
                    .db_parameter_group_name(spec.parameter_group_name())
                    .db_parameter_group_family(spec.parameter_group_family())
                    .description(format!(
                        "rdsprov: parameters of {} (env {})",
                        spec.id, spec.env
                    ))
                    .set_tags(Some(tags_rds(spec)))
                    .send(),
            )
            .map_err(|e| describe("creating the parameter group", e))?;
            done.push(format!(
                "created parameter group {}",
                spec.parameter_group_name()
            ));
        }
        let parameters: Vec<aws_sdk_rds::types::Parameter> = change
            .attributes
            .iter()
            .map(|a| {
                aws_sdk_rds::types::Parameter::builder()
                    .parameter_name(&a.name)
                    .parameter_value(&a.to)
                    .apply_method(if parameter_timing(&a.name) == ChangeWhen::OnReboot {
                        aws_sdk_rds::types::ApplyMethod::PendingReboot
                    } else {
                        aws_sdk_rds::types::ApplyMethod::Immediate
                    })
                    .build()
            })
            .collect();
        if !parameters.is_empty() {
            if spec.is_aurora() {
                crate::aws::aurora::set_parameters(aws, spec, parameters)?;
            } else {
                aws.block_on(
                    aws.rds
                        .modify_db_parameter_group()
                        .db_parameter_group_name(spec.parameter_group_name())
                        .set_parameters(Some(parameters))
                        .send(),
                )
                .map_err(|e| describe("setting parameters", e))?;
            }
            done.push(format!(
                "set {} in {}",
                change
                    .attributes
                    .iter()
                    .map(|a| format!("{}={}", a.name, a.to))
                    .collect::<Vec<_>>()
                    .join(", "),
                spec.parameter_group_name()
            ));
        }
    }

    // The DB subnet group of a named VPC.
    if let (Some(change), Some(name)) = (
        action_of(planned, PlanResource::DbSubnetGroup),
        spec.subnet_group_name(),
    ) {
        if change.action == PlanAction::Create {
            aws.block_on(
                aws.rds
                    .create_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .db_subnet_group_description(format!(
                        "rdsprov: subnets of {} (env {})",
                        spec.id, spec.env
                    ))
                    .set_subnet_ids(Some(spec.subnet_ids.clone()))
                    .set_tags(Some(tags_rds(spec)))
                    .send(),
            )
            .map_err(|e| describe("creating the DB subnet group", e))?;
            done.push(format!("created DB subnet group {name}"));
        } else {
            aws.block_on(
                aws.rds
                    .modify_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .set_subnet_ids(Some(spec.subnet_ids.clone()))
                    .send(),
            )
            .map_err(|e| describe("changing the DB subnet group", e))?;
            done.push(format!(
                "set the subnets of {name} to {}",
                spec.subnet_ids.join(", ")
            ));
        }
    }

    // The master secret: generated here, stored before the instance uses it.
    let mut secret_arn = observed.secret_arn.clone();
    let mut new_password = None;
    if action_of(planned, PlanResource::Secret).is_some() {
        let password = secrets::generate_password()?;
        let value = serde_json::json!({
            "username": spec.master_user,
            "password": password,
            "engine": "postgres",
            "dbInstanceIdentifier": spec.id,
        })
        .to_string();
        let tags: Vec<aws_sdk_secretsmanager::types::Tag> = spec
            .tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .collect();
        let created = aws
            .block_on(
                aws.secrets
                    .create_secret()
                    .name(spec.secret_name())
                    .description(format!("rdsprov: master password of {}", spec.id))
                    .secret_string(value)
                    .set_tags(Some(tags))
                    .send(),
            )
            .map_err(|e| describe("storing the master secret", e))?;
        secret_arn = created.arn().map(str::to_string);
        done.push(format!(
            "stored the master password in secret {}",
            spec.secret_name()
        ));
        new_password = Some(password);
    }

    // The instance, or the Aurora cluster and its members. The master password is needed
    // only to create one, or to hand over a newly generated one.
    let creating = planned.iter().any(|c| {
        c.name == spec.id && c.action == PlanAction::Create && c.resource != PlanResource::Secret
    });
    let password = match (new_password, spec.rds_managed_password) {
        (_, true) => None,
        (Some(password), false) => Some(password),
        (None, false) if creating => Some(read_password(aws, spec)?),
        (None, false) => None,
    };
    let new_password = action_of(planned, PlanResource::Secret).is_some();
    if spec.is_aurora() {
        crate::aws::aurora::apply(
            aws,
            spec,
            observed,
            planned,
            &group_id,
            MasterPassword {
                value: password.as_deref(),
                fresh: new_password,
            },
            done,
        )?;
    } else {
        apply_instance(
            aws,
            spec,
            action_of(planned, PlanResource::DbInstance),
            &group_id,
            password.as_deref(),
            new_password,
            done,
        )?;
    }
    // Alarms name the instance only, so they can follow its creation without waiting for it.
    let alarms = alarms::apply(aws, spec, &observed.alarms, planned, done)?;
    let alarm_topic = match (&spec.alarms, &observed.alarms.topic_arn) {
        (None, _) => None,
        (Some(_), Some(arn)) => Some(arn.clone()),
        (Some(_), None) => done
            .iter()
            .find_map(|d| d.strip_prefix("created SNS topic "))
            .map(str::to_string),
    };
    wait_available(aws, spec, poll)?;
    // As it now is: the answer of describe calls, like `status`.
    let mut instance = plan::record(&aws.region, spec, plan::observe(aws, spec)?)
        .ok_or_else(|| Error::Failed(format!("{} vanished while it was being applied", spec.id)))?;
    instance.alarms = alarms;
    instance.alarm_topic = alarm_topic;
    if let (Some(arn), true) = (secret_arn, instance.master_secret.reference.is_empty()) {
        instance.master_secret.reference = arn;
    }
    Ok(instance)
}

/// The master password an apply hands to RDS: `value` to create an instance or cluster with
/// (None when RDS manages it), `fresh` when it was generated just now and must be set on one
/// that exists.
#[derive(Clone, Copy)]
pub(crate) struct MasterPassword<'a> {
    pub value: Option<&'a str>,
    pub fresh: bool,
}

/// Creates or modifies the RDS instance as planned.
fn apply_instance(
    aws: &Aws,
    spec: &InstanceSpec,
    change: Option<&PlannedChange>,
    group_id: &str,
    password: Option<&str>,
    new_password: bool,
    done: &mut Vec<String>,
) -> Result<()> {
    match change {
        Some(change) if change.action == PlanAction::Create => {
            let mut request = aws
                .rds
                .create_db_instance()
                .db_instance_identifier(&spec.id)
                .engine(&spec.engine)
                .engine_version(&spec.engine_version)
                .db_instance_class(&spec.class)
                .allocated_storage(spec.storage_gb)
                .storage_type("gp3")
                .storage_encrypted(spec.encrypted)
                .multi_az(spec.multi_az)
                .master_username(&spec.master_user)
                .vpc_security_group_ids(group_id)
                .db_parameter_group_name(spec.parameter_group_name())
                .backup_retention_period(spec.backup_retention_days)
                .deletion_protection(spec.deletion_protection)
                .publicly_accessible(spec.publicly_accessible)
                .enable_iam_database_authentication(spec.iam_auth)
                .enable_performance_insights(spec.performance_insights)
                .copy_tags_to_snapshot(true)
                .set_tags(Some(tags_rds(spec)))
                .set_max_allocated_storage(spec.max_storage_gb)
                .set_preferred_backup_window(spec.backup_window.clone())
                .set_preferred_maintenance_window(spec.maintenance_window.clone())
                .set_ca_certificate_identifier(spec.ca_certificate.clone())
                .set_db_subnet_group_name(spec.subnet_group_name())
                .set_monitoring_interval(spec.monitoring.as_ref().map(|m| m.0))
                .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1));
            request = match password {
                Some(password) => request.master_user_password(password),
                None => request.manage_master_user_password(true),
            };
            aws.block_on(request.send())
                .map_err(|e| describe("creating the instance", e))?;
            done.push(format!(
                "created instance {} ({}, PostgreSQL {})",
                spec.id, spec.class, spec.engine_version
            ));
        }
        Some(change) => {
            let mut request = aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(&spec.id)
                .apply_immediately(spec.apply_immediately);
            for attribute in &change.attributes {
                let to = attribute.to.as_str();
                let flag = to == "true";
                request = match attribute.name.as_str() {
                    "class" => request.db_instance_class(to),
                    "engine_version" => request.engine_version(to),
                    "storage_gb" => {
                        request.allocated_storage(to.parse().unwrap_or(spec.storage_gb))
                    }
                    "max_storage_gb" => request.set_max_allocated_storage(spec.max_storage_gb),
                    "multi_az" => request.multi_az(flag),
                    "backup_retention_days" => {
                        request.backup_retention_period(spec.backup_retention_days)
                    }
                    "backup_window" => request.preferred_backup_window(to),
                    "maintenance_window" => request.preferred_maintenance_window(to),
                    "deletion_protection" => request.deletion_protection(flag),
                    "publicly_accessible" => request.publicly_accessible(flag),
                    "iam_auth" => request.enable_iam_database_authentication(flag),
                    "performance_insights" => request.enable_performance_insights(flag),
                    "ca_certificate" => request.ca_certificate_identifier(to),
                    "monitoring_interval" => request
                        .monitoring_interval(to.parse().unwrap_or(0))
                        .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1)),
                    "parameter_group" => request.db_parameter_group_name(to),
                    "security_groups" => request.vpc_security_group_ids(group_id),
                    _ => request,
                };
            }
            if let (Some(password), true) = (password, new_password) {
                request = request.master_user_password(password);
            }
            aws.block_on(request.send())
                .map_err(|e| describe("modifying the instance", e))?;
            done.push(modified(spec, "instance", &spec.id, change));
        }
        None => {
            if let (Some(password), true) = (password, new_password) {
                // The secret was lost while the instance lived: it gets the new password.
                aws.block_on(
                    aws.rds
                        .modify_db_instance()
                        .db_instance_identifier(&spec.id)
                        .master_user_password(password)
                        .apply_immediately(true)
                        .send(),
                )
                .map_err(|e| describe("setting the new master password", e))?;
                done.push(format!("set a new master password on {}", spec.id));
            }
        }
    }
    Ok(())
}

/// A planned change of something that cannot change in place (storage encryption) is refused
/// before any call, with the way out.
pub(crate) fn refuse_fixed(spec: &InstanceSpec, change: &PlannedChange) -> Result<()> {
    match change
        .attributes
        .iter()
        .find(|a| a.when == ChangeWhen::CannotChangeInPlace)
    {
        Some(fixed) => Err(Error::BadInput(format!(
            "env {}: {} of {} cannot change in place ({} → {}): restore a snapshot into a new instance with the new setting",
            spec.env,
            fixed.name,
            spec.id,
            fixed.from.clone().unwrap_or_default(),
            fixed.to
        ))),
        None => Ok(()),
    }
}

/// What a modify did, for the list of changes: `modified instance X: class → …`.
pub(crate) fn modified(
    spec: &InstanceSpec,
    what: &str,
    id: &str,
    change: &PlannedChange,
) -> String {
    format!(
        "modified {what} {id}: {} ({})",
        change
            .attributes
            .iter()
            .map(|a| format!("{} → {}", a.name, a.to))
            .collect::<Vec<_>>()
            .join(", "),
        if spec.apply_immediately {
            "applied immediately"
        } else {
            "AWS applies size changes in the maintenance window"
        }
    )
}

fn read_password(aws: &Aws, spec: &InstanceSpec) -> Result<String> {
    read_secret_password(aws, &spec.secret_name())
}

/// The password in a Secrets Manager secret of RDS's JSON shape (ours, or one RDS manages).
pub(crate) fn read_secret_password(aws: &Aws, secret_id: &str) -> Result<String> {
    let answer = aws
        .block_on(aws.secrets.get_secret_value().secret_id(secret_id).send())
        .map_err(|e| describe("reading the master secret", e))?;
    let secret = SecretRef {
        source: dbtools::contract::SecretSource::AwsSm,
        reference: secret_id.to_string(),
    };
    Ok(secrets::parse_secret_string(&secret, answer.secret_string().unwrap_or_default())?.password)
}

/// Waits until the instance — or the Aurora cluster and its members — is `available` (a
/// progress line per poll on stderr).
pub(crate) fn wait_available(aws: &Aws, spec: &InstanceSpec, poll: Duration) -> Result<()> {
    if spec.is_aurora() {
        return crate::aws::aurora::wait_available(aws, spec, poll);
    }
    wait_instance(aws, spec, poll)
}

fn wait_instance(aws: &Aws, spec: &InstanceSpec, poll: Duration) -> Result<()> {
    crate::aws::wait_for(aws, &spec.id, poll, || async {
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
        let status = db.db_instance_status().unwrap_or("unknown").to_string();
        if matches!(
            status.as_str(),
            "failed" | "incompatible-parameters" | "incompatible-network" | "storage-full"
        ) {
            return Err(Error::Failed(format!(
                "instance {} is {status}: see the RDS console's events for it",
                spec.id
            )));
        }
        if matches!(
            status.as_str(),
            "stopped" | "inaccessible-encryption-credentials"
        ) {
            return Err(Error::Failed(format!(
                "instance {} is {status}: it will not become available by itself{}",
                spec.id,
                if status == "stopped" {
                    " — start it (aws rds start-db-instance) and wait again"
                } else {
                    ""
                }
            )));
        }
        Ok(((status == "available").then_some(()), status))
    })
}
