//! Apply: exactly the planned changes, resource by resource (security group, parameter group,
//! subnet group, secret, the target and its members, alarms), then wait for `available` with a
//! progress line. Each step is said as it is done; a failure names what was already done, and
//! since everything is looked up by name a rerun finds it and completes the rest. The
//! generated master password travels in the API request body only: never on a command line,
//! never printed, kept in Secrets Manager.

use crate::aws::observe::{self, SPEC_RULE};
use crate::aws::plan;
use crate::aws::progress::Progress;
use crate::aws::secrets::read_secret_password;
use crate::aws::spec::InstanceSpec;
use crate::aws::state::Observed;
use crate::aws::target::{self, Modify, New, On};
use crate::aws::{alarms, describe, Aws};
use dbtools::contract::{ChangeWhen, PlanAction, PlanResource};
use dbtools::contract::{Instance, PlannedChange};
use dbtools::{secrets, Error, Result};

/// ModifyDBParameterGroup and ModifyDBClusterParameterGroup take at most 20 parameters a call.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBParameterGroup.html>
const PARAMETERS_PER_CALL: usize = 20;

fn action_of(planned: &[PlannedChange], resource: PlanResource) -> Option<&PlannedChange> {
    planned
        .iter()
        .find(|c| c.resource == resource && c.action != PlanAction::None)
}

/// Makes one env's planned changes and waits for its target; returns it as it now is. On a
/// failure the error names what was already done.
pub(crate) fn apply(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &Observed,
    planned: &[PlannedChange],
    progress: &mut Progress,
) -> Result<Instance> {
    let spec = &observed.settled(spec);
    // What AWS would refuse, and what cannot change in place, is refused before any call, so
    // nothing is half done.
    plan::refusal(spec, observed, planned).map_err(Error::BadInput)?;
    for change in planned
        .iter()
        .filter(|c| c.resource == PlanResource::DbInstance || c.resource == PlanResource::DbCluster)
    {
        refuse_fixed(spec, change)?;
    }
    apply_steps(On { aws, spec }, observed, planned, progress)
        .map_err(|error| progress.failure(error, "apply"))
}

/// Sets these parameters in the env's group, each as its planned timing says (`immediate` for
/// what takes effect at once, `pending-reboot` otherwise), at most 20 a call.
pub(crate) fn set_parameters(
    aws: &Aws,
    spec: &InstanceSpec,
    changes: &[dbtools::contract::AttributeChange],
    progress: &mut Progress,
) -> Result<()> {
    let target = target::of(spec);
    let parameters: Vec<aws_sdk_rds::types::Parameter> = changes
        .iter()
        .map(|a| {
            aws_sdk_rds::types::Parameter::builder()
                .parameter_name(&a.name)
                .parameter_value(&a.to)
                .apply_method(if a.when == ChangeWhen::Immediately {
                    aws_sdk_rds::types::ApplyMethod::Immediate
                } else {
                    aws_sdk_rds::types::ApplyMethod::PendingReboot
                })
                .build()
        })
        .collect();
    // "You can modify up to 20 parameters in a single request" (ModifyDBParameterGroup).
    for (batch, names) in parameters
        .chunks(PARAMETERS_PER_CALL)
        .zip(changes.chunks(PARAMETERS_PER_CALL))
    {
        progress.check_interrupt()?;
        aws.block_on(target.set_parameters(On { aws, spec }, batch.to_vec()))?;
        progress.did(format!(
            "set {} in {}",
            names
                .iter()
                .map(|a| format!("{}={}", a.name, a.to))
                .collect::<Vec<_>>()
                .join(", "),
            spec.parameter_group_name()
        ));
    }
    Ok(())
}

