//! The project config, `dbtools.toml`: the app, its environments and the instances they live on.
//!
//! ```toml
//! app = "combine"
//! # state_dir = ".dbtools"          # relative to this file; DBTOOLS_STATE_DIR overrides
//!
//! [env.dev]
//! protection = "open"               # open | confirm | locked (default: open for dev, locked for
//!                                   # prod/production, confirm otherwise; it can raise, never lower)
//! instance = "combine-dev"          # an [instance.*] below
//! database = "combine_dev"
//! user = "combine_app"
//! # secret = "local:combine-dev/combine_app"   # local:NAME | env:VAR | aws-sm:ID
//! # host = "…"  port = 5432  sslmode = "verify-full"  sslrootcert = "certs/rds.pem"
//!
//! # [env.dev.migrations]            # how dbmigrate runs this env's migrations
//! # lock_timeout = "5s"             # each statement waits at most this for a lock (0: no limit)
//! # statement_timeout = "1h"        # and runs at most this long (0: no limit)
//! # lock_retries = 5                # a migration that hit lock_timeout runs again, backing off
//!
//! [instance.combine-dev]
//! provider = "local"                # local | aws
//! ```
//! The file is found through `--config`, then `DBTOOLS_CONFIG`, then by walking up from the
//! current directory. Env selection: `--env`, then `DBTOOLS_ENV`, then `dev` — never anything else.
//!
//! Envs of different protection on one instance (or, without an instance, one host and port)
//! must not share a `user`: what a role may do in the database no client check can take back,
//! so DEV's app role could drop TEST's database.

use crate::contract::{Protection, SecretRef, SslMode};
use crate::envvars;
use crate::exit::{Error, Result};
use crate::names;
use crate::state::StateDir;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) const CONFIG_FILE: &str = "dbtools.toml";
pub(crate) const DEFAULT_ENV: &str = "dev";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    app: Option<String>,
    state_dir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, EnvConfig>,
    #[serde(default)]
    instance: BTreeMap<String, InstanceConfig>,
    #[serde(default)]
    access: AccessConfig,
}

/// `[access]`: how `rdsprov access` finds this machine's public address and names its rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The check-IP endpoint (default https://checkip.amazonaws.com/; DBTOOLS_CHECKIP_URL wins).
    pub checkip_url: Option<String>,
    /// This machine's name in its ingress rule (default user@host; DBTOOLS_MACHINE_NAME wins).
    pub machine: Option<String>,
}

/// One `[env.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    pub protection: Option<Protection>,
    pub instance: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: String,
    pub user: String,
    pub secret: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    /// Take a manual RDS snapshot before migrating when migrations are pending (default: on
    /// for AWS envs other than dev).
    pub snapshot_before_migrate: Option<bool>,
    /// How `dbmigrate` runs this env's migrations.
    #[serde(default)]
    pub migrations: MigrationSettings,
}

/// `[env.NAME.migrations]`: the timeouts every migration statement runs under, and how often a
/// migration that hit its lock timeout is run again. Unset values take dbmigrate's defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSettings {
    #[serde(default, deserialize_with = "setting_duration")]
    pub lock_timeout: Option<std::time::Duration>,
    #[serde(default, deserialize_with = "setting_duration")]
    pub statement_timeout: Option<std::time::Duration>,
    pub lock_retries: Option<u32>,
}

fn setting_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<std::time::Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::time::parse_setting(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(e.message()))
}

/// One `[instance.ID]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub provider: crate::contract::Provider,
    pub region: Option<String>,
    /// Master user name (default `postgres`).
    pub master_user: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub app: Option<String>,
    pub state: StateDir,
    pub envs: BTreeMap<String, EnvConfig>,
    pub instances: BTreeMap<String, InstanceConfig>,
    pub access: AccessConfig,
}

/// The instance's administrative role when the config names none (RDS's default too).
pub(crate) const DEFAULT_MASTER_USER: &str = "postgres";

