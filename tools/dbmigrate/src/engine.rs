//! The runner: dbmate's `schema_migrations` table, a session advisory lock, and the whole run in
//! a constant number of round trips.
//!
//! 1. One message takes the lock (bounded by `lock_timeout`), creates or widens the table and
//!    re-reads the applied list.
//! 2. One message carries every pending transactional migration, each framed as
//!    `BEGIN; body; INSERT INTO schema_migrations …; COMMIT;`. PostgreSQL runs them in order and
//!    stops at the first error: earlier migrations stay committed, the failing one rolls back
//!    with its record, later ones never run. The message ends by reading back the durations.
//! 3. On an error, one more message rolls the failed transaction back and reads which versions
//!    were recorded; the server's error position maps to a file and line.
//!
//! `transaction:false` sections end a batch: their statements (split by PostgreSQL's parser) run
//! one by one outside a transaction, and the version is recorded after all of them succeeded.
//! Inside one message `now()` is a single instant, so times come from `clock_timestamp()`.

use dbtools::contract::Stamp;
use dbtools::guard::Guard;
use dbtools::migration_files::{compare_versions, Block, Migration};
use dbtools::names::quote_literal;
use dbtools::sql as statements;
use dbtools::stamp;
use dbtools::{pg, Error, Result};
use postgres::SimpleQueryMessage;
use std::time::Duration;

/// The advisory lock key: "dbmigrat" in ASCII. Advisory locks are per database.
pub(crate) const LOCK_KEY: i64 = 0x6462_6d69_6772_6174;

/// A row of `schema_migrations`; our columns are NULL for rows dbmate wrote.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppliedRow {
    pub version: String,
    pub checksum: Option<String>,
    pub applied_at: Option<String>,
    pub duration_ms: Option<f64>,
}

/// Rows of the last result set in a simple-query answer.
fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(_) => out.clear(),
            SimpleQueryMessage::Row(row) => out.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => {}
        }
    }
    out
}

const SELECT_APPLIED: &str =
    "SELECT version, to_jsonb(m) ->> 'checksum', (to_jsonb(m) ->> 'applied_at'), \
     (to_jsonb(m) ->> 'duration_ms') FROM schema_migrations m";

fn applied_rows(messages: &[SimpleQueryMessage]) -> Vec<AppliedRow> {
    let mut applied: Vec<AppliedRow> = rows(messages)
        .into_iter()
        .map(|r| AppliedRow {
            version: r[0].clone().unwrap_or_default(),
            checksum: r[1].clone(),
            applied_at: r[2].clone(),
            duration_ms: r[3].as_deref().and_then(|d| d.parse().ok()),
        })
        .collect();
    applied.sort_by(|a, b| compare_versions(&a.version, &b.version));
    applied
}

/// The applied list, read without writing anything; `None` when there is no table yet.
pub(crate) fn read_applied(client: &mut pg::Client) -> Result<Option<Vec<AppliedRow>>> {
    match client.simple_query(SELECT_APPLIED) {
        Ok(messages) => Ok(Some(applied_rows(&messages))),
        Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42P01") => Ok(None),
        Err(e) => Err(pg::statement_error("reading schema_migrations", &e)),
    }
}

/// What taking the lock found.
pub(crate) struct Locked {
    pub applied: Vec<AppliedRow>,
    pub waited: Duration,
    /// Versions another migrator applied while we waited for the lock.
    pub applied_while_waiting: Vec<String>,
    /// How the batches announce their migrations: the throttled function needs the TEMP
    /// privilege (PUBLIC has it unless someone revoked it).
    pub announce: Announce,
    /// The stamp the guard's assertion read (what the database says it is).
    pub stamp: Option<Stamp>,
}

