//! `dbmigrate verify`: proves every migration reverses — up, then down (newest first), then up
//! again — on a scratch schema inside one transaction that is rolled back, so the env's
//! database keeps nothing of it and needs no extra privilege (PostgreSQL's DDL is
//! transactional). After each down the schema must be exactly what it was before that
//! migration's up; after the second up exactly what the first made. The first difference is
//! reported with the objects left over or missing.
//!
//! `transaction:false` statements run in their in-transaction form (`CREATE INDEX CONCURRENTLY`
//! as a plain CREATE INDEX); those without one (VACUUM, …) are skipped and said so.

use crate::schema;
use dbtools::migration_files::{Block, Migration};
use dbtools::{cli, pg, sql, Error, Result};

const SCRATCH: &str = "dbmigrate_verify";
const TOOL: &str = "dbmigrate";

/// What went wrong for one migration.
pub(crate) struct Problem {
    pub index: usize,
    pub what: String,
}

/// Runs the proof; `Ok(None)` when every migration reverses.
pub(crate) fn verify(
    client: &mut pg::Client,
    migrations: &[&Migration],
) -> Result<Option<Problem>> {
    if let Some(index) = migrations
        .iter()
        .position(|m| m.sections.iter().all(|s| s.down.is_empty()))
    {
        return Ok(Some(Problem {
            index,
            what: "its down section is empty: the migration cannot be reversed".into(),
        }));
    }
    client
        .batch_execute(&format!(
            "BEGIN; CREATE SCHEMA {SCRATCH}; SET LOCAL search_path = {SCRATCH};"
        ))
        .map_err(|e| pg::statement_error("creating the scratch schema", &e))?;
    let outcome = prove(client, migrations);
    let _ = client.batch_execute("ROLLBACK");
    outcome
}

fn prove(client: &mut pg::Client, migrations: &[&Migration]) -> Result<Option<Problem>> {
    let mut states = vec![schema::snapshot(client, SCRATCH)?];
    for migration in migrations {
        for section in &migration.sections {
            run_block(client, migration, &section.up, "up")?;
        }
        states.push(schema::snapshot(client, SCRATCH)?);
    }
    for (index, migration) in migrations.iter().enumerate().rev() {
        for section in migration.sections.iter().rev() {
            run_block(client, migration, &section.down, "down")?;
        }
        let now = schema::snapshot(client, SCRATCH)?;
        if now != states[index] {
            return Ok(Some(Problem {
                index,
                what: format!(
                    "down does not undo up: {}",
                    describe(&schema::difference(&now, &states[index]))
                ),
            }));
        }
    }
    for (index, migration) in migrations.iter().enumerate() {
        for section in &migration.sections {
            run_block(client, migration, &section.up, "up (second time)")?;
        }
        let now = schema::snapshot(client, SCRATCH)?;
        if now != states[index + 1] {
            return Ok(Some(Problem {
                index,
                what: format!(
                    "up after down builds a different schema than the first up: {}",
                    describe(&schema::difference(&now, &states[index + 1]))
                ),
            }));
        }
    }
    Ok(None)
}

fn describe((extra, missing): &(Vec<String>, Vec<String>)) -> String {
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!("left over: {}", extra.join("; ")));
    }
    if !missing.is_empty() {
        parts.push(format!("missing: {}", missing.join("; ")));
    }
    parts.join(" — ")
}

fn run_block(
    client: &mut pg::Client,
    migration: &Migration,
    block: &Block,
    step: &str,
) -> Result<()> {
    if block.transaction {
        return client
            .simple_query(&block.sql)
            .map(|_| ())
            .map_err(|e| block_error(migration, block, step, 0, &e));
    }
    for (offset, statement) in sql::split(&block.sql)? {
        match sql::in_transaction_form(&statement) {
            Some(runnable) => {
                client
                    .simple_query(&runnable)
                    .map_err(|e| block_error(migration, block, step, offset, &e))?;
            }
            None => cli::note(
                TOOL,
                format!(
                    "{}:{}: skipped in verify (cannot run inside a transaction)",
                    migration.file_name(),
                    sql::line_at(&block.sql, offset, block.first_line)
                ),
            ),
        }
    }
    Ok(())
}

fn block_error(
    migration: &Migration,
    block: &Block,
    step: &str,
    statement_offset: usize,
    error: &postgres::Error,
) -> Error {
    let Some(db) = error.as_db_error() else {
        return pg::statement_error(&migration.file_name(), error);
    };
    let offset = match db.position() {
        Some(postgres::error::ErrorPosition::Original(p)) if statement_offset == 0 => block
            .sql
            .chars()
            .take((*p as usize).saturating_sub(1))
            .map(char::len_utf8)
            .sum(),
        _ => statement_offset,
    };
    let line = sql::line_at(&block.sql, offset, block.first_line);
    Error::Failed(format!(
        "{}:{line}: {step} fails on the scratch schema: {} ({}); nothing was kept",
        migration.path.display(),
        db.message(),
        db.code().code()
    ))
}
