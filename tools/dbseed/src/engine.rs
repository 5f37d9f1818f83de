//! Seeds against the database: the seed lock, the record (`dbtools.seeds`, one row per file with
//! its checksum), applying one file inside a transaction the caller owns, and the snapshots (row
//! count and a content checksum per table) that prove a file idempotent.
//!
//! Writing runs hold a session advisory lock (its own key, not dbmigrate's) from their first
//! message to their end: two runs at once would both see a file pending and load it twice. The
//! first message only *tries* the lock, so an uncontended run costs no extra round trip; a
//! contended one learns who holds it, says so after a second of waiting, and reads the record
//! only once it has the lock.
//!
//! CSV files load with COPY, streamed from the file. Into an empty table that is a plain COPY,
//! as fast as psql's `\copy`; into a table that has rows, through a temporary table and
//! `INSERT … ON CONFLICT`, so loading the same rows twice changes nothing.

use crate::files::{Body, CsvLoad, SeedFile};
use dbtools::contract::Stamp;
use dbtools::guard::Guard;
use dbtools::names::quote_literal;
use dbtools::{pg, Error, Result};
use postgres::SimpleQueryMessage;
use std::io::Read;
use std::time::{Duration, Instant};

/// The seed lock's key: "dbseedlk" in ASCII (dbmigrate's is "dbmigrat"). Advisory locks are
/// per database, so envs on one instance do not wait for each other.
pub(crate) const LOCK_KEY: i64 = 0x6462_7365_6564_6c6b;

/// The message of the error the first message raises when another run holds the seed lock.
const LOCK_HELD: &str = "dbseed: the seed lock is held";

/// One row of `dbtools.seeds`.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub file: String,
    pub checksum: String,
    pub applied_at: Option<String>,
    pub rows: Option<i64>,
}

const SELECT_TRACKED: &str = "SELECT file, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), rows::text FROM dbtools.seeds ORDER BY file";

/// A database stamped before `dbtools.seeds` existed gets it here.
const ENSURE_TABLE: &str = "DO $dbseed$ BEGIN IF to_regclass('dbtools.seeds') IS NULL THEN \
    CREATE TABLE dbtools.seeds (file text PRIMARY KEY, checksum text NOT NULL, \
    applied_at timestamptz NOT NULL DEFAULT now(), applied_by text, rows bigint, tables text[] NOT NULL DEFAULT '{}'); \
    END IF; END $dbseed$;\n";

fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

type Row = pg::TextRow;

use pg::result_sets;

/// The rows of the last result set.
fn last_set(messages: &[SimpleQueryMessage]) -> Vec<Row> {
    result_sets(messages).pop().unwrap_or_default()
}

fn tracked(rows: &[Row]) -> Vec<Tracked> {
    rows.iter()
        .map(|r| Tracked {
            file: r[0].clone().unwrap_or_default(),
            checksum: r[1].clone().unwrap_or_default(),
            applied_at: r[2].clone(),
            rows: r[3].as_deref().and_then(|n| n.parse().ok()),
        })
        .collect()
}

/// What opening a writing run found: the record, and what another run applied while this one
/// waited for the seed lock (with how long it waited; zero when the lock was free).
pub(crate) struct Opened {
    pub tracked: Vec<Tracked>,
    pub waited: Duration,
    pub applied_while_waiting: Vec<String>,
    /// The stamp the guard's assertion returned (what the database says it is).
    pub stamp: Option<Stamp>,
}

/// Tries the seed lock without waiting; a holder makes the message fail with [`LOCK_HELD`], its
/// detail `pid|time` (the holder's backend pid, '' if it let go meanwhile, and the server's
/// clock at the try, from which "applied while waiting" is counted).
fn try_lock() -> String {
    let (high, low) = ((LOCK_KEY >> 32) as u32, LOCK_KEY as u32);
    format!(
        "DO $dbseed_lock$ BEGIN IF NOT pg_try_advisory_lock({LOCK_KEY}) THEN \
         RAISE EXCEPTION USING ERRCODE = '55P03', MESSAGE = {held}, \
         DETAIL = coalesce((SELECT min(pid)::text FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = {high} AND objid = {low} AND objsubid = 1), '') || '|' || clock_timestamp()::text; \
         END IF; END $dbseed_lock$;\n",
        held = quote_literal(LOCK_HELD)
    )
}

