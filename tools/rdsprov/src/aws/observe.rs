//! Observe: what exists for one env of the spec, read with describe calls only — the VPC, the
//! security group and the sources its spec rules admit, the DB subnet group, the parameters
//! set in the parameter group, the master secret, the target (instance or cluster, with its
//! members) and its alarms. Nothing here changes anything; the plan reads what it returns.

use crate::aws::alarms;
use crate::aws::attributes::{Drift, Name};
use crate::aws::offer;
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Observed, SecurityGroup, TargetState};
use crate::aws::target;
use crate::aws::{code, describe, Aws};
use dbtools::contract::{Instance, Provider};
use dbtools::{Error, Result};

/// Rules we manage in a security group carry this description; others (a machine's own rule
/// added by `rdsprov access`, a colleague's by hand) are never touched.
pub(crate) const SPEC_RULE: &str = "rdsprov:spec";
pub(crate) const PORT: i32 = 5432;

/// Reads what exists for one env.
pub(crate) fn observe(aws: &Aws, spec: &InstanceSpec) -> Result<Observed> {
    let target = target::of(spec);
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
            // Every source on 5432 with its rule's description: a rule's identity is its
            // protocol, ports and source, not its description, so a source another rule
            // admits cannot be added again (InvalidPermission.Duplicate).
            let sources: Vec<(String, bool)> = group
                .ip_permissions()
                .iter()
                .filter(|p| {
                    matches!(p.ip_protocol(), Some("tcp" | "6"))
                        && p.from_port() == Some(PORT)
                        && p.to_port() == Some(PORT)
                })
                .flat_map(|p| {
                    let ours = |d: Option<&str>| d == Some(SPEC_RULE);
                    let v4 = p
                        .ip_ranges()
                        .iter()
                        .filter_map(|r| Some((r.cidr_ip()?.to_string(), ours(r.description()))));
                    let v6 = p
                        .ipv6_ranges()
                        .iter()
                        .filter_map(|r| Some((r.cidr_ipv6()?.to_string(), ours(r.description()))));
                    let groups = p
                        .user_id_group_pairs()
                        .iter()
                        .filter_map(|g| Some((g.group_id()?.to_string(), ours(g.description()))));
                    v4.chain(v6).chain(groups).collect::<Vec<_>>()
                })
                .collect();
            let (spec_sources, other_sources) = sources.into_iter().partition::<Vec<_>, _>(|s| s.1);
            SecurityGroup {
                id: group.group_id().unwrap_or_default().to_string(),
                spec_sources: spec_sources.into_iter().map(|s| s.0).collect(),
                other_sources: other_sources.into_iter().map(|s| s.0).collect(),
            }
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
        let (secret_arn, secret_scheduled_for_deletion) = if spec.rds_managed_password {
            (None, false)
        } else {
            match aws
                .secrets
                .describe_secret()
                .secret_id(spec.secret_name())
                .send()
                .await
            {
                Ok(answer) => (
                    answer.arn().map(str::to_string),
                    answer.deleted_date().is_some(),
                ),
                Err(e) if code(&e) == Some("ResourceNotFoundException") => (None, false),
                Err(e) => return Err(describe("reading the master secret", e)),
            }
        };
        let (state, members) = match target.observe(aws, &spec.id).await? {
            Some((state, members)) => (Some(state), members),
            None => (None, Vec::new()),
        };
        let in_use = state.as_ref().map(|s| s.get(Name::ParameterGroup));
        let group = group_of_family(aws, spec, &spec.parameter_group_family(), in_use).await?;
        let parameters = target.parameters(aws, group.name.clone()).await?;
        let parameter_group = (group.name != spec.parameter_group_name()).then_some(group.name);
        // What AWS offers is asked only when the plan needs it, so a clean plan costs no more.
        let offer = if needs_offer(spec, state.as_ref()) {
            Some(offer::read(aws, spec).await?)
        } else {
            None
        };
        let sets_parameters = spec.parameters.iter().any(|(name, value)| {
            parameters.as_ref().and_then(|have| have.get(name)) != Some(value)
        });
        let apply_types = if sets_parameters {
            Some(offer::apply_types(aws, spec).await?)
        } else {
            None
        };
        Ok(Observed {
            vpc_id,
            security_group,
            subnet_group,
            parameters,
            secret_arn,
            secret_scheduled_for_deletion,
            target: state,
            members,
            alarms: Default::default(),
            offer,
            apply_types,
            parameter_group,
        })
    })
    .and_then(|mut observed| {
        observed.alarms = alarms::observe(aws, spec)?;
        Ok(observed)
    })
}

