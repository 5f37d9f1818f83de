//! Plan: the spec and an observation in, the changes out — create, modify (which attributes,
//! and when AWS applies each), delete, or nothing — in the order `apply` makes them. Pure:
//! no AWS call, so every rule is a unit test below.

use crate::aws::alarms;
use crate::aws::attributes::{Attribute, Name, Timing};
use crate::aws::offer::{self, ApplyType};
use crate::aws::rules;
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Attributes, Observed, TargetState};
use crate::aws::target;
use dbtools::contract::{AttributeChange, ChangeWhen, PlanAction, PlanResource, PlannedChange};

/// The security group membership, planned beside the table's attributes: the target must be
/// in the env's group.
pub(crate) const SECURITY_GROUPS: &str = "security_groups";

/// The changes for one env, in the order `apply` makes them.
pub(crate) fn plan(spec: &InstanceSpec, observed: &Observed) -> Vec<PlannedChange> {
    let spec = &observed.settled(spec);
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
            let in_line = group.missing(&wanted_sources).is_empty()
                && group.extra(&wanted_sources).is_empty();
            let attributes = if in_line {
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
            attribute(k, from, v.clone(), parameter_timing(k, observed))
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
        // A secret scheduled for deletion still answers DescribeSecret but its value cannot be
        // read: it is restored (RestoreSecret), keeping the password the target has.
        // https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RestoreSecret.html
        let (action, attributes) =
            match (&observed.secret_arn, observed.secret_scheduled_for_deletion) {
                (None, _) => (PlanAction::Create, Vec::new()),
                (Some(_), true) => (
                    PlanAction::Modify,
                    vec![attribute(
                        "deletion",
                        Some("scheduled".into()),
                        "cancelled (RestoreSecret)".into(),
                        ChangeWhen::Immediately,
                    )],
                ),
                (Some(_), false) => (PlanAction::None, Vec::new()),
            };
        changes.push(change(
            PlanResource::Secret,
            &spec.secret_name(),
            action,
            attributes,
        ));
    }

    let target = target::of(spec);
    let own = target.attributes();
    changes.push(match &observed.target {
        None => change(
            target.resource(),
            &spec.id,
            PlanAction::Create,
            exact_version(spec, observed, differences(spec, &own, None)),
        ),
        Some(state) => {
            let mut attributes = exact_version(
                spec,
                observed,
                differences(spec, &own, Some((&state.attributes, &state.pending))),
            );
            if crate::aws::attributes::crosses_major(&attributes) {
                // The engine and its new family's parameter group change together, at once, and
                // ApplyImmediately takes the rest of that modify (and what was pending) with it.
                for (name, value) in &state.pending {
                    if !attributes.iter().any(|a| a.name == name.as_str()) {
                        let from = state.attributes.get(name).cloned();
                        attributes.push(attribute(
                            name.as_str(),
                            from,
                            value.clone(),
                            ChangeWhen::Immediately,
                        ));
                    }
                }
                for change in &mut attributes {
                    if change.when == ChangeWhen::MaintenanceWindow
                        || change.name == Name::ParameterGroup.as_str()
                    {
                        change.when = ChangeWhen::Immediately;
                    }
                }
            }
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
                let attributes = differences(
                    spec,
                    &of_members,
                    Some((&member.attributes, &member.pending)),
                );
                change(
                    PlanResource::DbInstance,
                    &id,
                    modify_or_none(&attributes),
                    attributes,
                )
            }
        });
    }
    for id in target.surplus_members(spec, &observed.members) {
        changes.push(change(
            PlanResource::DbInstance,
            &id,
            PlanAction::Delete,
            Vec::new(),
        ));
    }
    changes.extend(alarms::plan(spec, &observed.alarms));
    changes
}

