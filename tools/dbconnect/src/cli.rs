//! dbconnect's flags.

use clap::{Parser, Subcommand};
use dbtools::cli::{EnvArg, GlobalArgs};

/// Connection checks: the witness that a database answers, over TLS, as the right user.
#[derive(Debug, Parser)]
#[command(name = "dbconnect", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Connect once and print the witness: server version, database, user, TLS, address, latency.
    Check {
        #[command(flatten)]
        env: EnvArg,
        /// Give up (exit 4) when TCP connect, TLS handshake and login have not finished in this many seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Retry with backoff until the database answers (progress on stderr), then print the witness.
    Wait {
        #[command(flatten)]
        env: EnvArg,
        /// Give up after this many seconds (exit 4).
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Walk the connection chain step by step — DNS, TCP (and for an RDS instance what AWS
    /// says: status, public access, whether its security group admits this machine), TLS,
    /// authentication, database, env stamp, migrations — one line each with the fix, stopping
    /// at the first failure (exit 4 cannot connect, 3 wrong env stamp, 1 migrations pending).
    Doctor {
        #[command(flatten)]
        env: EnvArg,
        /// Seconds to wait for a TCP connect and for each later step.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Print the connection URL (password redacted unless --reveal).
    Url {
        #[command(flatten)]
        env: EnvArg,
        #[arg(long)]
        reveal: bool,
    },
    /// Run psql on the env (password passed in psql's environment, never on its command line).
    Psql {
        #[command(flatten)]
        env: EnvArg,
        /// Arguments for psql, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
}
