//! dbmigrate's commands: new, status, up, down, accept.

use crate::cli::{Cli, Command};
use crate::engine::{self, AppliedRow};
use crate::watch::Watch;
use dbtools::config::Config;
use dbtools::contract::{
    self, MigrateAction, MigrateResult, MigrateStatus, MigrationEntry, MigrationState, Profile,
};
use dbtools::guard::{Confirmation, Guard};
use dbtools::migration_files::{self as source, compare_versions, Migration};
use dbtools::output::{self, Output};
use dbtools::{cli, identity, lint, pg, Error, ExitStatus, Result};
use std::cmp::Ordering;
use std::path::PathBuf;
use std::time::Duration;

const TOOL: &str = "dbmigrate";

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    let dirs = migration_dirs(&cli);
    match cli.command {
        Command::New { name } => new_file(&dirs[0], &name),
        Command::Status { env, exit_code } => {
            let profile = env.profile(&cli.global)?;
            let migrations = source::load(&dirs)?;
            let client = connect(&profile)?;
            status(out, client, profile, &migrations, exit_code)
        }
        Command::Wait { env, timeout } => {
            let profile = env.profile(&cli.global)?;
            let migrations = source::load(&dirs)?;
            let (client, _) = dbtools::resolve::wait_for(&profile, TOOL, seconds(timeout)?)?;
            status(out, client, profile, &migrations, false)
        }
        Command::Up {
            env,
            to,
            atomic,
            dry_run,
            lock_timeout,
            lock_retries,
        } => {
            let profile = env.profile(&cli.global)?;
            let policy = policy(&cli.global, &profile, lock_retries)?;
            let migrations = source::load(&dirs)?;
            let mut guard = Guard::for_project(
                TOOL,
                if dry_run { "read" } else { "migrate" },
                &profile,
                cli.global.config.as_deref(),
            )?;
            let options = UpOptions {
                to: to.as_deref(),
                atomic,
                dry_run,
                lock_timeout: seconds(lock_timeout)?,
                policy,
            };
            up(out, &mut guard, profile.clone(), &migrations, options)
        }
        Command::Down {
            env,
            count,
            to,
            dry_run,
            confirm,
            lock_timeout,
            lock_retries,
        } => {
            let profile = env.profile(&cli.global)?;
            let policy = policy(&cli.global, &profile, lock_retries)?;
            let action = if dry_run { "read" } else { "migrate-down" };
            let mut guard =
                Guard::for_project(TOOL, action, &profile, cli.global.config.as_deref())?;
            let confirmation = confirm.confirmation();
            if !dry_run {
                guard.check_protection(&confirmation)?;
            }
            let migrations = source::load(&dirs)?;
            let options = DownOptions {
                count,
                to: to.as_deref(),
                lock_timeout: seconds(lock_timeout)?,
                confirmation,
                policy,
                dry_run,
            };
            down(out, &mut guard, profile.clone(), &migrations, options)
        }
        Command::Create { env } => {
            let profile = env.profile(&cli.global)?;
            crate::database::create(&profile, cli.global.config.as_deref())?;
            emit_result(out, MigrateAction::Create, profile, Vec::new(), None, 0.0)
        }
        Command::Drop { env, confirm } => {
            let profile = env.profile(&cli.global)?;
            crate::database::drop(
                &profile,
                cli.global.config.as_deref(),
                &confirm.confirmation(),
            )?;
            emit_result(out, MigrateAction::Drop, profile, Vec::new(), None, 0.0)
        }
        Command::Load { env, file } => {
            let profile = env.profile(&cli.global)?;
            let path = file.unwrap_or_else(|| schema_file(&cli.global));
            let migrations = source::load(&dirs).unwrap_or_default();
            let versions = crate::database::load(&profile, cli.global.config.as_deref(), &path)?;
            cli::note(
                TOOL,
                format!(
                    "loaded {} into {} ({} applied versions)",
                    path.display(),
                    profile.conn.dbname,
                    versions.len()
                ),
            );
            let entries = versions
                .iter()
                .map(
                    |version| match migrations.iter().find(|m| &m.version == version) {
                        Some(m) => entry(m, MigrationState::Applied, None, None),
                        None => MigrationEntry {
                            version: version.clone(),
                            name: String::new(),
                            state: MigrationState::Applied,
                            applied_at: None,
                            duration_ms: None,
                        },
                    },
                )
                .collect();
            emit_result(out, MigrateAction::Load, profile, entries, None, 0.0)
        }
        Command::Dump { env, file } => {
            let profile = env.profile(&cli.global)?;
            let path = file.unwrap_or_else(|| schema_file(&cli.global));
            // A link at --file is followed only inside the project, never out of it.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty() && p.exists())
                .unwrap_or(std::path::Path::new("."));
            dbtools::links::check_inside(&path, &dbtools::links::project_root(dir)?)?;
            let mut client = connect(&profile)?;
            let applied = engine::read_applied(&mut client)?.unwrap_or_default();
            let text = crate::dump::schema(&mut client, &profile, &applied)?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::BadInput(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            std::fs::write(&path, &text)
                .map_err(|e| Error::BadInput(format!("cannot write {}: {e}", path.display())))?;
            cli::note(
                TOOL,
                format!(
                    "wrote {} ({} applied versions)",
                    path.display(),
                    applied.len()
                ),
            );
            emit_result(out, MigrateAction::Dump, profile, Vec::new(), None, 0.0)
        }
        Command::Verify { env } => {
            let profile = env.profile(&cli.global)?;
            let migrations = source::load(&dirs)?;
            let mut guard = Guard::for_project(
                TOOL,
                "migrate-verify",
                &profile,
                cli.global.config.as_deref(),
            )?;
            let mut client = connect(&profile)?;
            guard.check_stamp(&mut client)?;
            let all: Vec<&Migration> = migrations.iter().collect();
            engine::check_wrappable(&all, false)?;
            let problem = crate::verify::verify(&mut client, &all)?;
            let entries = all
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let state = match &problem {
                        Some(p) if p.index == i => MigrationState::Irreversible,
                        Some(p) if i > p.index => MigrationState::Unverified,
                        _ => MigrationState::Verified,
                    };
                    entry(m, state, None, None)
                })
                .collect();
            match &problem {
                Some(p) => cli::note(TOOL, format!("{}: {}", all[p.index].file_name(), p.what)),
                None => cli::note(
                    TOOL,
                    format!(
                        "all {} migrations reverse (up, down, up on a scratch schema; rolled back)",
                        all.len()
                    ),
                ),
            }
            emit_result(out, MigrateAction::Verify, profile, entries, None, 0.0)?;
            Ok(if problem.is_some() {
                ExitStatus::Negative
            } else {
                ExitStatus::Success
            })
        }
        Command::Diff { env, against } => {
            let profile = env.profile(&cli.global)?;
            let config = Config::load(cli.global.config.as_deref())?;
            let other = dbtools::resolve::resolve_profile(&config, &against)?;
            diff(out, profile, other)
        }
        Command::Accept { env, version } => {
            let profile = env.profile(&cli.global)?;
            let migrations = source::load(&dirs)?;
            let migration = migrations
                .iter()
                .find(|m| m.version == version)
                .ok_or_else(|| {
                    Error::BadInput(format!("no migration file has version {version}"))
                })?;
            let mut client = connect(&profile)?;
            Guard::for_project(TOOL, "accept", &profile, cli.global.config.as_deref())?
                .check_stamp(&mut client)?;
            if !engine::accept(&mut client, migration)? {
                return Err(Error::BadInput(format!(
                    "version {version} is not applied on env {}: nothing to accept",
                    profile.env
                )));
            }
            cli::note(
                TOOL,
                format!("recorded the current checksum of {}", migration.file_name()),
            );
            let entry = entry(migration, MigrationState::Applied, None, None);
            emit_result(out, MigrateAction::Accept, profile, vec![entry], None, 0.0)
        }
    }
}

