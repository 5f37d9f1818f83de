//! The JSON contract between the tools: every message's `kind`, its version, and its shape.
//!
//! Each invocation writes one JSON object on stdout. Every object carries `"kind":
//! "dbtools.<name>/v<major>"`. A reader accepts the majors it knows and refuses newer ones (like
//! `cargo metadata`'s format version), so an old tool never misreads a new message. The profile is
//! what flows down a pipeline: a tool accepts a bare profile, or any result carrying one under
//! `"profile"`, and its own result carries the profile on.
//!
//! Wire format of a profile (`dbtools.profile/v2`): no password, only where it lives (`secret`),
//! read by each tool that connects, so a profile is safe in a log. v1 carried the password; a v1
//! profile is refused with what to do.
//! ```json
//! {"kind":"dbtools.profile/v2","env":"dev","protection":"open","app":"combine",
//!  "conn":{"host":"127.0.0.1","port":5432,"dbname":"combine_dev","user":"combine_app",
//!          "sslmode":"verify-full","sslrootcert":"/…/ca.crt"},
//!  "instance":{"provider":"local","id":"combine-dev","region":null},
//!  "secret":{"source":"local","ref":"combine-dev/combine_app"}}
//! ```
//! Errors travel down the pipe as `dbtools.error/v1` (`{"kind","tool","code","error","message"}`) so the
//! next tool exits with the same code instead of complaining about an empty stdin.

use crate::exit::{Error, ErrorKind, ExitStatus, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message a tool writes on stdout: its type names its `kind` (one constant), which serde
/// writes first on the wire (the struct's tag) — no message is built with a kind by hand.
pub trait Message: Serialize {
    /// `dbtools.<name>/v<major>`.
    const KIND: &'static str;
}

/// Declares one message type with its kind: the serde tag and the [`Message`] constant come
/// from the one literal.
macro_rules! message {
    ($kind:literal, $(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[serde(tag = "kind", rename = $kind)]
        pub struct $name { $($fields)* }

        impl $name {
            /// This message's `kind` on the wire.
            pub const KIND: &'static str = $kind;
        }

        impl Message for $name {
            const KIND: &'static str = $kind;
        }
    };
}

/// Every kind this version reads (each with the major version it understands): one per
/// message type.
const KNOWN_KINDS: &[&str] = &[
    Profile::KIND,
    ErrorMessage::KIND,
    EnvList::KIND,
    Witness::KIND,
    SecretValue::KIND,
    Resources::KIND,
    Instance::KIND,
    MigrateStatus::KIND,
    MigrateResult::KIND,
    MigrateDiff::KIND,
    Plan::KIND,
    Snapshot::KIND,
    Access::KIND,
    Doctor::KIND,
    Verdict::KIND,
    StampResult::KIND,
    AuditList::KIND,
    LintReport::KIND,
    SeedStatus::KIND,
    SeedResult::KIND,
    RecordedStamps::KIND,
];

/// Declares a closed set the JSON carries as a kebab-case word, with `as_str` for tables.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How hard an environment is to damage (DESIGN.md "Guardrails"); ordered from open to locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Destructive actions run (dev).
    Open,
    /// Destructive actions need `--confirm <env>` typed exactly (test).
    Confirm,
    /// Destructive actions need `--break-glass "<reason>"` and the confirm (prod).
    Locked,
}

impl Protection {
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::Open => "open",
            Protection::Confirm => "confirm",
            Protection::Locked => "locked",
        }
    }
}

/// libpq's sslmode values; `verify-full` is the default for every host that is not loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::BadInput(format!(
                "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            )))
            }
        })
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// Filled in memory by the tool that connects (from the profile's `secret`), never read
    /// from or written to JSON: a profile is safe to log.
    #[serde(skip)]
    pub password: Option<String>,
    pub sslmode: SslMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
}

word_enum! {
    /// Who runs an instance.
    Provider {
        /// PostgreSQL on this machine's loopback, run by `rdsprov`.
        Local = "local",
        /// Amazon RDS or Aurora.
        Aws = "aws",
    }
}

/// Which instance (and provider) an env lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRef {
    pub provider: Provider,
    pub id: String,
    #[serde(default)]
    pub region: Option<String>,
}

/// Where a password lives, as a closed set (the wire form is the kebab-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// A 0600 file in the state dir's secret store.
    Local,
    /// An environment variable.
    Env,
    /// AWS Secrets Manager, read through `rdsprov`.
    AwsSm,
    /// An RDS IAM auth token made for the host, port and user; the reference is the region.
    AwsIam,
    /// A libpq password file (the reference is its path).
    Pgpass,
    /// The password in a connection URL held by a variable (the reference is its name).
    Url,
}

impl SecretSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretSource::Local => "local",
            SecretSource::Env => "env",
            SecretSource::AwsSm => "aws-sm",
            SecretSource::AwsIam => "aws-iam",
            SecretSource::Pgpass => "pgpass",
            SecretSource::Url => "url",
        }
    }

    /// A source a config may name (`pgpass` and `url` are ad-hoc profiles' only).
    fn configurable(name: &str) -> Option<SecretSource> {
        [
            SecretSource::Local,
            SecretSource::Env,
            SecretSource::AwsSm,
            SecretSource::AwsIam,
        ]
        .into_iter()
        .find(|source| source.as_str() == name)
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a password comes from: `local` (0600 file in the state dir), `env` (a variable),
/// `aws-sm` (AWS Secrets Manager, resolved through `rdsprov`), and the others of
/// [`SecretSource`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub source: SecretSource,
    #[serde(rename = "ref")]
    pub reference: String,
}

