//! rdsprov's flags.

use clap::{Parser, Subcommand};
use dbtools::cli::{ConfirmArgs, GlobalArgs};
use std::path::PathBuf;

/// Provisioning: PostgreSQL instances, their databases, roles and secrets, from dbtools.toml.
#[derive(Debug, Parser)]
#[command(name = "rdsprov", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Which instances a command touches: those of the named envs, or every local one.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Selection {
    /// Only the instance of this env (repeatable) [default: every env].
    #[arg(long = "env", short = 'e', value_name = "ENV")]
    pub envs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show what `apply --spec` would change on AWS, and an estimate of the monthly cost.
    Plan {
        /// The AWS spec (TOML or JSON; `-` reads stdin), e.g. ops/aws/rds.toml.
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        #[command(flatten)]
        selection: Selection,
    },
    /// Create or converge instances, databases and roles; a second run changes nothing.
    /// With --spec, the AWS instances of the spec; otherwise the local ones of dbtools.toml.
    Apply {
        #[command(flatten)]
        selection: Selection,
        /// The AWS spec (TOML or JSON; `-` reads stdin).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// AWS: the RDS CA bundle; also upgrade each instance's stamped databases in place (the
        /// dbtools schema to the master, identity and nonce recorded, the stamp tagged).
        #[arg(long, value_name = "FILE", requires = "spec")]
        sslrootcert: Option<PathBuf>,
    },
    /// Show each instance: endpoint, status, databases.
    Status {
        #[command(flatten)]
        selection: Selection,
        /// The AWS spec (TOML or JSON; `-` reads stdin).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Start stopped instances.
    Start {
        #[command(flatten)]
        selection: Selection,
    },
    /// Stop running instances (data is kept).
    Stop {
        #[command(flatten)]
        selection: Selection,
    },
    /// Secrets: `secret get ID` prints a secret from AWS Secrets Manager (what dbenv runs for
    /// `aws-sm:` references); the value is redacted on a terminal unless --reveal.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Drop an env's database and create it again, empty and stamped (destructive: see --confirm);
    /// `make reset` then migrates and seeds it.
    Reset {
        /// The env whose database is reset.
        #[arg(long, short = 'e', value_name = "ENV")]
        env: String,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Wait until envs' AWS instances are available, all at once (a progress line per poll;
    /// Ctrl-C stops the wait with exit 130 and changes nothing).
    Wait {
        /// The AWS spec (TOML or JSON; `-` reads stdin).
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        #[command(flatten)]
        selection: Selection,
    },
    /// Tenants: `tenant add NAME --env ENV` gives one more application its own database and
    /// owning role on the env's instance (CONNECT revoked from PUBLIC), its password kept as a
    /// secret, the database stamped with the env.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Restore an env's AWS instance into a NEW instance (never over the live one): from a
    /// snapshot, to a point in time, or to the latest restorable time. Destructive class (it
    /// copies the env's data): the env's protection applies (--confirm).
    Restore(RestoreArgs),
    /// Print DATABASE_REGISTRY.md (Markdown) from the real state: instances, databases and
    /// tenants, envs, endpoints, classes, backups, alarms, cost estimate. `make registry`
    /// writes the file. With --spec the AWS instances, otherwise the local ones.
    Registry {
        /// The AWS spec (TOML or JSON; `-` reads stdin).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
    },
    /// Take a manual snapshot of an env's AWS instance (a cluster snapshot on Aurora), e.g.
    /// before a risky migration: `--spec F --env E`, or `--env E` for an env whose dbtools.toml
    /// entry names its AWS instance. In the migrate pipeline (`dbenv resolve E | dbmigrate
    /// status | rdsprov snapshot --before-migrate | dbmigrate up`) only when migrations are
    /// pending and the env's snapshot_before_migrate is on, passing the profile on.
    Snapshot {
        /// The AWS spec (TOML or JSON; `-` reads stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "before_migrate")]
        spec: Option<PathBuf>,
        #[arg(
            long,
            short = 'e',
            value_name = "ENV",
            conflicts_with = "before_migrate"
        )]
        env: Option<String>,
        /// Snapshot id [default: <instance>-<UTC timestamp>].
        #[arg(long)]
        name: Option<String>,
        /// Read `dbmigrate status` on stdin; snapshot only when needed; pass the profile on.
        #[arg(long)]
        before_migrate: bool,
    },
    /// Who may reach an env's instance: `show` (ingress rules, and whether this machine's
    /// public address is admitted), `allow-current` (a rule for this machine's current address,
    /// its stale one removed), `revoke` (a machine's rules). The local provider needs none.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Record a database's env stamp as a tag on its AWS instance or Aurora cluster
    /// (`dbtools:stamp:<database>`): what `dbguard stamp` and `dbguard adopt` run. The stamp
    /// (`{"env","protection","nonce"}`) comes on stdin.
    StampRecord {
        /// The RDS instance or Aurora cluster id.
        #[arg(long, value_name = "ID")]
        instance: String,
        /// The database whose stamp this is.
        #[arg(long, value_name = "NAME")]
        database: String,
        /// The instance's region [default: AWS_REGION].
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
    },
    /// Print the database stamps an AWS instance's tags record, with its endpoint (what
    /// `dbguard adopt` asks to tell a restored copy from the original).
    Stamps {
        /// The RDS instance or Aurora cluster id.
        #[arg(long, value_name = "ID")]
        instance: String,
        /// The instance's region [default: AWS_REGION].
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
    },
    /// Delete envs' instances (destructive). Every env whose data is on it must be confirmed,
    /// whatever env name reached it: the stamps in its databases decide (the instance's record
    /// or tags when they cannot be read; no record at all counts as locked), --confirm names
    /// each protected one (comma-separated). Local: with its data and secrets. AWS (--spec):
    /// the instance id too (`--confirm <instance-id>,test`); a final snapshot unless skipped
    /// (open envs only).
    Destroy(DestroyArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Print an RDS IAM auth token (valid 15 minutes) for a user as dbtools.secret/v1 JSON:
    /// what dbenv runs for `aws-iam:REGION` secrets. Redacted on a terminal unless --reveal.
    IamToken {
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 5432)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        region: String,
        /// Show the token on a terminal.
        #[arg(long)]
        reveal: bool,
    },
    /// Print a secret's value as dbtools.secret/v1 JSON.
    Get {
        /// Secret name or ARN.
        id: String,
        /// AWS region [default: the ARN's, then the AWS environment's].
        #[arg(long)]
        region: Option<String>,
        /// Show the password on a terminal.
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create (or converge) a tenant's database and role; a second run changes nothing.
    Add {
        /// The tenant's name: its database and its role (lowercase letters, digits, _).
        name: String,
        /// The env whose instance holds the tenant (its stamp goes on the database).
        #[arg(long, short = 'e', value_name = "ENV")]
        env: String,
        /// The AWS spec: add the tenant on the env's RDS instance (password in Secrets Manager).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// AWS: let the role log in with IAM auth tokens (GRANT rds_iam).
        #[arg(long, requires = "spec")]
        iam: bool,
        /// AWS: the RDS CA bundle (global-bundle.pem from AWS) to verify the instance with.
        #[arg(long, value_name = "FILE", requires = "spec")]
        sslrootcert: Option<PathBuf>,
    },
}