/// Opens a writing run: the guard's stamp assertion (a refusal names both envs and is
/// recorded), the seed lock, the record table, and what it holds — one message when no other
/// run holds the lock. Otherwise a second message waits for it (a progress line on stderr
/// after one second names the holder) and then reads the record the other run left.
pub(crate) fn open(client: &mut pg::Client, guard: &Guard) -> Result<Opened> {
    let message = format!(
        "{}{}{ENSURE_TABLE}{SELECT_TRACKED}",
        guard.stamp_assertion().unwrap_or_default(),
        try_lock()
    );
    let started = Instant::now();
    let error = match client.simple_query(&message) {
        Ok(messages) => {
            return Ok(Opened {
                tracked: tracked(&last_set(&messages)),
                waited: Duration::ZERO,
                applied_while_waiting: Vec::new(),
                stamp: dbtools::stamp::asserted(&messages),
            })
        }
        Err(e) => e,
    };
    let Some((holder, tried_at)) = lock_holder(&error) else {
        return Err(guard
            .refusal_for(client, &error)
            .unwrap_or_else(|| pg::statement_error("reading dbtools.seeds", &error)));
    };
    let holder = if holder.is_empty() {
        String::new()
    } else {
        format!(" (pid {holder})")
    };
    let waiting = dbtools::cli::NoteAfter::start(
        "dbseed",
        Duration::from_secs(1),
        format!(
            "waiting for another dbseed on {}{holder} to finish: it holds the seed lock",
            guard.target
        ),
    );
    // The wait has no bound: the other run is loading the same files, and waiting for it is
    // what keeps them from loading twice.
    // The stamp is asserted again: it may have changed while this run waited.
    let answer = client.simple_query(&format!(
        "{}SELECT pg_advisory_lock({LOCK_KEY});\n{ENSURE_TABLE}\
         SELECT coalesce(string_agg(file, E'\\n' ORDER BY file) FILTER (WHERE applied_at >= {}::timestamptz), '') FROM dbtools.seeds;\n\
         {SELECT_TRACKED}",
        guard.stamp_assertion().unwrap_or_default(),
        quote_literal(&tried_at)
    ));
    drop(waiting);
    let messages = answer.map_err(|e| {
        guard
            .refusal_for(client, &e)
            .unwrap_or_else(|| pg::statement_error("waiting for the seed lock", &e))
    })?;
    let sets = result_sets(&messages);
    let applied_while_waiting = sets
        .iter()
        .rev()
        .nth(1)
        .and_then(|set| set.first())
        .and_then(|row| row.first().cloned().flatten())
        .map(|list| list.lines().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Opened {
        tracked: tracked(sets.last().map(Vec::as_slice).unwrap_or_default()),
        waited: started.elapsed(),
        applied_while_waiting,
        stamp: dbtools::stamp::asserted(&messages),
    })
}

/// The holder's pid ('' when unknown) and the time of the try, when `error` says another run
/// holds the seed lock.
fn lock_holder(error: &postgres::Error) -> Option<(String, String)> {
    let db = error.as_db_error()?;
    if db.code().code() != "55P03" || db.message() != LOCK_HELD {
        return None;
    }
    let (pid, at) = db.detail()?.split_once('|')?;
    Some((pid.to_string(), at.to_string()))
}

/// What the record holds, for `status` (reads only; no record table yet means nothing applied).
pub(crate) fn read_tracked(client: &mut pg::Client) -> Result<Vec<Tracked>> {
    let exists = client
        .simple_query("SELECT to_regclass('dbtools.seeds') IS NOT NULL")
        .map_err(|e| pg::statement_error("reading dbtools.seeds", &e))?;
    if rows(&exists).first().and_then(|r| r[0].as_deref()) != Some("t") {
        return Ok(Vec::new());
    }
    client
        .simple_query(SELECT_TRACKED)
        .map(|m| tracked(&last_set(&m)))
        .map_err(|e| pg::statement_error("reading dbtools.seeds", &e))
}

