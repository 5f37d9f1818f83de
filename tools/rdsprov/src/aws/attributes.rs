//! The attribute table: every setting rdsprov manages on an RDS instance or an Aurora cluster
//! (and the cluster's member instances) — what the spec asks for, how AWS reports it, how it is
//! set when the resource is created and by a modify, when AWS applies a change, and how drift
//! is judged. Observe, plan and apply all read this one table, so adding an attribute is a row
//! here, a field in the spec and a case in the plan's tests.
//!
//! Where an attribute lives differs by target: on an RDS instance everything is the instance's;
//! Aurora keeps engine, backups, protection and parameters on the cluster (`OnAurora::Cluster`)
//! and the size and network face on each member instance (`OnAurora::Members`, set with the
//! same instance calls as an RDS instance).

use crate::aws::spec::InstanceSpec;
use aws_sdk_rds::operation::create_db_cluster::builders::CreateDBClusterFluentBuilder as CreateCluster;
use aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder as CreateInstance;
use aws_sdk_rds::operation::modify_db_cluster::builders::ModifyDBClusterFluentBuilder as ModifyCluster;
use aws_sdk_rds::operation::modify_db_instance::builders::ModifyDBInstanceFluentBuilder as ModifyInstance;
use aws_sdk_rds::types::{DbCluster, DbInstance, ServerlessV2ScalingConfiguration};
use dbtools::contract::ChangeWhen;

/// The attributes, by name: the `name` of a planned attribute change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Name {
    Class,
    EngineVersion,
    StorageGb,
    MaxStorageGb,
    MultiAz,
    Encrypted,
    BackupRetentionDays,
    BackupWindow,
    MaintenanceWindow,
    DeletionProtection,
    PubliclyAccessible,
    IamAuth,
    PerformanceInsights,
    CaCertificate,
    MonitoringInterval,
    ParameterGroup,
    SubnetGroup,
    MinAcu,
    MaxAcu,
}

impl Name {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Name::Class => "class",
            Name::EngineVersion => "engine_version",
            Name::StorageGb => "storage_gb",
            Name::MaxStorageGb => "max_storage_gb",
            Name::MultiAz => "multi_az",
            Name::Encrypted => "encrypted",
            Name::BackupRetentionDays => "backup_retention_days",
            Name::BackupWindow => "backup_window",
            Name::MaintenanceWindow => "maintenance_window",
            Name::DeletionProtection => "deletion_protection",
            Name::PubliclyAccessible => "publicly_accessible",
            Name::IamAuth => "iam_auth",
            Name::PerformanceInsights => "performance_insights",
            Name::CaCertificate => "ca_certificate",
            Name::MonitoringInterval => "monitoring_interval",
            Name::ParameterGroup => "parameter_group",
            Name::SubnetGroup => "subnet_group",
            Name::MinAcu => "min_acu",
            Name::MaxAcu => "max_acu",
        }
    }
}

/// When AWS applies a change of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    Immediately,
    /// In the maintenance window, unless the spec applies changes immediately.
    Window,
    /// With the next reboot.
    OnReboot,
    /// Never in place: a new resource (restored from a snapshot) is the only way.
    Fixed,
}

impl Timing {
    pub(crate) fn when(self, spec: &InstanceSpec) -> ChangeWhen {
        match self {
            Timing::Immediately => ChangeWhen::Immediately,
            Timing::Window if spec.apply_immediately => ChangeWhen::Immediately,
            Timing::Window => ChangeWhen::MaintenanceWindow,
            Timing::OnReboot => ChangeWhen::OnReboot,
            Timing::Fixed => ChangeWhen::CannotChangeInPlace,
        }
    }
}

/// How an observed value is judged against the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drift {
    /// Any difference is a change to make.
    Exact,
    /// Letters in any case: AWS answers a weekly window's days in lower case
    /// (`sun:05:00-sun:05:30`), whatever case it was given.
    AnyCase,
    /// A newer minor version of the same major is in line: RDS upgrades minor versions by
    /// itself (`AutoMinorVersionUpgrade` is on by default; some upgrades are mandatory) and
    /// never goes back down.
    /// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_UpgradeDBInstance.PostgreSQL.Minor.html>
    SameMajorAtLeast,
    /// More is in line: RDS storage never shrinks ("You can't reduce the amount of storage"),
    /// and storage autoscaling grows it.
    /// <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PIOPS.ModifyingExisting.ScalingUp.html>
    AtLeast,
}