/// Takes the session advisory lock, makes sure the table has our columns, and re-reads the
/// applied list — in one message.
///
/// The guard's stamp assertion goes first: on a database stamped for another env (or not at
/// all) nothing of the message runs — no lock, no table — and the refusal is recorded.
pub(crate) fn lock(
    client: &mut pg::Client,
    lock_timeout: Duration,
    guard: &Guard,
) -> Result<Locked> {
    let message = format!(
        "{}SELECT set_config('dbtools.lock_requested', clock_timestamp()::text, false);\n\
         SET lock_timeout = '{}ms';\n\
         SELECT pg_advisory_lock({LOCK_KEY});\n\
         RESET lock_timeout;\n\
         CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);\n\
         DO $dbtools$ BEGIN\n\
           IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass AND attname = 'duration_ms') THEN\n\
             ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text, ADD COLUMN IF NOT EXISTS applied_at timestamptz,\n\
               ADD COLUMN IF NOT EXISTS applied_by text, ADD COLUMN IF NOT EXISTS duration_ms double precision;\n\
           END IF;\n\
         END $dbtools$;\n\
         SELECT extract(epoch FROM clock_timestamp() - current_setting('dbtools.lock_requested')::timestamptz)::text,\n\
           coalesce(string_agg(version, ',' ORDER BY version) FILTER (WHERE applied_at >= current_setting('dbtools.lock_requested')::timestamptz), ''),\n\
           has_database_privilege(current_database(), 'TEMP')::text\n\
           FROM schema_migrations;\n\
         {SELECT_APPLIED};",
        guard.stamp_assertion().unwrap_or_default(),
        lock_timeout.as_millis().max(1)
    );
    let waiting = dbtools::cli::NoteAfter::start(
        "dbmigrate",
        Duration::from_secs(1),
        format!(
            "waiting for the migration lock: another migrator holds it (giving up after {}s, --lock-timeout)",
            lock_timeout.as_secs_f64()
        ),
    );
    let answer = client.simple_query(&message);
    drop(waiting);
    let messages = match answer {
        Ok(messages) => messages,
        Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "55P03") => {
            return Err(lock_holder_error(client, lock_timeout));
        }
        Err(e) if stamp::failed(&e).is_some() => {
            return Err(guard
                .refusal_for(client, &e)
                .unwrap_or_else(|| pg::statement_error("checking the env stamp", &e)));
        }
        Err(e) => return Err(pg::statement_error("taking the migration lock", &e)),
    };
    let applied = applied_rows(&messages);
    // The second-to-last result set: wait time and what was applied meanwhile.
    let sets = pg::result_sets(&messages);
    let info = sets
        .iter()
        .rev()
        .nth(1)
        .and_then(|set| set.first())
        .cloned()
        .unwrap_or_default();
    let waited = info
        .first()
        .cloned()
        .flatten()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    let applied_while_waiting = info
        .get(1)
        .cloned()
        .flatten()
        .map(|list| {
            list.split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let announce = match info.get(2).cloned().flatten().as_deref() {
        Some("true") => Announce::Throttled,
        _ => Announce::EachMigration,
    };
    Ok(Locked {
        applied,
        waited: Duration::from_secs_f64(waited.max(0.0)),
        applied_while_waiting,
        announce,
        stamp: stamp::asserted(&messages),
    })
}

fn lock_holder_error(client: &mut pg::Client, waited: Duration) -> Error {
    let _ = client.simple_query("ROLLBACK");
    let (high, low) = ((LOCK_KEY >> 32) as u32, LOCK_KEY as u32);
    let holder = client
        .simple_query(&format!(
            "SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), \
             coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), '') FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {high} AND l.objid = {low} AND l.objsubid = 1"
        ))
        .ok()
        .and_then(|m| rows(&m).into_iter().next())
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            format!(" (pid {}, {} from {}, connected {})", get(0), get(1), get(2), get(3))
        })
        .unwrap_or_default();
    Error::Failed(format!(
        "another migration holds the migration lock{holder}; gave up after --lock-timeout {:.1}s: rerun when it has finished",
        waited.as_secs_f64()
    ))
}

