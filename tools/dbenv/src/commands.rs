//! dbenv's commands: list, resolve, export.

use crate::cli::{Cli, Command, Format};
use dbtools::config::{self, Config};
use dbtools::contract::{self, EnvList, EnvSummary, Profile};
use dbtools::output::{self, Output};
use dbtools::{resolve, state, Error, ExitStatus, Result};
use std::io::IsTerminal;

pub fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::List => list(&Config::load(cli.global.config.as_deref())?, out),
        Command::Resolve {
            env,
            from_env,
            reveal,
        } => {
            let name = config::select_env(env.as_deref());
            let profile = if from_env {
                let config = Config::load(cli.global.config.as_deref()).ok();
                resolve::profile_from_environment(&name, config.as_ref())?
            } else {
                resolve::resolve_profile(&Config::load(cli.global.config.as_deref())?, &name)?
            };
            let shown = if out.json || reveal {
                profile.clone()
            } else {
                profile.redacted()
            };
            out.emit(&profile, || profile_table(&shown))?;
            Ok(ExitStatus::Success)
        }
        Command::Export {
            env,
            format,
            reveal,
        } => {
            let config = Config::load(cli.global.config.as_deref())?;
            let profile = resolve::resolve_profile(&config, &config::select_env(env.as_deref()))?;
            let reveal = reveal || !std::io::stdout().is_terminal();
            output::write_stdout(&export(&config, &profile, format, reveal)?)?;
            Ok(ExitStatus::Success)
        }
    }
}

fn list(config: &Config, out: Output) -> Result<ExitStatus> {
    let envs: Vec<EnvSummary> = config
        .envs
        .iter()
        .map(|(name, env)| {
            let instance = config.env_instance(name).ok().flatten();
            EnvSummary {
                env: name.clone(),
                protection: config.protection(name),
                provider: instance.map(|(_, i)| i.provider.clone()),
                instance: env.instance.clone(),
                database: env.database.clone(),
                user: env.user.clone(),
                secret: config
                    .env_secret(name)
                    .ok()
                    .flatten()
                    .map(|s| s.to_string()),
            }
        })
        .collect();
    let listing = EnvList {
        kind: contract::ENV_LIST.into(),
        app: config.app.clone(),
        config: config.path.display().to_string(),
        default_env: config::select_env(None),
        envs,
    };
    out.emit(&listing, || {
        let rows: Vec<Vec<String>> = listing
            .envs
            .iter()
            .map(|e| {
                vec![
                    if e.env == listing.default_env {
                        format!("{}*", e.env)
                    } else {
                        e.env.clone()
                    },
                    e.protection.as_str().into(),
                    e.provider.clone().unwrap_or_else(|| "-".into()),
                    e.instance.clone().unwrap_or_else(|| "-".into()),
                    e.database.clone(),
                    e.user.clone(),
                    e.secret.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::table(
            &[
                "ENV",
                "PROTECTION",
                "PROVIDER",
                "INSTANCE",
                "DATABASE",
                "USER",
                "SECRET",
            ],
            &rows,
        )
    })?;
    Ok(ExitStatus::Success)
}

fn profile_table(profile: &Profile) -> String {
    let conn = &profile.conn;
    output::key_values(&[
        ("env", profile.env.clone()),
        ("protection", profile.protection.as_str().into()),
        ("host", conn.host.clone()),
        ("port", conn.port.to_string()),
        ("database", conn.dbname.clone()),
        ("user", conn.user.clone()),
        (
            "password",
            conn.password.clone().unwrap_or_else(|| "-".into()),
        ),
        ("sslmode", conn.sslmode.as_str().into()),
        (
            "sslrootcert",
            conn.sslrootcert.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "secret",
            profile
                .secret
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "instance",
            profile
                .instance
                .as_ref()
                .map(|i| format!("{} ({})", i.id, i.provider))
                .unwrap_or_else(|| "-".into()),
        ),
    ])
}

/// Quotes a value for POSIX shells.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Escapes a pgpass field (`:` and `\`).
fn pgpass_field(value: &str) -> String {
    value.replace('\\', r"\\").replace(':', r"\:")
}

fn pgpass_line(profile: &Profile, reveal: bool) -> String {
    let conn = &profile.conn;
    let password = match (&conn.password, reveal) {
        (Some(p), true) => pgpass_field(p),
        (Some(_), false) => contract::REDACTED.to_string(),
        (None, _) => String::new(),
    };
    format!(
        "{}:{}:{}:{}:{}\n",
        pgpass_field(&conn.host),
        conn.port,
        pgpass_field(&conn.dbname),
        pgpass_field(&conn.user),
        password
    )
}

/// Writes the env's 0600 pgpass file in the state dir and returns its path.
fn write_pgpass(config: &Config, profile: &Profile) -> Result<String> {
    let path = config.state.pgpass_file(&profile.env);
    config
        .state
        .ensure_private_dir(path.parent().unwrap_or(&config.state.root))?;
    state::write_private(&path, pgpass_line(profile, true).as_bytes())?;
    Ok(path.display().to_string())
}

fn export(config: &Config, profile: &Profile, format: Format, reveal: bool) -> Result<String> {
    let conn = &profile.conn;
    Ok(match format {
        Format::Env => {
            let mut vars = vec![
                ("PGHOST", conn.host.clone()),
                ("PGPORT", conn.port.to_string()),
                ("PGDATABASE", conn.dbname.clone()),
                ("PGUSER", conn.user.clone()),
                ("PGSSLMODE", conn.sslmode.as_str().to_string()),
            ];
            if let Some(root) = &conn.sslrootcert {
                vars.push(("PGSSLROOTCERT", root.clone()));
            }
            if conn.password.is_some() {
                vars.push(("PGPASSFILE", write_pgpass(config, profile)?));
            }
            vars.push(("DBTOOLS_ENV", profile.env.clone()));
            let mut text: String = vars
                .iter()
                .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
                .collect();
            if conn.password.is_none() {
                text.push_str("unset PGPASSFILE\n");
            }
            text
        }
        Format::Url => dbtools::url::format(conn, reveal) + "\n",
        Format::Pgpass => pgpass_line(profile, reveal),
        Format::Service => {
            let mut text = format!(
                "[{}]\nhost={}\nport={}\ndbname={}\nuser={}\nsslmode={}\n",
                profile.env,
                conn.host,
                conn.port,
                conn.dbname,
                conn.user,
                conn.sslmode.as_str()
            );
            if let Some(root) = &conn.sslrootcert {
                text.push_str(&format!("sslrootcert={root}\n"));
            }
            if conn.password.is_some() {
                text.push_str(&format!("passfile={}\n", write_pgpass(config, profile)?));
            }
            text
        }
        Format::Json => {
            let shown = if reveal {
                profile.clone()
            } else {
                profile.redacted()
            };
            serde_json::to_string(&shown)
                .map_err(|e| Error::Failed(format!("cannot encode the profile: {e}")))?
                + "\n"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_and_shell_quoting_escape_what_they_must() {
        assert_eq!(pgpass_field(r"a:b\c"), r"a\:b\\c");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
