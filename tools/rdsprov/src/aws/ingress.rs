//! Home-network access that keeps working: the ingress rules on 5432 of an instance's (or
//! Aurora cluster's) security group, this machine's public address, and one rule per machine.
//!
//! A machine's rule is a /32 (or /128) described `dbtools:<machine>` (`user@host` unless
//! `DBTOOLS_MACHINE_NAME` or `[access] machine` says otherwise). `allow-current` adds the
//! current address before it removes this machine's stale rule, so a connection path never
//! closes in between; rules from the spec (`rdsprov:spec`) and anyone else's are never
//! touched, and `plan` ignores machine rules. The address each machine last added is kept in
//! its state dir: a rule of the same name with another address that this machine did not add
//! belongs to a second machine with the same name, and is left alone with a clear refusal.

use crate::aws::observe::{PORT, SPEC_RULE};
use crate::aws::target::{self, cluster, instance, Target};
use crate::aws::{code, describe, Aws};
use dbtools::contract::{Access, AccessRule};
use dbtools::{Error, Result};
use std::net::IpAddr;
use std::path::PathBuf;

/// AWS's default quota of inbound rules per security group (named in the refusal; AWS's own
/// answer decides, so a raised quota works).
pub(crate) const RULES_PER_GROUP: usize = 60;
pub(crate) const MACHINE_PREFIX: &str = "dbtools:";

/// The RDS instance or Aurora cluster whose security group admits clients.
pub(crate) struct Found {
    pub id: String,
    /// An RDS instance or an Aurora cluster.
    pub kind: &'static dyn Target,
    pub status: String,
    pub publicly_accessible: Option<bool>,
    pub security_groups: Vec<String>,
}

/// Finds `id` as an instance, else as an Aurora cluster (whose writer says whether it is
/// publicly accessible).
pub(crate) fn find(aws: &Aws, id: &str) -> Result<Found> {
    aws.block_on(async {
        if let Some(db) = instance::describe_instance(aws, id).await? {
            return Ok(Found {
                id: id.to_string(),
                kind: &instance::RdsInstance,
                status: instance::status_of(&db),
                publicly_accessible: db.publicly_accessible(),
                security_groups: target::group_ids(db.vpc_security_groups()),
            });
        }
        let Some(cluster) = cluster::describe_cluster(aws, id).await? else {
            return Err(Error::BadInput(format!(
                "no RDS instance or Aurora cluster {id} in region {}",
                aws.region
            )));
        };
        let writer = cluster
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .or_else(|| cluster.db_cluster_members().first())
            .and_then(|m| m.db_instance_identifier())
            .map(str::to_string);
        let publicly_accessible = match writer {
            Some(writer) => aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(writer)
                .send()
                .await
                .ok()
                .and_then(|a| {
                    a.db_instances()
                        .first()
                        .and_then(|db| db.publicly_accessible())
                }),
            None => None,
        };
        Ok(Found {
            id: id.to_string(),
            kind: &cluster::AuroraCluster,
            status: cluster.status().unwrap_or("unknown").to_string(),
            publicly_accessible,
            security_groups: target::group_ids(cluster.vpc_security_groups()),
        })
    })
}

/// The group's rules that admit 5432.
struct GroupRules {
    id: String,
    rules: Vec<AccessRule>,
}

