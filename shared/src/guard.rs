//! The guard: what every tool asks before it writes, and what `dbguard` exposes to scripts.
//!
//! Three checks, each refusing with exit 3 and a message that says how to proceed:
//! 1. **Protection** (config, per env): destructive actions on `confirm` envs need the env name
//!    typed exactly (`--confirm test` or `DBGUARD_CONFIRM=test`); on `locked` envs also
//!    `--break-glass "<reason>"`. Never a prompt: stdin carries JSON.
//! 2. **The env stamp** (inside the database, `dbtools.env_stamp`): writes and destructive actions
//!    go only to a database stamped with the profile's env. A DEV profile whose host or database
//!    really is TEST's is refused, naming both; an unstamped database refuses writes until
//!    `dbguard stamp`. The check is one SQL statement a tool puts first in the message it sends
//!    anyway, so it costs no round trip of its own.
//! 3. **Audit**: every destructive action and every refusal is appended to this machine's log
//!    (`<state>/audit.log`, JSON lines) and, when the database answers, to `dbtools.audit`.

use crate::config::Config;
use crate::contract::{ActionClass, AuditEntry, Profile, Protection, Stamp};
use crate::exit::{Error, Result};
use crate::names::quote_literal;
use crate::{identity, pg};
use postgres::SimpleQueryMessage;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The SQLSTATE our stamp assertion raises (class "DB", not used by PostgreSQL).
pub const STAMP_SQLSTATE: &str = "DBG01";

/// Every action name the guard knows, with its class. Tools use these names in messages and
/// the audit; `dbguard check --action` accepts them and the class names themselves.
pub const ACTIONS: &[(&str, ActionClass)] = &[
    ("read", ActionClass::Read),
    ("status", ActionClass::Read),
    ("check", ActionClass::Read),
    ("dump", ActionClass::Read),
    ("write", ActionClass::Write),
    ("migrate", ActionClass::Write),
    ("accept", ActionClass::Write),
    ("migrate-verify", ActionClass::Write),
    ("seed", ActionClass::Write),
    ("seed-verify", ActionClass::Write),
    ("stamp", ActionClass::Write),
    ("destructive", ActionClass::Destructive),
    ("migrate-down", ActionClass::Destructive),
    ("seed-reset", ActionClass::Destructive),
    ("reset", ActionClass::Destructive),
    ("drop", ActionClass::Destructive),
    ("truncate", ActionClass::Destructive),
    ("delete", ActionClass::Destructive),
    ("restore", ActionClass::Destructive),
    ("destroy", ActionClass::Destructive),
    ("access", ActionClass::Destructive),
    ("restamp", ActionClass::Destructive),
];

/// The class of an action name, or an error listing the known names.
pub fn classify(action: &str) -> Result<ActionClass> {
    ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, class)| *class)
        .ok_or_else(|| {
            let known: Vec<&str> = ACTIONS.iter().map(|(name, _)| *name).collect();
            Error::BadInput(format!(
                "unknown action {action:?}: use one of {}",
                known.join(", ")
            ))
        })
}

/// What the person acting typed to get past a protection level.
#[derive(Debug, Clone, Default)]
pub struct Confirmation {
    pub confirm: Option<String>,
    pub break_glass: Option<String>,
}

/// Checks the protection level: `None` when the action may go ahead, else why not. `token` is
/// what must be typed after `--confirm`: the env name, or for an AWS instance its id.
pub fn protection_refusal(
    env: &str,
    token: &str,
    protection: Protection,
    action: &str,
    class: ActionClass,
    confirmation: &Confirmation,
) -> Option<String> {
    if class != ActionClass::Destructive || protection == Protection::Open {
        return None;
    }
    let level = protection.as_str();
    match confirmation.confirm.as_deref() {
        Some(typed) if typed == token => {}
        Some(typed) => {
            let what = if token == env { "the env name" } else { "the instance id" };
            return Some(format!(
                "{action} on env {env} ({level}) refused: the confirmation {typed:?} is not {what}; type --confirm {token} exactly"
            ));
        }
        None => {
            return Some(format!(
                "{action} on env {env} ({level}) refused: it is destructive; add --confirm {token} (or set DBGUARD_CONFIRM={token}) to proceed"
            ))
        }
    }
    let reason = confirmation.break_glass.as_deref().map(str::trim);
    if protection == Protection::Locked && reason.is_none_or(str::is_empty) {
        return Some(format!(
            "{action} on env {env} (locked) refused: add --break-glass \"<reason>\" with --confirm {token}; the reason goes to the audit"
        ));
    }
    None
}