impl Drift {
    pub(crate) fn in_line(self, have: &str, wanted: &str) -> bool {
        match self {
            Drift::Exact => have == wanted,
            Drift::AnyCase => have.eq_ignore_ascii_case(wanted),
            Drift::SameMajorAtLeast => match (version(have), version(wanted)) {
                (Some((major, minor)), Some((wanted_major, wanted_minor))) => {
                    major == wanted_major && minor >= wanted_minor
                }
                _ => have == wanted,
            },
            Drift::AtLeast => match (have.parse::<i64>(), wanted.parse::<i64>()) {
                (Ok(have), Ok(wanted)) => have >= wanted,
                _ => have == wanted,
            },
        }
    }
}

/// Whether these changes move the engine to another major: AWS takes that only with
/// AllowMajorVersionUpgrade ("Major version upgrades must be allowed when specifying a value for
/// the EngineVersion parameter that's a different major version") and a parameter group of the
/// new family, sent in the same modify.
/// <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html>
pub(crate) fn crosses_major(changes: &[dbtools::contract::AttributeChange]) -> bool {
    changes.iter().any(|change| {
        let from = change.from.as_deref().and_then(version);
        change.name == Name::EngineVersion.as_str()
            && matches!((from, version(&change.to)), (Some(from), Some(to)) if from.0 != to.0)
    })
}

/// `16.4` → (16, 4); a major alone (`16`) has minor 0.
fn version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.').unwrap_or((text, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// An attribute as an RDS instance (or an Aurora member instance) holds it.
pub(crate) struct OnInstance {
    pub timing: Timing,
    pub read: fn(&DbInstance) -> Option<String>,
    pub create: fn(CreateInstance, &InstanceSpec) -> CreateInstance,
    /// Sets the planned value (`to`); some settings travel with others from the spec.
    pub modify: fn(ModifyInstance, &str, &InstanceSpec) -> ModifyInstance,
}

/// An attribute as an Aurora cluster holds it.
pub(crate) struct OnCluster {
    pub timing: Timing,
    pub read: fn(&DbCluster) -> Option<String>,
    pub create: fn(CreateCluster, &InstanceSpec) -> CreateCluster,
    pub modify: fn(ModifyCluster, &str, &InstanceSpec) -> ModifyCluster,
}

/// Where Aurora keeps an attribute.
pub(crate) enum OnAurora {
    Cluster(OnCluster),
    /// On each member instance, as an RDS instance keeps it.
    Members,
    /// Not an Aurora setting.
    Nowhere,
}

/// One row of the table.
pub(crate) struct Attribute {
    pub name: Name,
    /// The value the spec asks for; None leaves the attribute to AWS (not set, not compared).
    pub wanted: fn(&InstanceSpec) -> Option<String>,
    pub drift: Drift,
    /// On an RDS instance (and on Aurora members when `aurora` says `Members`); None: not an
    /// RDS instance setting.
    pub instance: Option<OnInstance>,
    pub aurora: OnAurora,
}

fn flag(to: &str) -> bool {
    to == "true"
}

/// ACUs as the spec and the plan print them: `0.5`, `4`.
pub(crate) fn acu(value: f64) -> String {
    value.to_string()
}

/// Aurora Serverless v2's capacity range as RDS takes it (None for an RDS instance).
pub(crate) fn scaling(spec: &InstanceSpec) -> Option<ServerlessV2ScalingConfiguration> {
    spec.serverless.map(|range| {
        ServerlessV2ScalingConfiguration::builder()
            .min_capacity(range.min_acu)
            .max_capacity(range.max_acu)
            .build()
    })
}

fn capacity(
    cluster: &DbCluster,
) -> Option<&aws_sdk_rds::types::ServerlessV2ScalingConfigurationInfo> {
    cluster.serverless_v2_scaling_configuration()
}

/// A change of either end of the capacity range sends the whole range.
fn set_capacity(request: ModifyCluster, _: &str, spec: &InstanceSpec) -> ModifyCluster {
    request.set_serverless_v2_scaling_configuration(scaling(spec))
}

