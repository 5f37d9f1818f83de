//! The AWS spec: per env one RDS PostgreSQL instance and what surrounds it, as a TOML or JSON
//! file (`ops/aws/rds.toml`) or on stdin. Secure by default: encrypted storage, deletion
//! protection on every env but dev, a final snapshot on delete, not publicly accessible,
//! `rds.force_ssl = 1`, and a security group that admits the listed CIDRs only — `0.0.0.0/0`
//! is refused unless `allow_public_ingress = true` says so on purpose.
//!
//! ```toml
//! region = "eu-west-1"                  # else AWS_REGION
//! tags = { app = "combine" }            # on everything, with managed-by = rdsprov
//! [env.dev]
//! id = "combine-dev"
//! class = "db.t4g.micro"
//! engine_version = "17"                # a major: the newest minor AWS offers (or "17.6")
//! storage_gb = 20
//! ingress = ["203.0.113.7/32"]          # home network, app subnet, an app's sg-…(port 5432)
//! publicly_accessible = true
//! [env.test]
//! id = "combine-test"
//! engine = "aurora-postgresql"          # Aurora Serverless v2: a cluster and a db.serverless writer
//! min_acu = 0.5                         # capacity range in ACUs (1 ACU ≈ 2 GiB of memory)
//! max_acu = 4
//! ```

use crate::aws::{catalog, rules};
use dbtools::{names, Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    region: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    env: BTreeMap<String, EnvSpecFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSpecFile {
    id: String,
    #[serde(default = "default_engine")]
    engine: String,
    #[serde(default = "default_engine_version")]
    engine_version: String,
    /// Required for `postgres`; Aurora Serverless v2 runs `db.serverless` (the default there).
    class: Option<String>,
    /// Aurora Serverless v2 capacity range, in ACUs (0.5 steps; a minimum of 0 pauses when idle).
    min_acu: Option<f64>,
    max_acu: Option<f64>,
    #[serde(default = "default_storage")]
    storage_gb: i32,
    max_storage_gb: Option<i32>,
    #[serde(default)]
    multi_az: bool,
    #[serde(default = "yes")]
    encrypted: bool,
    #[serde(default = "default_retention")]
    backup_retention_days: i32,
    backup_window: Option<String>,
    maintenance_window: Option<String>,
    deletion_protection: Option<bool>,
    #[serde(default = "yes")]
    final_snapshot: bool,
    #[serde(default)]
    performance_insights: bool,
    ca_certificate: Option<String>,
    #[serde(default)]
    iam_auth: bool,
    vpc_id: Option<String>,
    /// Subnets (two zones or more) of `vpc_id` for the DB subnet group `rdsprov-<id>`; the
    /// default VPC needs none.
    #[serde(default)]
    subnet_ids: Vec<String>,
    /// Enhanced monitoring every N seconds (0 = off; 1, 5, 10, 15, 30, 60), published by RDS
    /// with `monitoring_role_arn` (a role trusting monitoring.rds.amazonaws.com).
    #[serde(default)]
    monitoring_interval: i32,
    monitoring_role_arn: Option<String>,
    #[serde(default)]
    ingress: Vec<String>,
    #[serde(default)]
    allow_public_ingress: bool,
    #[serde(default)]
    publicly_accessible: bool,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    #[serde(default = "default_master_user")]
    master_user: String,
    /// `secrets-manager` (we generate the password and keep it there) or `rds-managed`.
    #[serde(default = "default_credentials")]
    credentials: String,
    /// Apply modifications now rather than in the maintenance window (default: on dev only).
    apply_immediately: Option<bool>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    alarms: AlarmsFile,
}

/// `[env.NAME.alarms]`: CloudWatch alarms to an SNS topic, on by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmsFile {
    #[serde(default = "yes")]
    enabled: bool,
    /// SNS topic name (created when missing); `rdsprov-<id>-alarms` by default.
    topic: Option<String>,
    /// An email address subscribed to the topic (AWS asks it to confirm).
    email: Option<String>,
    #[serde(default = "default_cpu_percent")]
    cpu_percent: f64,
    connections: Option<f64>,
    #[serde(default = "default_free_storage_percent")]
    free_storage_percent: f64,
    freeable_memory_mb: Option<f64>,
    /// Aurora Serverless v2: fires when the writer uses more than this share of max_acu.
    #[serde(default = "default_acu_percent")]
    acu_percent: f64,
}