/// The env's parameter group of a family, and whether it exists yet.
pub(crate) struct Group {
    pub name: String,
    pub exists: bool,
}

/// The env's parameter group of `family`: the one the target uses or `rdsprov-<id>` when it is
/// of that family, else `rdsprov-<id>-<family>` (after a major upgrade `rdsprov-<id>` keeps the
/// old family's parameters, and a group's family never changes); a name to create when none
/// exists. `in_use` first, so a clean plan costs one describe.
pub(crate) async fn group_of_family(
    aws: &Aws,
    spec: &InstanceSpec,
    family: &str,
    in_use: Option<String>,
) -> Result<Group> {
    let target = target::of(spec);
    let base = format!("rdsprov-{}", spec.id);
    let by_family = format!("{base}-{family}");
    let mut candidates: Vec<String> = in_use
        .into_iter()
        .filter(|name| *name == base || *name == by_family)
        .collect();
    for name in [base.clone(), by_family.clone()] {
        if !candidates.contains(&name) {
            candidates.push(name);
        }
    }
    let mut base_exists = false;
    for name in candidates {
        let found = target.group_family(aws, &name).await?;
        base_exists |= name == base && found.is_some();
        if found.as_deref() == Some(family) {
            return Ok(Group { name, exists: true });
        }
    }
    Ok(Group {
        name: if base_exists { by_family } else { base },
        exists: false,
    })
}

/// Whether the plan may create the target or change its version, class or capacity, and so
/// needs what AWS offers.
fn needs_offer(spec: &InstanceSpec, state: Option<&TargetState>) -> bool {
    let Some(state) = state else {
        return true;
    };
    // A value waiting for the window counts as the one the target will have.
    let now_or_pending = |name: Name| {
        state
            .pending
            .get(&name)
            .cloned()
            .unwrap_or_else(|| state.get(name))
    };
    let version = now_or_pending(Name::EngineVersion);
    let class = state
        .attributes
        .contains_key(&Name::Class)
        .then(|| now_or_pending(Name::Class));
    let capacity = spec.serverless.is_some_and(|range| {
        state.get(Name::MinAcu) != crate::aws::attributes::acu(range.min_acu)
            || state.get(Name::MaxAcu) != crate::aws::attributes::acu(range.max_acu)
    });
    !Drift::SameMajorAtLeast.in_line(&version, &spec.engine_version)
        || class.is_some_and(|class| *class != spec.class)
        || capacity
}

/// The env's instance (or Aurora cluster) as the contract describes it, None when it does
/// not exist.
pub(crate) fn record(region: &str, spec: &InstanceSpec, observed: Observed) -> Option<Instance> {
    let state = observed.target?;
    Some(Instance {
        id: spec.id.clone(),
        provider: Provider::Aws,
        engine: spec.engine.clone(),
        engine_version: state.get(Name::EngineVersion),
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
        env: Some(spec.env.clone()),
        class: state.attributes.get(&Name::Class).cloned(),
        security_group: observed.security_group.map(|g| g.id),
        parameter_group: state.attributes.get(&Name::ParameterGroup).cloned(),
        alarms: observed.alarms.alarms.keys().cloned().collect(),
        alarm_topic: observed.alarms.topic_arn.clone(),
        region: Some(region.to_string()),
    })
}

/// The env's instance as AWS describes it, or None when it does not exist.
pub(crate) fn instance(aws: &Aws, spec: &InstanceSpec) -> Result<Option<Instance>> {
    Ok(record(&aws.region, spec, observe(aws, spec)?))
}

/// `error` when the env's target does not exist.
pub(crate) fn missing(spec: &InstanceSpec, what: &str) -> Error {
    Error::BadInput(format!(
        "env {}: {} {} does not exist: nothing to {what}",
        spec.env,
        target::of(spec).kind(),
        spec.id
    ))
}