/// Every attribute rdsprov manages, in the order a plan lists them.
pub(crate) const TABLE: &[Attribute] = &[
    Attribute {
        name: Name::Class,
        wanted: |spec| Some(spec.class.clone()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| db.db_instance_class().map(str::to_string),
            create: |request, spec| request.db_instance_class(&spec.class),
            modify: |request, to, _| request.db_instance_class(to),
        }),
        aurora: OnAurora::Members,
    },
    Attribute {
        name: Name::EngineVersion,
        wanted: |spec| Some(spec.engine_version.clone()),
        drift: Drift::SameMajorAtLeast,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| db.engine_version().map(str::to_string),
            create: |request, spec| request.engine_version(&spec.engine_version),
            modify: |request, to, _| request.engine_version(to),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Window,
            read: |cluster| cluster.engine_version().map(str::to_string),
            create: |request, spec| request.engine_version(&spec.engine_version),
            modify: |request, to, _| request.engine_version(to),
        }),
    },
    Attribute {
        name: Name::MinAcu,
        wanted: |spec| spec.serverless.map(|range| acu(range.min_acu)),
        drift: Drift::Exact,
        instance: None,
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| capacity(cluster).and_then(|s| s.min_capacity()).map(acu),
            create: |request, spec| request.set_serverless_v2_scaling_configuration(scaling(spec)),
            modify: set_capacity,
        }),
    },
    Attribute {
        name: Name::MaxAcu,
        wanted: |spec| spec.serverless.map(|range| acu(range.max_acu)),
        drift: Drift::Exact,
        instance: None,
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| capacity(cluster).and_then(|s| s.max_capacity()).map(acu),
            create: |request, spec| request.set_serverless_v2_scaling_configuration(scaling(spec)),
            modify: set_capacity,
        }),
    },
    Attribute {
        name: Name::StorageGb,
        wanted: |spec| Some(spec.storage_gb.to_string()),
        drift: Drift::AtLeast,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| db.allocated_storage().map(|v| v.to_string()),
            create: |request, spec| request.allocated_storage(spec.storage_gb),
            modify: |request, to, spec| {
                request.allocated_storage(to.parse().unwrap_or(spec.storage_gb))
            },
        }),
        aurora: OnAurora::Nowhere,
    },
    Attribute {
        name: Name::MultiAz,
        wanted: |spec| Some(spec.multi_az.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| db.multi_az().map(|v| v.to_string()),
            create: |request, spec| request.multi_az(spec.multi_az),
            modify: |request, to, _| request.multi_az(flag(to)),
        }),
        // Aurora's Multi-AZ is a second member (`<id>-2`), planned as an instance of its own.
        aurora: OnAurora::Nowhere,
    },
    Attribute {
        name: Name::Encrypted,
        wanted: |spec| Some(spec.encrypted.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Fixed,
            read: |db| db.storage_encrypted().map(|v| v.to_string()),
            create: |request, spec| request.storage_encrypted(spec.encrypted),
            modify: |request, _, _| request,
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Fixed,
            read: |cluster| cluster.storage_encrypted().map(|v| v.to_string()),
            create: |request, spec| request.storage_encrypted(spec.encrypted),
            modify: |request, _, _| request,
        }),
    },
    Attribute {
        name: Name::BackupRetentionDays,
        wanted: |spec| Some(spec.backup_retention_days.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.backup_retention_period().map(|v| v.to_string()),
            create: |request, spec| request.backup_retention_period(spec.backup_retention_days),
            modify: |request, _, spec| request.backup_retention_period(spec.backup_retention_days),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| cluster.backup_retention_period().map(|v| v.to_string()),
            create: |request, spec| request.backup_retention_period(spec.backup_retention_days),
            modify: |request, _, spec| request.backup_retention_period(spec.backup_retention_days),
        }),
    },
    Attribute {
        name: Name::DeletionProtection,
        wanted: |spec| Some(spec.deletion_protection.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.deletion_protection().map(|v| v.to_string()),
            create: |request, spec| request.deletion_protection(spec.deletion_protection),
            modify: |request, to, _| request.deletion_protection(flag(to)),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| cluster.deletion_protection().map(|v| v.to_string()),
            create: |request, spec| request.deletion_protection(spec.deletion_protection),
            modify: |request, to, _| request.deletion_protection(flag(to)),
        }),
    },
    Attribute {
        name: Name::PubliclyAccessible,
        wanted: |spec| Some(spec.publicly_accessible.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.publicly_accessible().map(|v| v.to_string()),
            create: |request, spec| request.publicly_accessible(spec.publicly_accessible),
            modify: |request, to, _| request.publicly_accessible(flag(to)),
        }),
        aurora: OnAurora::Members,
    },
    Attribute {
        name: Name::IamAuth,
        wanted: |spec| Some(spec.iam_auth.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| {
                db.iam_database_authentication_enabled()
                    .map(|v| v.to_string())
            },
            create: |request, spec| request.enable_iam_database_authentication(spec.iam_auth),
            modify: |request, to, _| request.enable_iam_database_authentication(flag(to)),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| {
                cluster
                    .iam_database_authentication_enabled()
                    .map(|v| v.to_string())
            },
            create: |request, spec| request.enable_iam_database_authentication(spec.iam_auth),
            modify: |request, to, _| request.enable_iam_database_authentication(flag(to)),
        }),
    },
    Attribute {
        name: Name::PerformanceInsights,
        wanted: |spec| Some(spec.performance_insights.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| {
                Some(
                    db.performance_insights_enabled()
                        .unwrap_or(false)
                        .to_string(),
                )
            },
            create: |request, spec| request.enable_performance_insights(spec.performance_insights),
            modify: |request, to, _| request.enable_performance_insights(flag(to)),
        }),
        aurora: OnAurora::Members,
    },
    Attribute {
        name: Name::ParameterGroup,
        wanted: |spec| Some(spec.parameter_group_name()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::OnReboot,
            read: |db| {
                db.db_parameter_groups()
                    .first()
                    .and_then(|g| g.db_parameter_group_name())
                    .map(str::to_string)
            },
            create: |request, spec| request.db_parameter_group_name(spec.parameter_group_name()),
            modify: |request, to, _| request.db_parameter_group_name(to),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::OnReboot,
            read: |cluster| cluster.db_cluster_parameter_group().map(str::to_string),
            create: |request, spec| {
                request.db_cluster_parameter_group_name(spec.parameter_group_name())
            },
            modify: |request, to, _| request.db_cluster_parameter_group_name(to),
        }),
    },
    Attribute {
        name: Name::MonitoringInterval,
        wanted: |spec| Some(spec.monitoring.as_ref().map_or(0, |m| m.0).to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| Some(db.monitoring_interval().unwrap_or(0).to_string()),
            create: |request, spec| {
                request
                    .set_monitoring_interval(spec.monitoring.as_ref().map(|m| m.0))
                    .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1))
            },
            modify: |request, to, spec| {
                request
                    .monitoring_interval(to.parse().unwrap_or(0))
                    .set_monitoring_role_arn(spec.monitoring.clone().map(|m| m.1))
            },
        }),
        aurora: OnAurora::Members,
    },
    Attribute {
        name: Name::SubnetGroup,
        wanted: InstanceSpec::subnet_group_name,
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Fixed,
            read: |db| {
                db.db_subnet_group()
                    .and_then(|g| g.db_subnet_group_name())
                    .map(str::to_string)
            },
            create: |request, spec| request.set_db_subnet_group_name(spec.subnet_group_name()),
            modify: |request, _, _| request,
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Fixed,
            read: |cluster| cluster.db_subnet_group().map(str::to_string),
            create: |request, spec| request.set_db_subnet_group_name(spec.subnet_group_name()),
            modify: |request, _, _| request,
        }),
    },
    Attribute {
        name: Name::MaxStorageGb,
        wanted: |spec| spec.max_storage_gb.map(|max| max.to_string()),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.max_allocated_storage().map(|v| v.to_string()),
            create: |request, spec| request.set_max_allocated_storage(spec.max_storage_gb),
            modify: |request, _, spec| request.set_max_allocated_storage(spec.max_storage_gb),
        }),
        aurora: OnAurora::Nowhere,
    },
    Attribute {
        name: Name::BackupWindow,
        wanted: |spec| spec.backup_window.clone(),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.preferred_backup_window().map(str::to_string),
            create: |request, spec| request.set_preferred_backup_window(spec.backup_window.clone()),
            modify: |request, to, _| request.preferred_backup_window(to),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| cluster.preferred_backup_window().map(str::to_string),
            create: |request, spec| request.set_preferred_backup_window(spec.backup_window.clone()),
            modify: |request, to, _| request.preferred_backup_window(to),
        }),
    },
    Attribute {
        name: Name::MaintenanceWindow,
        wanted: |spec| spec.maintenance_window.clone(),
        drift: Drift::AnyCase,
        instance: Some(OnInstance {
            timing: Timing::Immediately,
            read: |db| db.preferred_maintenance_window().map(str::to_string),
            create: |request, spec| {
                request.set_preferred_maintenance_window(spec.maintenance_window.clone())
            },
            modify: |request, to, _| request.preferred_maintenance_window(to),
        }),
        aurora: OnAurora::Cluster(OnCluster {
            timing: Timing::Immediately,
            read: |cluster| cluster.preferred_maintenance_window().map(str::to_string),
            create: |request, spec| {
                request.set_preferred_maintenance_window(spec.maintenance_window.clone())
            },
            modify: |request, to, _| request.preferred_maintenance_window(to),
        }),
    },
    Attribute {
        name: Name::CaCertificate,
        wanted: |spec| spec.ca_certificate.clone(),
        drift: Drift::Exact,
        instance: Some(OnInstance {
            timing: Timing::Window,
            read: |db| db.ca_certificate_identifier().map(str::to_string),
            create: |request, spec| {
                request.set_ca_certificate_identifier(spec.ca_certificate.clone())
            },
            modify: |request, to, _| request.ca_certificate_identifier(to),
        }),
        aurora: OnAurora::Members,
    },
];

