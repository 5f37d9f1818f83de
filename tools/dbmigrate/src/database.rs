//! dbmate's `create`, `drop` and `load`, through the guard.
//!
//! `create` and `drop` act on the env's database as its instance's master (the secret `rdsprov`
//! keeps, sent only to that instance's own endpoint: `owner::master_conn`), from the instance's
//! `postgres` database. `create` makes the database, owned by the env's role, and stamps it
//! (`dbguard stamp`, which writes the stamp as the master and records it with the instance).
//! `drop` is destructive for the env its *stamp* names — the database decides which env is at
//! risk, not the profile — so it needs that env's `--confirm` (and break-glass when locked); an
//! unstamped database counts as the profile's env at its configured level. `load` runs a
//! schema file written by `dbmigrate dump` into an empty database stamped for the env, as one
//! transaction, and refuses a file that touches the `dbtools` schema, roles or other databases.

use dbtools::config::Config;
use dbtools::contract::{Conn, LintFinding, Profile};
use dbtools::guard::{self, Confirmation, Guard};
use dbtools::names::{quote_ident, quote_literal};
use dbtools::{cli, lint, owner, pg, stamp, Error, Result};
use std::path::Path;

const TOOL: &str = "dbmigrate";

/// The instance's master, connected to its `postgres` database, with the project config.
fn master(profile: &Profile, config_path: Option<&Path>, verb: &str) -> Result<(Config, Conn)> {
    let config = Config::find(config_path)?.ok_or_else(|| {
        Error::BadInput(format!(
            "dbmigrate {verb} needs dbtools.toml: the env's instance, whose master creates and drops its databases"
        ))
    })?;
    let (_, conn) = owner::master_conn(&config, profile)?.ok_or_else(|| {
        Error::BadInput(format!(
            "env {} names no instance in dbtools.toml, so its master is unknown: dbmigrate {verb} acts as the instance's master (give the env its `instance`, or {verb} the database yourself)",
            profile.env
        ))
    })?;
    Ok((config, conn))
}

