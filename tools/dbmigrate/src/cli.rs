//! dbmigrate's flags.

use clap::{Parser, Subcommand};
use dbtools::cli::{ConfirmArgs, EnvArg, GlobalArgs};
use std::path::PathBuf;

/// Migrations in dbmate's format, applied fast and safely, for a profile piped in or --env.
#[derive(Debug, Parser)]
#[command(name = "dbmigrate", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Migrations directory (repeatable) [default: migrations/ beside dbtools.toml, else ./migrations].
    #[arg(long = "dir", short = 'd', global = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a new migration file named <UTC timestamp>_<name>.sql.
    New {
        /// What the migration does, e.g. add_users (letters, digits, '_').
        name: String,
    },
    /// List migrations: applied, pending, changed (file edited after it was applied), missing.
    Status {
        #[command(flatten)]
        env: EnvArg,
        /// Exit 1 when anything is pending, changed or missing.
        #[arg(long)]
        exit_code: bool,
    },
    /// Apply pending migrations, each in its own transaction.
    Up {
        #[command(flatten)]
        env: EnvArg,
        /// Stop after this version.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// All pending migrations in one transaction: all or nothing.
        #[arg(long)]
        atomic: bool,
        /// Print the SQL that would run (each migration with its wrapping, in order); change
        /// nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for another migrator's lock (each statement's own lock_timeout is
        /// the env's `[env.NAME.migrations]` or a directive's, default 5s).
        #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
        lock_timeout: f64,
        /// How often a migration that hit its lock_timeout runs again [default: the env's
        /// lock_retries, else 5].
        #[arg(long, value_name = "N")]
        lock_retries: Option<u32>,
    },
    /// Revert applied migrations, newest first (destructive: --confirm on confirm-level envs).
    #[command(alias = "rollback")]
    Down {
        #[command(flatten)]
        env: EnvArg,
        /// How many to revert.
        #[arg(default_value_t = 1, conflicts_with = "to")]
        count: usize,
        /// Revert every migration newer than this version.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Print the SQL that would run (each migration's down, in order, with its wrapping);
        /// change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        confirm: ConfirmArgs,
        /// Seconds to wait for another migrator's lock.
        #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
        lock_timeout: f64,
        /// How often a migration that hit its lock_timeout runs again.
        #[arg(long, value_name = "N")]
        lock_retries: Option<u32>,
    },
    /// Wait until the database answers (retrying with backoff, progress on stderr), then
    /// print its migration status, like dbmate's wait.
    Wait {
        #[command(flatten)]
        env: EnvArg,
        /// Give up after this many seconds (exit 4).
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        timeout: f64,
    },
    /// Create the env's database (as its instance's master, owned by the env's role) and stamp
    /// it, like dbmate's create.
    Create {
        #[command(flatten)]
        env: EnvArg,
    },
    /// Drop the env's database (destructive for the env its stamp names: --confirm that env).
    Drop {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Load a schema file (`dbmigrate dump`'s) into the env's empty, stamped database, in one
    /// transaction, like dbmate's load.
    Load {
        #[command(flatten)]
        env: EnvArg,
        /// The schema file [default: db/schema.sql beside dbtools.toml, else ./db/schema.sql].
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Write the schema (pg_dump) and the applied versions to a file, like dbmate's db/schema.sql.
    Dump {
        #[command(flatten)]
        env: EnvArg,
        /// Where to write [default: db/schema.sql beside dbtools.toml, else ./db/schema.sql].
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Prove every migration reverses: up, down, up again on a scratch schema, all rolled back.
    Verify {
        #[command(flatten)]
        env: EnvArg,
    },
    /// Schema drift between the profile's env and another env (exit 1 when they differ).
    Diff {
        #[command(flatten)]
        env: EnvArg,
        /// The env to compare with, from dbtools.toml.
        #[arg(long, value_name = "ENV")]
        against: String,
    },
    /// Record the current checksum of an applied migration whose file was edited on purpose.
    Accept {
        #[command(flatten)]
        env: EnvArg,
        version: String,
    },
}