impl Default for AlarmsFile {
    fn default() -> Self {
        AlarmsFile {
            enabled: true,
            topic: None,
            email: None,
            cpu_percent: default_cpu_percent(),
            connections: None,
            free_storage_percent: default_free_storage_percent(),
            freeable_memory_mb: None,
            acu_percent: default_acu_percent(),
        }
    }
}

fn default_cpu_percent() -> f64 {
    80.0
}
fn default_free_storage_percent() -> f64 {
    10.0
}
fn default_acu_percent() -> f64 {
    90.0
}

/// The alarms of one instance, thresholds resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlarmsSpec {
    pub topic: String,
    pub email: Option<String>,
    pub cpu_percent: f64,
    pub connections: f64,
    pub free_storage_bytes: f64,
    pub freeable_memory_bytes: f64,
    /// Aurora Serverless v2 only: its fourth alarm watches capacity instead of free storage
    /// (Aurora storage grows by itself).
    pub acu_percent: f64,
}

impl AlarmsSpec {
    pub(crate) fn count(&self) -> usize {
        4
    }
}

/// RDS sets max_connections to DBInstanceClassMemory / 9531392, where DBInstanceClassMemory is
/// the class's memory less what the OS keeps (about a quarter on small classes); Aurora
/// Serverless v2 takes the memory of its max_acu. The default connections alarm fires at 80%
/// of that estimate.
fn default_connections(memory_gib: f64) -> f64 {
    let memory = memory_gib * 1024.0 * 1024.0 * 1024.0;
    ((memory * 0.75 / 9_531_392.0) * 0.8).floor()
}

fn resolve_alarms(
    file: &AlarmsFile,
    id: &str,
    memory_gib: f64,
    storage_gb: i32,
) -> std::result::Result<Option<AlarmsSpec>, String> {
    if !file.enabled {
        return Ok(None);
    }
    let topic = file
        .topic
        .clone()
        .unwrap_or_else(|| format!("rdsprov-{id}-alarms"));
    let valid_topic = !topic.is_empty()
        && topic.len() <= 256
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_topic {
        return Err(format!(
            "alarms.topic {topic:?}: an SNS topic name is 1 to 256 letters, digits, '-' or '_'"
        ));
    }
    if let Some(email) = &file.email {
        let plausible = email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !email.chars().any(char::is_whitespace);
        if !plausible {
            return Err(format!("alarms.email {email:?} is not an email address"));
        }
    }
    for (name, value, max) in [
        ("cpu_percent", file.cpu_percent, 100.0),
        ("free_storage_percent", file.free_storage_percent, 100.0),
        ("acu_percent", file.acu_percent, 100.0),
    ] {
        if !(value > 0.0 && value <= max) {
            return Err(format!(
                "alarms.{name} {value}: must be above 0 and at most {max}"
            ));
        }
    }
    let memory_bytes = memory_gib * 1024.0 * 1024.0 * 1024.0;
    let freeable_memory_bytes = match file.freeable_memory_mb {
        Some(mb) if mb > 0.0 => mb * 1024.0 * 1024.0,
        Some(mb) => return Err(format!("alarms.freeable_memory_mb {mb}: must be above 0")),
        None => (memory_bytes * 0.1).max(64.0 * 1024.0 * 1024.0),
    };
    let connections = match file.connections {
        Some(n) if n >= 1.0 => n,
        Some(n) => return Err(format!("alarms.connections {n}: must be at least 1")),
        None => default_connections(memory_gib),
    };
    Ok(Some(AlarmsSpec {
        topic,
        email: file.email.clone(),
        cpu_percent: file.cpu_percent,
        connections,
        free_storage_bytes: f64::from(storage_gb)
            * 1024.0
            * 1024.0
            * 1024.0
            * file.free_storage_percent
            / 100.0,
        freeable_memory_bytes,
        acu_percent: file.acu_percent,
    }))
}