/// The row of a planned attribute change's name; None for what is not in the table (the
/// security group membership, which the plan derives from the observed group).
pub(crate) fn named(name: &str) -> Option<&'static Attribute> {
    TABLE.iter().find(|a| a.name.as_str() == name)
}

/// The rows an RDS instance holds.
pub(crate) fn on_instance() -> impl Iterator<Item = (&'static Attribute, &'static OnInstance)> {
    TABLE
        .iter()
        .filter_map(|a| a.instance.as_ref().map(|held| (a, held)))
}

/// The rows an Aurora cluster holds.
pub(crate) fn on_cluster() -> impl Iterator<Item = (&'static Attribute, &'static OnCluster)> {
    TABLE.iter().filter_map(|a| match &a.aurora {
        OnAurora::Cluster(held) => Some((a, held)),
        _ => None,
    })
}

/// The rows each Aurora member instance holds.
pub(crate) fn on_members() -> impl Iterator<Item = (&'static Attribute, &'static OnInstance)> {
    TABLE.iter().filter_map(|a| match (&a.aurora, &a.instance) {
        (OnAurora::Members, Some(held)) => Some((a, held)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_judged_as_aws_moves() {
        assert!(Drift::SameMajorAtLeast.in_line("16.9", "16.4"));
        assert!(Drift::SameMajorAtLeast.in_line("16.10", "16.9"));
        assert!(!Drift::SameMajorAtLeast.in_line("16.3", "16.4"));
        assert!(
            !Drift::SameMajorAtLeast.in_line("17.1", "16.4"),
            "a major is never drift"
        );
        assert!(Drift::AtLeast.in_line("24", "20"));
        assert!(!Drift::AtLeast.in_line("20", "24"));
        assert!(Drift::AnyCase.in_line("sun:04:30-sun:05:30", "Sun:04:30-Sun:05:30"));
        assert!(!Drift::Exact.in_line("a", "A"));
    }

    #[test]
    fn names_are_unique_and_each_row_is_held_somewhere() {
        let mut names: Vec<&str> = TABLE.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a name twice in the table");
        for attribute in TABLE {
            assert!(
                attribute.instance.is_some() || matches!(attribute.aurora, OnAurora::Cluster(_)),
                "{} is held nowhere",
                attribute.name.as_str()
            );
            assert!(
                !matches!(attribute.aurora, OnAurora::Members) || attribute.instance.is_some(),
                "{}: members are instances",
                attribute.name.as_str()
            );
            assert_eq!(
                named(attribute.name.as_str()).map(|a| a.name),
                Some(attribute.name)
            );
        }
    }
}