/// Where a piece of a batch message came from, to map an error position back to a file.
struct Segment {
    start_char: usize,
    end_char: usize,
    migration: usize,
    block_first_line: usize,
}

/// A message under construction with the origin of each migration body in it.
#[derive(Default)]
struct Batch {
    text: String,
    chars: usize,
    segments: Vec<Segment>,
    versions: Vec<usize>,
    /// Whether each migration announces itself (a notice after its COMMIT) as it commits.
    streamed: bool,
}

impl Batch {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.chars += text.chars().count();
    }

    fn push_block(&mut self, migration: usize, block: &Block) {
        let start_char = self.chars;
        self.push(&block.sql);
        self.segments.push(Segment {
            start_char,
            end_char: self.chars,
            migration,
            block_first_line: block.first_line,
        });
        // A body may end in a comment or without a semicolon; close it either way.
        self.push("\n;\n");
    }
}

/// One migration as it ran.
#[derive(Debug, Clone)]
pub(crate) struct Ran {
    pub index: usize,
    pub duration_ms: Option<f64>,
    /// Already reported on stderr by the progress notice as its COMMIT arrived.
    pub announced: bool,
}

/// Prefix of the notices a batch raises after each COMMIT; [`progress_line`] reads them.
const PROGRESS: &str = "dbmigrate:progress:";

/// The progress lines in a server notice, if it is one of ours. Notices arrive (and are flushed
/// by the server) while the batch still runs, so the lines show as their migrations commit.
pub(crate) fn progress_lines(notice: &str) -> Option<std::str::Lines<'_>> {
    notice.strip_prefix(PROGRESS).map(str::lines)
}

/// A batch message is cut before it grows past this; each message ends with a durable commit.
const MESSAGE_LIMIT: usize = 4 << 20;

/// The statement that records a migration as applied, timed from the transaction's start.
fn record_sql(migration: &Migration, applied_by: &str) -> String {
    format!(
        "INSERT INTO schema_migrations (version, checksum, applied_at, applied_by, duration_ms) VALUES ({}, {}, clock_timestamp(), {}, \
         round((extract(epoch FROM clock_timestamp() - current_setting('dbtools.started')::timestamptz) * 1000)::numeric, 3));\n",
        quote_literal(&migration.version),
        quote_literal(&migration.checksum),
        quote_literal(applied_by)
    )
}

const START_CLOCK: &str = "SELECT set_config('dbtools.started', clock_timestamp()::text, false);\n";

/// Starts a migration's clock without a result row (a row per migration would be thrown away).
const START_MIGRATION_CLOCK: &str =
    "SELECT WHERE set_config('dbtools.started', clock_timestamp()::text, false) IS NULL;\n";

/// How a streamed batch tells the client about each COMMIT: a notice, because the server
/// flushes its output at once for a notice, so the line shows while later migrations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// Through `pg_temp.dbmigrate_progress`: lines gather in a backlog sent at most every
    /// 100 ms (and after a message's last migration). One notice per migration would be
    /// hundreds of tiny packets; lines at most 0.1 s late read the same to a person. The
    /// function lives in the session's temporary schema, so it is compiled once: the same
    /// logic in a DO block after every COMMIT was compiled afresh each time, 0.35 ms a
    /// migration on the server (170 ms for 500); the call costs a few microseconds.
    Throttled,
    /// A tiny DO block per migration, for a role without the TEMP privilege.
    EachMigration,
}

const PROGRESS_FUNCTION: &str = "CREATE OR REPLACE FUNCTION pg_temp.dbmigrate_progress(line text, last boolean) \
     RETURNS void LANGUAGE plpgsql AS $dbmigrate$\n\
     DECLARE backlog text := coalesce(nullif(current_setting('dbtools.unannounced', true), '') || E'\\n', '') \
       || format('%s (%s ms)', line, round((extract(epoch FROM clock_timestamp() - current_setting('dbtools.started')::timestamptz) * 1000)::numeric, 1));\n\
     BEGIN\n\
       IF last OR clock_timestamp() - coalesce(nullif(current_setting('dbtools.announced_at', true), '')::timestamptz, '2000-01-01') > interval '100 ms' THEN\n\
         RAISE NOTICE '%', 'dbmigrate:progress:' || backlog;\n\
         backlog := '';\n\
         PERFORM set_config('dbtools.announced_at', clock_timestamp()::text, false);\n\
       END IF;\n\
       PERFORM set_config('dbtools.unannounced', backlog, false);\n\
     END $dbmigrate$;\n\
     SELECT WHERE set_config('dbtools.unannounced', '', false) IS NULL;\n";