/// The env's `[env.NAME.migrations]` over dbmigrate's defaults; `--lock-retries` over both.
fn policy(
    global: &dbtools::cli::GlobalArgs,
    profile: &Profile,
    lock_retries: Option<u32>,
) -> Result<engine::Policy> {
    let settings = Config::find(global.config.as_deref())?
        .and_then(|config| config.envs.get(&profile.env).map(|env| env.migrations))
        .unwrap_or_default();
    let mut policy = engine::Policy::from_settings(settings);
    if let Some(retries) = lock_retries {
        policy.lock_retries = retries;
    }
    Ok(policy)
}

/// `status` (and `wait` once the database answers): every migration known to the files or the
/// database.
fn status(
    out: Output,
    mut client: pg::Client,
    profile: Profile,
    migrations: &[Migration],
    exit_code: bool,
) -> Result<ExitStatus> {
    let applied = engine::read_applied(&mut client)?.unwrap_or_default();
    let entries = status_entries(migrations, &applied);
    let count = |state| entries.iter().filter(|e| e.state == state).count();
    let status = MigrateStatus {
        env: profile.env.clone(),
        pending: count(MigrationState::Pending),
        changed: count(MigrationState::Changed),
        missing: count(MigrationState::Missing),
        migrations: entries,
        profile,
    };
    out.emit(&status, || render_entries(&status.migrations))?;
    let clean = status.pending + status.changed + status.missing == 0;
    Ok(if exit_code && !clean {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
}

fn seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::BadInput(format!("{value} is not a number of seconds")))
}