/// Waits until a cluster parameter group made by this apply is five minutes old before a new
/// cluster uses it: "After you create a DB cluster parameter group, you should wait at least 5
/// minutes before creating your first DB cluster that uses that DB cluster parameter group as
/// the default parameter group. This allows Amazon RDS to fully complete the create action"
/// (`RDSPROV_SETTLE_SECONDS` shortens it, for tests).
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBClusterParameterGroup.html>
fn settle_cluster_group(
    aws: &Aws,
    spec: &InstanceSpec,
    created: std::time::SystemTime,
    progress: &Progress,
) -> Result<()> {
    let settle = std::env::var("RDSPROV_SETTLE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .unwrap_or(std::time::Duration::from_secs(300));
    let what = format!(
        "cluster parameter group {} to settle (AWS advises 5 minutes before a new cluster uses it)",
        spec.parameter_group_name()
    );
    progress.wait_for(aws, &what, || async {
        let left = settle.saturating_sub(created.elapsed().unwrap_or_default());
        Ok((
            left.is_zero().then_some(()),
            format!("{}s left", left.as_secs()),
        ))
    })
}

/// The spec with the exact engine version the plan resolved (a major alone names none).
fn exact_version(spec: &InstanceSpec, change: &PlannedChange) -> InstanceSpec {
    let mut exact = spec.clone();
    if let Some(version) = change
        .attributes
        .iter()
        .find(|a| a.name == crate::aws::attributes::Name::EngineVersion.as_str())
    {
        exact.engine_version = version.to.clone();
    }
    exact
}

fn tags_ec2(spec: &InstanceSpec) -> Vec<aws_sdk_ec2::types::Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn ingress(sources: &[String]) -> aws_sdk_ec2::types::IpPermission {
    crate::aws::ingress::permission(sources, SPEC_RULE)
}

fn apply_steps(
    On { aws, spec }: On,
    observed: &Observed,
    planned: &[PlannedChange],
    progress: &mut Progress,
) -> Result<Instance> {
    let target = target::of(spec);
    // Security group: created with the spec's rules, or its spec rules brought in line.
    let mut group_id = observed
        .security_group
        .as_ref()
        .map(|group| group.id.clone());
    if action_of(planned, PlanResource::SecurityGroup).is_some() {
        let group = observed.security_group.clone().unwrap_or_default();
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
                progress.did(format!("created security group {id}"));
                id
            }
        };
        let missing: Vec<String> = group.missing(&spec.ingress).into_iter().cloned().collect();
        let extra: Vec<String> = group.extra(&spec.ingress).into_iter().cloned().collect();
        if !missing.is_empty() {
            progress.check_interrupt()?;
            aws.block_on(
                aws.ec2
                    .authorize_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(ingress(&missing))
                    .send(),
            )
            .map_err(|e| describe("adding ingress rules", e))?;
            progress.did(format!("allowed {} on 5432 in {id}", missing.join(", ")));
        }
        if !extra.is_empty() {
            progress.check_interrupt()?;
            aws.block_on(
                aws.ec2
                    .revoke_security_group_ingress()
                    .group_id(&id)
                    .ip_permissions(ingress(&extra))
                    .send(),
            )
            .map_err(|e| describe("removing ingress rules", e))?;
            progress.did(format!("removed {} from {id}", extra.join(", ")));
        }
        group_id = Some(id);
    }
    let group_id = group_id.unwrap_or_default();

    // Parameter group.
    let mut group_created = None;
    if let Some(change) = action_of(planned, PlanResource::ParameterGroup) {
        progress.check_interrupt()?;
        if change.action == PlanAction::Create {
            let created = aws.block_on(target.create_parameter_group(On { aws, spec }))?;
            progress.did(created);
            group_created = Some(std::time::SystemTime::now());
        }
        set_parameters(aws, spec, &change.attributes, progress)?;
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
                    .set_tags(Some(target::tags(spec)))
                    .send(),
            )
            .map_err(|e| describe("creating the DB subnet group", e))?;
            progress.did(format!("created DB subnet group {name}"));
        } else {
            aws.block_on(
                aws.rds
                    .modify_db_subnet_group()
                    .db_subnet_group_name(&name)
                    .set_subnet_ids(Some(spec.subnet_ids.clone()))
                    .send(),
            )
            .map_err(|e| describe("changing the DB subnet group", e))?;
            progress.did(format!(
                "set the subnets of {name} to {}",
                spec.subnet_ids.join(", ")
            ));
        }
    }

    // The master secret: generated here, stored before the instance uses it.
    let mut secret_arn = observed.secret_arn.clone();
    let mut new_password = None;
    let secret_change = action_of(planned, PlanResource::Secret).map(|c| c.action);
    if secret_change == Some(PlanAction::Modify) {
        progress.check_interrupt()?;
        aws.block_on(
            aws.secrets
                .restore_secret()
                .secret_id(spec.secret_name())
                .send(),
        )
        .map_err(|e| describe("restoring the master secret", e))?;
        progress.did(format!(
            "restored secret {} (it was scheduled for deletion)",
            spec.secret_name()
        ));
    }
    if secret_change == Some(PlanAction::Create) {
        progress.check_interrupt()?;
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
        progress.did(format!(
            "stored the master password in secret {}",
            spec.secret_name()
        ));
        new_password = Some(password);
    }

    // The target and its members. The master password is needed only to create one, or to
    // hand over a newly generated one.
    let creating = planned.iter().any(|c| {
        c.name == spec.id && c.action == PlanAction::Create && c.resource == target.resource()
    });
    let fresh = secret_change == Some(PlanAction::Create);
    let password = match (new_password, spec.rds_managed_password) {
        (_, true) => None,
        (Some(password), false) => Some(password),
        (None, false) if creating => Some(read_password(aws, spec)?),
        (None, false) => None,
    };
    progress.check_interrupt()?;
    match action_of(planned, target.resource()) {
        Some(change) if change.action == PlanAction::Create => {
            // Made now, or by an earlier run cut short (its tag says when).
            let created = match group_created {
                Some(created) => Some(created),
                None => aws
                    .block_on(target.group_created_at(aws, &spec.parameter_group_name()))?
                    .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)),
            };
            if let (Some(created), true) = (created, spec.is_aurora()) {
                settle_cluster_group(aws, spec, created, progress)?;
            }
            let exact = exact_version(spec, change);
            let created = aws.block_on(target.create(
                On { aws, spec: &exact },
                New {
                    group_id: &group_id,
                    password: password.as_deref(),
                },
            ))?;
            progress.did(created);
        }
        Some(change) => {
            aws.block_on(target.modify(
                On { aws, spec },
                Modify {
                    id: &spec.id,
                    changes: &change.attributes,
                    group_id: Some(&group_id),
                    password: password.as_deref().filter(|_| fresh),
                    // A major upgrade goes with its new family's parameter group, at once.
                    immediately: spec.apply_immediately
                        || crate::aws::attributes::crosses_major(&change.attributes),
                },
            ))?;
            progress.did(modified(spec, target.kind(), &spec.id, change));
        }
        None => {
            if let (Some(password), true) = (password.as_deref(), fresh) {
                // The secret was lost while the target lived: it gets the new password. An
                // instance takes it "asynchronously … as soon as possible" whatever
                // ApplyImmediately says (ModifyDBInstance, MasterUserPassword), and
                // ApplyImmediately would also apply every change waiting for the window. A
                // cluster too, says ModifyDBCluster's reference ("changing the master password,
                // [is] applied immediately—regardless of when you choose to apply them"), but
                // Aurora's user guide lets the API choose: with nothing pending ApplyImmediately
                // costs nothing and settles it; with pending changes they keep waiting.
                let cluster = target.resource() == PlanResource::DbCluster;
                let nothing_pending = observed
                    .target
                    .as_ref()
                    .is_some_and(|state| state.pending.is_empty());
                aws.block_on(target.modify(
                    On { aws, spec },
                    Modify {
                        id: &spec.id,
                        changes: &[],
                        group_id: None,
                        password: Some(password),
                        immediately: cluster && nothing_pending,
                    },
                ))
                .map_err(|e| e.context("setting the new master password"))?;
                progress.did(format!("set a new master password on {}", spec.id));
            }
        }
    }
    for change in planned.iter().filter(|c| {
        c.resource == PlanResource::DbInstance && c.name != spec.id && c.action != PlanAction::None
    }) {
        progress.check_interrupt()?;
        apply_member(aws, spec, observed, change, progress)?;
    }
    // Alarms name the instance only, so they can follow its creation without waiting for it.
    progress.check_interrupt()?;
    let (alarms, alarm_topic) = alarms::apply(aws, spec, &observed.alarms, planned, progress)?;
    let modified = planned.iter().any(|c| {
        c.action == PlanAction::Modify
            && (c.resource == target.resource() || c.resource == PlanResource::DbInstance)
    }) || fresh;
    let settle = if modified {
        Settle::AfterModify
    } else {
        Settle::Once
    };
    wait_available(aws, spec, progress, settle)?;
    // As it now is: the answer of describe calls, like `status`.
    let mut instance = observe::instance(aws, spec)?
        .ok_or_else(|| Error::Failed(format!("{} vanished while it was being applied", spec.id)))?;
    instance.alarms = alarms;
    instance.alarm_topic = alarm_topic;
    if let (Some(arn), true) = (secret_arn, instance.master_secret.reference.is_empty()) {
        instance.master_secret.reference = arn;
    }
    Ok(instance)
}