/// One SQL statement that fails with [`STAMP_SQLSTATE`] unless the database is stamped with
/// `env`; the error's detail is the stamped env ('' when unstamped). Sent first in a message,
/// it stops everything after it, so nothing is written to the wrong database.
pub fn stamp_assertion(env: &str) -> String {
    format!(
        "DO $dbtools_guard$ DECLARE stamped text; BEGIN \
         IF to_regclass('dbtools.env_stamp') IS NOT NULL THEN \
         EXECUTE 'SELECT env FROM dbtools.env_stamp' INTO stamped; END IF; \
         IF stamped IS DISTINCT FROM {env} THEN RAISE EXCEPTION USING ERRCODE = '{STAMP_SQLSTATE}', \
         MESSAGE = 'dbtools: env stamp does not match', DETAIL = coalesce(stamped, ''); END IF; \
         END $dbtools_guard$;\n",
        env = quote_literal(env)
    )
}

/// The database a profile points at, for messages and the audit.
pub fn target(profile: &Profile) -> String {
    let conn = &profile.conn;
    format!("{}:{}/{}", conn.host, conn.port, conn.dbname)
}

/// Why a write to env `env`'s database `target` is refused, given the env it is stamped with.
pub fn stamp_mismatch(env: &str, target: &str, stamped: Option<&str>) -> String {
    match stamped {
        None | Some("") => format!(
            "database {target} has no env stamp, so writes are refused: if it really is {env}'s database, run `dbguard stamp {env}` (or `rdsprov apply`, which stamps what it creates)"
        ),
        Some(stamped) => format!(
            "the profile says env {env}, but database {target} is stamped {stamped}: refusing to write to {stamped}'s database as {env}; check host, port and database of env {env} in dbtools.toml"
        ),
    }
}

/// The refusal a failed stamp assertion means, or `None` for any other error.
pub fn stamp_refusal_message(env: &str, target: &str, error: &postgres::Error) -> Option<String> {
    let db = error.as_db_error()?;
    if db.code().code() != STAMP_SQLSTATE {
        return None;
    }
    Some(stamp_mismatch(env, target, db.detail()))
}

const READ_STAMP: &str = "SELECT CASE WHEN to_regclass('dbtools.env_stamp') IS NULL THEN NULL ELSE \
    (xpath('/row/j/text()', query_to_xml('SELECT json_build_object(''env'', env, ''stamped_by'', stamped_by, \
    ''stamped_at'', to_char(stamped_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"''), ''tool'', tool)::text AS j \
    FROM dbtools.env_stamp', false, true, '')))[1]::text END";

