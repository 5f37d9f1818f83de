//! dbseed's flags.

use clap::{Parser, Subcommand};
use dbtools::cli::{ConfirmArgs, EnvArg, GlobalArgs};
use std::path::PathBuf;

/// Seeds: per-env data files applied once, idempotently, through the guard.
#[derive(Debug, Parser)]
#[command(name = "dbseed", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Seeds directory (holding common/, dev/, test/, …) [default: seeds/ beside dbtools.toml].
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply pending seed files (and edited ones that prove idempotent); passes the profile on.
    Apply {
        #[command(flatten)]
        env: EnvArg,
        /// Empty the seeded tables first (TRUNCATE … CASCADE) and apply everything again: destructive.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        confirm: ConfirmArgs,
    },
    /// List seed files as applied, pending, changed or skipped.
    Status {
        #[command(flatten)]
        env: EnvArg,
        /// Exit 1 when anything is pending or changed.
        #[arg(long)]
        exit_code: bool,
    },
    /// Prove idempotence: apply every seed twice in a transaction that is rolled back, and
    /// compare row counts and content checksums of the tables each file touches.
    Verify {
        #[command(flatten)]
        env: EnvArg,
    },
}