/// What AWS would refuse of these changes, said before any call: a master user it does not
/// take, checked when the target is created (the only time it is sent, so an existing env with
/// an older name keeps working), and an autoscaling limit under 110% of the storage the
/// instance has now (autoscaling may have grown it past the spec).
pub(crate) fn refusal(
    spec: &InstanceSpec,
    observed: &Observed,
    planned: &[PlannedChange],
) -> Result<(), String> {
    let spec = &observed.settled(spec);
    let target = target::of(spec);
    let of_target =
        |change: &&PlannedChange| change.resource == target.resource() && change.name == spec.id;
    let at = |rule: String| format!("env {}: {rule}", spec.env);
    if planned
        .iter()
        .filter(of_target)
        .any(|c| c.action == PlanAction::Create)
    {
        rules::master_user(&spec.master_user, spec.is_aurora()).map_err(at)?;
    }
    let changed = |name: Name| {
        planned
            .iter()
            .filter(of_target)
            .flat_map(|c| &c.attributes)
            .any(|a| a.name == name.as_str())
    };
    if let Some(types) = &observed.apply_types {
        let unknown: Vec<&str> = planned
            .iter()
            .filter(|c| c.resource == PlanResource::ParameterGroup)
            .flat_map(|c| &c.attributes)
            .map(|a| a.name.as_str())
            .filter(|name| !types.contains_key(*name))
            .collect();
        if !unknown.is_empty() {
            return Err(at(format!(
                "parameters {}: not modifiable parameters of {} (AWS lists the family's parameters with DescribeEngineDefault{}Parameters)",
                unknown.join(", "),
                spec.parameter_group_family(),
                if spec.is_aurora() { "Cluster" } else { "" }
            )));
        }
    }
    let have_major = observed.target.as_ref().and_then(|state| {
        state
            .get(Name::EngineVersion)
            .split('.')
            .next()?
            .parse::<u32>()
            .ok()
    });
    let wanted_major = offer::major(&spec.engine_version).parse::<u32>().ok();
    if let (Some(have), Some(wanted)) = (have_major, wanted_major) {
        if wanted < have {
            return Err(at(format!(
                "engine_version {}: {} {} runs PostgreSQL {have}, and RDS never goes back a major: restore a snapshot taken before the upgrade into a new {} (rdsprov restore --as), or keep engine_version at {have}",
                spec.engine_version,
                target.kind(),
                spec.id,
                target.kind()
            )));
        }
    }
    if let Some(offer) = &observed.offer {
        let have = observed
            .target
            .as_ref()
            .map(|state| state.get(Name::EngineVersion));
        if changed(Name::EngineVersion) {
            let version = offer::resolve(spec, offer).map_err(at)?;
            offer::check_capacity(spec, offer, &version).map_err(at)?;
        }
        // A new range applies at once: until a version change waiting for the window comes,
        // the cluster runs the version it has, which must take it too.
        let version_now = planned
            .iter()
            .filter(of_target)
            .flat_map(|c| &c.attributes)
            .any(|a| a.name == Name::EngineVersion.as_str() && a.when == ChangeWhen::Immediately);
        if let (Some(have), false) = (have.as_deref(), version_now) {
            if changed(Name::MinAcu) || changed(Name::MaxAcu) {
                offer::check_capacity(spec, offer, have).map_err(at)?;
            }
        }
        if changed(Name::Class) && !changed(Name::EngineVersion) {
            // A new class on the version the instance keeps must be one AWS offers on it.
            let have = have.unwrap_or_default();
            if !offer.versions.contains(&have) {
                return Err(at(format!(
                    "class {}: AWS offers it for {} {} only (DescribeOrderableDBInstanceOptions), not on {have}: raise engine_version too, or keep the class",
                    spec.class,
                    spec.engine,
                    offer.versions.join(", ")
                )));
            }
        }
    }
    let sets_limit = planned
        .iter()
        .filter(of_target)
        .flat_map(|c| &c.attributes)
        .any(|a| a.name == Name::MaxStorageGb.as_str());
    let have = observed
        .target
        .as_ref()
        .and_then(|state| state.get(Name::StorageGb).parse::<i32>().ok());
    if let (true, Some(have), Some(max)) = (sets_limit, have, spec.max_storage_gb) {
        rules::max_storage(have, max).map_err(at)?;
    }
    Ok(())
}

fn modify_or_none(attributes: &[AttributeChange]) -> PlanAction {
    if attributes.is_empty() {
        PlanAction::None
    } else {
        PlanAction::Modify
    }
}

