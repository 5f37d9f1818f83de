//! dbseed's commands: apply (with `--reset`), status, verify.
//!
//! Apply and verify hold the seed lock (see `engine`) for the whole run: a second run waits,
//! then sees what the first recorded and loads nothing twice.
//!
//! Every file runs in its own transaction together with its record, so a failure leaves
//! nothing half-seeded. An edited file is applied again only when it proves idempotent (applied
//! twice in that transaction, the second pass changes nothing); otherwise it is reported and
//! left alone. A reset empties the seeded tables and re-applies everything in one transaction.

use crate::cli::{Cli, Command};
use crate::engine::{self, Tracked};
use crate::files::{self, SeedFile};
use dbtools::config::Config;
use dbtools::contract::{
    LintFinding, Profile, Protection, SeedAction, SeedEntry, SeedResult, SeedState, SeedStatus,
    Stamp,
};
use dbtools::guard::Guard;
use dbtools::output::{self, Output};
use dbtools::{cli, identity, lint, pg, ExitStatus, Result};
use std::path::PathBuf;

const TOOL: &str = "dbseed";

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    let dir = seeds_dir(&cli);
    match cli.command {
        Command::Status { env, exit_code } => {
            let profile = env.profile(&cli.global)?;
            let seeds = files::load(&dir, &profile.env)?;
            let mut client = connect(&profile)?;
            let tracked = engine::read_tracked(&mut client)?;
            let entries: Vec<SeedEntry> = seeds
                .iter()
                .map(|s| entry(s, state_of(s, &tracked, profile.protection), &tracked))
                .collect();
            let unsettled = entries
                .iter()
                .any(|e| matches!(e.state, SeedState::Pending | SeedState::Changed));
            let status = SeedStatus {
                env: profile.env.clone(),
                seeds: entries,
                profile,
            };
            out.emit(&status, || render(&status.seeds))?;
            Ok(if exit_code && unsettled {
                ExitStatus::Negative
            } else {
                ExitStatus::Success
            })
        }
        Command::Apply {
            env,
            reset,
            confirm,
        } => {
            let profile = env.profile(&cli.global)?;
            let seeds = files::load(&dir, &profile.env)?;
            let action = if reset { "seed-reset" } else { "seed" };
            let mut guard =
                Guard::for_project(TOOL, action, &profile, cli.global.config.as_deref())?;
            let confirmation = confirm.confirmation();
            guard.check_protection(&confirmation)?;
            let findings = files::lint(&seeds)?;
            let mut client = connect(&profile)?;
            let (tracked, stamp) = open(&mut client, &guard)?;
            // Judged by the level the database's stamp gives: it may be stricter than anyone
            // told us. Nothing is seeded before this.
            guard.admit(stamp.as_ref());
            check_lint(&guard, &findings)?;
            let runnable = runnable(&seeds, guard.protection);
            let by = identity::user_at_host();
            let (applied, truncated, unsettled) = if reset {
                guard.record_allowed(Some(&mut client), &confirmation)?;
                let (applied, truncated) = reset_all(&mut client, &runnable, &tracked, &by)?;
                (applied, truncated, false)
            } else {
                let (applied, unsettled) = apply_pending(&mut client, &runnable, &tracked, &by)?;
                (applied, Vec::new(), unsettled)
            };
            report_skipped(&seeds, &runnable, &profile);
            if applied.is_empty() && !unsettled {
                cli::note(TOOL, format!("env {}: nothing to seed", profile.env));
            }
            let result = SeedResult {
                action: SeedAction::Apply,
                env: profile.env.clone(),
                reset,
                truncated,
                seeds: applied,
                idempotent: None,
                profile,
            };
            // Nothing applied: the note above said so; the table would only say "no seed files".
            out.emit(&result, || {
                if result.seeds.is_empty() {
                    String::new()
                } else {
                    render(&result.seeds)
                }
            })?;
            Ok(if unsettled {
                ExitStatus::Negative
            } else {
                ExitStatus::Success
            })
        }
        Command::Verify { env } => {
            let profile = env.profile(&cli.global)?;
            let seeds = files::load(&dir, &profile.env)?;
            let mut guard =
                Guard::for_project(TOOL, "seed-verify", &profile, cli.global.config.as_deref())?;
            let mut client = connect(&profile)?;
            // Verify writes too (rolled back): another run's load would change its snapshots.
            let (_, stamp) = open(&mut client, &guard)?;
            guard.admit(stamp.as_ref());
            let runnable = runnable(&seeds, guard.protection);
            let checked = verify(&mut client, &runnable)?;
            let idempotent = checked.iter().all(|e| e.state == SeedState::Idempotent);
            let result = SeedResult {
                action: SeedAction::Verify,
                env: profile.env.clone(),
                reset: false,
                truncated: Vec::new(),
                seeds: checked,
                idempotent: Some(idempotent),
                profile,
            };
            out.emit(&result, || render(&result.seeds))?;
            Ok(if idempotent {
                ExitStatus::Success
            } else {
                ExitStatus::Negative
            })
        }
    }
}