/// `db/schema.sql` beside dbtools.toml, else `./db/schema.sql` (dbmate's place).
fn schema_file(global: &dbtools::cli::GlobalArgs) -> PathBuf {
    match Config::load(global.config.as_deref()) {
        Ok(config) => config.resolve_path("db/schema.sql"),
        Err(_) => PathBuf::from("db/schema.sql"),
    }
}

/// `--dir`, else `migrations/` beside dbtools.toml, else `./migrations`.
fn migration_dirs(cli: &Cli) -> Vec<PathBuf> {
    if !cli.dirs.is_empty() {
        return cli.dirs.clone();
    }
    match Config::load(cli.global.config.as_deref()) {
        Ok(config) => vec![config.resolve_path("migrations")],
        Err(_) => vec![PathBuf::from("migrations")],
    }
}

fn connect(profile: &Profile) -> Result<pg::Client> {
    dbtools::resolve::connect(profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)
}

fn entry(
    migration: &Migration,
    state: MigrationState,
    applied: Option<&AppliedRow>,
    duration_ms: Option<f64>,
) -> MigrationEntry {
    MigrationEntry {
        version: migration.version.clone(),
        name: migration.name.clone(),
        state,
        applied_at: applied.and_then(|a| a.applied_at.clone()),
        duration_ms: duration_ms.or_else(|| applied.and_then(|a| a.duration_ms)),
    }
}

/// Files and records merged, ordered by version.
fn status_entries(migrations: &[Migration], applied: &[AppliedRow]) -> Vec<MigrationEntry> {
    let mut entries: Vec<MigrationEntry> = migrations
        .iter()
        .map(|m| match applied.iter().find(|a| a.version == m.version) {
            None => entry(m, MigrationState::Pending, None, None),
            Some(row) if row.checksum.as_ref().is_some_and(|c| *c != m.checksum) => {
                entry(m, MigrationState::Changed, Some(row), None)
            }
            Some(row) => entry(m, MigrationState::Applied, Some(row), None),
        })
        .collect();
    for row in applied {
        if !migrations.iter().any(|m| m.version == row.version) {
            entries.push(MigrationEntry {
                version: row.version.clone(),
                name: String::new(),
                state: MigrationState::Missing,
                applied_at: row.applied_at.clone(),
                duration_ms: row.duration_ms,
            });
        }
    }
    entries.sort_by(|a, b| compare_versions(&a.version, &b.version));
    entries
}

fn render_entries(entries: &[MigrationEntry]) -> String {
    if entries.is_empty() {
        return "no migrations\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.state.to_string(),
                e.version.clone(),
                e.name.clone(),
                e.applied_at.clone().unwrap_or_default(),
                e.duration_ms
                    .map(|d| format!("{d:.1} ms"))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["STATE", "VERSION", "NAME", "APPLIED AT", "TOOK"], &rows)
}

