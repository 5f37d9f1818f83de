//! dbguard's commands: stamp, check, audit, lint. The guard itself lives in `dbtools::guard`,
//! shared with every tool that writes; these commands only put it on the command line.

use crate::cli::{Cli, Command};
use dbtools::cli::{ConfirmArgs, EnvArg, GlobalArgs};
use dbtools::config::{self, Config};
use dbtools::contract::{
    self, ActionClass, AuditEntry, AuditList, Enforcement, LintReport, Stamp, StampResult, Verdict,
};
use dbtools::guard::{self, Guard};
use dbtools::output::{self, Output};
use dbtools::{cli, lint, pg, Error, ExitStatus, Result};
use std::path::PathBuf;
use std::time::Duration;

const TOOL: &str = "dbguard";

pub fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::Stamp { env, confirm } => stamp(out, &cli.global, env, &confirm),
        Command::Check {
            action,
            env,
            confirm,
            timeout,
        } => check(out, &cli.global, &action, &env, &confirm, timeout),
        Command::Audit {
            database,
            env,
            limit,
        } => audit(out, &cli.global, database, &env, limit),
        Command::Lint { files, env } => lint_files(out, &cli.global, &files, env.as_deref()),
    }
}

fn seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::BadInput(format!("--timeout {value} is not a number of seconds")))
}

fn check(
    out: Output,
    global: &GlobalArgs,
    action: &str,
    env: &EnvArg,
    confirm: &ConfirmArgs,
    timeout: f64,
) -> Result<ExitStatus> {
    guard::classify(action)?;
    let profile = env.profile(global)?;
    let guard = Guard::for_project(TOOL, action, &profile, global.config.as_deref())?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    let stamp = if guard.class == ActionClass::Read {
        None
    } else {
        let mut client = connect(&profile, seconds(timeout)?)?;
        let stamp = guard::read_stamp(&mut client)?;
        match &stamp {
            Some(stamp) if stamp.env == profile.env => {}
            other => {
                let reason = guard::stamp_mismatch(
                    &guard.env,
                    &guard.target,
                    other.as_ref().map(|s| s.env.as_str()),
                );
                return Err(guard.refuse(Some(&mut client), reason));
            }
        }
        guard.record_allowed(Some(&mut client), &confirmation)?;
        stamp
    };
    let verdict = Verdict {
        kind: contract::VERDICT.into(),
        allowed: true,
        action: action.to_string(),
        class: guard.class,
        env: profile.env.clone(),
        protection: profile.protection,
        stamp,
        profile: if out.shows_secrets(false) {
            profile.clone()
        } else {
            profile.redacted()
        },
    };
    out.emit(&verdict, || {
        output::key_values(&[
            ("verdict", "allowed".into()),
            (
                "action",
                format!("{} ({})", verdict.action, verdict.class.as_str()),
            ),
            (
                "env",
                format!("{} ({})", verdict.env, verdict.protection.as_str()),
            ),
            ("database", guard::target(&verdict.profile)),
            ("stamp", describe_stamp(verdict.stamp.as_ref())),
        ])
    })?;
    Ok(ExitStatus::Success)
}

fn describe_stamp(stamp: Option<&Stamp>) -> String {
    match stamp {
        Some(s) => format!(
            "{} (by {} at {}, {})",
            s.env, s.stamped_by, s.stamped_at, s.tool
        ),
        None => "not read (reads need none)".into(),
    }
}

fn stamp(
    out: Output,
    global: &GlobalArgs,
    env: Option<String>,
    confirm: &ConfirmArgs,
) -> Result<ExitStatus> {
    let mut profile = EnvArg { env }.profile(global)?;
    let config = Config::find(global.config.as_deref())?;
    let mut client = connect(&profile, pg::DEFAULT_CONNECT_TIMEOUT)?;
    let previous = guard::read_stamp(&mut client)?;
    let previous_env = previous.as_ref().map(|s| s.env.clone());
    let changed = previous_env.as_deref() != Some(profile.env.as_str());
    if changed {
        if let Some(old) = &previous_env {
            // Re-stamping takes the database away from the env it belonged to: destructive,
            // and as well protected as the stricter of the two envs.
            let old_protection = config
                .as_ref()
                .filter(|c| c.envs.contains_key(old))
                .map(|c| c.protection(old))
                .unwrap_or_else(|| config::default_protection(old));
            profile.protection = profile.protection.max(old_protection);
            let guard = Guard::new(TOOL, "restamp", &profile, config.as_ref())?;
            let confirmation = confirm.confirmation();
            if let Some(reason) = guard::protection_refusal(
                &profile.env,
                &profile.env,
                profile.protection,
                &format!(
                    "re-stamping {} from {old} to {}",
                    guard::target(&profile),
                    profile.env
                ),
                guard.class,
                &confirmation,
            ) {
                return Err(guard.refuse(Some(&mut client), reason));
            }
            guard.record_allowed(Some(&mut client), &confirmation)?;
        }
        guard::write_stamp(
            &mut client,
            &profile.env,
            profile.app.as_deref(),
            TOOL,
            previous_env.as_deref(),
        )?;
        cli::note(
            TOOL,
            match &previous_env {
                Some(old) => format!(
                    "re-stamped {} from {old} to {}",
                    guard::target(&profile),
                    profile.env
                ),
                None => format!("stamped {} as {}", guard::target(&profile), profile.env),
            },
        );
    } else {
        cli::note(
            TOOL,
            format!(
                "{} is already stamped {}: nothing to change",
                guard::target(&profile),
                profile.env
            ),
        );
    }
    let stamp = guard::read_stamp(&mut client)?
        .ok_or_else(|| Error::Failed("the stamp just written cannot be read back".into()))?;
    let result = StampResult {
        kind: contract::STAMP.into(),
        env: profile.env.clone(),
        previous: previous_env,
        changed,
        stamp,
        profile: if out.shows_secrets(false) {
            profile.clone()
        } else {
            profile.redacted()
        },
    };
    out.emit(&result, || {
        output::key_values(&[
            ("database", guard::target(&result.profile)),
            ("stamp", describe_stamp(Some(&result.stamp))),
            (
                "previous",
                result.previous.clone().unwrap_or_else(|| "-".into()),
            ),
        ])
    })?;
    Ok(ExitStatus::Success)
}

