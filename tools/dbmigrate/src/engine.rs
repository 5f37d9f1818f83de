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
//!
//! Every statement runs under a `lock_timeout` and a `statement_timeout` (the env's, or a
//! directive's for its block): a migration stuck behind a long reader gives up its place in the
//! lock queue after a few seconds instead of queueing every query of the app behind it. A
//! migration that hit the lock timeout was its own transaction, so nothing of it is done: it is
//! sent again, from where the batch stopped, after a backoff with jitter, up to `lock_retries`
//! times; each retry says who held the lock ([`crate::watch`] looks during the wait).

use crate::watch::{Seen, Watch};
use dbtools::contract::Stamp;
use dbtools::guard::Guard;
use dbtools::migration_files::{compare_versions, Block, Migration, Timeouts};
use dbtools::names::quote_literal;
use dbtools::sql as statements;
use dbtools::time::setting_value;
use dbtools::{cli, pg, stamp, Error, Result};
use postgres::SimpleQueryMessage;
use std::time::Duration;

const TOOL: &str = "dbmigrate";

/// How migration statements run: their timeouts, and how often a migration that hit its lock
/// timeout runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Both set (zero turns one off, as in PostgreSQL).
    pub timeouts: Timeouts,
    pub lock_retries: u32,
}

impl Policy {
    /// Each statement waits at most 5 s for a lock: long enough for the app's own short
    /// transactions to finish, short enough that the app's queries queued behind the
    /// migration's request are not held for long.
    pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
    /// A statement running an hour is stuck, or belongs in a `statement_timeout:0` block.
    pub(crate) const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(3600);
    pub(crate) const DEFAULT_LOCK_RETRIES: u32 = 5;
    /// The longest pause between two tries (before jitter).
    const MAX_BACKOFF: Duration = Duration::from_secs(30);

    /// The env's settings over the defaults.
    pub(crate) fn from_settings(settings: dbtools::config::MigrationSettings) -> Policy {
        Policy {
            timeouts: Timeouts {
                lock: Some(settings.lock_timeout.unwrap_or(Self::DEFAULT_LOCK_TIMEOUT)),
                statement: Some(
                    settings
                        .statement_timeout
                        .unwrap_or(Self::DEFAULT_STATEMENT_TIMEOUT),
                ),
            },
            lock_retries: settings.lock_retries.unwrap_or(Self::DEFAULT_LOCK_RETRIES),
        }
    }

    fn lock_timeout(&self) -> Duration {
        self.timeouts.lock.unwrap_or(Self::DEFAULT_LOCK_TIMEOUT)
    }

    /// The pause before try `attempt + 1` (attempt ≥ 1): 1 s doubling, at most 30 s, each
    /// scaled by a random factor in [0.5, 1) so that two migrators retrying do not collide again.
    pub(crate) fn backoff(attempt: u32, random: f64) -> Duration {
        let base = Duration::from_secs(1)
            .saturating_mul(1 << attempt.saturating_sub(1).min(15))
            .min(Self::MAX_BACKOFF);
        base.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
    }

    /// How often the watcher looks for blockers while a message of `migrations` runs: a
    /// quarter of the shortest lock timeout they run under (the first look after half of it,
    /// then twice more before it fires), never more often than every 50 ms.
    pub(crate) fn observe_every(&self, migrations: &[&Migration]) -> Duration {
        let blocks = migrations
            .iter()
            .flat_map(|m| &m.sections)
            .flat_map(|s| [s.up.timeouts.lock, s.down.timeouts.lock]);
        std::iter::once(Some(self.lock_timeout()))
            .chain(blocks)
            .flatten()
            .filter(|lock| !lock.is_zero())
            .min()
            .map_or(Duration::from_secs(1), |lock| {
                (lock / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
            })
    }
}

/// `SET [LOCAL] lock_timeout …; SET [LOCAL] statement_timeout …;` for what `timeouts` sets.
fn set_timeouts(timeouts: Timeouts, local: bool) -> String {
    let scope = if local { "LOCAL " } else { "" };
    let mut text = String::new();
    if let Some(lock) = timeouts.lock {
        text.push_str(&format!(
            "SET {scope}lock_timeout = {};\n",
            setting_value(lock)
        ));
    }
    if let Some(statement) = timeouts.statement {
        text.push_str(&format!(
            "SET {scope}statement_timeout = {};\n",
            setting_value(statement)
        ));
    }
    text
}

/// A random fraction in [0, 1) for jitter (std's hasher keys are random per process).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

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
    /// The session's backend pid, for the watcher to look up who blocks it.
    pub backend_pid: Option<i32>,
}

