//! dbenv's commands: list, resolve, export.

use crate::cli::{Cli, Command, Format};
use dbtools::config::{self, Config};
use dbtools::contract::{self, EnvList, EnvSummary, Profile};
use dbtools::output::{self, Output};
use dbtools::{envvars, pg, pgpass, resolve, state, Error, ExitStatus, Result};

pub(crate) fn run(cli: Cli) -> Result<ExitStatus> {
    let out = Output::detect(cli.global.json);
    match cli.command {
        Command::List { names: true } => {
            dbtools::cli::stdout_is_text();
            let config = Config::load(cli.global.config.as_deref())?;
            let names: String = config.envs.keys().map(|name| format!("{name}\n")).collect();
            output::write_stdout(&names)?;
            Ok(ExitStatus::Success)
        }
        Command::List { names: false } => list(&Config::load(cli.global.config.as_deref())?, out),
        Command::Resolve { env, from_env } => {
            let profile = if from_env {
                // An ad-hoc database is not assumed to be any configured env: it is named only
                // when the user names it, and is `adhoc` (confirm-protected) otherwise.
                let name = env.as_deref().unwrap_or(resolve::ADHOC_ENV);
                let config = Config::find(cli.global.config.as_deref())?;
                resolve::profile_from_environment(name, config.as_ref())?
            } else {
                resolve::resolve_selected(
                    &Config::load(cli.global.config.as_deref())?,
                    env.as_deref(),
                )?
            };
            out.emit(&profile, || profile_table(&profile))?;
            Ok(ExitStatus::Success)
        }
        Command::Import { sslrootcert } => {
            let resources = resources_from_stdin()?;
            let path = config::locate(cli.global.config.as_deref());
            let changes = crate::import::import_into(&path, &resources, sslrootcert.as_deref())?;
            for change in &changes {
                dbtools::cli::note("dbenv", change);
            }
            if changes.is_empty() {
                dbtools::cli::note("dbenv", format!("{}: nothing to change", path.display()));
            }
            list(&Config::load(Some(&path))?, out)
        }
        Command::Export {
            env,
            format,
            reveal,
        } => {
            if format != Format::Json {
                dbtools::cli::stdout_is_text();
            }
            let config = Config::load(cli.global.config.as_deref())?;
            let mut profile = resolve::resolve_selected(&config, env.as_deref())?;
            // Asked for by name: every format but JSON carries the password (env and service
            // through a 0600 pgpass file).
            if format != Format::Json {
                profile = resolve::with_password(&profile)?;
            }
            let reveal = out.shows_secrets(reveal);
            output::write_stdout(&export(&config, &profile, format, reveal)?)?;
            Ok(ExitStatus::Success)
        }
    }
}

/// rdsprov's resources from stdin (an upstream error passes on with its exit code).
fn resources_from_stdin() -> Result<contract::Resources> {
    let text = contract::decode_text(&dbtools::input::read_stdin()?)?;
    let message = contract::parse_message(&text)?;
    if message.kind == contract::ErrorMessage::KIND {
        return Err(contract::upstream_error(&message.value));
    }
    if message.kind != contract::Resources::KIND {
        return Err(Error::BadInput(format!(
            "stdin: dbenv import reads rdsprov's resources ({}), not {}: pipe `rdsprov apply` or `rdsprov tenant add` into it",
            contract::Resources::KIND,
            message.kind
        )));
    }
    serde_json::from_value(message.value).map_err(|e| {
        Error::BadInput(format!(
            "stdin: malformed {}: {e}",
            contract::Resources::KIND
        ))
    })
}