impl SecretRef {
    /// Parses `source:ref` as written in config (`local:combine-dev/app`, `env:PGPASSWORD`, `aws-sm:arn:…`).
    pub fn parse(text: &str) -> Result<SecretRef> {
        let (source, reference) = text.split_once(':').ok_or_else(|| {
            Error::BadInput(format!(
                "secret reference {text:?} has no source: write local:NAME, env:VAR or aws-sm:ID"
            ))
        })?;
        let source = SecretSource::configurable(source)
            .filter(|_| !reference.is_empty())
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "secret reference {text:?}: the source must be local, env, aws-sm or aws-iam, followed by a name (aws-iam: the region)"
                ))
            })?;
        Ok(SecretRef {
            source,
            reference: reference.to_string(),
        })
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.reference)
    }
}

message! {
    "dbtools.profile/v2",
    /// The message that flows between tools.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Profile {
        pub env: String,
        pub protection: Protection,
        #[serde(default)]
        pub app: Option<String>,
        pub conn: Conn,
        #[serde(default)]
        pub instance: Option<InstanceRef>,
        #[serde(default)]
        pub secret: Option<SecretRef>,
        /// A manual snapshot taken for this run (`rdsprov snapshot --before-migrate`): the tools
        /// after it record the id in their results and the audit log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub snapshot: Option<String>,
        /// Where this run finds the env's local secrets and its cache of AWS secrets: the
        /// project's state dir, set when the profile is resolved or admitted here; never in JSON.
        #[serde(skip)]
        pub state: Option<crate::state::StateDir>,
    }
}

pub const REDACTED: &str = "********";

message! {
    "dbtools.error/v1",
    /// The error object a failing tool writes on stdout when stdout is a pipe.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct ErrorMessage {
        pub tool: String,
        pub code: u8,
        /// The error's kind; absent from older tools' objects (then read from the code).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<ErrorKind>,
        pub message: String,
    }
}

impl ErrorMessage {
    pub fn new(tool: &str, error: &Error) -> ErrorMessage {
        ErrorMessage {
            tool: tool.to_string(),
            code: error.status().code(),
            error: Some(error.kind()),
            message: error.message().to_string(),
        }
    }
}

message! {
    "dbtools.witness/v1",
    /// `dbconnect check`'s proof that a connection works, carrying the profile on.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Witness {
        pub env: String,
        pub server_version: String,
        pub database: String,
        pub user: String,
        pub ssl: SslInfo,
        pub server_addr: String,
        /// Connect time: TCP + TLS + authentication.
        pub connect_ms: f64,
        /// One `SELECT 1` round trip on the open connection.
        pub latency_ms: f64,
        /// The env stamp the database carries (`null`: none); added within v1.
        #[serde(default)]
        pub stamp: Option<Stamp>,
        pub profile: Profile,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SslInfo {
    pub in_use: bool,
    pub version: Option<String>,
    pub cipher: Option<String>,
}

message! {
    "dbtools.secret/v1",
    /// A secret as `rdsprov secret get` hands it to the tool that resolves a profile.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct SecretValue {
        pub source: SecretSource,
        #[serde(rename = "ref")]
        pub reference: String,
        #[serde(default)]
        pub username: Option<String>,
        pub password: String,
    }
}

message! {
    "dbtools.instance/v1",
    /// A provisioned database instance, the same shape for the local and AWS providers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Instance {
        pub id: String,
        pub provider: Provider,
        pub engine: String,
        pub engine_version: String,
        pub status: String,
        pub endpoint: Endpoint,
        pub master_user: String,
        pub master_secret: SecretRef,
        #[serde(default)]
        pub ca_cert: Option<String>,
        #[serde(default)]
        pub databases: Vec<DatabaseRecord>,
        /// AWS: the env the spec gives the instance, its class, security group and parameter group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub env: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub class: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub security_group: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parameter_group: Option<String>,
        /// AWS: the CloudWatch alarms on the instance and the SNS topic they notify.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub alarms: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub alarm_topic: Option<String>,
        /// AWS: the instance's region.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub region: Option<String>,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// One database on an instance and the least-privilege role that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    pub name: String,
    pub owner: String,
    pub env: String,
    pub secret: SecretRef,
    /// The stamp the instance's owner wrote in this database, as recorded outside it: what
    /// decides an instance action when the database cannot be read, and what tells the
    /// original from a physical copy (which carries the nonce, not this record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<RecordedStamp>,
}

message! {
    "dbtools.recorded-stamps/v1",
    /// What `rdsprov stamps` prints: the stamps an AWS instance's tags record, with the endpoint
    /// they belong to (a caller checks it is the one it is connected to).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct RecordedStamps {
        pub instance: String,
        pub endpoint: Option<Endpoint>,
        pub stamps: Vec<DatabaseStamp>,
    }
}