pub(crate) fn execute(client: &mut pg::Client, sql: &str, what: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .map_err(|e| pg::statement_error(what, &e))
}

/// Applies one file inside the caller's transaction; returns the rows it wrote. An error names
/// the file and line; the caller rolls back.
pub(crate) fn apply(client: &mut pg::Client, seed: &SeedFile) -> Result<i64> {
    match &seed.body {
        Body::Sql(text) => apply_sql(client, &seed.name, text),
        Body::Csv { path, load } => apply_csv(client, &seed.name, path, load),
    }
}

fn apply_sql(client: &mut pg::Client, name: &str, text: &str) -> Result<i64> {
    let messages = client
        .simple_query(&format!("{text}\n;"))
        .map_err(|e| sql_error(name, text, &e))?;
    Ok(messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => *n as i64,
            _ => 0,
        })
        .sum())
}

fn sql_error(name: &str, text: &str, error: &postgres::Error) -> Error {
    let Some(db) = error.as_db_error() else {
        return pg::statement_error(name, error);
    };
    let line = match db.position() {
        Some(postgres::error::ErrorPosition::Original(position)) => {
            let offset: usize = text
                .chars()
                .take((*position as usize).saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            dbtools::sql::line_at(text, offset, 1)
        }
        _ => 1,
    };
    Error::Failed(format!(
        "{name}:{line}: {} ({}); nothing of this file was applied",
        db.message(),
        db.code().code()
    ))
}

fn apply_csv(
    client: &mut pg::Client,
    name: &str,
    path: &std::path::Path,
    load: &CsvLoad,
) -> Result<i64> {
    let columns = load.columns.join(", ");
    let table = &load.table;
    let failed = |e: &postgres::Error| csv_error(name, e);
    let has_rows = client
        .simple_query(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
        .map_err(|e| failed(&e))?;
    let empty = rows(&has_rows).first().and_then(|r| r[0].as_deref()) == Some("f");
    let copy_into = if empty { table.as_str() } else { "dbseed_load" };
    if !empty {
        execute(
            client,
            &format!("CREATE TEMP TABLE dbseed_load AS SELECT {columns} FROM {table} WITH NO DATA"),
            &format!("{name}: preparing the load"),
        )?;
    }
    let copied = copy_file(
        client,
        path,
        &format!("COPY {copy_into} ({columns}) FROM STDIN (FORMAT csv, HEADER true)"),
    )
    .map_err(|e| match e {
        CopyFailure::Database(e) => failed(&e),
        CopyFailure::File(e) => Error::BadInput(format!("{name}: cannot read: {e}")),
    })?;
    if empty {
        return Ok(copied as i64);
    }
    let conflict = match (load.key.is_empty(), load.update) {
        (true, _) => "ON CONFLICT DO NOTHING".to_string(),
        (false, false) => format!("ON CONFLICT ({}) DO NOTHING", load.key.join(", ")),
        (false, true) => {
            let set: Vec<String> = load
                .columns
                .iter()
                .filter(|c| !load.key.contains(c))
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            if set.is_empty() {
                format!("ON CONFLICT ({}) DO NOTHING", load.key.join(", "))
            } else {
                // Only rows that differ count as written, so a second load reports 0.
                let differs: Vec<String> = load
                    .columns
                    .iter()
                    .filter(|c| !load.key.contains(c))
                    .map(|c| format!("{table}.{c} IS DISTINCT FROM excluded.{c}"))
                    .collect();
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {} WHERE {}",
                    load.key.join(", "),
                    set.join(", "),
                    differs.join(" OR ")
                )
            }
        }
    };
    let messages = client
        .simple_query(&format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM dbseed_load {conflict};\nDROP TABLE dbseed_load;"
        ))
        .map_err(|e| failed(&e))?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n as i64),
            _ => None,
        })
        .unwrap_or(0))
}

enum CopyFailure {
    Database(postgres::Error),
    File(std::io::Error),
}