impl InstanceConfig {
    pub fn master_user(&self) -> &str {
        self.master_user.as_deref().unwrap_or(DEFAULT_MASTER_USER)
    }
}

/// Where the config is (explicit path, `DBTOOLS_CONFIG`, then upward from here), without
/// reading it; `dbtools.toml` here when there is none (a tool that writes it creates it).
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os(envvars::DBTOOLS_CONFIG) {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => find_upward().unwrap_or_else(|_| PathBuf::from(CONFIG_FILE)),
        },
    }
}

impl Config {
    /// Finds and loads the config (see the module doc for the search order).
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => match std::env::var_os(envvars::DBTOOLS_CONFIG) {
                Some(path) if !path.is_empty() => PathBuf::from(path),
                _ => find_upward()?,
            },
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::BadInput(format!("cannot read config {}: {e}", path.display())))?;
        Config::parse(&text, &path)
    }

    /// The config when there is one: an explicit path or `DBTOOLS_CONFIG` must load, while
    /// a search that finds no file is `None` (a machine outside any project).
    pub fn find(explicit: Option<&Path>) -> Result<Option<Config>> {
        let named = explicit.is_some()
            || std::env::var_os(envvars::DBTOOLS_CONFIG).is_some_and(|p| !p.is_empty());
        if !named && find_upward().is_err() {
            return Ok(None);
        }
        Config::load(explicit).map(Some)
    }

    /// Parses config text; `path` locates relative paths and names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let file: ConfigFile = parse_toml(text, &format!("config {}", path.display()))?;
        let path = absolute(path);
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let state_root = match std::env::var_os(envvars::DBTOOLS_STATE_DIR) {
            Some(root) if !root.is_empty() => absolute(Path::new(&root)),
            _ => dir.join(file.state_dir.as_deref().unwrap_or(".dbtools")),
        };
        let config = Config {
            path,
            app: file.app,
            state: StateDir::new(state_root),
            envs: file.env,
            instances: file.instance,
            access: file.access,
        };
        config.validate(text)?;
        Ok(config)
    }

    /// `text` is the file's, to name the lines of an error.
    fn validate(&self, text: &str) -> Result<()> {
        let at = |what: String| Error::BadInput(format!("config {}: {what}", self.path.display()));
        for id in self.instances.keys() {
            names::check_instance_id(id).map_err(|e| at(e.to_string()))?;
        }
        for instance in self.instances.values() {
            if let Some(user) = &instance.master_user {
                names::check_sql_name(user, "master user").map_err(|e| at(e.to_string()))?;
            }
        }
        for (name, env) in &self.envs {
            names::check_env_name(name).map_err(|e| at(e.to_string()))?;
            let in_env = |e: Error| at(format!("env {name}: {e}"));
            names::check_sql_name(&env.database, "database").map_err(in_env)?;
            names::check_sql_name(&env.user, "user").map_err(in_env)?;
            if let Some(secret) = &env.secret {
                SecretRef::parse(secret).map_err(in_env)?;
            }
            match &env.instance {
                Some(id) if !self.instances.contains_key(id) => {
                    return Err(at(format!(
                        "env {name}: instance {id:?} has no [instance.{id}] table"
                    )))
                }
                Some(id) if self.instances[id].master_user() == env.user => {
                    return Err(at(format!(
                        "env {name}: user {:?} is instance {id}'s master user; the env's app connects as its own least-privilege role, so pick another user",
                        env.user
                    )))
                }
                None if env.host.is_none() => {
                    return Err(at(format!("env {name}: give either an instance or a host")))
                }
                _ => {}
            }
        }
        self.check_shared_roles(text).map_err(at)
    }

    /// Refuses two envs of different protection that connect as one role on one server: the
    /// role's privileges reach the stricter env's database (a migration on DEV with
    /// `DROP DATABASE` of TEST's database succeeds), and the guard checks the client, not the
    /// server. Envs of the same protection may share a role.
    fn check_shared_roles(&self, text: &str) -> std::result::Result<(), String> {
        let envs: Vec<(&String, &EnvConfig)> = self.envs.iter().collect();
        for (i, (first, a)) in envs.iter().enumerate() {
            for (second, b) in &envs[i + 1..] {
                let (pa, pb) = (self.protection(first), self.protection(second));
                if a.user != b.user || server_of(a) != server_of(b) || pa == pb {
                    continue;
                }
                // The env with less protection is the one whose runs reach the other's data.
                let (loose, strict) = if pa < pb {
                    (first, second)
                } else {
                    (second, first)
                };
                let lines = match (user_line(text, first), user_line(text, second)) {
                    (Some(la), Some(lb)) => format!(" (lines {la} and {lb})"),
                    _ => String::new(),
                };
                return Err(format!(
                    "envs {first} ({}) and {second} ({}) share role {:?} on {}{lines}: the role's privileges reach both databases, so {loose} could drop {strict}'s; give each a user of its own",
                    pa.as_str(),
                    pb.as_str(),
                    a.user,
                    server_of(a)
                ));
            }
        }
        Ok(())
    }

    /// The env's table, or an error listing the known envs.
    pub fn env(&self, name: &str) -> Result<&EnvConfig> {
        self.env_from(name, None)
    }

    /// [`Config::env`], its error saying where the name came from (`origin`: "named by
    /// DBTOOLS_ENV", …).
    pub(crate) fn env_from(&self, name: &str, origin: Option<&str>) -> Result<&EnvConfig> {
        self.envs.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.envs.keys().map(String::as_str).collect();
            let origin = origin.map(|o| format!(" ({o})")).unwrap_or_default();
            Error::BadInput(format!(
                "unknown env {name:?}{origin}: {} knows {} (add [env.{name}] there to create it)",
                self.path.display(),
                if known.is_empty() {
                    "no envs".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The protection level of an env: the default for its name, raised (never lowered) by an
    /// explicit `protection`. The database's stamp can raise it further.
    pub fn protection(&self, name: &str) -> Protection {
        let by_name = default_protection(name);
        self.envs
            .get(name)
            .and_then(|e| e.protection)
            .map_or(by_name, |explicit| explicit.max(by_name))
    }

    /// The instance an env lives on, with its id.
    pub fn env_instance(&self, name: &str) -> Result<Option<(&str, &InstanceConfig)>> {
        let env = self.env(name)?;
        Ok(env.instance.as_deref().map(|id| (id, &self.instances[id])))
    }

    /// The secret reference of an env: explicit, or the local store's default for local instances.
    pub fn env_secret(&self, name: &str) -> Result<Option<SecretRef>> {
        let env = self.env(name)?;
        if let Some(text) = &env.secret {
            return SecretRef::parse(text).map(Some);
        }
        Ok(match self.env_instance(name)? {
            Some((id, instance)) if instance.provider == crate::contract::Provider::Local => {
                Some(SecretRef {
                    source: crate::contract::SecretSource::Local,
                    reference: format!("{id}/{}", env.user),
                })
            }
            _ => None,
        })
    }

    /// Resolves a path written in the config relative to the config file's directory.
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        dir.join(written)
    }
}

/// The server an env's role lives on: its instance, else its host and port.
fn server_of(env: &EnvConfig) -> String {
    match &env.instance {
        Some(id) => format!("instance {id}"),
        None => format!(
            "{}:{}",
            env.host.as_deref().unwrap_or_default(),
            env.port.unwrap_or(5432)
        ),
    }
}

/// The line of `user` in `[env.NAME]` (read again with spans, only for an error message).
fn user_line(text: &str, env: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Lines {
        #[serde(default)]
        env: BTreeMap<String, UserAt>,
    }
    #[derive(Deserialize)]
    struct UserAt {
        user: toml::Spanned<String>,
    }
    let lines: Lines = toml::from_str(text).ok()?;
    let start = lines.env.get(env)?.user.span().start;
    Some(text[..start].matches('\n').count() + 1)
}

/// Parses a TOML file of ours; an error names `what` (e.g. `config /p/dbtools.toml`) and the line.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|span| {
            let line = text[..span.start].matches('\n').count() + 1;
            // The key the value belongs to, when the line starts with one (inside a multi-line
            // value it does not, and nothing of the value is shown: it could hold a password).
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map(|(key, _)| key.trim())
                .filter(|key| {
                    !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                });
            match key {
                Some(key) => format!("line {line}, key {key}: "),
                None => format!("line {line}: "),
            }
        });
        Error::BadInput(format!(
            "{what}: {}{}",
            at.unwrap_or_default(),
            without_string_values(e.message())
        ))
    })
}