/// Creates, modifies or deletes one Aurora member as planned.
fn apply_member(
    aws: &Aws,
    spec: &InstanceSpec,
    observed: &Observed,
    change: &PlannedChange,
    progress: &mut Progress,
) -> Result<()> {
    let target = target::of(spec);
    match change.action {
        PlanAction::Create => {
            aws.block_on(target.create_member(On { aws, spec }, &spec.id, &change.name))?;
            progress.did(format!(
                "created {} instance {} in cluster {}",
                spec.class, change.name, spec.id
            ));
        }
        PlanAction::Delete => {
            // After a failover the reader we added may be the writer: deleting it would fail
            // over again, unplanned.
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
            aws.block_on(target.delete_member(aws, &change.name))?;
            progress.did(format!("deleted reader {} (Multi-AZ is off)", change.name));
        }
        _ => {
            aws.block_on(target.modify_member(
                On { aws, spec },
                Modify {
                    id: &change.name,
                    changes: &change.attributes,
                    group_id: None,
                    password: None,
                    immediately: spec.apply_immediately,
                },
            ))?;
            progress.did(modified(spec, "instance", &change.name, change));
        }
    }
    Ok(())
}

/// A planned change of something that cannot change in place (storage encryption) is refused
/// before any call, with the way out.
fn refuse_fixed(spec: &InstanceSpec, change: &PlannedChange) -> Result<()> {
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
fn modified(spec: &InstanceSpec, what: &str, id: &str, change: &PlannedChange) -> String {
    format!(
        "modified {what} {id}: {} ({})",
        change
            .attributes
            .iter()
            .map(|a| format!("{} → {}", a.name, a.to))
            .collect::<Vec<_>>()
            .join(", "),
        if spec.apply_immediately || crate::aws::attributes::crosses_major(&change.attributes) {
            "applied immediately"
        } else {
            "AWS applies size changes in the maintenance window"
        }
    )
}

fn read_password(aws: &Aws, spec: &InstanceSpec) -> Result<String> {
    read_secret_password(aws, &spec.secret_name())
}

/// How sure a wait must be that the target is ready.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// One ready read.
    Once,
    /// Two ready reads in a row: right after a modify, RDS can still answer the status from
    /// before it (`available`) until the change starts (`modifying`).
    AfterModify,
}