/// Takes the session advisory lock, makes sure the table has our columns, and re-reads the
/// applied list — in one message.
///
/// The guard's stamp assertion goes first: on a database stamped for another env (or not at
/// all) nothing of the message runs — no lock, no table — and the refusal is recorded. Then the
/// session takes the policy's timeouts, and asks the server to notice a client that vanished
/// (`client_connection_check_interval`, PostgreSQL 14+; skipped where it does not exist): after
/// a `kill -9` of dbmigrate the server stops instead of running the rest of the batch.
pub(crate) fn lock(
    client: &mut pg::Client,
    lock_timeout: Duration,
    guard: &Guard,
    policy: &Policy,
    watch: &Watch,
) -> Result<Locked> {
    let message = format!(
        "{}SELECT set_config('dbtools.lock_requested', clock_timestamp()::text, false);\n\
         SET lock_timeout = '{}ms';\n\
         SELECT pg_advisory_lock({LOCK_KEY});\n\
         {}\
         SELECT set_config(name, '1000', false) FROM pg_settings WHERE name = 'client_connection_check_interval';\n\
         CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);\n\
         DO $dbtools$ BEGIN\n\
           IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass AND attname = 'duration_ms') THEN\n\
             ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text, ADD COLUMN IF NOT EXISTS applied_at timestamptz,\n\
               ADD COLUMN IF NOT EXISTS applied_by text, ADD COLUMN IF NOT EXISTS duration_ms double precision;\n\
           END IF;\n\
         END $dbtools$;\n\
         SELECT extract(epoch FROM clock_timestamp() - current_setting('dbtools.lock_requested')::timestamptz)::text,\n\
           coalesce(string_agg(version, ',' ORDER BY version) FILTER (WHERE applied_at >= current_setting('dbtools.lock_requested')::timestamptz), ''),\n\
           has_database_privilege(current_database(), 'TEMP')::text, pg_backend_pid()::text\n\
           FROM schema_migrations;\n\
         {SELECT_APPLIED};",
        guard.stamp_assertion().unwrap_or_default(),
        lock_timeout.as_millis().max(1),
        set_timeouts(policy.timeouts, false)
    );
    let waiting = dbtools::cli::NoteAfter::start(
        "dbmigrate",
        Duration::from_secs(1),
        format!(
            "waiting for the migration lock: another migrator holds it (giving up after {}s, --lock-timeout)",
            lock_timeout.as_secs_f64()
        ),
    );
    let (answer, seen) = watch.query(client, &message);
    drop(waiting);
    let messages = match answer {
        Ok(messages) => messages,
        Err(_) if seen.cancelled => {
            return Err(Error::Interrupted(
                "interrupted while taking the migration lock: nothing was applied".into(),
            ))
        }
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
        backend_pid: info
            .get(3)
            .cloned()
            .flatten()
            .and_then(|pid| pid.parse().ok()),
    })
}