fn list(config: &Config, out: Output) -> Result<ExitStatus> {
    let envs: Vec<EnvSummary> = config
        .envs
        .iter()
        .map(|(name, env)| {
            let instance = config.env_instance(name).ok().flatten();
            // Where it lives: the profile's host and port, once they can be known (a local
            // instance not provisioned yet, an AWS env before `dbenv import`: unknown).
            let address = dbtools::resolve::resolve_profile(config, name)
                .ok()
                .map(|p| format!("{}:{}", p.conn.host, p.conn.port));
            EnvSummary {
                address,
                env: name.clone(),
                protection: config.protection(name),
                provider: instance.map(|(_, i)| i.provider),
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
        app: config.app.clone(),
        config: config.path.display().to_string(),
        default_env: dbtools::input::select_env(None).0,
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
                    e.provider.map_or_else(|| "-".into(), |p| p.to_string()),
                    e.instance.clone().unwrap_or_else(|| "-".into()),
                    e.address.clone().unwrap_or_else(|| "-".into()),
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
                "WHERE",
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

/// A value as a PowerShell expression whose text is pure printable ASCII, so no console code
/// page can change it and no line break can split the statement: a verbatim string
/// (`'C:\x'`, a quote written twice; nothing inside expands), or, for a value with anything
/// else in it (non-ASCII, control characters; PowerShell also reads the typographic quotes
/// U+2018–U+201B as quotes), its UTF-8 bytes decoded from base64.
fn powershell_quote(value: &str) -> String {
    if value.chars().all(|c| (' '..='~').contains(&c)) {
        format!("'{}'", value.replace('\'', "''"))
    } else {
        format!(
            "[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('{}'))",
            base64(value.as_bytes())
        )
    }
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pgpass_line(profile: &Profile, reveal: bool) -> String {
    let conn = &profile.conn;
    let password = match (&conn.password, reveal) {
        (Some(p), true) => pgpass::field(p),
        (Some(_), false) => contract::REDACTED.to_string(),
        (None, _) => String::new(),
    };
    pgpass::line(conn, &password)
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
        Format::Env | Format::Powershell => {
            let mut exports = vec![
                (envvars::PGHOST, conn.host.clone()),
                (envvars::PGPORT, conn.port.to_string()),
                (envvars::PGDATABASE, conn.dbname.clone()),
                (envvars::PGUSER, conn.user.clone()),
                (
                    envvars::PGSSLMODE,
                    pg::effective_sslmode(conn).as_str().to_string(),
                ),
            ];
            // Whatever the shell had before must not leak into this env's connections: a stale
            // PGPASSWORD would win over the pgpass file, PGHOSTADDR over PGHOST.
            let mut unsets = vec![envvars::PGPASSWORD, envvars::PGHOSTADDR, envvars::PGSERVICE];
            match pg::libpq_sslrootcert(conn) {
                Some(root) => exports.push((envvars::PGSSLROOTCERT, root)),
                None => unsets.push(envvars::PGSSLROOTCERT),
            }
            match conn.password {
                Some(_) => exports.push((envvars::PGPASSFILE, write_pgpass(config, profile)?)),
                None => unsets.push(envvars::PGPASSFILE),
            }
            if format == Format::Powershell {
                let mut text: String = exports
                    .iter()
                    .map(|(k, v)| format!("$env:{k} = {}\n", powershell_quote(v)))
                    .collect();
                let items: Vec<String> = unsets.iter().map(|k| format!("Env:{k}")).collect();
                text.push_str(&format!(
                    "Remove-Item {} -ErrorAction SilentlyContinue\n",
                    items.join(", ")
                ));
                return Ok(text);
            }
            let mut text: String = exports
                .iter()
                .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
                .collect();
            text.push_str(&format!("unset {}\n", unsets.join(" ")));
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
                pg::effective_sslmode(conn).as_str()
            );
            if let Some(root) = pg::libpq_sslrootcert(conn) {
                text.push_str(&format!("sslrootcert={root}\n"));
            }
            if conn.password.is_some() {
                text.push_str(&format!("passfile={}\n", write_pgpass(config, profile)?));
            }
            text
        }
        Format::Json => {
            serde_json::to_string(profile)
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
        assert_eq!(pgpass::field(r"a:b\c"), r"a\:b\\c");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn powershell_values_are_printable_ascii_whatever_they_hold() {
        assert_eq!(powershell_quote("plain"), "'plain'");
        assert_eq!(powershell_quote("it's"), "'it''s'");
        // $ and backtick expand only in double quotes: kept as they are.
        assert_eq!(powershell_quote("$(rm -r C:\\)`n"), "'$(rm -r C:\\)`n'");
        assert_eq!(powershell_quote("C:\\Users\\me"), "'C:\\Users\\me'");
        // A line break, a typographic quote, a name with an accent: base64, one ASCII line.
        for hostile in [
            "x\n& calc #",
            "a\u{2019}; calc; '",
            "C:\\Users\\Jos\u{e9}",
            "x\r\ny",
        ] {
            let quoted = powershell_quote(hostile);
            assert!(quoted.chars().all(|c| (' '..='~').contains(&c)), "{quoted}");
            assert!(
                quoted.starts_with("[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('")
            );
        }
        assert_eq!(
            powershell_quote("Jos\u{e9}"),
            "[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('Sm9zw6k='))"
        );
        for (bytes, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(bytes.as_bytes()), encoded);
        }
    }
}
