//! dbguard's flags.

use clap::{Parser, Subcommand};
use dbtools::cli::{ConfirmArgs, EnvArg, GlobalArgs};
use std::path::PathBuf;

/// Guardrails: env stamps, protection levels, typed confirmation, audit, SQL lint.
#[derive(Debug, Parser)]
#[command(name = "dbguard", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Record inside the database which env it belongs to, as the instance's master (re-stamping another env's database needs that env's --confirm).
    Stamp {
        /// The env to stamp (its database from dbtools.toml) [default: the profile on stdin].
        env: Option<String>,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Make a copy of another env's database (a loaded dump, a template clone, a restored snapshot) this env's; never the original.
    Adopt {
        /// The env that now owns the copy (its database from dbtools.toml) [default: the profile on stdin].
        env: Option<String>,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// Decide whether an action may run on the env; pass the profile on (exit 0) or refuse (exit 3).
    Check {
        /// read | write | destructive, or an action name (migrate, seed, migrate-down, reset, drop, truncate, …).
        #[arg(long, short = 'a')]
        action: String,
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        confirm: ConfirmArgs,
        /// Seconds to wait for the database (writes and destructive actions read its stamp).
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        timeout: f64,
    },
    /// List destructive actions and refusals: this machine's log, or the database's with --database.
    Audit {
        /// Read dbtools.audit in the env's database instead of the local log.
        #[arg(long)]
        database: bool,
        #[command(flatten)]
        env: EnvArg,
        /// Show the newest N entries.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Judge every statement against the lint's allowlist (migrations: up sections; other files: all of it).
    Lint {
        /// SQL files: migrations or seeds.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Judge for this env: on open envs most findings warn (exit 0), elsewhere they need an opt-in; cross-database and role statements need one everywhere, the dbtools schema is refused always.
        #[arg(long, short = 'e', value_name = "ENV")]
        env: Option<String>,
    },
}