/// Refuses to go on when applied migrations were edited or deleted.
fn refuse_drift(migrations: &[Migration], applied: &[AppliedRow]) -> Result<()> {
    for entry in status_entries(migrations, applied) {
        match entry.state {
            MigrationState::Changed => {
                return Err(Error::BadInput(format!(
                    "migration {}_{} was edited after it was applied (its checksum differs): revert the edit, or run `dbmigrate accept {}` if the change is intended",
                    entry.version, entry.name, entry.version
                )))
            }
            MigrationState::Missing => {
                return Err(Error::BadInput(format!(
                    "version {} is applied in the database but its file is missing: restore the file (or check --dir)",
                    entry.version
                )))
            }
            MigrationState::Applied
            | MigrationState::Pending
            | MigrationState::Verified
            | MigrationState::Irreversible
            | MigrationState::Unverified => {}
        }
    }
    Ok(())
}

struct UpOptions<'a> {
    to: Option<&'a str>,
    atomic: bool,
    dry_run: bool,
    lock_timeout: Duration,
    policy: engine::Policy,
}

fn up(
    out: Output,
    guard: &mut Guard,
    profile: Profile,
    migrations: &[Migration],
    options: UpOptions,
) -> Result<ExitStatus> {
    let UpOptions {
        to,
        atomic,
        dry_run,
        lock_timeout,
        policy,
    } = options;
    if let Some(target) = to {
        if !migrations.iter().any(|m| m.version == target) {
            return Err(Error::BadInput(format!(
                "--to {target}: no migration file has that version"
            )));
        }
    }
    let mut client = dbtools::resolve::connect_fresh(&profile, TOOL, |conn| {
        pg::connect_with_notices(conn, TOOL, pg::DEFAULT_CONNECT_TIMEOUT, |notice| {
            for line in engine::progress_lines(notice).into_iter().flatten() {
                cli::note(TOOL, line);
            }
        })
    })?;
    let signals = dbtools::interrupt::Sigint::catch();
    let mut watch = Watch::new(&profile, &signals, policy.observe_every(&[]));
    let (applied, waited, announce) = if dry_run {
        (
            engine::read_applied(&mut client)?.unwrap_or_default(),
            Duration::ZERO,
            engine::Announce::EachMigration,
        )
    } else {
        let locked = engine::lock(&mut client, lock_timeout, guard, &policy, &watch)?;
        watch.backend_pid = locked.backend_pid;
        guard.admit(locked.stamp.as_ref());
        if locked.waited > Duration::from_millis(200) {
            let what = if locked.applied_while_waiting.is_empty() {
                "nothing new".to_string()
            } else {
                locked.applied_while_waiting.join(", ")
            };
            cli::note(
                TOOL,
                format!(
                    "waited {:.1}s for another migrator, which applied: {what}",
                    locked.waited.as_secs_f64()
                ),
            );
        }
        (locked.applied, locked.waited, locked.announce)
    };
    refuse_drift(migrations, &applied)?;
    let pending: Vec<&Migration> = migrations
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .filter(|m| {
            to.is_none_or(|target| compare_versions(&m.version, target) != Ordering::Greater)
        })
        .collect();
    if dry_run {
        let sql = engine::up_sql(&pending, atomic, &identity::user_at_host(), &policy)?;
        let entries = pending
            .iter()
            .map(|m| entry(m, MigrationState::Pending, None, None))
            .collect();
        return emit_result(
            out,
            MigrateAction::Up,
            profile.clone(),
            entries,
            Some(sql),
            0.0,
        );
    }
    lint_pending(&mut client, guard, &pending)?;
    watch.observe_every = policy.observe_every(&pending);
    if pending.is_empty() {
        cli::note(TOOL, format!("env {}: nothing to apply", profile.env));
    }
    if let (Some(snapshot), false) = (&profile.snapshot, pending.is_empty()) {
        guard.record_with_snapshot(&mut client, snapshot)?;
        cli::note(
            TOOL,
            format!("snapshot {snapshot} was taken before this run (in the audit log)"),
        );
    }
    let applied_by = identity::user_at_host();
    let mut entries = Vec::new();
    let mut runner = engine::Runner {
        client: &mut client,
        watch,
        policy,
        ran: Vec::new(),
    };
    runner.apply(&pending, atomic, &applied_by, announce, &mut |ran| {
        let migration = pending[ran.index];
        if !ran.announced {
            let took = ran
                .duration_ms
                .map(|d| format!(" ({d:.1} ms)"))
                .unwrap_or_default();
            let verb = if ran.durable { "applied" } else { "committed" };
            cli::note(TOOL, format!("{verb} {}{took}", migration.file_name()));
        }
        entries.push(entry(
            migration,
            MigrationState::Applied,
            None,
            ran.duration_ms,
        ));
    })?;
    drop(signals);
    emit_result(
        out,
        MigrateAction::Up,
        profile.clone(),
        entries,
        None,
        waited.as_secs_f64(),
    )
}

