//! The guard: what every tool asks before it writes, and what `dbguard` exposes to scripts.
//! The database decides: what a database is comes from its stamp (`crate::stamp`), and what a
//! config line or a piped profile says can only make a check stricter.
//!
//! 1. **Protection** is the strictest of the stamp's, the config's for the env, the default by
//!    env name and a piped profile's ([`floor`], then [`Guard::admit`]). Destructive actions on
//!    `confirm` envs need the env name typed exactly (`--confirm test` or `DBGUARD_CONFIRM=test`);
//!    on `locked` envs also `--break-glass "<reason>"`. Never a prompt: stdin carries JSON.
//! 2. **The stamp assertion**: writes and destructive actions go only to a database stamped with
//!    the profile's env, that is not a copy of another, and — destructive — whose own stamp's
//!    protection what was typed satisfies. It is one SQL statement a tool puts first in the
//!    message it sends anyway, so it costs no round trip of its own.
//! 3. **Audit**: every destructive action and every refusal is appended to this machine's log
//!    (`<state>/audit.log`, JSON lines) and, when the database answers, to `dbtools.audit`
//!    through `dbtools.append_audit`.

use crate::config::Config;
use crate::contract::{ActionClass, AuditEntry, AuditOutcome, Profile, Protection, Stamp};
use crate::exit::{Error, Result};
use crate::names::quote_literal;
use crate::stamp::{self, Destructive, Failed};
use crate::{identity, pg};
use postgres::SimpleQueryMessage;
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every action name the guard knows, with its class. Tools use these names in messages and
/// the audit; `dbguard check --action` accepts them and the class names themselves.
pub(crate) const ACTIONS: &[(&str, ActionClass)] = &[
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
    ("create", ActionClass::Write),
    ("load", ActionClass::Write),
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
    ("adopt", ActionClass::Destructive),
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

impl Confirmation {
    /// Whether `--confirm` names `token`: typed exactly, alone or in a comma-separated list (an
    /// action on an instance that holds several protected envs confirms each).
    pub fn names(&self, token: &str) -> bool {
        self.confirm
            .as_deref()
            .is_some_and(|typed| typed.split(',').any(|t| t.trim() == token))
    }
}

/// Why an action on a whole instance is refused, given every env whose data is on it with its
/// level (the strictest known for each): each env of confirm or locked level must be named in
/// `--confirm`, and any locked one needs `--break-glass` too. `None`: it may go ahead.
pub fn instance_refusal(
    action: &str,
    instance: &str,
    at_risk: &[(String, Protection)],
    confirmation: &Confirmation,
) -> Option<String> {
    let mut envs: Vec<(String, Protection)> = Vec::new();
    for (env, level) in at_risk {
        match envs.iter_mut().find(|(known, _)| known == env) {
            Some((_, known)) => *known = (*known).max(*level),
            None => envs.push((env.clone(), *level)),
        }
    }
    let protected: Vec<&(String, Protection)> = envs
        .iter()
        .filter(|(_, level)| *level != Protection::Open)
        .collect();
    let holds = protected
        .iter()
        .map(|(env, level)| format!("{env} ({})", level.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let all = protected
        .iter()
        .map(|(env, _)| env.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let missing: Vec<&str> = protected
        .iter()
        .filter(|(env, _)| !confirmation.names(env))
        .map(|(env, _)| env.as_str())
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "{action} of instance {instance} refused: it holds the data of env {holds}, whatever env name reached it; add --confirm {all} (not confirmed: {})",
            missing.join(", ")
        ));
    }
    let locked = protected
        .iter()
        .any(|(_, level)| *level == Protection::Locked);
    let reason = confirmation.break_glass.as_deref().map(str::trim);
    if locked && reason.is_none_or(str::is_empty) {
        return Some(format!(
            "{action} of instance {instance} refused: it holds a locked env ({holds}); add --break-glass \"<reason>\" with --confirm {all}; the reason goes to the audit"
        ));
    }
    None
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
        Some(_) if confirmation.names(token) => {}
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

/// The database a profile points at, for messages and the audit.
pub fn target(profile: &Profile) -> String {
    let conn = &profile.conn;
    format!("{}:{}/{}", conn.host, conn.port, conn.dbname)
}

/// Why a write to env `env`'s database `target` is refused, given the stamp it carries.
pub(crate) fn stamp_mismatch(env: &str, target: &str, stamped: Option<&Stamp>) -> String {
    match stamped {
        None => format!(
            "database {target} has no env stamp, so writes are refused: if it really is {env}'s database, run `dbguard stamp {env}` (or `rdsprov apply`, which stamps what it creates)"
        ),
        Some(stamp) => format!(
            "the profile says env {env}, but database {target} is stamped {stamped}: refusing to write to {stamped}'s database as {env} (stamped {protection} by {by} at {at}); check host, port and database of env {env} in dbtools.toml (a copy of {stamped}'s database made for {env} — a restored snapshot, a loaded dump — is taken over with `dbguard adopt {env}`)",
            stamped = stamp.env,
            protection = stamp.protection.as_str(),
            by = stamp.stamped_by,
            at = stamp.stamped_at,
        ),
    }
}

/// Why a write to a copy is refused: the stamp was written in another database.
pub fn copy_refusal(env: &str, target: &str, stamp: &Stamp) -> String {
    let origin = stamp
        .identity
        .as_ref()
        .map(|i| i.to_string())
        .unwrap_or_else(|| "another database".into());
    format!(
        "database {target} is a copy: its {env} stamp was written in {origin}, not here (a dump loaded elsewhere, a template clone, a restored snapshot), so nothing is written to it until the env that owns it now adopts it: `dbguard adopt <env>` (with that env's --confirm)"
    )
}

/// Reads the stamp in one round trip, also when the `dbtools` schema does not exist.
pub fn read_stamp(client: &mut pg::Client) -> Result<Option<Stamp>> {
    Ok(stamp::read(client)?.stamp)
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
pub(crate) fn append_local(log: &Path, entry: &AuditEntry) -> Result<()> {
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

/// Appends an entry to `dbtools.audit` through `dbtools.append_audit` (the one way an app role
/// may write there), or straight into an older schema that has no such function; best effort by
/// design (the local log is the record that always exists), so a failure is returned for a
/// note, not raised.
pub(crate) fn append_database(client: &mut pg::Client, entry: &AuditEntry) -> Result<()> {
    let values = [
        quote_literal(&entry.at),
        quote_literal(&entry.by),
        quote_literal(&entry.tool),
        quote_literal(&entry.action),
        quote_literal(entry.class.as_str()),
        quote_literal(&entry.env),
        quote_literal(entry.outcome.as_str()),
        entry
            .reason
            .as_deref()
            .map(quote_literal)
            .unwrap_or_else(|| "NULL".into()),
        quote_literal(&entry.target),
    ]
    .join(", ");
    let call = format!("SELECT dbtools.append_audit({values})");
    let insert = format!(
        "INSERT INTO dbtools.audit (at, by, tool, action, class, env, outcome, reason, target) VALUES ({values})"
    );
    let sql = format!(
        "DO $dbtools_audit$ BEGIN \
         IF pg_catalog.to_regprocedure('dbtools.append_audit(timestamptz, text, text, text, text, text, text, text, text)') IS NOT NULL THEN EXECUTE {}; \
         ELSIF pg_catalog.to_regclass('dbtools.audit') IS NOT NULL THEN EXECUTE {}; END IF; END $dbtools_audit$",
        quote_literal(&call),
        quote_literal(&insert)
    );
    client
        .simple_query(&sql)
        .map(|_| ())
        .map_err(|e| pg::statement_error("recording in dbtools.audit", &e))
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
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
    serde_json::from_str(&stamp::unescape_xml(&text))
        .map_err(|e| Error::Failed(format!("dbtools.audit cannot be read: {e}")))
}

/// The guard for one action of one tool on one env's database (or instance).
pub struct Guard<'a> {
    pub tool: &'a str,
    pub action: &'a str,
    pub class: ActionClass,
    pub env: String,
    /// The strictest of what is known before the database answers: the profile's, the
    /// config's for the env, the default by env name. The stamp can raise it ([`Guard::admit`]).
    pub protection: Protection,
    /// What the action is aimed at: `host:port/database`, or an instance.
    pub target: String,
    /// What `--confirm` must say when it is not the env name (an AWS instance's id).
    token: Option<String>,
    /// How to reach the database to record a refusal there (none for instance actions).
    /// For recording a refusal in the database when no connection is open yet.
    profile: Option<Profile>,
    /// Where the database is, for the line before a write to a protected env.
    place: Option<String>,
    /// What was typed, as the stamp assertion needs it (set by [`Guard::check_protection`]).
    typed: Cell<Option<Destructive>>,
    log: PathBuf,
}

/// The protection an env has before its database is asked: the strictest of a piped profile's
/// claim, the config's level for the env, and the default by env name. None of them can lower
/// another; the stamp in the database can only raise the result.
pub fn floor(env: &str, claimed: Protection, config: Option<&Config>) -> Protection {
    let configured = config
        .filter(|c| c.envs.contains_key(env))
        .map(|c| c.protection(env))
        .unwrap_or(Protection::Open);
    claimed
        .max(configured)
        .max(crate::config::default_protection(env))
}

impl<'a> Guard<'a> {
    /// The guard for an action on a profile's database. `config` locates the audit log (the
    /// project's state dir, else the user's) and gives the env's configured protection.
    pub fn new(
        tool: &'a str,
        action: &'a str,
        profile: &Profile,
        config: Option<&Config>,
    ) -> Result<Guard<'a>> {
        let place = profile.instance.as_ref().map(|i| match &i.region {
            Some(region) => format!("{} instance {} in {region}", i.provider, i.id),
            None => format!("{} instance {}", i.provider, i.id),
        });
        Ok(Guard {
            tool,
            action,
            class: classify(action)?,
            env: profile.env.clone(),
            protection: floor(&profile.env, profile.protection, config),
            target: target(profile),
            token: None,
            profile: Some(profile.clone()),
            place,
            typed: Cell::new(None),
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

    /// The guard for an action on a whole instance (destroy, reset), judged for `env` at
    /// `protection` (the strictest of every env whose data is on it).
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
            profile: None,
            place: None,
            typed: Cell::new(None),
            log: audit_log_path(config),
        })
    }

    /// Makes `--confirm` take `token` (an instance id) instead of the env name.
    pub fn confirmed_by(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    fn entry(&self, outcome: AuditOutcome, reason: Option<String>) -> AuditEntry {
        AuditEntry {
            at: crate::time::rfc3339_now(),
            by: identity::user_at_host(),
            tool: self.tool.to_string(),
            action: self.action.to_string(),
            class: self.class,
            env: self.env.clone(),
            outcome,
            reason,
            target: self.target.clone(),
        }
    }

    /// Records a refusal (local log; the database when it answers) and returns it as the error.
    pub fn refuse(&self, client: Option<&mut pg::Client>, reason: String) -> Error {
        let entry = self.entry(AuditOutcome::Refused, Some(reason.clone()));
        if let Err(e) = append_local(&self.log, &entry) {
            crate::diag::note(self.tool, e.message());
        }
        match client {
            Some(client) => {
                let _ = append_database(client, &entry);
            }
            None => {
                // The refusal happened before any connection; one short attempt records it in
                // the database too, and an unreachable database changes nothing.
                if let Some(profile) = &self.profile {
                    let mut conn = profile.conn.clone();
                    conn.password = crate::secrets::profile_password(profile, false)
                        .ok()
                        .flatten();
                    if let Ok(mut client) = pg::connect(&conn, self.tool, Duration::from_secs(3)) {
                        let _ = append_database(&mut client, &entry);
                    }
                }
            }
        }
        Error::Refused(reason)
    }

    /// The protection check against what is known before the database answers; a refusal is
    /// recorded and returned. What was typed is kept for the stamp assertion, which checks it
    /// again against the stamp's own level.
    pub fn check_protection(&self, confirmation: &Confirmation) -> Result<()> {
        let token = self.token.as_deref().unwrap_or(&self.env);
        self.typed.set(Some(Destructive {
            confirmed: confirmation.names(&self.env),
            break_glass: confirmation
                .break_glass
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty()),
        }));
        match protection_refusal(
            &self.env,
            token,
            self.protection,
            self.action,
            self.class,
            confirmation,
        ) {
            None => Ok(()),
            Some(reason) => Err(self.refuse(None, reason)),
        }
    }

    /// The statement to send first (writes and destructive actions), see
    /// [`stamp::assertion`]; it ends with a `SELECT` of the stamp ([`stamp::asserted`]).
    pub fn stamp_assertion(&self) -> Option<String> {
        let destructive = (self.class == ActionClass::Destructive).then(|| {
            self.typed.get().unwrap_or(Destructive {
                confirmed: false,
                break_glass: false,
            })
        });
        (self.class != ActionClass::Read).then(|| stamp::assertion(&self.env, destructive))
    }

    /// Turns an error of a message that began with the stamp assertion into a recorded
    /// refusal; any other error passes through unchanged as `None`.
    pub fn refusal_for(&self, client: &mut pg::Client, error: &postgres::Error) -> Option<Error> {
        let reason = match stamp::failed(error)? {
            Failed::Mismatch(stamp) => stamp_mismatch(&self.env, &self.target, stamp.as_ref()),
            Failed::Copy(stamp) => copy_refusal(&self.env, &self.target, &stamp),
            Failed::Outdated => format!(
                "database {} carries a stamp written by an older dbtools (its dbtools schema has no dbtools.assert_stamp), so writes are refused until it is brought up to date as the instance's master: `rdsprov apply` (local; AWS: `rdsprov apply --spec F --sslrootcert BUNDLE`) or `dbguard stamp {}`",
                self.target, self.env
            ),
            Failed::Protection(stamp) => {
                let level = self.protection.max(stamp.protection);
                let confirmation = self.typed.get().unwrap_or(Destructive {
                    confirmed: false,
                    break_glass: false,
                });
                let typed = Confirmation {
                    confirm: confirmation.confirmed.then(|| self.env.clone()),
                    break_glass: confirmation.break_glass.then(|| "given".to_string()),
                };
                let why = protection_refusal(
                    &self.env,
                    &self.env,
                    level,
                    self.action,
                    self.class,
                    &typed,
                )
                .unwrap_or_else(|| format!("{} on env {} refused", self.action, self.env));
                format!(
                    "{why} (the database's own stamp says {}: {} by {} at {})",
                    stamp.protection.as_str(),
                    stamp.env,
                    stamp.stamped_by,
                    stamp.stamped_at
                )
            }
        };
        Some(self.refuse(Some(client), reason))
    }

    /// The stamp check on its own (one round trip), for tools whose first message cannot hold
    /// it; the stamp it read is admitted ([`Guard::admit`]).
    pub fn check_stamp(&mut self, client: &mut pg::Client) -> Result<Option<Stamp>> {
        let Some(sql) = self.stamp_assertion() else {
            return Ok(None);
        };
        match client.simple_query(&sql) {
            Ok(messages) => {
                let stamp = stamp::asserted(&messages);
                self.admit(stamp.as_ref());
                Ok(stamp)
            }
            Err(e) => Err(self
                .refusal_for(client, &e)
                .unwrap_or_else(|| pg::statement_error("checking the env stamp", &e))),
        }
    }

    /// Takes what the database said of itself: the stamp's protection raises this guard's
    /// (so the lint judges by it), and before a write to a protected env one stderr line names
    /// the target as the database reports it.
    pub fn admit(&mut self, stamp: Option<&Stamp>) {
        let Some(stamp) = stamp else {
            return;
        };
        self.protection = self.protection.max(stamp.protection);
        if self.class == ActionClass::Read || self.protection == Protection::Open {
            return;
        }
        let place = self
            .place
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default();
        crate::diag::note(
            self.tool,
            format!(
                "{} on env {} ({}): {}{place}, stamped {} by {} at {}",
                self.action,
                stamp.env,
                self.protection.as_str(),
                self.target,
                stamp.env,
                stamp.stamped_by,
                stamp.stamped_at
            ),
        );
    }

    /// Records a write that runs after a manual snapshot was taken for it (locally, which must
    /// succeed, and in the database): where to restore from if it goes wrong.
    pub fn record_with_snapshot(&self, client: &mut pg::Client, snapshot: &str) -> Result<()> {
        let entry = self.entry(
            AuditOutcome::Allowed,
            Some(format!(
                "after snapshot {snapshot} (restore from it if this goes wrong)"
            )),
        );
        append_local(&self.log, &entry)?;
        if let Err(e) = append_database(client, &entry) {
            crate::diag::note(
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
        let entry = self.entry(AuditOutcome::Allowed, confirmation.break_glass.clone());
        append_local(&self.log, &entry)?;
        if let Some(client) = client {
            if let Err(e) = append_database(client, &entry) {
                crate::diag::note(
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
    fn an_instance_action_confirms_every_protected_env_on_it() {
        let typed = |confirm: Option<&str>, glass: Option<&str>| Confirmation {
            confirm: confirm.map(str::to_string),
            break_glass: glass.map(str::to_string),
        };
        let stakes = vec![
            ("dev".to_string(), Protection::Open),
            ("test".to_string(), Protection::Confirm),
        ];
        let refused = instance_refusal("destroy", "i", &stakes, &typed(Some("dev"), None)).unwrap();
        assert!(
            refused.contains("add --confirm test") && refused.contains("not confirmed: test"),
            "{refused}"
        );
        assert!(instance_refusal("destroy", "i", &stakes, &typed(Some("test"), None)).is_none());
        assert!(
            instance_refusal("destroy", "i", &stakes, &typed(Some("dev, test"), None)).is_none()
        );
        let mut both = stakes.clone();
        both.push(("prod".to_string(), Protection::Locked));
        both.push(("test".to_string(), Protection::Locked));
        let refused = instance_refusal("destroy", "i", &both, &typed(Some("test"), None)).unwrap();
        assert!(
            refused.contains("--confirm test,prod") && refused.contains("test (locked)"),
            "{refused}"
        );
        let refused =
            instance_refusal("destroy", "i", &both, &typed(Some("test,prod"), None)).unwrap();
        assert!(refused.contains("--break-glass"), "{refused}");
        assert!(instance_refusal(
            "destroy",
            "i",
            &both,
            &typed(Some("test,prod"), Some("rebuild"))
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
}