/// The security group clients come through: ours (`rdsprov-<id>`) when the instance is in it,
/// else its first.
fn group_rules(aws: &Aws, target: &Found) -> Result<GroupRules> {
    if target.security_groups.is_empty() {
        return Err(Error::Failed(format!(
            "{} is in no VPC security group",
            target.id
        )));
    }
    let answer = aws
        .block_on(
            aws.ec2
                .describe_security_groups()
                .set_group_ids(Some(target.security_groups.clone()))
                .send(),
        )
        .map_err(|e| describe("reading the security groups", e))?;
    let ours = format!("rdsprov-{}", target.id);
    let groups = answer.security_groups();
    let group = groups
        .iter()
        .find(|g| g.group_name() == Some(ours.as_str()))
        .or_else(|| groups.first())
        .ok_or_else(|| Error::Failed(format!("the security groups of {} are gone", target.id)))?;
    let mut rules = Vec::new();
    for permission in group.ip_permissions() {
        // PostgreSQL is TCP: a udp or icmp rule admits nobody to it.
        let covers = match permission.ip_protocol() {
            Some("-1") => true,
            Some("tcp" | "6") => {
                permission.from_port().unwrap_or(0) <= PORT
                    && PORT <= permission.to_port().unwrap_or(0)
            }
            _ => false,
        };
        if !covers {
            continue;
        }
        let v4 = permission
            .ip_ranges()
            .iter()
            .map(|r| (r.cidr_ip(), r.description()));
        let v6 = permission
            .ipv6_ranges()
            .iter()
            .map(|r| (r.cidr_ipv6(), r.description()));
        let groups = permission
            .user_id_group_pairs()
            .iter()
            .map(|g| (g.group_id(), g.description()));
        for (source, description) in v4.chain(v6).chain(groups) {
            let Some(source) = source else { continue };
            let machine = description
                .and_then(|d| d.strip_prefix(MACHINE_PREFIX))
                .map(str::to_string);
            let origin = match (description, &machine) {
                (Some(SPEC_RULE), _) => "spec",
                (_, Some(_)) => "machine",
                _ => "other",
            };
            rules.push(AccessRule {
                source: source.to_string(),
                origin: origin.into(),
                machine,
                description: description.map(str::to_string),
            });
        }
    }
    Ok(GroupRules {
        id: group.group_id().unwrap_or_default().to_string(),
        rules,
    })
}