struct DownOptions<'a> {
    count: usize,
    to: Option<&'a str>,
    lock_timeout: Duration,
    confirmation: Confirmation,
    policy: engine::Policy,
    dry_run: bool,
}

fn down(
    out: Output,
    guard: &mut Guard,
    profile: Profile,
    migrations: &[Migration],
    options: DownOptions,
) -> Result<ExitStatus> {
    let DownOptions {
        count,
        to,
        lock_timeout,
        confirmation,
        policy,
        dry_run,
    } = options;
    let mut client = connect(&profile)?;
    let signals = dbtools::interrupt::Sigint::catch();
    let mut watch = Watch::new(&profile, &signals, policy.observe_every(&[]));
    let (mut applied, waited) = if dry_run {
        guard.check_stamp(&mut client)?;
        (
            engine::read_applied(&mut client)?.unwrap_or_default(),
            Duration::ZERO,
        )
    } else {
        let locked = engine::lock(&mut client, lock_timeout, guard, &policy, &watch)?;
        watch.backend_pid = locked.backend_pid;
        guard.admit(locked.stamp.as_ref());
        (locked.applied, locked.waited)
    };
    // Newest first: by applied_at when we recorded it, else by version.
    applied.sort_by(|a, b| {
        b.applied_at
            .cmp(&a.applied_at)
            .then_with(|| compare_versions(&b.version, &a.version))
    });
    let targets: Vec<&AppliedRow> = match to {
        Some(target) => applied
            .iter()
            .filter(|a| compare_versions(&a.version, target) == Ordering::Greater)
            .collect(),
        None => applied.iter().take(count).collect(),
    };
    let mut files = Vec::new();
    for row in &targets {
        let migration = migrations.iter().find(|m| m.version == row.version).ok_or_else(|| {
            Error::BadInput(format!("version {} is applied but its file is missing: cannot revert it without its down section", row.version))
        })?;
        files.push(migration);
    }
    if files.is_empty() {
        cli::note(TOOL, format!("env {}: nothing to revert", profile.env));
    }
    watch.observe_every = policy.observe_every(&files);
    if dry_run {
        let entries = files
            .iter()
            .map(|m| entry(m, MigrationState::Applied, None, None))
            .collect();
        let sql = engine::down_sql(&files, &policy)?;
        return emit_result(
            out,
            MigrateAction::Down,
            profile.clone(),
            entries,
            Some(sql),
            0.0,
        );
    }
    if !files.is_empty() {
        guard.record_allowed(Some(&mut client), &confirmation)?;
    }
    let mut runner = engine::Runner {
        client: &mut client,
        watch,
        policy,
        ran: Vec::new(),
    };
    let reverted = runner.revert(&files);
    for done in &runner.ran {
        cli::note(TOOL, format!("reverted {}", files[done.index].file_name()));
    }
    reverted?;
    let ran = std::mem::take(&mut runner.ran);
    drop(signals);
    let mut entries = Vec::new();
    for done in ran {
        entries.push(entry(
            files[done.index],
            MigrationState::Pending,
            None,
            None,
        ));
    }
    emit_result(
        out,
        MigrateAction::Down,
        profile.clone(),
        entries,
        None,
        waited.as_secs_f64(),
    )
}

