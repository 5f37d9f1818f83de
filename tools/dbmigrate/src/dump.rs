//! `dbmigrate dump`: the schema as a file for review, like dbmate's `db/schema.sql` — pg_dump's
//! plain schema, then the applied versions. Deterministic: the same schema gives a byte-identical
//! file (pg_dump's version banner and its random `\restrict` keys are dropped). A pg_dump older
//! than the server is named before it runs, not skipped.

use crate::engine::AppliedRow;
use dbtools::contract::Profile;
use dbtools::names::quote_literal;
use dbtools::server::PgBinaries;
use dbtools::{envvars, pg, Error, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// pg_dump: beside the server binaries we would run, else on PATH.
fn pg_dump() -> PathBuf {
    PgBinaries::locate()
        .map(|bins| bins.tool("pg_dump"))
        .ok()
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("pg_dump"))
}

/// The major version in `pg_dump (PostgreSQL) 15.18 (Debian …)`.
fn major_of(version_text: &str) -> Option<u32> {
    version_text
        .split_whitespace()
        .nth(2)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Produces the schema file's text.
pub(crate) fn schema(
    client: &mut pg::Client,
    profile: &Profile,
    applied: &[AppliedRow],
) -> Result<String> {
    let binary = pg_dump();
    let version = Command::new(&binary).arg("--version").output().map_err(|e| {
        Error::BadInput(format!(
            "cannot run {} ({e}): install the PostgreSQL client (apt-get install -y postgresql-client) or set {}",
            binary.display(),
            envvars::DBTOOLS_PG_BIN
        ))
    })?;
    let version_text = String::from_utf8_lossy(&version.stdout).to_string();
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000, current_schema()",
            &[],
        )
        .map_err(|e| pg::statement_error("reading the server version", &e))?;
    let server_major: i32 = row.get(0);
    let schema: String = row.get(1);
    match major_of(&version_text) {
        Some(major) if major as i32 >= server_major => {}
        found => {
            return Err(Error::BadInput(format!(
                "{} is {} but the server is PostgreSQL {server_major}: pg_dump must be at least the server's major version; install postgresql-client-{server_major} or set {} to its bin directory",
                binary.display(),
                found.map(|m| format!("version {m}")).unwrap_or_else(|| format!("unreadable ({})", version_text.trim())),
                envvars::DBTOOLS_PG_BIN
            )))
        }
    }
    // pg_dump reads the password from its environment, as read now from the profile's secret.
    let conn = &dbtools::resolve::with_password(profile)?.conn;
    let mut command = Command::new(&binary);
    command
        .args([
            "--format=plain",
            "--encoding=UTF8",
            "--schema-only",
            "--no-privileges",
            "--no-owner",
            // dbtools' own bookkeeping (env stamp, audit) is not the app's schema.
            "--exclude-schema=dbtools",
        ])
        .stdin(Stdio::null());
    pg::libpq_environment(&mut command, conn, "dbmigrate dump");
    let output = command
        .output()
        .map_err(|e| Error::Failed(format!("cannot run {}: {e}", binary.display())))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr)
            .trim()
            .replace('\n', " / ");
        return Err(Error::Failed(format!("pg_dump failed: {message}")));
    }
    let dumped = String::from_utf8(output.stdout)
        .map_err(|_| Error::Failed("pg_dump wrote text that is not UTF-8".into()))?;
    let mut text: String = dumped
        .lines()
        .filter(|line| {
            !(line.starts_with("\\restrict ")
                || line.starts_with("\\unrestrict ")
                || line.starts_with("-- Dumped from database version")
                || line.starts_with("-- Dumped by pg_dump version"))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !applied.is_empty() {
        let quoted_schema = dbtools::names::quote_ident(&schema);
        let schema_name = if schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            schema
        } else {
            quoted_schema
        };
        text.push_str(&format!(
            "\n\n--\n-- Dbmate schema migrations\n--\n\nINSERT INTO {schema_name}.schema_migrations (version) VALUES\n{};\n",
            applied.iter().map(|a| format!("    ({})", quote_literal(&a.version))).collect::<Vec<_>>().join(",\n")
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg_dump_majors() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(major_of("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(major_of("garbage"), None);
    }
}
