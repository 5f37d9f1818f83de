//! dbguard's commands: stamp, adopt, check, audit, lint. The guard itself lives in `dbtools::guard`,
//! shared with every tool that writes; these commands only put it on the command line.

use crate::cli::{Cli, Command};
use dbtools::cli::{ConfirmArgs, EnvArg, GlobalArgs};
use dbtools::config::{self, Config};
use dbtools::contract::{
    ActionClass, AuditEntry, AuditList, AuditSource, Enforcement, LintReport, Profile, Provider,
    Stamp, StampResult, Verdict,
};
use dbtools::guard::{self, Guard};
use dbtools::output::{self, Output};
use dbtools::owner;
use dbtools::stamp::{self, NewStamp};
use dbtools::{cli, lint, pg, Error, ExitStatus, Result};
use std::path::PathBuf;
use std::time::Duration;

const TOOL: &str = "dbguard";

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::Stamp { env, confirm } => stamp(out, &cli.global, env, &confirm),
        Command::Adopt { env, confirm } => adopt(out, &cli.global, env, &confirm),
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
    let mut guard = Guard::for_project(TOOL, action, &profile, global.config.as_deref())?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    let stamp = if guard.class == ActionClass::Read {
        None
    } else {
        // The database decides: its stamp must be this env's, not a copy's, and its own
        // protection is checked against what was typed, in one statement.
        let mut client = dbtools::resolve::connect(&profile, TOOL, seconds(timeout)?)?;
        let stamp = guard.check_stamp(&mut client)?;
        guard.record_allowed(Some(&mut client), &confirmation)?;
        stamp
    };
    let verdict = Verdict {
        allowed: true,
        action: action.to_string(),
        class: guard.class,
        env: profile.env.clone(),
        protection: guard.protection,
        stamp,
        profile: profile.clone(),
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
        Some(s) => {
            let adopted = s
                .adopted_from
                .as_deref()
                .map(|from| format!(", adopted from {from}"))
                .unwrap_or_default();
            format!(
                "{} ({}, by {} at {}, {}{adopted})",
                s.env,
                s.protection.as_str(),
                s.stamped_by,
                s.stamped_at,
                s.tool
            )
        }
        None => "not read (reads need none)".into(),
    }
}