fn default_engine() -> String {
    "postgres".into()
}
/// A major alone: the newest minor AWS offers when the instance is created.
fn default_engine_version() -> String {
    "17".into()
}
fn default_storage() -> i32 {
    20
}
fn default_retention() -> i32 {
    7
}
fn default_master_user() -> String {
    "postgres".into()
}
fn default_credentials() -> String {
    "secrets-manager".into()
}
fn yes() -> bool {
    true
}

/// One env's instance, validated, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InstanceSpec {
    pub env: String,
    pub id: String,
    pub engine: String,
    pub engine_version: String,
    pub class: String,
    pub storage_gb: i32,
    pub max_storage_gb: Option<i32>,
    pub multi_az: bool,
    pub encrypted: bool,
    pub backup_retention_days: i32,
    pub backup_window: Option<String>,
    pub maintenance_window: Option<String>,
    pub deletion_protection: bool,
    pub final_snapshot: bool,
    pub performance_insights: bool,
    pub ca_certificate: Option<String>,
    pub iam_auth: bool,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    /// Seconds between enhanced-monitoring samples, with the role RDS publishes them as.
    pub monitoring: Option<(i32, String)>,
    pub ingress: Vec<String>,
    pub publicly_accessible: bool,
    pub parameters: BTreeMap<String, String>,
    pub master_user: String,
    pub rds_managed_password: bool,
    pub apply_immediately: bool,
    pub tags: BTreeMap<String, String>,
    /// None when `[env.NAME.alarms] enabled = false`.
    pub alarms: Option<AlarmsSpec>,
    /// Some for engine `aurora-postgresql`: `id` names the cluster, its instances are members.
    pub serverless: Option<Serverless>,
    /// The parameter group observe found for the spec's family, when not `rdsprov-<id>`.
    pub parameter_group: Option<String>,
}

/// Aurora Serverless v2's capacity range, in ACUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Serverless {
    pub min_acu: f64,
    pub max_acu: f64,
}

pub(crate) const AURORA: &str = "aurora-postgresql";
pub(crate) const SERVERLESS_CLASS: &str = "db.serverless";

impl InstanceSpec {
    pub(crate) fn is_aurora(&self) -> bool {
        self.serverless.is_some()
    }

    /// The cluster's member instances, writer first: `<id>-1`, and `<id>-2` (a reader in
    /// another zone, which Aurora fails over to) when the spec asks for Multi-AZ.
    pub(crate) fn member_ids(&self) -> Vec<String> {
        if !self.is_aurora() {
            return Vec::new();
        }
        let mut ids = vec![format!("{}-1", self.id)];
        if self.multi_az {
            ids.push(format!("{}-2", self.id));
        }
        ids
    }

    /// The instance whose CloudWatch metrics the alarms watch: the writer on Aurora.
    pub(crate) fn monitored_instance(&self) -> String {
        self.member_ids()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.id.clone())
    }

    pub(crate) fn security_group_name(&self) -> String {
        format!("rdsprov-{}", self.id)
    }

    /// The parameter group of the spec's engine family: `rdsprov-<id>`, or (when that name
    /// holds another family's, after a major upgrade) `rdsprov-<id>-<family>` — which one is
    /// read from AWS (`observe`, `Observed::settled`).
    pub(crate) fn parameter_group_name(&self) -> String {
        self.parameter_group
            .clone()
            .unwrap_or_else(|| format!("rdsprov-{}", self.id))
    }

    /// The DB subnet group we manage, when the spec lists subnets.
    pub(crate) fn subnet_group_name(&self) -> Option<String> {
        (!self.subnet_ids.is_empty()).then(|| format!("rdsprov-{}", self.id))
    }

    /// The parameter group family of the engine version: `postgres16`.
    pub(crate) fn parameter_group_family(&self) -> String {
        let major = self.engine_version.split('.').next().unwrap_or_default();
        format!("{}{major}", self.engine)
    }

    /// Where a generated master password is kept (secrets-manager credentials).
    pub(crate) fn secret_name(&self) -> String {
        format!("rdsprov/{}/master", self.id)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub region: String,
    pub instances: Vec<InstanceSpec>,
}