/// One database's recorded stamp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseStamp {
    pub database: String,
    #[serde(flatten)]
    pub stamp: RecordedStamp,
}

/// A stamp as the instance's owner recorded it (see [`DatabaseRecord::stamp`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedStamp {
    pub env: String,
    pub protection: Protection,
    pub nonce: String,
}

message! {
    "dbtools.resources/v1",
    /// What `rdsprov apply|status|…` prints.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Resources {
        pub provider: Provider,
        /// Human-readable changes made by this run; empty when nothing changed.
        pub changes: Vec<String>,
        pub instances: Vec<Instance>,
    }
}

word_enum! {
    /// Where a migration stands (`status`, `up`, `down`), or what `verify` proved of it.
    MigrationState {
        /// Applied, its file unchanged.
        Applied = "applied",
        /// A file not applied yet.
        Pending = "pending",
        /// Applied, and its file edited since.
        Changed = "changed",
        /// Applied, and its file is gone.
        Missing = "missing",
        /// `verify`: up, down and up again leave the same schema.
        Verified = "verified",
        /// `verify`: its down does not undo its up (the first such migration).
        Irreversible = "irreversible",
        /// `verify`: after an irreversible one, not tried.
        Unverified = "unverified",
    }
}

word_enum! {
    /// Where a seed file stands (`status`, `apply`), or what `verify` proved of it.
    SeedState {
        /// Applied, the file unchanged.
        Applied = "applied",
        /// Not applied yet.
        Pending = "pending",
        /// Applied, then edited.
        Changed = "changed",
        /// Not run: a locked env and the file does not opt in (see `note`).
        Skipped = "skipped",
        /// `verify`: running it twice changed nothing the second time.
        Idempotent = "idempotent",
        /// `verify`: the second run changed rows.
        NotIdempotent = "not-idempotent",
    }
}

word_enum! {
    /// What a `dbmigrate` run that reports migrations did.
    MigrateAction {
        Up = "up",
        Down = "down",
        /// Recorded an edited migration's new checksum.
        Accept = "accept",
        /// Wrote the schema file.
        Dump = "dump",
        /// Proved each migration's down undoes its up (rolled back).
        Verify = "verify",
        /// Created the env's database and stamped it.
        Create = "create",
        /// Dropped the env's database.
        Drop = "drop",
        /// Loaded a schema file into the env's empty database.
        Load = "load",
    }
}

word_enum! {
    /// What a `dbseed` run did.
    SeedAction {
        Apply = "apply",
        /// Proved each file idempotent (rolled back).
        Verify = "verify",
    }
}

word_enum! {
    /// How one step of `dbconnect doctor` went.
    StepOutcome {
        Ok = "ok",
        Failed = "failed",
        /// Not tried: an earlier step failed, or it does not apply (not RDS).
        Skipped = "skipped",
    }
}

word_enum! {
    /// Where `dbguard audit` read its lines.
    AuditSource {
        /// This machine's log in the state dir.
        Local = "local",
        /// The database's own `dbtools.audit`.
        Database = "database",
    }
}

/// One migration as `dbmigrate status` and `up`/`down` report it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationEntry {
    pub version: String,
    pub name: String,
    pub state: MigrationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
}

message! {
    "dbtools.migrate.status/v1",
    /// `dbmigrate status`: every migration known to the files or the database, carrying the profile.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct MigrateStatus {
        pub env: String,
        pub migrations: Vec<MigrationEntry>,
        pub pending: usize,
        pub changed: usize,
        pub missing: usize,
        pub profile: Profile,
    }
}

message! {
    "dbtools.migrate.result/v1",
    /// `dbmigrate up|down|accept`: what ran, carrying the profile on.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct MigrateResult {
        pub action: MigrateAction,
        pub env: String,
        pub dry_run: bool,
        /// `--dry-run`: the SQL that would run, in order, with its wrapping (added within v1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sql: Option<String>,
        /// Migrations applied (up) or reverted (down), in the order they ran.
        pub migrations: Vec<MigrationEntry>,
        /// Seconds spent waiting for another migrator's lock.
        pub lock_wait_s: f64,
        /// The manual snapshot taken before this run, when one was (`snapshot_before_migrate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub snapshot: Option<String>,
        pub profile: Profile,
    }
}

message! {
    "dbtools.migrate.diff/v1",
    /// `dbmigrate diff --against ENV`: schema drift between the profile's env and another.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct MigrateDiff {
        pub env: String,
        pub against: String,
        pub same: bool,
        /// Schema objects (one line each) only in `env`, and only in `against`.
        pub only_in_env: Vec<String>,
        pub only_in_against: Vec<String>,
        /// Applied versions only in `env`, and only in `against`.
        pub versions_only_in_env: Vec<String>,
        pub versions_only_in_against: Vec<String>,
        pub profile: Profile,
    }
}

word_enum! {
    /// What kind of AWS resource a planned change is to.
    PlanResource {
        SecurityGroup = "security-group",
        ParameterGroup = "parameter-group",
        DbSubnetGroup = "db-subnet-group",
        Secret = "secret",
        DbInstance = "db-instance",
        DbCluster = "db-cluster",
        SnsTopic = "sns-topic",
        SnsSubscription = "sns-subscription",
        Alarm = "alarm",
    }
}