/// Lints the pending migrations' up sections together (a function one defines, another may
/// call): findings that block on this env refuse the whole run before anything is applied
/// (`lint::blocking`: protected rules on confirm/locked envs, cross-database and role
/// statements on every env, the dbtools schema always); the rest are warnings.
fn lint_pending(client: &mut pg::Client, guard: &Guard, pending: &[&Migration]) -> Result<()> {
    let mut findings = lint::lint_migrations(pending).map_err(|e| {
        Error::BadInput(format!("{}; nothing in this run was applied", e.message()))
    })?;
    weigh(client, &mut findings)?;
    let protection = Some(guard.protection);
    for finding in lint::warnings(&findings, protection) {
        cli::note(TOOL, format!("warning: {}", lint::describe(finding)));
    }
    let blocking = lint::blocking(&findings, protection);
    if blocking.is_empty() {
        return Ok(());
    }
    Err(guard.refuse(
        Some(client),
        lint::refusal(
            &guard.env,
            guard.protection,
            &blocking,
            "nothing was applied",
        ),
    ))
}

/// Findings whose cost grows with an existing table (a rewrite, a scan, a blocking index
/// build) weighed against the table as the catalog has it now, in one query: an empty table
/// (no page in its main fork) drops the finding; another's size, and its row estimate once
/// ANALYZE has run (`reltuples` is -1 before), goes into the message. A table this run
/// creates never gets here: the lint already knows it is new.
fn weigh(client: &mut pg::Client, findings: &mut Vec<contract::LintFinding>) -> Result<()> {
    let tables: std::collections::BTreeSet<&str> =
        findings.iter().filter_map(|f| f.table.as_deref()).collect();
    if tables.is_empty() {
        return Ok(());
    }
    let list = tables
        .iter()
        .map(|table| dbtools::names::quote_literal(table))
        .collect::<Vec<_>>()
        .join(", ");
    let messages = client
        .simple_query(&format!(
            "SELECT t, pg_relation_size(c.oid)::text, pg_size_pretty(pg_relation_size(c.oid)), \
             nullif(c.reltuples, -1)::bigint::text \
             FROM unnest(ARRAY[{list}]::text[]) t LEFT JOIN pg_class c ON c.oid = to_regclass(t)"
        ))
        .map_err(|e| pg::statement_error("reading the sizes of the tables the lint named", &e))?;
    let sizes: std::collections::HashMap<String, (Option<u64>, String)> =
        pg::result_sets(&messages)
            .pop()
            .unwrap_or_default()
            .into_iter()
            .map(|row| {
                let get = |i: usize| row.get(i).cloned().flatten();
                let rows = get(3)
                    .map(|n| format!(" (about {n} rows)"))
                    .unwrap_or_default();
                let shown = get(2)
                    .map(|pretty| format!("{pretty} now{rows}"))
                    .unwrap_or_default();
                (
                    get(0).unwrap_or_default(),
                    (get(1).and_then(|n| n.parse().ok()), shown),
                )
            })
            .collect();
    let before = findings.len();
    findings.retain_mut(|finding| {
        let Some((bytes, shown)) = finding.table.as_ref().and_then(|t| sizes.get(t)) else {
            return true;
        };
        match bytes {
            Some(0) => false,
            Some(_) => {
                let table = finding.table.as_deref().unwrap_or_default();
                finding
                    .message
                    .push_str(&format!(" — {table} holds {shown}"));
                true
            }
            None => true,
        }
    });
    if findings.len() < before {
        cli::note(
            TOOL,
            format!(
                "lint: {} finding(s) on empty tables left out (their rewrite or scan costs nothing now)",
                before - findings.len()
            ),
        );
    }
    Ok(())
}