/// Waits until the target — with each member the spec asks for — is ready (a progress line
/// per poll on stderr).
pub(crate) fn wait_available(
    aws: &Aws,
    spec: &InstanceSpec,
    progress: &Progress,
    settle: Settle,
) -> Result<()> {
    let target = target::of(spec);
    let needed = if settle == Settle::AfterModify { 2 } else { 1 };
    let in_a_row = std::cell::Cell::new(0);
    progress.wait_for(aws, &spec.id, || async {
        let waiting = target.readiness(On { aws, spec }).await?;
        in_a_row.set(if waiting.is_none() {
            in_a_row.get() + 1
        } else {
            0
        });
        let done = in_a_row.get() >= needed;
        let status = waiting.unwrap_or_else(|| "ready, checking again".into());
        Ok((done.then_some(()), status))
    })
}

/// Waits until the listed instances are gone (members before their cluster).
pub(crate) fn wait_deleted(aws: &Aws, ids: &[String], progress: &Progress) -> Result<()> {
    progress.wait_for(
        aws,
        &format!("{} to be deleted", ids.join(", ")),
        || async {
            let mut left = Vec::new();
            for id in ids {
                if let Some(db) = target::instance::describe_instance(aws, id).await? {
                    left.push(format!("{id} {}", target::instance::status_of(&db)));
                }
            }
            Ok((left.is_empty().then_some(()), left.join(", ")))
        },
    )
}