/// After a COMMIT: the migration's progress line.
fn announce_sql(migration: &Migration, last: bool, announce: Announce) -> String {
    let line = format!("applied {}", migration.file_name());
    match announce {
        Announce::Throttled => format!(
            "SELECT FROM pg_temp.dbmigrate_progress({}, {last});\n",
            quote_literal(&line)
        ),
        Announce::EachMigration => {
            let text = format!("{PROGRESS}{line}")
                .replace('$', "_")
                .replace('%', "%%")
                .replace('\'', "''");
            format!("DO $dbmigrate$BEGIN RAISE NOTICE '{text}'; END $dbmigrate$;\n")
        }
    }
}

/// Renders consecutive transactional migrations as batch messages of at most a few MB.
///
/// Each migration is `BEGIN; body; record; COMMIT;` followed by its progress notice. Every
/// COMMIT but a message's last is asynchronous (`synchronous_commit = off`): the last one's WAL
/// flush makes all of them durable at once, instead of one disk flush per migration. A server
/// crash mid-batch can lose only whole migrations that were not yet reported as done (the run
/// fails and a rerun applies them again). With `atomic`, one transaction around everything.
fn render_batches(
    migrations: &[&Migration],
    indexes: &[usize],
    atomic: bool,
    applied_by: &str,
    announce: Announce,
) -> Vec<Batch> {
    if atomic {
        let mut batch = Batch::default();
        batch.push("BEGIN;\n");
        for &index in indexes {
            batch.push(START_MIGRATION_CLOCK);
            for section in &migrations[index].sections {
                batch.push_block(index, &section.up);
            }
            batch.push(&record_sql(migrations[index], applied_by));
            batch.versions.push(index);
        }
        batch.push("COMMIT;\n");
        return vec![batch];
    }
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for &index in indexes {
        let weight: usize = migrations[index]
            .sections
            .iter()
            .map(|s| s.up.sql.len())
            .sum::<usize>()
            + 600;
        match chunks.last_mut() {
            Some(chunk) if size + weight <= MESSAGE_LIMIT => chunk.push(index),
            _ => {
                chunks.push(vec![index]);
                size = 0;
            }
        }
        size += weight;
    }
    chunks
        .into_iter()
        .map(|chunk| {
            let mut batch = Batch {
                streamed: true,
                ..Batch::default()
            };
            if announce == Announce::Throttled {
                batch.push(PROGRESS_FUNCTION);
            }
            for (position, &index) in chunk.iter().enumerate() {
                let migration = migrations[index];
                batch.push("BEGIN;\n");
                if position + 1 < chunk.len() {
                    batch.push("SET LOCAL synchronous_commit = off;\n");
                }
                batch.push(START_MIGRATION_CLOCK);
                for section in &migration.sections {
                    batch.push_block(index, &section.up);
                }
                batch.push(&record_sql(migration, applied_by));
                batch.push("COMMIT;\n");
                batch.push(&announce_sql(
                    migration,
                    position + 1 == chunk.len(),
                    announce,
                ));
                batch.versions.push(index);
            }
            batch
        })
        .collect()
}