word_enum! {
    /// What `apply` would do to a resource.
    PlanAction {
        Create = "create",
        Modify = "modify",
        Delete = "delete",
        None = "none",
    }
}

word_enum! {
    /// When a changed attribute takes effect.
    ChangeWhen {
        Immediately = "immediately",
        MaintenanceWindow = "maintenance window",
        OnReboot = "on reboot",
        /// Refused before any call: it cannot change on an existing resource.
        CannotChangeInPlace = "cannot change in place",
    }
}

message! {
    "dbtools.plan/v1",
    /// `rdsprov plan`: what `apply` would change, resource by resource, and what it would cost.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Plan {
        pub provider: Provider,
        pub region: String,
        /// True when nothing would change.
        pub up_to_date: bool,
        pub changes: Vec<PlannedChange>,
        pub cost: CostEstimate,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub env: String,
    pub resource: PlanResource,
    pub name: String,
    pub action: PlanAction,
    pub attributes: Vec<AttributeChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeChange {
    pub name: String,
    pub from: Option<String>,
    pub to: String,
    pub when: ChangeWhen,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Always "estimate": list prices, not a bill.
    pub label: String,
    pub prices_as_of: String,
    pub monthly_usd: f64,
    pub lines: Vec<CostLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub env: String,
    pub id: String,
    pub monthly_usd: f64,
    pub detail: String,
}

message! {
    "dbtools.snapshot/v1",
    /// A manual snapshot `rdsprov snapshot` took (or `destroy`'s final one).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Snapshot {
        pub env: String,
        pub instance: String,
        pub snapshot: String,
        pub status: String,
    }
}

message! {
    "dbtools.access/v1",
    /// Who may reach an instance: `rdsprov access show|allow-current|revoke`. On AWS the ingress
    /// rules on 5432 of its security group, each marked as the spec's, a machine's (added by
    /// `allow-current`) or other, and whether this machine's public address is admitted; on the
    /// local provider loopback needs no rule.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Access {
        pub provider: Provider,
        #[serde(default)]
        pub env: Option<String>,
        pub instance: String,
        #[serde(default)]
        pub region: Option<String>,
        /// The instance's (or Aurora cluster's) status.
        #[serde(default)]
        pub status: Option<String>,
        #[serde(default)]
        pub publicly_accessible: Option<bool>,
        #[serde(default)]
        pub security_group: Option<String>,
        /// This machine's public address (from the check-IP endpoint), when it was asked.
        #[serde(default)]
        pub address: Option<String>,
        /// This machine's name in its rule (`dbtools:<machine>`).
        pub machine: String,
        pub admitted: bool,
        #[serde(default)]
        pub rules: Vec<AccessRule>,
        #[serde(default)]
        pub changes: Vec<String>,
        /// Why no rule is needed or what is missing, in words.
        #[serde(default)]
        pub note: Option<String>,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRule {
    /// A CIDR, or a security group id admitted by reference.
    pub source: String,
    /// `spec`, `machine` or `other`.
    pub origin: String,
    #[serde(default)]
    pub machine: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

message! {
    "dbtools.doctor/v1",
    /// `dbconnect doctor`: the chain a person would walk, one step at a time, stopping at the
    /// first failure (DNS, TCP — with what AWS says when it is an RDS instance —, TLS,
    /// authentication, database, env stamp, migrations).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Doctor {
        pub env: String,
        pub ok: bool,
        /// The exit code doctor ends with (0 when every step passed).
        pub code: u8,
        pub steps: Vec<DoctorStep>,
        pub profile: Profile,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoctorStep {
    pub step: String,
    pub outcome: StepOutcome,
    pub found: String,
    #[serde(default)]
    pub fix: Option<String>,
}

/// What an action does to a database (DESIGN.md "Guardrails"), ordered from harmless to harmful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionClass {
    Read,
    Write,
    Destructive,
}

impl ActionClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionClass::Read => "read",
            ActionClass::Write => "write",
            ActionClass::Destructive => "destructive",
        }
    }
}

/// The env a database belongs to, as recorded inside it (`dbtools.env_stamp`): the env, how
/// hard it is to damage, who stamped it when, and the database's identity at that moment.
/// Stamps written before identities were recorded read with `protection` confirm (the guard
/// then takes the stricter default by env name) and no identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub env: String,
    #[serde(default = "stamp_protection_unknown")]
    pub protection: Protection,
    pub stamped_by: String,
    pub stamped_at: String,
    pub tool: String,
    /// The database this stamp was written in; a copy (a dump loaded elsewhere, a template
    /// clone) has another name or oid, a copy of another cluster another system identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<DatabaseIdentity>,
    /// A random value written with the stamp and recorded by the instance's owner outside the
    /// database (the local instance record, a tag on the AWS instance): a physical copy (a
    /// restored snapshot, a copied data directory) carries the nonce but not that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When this stamp adopted a copy: the env (and identity) the copy came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
}

fn stamp_protection_unknown() -> Protection {
    Protection::Confirm
}