/// The wanted attributes that differ from what is — all of them, applied at creation, when
/// nothing is there yet. Attributes the spec leaves to AWS are not compared, and one a modify
/// already left for the maintenance window (PendingModifiedValues) at the wanted value is no
/// change: sending it again would change nothing.
fn differences(
    spec: &InstanceSpec,
    rows: &[(&'static Attribute, Timing)],
    have: Option<(&Attributes, &Attributes)>,
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
            let (have, pending) = have;
            let from = have.get(&row.name);
            let in_line = |value: Option<&String>| value.is_some_and(|v| row.drift.in_line(v, &to));
            // What the target will have once the window comes: the pending value, if any.
            let will_have = pending.get(&row.name).or(from);
            if in_line(will_have) {
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

/// A version to create or move to is the exact one AWS offers for the spec's `engine_version`
/// (the newest minor of a major alone); `refusal` says when AWS offers none.
fn exact_version(
    spec: &InstanceSpec,
    observed: &Observed,
    mut attributes: Vec<AttributeChange>,
) -> Vec<AttributeChange> {
    let exact = observed
        .offer
        .as_ref()
        .and_then(|offer| offer::resolve(spec, offer).ok());
    for change in &mut attributes {
        if let (true, Some(exact)) = (change.name == Name::EngineVersion.as_str(), &exact) {
            change.to = exact.clone();
        }
    }
    attributes
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

/// A static parameter takes effect on the next reboot, a dynamic one at once: its ApplyType as
/// AWS reports it (AWS refuses `immediate` for a static one). One AWS has not said is planned
/// for the reboot, the safe side; `refusal` refuses a name the family does not have.
pub(crate) fn parameter_timing(name: &str, observed: &Observed) -> ChangeWhen {
    match observed
        .apply_types
        .as_ref()
        .and_then(|types| types.get(name))
    {
        Some(ApplyType::Dynamic) => ChangeWhen::Immediately,
        Some(ApplyType::Static) | None => ChangeWhen::OnReboot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::attributes::{OnAurora, TABLE};
    use crate::aws::spec::{self, InstanceSpec};
    use crate::aws::state::{Member, SecurityGroup};
    use dbtools::contract::ChangeWhen::{
        CannotChangeInPlace as Fixed, Immediately as Now, MaintenanceWindow as Window,
        OnReboot as Reboot,
    };

    /// Every optional attribute set, so each one is planned: what both kinds share, then each
    /// kind's own.
    const SHARED: &str = r#"
backup_window = "03:00-04:00"
maintenance_window = "sun:05:00-sun:06:00"
ca_certificate = "rds-ca-rsa2048-g1"
vpc_id = "vpc-1"
subnet_ids = ["subnet-a", "subnet-b"]
monitoring_interval = 60
monitoring_role_arn = "arn:aws:iam::123456789012:role/rds-monitoring"
"#;
    const INSTANCE: &str = r#"
class = "db.t4g.small"
storage_gb = 50
max_storage_gb = 100
ingress = ["203.0.113.7/32", "sg-0abc"]
parameters = { log_min_duration_statement = "500", shared_preload_libraries = "pg_stat_statements" }
"#;
    const CLUSTER: &str = r#"
engine = "aurora-postgresql"
min_acu = 0.5
max_acu = 8
multi_az = true
"#;

    /// (attribute, where it is planned, when AWS applies a change of it on a non-dev env):
    /// written out here rather than read from the table, so a wrong row fails a case.
    const INSTANCE_CASES: &[(&str, ChangeWhen)] = &[
        ("class", Window),
        ("engine_version", Window),
        ("storage_gb", Window),
        ("max_storage_gb", Now),
        ("multi_az", Window),
        ("encrypted", Fixed),
        ("backup_retention_days", Now),
        ("deletion_protection", Now),
        ("publicly_accessible", Now),
        ("iam_auth", Window),
        ("performance_insights", Now),
        ("parameter_group", Reboot),
        ("monitoring_interval", Now),
        ("subnet_group", Fixed),
        ("backup_window", Now),
        ("maintenance_window", Now),
        ("ca_certificate", Window),
    ];
    const CLUSTER_CASES: &[(&str, ChangeWhen)] = &[
        ("engine_version", Window),
        ("min_acu", Now),
        ("max_acu", Now),
        ("encrypted", Fixed),
        ("backup_retention_days", Now),
        ("deletion_protection", Now),
        ("iam_auth", Now),
        ("parameter_group", Reboot),
        ("subnet_group", Fixed),
        ("backup_window", Now),
        ("maintenance_window", Now),
    ];
    const MEMBER_CASES: &[(&str, ChangeWhen)] = &[
        ("class", Window),
        ("publicly_accessible", Now),
        ("performance_insights", Now),
        ("monitoring_interval", Now),
        ("ca_certificate", Window),
    ];

    /// Env test (`shop-test`) of kind `kind` with `extra` settings, alarms off.
    fn spec_of(kind: &str, extra: &str) -> InstanceSpec {
        let text = format!(
            "region = \"eu-west-1\"\n[env.test]\nid = \"shop-test\"\n{kind}{SHARED}{extra}\n[env.test.alarms]\nenabled = false\n"
        );
        spec::parse(&text, "test").unwrap().instances.remove(0)
    }

    /// The one change of `changes`: a modify of `resource` `name` with one attribute, from
    /// "drifted" to `to`, applied `when`.
    fn assert_one_modify(
        changes: &[PlannedChange],
        (resource, name): (PlanResource, &str),
        attribute_name: &str,
        to: Option<String>,
        when: ChangeWhen,
    ) {
        let changed = changed(changes);
        assert_eq!(changed.len(), 1, "{attribute_name}: {changed:#?}");
        assert_eq!(
            (
                changed[0].resource,
                changed[0].action,
                changed[0].name.as_str()
            ),
            (resource, PlanAction::Modify, name),
            "{attribute_name}"
        );
        let expected = attribute(attribute_name, Some("drifted".into()), to.unwrap(), when);
        assert_eq!(changed[0].attributes, vec![expected]);
    }

    /// What the spec asks, as AWS would report it.
    fn reported(spec: &InstanceSpec, members: bool) -> Attributes {
        let rows = if members {
            target::of(spec).member_attributes()
        } else {
            target::of(spec).attributes()
        };
        rows.iter()
            .filter_map(|(row, _)| Some((row.name, (row.wanted)(spec)?)))
            .collect()
    }

    /// An observation of everything in line with the spec.
    fn in_line(spec: &InstanceSpec) -> Observed {
        Observed {
            vpc_id: "vpc-1".into(),
            security_group: Some(SecurityGroup {
                id: "sg-0123".into(),
                spec_sources: spec.ingress.iter().rev().cloned().collect(),
                other_sources: vec!["198.51.100.9/32".into()],
            }),
            subnet_group: spec.subnet_group_name().map(|_| spec.subnet_ids.clone()),
            parameters: Some(spec.parameters.clone()),
            secret_arn: Some("arn:aws:secretsmanager:eu-west-1:1:secret:x".into()),
            secret_scheduled_for_deletion: false,
            target: Some(TargetState {
                status: "available".into(),
                attributes: reported(spec, false),
                security_groups: vec!["sg-0123".into()],
                ..TargetState::default()
            }),
            members: spec
                .member_ids()
                .into_iter()
                .map(|id| Member {
                    writer: id.ends_with("-1"),
                    id,
                    status: "available".into(),
                    attributes: reported(spec, true),
                    pending: Default::default(),
                })
                .collect(),
            alarms: Default::default(),
            offer: None,
            apply_types: None,
            parameter_group: None,
        }
    }

    fn changed(changes: &[PlannedChange]) -> Vec<&PlannedChange> {
        changes
            .iter()
            .filter(|c| c.action != PlanAction::None)
            .collect()
    }

    fn name_of(name: &str) -> crate::aws::attributes::Name {
        TABLE.iter().find(|a| a.name.as_str() == name).unwrap().name
    }

    #[test]
    fn every_attribute_of_the_table_has_a_case_for_each_place_it_is_held() {
        let mut cased: Vec<&str> = INSTANCE_CASES
            .iter()
            .chain(CLUSTER_CASES)
            .chain(MEMBER_CASES)
            .map(|(name, _)| *name)
            .collect();
        cased.sort_unstable();
        cased.dedup();
        let mut table: Vec<&str> = TABLE.iter().map(|a| a.name.as_str()).collect();
        table.sort_unstable();
        assert_eq!(cased, table, "each attribute needs its plan cases below");
        for row in TABLE {
            let name = row.name.as_str();
            assert_eq!(
                row.instance.is_some(),
                INSTANCE_CASES.iter().any(|c| c.0 == name),
                "{name} on an RDS instance"
            );
            assert_eq!(
                matches!(row.aurora, OnAurora::Cluster(_)),
                CLUSTER_CASES.iter().any(|c| c.0 == name),
                "{name} on an Aurora cluster"
            );
            assert_eq!(
                matches!(row.aurora, OnAurora::Members),
                MEMBER_CASES.iter().any(|c| c.0 == name),
                "{name} on Aurora members"
            );
        }
    }

    #[test]
    fn what_is_in_line_plans_nothing_on_either_kind() {
        for kind in [INSTANCE, CLUSTER] {
            let spec = spec_of(kind, "");
            let changes = plan(&spec, &in_line(&spec));
            assert!(changed(&changes).is_empty(), "{:#?}", changed(&changes));
            let resources: Vec<PlanResource> = changes.iter().map(|c| c.resource).collect();
            assert!(resources.contains(&target::of(&spec).resource()));
        }
    }

    /// One attribute drifted on the target: exactly one modify, of that attribute, from what
    /// AWS reports to what the spec asks, with when AWS applies it.
    #[test]
    fn each_attribute_of_an_instance_and_a_cluster_is_planned_alone() {
        for (kind, resource, cases) in [
            (INSTANCE, PlanResource::DbInstance, INSTANCE_CASES),
            (CLUSTER, PlanResource::DbCluster, CLUSTER_CASES),
        ] {
            let spec = spec_of(kind, "");
            for (name, when) in cases {
                let mut observed = in_line(&spec);
                let state = observed.target.as_mut().unwrap();
                let wanted = state.attributes.insert(name_of(name), "drifted".into());
                let changes = plan(&spec, &observed);
                assert_one_modify(&changes, (resource, "shop-test"), name, wanted, *when);
            }
        }
    }

    #[test]
    fn each_attribute_of_an_aurora_member_is_planned_on_that_member() {
        let spec = spec_of(CLUSTER, "");
        for (name, when) in MEMBER_CASES {
            let mut observed = in_line(&spec);
            let reader = &mut observed.members[1];
            let wanted = reader.attributes.insert(name_of(name), "drifted".into());
            let changes = plan(&spec, &observed);
            let member = (PlanResource::DbInstance, "shop-test-2");
            assert_one_modify(&changes, member, name, wanted, *when);
        }
    }

    #[test]
    fn apply_immediately_turns_window_changes_into_immediate_ones() {
        let spec = spec_of(INSTANCE, "apply_immediately = true");
        let mut observed = in_line(&spec);
        let state = observed.target.as_mut().unwrap();
        state
            .attributes
            .insert(name_of("class"), "db.t4g.micro".into());
        state
            .attributes
            .insert(name_of("parameter_group"), "default.postgres16".into());
        let changes = plan(&spec, &observed);
        let whens: Vec<(&str, ChangeWhen)> = changed(&changes)[0]
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.when))
            .collect();
        assert_eq!(whens, [("class", Now), ("parameter_group", Reboot)]);
    }

    #[test]
    fn nothing_there_creates_everything_in_apply_order() {
        for (kind, expected) in [
            (
                INSTANCE,
                vec![
                    (PlanResource::SecurityGroup, "rdsprov-shop-test"),
                    (PlanResource::DbSubnetGroup, "rdsprov-shop-test"),
                    (PlanResource::ParameterGroup, "rdsprov-shop-test"),
                    (PlanResource::Secret, "rdsprov/shop-test/master"),
                    (PlanResource::DbInstance, "shop-test"),
                ],
            ),
            (
                CLUSTER,
                vec![
                    (PlanResource::SecurityGroup, "rdsprov-shop-test"),
                    (PlanResource::DbSubnetGroup, "rdsprov-shop-test"),
                    (PlanResource::ParameterGroup, "rdsprov-shop-test"),
                    (PlanResource::Secret, "rdsprov/shop-test/master"),
                    (PlanResource::DbCluster, "shop-test"),
                    (PlanResource::DbInstance, "shop-test-1"),
                    (PlanResource::DbInstance, "shop-test-2"),
                ],
            ),
        ] {
            let spec = spec_of(kind, "");
            let changes = plan(&spec, &Observed::default());
            let created: Vec<(PlanResource, &str)> = changes
                .iter()
                .inspect(|c| assert_eq!(c.action, PlanAction::Create, "{c:?}"))
                .map(|c| (c.resource, c.name.as_str()))
                .collect();
            assert_eq!(created, expected);
            let target = changes
                .iter()
                .find(|c| c.resource == target::of(&spec).resource())
                .unwrap();
            // At creation every attribute the spec sets is set, at once.
            let names: Vec<&str> = target.attributes.iter().map(|a| a.name.as_str()).collect();
            let cases = if spec.is_aurora() {
                CLUSTER_CASES
            } else {
                INSTANCE_CASES
            };
            let mut expected: Vec<&str> = cases.iter().map(|c| c.0).collect();
            let mut got = names.clone();
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, expected);
            assert!(target
                .attributes
                .iter()
                .all(|a| a.when == Now && a.from.is_none()));
        }
    }

    #[test]
    fn what_the_spec_leaves_to_aws_is_not_compared() {
        let text = "region = \"eu-west-1\"\n[env.dev]\nid = \"shop-dev\"\nclass = \"db.t4g.micro\"\n[env.dev.alarms]\nenabled = false\n";
        let spec = spec::parse(text, "test").unwrap().instances.remove(0);
        let mut observed = in_line(&spec);
        let state = observed.target.as_mut().unwrap();
        for (name, value) in [
            ("backup_window", "07:00-07:30"),
            ("maintenance_window", "mon:08:00-mon:08:30"),
            ("ca_certificate", "rds-ca-ecc384-g1"),
            ("max_storage_gb", "1000"),
        ] {
            state.attributes.insert(name_of(name), value.into());
        }
        assert!(changed(&plan(&spec, &observed)).is_empty());
    }

    #[test]
    fn security_group_rules_and_membership() {
        let spec = spec_of(INSTANCE, "");
        let mut observed = in_line(&spec);
        observed.security_group.as_mut().unwrap().spec_sources = vec!["198.51.100.0/24".into()];
        observed.target.as_mut().unwrap().security_groups = vec!["sg-default".into()];
        let changes = plan(&spec, &observed);
        let changed = changed(&changes);
        assert_eq!(changed.len(), 2, "{changed:#?}");
        assert_eq!(
            (changed[0].resource, changed[0].name.as_str()),
            (PlanResource::SecurityGroup, "sg-0123")
        );
        assert_eq!(
            changed[0].attributes,
            vec![attribute(
                "ingress 5432",
                Some("198.51.100.0/24".into()),
                "203.0.113.7/32, sg-0abc".into(),
                Now
            )]
        );
        assert_eq!(
            changed[1].attributes,
            vec![attribute(
                SECURITY_GROUPS,
                Some("sg-default".into()),
                "sg-0123".into(),
                Now
            )]
        );
    }

    #[test]
    fn parameters_subnets_and_the_secret() {
        let spec = spec_of(INSTANCE, "");
        let mut observed = in_line(&spec);
        let parameters = observed.parameters.as_mut().unwrap();
        parameters.insert("shared_preload_libraries".into(), "auto_explain".into());
        parameters.remove("log_min_duration_statement");
        parameters.insert("work_mem".into(), "64MB".into());
        observed.subnet_group = Some(vec!["subnet-a".into()]);
        observed.secret_arn = None;
        observed.apply_types = Some(
            [
                ("log_min_duration_statement", ApplyType::Dynamic),
                ("shared_preload_libraries", ApplyType::Static),
            ]
            .into_iter()
            .map(|(name, kind)| (name.to_string(), kind))
            .collect(),
        );
        let changes = plan(&spec, &observed);
        let changed = changed(&changes);
        let summary: Vec<(PlanResource, PlanAction)> =
            changed.iter().map(|c| (c.resource, c.action)).collect();
        assert_eq!(
            summary,
            [
                (PlanResource::DbSubnetGroup, PlanAction::Modify),
                (PlanResource::ParameterGroup, PlanAction::Modify),
                (PlanResource::Secret, PlanAction::Create),
            ]
        );
        assert_eq!(
            changed[0].attributes,
            vec![attribute(
                "subnets",
                Some("subnet-a".into()),
                "subnet-a, subnet-b".into(),
                Now
            )]
        );
        // A parameter set by hand that the spec does not name is left alone; a static one
        // waits for a reboot.
        assert_eq!(
            changed[1].attributes,
            vec![
                attribute("log_min_duration_statement", None, "500".into(), Now),
                attribute(
                    "shared_preload_libraries",
                    Some("auto_explain".into()),
                    "pg_stat_statements".into(),
                    Reboot
                ),
            ]
        );
    }

    #[test]
    fn a_parameter_aws_does_not_list_is_refused_and_one_it_has_not_typed_waits_for_a_reboot() {
        let spec = spec_of(INSTANCE, "");
        let mut observed = in_line(&spec);
        observed.parameters.as_mut().unwrap().clear();
        let changes = plan(&spec, &observed);
        let group = changes
            .iter()
            .find(|c| c.resource == PlanResource::ParameterGroup)
            .unwrap();
        assert!(
            group.attributes.iter().all(|a| a.when == Reboot),
            "{group:?}"
        );
        observed.apply_types = Some(
            [("rds.force_ssl".to_string(), ApplyType::Dynamic)]
                .into_iter()
                .collect(),
        );
        let changes = plan(&spec, &observed);
        let error = refusal(&spec, &observed, &changes).unwrap_err();
        assert!(
            error.contains("parameters log_min_duration_statement, shared_preload_libraries: not modifiable parameters of postgres"),
            "{error}"
        );
    }

    #[test]
    fn a_version_aws_no_longer_offers_stays_when_the_spec_names_it_and_a_new_one_is_exact() {
        let spec = spec_of(INSTANCE, "engine_version = \"16.4\"");
        let observed = in_line(&spec);
        // In line: AWS is not asked (offer None) and nothing changes.
        assert!(changed(&plan(&spec, &observed)).is_empty());
        let major = spec_of(INSTANCE, "engine_version = \"17\"");
        let mut upgrade = in_line(&spec);
        upgrade.offer = Some(offer::Offer {
            versions: vec!["16.9".into(), "17.5".into(), "17.10".into()],
            ..Default::default()
        });
        let changes = plan(&major, &upgrade);
        let target = changed(&changes);
        assert_eq!(target[0].attributes[0].name, "engine_version");
        assert_eq!(target[0].attributes[0].to, "17.10");
        // Another major: at once, whatever the window (with the new family's group).
        assert_eq!(target[0].attributes[0].when, Now);
        // Never back a major.
        let back = spec_of(INSTANCE, "engine_version = \"15\"");
        let changes = plan(&back, &upgrade);
        let error = refusal(&back, &upgrade, &changes).unwrap_err();
        assert!(error.contains("never goes back a major"), "{error}");
        let mut gone = in_line(&spec);
        gone.target = None;
        gone.offer = Some(offer::Offer {
            versions: vec!["16.9".into()],
            ..Default::default()
        });
        let changes = plan(&spec, &gone);
        let error = refusal(&spec, &gone, &changes).unwrap_err();
        assert!(error.contains("no longer creates"), "{error}");
    }

    #[test]
    fn a_change_waiting_for_the_window_at_the_wanted_value_is_no_change() {
        // The spec asks db.t4g.small.
        let spec = spec_of(INSTANCE, "");
        let with = |now: &str, pending: &str| {
            let mut observed = in_line(&spec);
            let state = observed.target.as_mut().unwrap();
            state.attributes.insert(Name::Class, now.into());
            state.pending.insert(Name::Class, pending.into());
            observed
        };
        assert!(changed(&plan(&spec, &with("db.t4g.micro", "db.t4g.small"))).is_empty());
        // Pending at another value: the modify is sent (it replaces the pending one).
        let changes = plan(&spec, &with("db.t4g.micro", "db.t4g.large"));
        assert_eq!(
            changed(&changes)[0].attributes,
            vec![attribute(
                "class",
                Some("db.t4g.micro".into()),
                "db.t4g.small".into(),
                Window
            )]
        );
        // Also when the target has the spec's value now: the spec went back before the window,
        // which would otherwise still bring the pending value.
        let changes = plan(&spec, &with("db.t4g.small", "db.t4g.large"));
        assert_eq!(changed(&changes).len(), 1, "{changes:?}");
    }

    #[test]
    fn a_new_capacity_range_must_suit_the_version_the_cluster_runs_until_the_window() {
        let older = spec_of(CLUSTER, "engine_version = \"14.6\"");
        let mut observed = in_line(&older);
        let paused = spec_of(
            &CLUSTER.replace("min_acu = 0.5", "min_acu = 0"),
            "engine_version = \"14.18\"",
        );
        let takes = |least, most| offer::Capacity { least, most };
        observed.offer = Some(offer::Offer {
            versions: vec!["14.6".into(), "14.18".into()],
            capacity: [
                ("14.6".into(), takes(0.5, 128.0)),
                ("14.18".into(), takes(0.0, 256.0)),
            ]
            .into_iter()
            .collect(),
        });
        // The version waits for the window (a test env), the range would apply at once.
        let changes = plan(&paused, &observed);
        let error = refusal(&paused, &observed, &changes).unwrap_err();
        assert!(error.contains("14.6 takes 0.5 ACU at least"), "{error}");
        // Applied at once, both change together: 14.18 takes it.
        let mut now = paused.clone();
        now.apply_immediately = true;
        let changes = plan(&now, &observed);
        assert_eq!(refusal(&now, &observed, &changes), Ok(()));
    }

    #[test]
    fn a_major_upgrade_applies_what_was_pending_at_once_and_says_so() {
        let spec = spec_of(INSTANCE, "engine_version = \"17\"");
        let mut observed = in_line(&spec);
        let state = observed.target.as_mut().unwrap();
        state.attributes.insert(Name::EngineVersion, "16.9".into());
        state.pending.insert(Name::StorageGb, "80".into());
        observed.offer = Some(offer::Offer {
            versions: vec!["17.5".into()],
            ..Default::default()
        });
        let changes = plan(&spec, &observed);
        let target = changed(&changes);
        let storage = target[0]
            .attributes
            .iter()
            .find(|a| a.name == "storage_gb")
            .unwrap();
        assert_eq!((storage.to.as_str(), storage.when), ("80", Now));
    }

    #[test]
    fn aurora_members_follow_multi_az() {
        let spec = spec_of(CLUSTER, "");
        let mut observed = in_line(&spec);
        observed.members.pop();
        let changes = plan(&spec, &observed);
        assert_eq!(
            changed(&changes)
                .iter()
                .map(|c| (c.resource, c.action, c.name.as_str()))
                .collect::<Vec<_>>(),
            [(PlanResource::DbInstance, PlanAction::Create, "shop-test-2")]
        );
        let single = spec_of(&CLUSTER.replace("multi_az = true", "multi_az = false"), "");
        let mut observed = in_line(&spec);
        observed.members.push(Member {
            id: "shop-test-by-hand".into(),
            ..Member::default()
        });
        let changes = plan(&single, &observed);
        assert_eq!(
            changed(&changes)
                .iter()
                .map(|c| (c.resource, c.action, c.name.as_str()))
                .collect::<Vec<_>>(),
            [(PlanResource::DbInstance, PlanAction::Delete, "shop-test-2")],
            "the reader we added goes; one added by hand stays"
        );
    }

    /// What AWS does by itself is no change to make: a newer minor version, storage grown by
    /// autoscaling, a window answered in lower case; a source another rule already admits is
    /// not added again.
    #[test]
    fn aws_s_own_moves_are_not_drift() {
        let mut spec = spec_of(INSTANCE, "engine_version = \"16.4\"");
        spec.maintenance_window = Some("Sun:05:00-Sun:06:00".into());
        let mut observed = in_line(&spec);
        let state = observed.target.as_mut().unwrap();
        state
            .attributes
            .insert(name_of("engine_version"), "16.9".into());
        state.attributes.insert(name_of("storage_gb"), "60".into());
        state
            .attributes
            .insert(name_of("maintenance_window"), "sun:05:00-sun:06:00".into());
        let group = observed.security_group.as_mut().unwrap();
        group.spec_sources.retain(|s| s != "203.0.113.7/32");
        group.other_sources.push("203.0.113.7/32".into());
        let changes = plan(&spec, &observed);
        assert!(changed(&changes).is_empty(), "{:#?}", changed(&changes));
        // Below the spec is still a change: an older minor, less storage.
        let state = observed.target.as_mut().unwrap();
        state
            .attributes
            .insert(name_of("engine_version"), "16.3".into());
        state.attributes.insert(name_of("storage_gb"), "40".into());
        let changes = plan(&spec, &observed);
        let names: Vec<&str> = changed(&changes)[0]
            .attributes
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["engine_version", "storage_gb"]);
    }

    #[test]
    fn a_secret_scheduled_for_deletion_is_restored() {
        let spec = spec_of(INSTANCE, "");
        let mut observed = in_line(&spec);
        observed.secret_scheduled_for_deletion = true;
        let changes = plan(&spec, &observed);
        let changed = changed(&changes);
        assert_eq!(changed.len(), 1, "{changed:#?}");
        assert_eq!(
            (changed[0].resource, changed[0].action),
            (PlanResource::Secret, PlanAction::Modify)
        );
        assert_eq!(changed[0].attributes[0].to, "cancelled (RestoreSecret)");
    }
}