/// Refuses, before anything is sent, transactional bodies our framing cannot hold.
pub(crate) fn check_wrappable(migrations: &[&Migration], atomic: bool) -> Result<()> {
    for migration in migrations {
        for section in &migration.sections {
            if !section.up.transaction {
                if atomic {
                    return Err(Error::BadInput(format!(
                        "{}: --atomic runs everything in one transaction, but this migration has a transaction:false section",
                        migration.path.display()
                    )));
                }
                continue;
            }
            if let Some(found) = statements::find_unwrappable(&section.up.sql) {
                let line =
                    statements::line_at(&section.up.sql, found.offset, section.up.first_line);
                let fix = if found.transaction_control {
                    "dbmigrate wraps each migration in its own transaction: remove it"
                } else {
                    "it cannot run in a transaction: put it in a section marked `-- migrate:up transaction:false`"
                };
                return Err(Error::BadInput(format!(
                    "{}:{line}: {}: {fix}",
                    migration.path.display(),
                    found.what
                )));
            }
        }
    }
    Ok(())
}

/// Applies `pending` (in order). `on_applied` hears about each migration once it is committed.
pub(crate) fn apply(
    client: &mut pg::Client,
    migrations: &[&Migration],
    atomic: bool,
    applied_by: &str,
    announce: Announce,
    mut on_applied: impl FnMut(&Ran),
) -> Result<Vec<Ran>> {
    check_wrappable(migrations, atomic)?;
    let mut ran: Vec<Ran> = Vec::new();
    // Consecutive transactional migrations travel together; a transaction:false one ends the run
    // of them and goes on its own.
    let mut group: Vec<usize> = Vec::new();
    for (index, migration) in migrations.iter().enumerate() {
        if migration.transactional() {
            group.push(index);
            continue;
        }
        for batch in render_batches(migrations, &group, false, applied_by, announce) {
            run_batch(client, migrations, batch, &mut ran, &mut on_applied)?;
        }
        group.clear();
        run_non_transactional(client, migrations, index, applied_by)?;
        let done = Ran {
            index,
            duration_ms: None,
            announced: false,
        };
        on_applied(&done);
        ran.push(done);
    }
    for batch in render_batches(migrations, &group, atomic, applied_by, announce) {
        run_batch(client, migrations, batch, &mut ran, &mut on_applied)?;
    }
    Ok(ran)
}

