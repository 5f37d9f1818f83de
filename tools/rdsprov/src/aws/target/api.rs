//! The trait each kind of target implements, and what its calls take and give.

use crate::aws::attributes::{Attribute, Timing};
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Member, TargetState};
use crate::aws::Aws;
use dbtools::contract::{AttributeChange, PlanResource};
use dbtools::{Error, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

/// An AWS call in flight.
pub(crate) type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where a restore takes its data from.
pub(crate) enum RestoreSource {
    Snapshot(String),
    /// RFC 3339, e.g. `2026-11-23T08:00:00Z`.
    Time(String),
    Latest,
}

/// A restore into a new resource `id`, in the live env's security group, with these tags.
pub(crate) struct Restore<'a> {
    pub source: &'a RestoreSource,
    pub id: &'a str,
    pub groups: Vec<String>,
    pub tags: Vec<aws_sdk_rds::types::Tag>,
}

/// A modify of an existing target: the planned attribute changes, the security group it must
/// be in, a master password to hand over, and whether AWS applies it now.
pub(crate) struct Modify<'a> {
    pub id: &'a str,
    pub changes: &'a [AttributeChange],
    pub group_id: Option<&'a str>,
    pub password: Option<&'a str>,
    pub immediately: bool,
}

/// How far a target is on its way to `available`: ready, or the status to show while waiting.
/// States it will not leave by itself are errors.
pub(crate) type Readiness = Option<String>;

pub(crate) trait Target: Sync {
    /// "instance" or "Aurora cluster", for messages.
    fn kind(&self) -> &'static str;
    /// The resource a plan names it by.
    fn resource(&self) -> PlanResource;
    /// The attributes this target holds itself, with when AWS applies a change of each.
    fn attributes(&self) -> Vec<(&'static Attribute, Timing)>;
    /// The attributes each member instance holds (none for an RDS instance).
    fn member_attributes(&self) -> Vec<(&'static Attribute, Timing)> {
        Vec::new()
    }

    /// The target `id` and its members, or None when it does not exist (describe calls only).
    fn observe<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
    ) -> Pending<'a, Option<(TargetState, Vec<Member>)>>;
    /// Creates it with every attribute the spec sets; says what was created.
    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        group_id: &'a str,
        password: Option<&'a str>,
    ) -> Pending<'a, String>;
    fn modify<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        modify: Modify<'a>,
    ) -> Pending<'a, ()>;
    /// Deletes it (an Aurora cluster once its members are gone), with a final snapshot unless
    /// None.
    fn delete<'a>(
        &'a self,
        aws: &'a Aws,
        id: &'a str,
        final_snapshot: Option<&'a str>,
    ) -> Pending<'a, ()>;
    /// Starts a manual snapshot `snapshot_id`.
    fn snapshot<'a>(&'a self, aws: &'a Aws, id: &'a str, snapshot_id: &'a str) -> Pending<'a, ()>;
    /// The status of snapshot `snapshot_id`, None when AWS does not say.
    fn snapshot_status<'a>(
        &'a self,
        aws: &'a Aws,
        snapshot_id: &'a str,
    ) -> Pending<'a, Option<String>>;
    /// Starts a restore into a new target with the spec's settings (members are added after).
    fn restore<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        restore: Restore<'a>,
    ) -> Pending<'a, ()>;
    /// Whether `spec.id` (and each member the spec asks for) is `available`.
    fn readiness<'a>(&'a self, aws: &'a Aws, spec: &'a InstanceSpec) -> Pending<'a, Readiness>;

    /// The parameters the user set in group `name`, None when the group does not exist.
    fn parameters<'a>(
        &'a self,
        aws: &'a Aws,
        name: String,
    ) -> Pending<'a, Option<BTreeMap<String, String>>>;
    fn create_parameter_group<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
    ) -> Pending<'a, ()>;
    fn set_parameters<'a>(
        &'a self,
        aws: &'a Aws,
        spec: &'a InstanceSpec,
        parameters: Vec<aws_sdk_rds::types::Parameter>,
    ) -> Pending<'a, ()>;

    /// Adds member `id` to cluster `cluster_id`.
    fn create_member<'a>(
        &'a self,
        _aws: &'a Aws,
        _spec: &'a InstanceSpec,
        _cluster_id: &'a str,
        id: &'a str,
    ) -> Pending<'a, ()> {
        Box::pin(async move { Err(no_members(self.kind(), id)) })
    }
    fn modify_member<'a>(
        &'a self,
        _aws: &'a Aws,
        _spec: &'a InstanceSpec,
        modify: Modify<'a>,
    ) -> Pending<'a, ()> {
        Box::pin(async move { Err(no_members(self.kind(), modify.id)) })
    }
    fn delete_member<'a>(&'a self, _aws: &'a Aws, id: &'a str) -> Pending<'a, ()> {
        Box::pin(async move { Err(no_members(self.kind(), id)) })
    }
}

fn no_members(kind: &str, id: &str) -> Error {
    Error::Failed(format!("an RDS {kind} has no member instances ({id})"))
}

/// The spec's tags as RDS takes them.
pub(crate) fn tags(spec: &InstanceSpec) -> Vec<aws_sdk_rds::types::Tag> {
    spec.tags
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// An RFC 3339 time as the SDK takes it.
pub(crate) fn parse_time(time: &str) -> Result<aws_sdk_rds::primitives::DateTime> {
    aws_sdk_rds::primitives::DateTime::from_str(
        time,
        aws_sdk_rds::primitives::DateTimeFormat::DateTime,
    )
    .map_err(|_| {
        Error::BadInput(format!(
            "--to-time {time:?}: use RFC 3339 UTC, e.g. 2026-11-23T08:00:00Z"
        ))
    })
}

/// The user-set parameters of a describe answer, by name.
pub(crate) fn user_parameters(
    parameters: &[aws_sdk_rds::types::Parameter],
) -> BTreeMap<String, String> {
    parameters
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_name()?.to_string(),
                p.parameter_value()?.to_string(),
            ))
        })
        .collect()
}