/// `--dir`, else `seeds/` beside dbtools.toml, else `./seeds`.
fn seeds_dir(cli: &Cli) -> PathBuf {
    if let Some(dir) = &cli.dir {
        return dir.clone();
    }
    match Config::find(cli.global.config.as_deref()) {
        Ok(Some(config)) => config.resolve_path("seeds"),
        _ => PathBuf::from("seeds"),
    }
}

/// Opens a writing run (the seed lock, the record); after a wait, says what the other run
/// applied meanwhile, which this one then finds applied and leaves alone.
fn open(client: &mut pg::Client, guard: &Guard) -> Result<(Vec<Tracked>, Option<Stamp>)> {
    let opened = engine::open(client, guard)?;
    if !opened.waited.is_zero() {
        let what = if opened.applied_while_waiting.is_empty() {
            "which applied nothing new".to_string()
        } else {
            format!(
                "which applied {}: already applied, so not loaded again",
                opened.applied_while_waiting.join(", ")
            )
        };
        cli::note(
            TOOL,
            format!(
                "waited {:.1}s for another dbseed on {}, {what}",
                opened.waited.as_secs_f64(),
                guard.target
            ),
        );
    }
    Ok((opened.tracked, opened.stamp))
}

fn connect(profile: &Profile) -> Result<pg::Client> {
    dbtools::resolve::connect(profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)
}

/// On a locked env only files that opt in run.
fn runnable(seeds: &[SeedFile], protection: Protection) -> Vec<SeedFile> {
    seeds
        .iter()
        .filter(|s| protection != Protection::Locked || s.allow_locked)
        .cloned()
        .collect()
}

fn report_skipped(seeds: &[SeedFile], runnable: &[SeedFile], profile: &Profile) {
    let skipped: Vec<&str> = seeds
        .iter()
        .filter(|s| !runnable.iter().any(|r| r.name == s.name))
        .map(|s| s.name.as_str())
        .collect();
    if !skipped.is_empty() {
        cli::note(
            TOOL,
            format!(
                "env {} is locked: skipped {} (a file opts in with `-- dbseed:allow-locked`, a CSV with allow_locked = true in seeds.toml)",
                profile.env,
                skipped.join(", ")
            ),
        );
    }
}

/// Lint findings in seeds: those that block on this env (`lint::blocking`) refuse the run
/// before anything is sent; the rest are warnings.
fn check_lint(guard: &Guard, findings: &[LintFinding]) -> Result<()> {
    let protection = Some(guard.protection);
    for finding in lint::warnings(findings, protection) {
        cli::note(TOOL, format!("warning: {}", lint::describe(finding)));
    }
    let blocking = lint::blocking(findings, protection);
    if blocking.is_empty() {
        return Ok(());
    }
    Err(guard.refuse(
        None,
        lint::refusal(
            &guard.env,
            guard.protection,
            &blocking,
            "nothing was seeded",
        ),
    ))
}

fn state_of(seed: &SeedFile, tracked: &[Tracked], protection: Protection) -> SeedState {
    if protection == Protection::Locked && !seed.allow_locked {
        return SeedState::Skipped;
    }
    match tracked.iter().find(|t| t.file == seed.name) {
        None => SeedState::Pending,
        Some(t) if t.checksum != seed.checksum => SeedState::Changed,
        Some(_) => SeedState::Applied,
    }
}

fn entry(seed: &SeedFile, state: SeedState, tracked: &[Tracked]) -> SeedEntry {
    let record = tracked.iter().find(|t| t.file == seed.name);
    SeedEntry {
        file: seed.name.clone(),
        state,
        checksum: seed.checksum.clone(),
        applied_at: record.and_then(|t| t.applied_at.clone()),
        rows: record.and_then(|t| t.rows),
        tables: seed.tables.clone(),
        note: (state == SeedState::Skipped).then(|| "locked env: the file does not opt in".into()),
    }
}

/// Applies what is pending, each file in its own transaction with its record; edited files
/// only when they prove idempotent. Returns what ran, and whether anything stays unsettled.
fn apply_pending(
    client: &mut pg::Client,
    seeds: &[SeedFile],
    tracked: &[Tracked],
    by: &str,
) -> Result<(Vec<SeedEntry>, bool)> {
    let mut applied = Vec::new();
    let mut unsettled = false;
    for seed in seeds {
        let state = state_of(seed, tracked, Protection::Open);
        if state == SeedState::Applied {
            continue;
        }
        engine::execute(client, "BEGIN", "BEGIN")?;
        let outcome = (|| -> Result<Option<i64>> {
            let rows = engine::apply(client, seed)?;
            if state == SeedState::Changed {
                let once = engine::snapshot(client, &seed.tables)?;
                engine::execute(client, "SAVEPOINT dbseed_again", "SAVEPOINT")?;
                engine::apply(client, seed)?;
                let twice = engine::snapshot(client, &seed.tables)?;
                engine::execute(client, "ROLLBACK TO SAVEPOINT dbseed_again", "ROLLBACK")?;
                if once != twice {
                    return Ok(None);
                }
            }
            engine::record(client, seed, rows, by)?;
            Ok(Some(rows))
        })();
        match outcome {
            Ok(Some(rows)) => {
                engine::execute(client, "COMMIT", "COMMIT")?;
                let verb = if state == SeedState::Changed {
                    "re-applied (edited, idempotent)"
                } else {
                    "applied"
                };
                let unit = if rows == 1 { "row" } else { "rows" };
                cli::note(TOOL, format!("{verb} {} ({rows} {unit})", seed.name));
                let mut done = entry(seed, SeedState::Applied, &[]);
                done.rows = Some(rows);
                applied.push(done);
            }
            Ok(None) => {
                engine::execute(client, "ROLLBACK", "ROLLBACK")?;
                cli::note(
                    TOOL,
                    format!(
                        "{} was edited after it was applied and is not idempotent (applying it twice changes {}): not re-applied; make it idempotent (ON CONFLICT …) or reset with `dbseed apply --reset`",
                        seed.name,
                        seed.tables.join(", ")
                    ),
                );
                unsettled = true;
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK");
                return Err(error);
            }
        }
    }
    Ok((applied, unsettled))
}