/// What identifies one database: its cluster's system identifier (absent when the role may not
/// read `pg_control_system()`), its oid and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseIdentity {
    #[serde(default)]
    pub system_identifier: Option<String>,
    pub database_oid: String,
    pub database_name: String,
}

impl DatabaseIdentity {
    /// Whether `other` is the same database; an unknown system identifier on either side is
    /// not a difference (oid and name still are).
    pub(crate) fn same_as(&self, other: &DatabaseIdentity) -> bool {
        let clusters_differ = matches!(
            (&self.system_identifier, &other.system_identifier),
            (Some(a), Some(b)) if a != b
        );
        !clusters_differ
            && self.database_oid == other.database_oid
            && self.database_name == other.database_name
    }
}

impl std::fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "database {} (oid {}, cluster {})",
            self.database_name,
            self.database_oid,
            self.system_identifier.as_deref().unwrap_or("unknown")
        )
    }
}

message! {
    "dbtools.verdict/v1",
    /// `dbguard check`'s answer when the action may go ahead (a refusal is an exit-3 error).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Verdict {
        pub allowed: bool,
        pub action: String,
        pub class: ActionClass,
        pub env: String,
        pub protection: Protection,
        /// The database's stamp; `null` for reads, which do not need one.
        pub stamp: Option<Stamp>,
        pub profile: Profile,
    }
}

message! {
    "dbtools.stamp/v1",
    /// `dbguard stamp`'s result.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct StampResult {
        pub env: String,
        /// The env the database was stamped with before, if any.
        pub previous: Option<String>,
        pub changed: bool,
        pub stamp: Stamp,
        pub profile: Profile,
    }
}

word_enum! {
    /// What the guard said to an action.
    AuditOutcome {
        Allowed = "allowed",
        Refused = "refused",
        /// A row of the database's audit with another word (an app role may append rows
        /// through `dbtools.append_audit`): shown as such rather than failing the whole read.
        #[serde(other)]
        Unrecognised = "unrecognised",
    }
}

/// One line of the audit: a destructive action done, or any action refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    /// `user@host` of the machine that acted.
    pub by: String,
    pub tool: String,
    pub action: String,
    pub class: ActionClass,
    pub env: String,
    pub outcome: AuditOutcome,
    /// Why it was refused, or the break-glass reason given.
    pub reason: Option<String>,
    /// `host:port/database` the action was aimed at.
    pub target: String,
}

message! {
    "dbtools.audit/v1",
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct AuditList {
        pub source: AuditSource,
        pub entries: Vec<AuditEntry>,
    }
}

/// How hard a lint finding stops a run (`"enforcement"` in a finding: `"protected"`,
/// `"everywhere"` or `"forbidden"`); ordered from mildest to hardest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Blocks on confirm/locked envs (and when no env is given) unless the file opts in; a
    /// warning on open envs.
    #[default]
    Protected,
    /// Blocks on every env, open ones included, unless the file opts in: statements whose
    /// reach is the whole server (other databases, roles), which no env of this app owns alone.
    Everywhere,
    /// Refused outright, whatever the env and whatever the file says: SQL touching the guard's
    /// own `dbtools` schema.
    Forbidden,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Protected => "protected",
            Enforcement::Everywhere => "everywhere",
            Enforcement::Forbidden => "forbidden",
        }
    }
}

/// One risky statement found by the lint.
///
/// Wire format (inside `dbtools.lint/v1`'s `findings`):
/// ```json
/// {"file":"migrations/2026_x.sql","line":3,"rule":"drop-table",
///  "message":"DROP TABLE deletes the table and every row in it (posts)",
///  "statement":"drop table posts;","allowed":false,"enforcement":"protected"}
/// ```
/// A finding inside a function body or DO block carries the line of the statement that holds
/// the body, and its message says where (`… (in function f())`). `enforcement` was added
/// within v1; a reader of an older message takes `"protected"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintFinding {
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub message: String,
    /// The statement's first line, for recognising it.
    pub statement: String,
    /// True when the file opts in with `-- dbguard:allow <rule>` (never for `forbidden`).
    pub allowed: bool,
    /// Where the finding blocks: see [`Enforcement`].
    #[serde(default)]
    pub enforcement: Enforcement,
    /// For a rule whose cost grows with an existing table (a rewrite, a scan or a blocking index
    /// build under lock): the table, as `to_regclass` reads it. `dbmigrate up` reads its size:
    /// an empty table drops the finding, another's size is added to the message. Added within v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

message! {
    "dbtools.lint/v1",
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct LintReport {
        /// The env the lint was judged for (its protection decides what blocks), if one was given.
        pub env: Option<String>,
        /// Whether `protected` findings without an opt-in block (confirm/locked envs, or no env
        /// given); `everywhere` findings without an opt-in and `forbidden` ones block regardless.
        pub enforced: bool,
        pub files: usize,
        pub findings: Vec<LintFinding>,
    }
}

/// One seed file and what is known about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedEntry {
    /// Path relative to the seeds dir, e.g. `common/010_channels.sql`.
    pub file: String,
    pub state: SeedState,
    pub checksum: String,
    pub applied_at: Option<String>,
    /// Rows the file inserted or updated when it last ran.
    pub rows: Option<i64>,
    pub tables: Vec<String>,
    pub note: Option<String>,
}