/// Whether a CIDR rule's range holds `address`.
pub(crate) fn admits(cidr: &str, address: &IpAddr) -> bool {
    let Some((network, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(network), Ok(bits)) = (network.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(network) & mask == u32::from(*address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(network) & mask == u128::from(*address) & mask
        }
        _ => false,
    }
}

/// `203.0.113.7/32`, `2001:db8::7/128`.
pub(crate) fn host_cidr(address: &IpAddr) -> String {
    match address {
        IpAddr::V4(_) => format!("{address}/32"),
        IpAddr::V6(_) => format!("{address}/128"),
    }
}

/// What `show` reports; `address` when the check-IP endpoint was asked.
pub(crate) fn show(
    aws: &Aws,
    target: &Found,
    env: Option<&str>,
    machine: &str,
    address: Option<IpAddr>,
) -> Result<Access> {
    let group = group_rules(aws, target)?;
    let admitted = address.is_some_and(|address| {
        group
            .rules
            .iter()
            .any(|rule| admits(&rule.source, &address))
    });
    Ok(Access {
        provider: dbtools::contract::Provider::Aws,
        env: env.map(str::to_string),
        instance: target.id.clone(),
        region: Some(aws.region.clone()),
        status: Some(target.status.clone()),
        publicly_accessible: target.publicly_accessible,
        security_group: Some(group.id),
        address: address.map(|a| a.to_string()),
        machine: machine.to_string(),
        admitted,
        rules: group.rules,
        changes: Vec::new(),
        note: note(target, address, admitted),
    })
}

fn note(target: &Found, address: Option<IpAddr>, admitted: bool) -> Option<String> {
    if target.publicly_accessible == Some(false) {
        return Some(format!(
            "{} is not publicly accessible: no rule admits a home network until the spec says publicly_accessible = true (and `rdsprov apply`)",
            target.id
        ));
    }
    match (address, admitted) {
        (Some(address), false) => Some(format!(
            "this machine's address {address} is not admitted: run `rdsprov access allow-current`"
        )),
        _ => None,
    }
}

/// Where this machine records the address it last admitted on an instance.
fn record_path(state_root: &std::path::Path, region: &str, instance: &str) -> PathBuf {
    state_root
        .join("access")
        .join(format!("{region}-{instance}.addr"))
}

/// Adds this machine's current address and removes its stale rule. `replace` takes over a
/// same-named rule this machine has no record of adding.
pub(crate) fn allow_current(
    aws: &Aws,
    target: &Found,
    machine: &str,
    address: IpAddr,
    state_root: &std::path::Path,
    replace: bool,
) -> Result<Vec<String>> {
    let group = group_rules(aws, target)?;
    let description = format!("{MACHINE_PREFIX}{machine}");
    let wanted = host_cidr(&address);
    let record = record_path(state_root, &aws.region, &target.id);
    let recorded = std::fs::read_to_string(&record)
        .ok()
        .map(|s| s.trim().to_string());
    let mine: Vec<&AccessRule> = group
        .rules
        .iter()
        .filter(|r| r.description.as_deref() == Some(description.as_str()))
        .collect();
    let stale: Vec<String> = mine
        .iter()
        .filter(|r| r.source != wanted)
        .map(|r| r.source.clone())
        .collect();
    if let Some(foreign) = stale
        .iter()
        .find(|source| recorded.as_deref() != Some(source.as_str()))
    {
        if !replace {
            return Err(Error::BadInput(format!(
                "a rule named {description} admits {foreign}, which this machine did not add ({}): another machine with the same name? Give one of them its own name (DBTOOLS_MACHINE_NAME, or [access] machine in dbtools.toml); if the rule is this machine's old one, rerun with --replace. No rule was changed",
                match &recorded {
                    Some(last) => format!("it last added {last}"),
                    None => "it has no record of adding one".into(),
                }
            )));
        }
    }
    let mut done = Vec::new();
    // The address may already be admitted by another rule (two machines behind one NAT, or a
    // spec CIDR): then there is nothing to add, and AWS would refuse a duplicate anyway.
    let admitted_by = group.rules.iter().find(|r| r.source == wanted);
    match admitted_by {
        Some(rule) if rule.description.as_deref() != Some(description.as_str()) => {
            done.push(format!(
                "{wanted} is already admitted by the rule {}: no rule of its own needed",
                rule.description
                    .as_deref()
                    .unwrap_or("without a description")
            ));
        }
        Some(_) => {}
        None => {
            // AWS's code tells a full group from any other refusal.
            let authorize = || {
                aws.block_on(
                    aws.ec2
                        .authorize_security_group_ingress()
                        .group_id(&group.id)
                        .ip_permissions(permission(std::slice::from_ref(&wanted), &description))
                        .send(),
                )
                .map(drop)
                .map_err(|e| {
                    let full = code(&e) == Some("RulesPerSecurityGroupLimitExceeded");
                    (full, describe("adding this machine's rule", e))
                })
            };
            match authorize() {
                Ok(()) => {}
                // At the quota, the stale rule makes room; without one there is none.
                Err((true, _)) => {
                    if stale.is_empty() {
                        return Err(full_group(&group.id));
                    }
                    revoke(aws, &group.id, &stale, &description)?;
                    done.push(format!(
                        "removed {} ({description}) from {} to make room",
                        stale.join(", "),
                        group.id
                    ));
                    authorize().map_err(|(_, error)| {
                        Error::Failed(format!(
                            "{} (already done: {})",
                            error.message(),
                            done.join("; ")
                        ))
                    })?;
                    done.push(format!(
                        "allowed {wanted} ({description}) on 5432 in {}",
                        group.id
                    ));
                    return finish(&record, &wanted, done);
                }
                Err((false, error)) => return Err(error),
            }
            done.push(format!(
                "allowed {wanted} ({description}) on 5432 in {}",
                group.id
            ));
        }
    }
    if !stale.is_empty() {
        revoke(aws, &group.id, &stale, &description)?;
        done.push(format!(
            "removed {} ({description}) from {}",
            stale.join(", "),
            group.id
        ));
    }
    finish(&record, &wanted, done)
}

/// Records the address this machine now has a rule for, and returns what was done.
fn finish(record: &std::path::Path, wanted: &str, done: Vec<String>) -> Result<Vec<String>> {
    if let Some(dir) = record.parent() {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(record, format!("{wanted}\n")))
            .map_err(|e| Error::Failed(format!("cannot record {}: {e}", record.display())))?;
    }
    Ok(done)
}