/// Reads the stamp in one round trip, also when the `dbtools` schema does not exist.
pub fn read_stamp(client: &mut pg::Client) -> Result<Option<Stamp>> {
    let messages = client
        .simple_query(READ_STAMP)
        .map_err(|e| pg::statement_error("reading the env stamp", &e))?;
    let Some(xml_text) = first_value(&messages) else {
        return Ok(None);
    };
    serde_json::from_str(&unescape_xml(&xml_text))
        .map(Some)
        .map_err(|e| Error::Failed(format!("the env stamp cannot be read: {e}")))
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

fn unescape_xml(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `dbtools` schema: the stamp (one row), the audit and `dbseed`'s record, readable (and the
/// audit appendable, the seed record writable) by every role of the database, whose CONNECT is
/// what limits who that is.
const SCHEMA_SQL: &str = "CREATE SCHEMA IF NOT EXISTS dbtools;
CREATE TABLE IF NOT EXISTS dbtools.env_stamp (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  env text NOT NULL, app text, stamped_by text NOT NULL,
  stamped_at timestamptz NOT NULL DEFAULT now(), tool text NOT NULL);
CREATE TABLE IF NOT EXISTS dbtools.audit (
  id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), by text NOT NULL,
  tool text NOT NULL, action text NOT NULL, class text NOT NULL, env text NOT NULL,
  outcome text NOT NULL, reason text, target text NOT NULL);
CREATE TABLE IF NOT EXISTS dbtools.seeds (
  file text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by text, rows bigint, tables text[] NOT NULL DEFAULT '{}');
GRANT USAGE ON SCHEMA dbtools TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbtools.seeds TO PUBLIC;
GRANT SELECT ON dbtools.env_stamp TO PUBLIC;
GRANT SELECT, INSERT ON dbtools.audit TO PUBLIC;
GRANT USAGE ON SEQUENCE dbtools.audit_id_seq TO PUBLIC;
";

/// Stamps the database with `env` in one transaction. `expected` is the stamp read before
/// (None: unstamped); if another machine changed it meanwhile nothing is written.
pub fn write_stamp(
    client: &mut pg::Client,
    env: &str,
    app: Option<&str>,
    tool: &str,
    expected: Option<&str>,
) -> Result<()> {
    let by = identity::user_at_host();
    let condition = match expected {
        Some(previous) => format!("s.env = {}", quote_literal(previous)),
        None => "false".to_string(),
    };
    let sql = format!(
        "BEGIN;\n{SCHEMA_SQL}INSERT INTO dbtools.env_stamp AS s (env, app, stamped_by, tool) VALUES ({}, {}, {}, {}) \
         ON CONFLICT (singleton) DO UPDATE SET env = excluded.env, app = excluded.app, stamped_by = excluded.stamped_by, \
         stamped_at = now(), tool = excluded.tool WHERE {condition};\n\
         SELECT count(*) FROM dbtools.env_stamp WHERE env = {};\nCOMMIT;",
        quote_literal(env),
        app.map(quote_literal).unwrap_or_else(|| "NULL".into()),
        quote_literal(&by),
        quote_literal(tool),
        quote_literal(env),
    );
    let messages = client.simple_query(&sql).map_err(|e| {
        let _ = client.simple_query("ROLLBACK");
        match e.as_db_error().map(|d| d.code().code()) {
            Some("42501") => Error::Failed(format!(
                "cannot stamp: this role may not create the dbtools schema ({}); stamp as the database owner",
                e.as_db_error().map(|d| d.message()).unwrap_or_default()
            )),
            _ => pg::statement_error("stamping the database", &e),
        }
    })?;
    if first_value(&messages).as_deref() != Some("1") {
        return Err(Error::Refused(
            "the stamp changed while this ran (another machine stamped the database): read it again with `dbguard check`".into(),
        ));
    }
    Ok(())
}

/// Where this machine's audit log lives: the project's state dir, else the user's.
pub fn audit_log_path(config: Option<&Config>) -> PathBuf {
    if let Some(config) = config {
        return config.state.root.join("audit.log");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .or_else(|| std::env::var_os("USERPROFILE"))
                .map(|home| PathBuf::from(home).join(".local").join("state"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("dbtools").join("audit.log")
}

/// Appends one entry to the local log (created 0600). Never rewrites: O_APPEND only.
pub fn append_local(log: &Path, entry: &AuditEntry) -> Result<()> {
    let unwritable = |e: std::io::Error| {
        Error::Failed(format!(
            "cannot write the audit log {}: {e}; make it writable (or set DBTOOLS_STATE_DIR)",
            log.display()
        ))
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(unwritable)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(log).map_err(unwritable)?;
    let line = serde_json::to_string(entry)
        .map_err(|e| Error::Failed(format!("cannot encode an audit entry: {e}")))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(unwritable)
}

/// Reads the local log; a line that does not parse is reported with its number.
pub fn read_local(log: &Path) -> Result<Vec<AuditEntry>> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Failed(format!(
                "cannot read the audit log {}: {e}",
                log.display()
            )))
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::Failed(format!(
                    "audit log {} line {}: {e}",
                    log.display(),
                    number + 1
                ))
            })
        })
        .collect()
}

/// Appends an entry to `dbtools.audit` when the table exists; best effort by design (the local
/// log is the record that always exists), so a failure is returned for a note, not raised.
pub fn append_database(client: &mut pg::Client, entry: &AuditEntry) -> Result<()> {
    let insert = format!(
        "INSERT INTO dbtools.audit (at, by, tool, action, class, env, outcome, reason, target) VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
        quote_literal(&entry.at),
        quote_literal(&entry.by),
        quote_literal(&entry.tool),
        quote_literal(&entry.action),
        quote_literal(entry.class.as_str()),
        quote_literal(&entry.env),
        quote_literal(&entry.outcome),
        entry.reason.as_deref().map(quote_literal).unwrap_or_else(|| "NULL".into()),
        quote_literal(&entry.target),
    );
    let sql = format!(
        "DO $dbtools_audit$ BEGIN IF to_regclass('dbtools.audit') IS NOT NULL THEN EXECUTE {}; END IF; END $dbtools_audit$",
        quote_literal(&insert)
    );
    client
        .simple_query(&sql)
        .map(|_| ())
        .map_err(|e| pg::statement_error("recording in dbtools.audit", &e))
}