message! {
    "dbtools.seed.status/v1",
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct SeedStatus {
        pub env: String,
        pub seeds: Vec<SeedEntry>,
        pub profile: Profile,
    }
}

message! {
    "dbtools.seed.result/v1",
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct SeedResult {
        pub action: SeedAction,
        pub env: String,
        pub reset: bool,
        /// Tables emptied by `--reset` (with those TRUNCATE … CASCADE reached).
        pub truncated: Vec<String>,
        /// Files applied by this run (apply), or every file checked (verify).
        pub seeds: Vec<SeedEntry>,
        /// verify: true when applying everything twice left the same rows.
        pub idempotent: Option<bool>,
        pub profile: Profile,
    }
}

/// One env as `dbenv list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvSummary {
    pub env: String,
    /// `host:port` once it can be known (not for a local instance not provisioned yet, nor an
    /// AWS env before `dbenv import`); added within v1.
    #[serde(default)]
    pub address: Option<String>,
    pub protection: Protection,
    pub provider: Option<Provider>,
    pub instance: Option<String>,
    pub database: String,
    pub user: String,
    pub secret: Option<String>,
}

message! {
    "dbtools.env.list/v1",
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct EnvList {
        pub app: Option<String>,
        pub config: String,
        pub default_env: String,
        pub envs: Vec<EnvSummary>,
    }
}

/// What a tool found on stdin.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub kind: String,
    pub value: Value,
}