fn lock_holder_error(client: &mut pg::Client, waited: Duration) -> Error {
    let _ = client.simple_query("ROLLBACK");
    let (high, low) = ((LOCK_KEY >> 32) as u32, LOCK_KEY as u32);
    let holder = client
        .simple_query(&format!(
            "SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), \
             coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), '') FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {high} AND l.objid = {low} AND l.objsubid = 1 \
             AND l.pid <> pg_backend_pid()"
        ))
        .ok()
        .map(|m| rows(&m).into_iter().next());
    match holder {
        // The lock was ours: what timed out was setting up schema_migrations, under the
        // statements' own lock_timeout.
        Some(None) => Error::LockTimeout(
            "setting up schema_migrations waited longer than its lock_timeout: another session holds a lock on that table; rerun when it is done".into(),
        ),
        holder => {
            let holder = holder
                .flatten()
                .map(|r| {
                    let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    format!(" (pid {}, {} from {}, connected {})", get(0), get(1), get(2), get(3))
                })
                .unwrap_or_default();
            Error::LockTimeout(format!(
                "another migration holds the migration lock{holder}; gave up after --lock-timeout {:.1}s: rerun when it has finished",
                waited.as_secs_f64()
            ))
        }
    }
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
    /// Its COMMIT is on disk: false for an asynchronous one whose batch failed before the
    /// message's last (synchronous) COMMIT flushed it.
    pub durable: bool,
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
    /// None: the SQL as `--dry-run` shows it.
    Silent,
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

/// After a COMMIT: the migration's progress line. `applied` only when the COMMIT was durable
/// (synchronous); an asynchronous one is `committed`, made durable by its message's last
/// COMMIT, whose line says `applied`.
fn announce_sql(migration: &Migration, last: bool, announce: Announce) -> String {
    let verb = if last { "applied" } else { "committed" };
    let line = format!("{verb} {}", migration.file_name());
    match announce {
        Announce::Silent => String::new(),
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

/// A migration's up blocks, each after the `SET LOCAL` of its timeouts when any block of the
/// migration sets its own (then every block states its value, so one block's does not leak
/// into the next).
fn push_up_blocks(batch: &mut Batch, index: usize, migration: &Migration, defaults: Timeouts) {
    let own = migration.sections.iter().any(|s| !s.up.timeouts.is_empty());
    for section in &migration.sections {
        if own {
            batch.push(&set_timeouts(section.up.timeouts.over(defaults), true));
        }
        batch.push_block(index, &section.up);
    }
}

/// Renders consecutive transactional migrations as batch messages of at most a few MB.
///
/// Each migration is `BEGIN; body; record; COMMIT;` followed by its progress notice. Every
/// COMMIT but a message's last is asynchronous (`synchronous_commit = off`): the last one's WAL
/// flush makes all of them durable at once, instead of one disk flush per migration. A server
/// crash mid-batch can lose only whole migrations reported as `committed`, never one reported
/// as `applied` (the run fails and a rerun applies them again). With `atomic`, one transaction
/// around everything.
fn render_batches(
    migrations: &[&Migration],
    indexes: &[usize],
    atomic: bool,
    applied_by: &str,
    announce: Announce,
    defaults: Timeouts,
) -> Vec<Batch> {
    if atomic {
        let mut batch = Batch::default();
        batch.push("BEGIN;\n");
        for &index in indexes {
            batch.push(START_MIGRATION_CLOCK);
            push_up_blocks(&mut batch, index, migrations[index], defaults);
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
                push_up_blocks(&mut batch, index, migration, defaults);
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

/// A transactional block outside the batch path, as one message.
fn block_message(block: &Block, defaults: Timeouts) -> String {
    let settings = if block.timeouts.is_empty() {
        String::new()
    } else {
        set_timeouts(block.timeouts.over(defaults), true)
    };
    format!("BEGIN;\n{settings}{}\n;\nCOMMIT;\n", block.sql)
}

fn delete_record_sql(migration: &Migration) -> String {
    format!(
        "DELETE FROM schema_migrations WHERE version = {};\n",
        quote_literal(&migration.version)
    )
}

/// A migration whose down blocks all run in a transaction, reverted as one message: the
/// blocks newest first, then its record deleted. `None` for one with a `transaction:false`
/// down block.
fn revert_message(index: usize, migration: &Migration, defaults: Timeouts) -> Option<Batch> {
    if !migration.sections.iter().all(|s| s.down.transaction) {
        return None;
    }
    let own = migration
        .sections
        .iter()
        .any(|s| !s.down.timeouts.is_empty());
    let mut batch = Batch::default();
    batch.push("BEGIN;\n");
    for section in migration.sections.iter().rev() {
        if own {
            batch.push(&set_timeouts(section.down.timeouts.over(defaults), true));
        }
        batch.push_block(index, &section.down);
    }
    batch.push(&delete_record_sql(migration));
    batch.push("COMMIT;\n");
    Some(batch)
}

/// A block's statements as `--dry-run` shows them: a transactional block as its message, the
/// others one statement after another (each sent on its own), under the block's timeouts.
fn block_sql(migration: &Migration, block: &Block, defaults: Timeouts) -> Result<String> {
    if block.transaction {
        return Ok(block_message(block, defaults));
    }
    let mut text = String::new();
    if !block.timeouts.is_empty() {
        text.push_str(&set_timeouts(block.timeouts.over(defaults), false));
    }
    for (_, statement) in statements::split(&block.sql).map_err(|e| {
        Error::BadInput(format!(
            "{}:{}: {e}",
            migration.path.display(),
            block.first_line
        ))
    })? {
        text.push_str(statement.trim_end());
        text.push_str(";\n");
    }
    if !block.timeouts.is_empty() {
        text.push_str(&set_timeouts(defaults, false));
    }
    Ok(text)
}

/// The SQL `up` would send, in order, with its wrapping (progress notices left out): what
/// `up --dry-run` prints. The session's timeouts come first.
pub(crate) fn up_sql(
    migrations: &[&Migration],
    atomic: bool,
    applied_by: &str,
    policy: &Policy,
) -> Result<String> {
    check_wrappable(migrations, atomic)?;
    let defaults = policy.timeouts;
    let mut text = format!("-- the session\n{}", set_timeouts(defaults, false));
    let mut group: Vec<usize> = Vec::new();
    let flush = |group: &mut Vec<usize>, text: &mut String, atomic: bool| {
        for batch in render_batches(
            migrations,
            group,
            atomic,
            applied_by,
            Announce::Silent,
            defaults,
        ) {
            text.push_str("-- one message\n");
            text.push_str(&batch.text);
        }
        group.clear();
    };
    for (index, migration) in migrations.iter().enumerate() {
        if migration.transactional() {
            group.push(index);
            continue;
        }
        flush(&mut group, &mut text, false);
        text.push_str(&format!(
            "-- {}: transaction:false, each statement sent on its own\n",
            migration.file_name()
        ));
        for section in &migration.sections {
            text.push_str(&block_sql(migration, &section.up, defaults)?);
        }
        text.push_str(&record_sql(migration, applied_by));
    }
    flush(&mut group, &mut text, atomic);
    Ok(text)
}

/// The SQL `down` would send for `migrations` (newest first, as given): what
/// `down --dry-run` prints.
pub(crate) fn down_sql(migrations: &[&Migration], policy: &Policy) -> Result<String> {
    let defaults = policy.timeouts;
    let mut text = format!("-- the session\n{}", set_timeouts(defaults, false));
    for (index, migration) in migrations.iter().enumerate() {
        match revert_message(index, migration, defaults) {
            Some(batch) => {
                text.push_str(&format!("-- {}: one message\n", migration.file_name()));
                text.push_str(&batch.text);
            }
            None => {
                text.push_str(&format!(
                    "-- {}: transaction:false, each statement sent on its own\n",
                    migration.file_name()
                ));
                for section in migration.sections.iter().rev() {
                    text.push_str(&block_sql(migration, &section.down, defaults)?);
                }
                text.push_str(&delete_record_sql(migration));
            }
        }
    }
    Ok(text)
}

/// Runs migrations on the batch session: under the watch (Ctrl-C cancels on the server, long
/// waits look for blockers) and the policy (timeouts, retries after a lock timeout).
pub(crate) struct Runner<'a> {
    pub client: &'a mut pg::Client,
    pub watch: Watch<'a>,
    pub policy: Policy,
    /// What this run applied (or reverted) so far, in order.
    pub ran: Vec<Ran>,
}

/// How a message of migrations failed.
enum Failure {
    /// Migration `index` waited longer than its lock timeout and was rolled back: nothing of it
    /// is done, so it can be sent again.
    LockTimeout {
        index: usize,
        error: String,
        seen: Seen,
    },
    /// Anything else ends the run.
    Final(Error),
}

/// Who held the lock a statement gave up on, as well as it could be seen.
fn holder(seen: &Seen) -> String {
    match (&seen.blockers, &seen.unseen) {
        (Some(blockers), _) => format!("the lock was held by {blockers}"),
        (None, Some(why)) => format!("who held the lock could not be seen ({why})"),
        (None, None) => {
            "who held the lock was not seen (it was not held long enough to look)".into()
        }
    }
}

/// Counts the tries of one migration (or statement): a new one starts from zero.
#[derive(Default)]
struct Tries {
    of: Option<(usize, Option<usize>)>,
    count: u32,
}

impl Runner<'_> {
    fn applied_so_far(&self) -> String {
        match self.ran.len() {
            0 => "nothing was applied before it in this run".into(),
            n => format!("{n} migration(s) were applied before it in this run"),
        }
    }

    /// After a lock timeout: a progress line naming the holder and a pause with backoff, or,
    /// past the bound, the error.
    fn before_retry(
        &self,
        tries: &mut Tries,
        what: (usize, Option<usize>),
        place: &str,
        error: &str,
        seen: &Seen,
    ) -> Result<()> {
        if tries.of != Some(what) {
            *tries = Tries {
                of: Some(what),
                count: 0,
            };
        }
        tries.count += 1;
        let retries = self.policy.lock_retries;
        if tries.count > retries {
            return Err(Error::LockTimeout(format!(
                "{place}: {error} — rolled back after {} tries (lock_retries {retries}); {}; {}: end that session, or run `dbmigrate up` again when it has finished",
                tries.count,
                self.applied_so_far(),
                holder(seen)
            )));
        }
        let pause = Policy::backoff(tries.count, jitter());
        cli::note(
            TOOL,
            format!(
                "{place} waited longer than its lock_timeout and was rolled back; {}; retry {} of {retries} in {:.1}s",
                holder(seen),
                tries.count,
                pause.as_secs_f64()
            ),
        );
        let until = std::time::Instant::now() + pause;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            if self.watch.signals.caught() {
                return Err(Error::Interrupted(format!(
                    "interrupted before retrying {place}: {}; it and the migrations after it were not",
                    self.applied_so_far()
                )));
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        Ok(())
    }

    /// Applies `migrations` (in order). `on_applied` hears about each migration once it is
    /// committed.
    pub(crate) fn apply(
        &mut self,
        migrations: &[&Migration],
        atomic: bool,
        applied_by: &str,
        announce: Announce,
        on_applied: &mut dyn FnMut(&Ran),
    ) -> Result<()> {
        check_wrappable(migrations, atomic)?;
        // Consecutive transactional migrations travel together; a transaction:false one ends
        // the run of them and goes on its own.
        let mut group: Vec<usize> = Vec::new();
        for (index, migration) in migrations.iter().enumerate() {
            if migration.transactional() {
                group.push(index);
                continue;
            }
            self.run_group(migrations, &group, false, applied_by, announce, on_applied)?;
            group.clear();
            self.run_non_transactional(migrations, index, applied_by)?;
            let done = Ran {
                index,
                duration_ms: None,
                announced: false,
                durable: true,
            };
            on_applied(&done);
            self.ran.push(done);
        }
        self.run_group(migrations, &group, atomic, applied_by, announce, on_applied)
    }

    /// Sends a group of transactional migrations; after a lock timeout, again from the
    /// migration that hit it.
    fn run_group(
        &mut self,
        migrations: &[&Migration],
        group: &[usize],
        atomic: bool,
        applied_by: &str,
        announce: Announce,
        on_applied: &mut dyn FnMut(&Ran),
    ) -> Result<()> {
        let mut remaining = group.to_vec();
        let mut tries = Tries::default();
        'send: while !remaining.is_empty() {
            let defaults = self.policy.timeouts;
            for batch in render_batches(
                migrations, &remaining, atomic, applied_by, announce, defaults,
            ) {
                match self.run_batch(migrations, batch, on_applied) {
                    Ok(()) => {}
                    Err(Failure::Final(error)) => return Err(error),
                    Err(Failure::LockTimeout { index, error, seen }) => {
                        let place = migrations[index].file_name();
                        self.before_retry(&mut tries, (index, None), &place, &error, &seen)?;
                        if !atomic {
                            let from = remaining.iter().position(|&i| i == index).unwrap_or(0);
                            remaining.drain(..from);
                        }
                        continue 'send;
                    }
                }
            }
            break;
        }
        Ok(())
    }

    fn run_batch(
        &mut self,
        migrations: &[&Migration],
        mut batch: Batch,
        on_applied: &mut dyn FnMut(&Ran),
    ) -> std::result::Result<(), Failure> {
        if batch.versions.is_empty() {
            return Ok(());
        }
        let readback = format!(
            "SELECT version, duration_ms::text FROM schema_migrations WHERE version IN ({});\n",
            versions_list(migrations, &batch.versions)
        );
        batch.push(&readback);
        let (answer, seen) = self.watch.query(self.client, &batch.text);
        let messages = match answer {
            Ok(messages) => messages,
            Err(error) => {
                return Err(self.batch_failure(migrations, &batch, on_applied, &error, seen))
            }
        };
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
                durable: true,
            };
            on_applied(&done);
            self.ran.push(done);
        }
        Ok(())
    }

    /// Explains a failed batch: which migration, which file and line, what committed before it.
    fn batch_failure(
        &mut self,
        migrations: &[&Migration],
        batch: &Batch,
        on_applied: &mut dyn FnMut(&Ran),
        error: &postgres::Error,
        seen: Seen,
    ) -> Failure {
        let Some(db) = error.as_db_error() else {
            return Failure::Final(self.connection_broke(migrations, batch, error));
        };
        // Roll back the failed transaction and see which versions made it.
        // The progress backlog (lines not yet sent as a notice) survives: it was set outside the
        // failed transaction. Those migrations committed but were not announced yet.
        let (recorded, backlog): (Vec<String>, String) = match self.client.simple_query(&format!(
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
            Err(e) => {
                return Failure::Final(pg::statement_error(
                    "reading back after a failed migration",
                    &e,
                ))
            }
        };
        for &index in &batch.versions {
            if recorded.contains(&migrations[index].version) {
                let file = migrations[index].file_name();
                let done = Ran {
                    index,
                    duration_ms: None,
                    announced: batch.streamed
                        && !backlog.contains(&format!("committed {file} ("))
                        && !backlog.contains(&format!("applied {file} (")),
                    // Committed asynchronously, and no later COMMIT of the batch flushed it.
                    durable: !batch.streamed,
                };
                on_applied(&done);
                self.ran.push(done);
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
                    let line =
                        segment.block_first_line + body[..offset_in_body].matches('\n').count();
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
        let not_run = failed_index
            .map(|i| batch.versions.iter().filter(|&&j| j > i).count())
            .unwrap_or(0);
        if seen.cancelled {
            return Failure::Final(Error::Interrupted(format!(
                "interrupted: {place} was cancelled on the server and rolled back; {} (read back from schema_migrations); {not_run} after it not run",
                self.committed_in_run()
            )));
        }
        if let (true, Some(index)) = (
            *db.code() == postgres::error::SqlState::LOCK_NOT_AVAILABLE,
            failed_index,
        ) {
            return Failure::LockTimeout {
                index,
                error: detail,
                seen,
            };
        }
        if db.code().code() == "42601" && recorded.is_empty() {
            // The server parses a whole message before running any of it.
            return Failure::Final(Error::Failed(format!(
                "{place}: {detail} — nothing in this run was applied (PostgreSQL parses the whole batch before running it); fix the file and rerun"
            )));
        }
        Failure::Final(Error::Failed(format!(
            "{place}: {detail} — this migration was rolled back; {} applied before it in this run, {not_run} not run",
            self.ran.len()
        )))
    }

    fn committed_in_run(&self) -> String {
        match self.ran.last() {
            None => "no migration of this run committed".into(),
            Some(_) => format!(
                "{} migration(s) of this run committed before it",
                self.ran.len()
            ),
        }
    }

    /// The connection broke mid-batch (a server crash, a network cut): what the database holds
    /// now is read on a new connection when one can be made, since the lines printed as
    /// `committed` may have been lost with a crash.
    fn connection_broke(
        &mut self,
        migrations: &[&Migration],
        batch: &Batch,
        error: &postgres::Error,
    ) -> Error {
        let cause = pg::error_chain(error);
        let readback =
            dbtools::resolve::connect(self.watch.profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)
                .ok()
                .and_then(|mut client| {
                    client
                        .simple_query(&format!(
                            "SELECT version FROM schema_migrations WHERE version IN ({})",
                            versions_list(migrations, &batch.versions)
                        ))
                        .ok()
                });
        let truth = match readback {
            Some(messages) => {
                let held: Vec<String> = rows(&messages).into_iter().filter_map(|r| r[0].clone()).collect();
                let files: Vec<String> = batch
                    .versions
                    .iter()
                    .filter(|&&i| held.contains(&migrations[i].version))
                    .map(|&i| migrations[i].file_name())
                    .collect();
                format!(
                    "read back on a new connection, the database holds {} of this message's {} migration(s){}",
                    files.len(),
                    batch.versions.len(),
                    if files.is_empty() { String::new() } else { format!(" ({})", files.join(", ")) }
                )
            }
            None => "no new connection could read what the database holds: `dbmigrate status` will; lines printed as `committed` (not `applied`) may have been lost if the server crashed".into(),
        };
        Error::Unreachable(format!(
            "the connection broke while migrations ran ({cause}); each migration is its own transaction, so the database holds only whole migrations; {truth}; rerun `dbmigrate up` to continue"
        ))
    }

    /// Runs a migration that has a `transaction:false` section: each section in order,
    /// transactional ones in a transaction, the others statement by statement; the version is
    /// recorded last.
    fn run_non_transactional(
        &mut self,
        migrations: &[&Migration],
        index: usize,
        applied_by: &str,
    ) -> Result<()> {
        let migration = migrations[index];
        self.client
            .simple_query(START_CLOCK)
            .map_err(|e| pg::statement_error("starting the clock", &e))?;
        for section in &migration.sections {
            self.run_block(index, migration, &section.up)?;
        }
        self.client
            .simple_query(&record_sql(migration, applied_by))
            .map_err(|e| {
                pg::statement_error(&format!("recording {}", migration.file_name()), &e)
            })?;
        Ok(())
    }

    /// One block outside the batch path: a transactional one as one message, the others
    /// statement by statement, each under the block's timeouts.
    fn run_block(&mut self, index: usize, migration: &Migration, block: &Block) -> Result<()> {
        let defaults = self.policy.timeouts;
        let own = !block.timeouts.is_empty();
        if block.transaction {
            let text = block_message(block, defaults);
            return self.run_statement(index, migration, block, None, &text, true);
        }
        let parts = statements::split(&block.sql).map_err(|e| {
            Error::BadInput(format!(
                "{}:{}: {e}",
                migration.path.display(),
                block.first_line
            ))
        })?;
        if own {
            self.session_timeouts(block.timeouts.over(defaults))?;
        }
        for (offset, statement) in parts {
            self.run_statement(index, migration, block, Some(offset), &statement, false)?;
        }
        if own {
            self.session_timeouts(defaults)?;
        }
        Ok(())
    }

    fn session_timeouts(&mut self, timeouts: Timeouts) -> Result<()> {
        self.client
            .simple_query(&set_timeouts(timeouts, false))
            .map(drop)
            .map_err(|e| pg::statement_error("setting the block's timeouts", &e))
    }

    /// Runs one statement (or a transactional block's message), again after a lock timeout. A
    /// named `CREATE INDEX CONCURRENTLY` first drops the INVALID index of its name that an
    /// earlier failed build left (which `IF NOT EXISTS` would keep, and a plain one trip over),
    /// and after failing drops the one it left itself.
    fn run_statement(
        &mut self,
        index: usize,
        migration: &Migration,
        block: &Block,
        offset: Option<usize>,
        text: &str,
        transactional: bool,
    ) -> Result<()> {
        let index_build = offset.and_then(|_| statements::concurrent_index(text));
        if let Some(build) = &index_build {
            self.drop_invalid_index(build, "an earlier failed run")?;
        }
        let line = statements::line_at(&block.sql, offset.unwrap_or(0), block.first_line);
        let place = format!("{}:{line}", migration.path.display());
        let mut tries = Tries::default();
        loop {
            let (answer, seen) = self.watch.query(self.client, text);
            let Err(error) = answer else {
                return Ok(());
            };
            if transactional {
                let _ = self.client.simple_query("ROLLBACK");
            }
            let dropped = match &index_build {
                Some(build) => self.drop_invalid_index(build, "this failed build")?,
                None => None,
            };
            let section_note = if offset.is_some() {
                "in a transaction:false section the statements before it stayed applied"
            } else {
                "it was rolled back"
            };
            if seen.cancelled {
                return Err(Error::Interrupted(format!(
                    "interrupted: {place} was cancelled on the server; {section_note}, and the version was not recorded; {}",
                    self.applied_so_far()
                )));
            }
            let lock_timeout = error
                .as_db_error()
                .is_some_and(|db| *db.code() == postgres::error::SqlState::LOCK_NOT_AVAILABLE);
            if lock_timeout {
                let detail = error
                    .as_db_error()
                    .map(|db| db.message().to_string())
                    .unwrap_or_default();
                self.before_retry(&mut tries, (index, offset), &place, &detail, &seen)?;
                continue;
            }
            return Err(statement_failure(migration, block, offset, &error, dropped));
        }
    }

    /// Drops the INVALID index `build` would create, if one is there and no build of it is in
    /// progress; never a valid one. Returns its name when it dropped one.
    fn drop_invalid_index(
        &mut self,
        build: &statements::ConcurrentIndex,
        left_by: &str,
    ) -> Result<Option<String>> {
        let found = self
            .client
            .simple_query(&format!(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = {name} AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass({table})) \
                 AND i.indrelid = to_regclass({table}) AND NOT i.indisvalid \
                 AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid) \
                 AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.relation = to_regclass({table}) \
                   AND l.mode = 'ShareUpdateExclusiveLock' AND l.pid <> pg_backend_pid())",
                name = quote_literal(&build.name),
                table = quote_literal(&build.table)
            ))
            .map_err(|e| pg::statement_error("looking for an INVALID index left by a failed build", &e))?;
        let Some(name) = rows(&found).into_iter().next().and_then(|r| r[0].clone()) else {
            return Ok(None);
        };
        self.client
            .simple_query(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
            .map_err(|e| pg::statement_error(&format!("dropping the INVALID index {name}"), &e))?;
        cli::note(
            TOOL,
            format!(
                "dropped the INVALID index {name} that {left_by} of CREATE INDEX CONCURRENTLY left"
            ),
        );
        Ok(Some(name))
    }

    /// Reverts `migrations` (newest first, as given): down sections in reverse order, then the
    /// record deleted, each migration in its own transaction and message (again after a lock
    /// timeout).
    pub(crate) fn revert(&mut self, migrations: &[&Migration]) -> Result<()> {
        for migration in migrations {
            if migration.sections.iter().all(|s| s.down.is_empty()) {
                return Err(Error::BadInput(format!(
                    "{} has an empty down section: refusing to drop its record without undoing it (write the down, or delete the record on purpose)",
                    migration.path.display()
                )));
            }
        }
        let defaults = self.policy.timeouts;
        for (index, migration) in migrations.iter().enumerate() {
            if let Some(batch) = revert_message(index, migration, defaults) {
                let last = &migration.sections.last().unwrap().down;
                self.run_statement(index, migration, last, None, &batch.text, true)?;
            } else {
                for section in migration.sections.iter().rev() {
                    self.run_block(index, migration, &section.down)?;
                }
                self.client
                    .simple_query(&delete_record_sql(migration))
                    .map_err(|e| pg::statement_error("deleting the record", &e))?;
            }
            self.ran.push(Ran {
                index,
                duration_ms: None,
                announced: false,
                durable: true,
            });
        }
        Ok(())
    }
}

fn versions_list(migrations: &[&Migration], indexes: &[usize]) -> String {
    indexes
        .iter()
        .map(|&i| quote_literal(&migrations[i].version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(text.len())
}

fn statement_failure(
    migration: &Migration,
    block: &Block,
    offset: Option<usize>,
    error: &postgres::Error,
    dropped: Option<String>,
) -> Error {
    let line = statements::line_at(&block.sql, offset.unwrap_or(0), block.first_line);
    let consequence = if offset.is_some() {
        "in a transaction:false section: the statements before it stayed applied, the version record was not changed"
    } else {
        "rolled back, the version record was not changed"
    };
    let cleanup = dropped
        .map(|name| format!("; the INVALID index {name} it left was dropped"))
        .unwrap_or_default();
    match error.as_db_error() {
        Some(db) => Error::Failed(format!(
            "{}:{line}: {} ({}) — {consequence}{cleanup}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use dbtools::migration_files::parse;
    use std::path::Path;

    fn migration(name: &str, text: &str) -> Migration {
        parse(Path::new(name), text.as_bytes()).unwrap()
    }

    fn defaults() -> Timeouts {
        Policy::from_settings(Default::default()).timeouts
    }

    #[test]
    fn only_a_message_s_last_commit_says_applied() {
        let (a, b) = (
            migration("1_a.sql", "-- migrate:up\nselect 1;\n"),
            migration("2_b.sql", "-- migrate:up\nselect 2;\n"),
        );
        let batches = render_batches(
            &[&a, &b],
            &[0, 1],
            false,
            "u@h",
            Announce::Throttled,
            defaults(),
        );
        let text = &batches[0].text;
        assert!(text.contains("'committed 1_a.sql', false"), "{text}");
        assert!(text.contains("'applied 2_b.sql', true"), "{text}");
        assert_eq!(text.matches("synchronous_commit = off").count(), 1);
    }

    #[test]
    fn a_block_s_own_timeouts_hold_for_that_block_only() {
        let plain = migration("1_a.sql", "-- migrate:up\nselect 1;\n");
        let own = migration(
            "2_b.sql",
            "-- migrate:up lock_timeout:10s\nselect 2;\n-- migrate:down\n-- migrate:up\nselect 3;\n",
        );
        let batches = render_batches(
            &[&plain, &own],
            &[0, 1],
            false,
            "u@h",
            Announce::EachMigration,
            defaults(),
        );
        let text = &batches[0].text;
        let first = text.find("select 1;").unwrap();
        assert!(!text[..first].contains("SET LOCAL lock_timeout"), "{text}");
        let own_block = text.find("select 2;").unwrap();
        let next_block = text.find("select 3;").unwrap();
        assert!(
            text[first..own_block].contains("SET LOCAL lock_timeout = '10000ms';"),
            "{text}"
        );
        assert!(
            text[own_block..next_block].contains("SET LOCAL lock_timeout = '5000ms';"),
            "{text}"
        );
        assert!(text[first..own_block].contains("SET LOCAL statement_timeout = '3600000ms';"));
    }

    #[test]
    fn backoff_doubles_within_its_bound_and_jitter() {
        assert_eq!(Policy::backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(Policy::backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(Policy::backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(Policy::backoff(40, 1.0), Duration::from_secs(30));
        let random = jitter();
        assert!((0.0..1.0).contains(&random));
        let mut policy = Policy::from_settings(Default::default());
        assert_eq!(policy.observe_every(&[]), Duration::from_secs(1));
        let quick = migration("1_a.sql", "-- migrate:up lock_timeout:800ms\nselect 1;\n");
        assert_eq!(policy.observe_every(&[&quick]), Duration::from_millis(200));
        policy.timeouts.lock = Some(Duration::from_millis(100));
        assert_eq!(policy.observe_every(&[&quick]), Duration::from_millis(50));
        policy.timeouts.lock = Some(Duration::ZERO);
        assert_eq!(policy.observe_every(&[]), Duration::from_secs(1));
    }
}