/// Reads `dbtools.audit`, newest last.
pub fn read_database(client: &mut pg::Client, limit: usize) -> Result<Vec<AuditEntry>> {
    let sql = format!(
        "SELECT CASE WHEN to_regclass('dbtools.audit') IS NULL THEN '[]' ELSE \
         (xpath('/row/j/text()', query_to_xml('SELECT coalesce(json_agg(a ORDER BY id), ''[]'')::text AS j FROM \
         (SELECT id, to_char(at AT TIME ZONE ''UTC'', ''YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'') AS at, by, tool, action, class, env, outcome, reason, target \
         FROM dbtools.audit ORDER BY id DESC LIMIT {limit}) a', false, true, '')))[1]::text END"
    );
    let messages = client
        .simple_query(&sql)
        .map_err(|e| pg::statement_error("reading dbtools.audit", &e))?;
    let text = first_value(&messages).unwrap_or_else(|| "[]".into());
    serde_json::from_str(&unescape_xml(&text))
        .map_err(|e| Error::Failed(format!("dbtools.audit cannot be read: {e}")))
}

/// The guard for one action of one tool on one env's database (or instance).
pub struct Guard<'a> {
    pub tool: &'a str,
    pub action: &'a str,
    pub class: ActionClass,
    pub env: String,
    pub protection: Protection,
    /// What the action is aimed at: `host:port/database`, or an instance.
    pub target: String,
    /// What `--confirm` must say when it is not the env name (an AWS instance's id).
    token: Option<String>,
    /// How to reach the database to record a refusal there (none for instance actions).
    conn: Option<crate::contract::Conn>,
    log: PathBuf,
}