/// Parses a spec (TOML, or JSON when it starts with `{`) and checks it before any AWS call.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Spec> {
    let file: SpecFile = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| Error::BadInput(format!("spec {origin}: {e}")))?
    } else {
        dbtools::config::parse_toml(text, &format!("spec {origin}"))?
    };
    let region = file
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .or_else(|| {
            std::env::var("AWS_DEFAULT_REGION")
                .ok()
                .filter(|r| !r.is_empty())
        })
        .ok_or_else(|| {
            Error::BadInput(format!(
                "spec {origin}: no region: set region in the spec or AWS_REGION"
            ))
        })?;
    let mut instances: Vec<InstanceSpec> = Vec::new();
    for (env, raw) in &file.env {
        let at = |what: String| Error::BadInput(format!("spec {origin}: env {env}: {what}"));
        names::check_env_name(env)?;
        names::check_instance_id(&raw.id).map_err(|e| at(e.to_string()))?;
        if let Some(other) = instances.iter().find(|i| i.id == raw.id) {
            return Err(at(format!(
                "instance id {} is also env {}'s: each env gets its own instance (tenants share one with `rdsprov tenant add`)",
                raw.id, other.env
            )));
        }
        let serverless = match raw.engine.as_str() {
            "postgres" if raw.min_acu.is_some() || raw.max_acu.is_some() => {
                return Err(at(format!(
                    "min_acu/max_acu size Aurora Serverless v2: set engine = \"{AURORA}\", or drop them for an RDS instance class"
                )))
            }
            "postgres" => None,
            AURORA => Some(check_serverless(raw).map_err(at)?),
            other => {
                return Err(at(format!(
                    "engine {other:?}: use \"postgres\" (RDS for PostgreSQL) or \"{AURORA}\" (Aurora Serverless v2)"
                )))
            }
        };
        let class = match (&serverless, &raw.class) {
            (Some(_), _) => SERVERLESS_CLASS.to_string(),
            (None, Some(class)) => class.clone(),
            (None, None) => {
                return Err(at(
                    "no class: name an instance class, e.g. class = \"db.t4g.micro\"".into(),
                ))
            }
        };
        if serverless.is_none() {
            catalog::check_class(&class).map_err(at)?;
        }
        catalog::check_engine_version(&raw.engine, &raw.engine_version).map_err(at)?;
        names::check_sql_name(&raw.master_user, "master user").map_err(|e| at(e.to_string()))?;
        rules::backup_retention(raw.backup_retention_days, serverless.is_some()).map_err(at)?;
        rules::windows(
            raw.backup_window.as_deref(),
            raw.maintenance_window.as_deref(),
        )
        .map_err(at)?;
        if serverless.is_none() && !(20..=65536).contains(&raw.storage_gb) {
            return Err(at(format!(
                "storage_gb {}: RDS gp3 storage is 20 to 65536 GB",
                raw.storage_gb
            )));
        }
        if let Some(max) = raw.max_storage_gb {
            rules::max_storage(raw.storage_gb, max).map_err(at)?;
        }
        for cidr in raw.ingress.iter().filter(|i| !is_security_group(i)) {
            check_cidr(cidr).map_err(at)?;
            if (cidr == "0.0.0.0/0" || cidr == "::/0") && !raw.allow_public_ingress {
                return Err(at(format!(
                    "ingress {cidr} admits the whole internet: list your networks (home /32, app subnet), or set allow_public_ingress = true if you really mean it"
                )));
            }
        }
        check_network(raw).map_err(at)?;
        let monitoring = check_monitoring(raw).map_err(at)?;
        let rds_managed_password = match raw.credentials.as_str() {
            "secrets-manager" => false,
            "rds-managed" => true,
            other => {
                return Err(at(format!(
                    "credentials {other:?}: use \"secrets-manager\" or \"rds-managed\""
                )))
            }
        };
        let memory_gib = match &serverless {
            Some(range) => range.max_acu * catalog::GIB_PER_ACU,
            None => catalog::class_memory_gib(&class),
        };
        let alarms =
            resolve_alarms(&raw.alarms, &raw.id, memory_gib, raw.storage_gb).map_err(at)?;
        if let Some(value) = raw.parameters.get("rds.force_ssl").filter(|v| *v != "1") {
            return Err(at(format!(
                "parameters: rds.force_ssl = {value:?}: rdsprov keeps it 1 (every connection over TLS); leave it out"
            )));
        }
        let mut parameters = BTreeMap::from([("rds.force_ssl".to_string(), "1".to_string())]);
        parameters.extend(raw.parameters.clone());
        let mut tags = BTreeMap::from([
            ("managed-by".to_string(), "rdsprov".to_string()),
            ("env".to_string(), env.clone()),
        ]);
        tags.extend(file.tags.clone());
        tags.extend(raw.tags.clone());
        instances.push(InstanceSpec {
            env: env.clone(),
            id: raw.id.clone(),
            engine: raw.engine.clone(),
            engine_version: raw.engine_version.clone(),
            class,
            storage_gb: raw.storage_gb,
            max_storage_gb: raw.max_storage_gb,
            multi_az: raw.multi_az,
            encrypted: raw.encrypted,
            backup_retention_days: raw.backup_retention_days,
            backup_window: raw.backup_window.clone(),
            maintenance_window: raw.maintenance_window.clone(),
            deletion_protection: raw.deletion_protection.unwrap_or(env != "dev"),
            final_snapshot: raw.final_snapshot,
            performance_insights: raw.performance_insights,
            ca_certificate: raw.ca_certificate.clone(),
            iam_auth: raw.iam_auth,
            vpc_id: raw.vpc_id.clone(),
            subnet_ids: {
                let mut ids = raw.subnet_ids.clone();
                ids.sort();
                ids
            },
            monitoring,
            ingress: raw.ingress.clone(),
            publicly_accessible: raw.publicly_accessible,
            parameters,
            master_user: raw.master_user.clone(),
            rds_managed_password,
            apply_immediately: raw.apply_immediately.unwrap_or(env == "dev"),
            tags,
            alarms,
            serverless,
            parameter_group: None,
        });
    }
    if instances.is_empty() {
        return Err(Error::BadInput(format!(
            "spec {origin}: no [env.NAME] table: nothing to provision"
        )));
    }
    check_names_apart(&instances)
        .map_err(|what| Error::BadInput(format!("spec {origin}: {what}")))?;
    Ok(Spec { region, instances })
}

