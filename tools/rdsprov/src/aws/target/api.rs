//! The trait each kind of target implements, and what its calls take and give.

use crate::aws::attributes::{Attribute, Timing};
use crate::aws::spec::InstanceSpec;
use crate::aws::state::{Member, TargetState};
use crate::aws::{code, describe, Aws};
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use dbtools::contract::{AttributeChange, PlanResource};
use dbtools::{Error, Result};
use std::collections::BTreeMap;

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

/// The env a call acts for, and the clients it makes the call with.
#[derive(Clone, Copy)]
pub(crate) struct On<'a> {
    pub aws: &'a Aws,
    pub spec: &'a InstanceSpec,
}

/// What a new target is created with besides the spec: its security group, and the master
/// password (None: RDS manages it).
#[derive(Clone, Copy)]
pub(crate) struct New<'a> {
    pub group_id: &'a str,
    pub password: Option<&'a str>,
}

/// A target as describe calls find it, with its members; None when it does not exist.
pub(crate) type Found = Option<(TargetState, Vec<Member>)>;
/// A snapshot's status; None when AWS does not say.
pub(crate) type Status = Option<String>;
/// The parameters set by the user in a parameter group, by name.
pub(crate) type Parameters = BTreeMap<String, String>;
pub(crate) use aws_sdk_rds::types::Parameter;

#[async_trait::async_trait]
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

    /// The target `id` and its members (describe calls only).
    async fn observe(&self, aws: &Aws, id: &str) -> Result<Found>;
    /// Creates it with every attribute the spec sets; says what was created.
    async fn create(&self, on: On<'_>, new: New<'_>) -> Result<String>;
    async fn modify(&self, on: On<'_>, modify: Modify<'_>) -> Result<()>;
    /// Deletes it (an Aurora cluster once its members are gone), with a final snapshot unless
    /// None.
    async fn delete(&self, aws: &Aws, id: &str, snapshot: Option<&str>) -> Result<()>;
    /// Starts a manual snapshot `snapshot_id`.
    async fn snapshot(&self, aws: &Aws, id: &str, snapshot_id: &str) -> Result<()>;
    async fn snapshot_status(&self, aws: &Aws, snapshot_id: &str) -> Result<Status>;
    /// The engine version of snapshot `snapshot_id`; None when there is no such snapshot.
    async fn snapshot_version(&self, aws: &Aws, snapshot_id: &str) -> Result<Option<String>>;
    /// Starts a restore into a new target with the spec's settings (members are added after).
    async fn restore(&self, on: On<'_>, restore: Restore<'_>) -> Result<()>;
    /// Whether `spec.id` (and each member the spec asks for) is `available`.
    async fn readiness(&self, on: On<'_>) -> Result<Readiness>;

    /// The parameters the user set in group `name`, None when the group does not exist.
    async fn parameters(&self, aws: &Aws, name: String) -> Result<Option<Parameters>>;
    /// The family of parameter group `name`, None when the group does not exist.
    async fn group_family(&self, aws: &Aws, name: &str) -> Result<Option<String>>;
    /// Creates the env's parameter group; says what was created.
    async fn create_parameter_group(&self, on: On<'_>) -> Result<String>;
    async fn set_parameters(&self, on: On<'_>, set: Vec<Parameter>) -> Result<()>;
    /// When parameter group `name` was made (Unix seconds), where that matters and is known:
    /// a new Aurora cluster waits for a new cluster parameter group.
    async fn group_created_at(&self, _aws: &Aws, _name: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Members the target has that the spec no longer asks for, and that are ours to remove.
    fn surplus_members(&self, _spec: &InstanceSpec, _members: &[Member]) -> Vec<String> {
        Vec::new()
    }
    /// Adds member `id` to cluster `cluster_id`.
    async fn create_member(&self, _on: On<'_>, _cluster_id: &str, id: &str) -> Result<()> {
        Err(no_members(self.kind(), id))
    }
    async fn modify_member(&self, _on: On<'_>, modify: Modify<'_>) -> Result<()> {
        Err(no_members(self.kind(), modify.id))
    }
    async fn delete_member(&self, _aws: &Aws, id: &str) -> Result<()> {
        Err(no_members(self.kind(), id))
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
fn user_parameters(parameters: &[aws_sdk_rds::types::Parameter]) -> BTreeMap<String, String> {
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

/// What every new instance or cluster gets besides the table's attributes: the master user and
/// its password (RDS manages it when there is none), the env's security group, and the spec's
/// tags, copied to its snapshots. A macro because each kind has its own SDK builder, with the
/// same setters.
macro_rules! with_master_and_tags {
    ($request:expr, $spec:expr, $new:expr) => {
        $request
            .master_username(&$spec.master_user)
            .set_master_user_password($new.password.map(str::to_string))
            .set_manage_master_user_password($new.password.is_none().then_some(true))
            .vpc_security_group_ids($new.group_id)
            .copy_tags_to_snapshot(true)
            .set_tags(Some($crate::aws::target::api::tags($spec)))
    };
}
pub(crate) use with_master_and_tags;

/// A restore from a snapshot that does not exist, with the command that lists them.
pub(crate) fn no_snapshot(what: &str, snapshot: &str, listing: &str, id: &str) -> Error {
    Error::BadInput(format!(
        "{what} {snapshot} does not exist (`aws rds {listing} {id}` lists them)"
    ))
}

/// The security groups a describe answer lists, by id.
pub(crate) fn group_ids(groups: &[aws_sdk_rds::types::VpcSecurityGroupMembership]) -> Vec<String> {
    groups
        .iter()
        .filter_map(|g| g.vpc_security_group_id().map(str::to_string))
        .collect()
}

/// An AWS answer the caller needs nothing of: done, or AWS's error as ours.
pub(crate) trait Answered {
    fn done(self, what: &str) -> Result<()>;
}

impl<T, E, R> Answered for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn done(self, what: &str) -> Result<()> {
        self.map(drop).map_err(|e| describe(what, e))
    }
}

/// The family of a described group, None when AWS says there is no such group.
pub(crate) fn found_family<E, R>(
    answer: std::result::Result<Option<String>, SdkError<E, R>>,
) -> Result<Option<String>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match answer {
        Ok(family) => Ok(family),
        Err(e) if code(&e) == Some("DBParameterGroupNotFound") => Ok(None),
        Err(e) => Err(describe("reading the parameter group's family", e)),
    }
}

/// The parameters the user set, from a describe answer; None when the group does not exist.
pub(crate) fn found_parameters<E, R>(
    answer: std::result::Result<Vec<Parameter>, SdkError<E, R>>,
    what: &str,
) -> Result<Option<Parameters>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match answer {
        Ok(parameters) => Ok(Some(user_parameters(&parameters))),
        Err(e) if code(&e) == Some("DBParameterGroupNotFound") => Ok(None),
        Err(e) => Err(describe(what, e)),
    }
}