/// Decodes stdin bytes: UTF-8 with or without BOM, UTF-16LE/BE with BOM (Windows PowerShell 5.1
/// writes that when it redirects output to a file).
pub fn decode_text(bytes: &[u8]) -> Result<String> {
    let utf16 = |be: bool| -> Result<String> {
        let body = &bytes[2..];
        if !body.len().is_multiple_of(2) {
            return Err(Error::BadInput(
                "stdin: UTF-16 input has an odd number of bytes".into(),
            ));
        }
        let units = body.chunks_exact(2).map(|pair| {
            if be {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_le_bytes([pair[0], pair[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<std::result::Result<String, _>>()
            .map_err(|_| Error::BadInput("stdin: invalid UTF-16 (unpaired surrogate)".into()))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()),
        [0xFF, 0xFE, ..] => return utf16(false),
        [0xFE, 0xFF, ..] => return utf16(true),
        _ => String::from_utf8(bytes.to_vec()),
    }
    .map_err(|e| {
        Error::BadInput(format!(
            "stdin is not UTF-8 (invalid byte at offset {}): send UTF-8, or UTF-16 with a byte-order mark",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Splits `dbtools.<name>/v<major>` into name and major.
fn split_kind(kind: &str) -> Option<(&str, u32)> {
    let rest = kind.strip_prefix("dbtools.")?;
    let (name, version) = rest.rsplit_once("/v")?;
    Some((name, version.parse().ok()?))
}

/// Checks a `kind` against what this version knows: unknown → error, newer major → error.
pub(crate) fn check_kind(kind: &str) -> Result<()> {
    if KNOWN_KINDS.contains(&kind) {
        return Ok(());
    }
    if let Some((name, major)) = split_kind(kind) {
        for known in KNOWN_KINDS {
            if let Some((known_name, known_major)) = split_kind(known) {
                if known_name == name && major > known_major {
                    return Err(Error::BadInput(format!(
                        "stdin: {kind:?} is a newer version than this tool reads (v{known_major}): upgrade dbtools"
                    )));
                }
                if known_name == name && major < known_major && *known == Profile::KIND {
                    return Err(Error::BadInput(format!(
                        "stdin: {kind:?} comes from an older dbtools, whose profiles carried the password; this one reads {}, which says only where the secret lives: make the profile again with `dbenv resolve ENV` (or pass --env ENV)",
                        Profile::KIND
                    )));
                }
                if known_name == name && major < known_major {
                    return Err(Error::BadInput(format!(
                        "stdin: {kind:?} is an older version than this tool reads (v{known_major}): run the tool before it from this dbtools"
                    )));
                }
            }
        }
    }
    Err(Error::BadInput(format!(
        "stdin: unknown message kind {kind:?}: expected a dbtools profile or a result carrying one"
    )))
}

/// Parses exactly one JSON object with a known `kind` from stdin's text.
pub fn parse_message(text: &str) -> Result<Incoming> {
    if text.trim().is_empty() {
        return Err(Error::BadInput(
            "stdin is empty: pipe a profile in (dbenv resolve dev | …) or pass --env NAME".into(),
        ));
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let first = match stream.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) => {
            return Err(Error::BadInput(format!(
                "stdin is not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            )))
        }
        None => unreachable!("non-empty text yields a value or an error"),
    };
    match stream.next() {
        None => {}
        Some(Ok(_)) => {
            return Err(Error::BadInput(
                "stdin holds more than one JSON object: pipe exactly one profile or result".into(),
            ))
        }
        Some(Err(e)) => {
            return Err(Error::BadInput(format!(
                "stdin has trailing text after the JSON object (line {}, column {}): {e}",
                e.line(),
                e.column()
            )))
        }
    }
    let kind = match first.get("kind") {
        Some(Value::String(kind)) => kind.clone(),
        _ if first.is_object() => {
            return Err(Error::BadInput(
                "stdin: the JSON object has no \"kind\": expected a dbtools profile or result"
                    .into(),
            ))
        }
        _ => {
            return Err(Error::BadInput(
                "stdin: expected a JSON object, found another JSON value".into(),
            ))
        }
    };
    check_kind(&kind)?;
    Ok(Incoming { kind, value: first })
}

/// Turns an upstream error object into the matching error (same exit code, already reported).
pub fn upstream_error(value: &Value) -> Error {
    let message: ErrorMessage = match serde_json::from_value(value.clone()) {
        Ok(m) => m,
        Err(e) => {
            return Error::BadInput(format!(
                "stdin: malformed {} object: {e}",
                ErrorMessage::KIND
            ))
        }
    };
    // An error is never a success: a code 0 (or one we do not know) is a failure.
    let status = ExitStatus::from_code(message.code.into())
        .filter(|status| *status != ExitStatus::Success)
        .unwrap_or(ExitStatus::Failed);
    let kind = message.error.unwrap_or(match status {
        ExitStatus::BadInput => ErrorKind::BadInput,
        ExitStatus::Refused => ErrorKind::Refused,
        ExitStatus::Unreachable => ErrorKind::Unreachable,
        ExitStatus::Interrupted => ErrorKind::Interrupted,
        _ => ErrorKind::Failed,
    });
    Error::Upstream {
        tool: message.tool,
        status,
        kind,
        message: message.message,
    }
}

/// Finds the profile in a message: the message itself, or its `"profile"` field.
pub(crate) fn profile_from_message(message: &Incoming) -> Result<Profile> {
    if message.kind == ErrorMessage::KIND {
        return Err(upstream_error(&message.value));
    }
    let value = if message.kind == Profile::KIND {
        &message.value
    } else {
        message.value.get("profile").ok_or_else(|| {
            Error::BadInput(format!(
                "stdin: a {} message carries no profile",
                message.kind
            ))
        })?
    };
    if message.kind != Profile::KIND {
        match value.get("kind") {
            Some(Value::String(kind)) if kind == Profile::KIND => {}
            Some(Value::String(kind)) => {
                check_kind(kind)?;
                return Err(Error::BadInput(format!(
                    "stdin: \"profile\" holds a {kind} message"
                )));
            }
            _ => return Err(Error::BadInput("stdin: \"profile\" has no kind".into())),
        }
    }
    serde_json::from_value(value.clone())
        .map_err(|e| Error::BadInput(format!("stdin: malformed profile: {e}")))
}

/// Reads the profile a tool was piped: decode, parse one object, check kind, extract.
pub fn profile_from_bytes(bytes: &[u8]) -> Result<Profile> {
    let text = decode_text(bytes)?;
    profile_from_message(&parse_message(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_json() -> String {
        r#"{"kind":"dbtools.profile/v2","env":"dev","protection":"open","app":"a",
            "conn":{"host":"127.0.0.1","port":5432,"dbname":"d","user":"u","password":"p","sslmode":"verify-full"}}"#
            .to_string()
    }

    #[test]
    fn reads_a_bare_profile() {
        let p = profile_from_bytes(profile_json().as_bytes()).unwrap();
        assert_eq!(p.env, "dev");
        assert_eq!(p.conn.sslmode, SslMode::VerifyFull);
        assert_eq!(p.conn.password, None);
    }

    #[test]
    fn reads_a_profile_carried_by_a_result() {
        let carried = format!(
            r#"{{"kind":"dbtools.witness/v1","profile":{}}}"#,
            profile_json()
        );
        assert_eq!(
            profile_from_bytes(carried.as_bytes()).unwrap().conn.user,
            "u"
        );
    }

    #[test]
    fn accepts_utf8_bom_and_utf16le_with_bom() {
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend(profile_json().bytes());
        assert_eq!(profile_from_bytes(&bom).unwrap().env, "dev");
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in profile_json().replace("\"a\"", "\"ünï\"").encode_utf16() {
            utf16.extend(unit.to_le_bytes());
        }
        assert_eq!(
            profile_from_bytes(&utf16).unwrap().app.as_deref(),
            Some("ünï")
        );
    }

    #[test]
    fn refuses_empty_two_objects_invalid_unknown_and_newer() {
        let cases = [
            ("", "stdin is empty"),
            ("  \n", "stdin is empty"),
            (
                "{\"kind\":\"dbtools.profile/v2\"} {}",
                "more than one JSON object",
            ),
            ("{nope", "not valid JSON"),
            ("{\"kind\":\"something.else/v1\"}", "unknown message kind"),
            ("{\"kind\":\"dbtools.profile/v3\"}", "newer version"),
            (
                "{\"kind\":\"dbtools.profile/v1\"}",
                "comes from an older dbtools, whose profiles carried the password",
            ),
            ("[1,2]", "expected a JSON object"),
            ("{\"env\":\"dev\"}", "no \"kind\""),
        ];
        for (input, expected) in cases {
            let err = profile_from_bytes(input.as_bytes()).unwrap_err();
            assert_eq!(err.status(), ExitStatus::BadInput, "{input}");
            assert!(
                err.message().contains(expected),
                "{input}: {}",
                err.message()
            );
        }
        let err = profile_from_bytes(&[0x7B, 0xFF, 0x7D]).unwrap_err();
        assert!(err.message().contains("not UTF-8"), "{}", err.message());
    }

    #[test]
    fn an_upstream_error_keeps_its_exit_code() {
        let err = profile_from_bytes(
            br#"{"kind":"dbtools.error/v1","tool":"dbenv","code":4,"message":"down"}"#,
        )
        .unwrap_err();
        assert_eq!(err.status(), ExitStatus::Unreachable);
        assert!(matches!(err, Error::Upstream { .. }));
    }

    #[test]
    fn an_error_object_is_never_a_success_and_every_kind_is_read() {
        let zero =
            profile_from_bytes(br#"{"kind":"dbtools.error/v1","tool":"x","code":0,"message":"m"}"#)
                .unwrap_err();
        assert_eq!(zero.status(), ExitStatus::Failed);
        let auth = profile_from_bytes(
            br#"{"kind":"dbtools.error/v1","tool":"x","code":4,"error":"auth-failed","message":"m"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (auth.status(), auth.kind()),
            (ExitStatus::Unreachable, ErrorKind::AuthFailed)
        );
        let written = ErrorMessage::new("t", &Error::AuthFailed("no".into()));
        assert!(serde_json::to_string(&written)
            .unwrap()
            .contains("\"error\":\"auth-failed\""),);
        for kind in [
            Access::KIND,
            Doctor::KIND,
            Witness::KIND,
            MigrateStatus::KIND,
            SeedResult::KIND,
        ] {
            assert!(check_kind(kind).is_ok(), "{kind}");
        }
    }

    #[test]
    fn a_malformed_profile_never_echoes_a_password() {
        let text = r#"{"kind":"dbtools.profile/v2","env":"dev","protection":"open",
            "conn":{"host":"h","port":"not-a-port","dbname":"d","user":"u","password":987654321,"sslmode":"disable"}}"#;
        let error = profile_from_bytes(text.as_bytes()).unwrap_err();
        assert!(!error.to_string().contains("987654321"), "{error}");
    }

    #[test]
    fn an_audit_row_with_another_word_is_shown_not_fatal() {
        let row = |outcome: &str| {
            serde_json::from_value::<AuditEntry>(serde_json::json!({
                "at": "2026-11-29T00:00:00Z", "by": "u@h", "tool": "t", "action": "drop",
                "class": "destructive", "env": "test", "outcome": outcome, "reason": null,
                "target": "h:1/d"
            }))
            .unwrap()
            .outcome
        };
        assert_eq!(row("allowed"), AuditOutcome::Allowed);
        assert_eq!(row("refused"), AuditOutcome::Refused);
        assert_eq!(row("forged by an app role"), AuditOutcome::Unrecognised);
        assert_eq!(
            serde_json::to_string(&AuditOutcome::Refused).unwrap(),
            "\"refused\""
        );
    }

    #[test]
    fn a_message_writes_the_kind_of_its_type_first_and_reads_it_back() {
        let profile = profile_from_bytes(profile_json().as_bytes()).unwrap();
        let text = serde_json::to_string(&profile).unwrap();
        assert!(
            text.starts_with(&format!("{{\"kind\":\"{}\",", Profile::KIND)),
            "{text}"
        );
        let error = ErrorMessage::new("t", &Error::Refused("no".into()));
        let carried = serde_json::to_value(&error).unwrap();
        assert_eq!(carried["kind"], ErrorMessage::KIND);
        // A result carries its profile with the profile's own kind, which the next tool checks.
        let status = MigrateStatus {
            env: "dev".into(),
            migrations: vec![],
            pending: 0,
            changed: 0,
            missing: 0,
            profile,
        };
        let text = serde_json::to_string(&status).unwrap();
        let read = profile_from_bytes(text.as_bytes()).unwrap();
        assert_eq!(read.env, "dev");
        assert!(text.starts_with(&format!("{{\"kind\":\"{}\",", MigrateStatus::KIND)));
        let mut kinds = KNOWN_KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), KNOWN_KINDS.len(), "a kind is listed twice");
    }

    #[test]
    fn a_profile_never_carries_a_password() {
        let mut p = profile_from_bytes(profile_json().as_bytes()).unwrap();
        assert_eq!(p.conn.password, None, "a password in JSON is not read");
        p.conn.password = Some("s3cret".into());
        let shown = serde_json::to_string(&p).unwrap();
        assert!(
            !shown.contains("s3cret") && !shown.contains("password"),
            "{shown}"
        );
    }

    #[test]
    fn secret_refs_parse() {
        let r = SecretRef::parse("aws-sm:arn:aws:secretsmanager:eu-west-1:1:secret:x").unwrap();
        assert_eq!(r.source, SecretSource::AwsSm);
        assert_eq!(r.reference, "arn:aws:secretsmanager:eu-west-1:1:secret:x");
        assert!(SecretRef::parse("vault:x").is_err());
        assert!(SecretRef::parse("plain").is_err());
    }
}