/// The capacity range of an Aurora Serverless v2 env (0.5 to 4 ACUs unless given), and what
/// makes no sense there.
fn check_serverless(raw: &EnvSpecFile) -> std::result::Result<Serverless, String> {
    if let Some(class) = raw.class.as_deref().filter(|c| *c != SERVERLESS_CLASS) {
        return Err(format!(
            "class {class:?}: Aurora Serverless v2 runs class \"{SERVERLESS_CLASS}\" (leave class out); size it with min_acu and max_acu"
        ));
    }
    if raw.max_storage_gb.is_some() {
        return Err(
            "max_storage_gb: Aurora storage grows by itself (storage_gb only sizes the cost estimate)".into(),
        );
    }
    let min_acu = raw.min_acu.unwrap_or(0.5);
    let max_acu = raw.max_acu.unwrap_or(4.0);
    let half_steps = |acu: f64| (acu * 2.0).fract() == 0.0;
    if !(min_acu == 0.0 || (0.5..=256.0).contains(&min_acu)) || !half_steps(min_acu) {
        return Err(format!(
            "min_acu {min_acu}: Aurora Serverless v2 capacity is 0 (pause when idle) or 0.5 to 256 ACUs in steps of 0.5"
        ));
    }
    if !(1.0..=256.0).contains(&max_acu) || !half_steps(max_acu) {
        return Err(format!(
            "max_acu {max_acu}: Aurora Serverless v2 capacity is 1 to 256 ACUs in steps of 0.5"
        ));
    }
    if max_acu < min_acu {
        return Err(format!("max_acu {max_acu} is below min_acu {min_acu}"));
    }
    Ok(Serverless { min_acu, max_acu })
}

