//! Names of the environment variables dbtools reads, in one place so README and code agree.

/// Selects the environment when `--env` is not given (never defaults silently to anything but dev).
pub const DBTOOLS_ENV: &str = "DBTOOLS_ENV";
/// Path of the project config file (otherwise `dbtools.toml` is searched upward from the cwd).
pub const DBTOOLS_CONFIG: &str = "DBTOOLS_CONFIG";
/// Overrides the state dir (local instances, local secret store, pgpass files).
pub const DBTOOLS_STATE_DIR: &str = "DBTOOLS_STATE_DIR";
/// Directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres).
pub const DBTOOLS_PG_BIN: &str = "DBTOOLS_PG_BIN";
/// Where tools look for a sibling binary (e.g. `rdsprov` for AWS secrets) before `PATH`.
pub(crate) const DBTOOLS_BIN_DIR: &str = "DBTOOLS_BIN_DIR";
/// The HTTPS endpoint that answers this machine's public address (`rdsprov access`).
pub const DBTOOLS_CHECKIP_URL: &str = "DBTOOLS_CHECKIP_URL";
/// This machine's name in the ingress rule `rdsprov access allow-current` adds.
pub const DBTOOLS_MACHINE_NAME: &str = "DBTOOLS_MACHINE_NAME";
/// An ad-hoc profile's connection URL (read by `dbenv resolve --from-env`).
pub const DATABASE_URL: &str = "DATABASE_URL";

/// libpq's variables, read for ad-hoc profiles and written by `dbenv export --format env`.
pub const PGHOST: &str = "PGHOST";
pub const PGPORT: &str = "PGPORT";
pub const PGDATABASE: &str = "PGDATABASE";
pub const PGUSER: &str = "PGUSER";
pub const PGPASSWORD: &str = "PGPASSWORD";
pub const PGPASSFILE: &str = "PGPASSFILE";
pub const PGSSLMODE: &str = "PGSSLMODE";
pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";
pub const PGHOSTADDR: &str = "PGHOSTADDR";
pub const PGSERVICE: &str = "PGSERVICE";
pub(crate) const PGSERVICEFILE: &str = "PGSERVICEFILE";
pub(crate) const PGSYSCONFDIR: &str = "PGSYSCONFDIR";
/// libpq's TLS variables dbtools' TLS (native-tls) cannot honour: refused by name, never ignored.
pub(crate) const PGSSL_UNSUPPORTED: &[&str] = &[
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLPASSWORD",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLCERTMODE",
    "PGSSLCOMPRESSION",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGSSLNEGOTIATION",
    "PGSSLSNI",
    "PGREQUIREPEER",
    "PGGSSENCMODE",
];
pub(crate) const PGAPPNAME: &str = "PGAPPNAME";
