//! dbenv's flags.

use clap::{Parser, Subcommand, ValueEnum};
use dbtools::cli::GlobalArgs;

/// Environment profiles: which database each env (dev/test/prod) is, and how to reach it.
#[derive(Debug, Parser)]
#[command(name = "dbenv", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the envs in dbtools.toml.
    List {
        /// Only the names, one per line (what shell completion offers after --env).
        #[arg(long, hide = true)]
        names: bool,
    },
    /// Print an env's profile (JSON when piped): where it is and where its secret lives, never
    /// the password (each tool reads that itself when it connects).
    Resolve {
        /// Env name [default: $DBTOOLS_ENV, then dev; with --from-env: adhoc].
        env: Option<String>,
        /// Build the profile from DATABASE_URL or PG* variables instead of dbtools.toml.
        #[arg(long)]
        from_env: bool,
    },
    /// Print an env for other programs: shell variables, a URL, a pgpass line, a service entry, JSON.
    Export {
        /// Env name [default: $DBTOOLS_ENV, then dev].
        env: Option<String>,
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Env)]
        format: Format,
        /// Show the password on a terminal (url, pgpass); piped, they always carry it.
        #[arg(long)]
        reveal: bool,
    },
    /// Write what rdsprov made (its resources JSON on stdin) into dbtools.toml: per AWS env its
    /// instance, host, port, database, user, secret ref, verify-full and sslrootcert. Comments
    /// and other keys stay; a second import changes nothing. Prints the env list.
    Import {
        /// The RDS CA bundle for the imported envs' sslrootcert (verify-full).
        #[arg(long, value_name = "FILE")]
        sslrootcert: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// `export PG…=…` lines for `eval`; the password goes to a 0600 PGPASSFILE, never the output.
    Env,
    /// A postgres:// URL (DATABASE_URL).
    Url,
    /// One password-file line (libpq's ~/.pgpass; %APPDATA%\postgresql\pgpass.conf on Windows).
    Pgpass,
    /// A pg_service.conf section (with passfile=).
    Service,
    /// The profile as JSON (no password: where the secret lives).
    Json,
    /// `$env:PG… = …` lines for PowerShell (`| Out-String | Invoke-Expression`), printable ASCII
    /// whatever the values hold; the password goes to a private PGPASSFILE, never the output.
    Powershell,
}