fn emit_result(
    out: Output,
    action: MigrateAction,
    profile: Profile,
    migrations: Vec<MigrationEntry>,
    dry_run_sql: Option<String>,
    lock_wait_s: f64,
) -> Result<ExitStatus> {
    let dry_run = dry_run_sql.is_some();
    let result = MigrateResult {
        action,
        env: profile.env.clone(),
        dry_run,
        sql: dry_run_sql,
        migrations,
        lock_wait_s,
        snapshot: profile
            .snapshot
            .clone()
            .filter(|_| action == MigrateAction::Up && !dry_run),
        profile,
    };
    out.emit(&result, || {
        // Said on stderr already: the file written (dump), "nothing to apply/revert".
        if action == MigrateAction::Dump || (result.migrations.is_empty() && !dry_run) {
            return String::new();
        }
        let verb = match (action, dry_run) {
            (MigrateAction::Down, true) => "would revert",
            (_, true) => "would apply",
            (MigrateAction::Down, _) => "reverted",
            (MigrateAction::Accept, _) => "accepted",
            (MigrateAction::Dump, _) => "dumped the schema with",
            (MigrateAction::Verify, _) => "verified",
            (MigrateAction::Create, _) => "created the database for",
            (MigrateAction::Drop, _) => "dropped the database with",
            (MigrateAction::Load, _) => "loaded",
            (MigrateAction::Up, _) => "applied",
        };
        let mut text = format!(
            "{verb} {} migration(s) on {}\n",
            result.migrations.len(),
            result.env
        );
        text.push_str(&render_entries(&result.migrations));
        if let Some(sql) = &result.sql {
            text.push('\n');
            text.push_str(sql);
        }
        text
    })?;
    Ok(ExitStatus::Success)
}

/// Writes `<dir>/<UTC YYYYMMDDHHMMSS>_<name>.sql` with empty up and down sections.
fn new_file(dir: &std::path::Path, name: &str) -> Result<ExitStatus> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::BadInput(format!(
            "migration name {name:?}: use letters, digits and '_'"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{}_{name}.sql", dbtools::time::compact_now()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut file, b"-- migrate:up\n\n\n-- migrate:down\n\n")
        .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))?;
    output::write_stdout(&format!("{}\n", path.display()))?;
    Ok(ExitStatus::Success)
}

/// The schema (current schema, without the migrations table) and applied versions of two envs.
fn diff(out: Output, profile: Profile, other: Profile) -> Result<ExitStatus> {
    let read = |p: &Profile| -> Result<(Vec<String>, Vec<String>)> {
        let mut client = connect(p)?;
        let current = client
            .simple_query("SELECT current_schema()")
            .map_err(|e| pg::statement_error("reading the current schema", &e))?
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_else(|| "public".into());
        let objects = crate::schema::snapshot(&mut client, &current)?;
        let mut versions: Vec<String> = engine::read_applied(&mut client)?
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.version)
            .collect();
        versions.sort_by(|a, b| compare_versions(a, b));
        Ok((objects, versions))
    };
    let (objects, versions) = read(&profile)?;
    let (other_objects, other_versions) = read(&other)?;
    let (only_in_env, only_in_against) = crate::schema::difference(&objects, &other_objects);
    let versions_only_in_env: Vec<String> = versions
        .iter()
        .filter(|v| !other_versions.contains(v))
        .cloned()
        .collect();
    let versions_only_in_against: Vec<String> = other_versions
        .iter()
        .filter(|v| !versions.contains(v))
        .cloned()
        .collect();
    let same = only_in_env.is_empty()
        && only_in_against.is_empty()
        && versions_only_in_env.is_empty()
        && versions_only_in_against.is_empty();
    let report = contract::MigrateDiff {
        env: profile.env.clone(),
        against: other.env.clone(),
        same,
        only_in_env,
        only_in_against,
        versions_only_in_env,
        versions_only_in_against,
        profile,
    };
    out.emit(&report, || {
        if report.same {
            return format!(
                "{} and {}: same schema, same applied migrations\n",
                report.env, report.against
            );
        }
        let mut text = String::new();
        for (lines, env) in [
            (&report.versions_only_in_env, &report.env),
            (&report.versions_only_in_against, &report.against),
        ] {
            for version in lines {
                text.push_str(&format!("migration {version} applied only in {env}\n"));
            }
        }
        for line in &report.only_in_env {
            text.push_str(&format!("only in {}: {line}\n", report.env));
        }
        for line in &report.only_in_against {
            text.push_str(&format!("only in {}: {line}\n", report.against));
        }
        text
    })?;
    Ok(if report.same {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}
