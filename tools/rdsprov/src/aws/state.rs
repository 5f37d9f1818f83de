//! What an observation found for one env, as plain data: the plan reads it without AWS, and
//! the plan's tests build it by hand.

use crate::aws::alarms::ObservedAlarms;
use crate::aws::attributes::Name;
use crate::aws::offer::{ApplyTypes, Offer};
use crate::aws::spec::InstanceSpec;
use std::collections::BTreeMap;

/// Attribute values as AWS reports them, named like the spec's.
pub(crate) type Attributes = BTreeMap<Name, String>;

#[derive(Debug, Clone, Default)]
pub(crate) struct Observed {
    pub vpc_id: String,
    pub security_group: Option<SecurityGroup>,
    /// The subnets of our DB subnet group, when the spec lists subnets and the group exists.
    pub subnet_group: Option<Vec<String>>,
    /// Parameters set by the user in the group, when it exists.
    pub parameters: Option<BTreeMap<String, String>>,
    pub secret_arn: Option<String>,
    /// The master secret is scheduled for deletion (DeleteSecret with a recovery window): it
    /// still answers DescribeSecret, but its value cannot be read until it is restored.
    pub secret_scheduled_for_deletion: bool,
    /// The RDS instance, or the Aurora cluster.
    pub target: Option<TargetState>,
    /// Aurora only: the cluster's member instances.
    pub members: Vec<Member>,
    pub alarms: ObservedAlarms,
    /// The versions AWS creates new instances of the spec's class on: read when the target is
    /// to be created or its version or class changed, else None.
    pub offer: Option<Offer>,
    /// The apply type of the family's parameters: read when a parameter is to be set, else
    /// None.
    pub apply_types: Option<ApplyTypes>,
    /// The parameter group of the spec's family, when not `rdsprov-<id>`: that name holds
    /// another family's group (a major upgrade).
    pub parameter_group: Option<String>,
}

impl Observed {
    /// The spec as AWS's state settles it: its parameter group is the one of its family.
    pub(crate) fn settled(&self, spec: &InstanceSpec) -> InstanceSpec {
        let mut settled = spec.clone();
        settled.parameter_group = self.parameter_group.clone();
        settled
    }
}

/// The env's security group: the sources (CIDRs, groups) of the rules the spec manages, and
/// those other rules on 5432 admit (a machine's own, one added by hand).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SecurityGroup {
    pub id: String,
    pub spec_sources: Vec<String>,
    pub other_sources: Vec<String>,
}

impl SecurityGroup {
    /// The spec's sources that no rule admits yet: what a spec rule must be added for.
    pub(crate) fn missing<'a>(&self, wanted: &'a [String]) -> Vec<&'a String> {
        wanted
            .iter()
            .filter(|s| !self.spec_sources.contains(s) && !self.other_sources.contains(s))
            .collect()
    }

    /// Spec rules for sources the spec no longer lists.
    pub(crate) fn extra(&self, wanted: &[String]) -> Vec<&String> {
        self.spec_sources
            .iter()
            .filter(|s| !wanted.contains(s))
            .collect()
    }
}

/// An RDS instance or an Aurora cluster as AWS describes it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TargetState {
    pub status: String,
    pub attributes: Attributes,
    pub endpoint: Option<(String, i32)>,
    pub master_user: String,
    pub managed_secret_arn: Option<String>,
    pub security_groups: Vec<String>,
    /// What a modify left for the maintenance window (PendingModifiedValues), by attribute.
    pub pending: Attributes,
    /// Its tags, by key.
    pub tags: BTreeMap<String, String>,
}

impl TargetState {
    /// An attribute's value, empty when AWS did not report it.
    pub(crate) fn get(&self, name: Name) -> String {
        self.attributes.get(&name).cloned().unwrap_or_default()
    }
}

/// One member instance of an Aurora cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct Member {
    pub id: String,
    /// The cluster's writer (after a failover, not necessarily `<id>-1`).
    pub writer: bool,
    pub status: String,
    pub attributes: Attributes,
    /// What a modify left for the maintenance window (PendingModifiedValues), by attribute.
    pub pending: Attributes,
}