impl<'a> Guard<'a> {
    /// The guard for an action on a profile's database. `config` locates the audit log (the
    /// project's state dir, else the user's).
    pub fn new(
        tool: &'a str,
        action: &'a str,
        profile: &Profile,
        config: Option<&Config>,
    ) -> Result<Guard<'a>> {
        Ok(Guard {
            tool,
            action,
            class: classify(action)?,
            env: profile.env.clone(),
            protection: profile.protection,
            target: target(profile),
            token: None,
            conn: Some(profile.conn.clone()),
            log: audit_log_path(config),
        })
    }

    /// The guard for a tool that knows only `--config`: finds the config itself.
    pub fn for_project(
        tool: &'a str,
        action: &'a str,
        profile: &Profile,
        config_path: Option<&Path>,
    ) -> Result<Guard<'a>> {
        let config = Config::find(config_path).ok().flatten();
        Guard::new(tool, action, profile, config.as_ref())
    }

    /// The guard for an action on a whole instance (destroy, reset), judged for `env`.
    pub fn for_instance(
        tool: &'a str,
        action: &'a str,
        env: &str,
        protection: Protection,
        instance: &str,
        config: Option<&Config>,
    ) -> Result<Guard<'a>> {
        Ok(Guard {
            tool,
            action,
            class: classify(action)?,
            env: env.to_string(),
            protection,
            target: format!("instance {instance}"),
            token: None,
            conn: None,
            log: audit_log_path(config),
        })
    }

    /// Makes `--confirm` take `token` (an instance id) instead of the env name.
    pub fn confirmed_by(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    fn entry(&self, outcome: &str, reason: Option<String>) -> AuditEntry {
        AuditEntry {
            at: crate::time::rfc3339_now(),
            by: identity::user_at_host(),
            tool: self.tool.to_string(),
            action: self.action.to_string(),
            class: self.class,
            env: self.env.clone(),
            outcome: outcome.to_string(),
            reason,
            target: self.target.clone(),
        }
    }

    /// Records a refusal (local log; the database when it answers) and returns it as the error.
    pub fn refuse(&self, client: Option<&mut pg::Client>, reason: String) -> Error {
        let entry = self.entry("refused", Some(reason.clone()));
        if let Err(e) = append_local(&self.log, &entry) {
            crate::cli::note(self.tool, e.message());
        }
        match client {
            Some(client) => {
                let _ = append_database(client, &entry);
            }
            None => {
                // The refusal happened before any connection; one short attempt records it in
                // the database too, and an unreachable database changes nothing.
                if let Some(conn) = &self.conn {
                    if let Ok(mut client) = pg::connect(conn, self.tool, Duration::from_secs(3)) {
                        let _ = append_database(&mut client, &entry);
                    }
                }
            }
        }
        Error::Refused(reason)
    }

    /// The protection check; a refusal is recorded and returned.
    pub fn check_protection(&self, confirmation: &Confirmation) -> Result<()> {
        match protection_refusal(
            &self.env,
            self.token.as_deref().unwrap_or(&self.env),
            self.protection,
            self.action,
            self.class,
            confirmation,
        ) {
            None => Ok(()),
            Some(reason) => Err(self.refuse(None, reason)),
        }
    }

    /// The statement to send first (writes and destructive actions), see [`stamp_assertion`].
    pub fn stamp_assertion(&self) -> Option<String> {
        (self.class != ActionClass::Read).then(|| stamp_assertion(&self.env))
    }

    /// Turns an error of a message that began with the stamp assertion into a recorded
    /// refusal; any other error passes through unchanged as `None`.
    pub fn refusal_for(&self, client: &mut pg::Client, error: &postgres::Error) -> Option<Error> {
        let reason = stamp_refusal_message(&self.env, &self.target, error)?;
        Some(self.refuse(Some(client), reason))
    }

    /// The stamp check on its own (one round trip), for tools whose first message cannot hold it.
    pub fn check_stamp(&self, client: &mut pg::Client) -> Result<()> {
        let Some(sql) = self.stamp_assertion() else {
            return Ok(());
        };
        match client.simple_query(&sql) {
            Ok(_) => Ok(()),
            Err(e) => Err(self
                .refusal_for(client, &e)
                .unwrap_or_else(|| pg::statement_error("checking the env stamp", &e))),
        }
    }

    /// Records a write that runs after a manual snapshot was taken for it (locally, which must
    /// succeed, and in the database): where to restore from if it goes wrong.
    pub fn record_with_snapshot(&self, client: &mut pg::Client, snapshot: &str) -> Result<()> {
        let entry = self.entry(
            "allowed",
            Some(format!(
                "after snapshot {snapshot} (restore from it if this goes wrong)"
            )),
        );
        append_local(&self.log, &entry)?;
        if let Err(e) = append_database(client, &entry) {
            crate::cli::note(
                self.tool,
                format!(
                    "the audit entry went to the local log only: {}",
                    e.message()
                ),
            );
        }
        Ok(())
    }

    /// Records a destructive action that is about to run (locally, which must succeed, and in
    /// the database when given). Reads and writes are not recorded.
    pub fn record_allowed(
        &self,
        client: Option<&mut pg::Client>,
        confirmation: &Confirmation,
    ) -> Result<()> {
        if self.class != ActionClass::Destructive {
            return Ok(());
        }
        let entry = self.entry("allowed", confirmation.break_glass.clone());
        append_local(&self.log, &entry)?;
        if let Some(client) = client {
            if let Err(e) = append_database(client, &entry) {
                crate::cli::note(
                    self.tool,
                    format!("audit: recorded locally only ({})", e.message()),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(
        protection: Protection,
        class: ActionClass,
        confirm: Option<&str>,
        break_glass: Option<&str>,
    ) -> Option<String> {
        protection_refusal(
            "test",
            "test",
            protection,
            "drop",
            class,
            &Confirmation {
                confirm: confirm.map(str::to_string),
                break_glass: break_glass.map(str::to_string),
            },
        )
    }

    #[test]
    fn only_destructive_actions_need_confirmation() {
        assert!(refusal(Protection::Locked, ActionClass::Write, None, None).is_none());
        assert!(refusal(Protection::Open, ActionClass::Destructive, None, None).is_none());
        assert!(refusal(Protection::Confirm, ActionClass::Destructive, None, None).is_some());
        assert!(refusal(
            Protection::Confirm,
            ActionClass::Destructive,
            Some("TEST"),
            None
        )
        .unwrap()
        .contains("type --confirm test exactly"));
        assert!(refusal(
            Protection::Confirm,
            ActionClass::Destructive,
            Some("test"),
            None
        )
        .is_none());
        assert!(refusal(
            Protection::Locked,
            ActionClass::Destructive,
            Some("test"),
            None
        )
        .is_some());
        assert!(refusal(
            Protection::Locked,
            ActionClass::Destructive,
            Some("test"),
            Some("  ")
        )
        .is_some());
        assert!(refusal(
            Protection::Locked,
            ActionClass::Destructive,
            Some("test"),
            Some("incident 42")
        )
        .is_none());
    }

    #[test]
    fn actions_have_classes_and_unknown_ones_are_named() {
        assert_eq!(classify("migrate-down").unwrap(), ActionClass::Destructive);
        assert_eq!(classify("seed").unwrap(), ActionClass::Write);
        assert!(classify("nuke")
            .unwrap_err()
            .to_string()
            .contains("use one of read,"));
    }

    #[test]
    fn xml_text_is_unescaped_once() {
        assert_eq!(unescape_xml("a&lt;b&amp;amp;"), "a<b&amp;");
    }
}