fn full_group(group: &str) -> Error {
    Error::BadInput(format!(
        "security group {group} is at its quota of inbound rules ({RULES_PER_GROUP} per group by default): remove stale machine rules (`rdsprov access show` lists them; `rdsprov access revoke ENV --machine NAME`), or ask AWS for a higher quota. No rule was changed"
    ))
}

/// Removes the rules named `dbtools:<machine>`.
pub(crate) fn revoke_machine(
    aws: &Aws,
    target: &Found,
    machine: &str,
    state_root: &std::path::Path,
    this_machine: bool,
) -> Result<Vec<String>> {
    let group = group_rules(aws, target)?;
    let description = format!("{MACHINE_PREFIX}{machine}");
    let sources: Vec<String> = group
        .rules
        .iter()
        .filter(|r| r.description.as_deref() == Some(description.as_str()))
        .map(|r| r.source.clone())
        .collect();
    let mut done = Vec::new();
    if !sources.is_empty() {
        revoke(aws, &group.id, &sources, &description)?;
        done.push(format!(
            "removed {} ({description}) from {}",
            sources.join(", "),
            group.id
        ));
    }
    if this_machine {
        let _ = std::fs::remove_file(record_path(state_root, &aws.region, &target.id));
    }
    Ok(done)
}

/// One ingress permission on 5432 for CIDRs and security groups (`sg-…`, by reference), each
/// carrying `description`.
pub(crate) fn permission(
    sources: &[String],
    description: &str,
) -> aws_sdk_ec2::types::IpPermission {
    let mut permission = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(PORT)
        .to_port(PORT);
    for source in sources {
        permission = if crate::aws::spec::is_security_group(source) {
            permission.user_id_group_pairs(
                aws_sdk_ec2::types::UserIdGroupPair::builder()
                    .group_id(source)
                    .description(description)
                    .build(),
            )
        } else if source.contains(':') {
            permission.ipv6_ranges(
                aws_sdk_ec2::types::Ipv6Range::builder()
                    .cidr_ipv6(source)
                    .description(description)
                    .build(),
            )
        } else {
            permission.ip_ranges(
                aws_sdk_ec2::types::IpRange::builder()
                    .cidr_ip(source)
                    .description(description)
                    .build(),
            )
        };
    }
    permission.build()
}

fn revoke(aws: &Aws, group: &str, sources: &[String], description: &str) -> Result<()> {
    let answer = aws
        .block_on(
            aws.ec2
                .revoke_security_group_ingress()
                .group_id(group)
                .ip_permissions(permission(sources, description))
                .send(),
        )
        .map_err(|e| describe("removing a machine rule", e))?;
    // AWS answers success for rules it did not find, listing them apart.
    if !answer.unknown_ip_permissions().is_empty() {
        return Err(Error::Failed(format!(
            "security group {group}: AWS found no tcp 5432 rule for {} to remove (a rule of another protocol or port range?): remove it by hand",
            sources.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_admit_what_they_hold() {
        let home: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(admits("203.0.113.7/32", &home));
        assert!(admits("203.0.113.0/24", &home));
        assert!(admits("0.0.0.0/0", &home));
        assert!(!admits("203.0.113.8/32", &home));
        assert!(!admits("2001:db8::/32", &home));
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert!(admits("2001:db8::/32", &v6));
        assert_eq!(host_cidr(&v6), "2001:db8::7/128");
        assert!(!admits("sg-0123", &home));
    }
}