fn versions_list(migrations: &[&Migration], indexes: &[usize]) -> String {
    indexes
        .iter()
        .map(|&i| quote_literal(&migrations[i].version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run_batch(
    client: &mut pg::Client,
    migrations: &[&Migration],
    mut batch: Batch,
    ran: &mut Vec<Ran>,
    on_applied: &mut impl FnMut(&Ran),
) -> Result<()> {
    if batch.versions.is_empty() {
        return Ok(());
    }
    let readback = format!(
        "SELECT version, duration_ms::text FROM schema_migrations WHERE version IN ({});\n",
        versions_list(migrations, &batch.versions)
    );
    batch.push(&readback);
    match client.simple_query(&batch.text) {
        Ok(messages) => {
            let durations: std::collections::HashMap<String, Option<f64>> = rows(&messages)
                .into_iter()
                .map(|r| {
                    (
                        r[0].clone().unwrap_or_default(),
                        r[1].as_deref().and_then(|d| d.parse().ok()),
                    )
                })
                .collect();
            for &index in &batch.versions {
                let done = Ran {
                    index,
                    duration_ms: durations.get(&migrations[index].version).copied().flatten(),
                    announced: batch.streamed,
                };
                on_applied(&done);
                ran.push(done);
            }
            Ok(())
        }
        Err(error) => Err(batch_failure(
            client, migrations, &batch, ran, on_applied, &error,
        )),
    }
}

/// Explains a failed batch: which migration, which file and line, what committed before it.
fn batch_failure(
    client: &mut pg::Client,
    migrations: &[&Migration],
    batch: &Batch,
    ran: &mut Vec<Ran>,
    on_applied: &mut impl FnMut(&Ran),
    error: &postgres::Error,
) -> Error {
    let Some(db) = error.as_db_error() else {
        return Error::Unreachable(format!(
            "the connection broke while migrations ran ({}): each migration is its own transaction, so the database holds only whole migrations; rerun `dbmigrate up` to continue",
            pg::error_chain(error)
        ));
    };
    // Roll back the failed transaction and see which versions made it.
    // The progress backlog (lines not yet sent as a notice) survives: it was set outside the
    // failed transaction. Those migrations committed but were not announced yet.
    let (recorded, backlog): (Vec<String>, String) = match client.simple_query(&format!(
        "ROLLBACK; SELECT version, coalesce(current_setting('dbtools.unannounced', true), '') \
         FROM schema_migrations WHERE version IN ({})",
        versions_list(migrations, &batch.versions)
    )) {
        Ok(messages) => {
            let found = rows(&messages);
            let backlog = found.first().and_then(|r| r[1].clone()).unwrap_or_default();
            (
                found.into_iter().filter_map(|r| r[0].clone()).collect(),
                backlog,
            )
        }
        Err(e) => return pg::statement_error("reading back after a failed migration", &e),
    };
    for &index in &batch.versions {
        if recorded.contains(&migrations[index].version) {
            let pending_line = format!("applied {} (", migrations[index].file_name());
            let done = Ran {
                index,
                duration_ms: None,
                announced: batch.streamed && !backlog.contains(&pending_line),
            };
            on_applied(&done);
            ran.push(done);
        }
    }
    let position = match db.position() {
        Some(postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
        _ => None,
    };
    let located = position.and_then(|p| {
        let char_index = p.saturating_sub(1);
        batch
            .segments
            .iter()
            .find(|s| s.start_char <= char_index && char_index < s.end_char)
            .map(|segment| {
                let migration = migrations[segment.migration];
                let body = &batch.text[char_to_byte(&batch.text, segment.start_char)..];
                let offset_in_body = char_to_byte(body, char_index - segment.start_char);
                let line = segment.block_first_line + body[..offset_in_body].matches('\n').count();
                (
                    segment.migration,
                    format!("{}:{line}", migration.path.display()),
                )
            })
    });
    let failed_index = located.as_ref().map(|(i, _)| *i).or_else(|| {
        batch
            .versions
            .iter()
            .copied()
            .find(|&i| !recorded.contains(&migrations[i].version))
    });
    let place = match (&located, failed_index) {
        (Some((_, place)), _) => place.clone(),
        (None, Some(i)) => migrations[i].path.display().to_string(),
        (None, None) => "the migration batch".into(),
    };
    let mut detail = format!("{} ({})", db.message(), db.code().code());
    if let Some(hint) = db.hint() {
        detail.push_str(&format!("; hint: {hint}"));
    }
    if let Some(context) = db.where_() {
        detail.push_str(&format!("; where: {}", context.replace('\n', " / ")));
    }
    if db.code().code() == "42601" && recorded.is_empty() {
        // The server parses a whole message before running any of it.
        return Error::Failed(format!(
            "{place}: {detail} — nothing in this run was applied (PostgreSQL parses the whole batch before running it); fix the file and rerun"
        ));
    }
    let not_run = failed_index
        .map(|i| batch.versions.iter().filter(|&&j| j > i).count())
        .unwrap_or(0);
    Error::Failed(format!(
        "{place}: {detail} — this migration was rolled back; {} applied before it in this run, {not_run} not run",
        ran.len()
    ))
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(text.len())
}

/// Runs a migration that has a `transaction:false` section: each section in order, transactional
/// ones in a transaction, the others statement by statement; the version is recorded last.
fn run_non_transactional(
    client: &mut pg::Client,
    migrations: &[&Migration],
    index: usize,
    applied_by: &str,
) -> Result<()> {
    let migration = migrations[index];
    client
        .simple_query(START_CLOCK)
        .map_err(|e| pg::statement_error("starting the clock", &e))?;
    for section in &migration.sections {
        let block = &section.up;
        if block.transaction {
            let text = format!("BEGIN;\n{}\n;\nCOMMIT;", block.sql);
            client.simple_query(&text).map_err(|e| {
                let _ = client.simple_query("ROLLBACK");
                statement_failure(migration, block, None, &e)
            })?;
            continue;
        }
        let parts = statements::split(&block.sql).map_err(|e| {
            Error::BadInput(format!(
                "{}:{}: {e}",
                migration.path.display(),
                block.first_line
            ))
        })?;
        for (offset, statement) in parts {
            client
                .simple_query(&statement)
                .map_err(|e| statement_failure(migration, block, Some(offset), &e))?;
        }
    }
    client
        .simple_query(&record_sql(migration, applied_by))
        .map_err(|e| pg::statement_error(&format!("recording {}", migration.file_name()), &e))?;
    Ok(())
}

fn statement_failure(
    migration: &Migration,
    block: &Block,
    offset: Option<usize>,
    error: &postgres::Error,
) -> Error {
    let line = statements::line_at(&block.sql, offset.unwrap_or(0), block.first_line);
    let consequence = if offset.is_some() {
        "in a transaction:false section: the statements before it stayed applied, the version record was not changed"
    } else {
        "rolled back, the version record was not changed"
    };
    match error.as_db_error() {
        Some(db) => Error::Failed(format!(
            "{}:{line}: {} ({}) — {consequence}",
            migration.path.display(),
            db.message(),
            db.code().code()
        )),
        None => Error::Unreachable(format!(
            "{}: the connection broke during a transaction:false section ({}); rerun `dbmigrate up`",
            migration.path.display(),
            pg::error_chain(error)
        )),
    }
}

/// Reverts `migrations` (newest first, as given): down sections in reverse order, then the
/// record deleted, each migration in its own transaction, all in one message.
pub(crate) fn revert(client: &mut pg::Client, migrations: &[&Migration]) -> Result<Vec<Ran>> {
    for migration in migrations {
        if migration.sections.iter().all(|s| s.down.is_empty()) {
            return Err(Error::BadInput(format!(
                "{} has an empty down section: refusing to drop its record without undoing it (write the down, or delete the record on purpose)",
                migration.path.display()
            )));
        }
    }
    let mut ran = Vec::new();
    for (index, migration) in migrations.iter().enumerate() {
        let transactional = migration.sections.iter().all(|s| s.down.transaction);
        let delete = format!(
            "DELETE FROM schema_migrations WHERE version = {};\n",
            quote_literal(&migration.version)
        );
        if transactional {
            let mut batch = Batch::default();
            batch.push("BEGIN;\n");
            for section in migration.sections.iter().rev() {
                batch.push_block(index, &section.down);
            }
            batch.push(&delete);
            batch.push("COMMIT;\n");
            client.simple_query(&batch.text).map_err(|e| {
                let _ = client.simple_query("ROLLBACK");
                statement_failure(
                    migration,
                    &migration.sections.last().unwrap().down,
                    None,
                    &e,
                )
            })?;
        } else {
            for section in migration.sections.iter().rev() {
                let block = &section.down;
                for (offset, statement) in statements::split(&block.sql)? {
                    client
                        .simple_query(&statement)
                        .map_err(|e| statement_failure(migration, block, Some(offset), &e))?;
                }
            }
            client
                .simple_query(&delete)
                .map_err(|e| pg::statement_error("deleting the record", &e))?;
        }
        ran.push(Ran {
            index,
            duration_ms: None,
            announced: false,
        });
    }
    Ok(ran)
}

/// Re-records the checksum of an applied migration whose file was edited on purpose.
pub(crate) fn accept(client: &mut pg::Client, migration: &Migration) -> Result<bool> {
    let messages = client
        .simple_query(&format!(
            "UPDATE schema_migrations SET checksum = {} WHERE version = {}",
            quote_literal(&migration.checksum),
            quote_literal(&migration.version)
        ))
        .map_err(|e| pg::statement_error("updating the checksum", &e))?;
    Ok(messages
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(n) if *n > 0)))
}