/// Each env's AWS names stay its own: an id may not be another env's Aurora member
/// (`<id>-1`, `<id>-2`) nor end like another env's parameter group of a later major
/// (`rdsprov-<id>-postgres17` is `rdsprov-<other>` when other = `<id>-postgres17`).
fn check_names_apart(instances: &[InstanceSpec]) -> std::result::Result<(), String> {
    for one in instances {
        for other in instances.iter().filter(|o| o.env != one.env) {
            let Some(rest) = other.id.strip_prefix(&format!("{}-", one.id)) else {
                continue;
            };
            let member = one.member_ids().contains(&other.id);
            let family = rest
                .strip_prefix(&one.engine)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if member || family {
                return Err(format!(
                    "env {}: id {} is a name env {} ({}) gives {}: choose an id that does not start with \"{}-\"",
                    other.env,
                    other.id,
                    one.env,
                    one.id,
                    if member {
                        "its Aurora member instance"
                    } else {
                        "its parameter group of another major"
                    },
                    one.id
                ));
            }
        }
    }
    Ok(())
}

/// A named VPC needs subnets for its DB subnet group, in two zones at least (RDS's rule);
/// listed subnets need their VPC named (the security group is made there).
fn check_network(raw: &EnvSpecFile) -> std::result::Result<(), String> {
    if let Some(bad) = raw.subnet_ids.iter().find(|s| !s.starts_with("subnet-")) {
        return Err(format!("subnet_ids: {bad:?} is not a subnet id (subnet-…)"));
    }
    match (&raw.vpc_id, raw.subnet_ids.len()) {
        (Some(vpc), 0) => Err(format!(
            "vpc_id {vpc}: list its subnet_ids (in two availability zones or more) for the DB subnet group"
        )),
        (None, n) if n > 0 => Err(
            "subnet_ids: name their VPC with vpc_id (the security group is created there)".into(),
        ),
        (Some(_), 1) => Err(
            "subnet_ids: RDS needs subnets in at least two availability zones; list two or more".into(),
        ),
        _ => Ok(()),
    }
}