/// Streams a file into COPY (a byte-order mark at its start dropped).
fn copy_file(
    client: &mut pg::Client,
    path: &std::path::Path,
    statement: &str,
) -> std::result::Result<u64, CopyFailure> {
    let mut file = dbtools::links::open_resolved(path).map_err(CopyFailure::File)?;
    let mut head = [0u8; 3];
    let read = file.read(&mut head).map_err(CopyFailure::File)?;
    let mut writer = client.copy_in(statement).map_err(CopyFailure::Database)?;
    let start: &[u8] = if head[..read] == [0xEF, 0xBB, 0xBF] {
        &[]
    } else {
        &head[..read]
    };
    // Large CopyData messages: io::copy's 8 KiB ones cost throughput on a million rows.
    let mut buffer = vec![0u8; 1 << 20];
    let streamed = std::io::Write::write_all(&mut writer, start).and_then(|_| loop {
        match file.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => std::io::Write::write_all(&mut writer, &buffer[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    });
    if let Err(e) = streamed {
        // The server's reason (a bad row) arrives when the copy ends; report that, not the pipe.
        drop(writer);
        return Err(CopyFailure::File(e));
    }
    writer.finish().map_err(CopyFailure::Database)
}

/// A COPY or INSERT error: the server names the CSV line (`COPY t, line 3, column x: …`).
fn csv_error(name: &str, error: &postgres::Error) -> Error {
    let Some(db) = error.as_db_error() else {
        return pg::statement_error(name, error);
    };
    let line = db.where_().and_then(|context| {
        let after = context.split(", line ").nth(1)?;
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok()
    });
    let place = line
        .map(|l| format!("{name}:{l}"))
        .unwrap_or(name.to_string());
    Error::Failed(format!(
        "{place}: {} ({}); nothing of this file was loaded",
        db.message(),
        db.code().code()
    ))
}

/// Records a file as applied (inside the caller's transaction). The time is the clock's, not
/// the transaction's start: a run that waited for the seed lock counts what the other run
/// recorded after its try as applied while it waited, and a long load starts before that.
pub(crate) fn record(client: &mut pg::Client, seed: &SeedFile, rows: i64, by: &str) -> Result<()> {
    let tables = format!(
        "ARRAY[{}]::text[]",
        seed.tables
            .iter()
            .map(|t| quote_literal(t))
            .collect::<Vec<_>>()
            .join(", ")
    );
    execute(
        client,
        &format!(
            "INSERT INTO dbtools.seeds (file, checksum, applied_at, applied_by, rows, tables) \
             VALUES ({}, {}, clock_timestamp(), {}, {rows}, {tables}) ON CONFLICT (file) DO UPDATE SET \
             checksum = excluded.checksum, applied_at = excluded.applied_at, applied_by = excluded.applied_by, \
             rows = excluded.rows, tables = excluded.tables",
            quote_literal(&seed.name),
            quote_literal(&seed.checksum),
            quote_literal(by),
        ),
        "recording the seed",
    )
}

/// Row count and an order-independent content checksum of each table.
pub(crate) fn snapshot(client: &mut pg::Client, tables: &[String]) -> Result<Vec<String>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql: String = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT count(*)::text || ' rows, ' || coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '-') FROM {t} x;\n"
            )
        })
        .collect();
    let messages = client
        .simple_query(&sql)
        .map_err(|e| pg::statement_error("taking a snapshot of the seeded tables", &e))?;
    Ok(rows(&messages)
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect())
}

/// The seeded tables and every table a TRUNCATE … CASCADE of them reaches (by foreign keys).
pub(crate) fn cascade_of(client: &mut pg::Client, tables: &[String]) -> Result<Vec<String>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let list = tables
        .iter()
        .map(|t| format!("{}::regclass", quote_literal(t)))
        .collect::<Vec<_>>()
        .join(", ");
    let messages = client
        .simple_query(&format!(
            "WITH RECURSIVE reached(oid) AS (SELECT unnest(ARRAY[{list}])::oid \
             UNION SELECT c.conrelid FROM pg_constraint c JOIN reached r ON c.confrelid = r.oid WHERE c.contype = 'f') \
             SELECT oid::regclass::text FROM reached ORDER BY 1"
        ))
        .map_err(|e| pg::statement_error("finding the tables a reset empties", &e))?;
    Ok(rows(&messages)
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect())
}
