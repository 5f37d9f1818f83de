//! dbconnect's commands. The witness is gathered in three simple-query round trips after
//! connect: one for who/where/TLS, one `SELECT 1` to time a round trip on the open connection,
//! one for the env stamp (what the database says it is: a stamp of another env is exit 3, as
//! in doctor; the check stays read-only).

use crate::cli::{Cli, Command};
use dbtools::contract::{self, Profile, SslInfo, Witness};
use dbtools::output::{self, Output};
use dbtools::{cli, pg, Error, ExitStatus, Result};
use std::time::{Duration, Instant};

const TOOL: &str = "dbconnect";

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::Check { env, timeout } => {
            let profile = env.profile(&cli.global)?;
            let started = Instant::now();
            let timeout = seconds(timeout)?;
            let client = dbtools::resolve::connect(&profile, TOOL, timeout)?;
            emit_witness(out, witness(client, started.elapsed(), profile)?)
        }
        Command::Wait { env, timeout } => {
            let profile = env.profile(&cli.global)?;
            let (client, attempt) = dbtools::resolve::wait_for(&profile, TOOL, seconds(timeout)?)?;
            emit_witness(out, witness(client, attempt, profile)?)
        }
        Command::Doctor { env, timeout } => {
            crate::doctor::run(out, env.profile(&cli.global)?, seconds(timeout)?)
        }
        Command::Url { env, reveal } => {
            cli::stdout_is_text();
            let mut profile = env.profile(&cli.global)?;
            // Asked for by name: read only then; otherwise a placeholder says there is one.
            if reveal {
                profile = dbtools::resolve::with_password(&profile)?;
            } else if profile.secret.is_some() {
                profile.conn.password = Some(contract::REDACTED.into());
            }
            output::write_stdout(&(dbtools::url::format(&profile.conn, reveal) + "\n"))?;
            Ok(ExitStatus::Success)
        }
        Command::Psql { env, args } => {
            cli::stdout_is_text();
            psql(
                &dbtools::resolve::with_password(&env.profile(&cli.global)?)?,
                &args,
            )
        }
    }
}

fn seconds(value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Error::BadInput(format!("--timeout {value} is not a number of seconds")))
}

fn witness(mut client: pg::Client, connect: Duration, profile: Profile) -> Result<Witness> {
    let connect_ms = ms(connect);
    let rows = client
        .simple_query(
            "SELECT current_setting('server_version'), current_database(), current_user, \
             coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'unix socket'), \
             s.ssl, s.version, s.cipher FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
        )
        .map_err(|e| pg::statement_error("reading the witness", &e))?;
    let row = rows
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or_else(|| Error::Failed("the witness query returned no row".into()))?;
    let text = |i: usize| row.get(i).map(str::to_string);
    let ping = Instant::now();
    client
        .simple_query("SELECT 1")
        .map_err(|e| pg::statement_error("timing a round trip", &e))?;
    let latency_ms = ms(ping.elapsed());
    let reading = dbtools::stamp::read(&mut client)?;
    match &reading.stamp {
        Some(stamp) if stamp.env != profile.env => {
            return Err(Error::Refused(format!(
                "{}: this database is stamped {} ({}, by {} at {}), but the profile is env {}: it is not env {}'s database; `dbconnect doctor` says what to do",
                dbtools::guard::target(&profile),
                stamp.env,
                stamp.protection.as_str(),
                stamp.stamped_by,
                stamp.stamped_at,
                profile.env,
                profile.env
            )))
        }
        Some(stamp) if reading.is_logical_copy() => cli::note(
            TOOL,
            format!(
                "this database is a copy of env {}'s (its stamp was written in another database): tools that write refuse it until `dbguard adopt {}`",
                stamp.env, profile.env
            ),
        ),
        Some(_) => {}
        None => cli::note(
            TOOL,
            format!(
                "this database carries no env stamp: tools that write refuse it until `dbguard stamp {}`",
                profile.env
            ),
        ),
    }
    Ok(Witness {
        env: profile.env.clone(),
        server_version: text(0).unwrap_or_default(),
        database: text(1).unwrap_or_default(),
        user: text(2).unwrap_or_default(),
        server_addr: text(3).unwrap_or_default(),
        ssl: SslInfo {
            in_use: text(4).as_deref() == Some("t"),
            version: text(5),
            cipher: text(6),
        },
        connect_ms,
        latency_ms,
        stamp: reading.stamp,
        profile,
    })
}