/// Which instance `access` looks at: the env's in the spec, a named one, or (neither given)
/// the env's in dbtools.toml.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct AccessTarget {
    /// The AWS spec: the env's instance there.
    #[arg(long, value_name = "FILE", conflicts_with = "instance")]
    pub spec: Option<PathBuf>,
    /// An RDS instance or Aurora cluster id (what `dbconnect doctor` passes).
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// The instance's region [default: the spec's or config's, then AWS_REGION].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// The ingress rules on 5432 (from the spec, per machine, other) and whether this
    /// machine's current public address is admitted.
    Show {
        /// The env (not needed with --instance).
        env: Option<String>,
        #[command(flatten)]
        target: AccessTarget,
        /// Do not ask the check-IP endpoint (rules only).
        #[arg(long)]
        offline: bool,
    },
    /// Admit this machine's current public address (a /32 or /128 named after the machine)
    /// and remove its stale rule; never 0.0.0.0/0, never the spec's rules. Locked envs need
    /// --confirm and --break-glass.
    AllowCurrent {
        env: String,
        #[command(flatten)]
        target: AccessTarget,
        /// Take over a rule of this machine's name that this machine has no record of adding.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Remove a machine's rules (this machine's by default).
    Revoke {
        env: String,
        #[command(flatten)]
        target: AccessTarget,
        /// The machine whose rules go (as in its `dbtools:NAME` description).
        #[arg(long, value_name = "NAME")]
        machine: Option<String>,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
}

/// `rdsprov restore`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The AWS spec (TOML or JSON; `-` reads stdin).
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    #[arg(long, short = 'e', value_name = "ENV")]
    pub env: String,
    /// The new instance's id.
    #[arg(long = "as", value_name = "ID")]
    pub target: String,
    /// A snapshot id (e.g. one `rdsprov snapshot` took).
    #[arg(long, value_name = "SNAPSHOT", group = "source")]
    pub from_snapshot: Option<String>,
    /// A moment within the backup retention, RFC 3339 UTC (2026-11-23T08:00:00Z).
    #[arg(long, value_name = "TIME", group = "source")]
    pub to_time: Option<String>,
    /// The latest restorable time (a few minutes ago).
    #[arg(long, group = "source")]
    pub latest: bool,
    /// The env the restored databases are for: each is adopted (stamped for it, the copy's
    /// origin kept in `adopted_from`), so it is not mistaken for the source env's.
    #[arg(long = "for", value_name = "ENV", requires = "sslrootcert")]
    pub for_env: Option<String>,
    /// The RDS CA bundle, to reach the restored databases (with --for).
    #[arg(long, value_name = "FILE")]
    pub sslrootcert: Option<PathBuf>,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

/// `rdsprov destroy`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct DestroyArgs {
    /// The env whose instance goes (repeatable: AWS envs are deleted at once, each
    /// confirmed on its own).
    #[arg(long = "env", short = 'e', value_name = "ENV", required = true)]
    pub envs: Vec<String>,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    /// The AWS spec: destroy the env's AWS instance.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// AWS: turn deletion protection off first (otherwise a protected instance is refused).
    #[arg(long, requires = "spec")]
    pub disable_deletion_protection: bool,
    /// AWS: no final snapshot (open envs only).
    #[arg(long, requires = "spec")]
    pub skip_final_snapshot: bool,
    /// AWS: the RDS CA bundle, to read the stamps in the instance's databases as well as
    /// those its tags record (unreachable databases leave the tags to decide).
    #[arg(long, value_name = "FILE", requires = "spec")]
    pub sslrootcert: Option<PathBuf>,
}