/// Empties the seeded tables (and what CASCADE reaches) and applies every file again, all in
/// one transaction: a failure restores everything as it was.
fn reset_all(
    client: &mut pg::Client,
    seeds: &[SeedFile],
    tracked: &[Tracked],
    by: &str,
) -> Result<(Vec<SeedEntry>, Vec<String>)> {
    let mut tables: Vec<String> = seeds.iter().flat_map(|s| s.tables.clone()).collect();
    tables.sort();
    tables.dedup();
    let truncated = engine::cascade_of(client, &tables)?;
    engine::execute(client, "BEGIN", "BEGIN")?;
    let outcome = (|| -> Result<Vec<SeedEntry>> {
        if !tables.is_empty() {
            engine::execute(
                client,
                &format!("TRUNCATE {} RESTART IDENTITY CASCADE", tables.join(", ")),
                "emptying the seeded tables",
            )?;
        }
        let files: Vec<String> = tracked
            .iter()
            .map(|t| dbtools::names::quote_literal(&t.file))
            .collect();
        if !files.is_empty() {
            engine::execute(
                client,
                &format!(
                    "DELETE FROM dbtools.seeds WHERE file IN ({})",
                    files.join(", ")
                ),
                "clearing the seed record",
            )?;
        }
        let mut applied = Vec::new();
        for seed in seeds {
            let rows = engine::apply(client, seed)?;
            engine::record(client, seed, rows, by)?;
            let mut done = entry(seed, SeedState::Applied, &[]);
            done.rows = Some(rows);
            applied.push(done);
        }
        Ok(applied)
    })();
    match outcome {
        Ok(applied) => {
            engine::execute(client, "COMMIT", "COMMIT")?;
            cli::note(
                TOOL,
                format!(
                    "reset: emptied {} and applied {} file(s)",
                    if truncated.is_empty() {
                        "nothing".to_string()
                    } else {
                        truncated.join(", ")
                    },
                    applied.len()
                ),
            );
            Ok((applied, truncated))
        }
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

/// Applies every file, then each again, comparing its tables before and after the second
/// pass; rolls everything back. A file whose second pass changes something is not idempotent.
fn verify(client: &mut pg::Client, seeds: &[SeedFile]) -> Result<Vec<SeedEntry>> {
    engine::execute(client, "BEGIN", "BEGIN")?;
    let outcome = (|| -> Result<Vec<SeedEntry>> {
        for seed in seeds {
            engine::apply(client, seed)?;
        }
        let mut checked = Vec::new();
        for seed in seeds {
            let before = engine::snapshot(client, &seed.tables)?;
            engine::apply(client, seed)?;
            let after = engine::snapshot(client, &seed.tables)?;
            let changes: Vec<String> = seed
                .tables
                .iter()
                .zip(before.iter().zip(&after))
                .filter(|(_, (b, a))| b != a)
                .map(|(table, (b, a))| format!("{table}: {b} → {a}"))
                .collect();
            let mut result = entry(
                seed,
                if changes.is_empty() {
                    SeedState::Idempotent
                } else {
                    SeedState::NotIdempotent
                },
                &[],
            );
            if !changes.is_empty() {
                cli::note(
                    TOOL,
                    format!(
                        "{} is not idempotent: applying it again changed {} (use INSERT … ON CONFLICT, or a unique key for CSV rows)",
                        seed.name,
                        changes.join("; ")
                    ),
                );
                result.note = Some(changes.join("; "));
            }
            checked.push(result);
        }
        Ok(checked)
    })();
    let _ = client.batch_execute("ROLLBACK");
    outcome
}

fn render(entries: &[SeedEntry]) -> String {
    if entries.is_empty() {
        return "no seed files\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.state.to_string(),
                e.file.clone(),
                e.rows.map(|r| r.to_string()).unwrap_or_default(),
                e.applied_at.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["STATE", "FILE", "ROWS", "APPLIED AT", "NOTE"], &rows)
}