fn check_monitoring(raw: &EnvSpecFile) -> std::result::Result<Option<(i32, String)>, String> {
    const INTERVALS: [i32; 7] = [0, 1, 5, 10, 15, 30, 60];
    if !INTERVALS.contains(&raw.monitoring_interval) {
        return Err(format!(
            "monitoring_interval {}: use 0 (off), 1, 5, 10, 15, 30 or 60 seconds",
            raw.monitoring_interval
        ));
    }
    match (raw.monitoring_interval, &raw.monitoring_role_arn) {
        (0, _) => Ok(None),
        (_, None) => Err(
            "monitoring_interval needs monitoring_role_arn: an IAM role that trusts monitoring.rds.amazonaws.com with the AmazonRDSEnhancedMonitoringRole policy".into(),
        ),
        (_, Some(arn)) if !(arn.starts_with("arn:aws") && arn.contains(":role/")) => Err(format!(
            "monitoring_role_arn {arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )),
        (interval, Some(arn)) => Ok(Some((interval, arn.clone()))),
    }
}

/// An ingress entry naming a security group (`sg-…`): members of that group are admitted,
/// e.g. the application's instances.
pub(crate) fn is_security_group(entry: &str) -> bool {
    entry
        .strip_prefix("sg-")
        .is_some_and(|hex| !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `a.b.c.d/n` or an IPv6 prefix.
fn check_cidr(cidr: &str) -> std::result::Result<(), String> {
    let (address, bits) = cidr
        .split_once('/')
        .ok_or_else(|| format!("ingress {cidr:?} is not a CIDR (address/prefix-length)"))?;
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("ingress {cidr:?}: {address:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u8>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(format!(
            "ingress {cidr:?}: prefix length must be 0 to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
region = "eu-west-1"
tags = { app = "combine" }
[env.dev]
id = "combine-dev"
class = "db.t4g.micro"
ingress = ["203.0.113.7/32"]
[env.test]
id = "combine-test"
class = "db.t4g.small"
"#;

    #[test]
    fn defaults_are_the_secure_ones() {
        let spec = parse(GOOD, "t").unwrap();
        let dev = &spec.instances[0];
        let test = &spec.instances[1];
        assert!(!dev.deletion_protection && test.deletion_protection);
        assert!(dev.encrypted && dev.final_snapshot && !dev.publicly_accessible);
        assert_eq!(dev.parameters["rds.force_ssl"], "1");
        assert_eq!(dev.tags["app"], "combine");
        assert_eq!(dev.tags["managed-by"], "rdsprov");
        assert_eq!(dev.parameter_group_family(), "postgres17");
        assert!(dev.apply_immediately && !test.apply_immediately);
        let alarms = test.alarms.as_ref().unwrap();
        assert_eq!(alarms.topic, "rdsprov-combine-test-alarms");
        assert_eq!(alarms.cpu_percent, 80.0);
        // db.t4g.small, 2 GiB: RDS's max_connections ≈ 0.75 × 2 GiB / 9531392 = 168; 80% of it.
        assert_eq!(alarms.connections, 135.0);
        assert_eq!(alarms.free_storage_bytes, 2.0 * 1024.0 * 1024.0 * 1024.0);
    }

    #[test]
    fn bad_specs_are_named() {
        let open = GOOD.replace("203.0.113.7/32", "0.0.0.0/0");
        assert!(parse(&open, "t")
            .unwrap_err()
            .to_string()
            .contains("admits the whole internet"));
        let shared = GOOD.replace("combine-test", "combine-dev");
        assert!(parse(&shared, "t")
            .unwrap_err()
            .to_string()
            .contains("is also env dev's"));
        let class = GOOD.replace("db.t4g.small", "db.t4g.huge");
        let error = parse(&class, "t").unwrap_err().to_string();
        assert!(
            error.contains("unknown instance class \"db.t4g.huge\""),
            "{error}"
        );
        let email = format!("{GOOD}[env.test.alarms]\nemail = \"ops at example\"\n");
        assert!(parse(&email, "t")
            .unwrap_err()
            .to_string()
            .contains("is not an email address"));
        let off = format!("{GOOD}[env.test.alarms]\nenabled = false\n");
        assert!(parse(&off, "t").unwrap().instances[1].alarms.is_none());
        let vpc = GOOD.replace(
            "class = \"db.t4g.small\"",
            "class = \"db.t4g.small\"\nvpc_id = \"vpc-1\"",
        );
        assert!(parse(&vpc, "t")
            .unwrap_err()
            .to_string()
            .contains("vpc_id vpc-1: list its subnet_ids"));
        let one_zone = vpc.replace(
            "vpc_id = \"vpc-1\"",
            "vpc_id = \"vpc-1\"\nsubnet_ids = [\"subnet-a\"]",
        );
        assert!(parse(&one_zone, "t")
            .unwrap_err()
            .to_string()
            .contains("at least two availability zones"));
        let monitoring = GOOD.replace(
            "class = \"db.t4g.small\"",
            "class = \"db.t4g.small\"\nmonitoring_interval = 60",
        );
        assert!(parse(&monitoring, "t")
            .unwrap_err()
            .to_string()
            .contains("monitoring_interval needs monitoring_role_arn"));
        let odd = monitoring.replace("= 60", "= 7");
        assert!(parse(&odd, "t")
            .unwrap_err()
            .to_string()
            .contains("monitoring_interval 7: use 0 (off), 1, 5, 10, 15, 30 or 60"));
        let cidr = GOOD.replace("203.0.113.7/32", "203.0.113.7");
        assert!(parse(&cidr, "t")
            .unwrap_err()
            .to_string()
            .contains("is not a CIDR"));
    }

    const AURORA_ENV: &str = r#"
region = "eu-west-1"
[env.test]
id = "intranet-test"
engine = "aurora-postgresql"
"#;

    #[test]
    fn each_env_s_aws_names_stay_its_own_and_tls_stays_on() {
        let two = |first: &str, second: &str| {
            format!("region = \"eu-west-1\"\n[env.dev]\n{first}\n[env.test]\n{second}\n")
        };
        let instance = |id: &str| format!("id = \"{id}\"\nclass = \"db.t4g.micro\"");
        let aurora = |id: &str| format!("id = \"{id}\"\nengine = \"aurora-postgresql\"");
        let refused = |text: String| parse(&text, "t").unwrap_err().to_string();
        let error = refused(two(&aurora("shop"), &instance("shop-1")));
        assert!(error.contains("its Aurora member instance"), "{error}");
        let error = refused(two(&instance("app"), &instance("app-postgres17")));
        assert!(
            error.contains("its parameter group of another major"),
            "{error}"
        );
        // A name that only starts alike is fine.
        assert!(parse(&two(&instance("shop"), &instance("shop-test")), "t").is_ok());
        assert!(parse(&two(&instance("shop"), &aurora("shop-1")), "t").is_ok());
        let error = refused(two(
            &instance("shop-dev"),
            &format!(
                "{}\nparameters = {{ \"rds.force_ssl\" = \"0\" }}",
                instance("shop-test")
            ),
        ));
        assert!(error.contains("rdsprov keeps it 1"), "{error}");
    }

    #[test]
    fn aurora_serverless_v2_defaults_and_refusals() {
        let spec = parse(AURORA_ENV, "t").unwrap();
        let cluster = &spec.instances[0];
        assert_eq!(
            cluster.serverless,
            Some(Serverless {
                min_acu: 0.5,
                max_acu: 4.0
            })
        );
        assert_eq!(cluster.class, SERVERLESS_CLASS);
        assert_eq!(cluster.member_ids(), ["intranet-test-1"]);
        assert_eq!(cluster.monitored_instance(), "intranet-test-1");
        assert_eq!(cluster.parameter_group_family(), "aurora-postgresql17");
        // 4 ACU ≈ 8 GiB: 0.75 × 8 GiB / 9531392 = 676 connections; 80% of it.
        assert_eq!(cluster.alarms.as_ref().unwrap().connections, 540.0);
        let refused = |extra: &str, expected: &str| {
            let error = parse(&format!("{AURORA_ENV}{extra}\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        };
        refused(
            "class = \"db.t4g.micro\"",
            "Aurora Serverless v2 runs class \"db.serverless\"",
        );
        refused(
            "max_acu = 300",
            "max_acu 300: Aurora Serverless v2 capacity is 1 to 256 ACUs",
        );
        refused("min_acu = 0.3", "min_acu 0.3");
        refused("min_acu = 8\nmax_acu = 2", "max_acu 2 is below min_acu 8");
        refused("max_storage_gb = 100", "Aurora storage grows by itself");
        let postgres_with_acu = GOOD.replace(
            "class = \"db.t4g.small\"",
            "class = \"db.t4g.small\"\nmax_acu = 4",
        );
        assert!(parse(&postgres_with_acu, "t")
            .unwrap_err()
            .to_string()
            .contains("min_acu/max_acu size Aurora Serverless v2"));
        let engine = GOOD.replace(
            "class = \"db.t4g.small\"",
            "class = \"db.t4g.small\"\nengine = \"mysql\"",
        );
        assert!(parse(&engine, "t")
            .unwrap_err()
            .to_string()
            .contains("use \"postgres\" (RDS for PostgreSQL) or \"aurora-postgresql\""));
    }
}