/// A connection as the instance's master when the config names the env's instance (the role
/// that owns the `dbtools` schema), else as the profile's role, said on stderr.
fn connect_as_owner(
    profile: &Profile,
    config: Option<&Config>,
) -> Result<(pg::Client, Option<String>)> {
    let master = match config {
        Some(config) => owner::master_conn(config, profile)?,
        None => None,
    };
    match master {
        Some((id, conn)) => Ok((
            pg::connect(&conn, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?,
            Some(id),
        )),
        None => {
            cli::note(
                TOOL,
                format!(
                    "env {} names no instance in dbtools.toml, so its master is unknown: writing the stamp as {}, which then owns the dbtools schema (give the env its instance so the master owns it and app roles cannot rewrite the stamp)",
                    profile.env, profile.conn.user
                ),
            );
            Ok((
                dbtools::resolve::connect(profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?,
                None,
            ))
        }
    }
}

/// Records a stamp just written with the instance's owner: the local instance record (AWS
/// instances are tagged by `rdsprov stamp-record`).
fn record_with_owner(
    config: Option<&Config>,
    instance: Option<&str>,
    profile: &Profile,
    written: &Stamp,
) -> Result<()> {
    let (Some(config), Some(id), Some(recorded)) = (config, instance, owner::recorded(written))
    else {
        return Ok(());
    };
    match config.instances.get(id).map(|i| i.provider) {
        Some(Provider::Local) => owner::record_local_stamp(
            config,
            id,
            &profile.conn.dbname,
            &profile.conn.user,
            &written.env,
            recorded,
        ),
        Some(Provider::Aws) => {
            let region = config.instances[id].region.clone();
            owner::record_aws_stamp(id, region.as_deref(), &profile.conn.dbname, &recorded)
        }
        None => Ok(()),
    }
}

fn stamp(
    out: Output,
    global: &GlobalArgs,
    env: Option<String>,
    confirm: &ConfirmArgs,
) -> Result<ExitStatus> {
    let profile = EnvArg { env }.profile(global)?;
    let config = Config::find(global.config.as_deref())?;
    let level = guard::floor(&profile.env, profile.protection, config.as_ref());
    let target = guard::target(&profile);
    let (mut client, instance) = connect_as_owner(&profile, config.as_ref())?;
    let reading = stamp::read(&mut client)?;
    let previous = reading.stamp.clone();
    let new = NewStamp {
        env: &profile.env,
        protection: level,
        app: profile.app.as_deref(),
        tool: TOOL,
        adopted_from: None,
    };
    let written = match &previous {
        None => {
            let written = stamp::write(&mut client, &new, None)?;
            cli::note(
                TOOL,
                format!("stamped {target} as {} ({})", profile.env, level.as_str()),
            );
            Some(written)
        }
        Some(old) if old.env == profile.env => {
            if reading.is_logical_copy() {
                return Err(Error::Refused(guard::copy_refusal(
                    &profile.env,
                    &target,
                    old,
                )));
            }
            // Same env: refresh what an older stamp lacks (identity, nonce, a raised level, a
            // schema its app role owned). A level is never lowered here.
            let wanted = level.max(old.protection);
            let owned_elsewhere =
                reading.schema_owner.as_deref() != Some(reading.current_user.as_str());
            if old.nonce.is_none()
                || wanted != old.protection
                || (owned_elsewhere && instance.is_some())
            {
                let written = stamp::write(
                    &mut client,
                    &NewStamp {
                        protection: wanted,
                        ..new.clone()
                    },
                    Some(old),
                )?;
                cli::note(
                    TOOL,
                    format!(
                        "{target} was stamped {} already: brought the stamp up to date ({}, identity recorded, schema owned by {})",
                        profile.env,
                        wanted.as_str(),
                        reading.current_user
                    ),
                );
                Some(written)
            } else {
                cli::note(
                    TOOL,
                    format!(
                        "{target} is already stamped {}: nothing to change",
                        profile.env
                    ),
                );
                None
            }
        }
        Some(old) => {
            // Re-stamping takes the database from the env it belongs to: that env's data is at
            // risk, so that env's confirmation (and break-glass when it is locked) is needed.
            let at_risk = guard::floor(&old.env, old.protection, config.as_ref());
            let mut guard = Guard::new(TOOL, "restamp", &profile, config.as_ref())?;
            guard.env = old.env.clone();
            guard.protection = at_risk;
            let confirmation = confirm.confirmation();
            if let Some(reason) = guard::protection_refusal(
                &old.env,
                &old.env,
                at_risk,
                &format!("re-stamping {target} from {} to {}", old.env, profile.env),
                guard.class,
                &confirmation,
            ) {
                let hint = if reading.is_logical_copy() {
                    format!(" (it is a copy of {}'s database: `dbguard adopt {}` needs only {}'s confirmation)", old.env, profile.env, profile.env)
                } else {
                    String::new()
                };
                return Err(guard.refuse(Some(&mut client), format!("{reason}{hint}")));
            }
            guard.record_allowed(Some(&mut client), &confirmation)?;
            let written = stamp::write(&mut client, &new, Some(old))?;
            cli::note(
                TOOL,
                format!("re-stamped {target} from {} to {}", old.env, profile.env),
            );
            Some(written)
        }
    };
    if let Some(written) = &written {
        record_with_owner(config.as_ref(), instance.as_deref(), &profile, written)?;
    }
    let current = stamp::read(&mut client)?
        .stamp
        .ok_or_else(|| Error::Failed("the stamp just written cannot be read back".into()))?;
    emit_stamp(
        out,
        &profile,
        previous.map(|s| s.env),
        written.is_some(),
        current,
    )
}

fn emit_stamp(
    out: Output,
    profile: &Profile,
    previous: Option<String>,
    changed: bool,
    stamp: Stamp,
) -> Result<ExitStatus> {
    let result = StampResult {
        env: profile.env.clone(),
        previous,
        changed,
        stamp,
        profile: profile.clone(),
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

/// `dbguard adopt ENV`: a copy of another env's database (a dump loaded here, a template
/// clone, a restored snapshot) becomes ENV's, with ENV's own confirmation only. The original
/// is never adopted: what tells them apart is the database's identity (a logical copy) and the
/// instance owner's record of the stamp (a physical copy carries the stamp, not the record).
fn adopt(
    out: Output,
    global: &GlobalArgs,
    env: Option<String>,
    confirm: &ConfirmArgs,
) -> Result<ExitStatus> {
    let profile = EnvArg { env }.profile(global)?;
    let config = Config::find(global.config.as_deref())?;
    let target = guard::target(&profile);
    let guard = Guard::new(TOOL, "adopt", &profile, config.as_ref())?;
    let confirmation = confirm.confirmation();
    guard.check_protection(&confirmation)?;
    let (mut client, instance) = connect_as_owner(&profile, config.as_ref())?;
    let reading = stamp::read(&mut client)?;
    let Some(old) = reading.stamp.clone() else {
        return Err(Error::BadInput(format!(
            "database {target} has no env stamp, so it is no copy of a stamped database: stamp it with `dbguard stamp {}`",
            profile.env
        )));
    };
    let how = if reading.is_logical_copy() {
        let origin = old
            .identity
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default();
        format!("a copy of {origin}")
    } else {
        let origin = owner::origin(config.as_ref(), &profile.env, &profile.conn, &old)?;
        match origin {
            owner::Origin::Copy => format!(
                "a physical copy: the instance at {}:{} does not record its stamp",
                profile.conn.host, profile.conn.port
            ),
            owner::Origin::Original | owner::Origin::Unknown => {
                let reason = format!(
                    "database {target} is not a copy: it is the database its {} stamp was written in{}, so adopting it would take it from env {}; if it really must change env, re-stamp it with `dbguard stamp {} --confirm {}`",
                    old.env,
                    if origin == owner::Origin::Original {
                        " and its instance records that stamp"
                    } else {
                        " and nothing shows it was copied"
                    },
                    old.env,
                    profile.env,
                    old.env
                );
                return Err(guard.refuse(Some(&mut client), reason));
            }
        }
    };
    guard.record_allowed(Some(&mut client), &confirmation)?;
    let level = guard.protection;
    let written = stamp::write(
        &mut client,
        &NewStamp {
            env: &profile.env,
            protection: level,
            app: profile.app.as_deref(),
            tool: TOOL,
            adopted_from: Some(format!("{} ({how})", old.env)),
        },
        Some(&old),
    )?;
    record_with_owner(config.as_ref(), instance.as_deref(), &profile, &written)?;
    cli::note(
        TOOL,
        format!(
            "adopted {target} for env {} ({}): it was {how}, stamped {}",
            profile.env,
            level.as_str(),
            old.env
        ),
    );
    emit_stamp(out, &profile, Some(old.env), true, written)
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
        let mut client = dbtools::resolve::connect(&profile, TOOL, pg::DEFAULT_CONNECT_TIMEOUT)?;
        (
            AuditSource::Database,
            guard::read_database(&mut client, limit)?,
        )
    } else {
        let config = Config::find(global.config.as_deref())?;
        let log = guard::audit_log_path(config.as_ref());
        let mut entries = guard::read_local(&log)?;
        if let Some(env) = &env.env {
            entries.retain(|e| &e.env == env);
        }
        (AuditSource::Local, entries)
    };
    let skip = entries.len().saturating_sub(limit);
    entries.drain(..skip);
    let list = AuditList { source, entries };
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
                e.outcome.to_string(),
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