/// A TOML error message without the text of a string value it quotes (`invalid type: string
/// "postgres://u:pw@h", expected …` → `invalid type: string, expected …`): a value in the
/// wrong place could be a password.
fn without_string_values(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at + "string".len()]);
        let value = &rest[at + "string \"".len()..];
        let mut escaped = false;
        let end = value.char_indices().find(|&(_, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        });
        rest = match end {
            Some((i, _)) => &value[i + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// The protection an env has when the config says none: by name.
pub fn default_protection(name: &str) -> Protection {
    match name {
        "dev" => Protection::Open,
        "prod" | "production" => Protection::Locked,
        _ => Protection::Confirm,
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

fn find_upward() -> Result<PathBuf> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::BadInput(format!("cannot read the current directory: {e}")))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(CONFIG_FILE);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::BadInput(format!(
        "no {CONFIG_FILE} in {} or its parents: create one (see README \"Config\"), pass --config FILE or set {}",
        cwd.display(),
        envvars::DBTOOLS_CONFIG
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_shows_the_key_never_a_value() {
        let error = parse_toml::<toml::Value>("a = 1\na = 2\n", "config x").unwrap_err();
        assert!(
            error.message().starts_with("config x: line 2"),
            "{}",
            error.message()
        );
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Port {
            port: u16,
        }
        let error =
            parse_toml::<Port>("port = \"postgres://u:s3cret@h\"\n", "config x").unwrap_err();
        let message = error.message();
        assert!(
            message.contains("line 1, key port: invalid type: string, expected"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
        assert_eq!(
            without_string_values(r#"invalid type: string "a\"b", expected u16"#),
            "invalid type: string, expected u16"
        );
        // Inside a multi-line value the line has no key of its own: only the line is named.
        let error = parse_toml::<Port>("port = [\n  \"x=postgres://u:s3cret@h\",\n]\n", "config x")
            .unwrap_err();
        assert!(!error.message().contains("s3cret"), "{}", error.message());
    }

    const SAMPLE: &str = r#"
app = "combine"
[env.dev]
instance = "combine-dev"
database = "combine_dev"
user = "combine_app"
[env.test]
instance = "combine-dev"
database = "combine_test"
user = "combine_test_app"
[env.prod]
host = "db.example.com"
database = "combine"
user = "combine_app"
secret = "aws-sm:combine/prod"
[instance.combine-dev]
provider = "local"
"#;

    #[test]
    fn protection_defaults_by_name_and_secrets_default_to_the_local_store() {
        let config = Config::parse(SAMPLE, Path::new("/p/dbtools.toml")).unwrap();
        assert_eq!(config.protection("dev"), Protection::Open);
        assert_eq!(config.protection("test"), Protection::Confirm);
        assert_eq!(config.protection("prod"), Protection::Locked);
        assert_eq!(
            config.env_secret("dev").unwrap().unwrap().to_string(),
            "local:combine-dev/combine_app"
        );
        assert_eq!(
            config.env_secret("prod").unwrap().unwrap().source,
            crate::contract::SecretSource::AwsSm
        );
    }

    #[test]
    fn an_env_s_migration_settings_are_read_and_checked() {
        let text =
            format!("{SAMPLE}[env.test.migrations]\nlock_timeout = \"2s\"\nlock_retries = 1\n");
        let config = Config::parse(&text, Path::new("/p/dbtools.toml")).unwrap();
        let settings = config.envs["test"].migrations;
        assert_eq!(
            settings.lock_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            (settings.statement_timeout, settings.lock_retries),
            (None, Some(1))
        );
        assert_eq!(config.envs["dev"].migrations.lock_timeout, None);
        for (bad, needle) in [
            ("lock_timeout = \"2 seconds\"", "not a duration"),
            ("lock_timout = \"2s\"", "lock_timout"),
        ] {
            let text = format!("{SAMPLE}[env.test.migrations]\n{bad}\n");
            let error = Config::parse(&text, Path::new("/p/dbtools.toml")).unwrap_err();
            assert!(error.message().contains(needle), "{}", error.message());
        }
    }

    #[test]
    fn unknown_env_lists_the_known_ones() {
        let config = Config::parse(SAMPLE, Path::new("/p/dbtools.toml")).unwrap();
        let err = config.env("staging").unwrap_err().to_string();
        assert!(err.contains("unknown env \"staging\""), "{err}");
        assert!(err.contains("dev, prod, test"), "{err}");
    }

    #[test]
    fn bad_names_and_dangling_instances_are_config_errors() {
        let bad_db = SAMPLE.replace("combine_test", "combine test; drop");
        assert!(Config::parse(&bad_db, Path::new("/p/x.toml"))
            .unwrap_err()
            .to_string()
            .contains("database"));
        let dangling = SAMPLE.replace(
            "instance = \"combine-dev\"\ndatabase = \"combine_test\"",
            "instance = \"nope\"\ndatabase = \"combine_test\"",
        );
        assert!(Config::parse(&dangling, Path::new("/p/x.toml"))
            .unwrap_err()
            .to_string()
            .contains("nope"));
        let typo = SAMPLE.replace(
            "user = \"combine_app\"\n[env.test]",
            "usr = \"x\"\nuser = \"combine_app\"\n[env.test]",
        );
        assert!(Config::parse(&typo, Path::new("/p/x.toml"))
            .unwrap_err()
            .to_string()
            .contains("usr"));
    }

    #[test]
    fn envs_of_different_protection_cannot_share_a_role_on_one_server() {
        let shared = SAMPLE.replace("combine_test_app", "combine_app");
        let err = Config::parse(&shared, Path::new("/p/dbtools.toml")).unwrap_err();
        assert_eq!(err.status(), crate::ExitStatus::BadInput);
        assert_eq!(
            err.to_string(),
            "config /p/dbtools.toml: envs dev (open) and test (confirm) share role \"combine_app\" on instance combine-dev (lines 6 and 10): the role's privileges reach both databases, so dev could drop test's; give each a user of its own"
        );
        // The same protection may share a role; so may envs on different servers. (A config
        // can raise an env's level, never lower it below its name's: dev raised to confirm.)
        let same = shared.replace("[env.dev]", "[env.dev]\nprotection = \"confirm\"");
        Config::parse(&same, Path::new("/p/x.toml")).unwrap();
        // Without an instance: the same host and (default) port is one server.
        let hosts = "[env.dev]\nhost = \"db\"\ndatabase = \"a\"\nuser = \"app\"\n\
                     [env.prod]\nhost = \"db\"\nport = 5432\ndatabase = \"b\"\nuser = \"app\"\n";
        let err = Config::parse(hosts, Path::new("/p/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "envs dev (open) and prod (locked) share role \"app\" on db:5432 (lines 4 and 9)"
            ) && err.contains("so dev could drop prod's"),
            "{err}"
        );
        // Listed the other way round, the looser env is still the one that could drop.
        let reversed = hosts.replace("[env.dev]", "[env.zed]\nprotection = \"open\"");
        let err = Config::parse(&reversed, Path::new("/p/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("so zed could drop prod's"), "{err}");
        Config::parse(
            &hosts.replace("port = 5432", "port = 5433"),
            Path::new("/p/x.toml"),
        )
        .unwrap();
    }
}