/// A psqlrc that runs the user's own startup file first (`PSQLRC`, else `~/.psqlrc`; on Windows
/// `%APPDATA%\postgresql\psqlrc.conf`, where psql looks), then sets
/// the prompt to name the env: psql reads no prompt from its environment, and a `--set` would
/// be overridden by the user's file. Written (0600) in the state dir's cache, else the temp dir.
fn prompt_psqlrc(profile: &Profile) -> Result<std::path::PathBuf> {
    let label = match profile.protection {
        contract::Protection::Open => profile.env.clone(),
        level => format!("{}({})", profile.env, level.as_str()),
    };
    let own = std::env::var_os("PSQLRC")
        .map(std::path::PathBuf::from)
        .or_else(|| dbtools::pgpass::libpq_user_file(".psqlrc", "psqlrc.conf"))
        .filter(|path| path.is_file());
    let mut text = String::new();
    // Never our own file: psql passes PSQLRC on to `\!`, where a nested `dbconnect psql` runs.
    let own = own.filter(|path| {
        !path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().contains("psqlrc-"))
    });
    if let Some(own) = own {
        // psql reads backslash escapes inside quotes: both quote and backslash are escaped.
        let quoted = own
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        text.push_str(&format!("\\i '{quoted}'\n"));
    }
    for (name, tail) in [("PROMPT1", "%/%R%# "), ("PROMPT2", "%/%R%# ")] {
        text.push_str(&format!("\\set {name} '{label} {tail}'\n"));
    }
    let (dir, name) = match &profile.state {
        Some(state) => {
            let dir = state.psql_dir();
            state.ensure_private_dir(&dir)?;
            (dir, format!("psqlrc-{}", profile.env))
        }
        None => (
            std::env::temp_dir(),
            format!(
                "dbtools-psqlrc-{}-{}",
                dbtools::identity::user_at_host(),
                profile.env
            ),
        ),
    };
    let file = dir.join(name);
    dbtools::state::write_private(&file, text.as_bytes())?;
    Ok(file)
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

fn emit_witness(out: Output, witness: Witness) -> Result<ExitStatus> {
    out.emit(&witness, || {
        let ssl = if witness.ssl.in_use {
            format!(
                "yes ({}, {})",
                witness.ssl.version.clone().unwrap_or_default(),
                witness.ssl.cipher.clone().unwrap_or_default()
            )
        } else {
            "NO".to_string()
        };
        output::key_values(&[
            ("env", witness.env.clone()),
            ("server", format!("PostgreSQL {}", witness.server_version)),
            ("database", witness.database.clone()),
            ("user", witness.user.clone()),
            ("address", witness.server_addr.clone()),
            ("ssl", ssl),
            ("connect", format!("{} ms", witness.connect_ms)),
            ("latency", format!("{} ms", witness.latency_ms)),
            (
                "stamp",
                witness.stamp.as_ref().map_or_else(
                    || "none".to_string(),
                    |s| {
                        format!(
                            "{} ({}, by {} at {})",
                            s.env,
                            s.protection.as_str(),
                            s.stamped_by,
                            s.stamped_at
                        )
                    },
                ),
            ),
        ])
    })?;
    Ok(ExitStatus::Success)
}

/// Replaces this process with psql (on Unix), the password in its environment only, its prompt
/// naming the env (and its protection when it is not open).
fn psql(profile: &Profile, args: &[String]) -> Result<ExitStatus> {
    let mut command = std::process::Command::new("psql");
    command.args(args);
    pg::libpq_environment(&mut command, &profile.conn, "dbconnect psql");
    command.env("PSQLRC", prompt_psqlrc(profile)?);
    let not_found = |e: std::io::Error| {
        Error::BadInput(format!("cannot run psql ({e}): install the PostgreSQL client (apt-get install -y postgresql-client)"))
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(not_found(command.exec()))
    }
    #[cfg(not(unix))]
    {
        // No exec on Windows: psql runs as a child. Ctrl-C reaches every process on the
        // console; psql cancels its query, and this process waits instead of dying under it.
        let _ctrl_c = dbtools::interrupt::Sigint::catch();
        let status = command.status().map_err(not_found)?;
        Ok(match status.code() {
            Some(0) => ExitStatus::Success,
            // psql's 2: the connection to the server went bad.
            Some(2) => ExitStatus::Unreachable,
            _ => ExitStatus::Failed,
        })
    }
}
