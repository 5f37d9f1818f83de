//! Plan: the spec and an observation in, the changes out — create, modify (which attributes,
//! and when AWS applies each), delete, or nothing — in the order `apply` makes them. Pure:
//! no AWS call, so every rule is a unit test below.

use crate::aws::alarms;
use crate::aws::attributes::{Attribute, Timing};
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Attributes, Observed, TargetState};
use crate::aws::target;
use dbtools::contract::{AttributeChange, ChangeWhen, PlanAction, PlanResource, PlannedChange};

/// The security group membership, planned beside the table's attributes: the target must be
/// in the env's group.
pub(crate) const SECURITY_GROUPS: &str = "security_groups";

/// The changes for one env, in the order `apply` makes them.
pub(crate) fn plan(spec: &InstanceSpec, observed: &Observed) -> Vec<PlannedChange> {
    let change = |resource, name: &str, action, attributes| PlannedChange {
        env: spec.env.clone(),
        resource,
        name: name.to_string(),
        action,
        attributes,
    };
    let mut changes = Vec::new();

    let mut wanted_sources = spec.ingress.clone();
    wanted_sources.sort();
    let ingress = |from: Option<String>| {
        vec![attribute(
            "ingress 5432",
            from,
            wanted_sources.join(", "),
            ChangeWhen::Immediately,
        )]
    };
    changes.push(match &observed.security_group {
        None => change(
            PlanResource::SecurityGroup,
            &spec.security_group_name(),
            PlanAction::Create,
            ingress(None),
        ),
        Some(group) => {
            let mut have = group.spec_sources.clone();
            have.sort();
            let attributes = if have == wanted_sources {
                Vec::new()
            } else {
                ingress(Some(have.join(", ")))
            };
            change(
                PlanResource::SecurityGroup,
                &group.id,
                modify_or_none(&attributes),
                attributes,
            )
        }
    });

    if let Some(name) = spec.subnet_group_name() {
        let wanted = spec.subnet_ids.join(", ");
        let subnets = |from| {
            vec![attribute(
                "subnets",
                from,
                wanted.clone(),
                ChangeWhen::Immediately,
            )]
        };
        changes.push(match &observed.subnet_group {
            None => change(
                PlanResource::DbSubnetGroup,
                &name,
                PlanAction::Create,
                subnets(None),
            ),
            Some(have) if *have == spec.subnet_ids => change(
                PlanResource::DbSubnetGroup,
                &name,
                PlanAction::None,
                Vec::new(),
            ),
            Some(have) => change(
                PlanResource::DbSubnetGroup,
                &name,
                PlanAction::Modify,
                subnets(Some(have.join(", "))),
            ),
        });
    }

    let parameters: Vec<AttributeChange> = spec
        .parameters
        .iter()
        .filter(|(k, v)| observed.parameters.as_ref().and_then(|have| have.get(*k)) != Some(v))
        .map(|(k, v)| {
            let from = observed
                .parameters
                .as_ref()
                .and_then(|have| have.get(k).cloned());
            attribute(k, from, v.clone(), parameter_timing(k))
        })
        .collect();
    let action = match &observed.parameters {
        None => PlanAction::Create,
        Some(_) => modify_or_none(&parameters),
    };
    changes.push(change(
        PlanResource::ParameterGroup,
        &spec.parameter_group_name(),
        action,
        parameters,
    ));

    if !spec.rds_managed_password {
        let action = if observed.secret_arn.is_some() {
            PlanAction::None
        } else {
            PlanAction::Create
        };
        changes.push(change(
            PlanResource::Secret,
            &spec.secret_name(),
            action,
            Vec::new(),
        ));
    }

    let target = target::of(spec);
    let own = target.attributes();
    changes.push(match &observed.target {
        None => change(
            target.resource(),
            &spec.id,
            PlanAction::Create,
            differences(spec, &own, None),
        ),
        Some(state) => {
            let mut attributes = differences(spec, &own, Some(&state.attributes));
            attributes.extend(security_group_change(observed, state));
            change(
                target.resource(),
                &spec.id,
                modify_or_none(&attributes),
                attributes,
            )
        }
    });
    let of_members = target.member_attributes();
    for id in spec.member_ids() {
        changes.push(match observed.members.iter().find(|m| m.id == id) {
            None => change(
                PlanResource::DbInstance,
                &id,
                PlanAction::Create,
                differences(spec, &of_members, None),
            ),
            Some(member) => {
                let attributes = differences(spec, &of_members, Some(&member.attributes));
                change(
                    PlanResource::DbInstance,
                    &id,
                    modify_or_none(&attributes),
                    attributes,
                )
            }
        });
    }
    // The reader we added for Multi-AZ goes when Multi-AZ is turned off; members added by
    // hand (other names) are not ours to remove.
    let reader = format!("{}-2", spec.id);
    if spec.is_aurora() && !spec.multi_az && observed.members.iter().any(|m| m.id == reader) {
        changes.push(change(
            PlanResource::DbInstance,
            &reader,
            PlanAction::Delete,
            Vec::new(),
        ));
    }
    changes.extend(alarms::plan(spec, &observed.alarms));
    changes
}

fn modify_or_none(attributes: &[AttributeChange]) -> PlanAction {
    if attributes.is_empty() {
        PlanAction::None
    } else {
        PlanAction::Modify
    }
}

/// The wanted attributes that differ from what is — all of them, applied at creation, when
/// nothing is there yet. Attributes the spec leaves to AWS are not compared.
fn differences(
    spec: &InstanceSpec,
    rows: &[(&'static Attribute, Timing)],
    have: Option<&Attributes>,
) -> Vec<AttributeChange> {
    rows.iter()
        .filter_map(|(row, timing)| {
            let to = (row.wanted)(spec)?;
            let Some(have) = have else {
                return Some(attribute(
                    row.name.as_str(),
                    None,
                    to,
                    ChangeWhen::Immediately,
                ));
            };
            let from = have.get(&row.name);
            if from.is_some_and(|from| row.drift.in_line(from, &to)) {
                return None;
            }
            Some(attribute(
                row.name.as_str(),
                from.cloned(),
                to,
                timing.when(spec),
            ))
        })
        .collect()
}

/// The env's security group, when the target is not in it.
fn security_group_change(observed: &Observed, state: &TargetState) -> Option<AttributeChange> {
    let group = observed.security_group.as_ref()?;
    (!state.security_groups.contains(&group.id)).then(|| {
        attribute(
            SECURITY_GROUPS,
            Some(state.security_groups.join(", ")),
            group.id.clone(),
            ChangeWhen::Immediately,
        )
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