fn audit(
    out: Output,
    global: &GlobalArgs,
    database: bool,
    env: &EnvArg,
    limit: usize,
) -> Result<ExitStatus> {
    let (source, mut entries) = if database {
        let profile = env.profile(global)?;
        let mut client = connect(&profile, pg::DEFAULT_CONNECT_TIMEOUT)?;
        ("database", guard::read_database(&mut client, limit)?)
    } else {
        let config = Config::find(global.config.as_deref())?;
        let log = guard::audit_log_path(config.as_ref());
        let mut entries = guard::read_local(&log)?;
        if let Some(env) = &env.env {
            entries.retain(|e| &e.env == env);
        }
        ("local", entries)
    };
    let skip = entries.len().saturating_sub(limit);
    entries.drain(..skip);
    let list = AuditList {
        kind: contract::AUDIT.into(),
        source: source.into(),
        entries,
    };
    out.emit(&list, || audit_table(&list.entries))?;
    Ok(ExitStatus::Success)
}

fn audit_table(entries: &[AuditEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.by.clone(),
                e.tool.clone(),
                e.action.clone(),
                e.env.clone(),
                e.outcome.clone(),
                e.reason.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &["AT", "BY", "TOOL", "ACTION", "ENV", "OUTCOME", "REASON"],
        &rows,
    )
}

fn lint_files(
    out: Output,
    global: &GlobalArgs,
    files: &[PathBuf],
    env: Option<&str>,
) -> Result<ExitStatus> {
    let protection = match env {
        Some(name) => Some(match Config::find(global.config.as_deref())? {
            Some(config) => {
                config.env(name)?;
                config.protection(name)
            }
            None => config::default_protection(name),
        }),
        None => None,
    };
    // One run: functions defined in one file are known to the others, as in `dbmigrate up`.
    let findings = lint::lint_files(files)?;
    let report = LintReport {
        kind: contract::LINT.into(),
        env: env.map(str::to_string),
        enforced: lint::enforced(protection),
        files: files.len(),
        findings,
    };
    let without_opt_in = report.findings.iter().filter(|f| !f.allowed).count();
    let blocking = lint::blocking(&report.findings, protection).len();
    out.emit(&report, || {
        let mut text: String = report
            .findings
            .iter()
            .map(|f| {
                let tag = match (f.enforcement, f.allowed) {
                    (Enforcement::Forbidden, _) => " (forbidden)",
                    (_, true) => " (allowed)",
                    (Enforcement::Everywhere, false) => " (blocks on every env)",
                    (Enforcement::Protected, false) => "",
                };
                format!(
                    "{}:{}: {}{tag}: {}\n    {}\n",
                    f.file, f.line, f.rule, f.message, f.statement
                )
            })
            .collect();
        text.push_str(&format!(
            "{} file(s), {} finding(s), {} without an opt-in, {} blocking\n",
            report.files,
            report.findings.len(),
            without_opt_in,
            blocking
        ));
        text
    })?;
    if blocking > 0 {
        let on = env.map_or_else(|| "a protected env".to_string(), |e| format!("env {e}"));
        cli::note(
            TOOL,
            format!("{blocking} finding(s) need an opt-in comment (-- dbguard:allow <rule>: <reason>) before they may run on {on}; SQL touching the dbtools schema cannot be opted in"),
        );
        return Ok(ExitStatus::Negative);
    }
    Ok(ExitStatus::Success)
}

/// A connection for the profile (its AWS secret read again once if the password was refused).
fn connect(
    profile: &dbtools::contract::Profile,
    timeout: std::time::Duration,
) -> Result<pg::Client> {
    dbtools::resolve::connect_fresh(profile, TOOL, |conn| pg::connect(conn, TOOL, timeout))
}