fn database_exists(admin: &mut pg::Client, name: &str) -> Result<bool> {
    let messages = admin
        .simple_query(&format!(
            "SELECT 1 FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ))
        .map_err(|e| pg::statement_error("looking for the database", &e))?;
    Ok(!pg::result_sets(&messages)
        .pop()
        .unwrap_or_default()
        .is_empty())
}

/// `dbmigrate create`: the env's database, owned by the env's role, then stamped.
pub(crate) fn create(profile: &Profile, config_path: Option<&Path>) -> Result<()> {
    Guard::for_project(TOOL, "create", profile, config_path)?;
    let (_, mut conn) = master(profile, config_path, "create")?;
    let database = profile.conn.dbname.clone();
    conn.dbname = "postgres".into();
    let mut admin = pg::connect(&conn, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?;
    if database_exists(&mut admin, &database)? {
        cli::note(
            TOOL,
            format!("database {database} exists already: making sure it is stamped"),
        );
    } else {
        let role = &profile.conn.user;
        let messages = admin
            .simple_query(&format!(
                "SELECT 1 FROM pg_roles WHERE rolname = {}",
                quote_literal(role)
            ))
            .map_err(|e| pg::statement_error("looking for the env's role", &e))?;
        if pg::result_sets(&messages)
            .pop()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(Error::BadInput(format!(
                "role {role} of env {} does not exist on the instance: `rdsprov apply` (or `rdsprov tenant add`) creates it",
                profile.env
            )));
        }
        admin
            .simple_query(&format!(
                "CREATE DATABASE {} OWNER {}",
                quote_ident(&database),
                quote_ident(role)
            ))
            .map_err(|e| pg::statement_error(&format!("creating database {database}"), &e))?;
        cli::note(
            TOOL,
            format!("created database {database}, owned by {role}"),
        );
    }
    stamp_through_dbguard(profile, config_path)
}

/// Stamps the profile's database with `dbguard stamp` (as the instance's master, recorded with
/// the instance): the one place stamps are written.
fn stamp_through_dbguard(profile: &Profile, config_path: Option<&Path>) -> Result<()> {
    let json = serde_json::to_string(profile)
        .map_err(|e| Error::Failed(format!("cannot encode the profile: {e}")))?;
    let mut args = vec!["stamp".to_string()];
    if let Some(path) = config_path {
        args.extend(["--config".to_string(), path.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dbtools::secrets::run_sibling("dbguard", &args, Some(&json))
        .map_err(|e| e.context("stamping the new database (dbguard stamp)"))?;
    cli::note(
        TOOL,
        format!("stamped {} as {}", profile.conn.dbname, profile.env),
    );
    Ok(())
}

/// `dbmigrate drop`: the env's database, destructive for the env its stamp names.
pub(crate) fn drop(
    profile: &Profile,
    config_path: Option<&Path>,
    confirmation: &Confirmation,
) -> Result<bool> {
    let (config, mut conn) = master(profile, config_path, "drop")?;
    let database = profile.conn.dbname.clone();
    let mut guard = Guard::new(TOOL, "drop", profile, Some(&config))?;
    conn.dbname = "postgres".into();
    let mut admin = pg::connect(&conn, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?;
    if !database_exists(&mut admin, &database)? {
        cli::note(
            TOOL,
            format!("database {database} does not exist: nothing to drop"),
        );
        return Ok(false);
    }
    // What is at risk is what the database says it is.
    conn.dbname = database.clone();
    let mut inside = pg::connect(&conn, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?;
    let reading = stamp::read(&mut inside)?;
    if let Some(stamped) = &reading.stamp {
        guard.env = stamped.env.clone();
        guard.protection =
            guard::floor(&stamped.env, stamped.protection, Some(&config)).max(guard.protection);
    }
    guard.check_protection(confirmation)?;
    guard.record_allowed(Some(&mut inside), confirmation)?;
    std::mem::drop(inside);
    admin
        .simple_query(&format!("DROP DATABASE {}", quote_ident(&database)))
        .map_err(|e| {
            pg::statement_error(
                &format!("dropping database {database} (its audit is in this machine's log)"),
                &e,
            )
        })?;
    cli::note(
        TOOL,
        format!(
            "dropped database {database} of env {} (audited in this machine's log)",
            guard.env
        ),
    );
    Ok(true)
}

/// pg_dump's own preamble (versions 15 to 17), line for line: session settings for the load,
/// among them an empty search path, so that every name after it is qualified. These exact
/// lines are known safe; any other setting (a search_path of the file's choosing) is judged.
const PG_DUMP_PREAMBLE: &[&str] = &[
    "SET statement_timeout = 0;",
    "SET lock_timeout = 0;",
    "SET idle_in_transaction_session_timeout = 0;",
    "SET transaction_timeout = 0;",
    "SET client_encoding = 'UTF8';",
    "SET standard_conforming_strings = on;",
    "SELECT pg_catalog.set_config('search_path', '', false);",
    "SET check_function_bodies = false;",
    "SET xmloption = content;",
    "SET client_min_messages = warning;",
    "SET row_security = off;",
    "SET default_tablespace = '';",
    "SET default_table_access_method = heap;",
];

/// The text with pg_dump's preamble lines blanked (same lines, same numbers), for the lint.
fn without_preamble(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let bare = line.trim_end_matches(['\n', '\r']);
            if PG_DUMP_PREAMBLE.contains(&bare) {
                format!("{}{}", " ".repeat(bare.len()), &line[bare.len()..])
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Findings that stop a `load` whatever the env: the `dbtools` schema (the guard's own), roles
/// and other databases; and what could reach them unseen — SQL built at run time, functions
/// the lint does not know, a search_path of the file's choosing, anything unclassified. The
/// rest (a rewrite, a blocking index build) costs nothing in an empty database.
fn load_refusals(findings: &[LintFinding]) -> Vec<&LintFinding> {
    findings
        .iter()
        .filter(|f| {
            f.enforcement != dbtools::contract::Enforcement::Protected
                || matches!(
                    f.rule.as_str(),
                    "dynamic-sql" | "unknown-function" | "search-path" | "unclassified"
                )
        })
        .collect()
}

/// `dbmigrate load`: `file` (a `dbmigrate dump`) into the env's empty, stamped database, in one
/// transaction. Returns the versions the file recorded.
pub(crate) fn load(
    profile: &Profile,
    config_path: Option<&Path>,
    file: &Path,
) -> Result<Vec<String>> {
    dbtools::links::check_inside(
        file,
        &dbtools::links::project_root(
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?,
    )?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", file.display())))?;
    // The file is one transaction: a COMMIT (or any transaction control) in it would end ours
    // and leave what came before committed.
    if let Some(found) = dbtools::sql::find_unwrappable(&text) {
        return Err(Error::BadInput(format!(
            "{}:{}: {}: a schema file loads as one transaction, so it may not hold transaction control or statements that cannot run in one; nothing was loaded",
            file.display(),
            dbtools::sql::line_at(&text, found.offset, 1),
            found.what
        )));
    }
    // What is linted is the text that runs (pg_dump's preamble kept out of the judgement:
    // the lines stay, so line numbers do too).
    let mut linter = lint::Linter::new();
    linter.add_sql(&file.display().to_string(), &without_preamble(&text))?;
    let findings = linter.findings();
    let refused = load_refusals(&findings);
    if let Some(first) = refused.first() {
        return Err(Error::Refused(format!(
            "{}: {} — a schema file must not touch the dbtools schema, roles or other databases, nor build SQL, call unknown functions or set its own search_path; nothing was loaded",
            file.display(),
            lint::describe(first)
        )));
    }
    let mut guard = Guard::for_project(TOOL, "load", profile, config_path)?;
    let mut client = dbtools::resolve::connect(profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?;
    guard.check_stamp(&mut client)?;
    let messages = client
        .simple_query(
            "SELECT count(*)::text, coalesce(min(format('%I.%I', n.nspname, c.relname)), '') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbtools') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
        )
        .map_err(|e| pg::statement_error("checking the database is empty", &e))?;
    let row = pg::result_sets(&messages)
        .pop()
        .and_then(|set| set.into_iter().next())
        .unwrap_or_default();
    let count = row.first().cloned().flatten().unwrap_or_default();
    if count != "0" {
        return Err(guard.refuse(
            Some(&mut client),
            format!(
                "database {} is not empty ({count} relation(s), e.g. {}): load is for an empty database — `dbmigrate drop` and `dbmigrate create` it first",
                profile.conn.dbname,
                row.get(1).cloned().flatten().unwrap_or_default()
            ),
        ));
    }
    // One message is one transaction: the whole schema or nothing. pg_dump's file empties the
    // session's search_path; the read-back needs it back.
    client
        .simple_query(&format!("BEGIN;\n{text}\n;\nCOMMIT;\nRESET search_path;"))
        .map_err(|e| {
            let _ = client.simple_query("ROLLBACK");
            Error::Failed(format!(
                "{}: {} — nothing was loaded",
                file.display(),
                pg::error_chain(&e)
            ))
        })?;
    let versions = crate::engine::read_applied(&mut client)?
        .unwrap_or_default()
        .into_iter()
        .map(|row| row.version)
        .collect();
    Ok(versions)
}
