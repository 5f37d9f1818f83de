//! The env stamp inside each database, and who may write it.
//!
//! `dbtools.env_stamp` holds one row: the env the database belongs to, its protection level,
//! who stamped it when, the database's identity at that moment (cluster system identifier,
//! database oid and name) and a random nonce that the instance's owner also records outside the
//! database (the local instance record; a tag on an AWS instance). A logical copy (a dump loaded
//! elsewhere, `CREATE DATABASE … TEMPLATE`) has another identity; a physical copy (a restored
//! snapshot, a copied data directory) keeps the identity but not the outside record. Either way a
//! copy is *adopted* by the env that now owns it, never silently written to.
//!
//! The `dbtools` schema belongs to the role that stamps: the instance's master (`rdsprov apply`,
//! `dbguard stamp`), never an app role. App roles read the stamp and the audit, and append to the
//! audit through `dbtools.append_audit`, a `SECURITY DEFINER` function: no UPDATE, DELETE,
//! TRUNCATE or DROP on either. `dbtools.seeds`, dbseed's bookkeeping, stays writable by them.

use crate::contract::{DatabaseIdentity, Protection, Stamp};
use crate::exit::{Error, Result};
use crate::names::quote_literal;
use crate::pg;
use postgres::SimpleQueryMessage;

/// The stamp as JSON (`Stamp`'s shape), from a `dbtools.env_stamp` of any version.
const STAMP_JSON: &str = "SELECT ((j - ARRAY['singleton','stamped_at','system_identifier','database_oid','database_name','app']) \
    || jsonb_build_object('stamped_at', to_char((j->>'stamped_at')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    'identity', CASE WHEN j->>'database_oid' IS NOT NULL THEN jsonb_build_object('system_identifier', j->>'system_identifier', \
    'database_oid', j->>'database_oid', 'database_name', j->>'database_name') END)) \
    FROM (SELECT to_jsonb(s) AS j FROM dbtools.env_stamp s) x";

/// The database as it is now (`DatabaseIdentity`'s shape). The system identifier needs
/// `pg_control_system()`, which a managed service may withhold: then it is unknown.
const CURRENT_IDENTITY: &str = "jsonb_build_object('system_identifier', CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') \
    THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END, \
    'database_oid', (SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database()), \
    'database_name', current_database())";

/// Pins name resolution to the built-ins for the rest of a transaction: whatever the master
/// runs in a database an app role owns resolves no function or operator that role created.
pub(crate) const PINNED_SEARCH_PATH: &str = "SET LOCAL search_path = pg_catalog, pg_temp;\n";

/// The SQLSTATEs `dbtools.assert_stamp` raises (class "DB", not used by PostgreSQL): the stamp is
/// missing or names another env; the database is a copy; the stamp's protection wants a
/// confirmation that was not given. Each DETAIL is the stamp as JSON ('' when unstamped).
pub(crate) const MISMATCH_SQLSTATE: &str = "DBG01";
pub(crate) const COPY_SQLSTATE: &str = "DBG02";
pub(crate) const PROTECTION_SQLSTATE: &str = "DBG03";

/// What the assertion needs to judge a destructive action against the stamp's own level.
#[derive(Debug, Clone, Copy)]
pub struct Destructive {
    /// `--confirm` named the env exactly.
    pub confirmed: bool,
    /// `--break-glass` gave a reason.
    pub break_glass: bool,
}

/// One statement that fails unless the database is stamped `env`, is not a copy of the
/// database the stamp was written in, and — for a destructive action — the stamp's own
/// protection is satisfied by what was typed; it returns the stamp. A tool sends it first in a
/// message it sends anyway, so the database decides at no round trip of its own. The logic is
/// `dbtools.assert_stamp`, owned by the master with its `search_path` pinned, so nothing an app
/// role creates (a function or operator of the same name earlier in its search path) can
/// answer in its place.
pub fn assertion(env: &str, destructive: Option<Destructive>) -> String {
    let d = destructive.unwrap_or(Destructive {
        confirmed: true,
        break_glass: true,
    });
    format!(
        "SELECT dbtools.assert_stamp({}, {}, {}, {});\n",
        quote_literal(env),
        destructive.is_some(),
        d.confirmed,
        d.break_glass
    )
}

/// The function behind [`assertion`] (created with the schema): `STAMP_JSON` and
/// `CURRENT_IDENTITY` are filled in by [`schema_script`].
const ASSERT_FUNCTION: &str = "CREATE OR REPLACE FUNCTION dbtools.assert_stamp(wanted text, destructive boolean,
  confirmed boolean, break_glass boolean) RETURNS text
  LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $dbtools$
DECLARE got jsonb; now_identity jsonb; level_rank int;
BEGIN
  got := (STAMP_JSON);
  IF got IS NULL OR got->>'env' IS DISTINCT FROM wanted THEN
    RAISE EXCEPTION USING ERRCODE = 'DBG01', MESSAGE = 'dbtools: env stamp does not match', DETAIL = coalesce(got::text, '');
  END IF;
  now_identity := CURRENT_IDENTITY;
  IF jsonb_typeof(got->'identity') = 'object' AND (got->'identity'->>'database_oid' IS DISTINCT FROM now_identity->>'database_oid'
      OR got->'identity'->>'database_name' IS DISTINCT FROM now_identity->>'database_name'
      OR got->'identity'->>'system_identifier' <> now_identity->>'system_identifier') THEN
    RAISE EXCEPTION USING ERRCODE = 'DBG02', MESSAGE = 'dbtools: this database is a copy', DETAIL = got::text;
  END IF;
  IF destructive THEN
    level_rank := CASE coalesce(got->>'protection', 'confirm') WHEN 'open' THEN 0 WHEN 'confirm' THEN 1 ELSE 2 END;
    IF (level_rank >= 1 AND NOT confirmed) OR (level_rank >= 2 AND NOT break_glass) THEN
      RAISE EXCEPTION USING ERRCODE = 'DBG03', MESSAGE = 'dbtools: the stamp''s protection is not satisfied', DETAIL = got::text;
    END IF;
  END IF;
  RETURN got::text;
END $dbtools$;
";

/// The stamp the assertion returned, from the answer of the message that began with it (its first
/// result set).
pub fn asserted(messages: &[SimpleQueryMessage]) -> Option<Stamp> {
    let text = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
        _ => None,
    })??;
    serde_json::from_str(&text).ok()
}

/// How a failed assertion refuses: which check failed, with the stamp it read.
#[derive(Debug, Clone)]
pub enum Failed {
    /// Unstamped (`None`) or stamped for another env.
    Mismatch(Option<Stamp>),
    /// The database is a copy of the one the stamp was written in.
    Copy(Stamp),
    /// The stamp's own protection wants more than was typed.
    Protection(Stamp),
    /// The `dbtools` schema predates `dbtools.assert_stamp`: it must be brought up to date
    /// (as the master) before anything is written.
    Outdated,
}

/// What an error of a message that began with [`assertion`] means, or `None` for any other.
pub fn failed(error: &postgres::Error) -> Option<Failed> {
    let db = error.as_db_error()?;
    let stamp = || {
        db.detail()
            .and_then(|d| serde_json::from_str::<Stamp>(d).ok())
    };
    match db.code().code() {
        MISMATCH_SQLSTATE => Some(Failed::Mismatch(stamp())),
        COPY_SQLSTATE => stamp().map(Failed::Copy),
        PROTECTION_SQLSTATE => stamp().map(Failed::Protection),
        // No dbtools schema at all: unstamped.
        "3F000" if db.message().contains("\"dbtools\"") => Some(Failed::Mismatch(None)),
        // A schema without the function: a stamp from before this version.
        "42883" if db.message().contains("dbtools.assert_stamp") => Some(Failed::Outdated),
        _ => None,
    }
}

/// What reading a database's stamp finds.
#[derive(Debug, Clone)]
pub struct Reading {
    pub stamp: Option<Stamp>,
    /// The database as it is now.
    pub current: DatabaseIdentity,
    /// Who owns the `dbtools` schema (`None`: there is none).
    pub schema_owner: Option<String>,
    pub current_user: String,
}

impl Reading {
    /// True when the stamp was written in another database (a logical copy, or a copy of
    /// another cluster); a stamp without a recorded identity cannot tell and says no.
    pub fn is_logical_copy(&self) -> bool {
        self.stamp
            .as_ref()
            .and_then(|s| s.identity.as_ref())
            .is_some_and(|identity| !identity.same_as(&self.current))
    }
}

/// Reads the stamp and the database's identity in one round trip, also when the `dbtools`
/// schema does not exist.
pub fn read(client: &mut pg::Client) -> Result<Reading> {
    // The master reads stamps in databases that app roles own: with the search path pinned, a
    // function an app role created (say `public.to_jsonb(dbtools.env_stamp)`, an exact match
    // that would win over the built-in) never runs with the master's rights.
    let sql = format!(
        "BEGIN;\n{PINNED_SEARCH_PATH}\
         SELECT CASE WHEN to_regclass('dbtools.env_stamp') IS NULL THEN NULL ELSE \
         (xpath('/row/j/text()', query_to_xml({}, false, true, '')))[1]::text END, {CURRENT_IDENTITY}::text, \
         current_user::text, (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'dbtools');\nCOMMIT;",
        quote_literal(&format!("SELECT ({STAMP_JSON})::text AS j"))
    );
    let messages = client.simple_query(&sql).map_err(|e| {
        let _ = client.simple_query("ROLLBACK");
        pg::statement_error("reading the env stamp", &e)
    })?;
    let row: Vec<Option<String>> = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .ok_or_else(|| Error::Failed("reading the env stamp returned no row".into()))?;
    let stamp = match row[0].as_deref() {
        None => None,
        Some(xml) => Some(
            serde_json::from_str(&unescape_xml(xml))
                .map_err(|e| Error::Failed(format!("the env stamp cannot be read: {e}")))?,
        ),
    };
    let current = serde_json::from_str(row[1].as_deref().unwrap_or_default())
        .map_err(|e| Error::Failed(format!("the database's identity cannot be read: {e}")))?;
    Ok(Reading {
        stamp,
        current,
        current_user: row[2].clone().unwrap_or_default(),
        schema_owner: row[3].clone(),
    })
}

pub(crate) fn unescape_xml(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `dbtools` schema at its current version, owned by the role running it (the instance's
/// master): creates what is missing, upgrades a schema an app role created (ownership moves to
/// this role, the app role keeps only what is granted below), and is idempotent.
pub(crate) const SCHEMA_SQL: &str = "CREATE SCHEMA IF NOT EXISTS dbtools;
CREATE TABLE IF NOT EXISTS dbtools.env_stamp (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  env text NOT NULL, app text, stamped_by text NOT NULL,
  stamped_at timestamptz NOT NULL DEFAULT now(), tool text NOT NULL);
ALTER TABLE dbtools.env_stamp ADD COLUMN IF NOT EXISTS protection text,
  ADD COLUMN IF NOT EXISTS system_identifier text, ADD COLUMN IF NOT EXISTS database_oid text,
  ADD COLUMN IF NOT EXISTS database_name text, ADD COLUMN IF NOT EXISTS nonce text,
  ADD COLUMN IF NOT EXISTS adopted_from text;
CREATE TABLE IF NOT EXISTS dbtools.audit (
  id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), by text NOT NULL,
  tool text NOT NULL, action text NOT NULL, class text NOT NULL, env text NOT NULL,
  outcome text NOT NULL, reason text, target text NOT NULL);
CREATE TABLE IF NOT EXISTS dbtools.seeds (
  file text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by text, rows bigint, tables text[] NOT NULL DEFAULT '{}');
ALTER SCHEMA dbtools OWNER TO CURRENT_USER;
ALTER TABLE dbtools.env_stamp OWNER TO CURRENT_USER;
ALTER TABLE dbtools.audit OWNER TO CURRENT_USER;
ALTER TABLE dbtools.seeds OWNER TO CURRENT_USER;
CREATE OR REPLACE FUNCTION dbtools.append_audit(at timestamptz, by text, tool text, action text,
  class text, env text, outcome text, reason text, target text) RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
  AS $dbtools$ INSERT INTO dbtools.audit (at, by, tool, action, class, env, outcome, reason, target)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) $dbtools$;
ALTER FUNCTION dbtools.append_audit(timestamptz, text, text, text, text, text, text, text, text) OWNER TO CURRENT_USER;
REVOKE ALL ON SCHEMA dbtools FROM PUBLIC;
GRANT USAGE ON SCHEMA dbtools TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA dbtools FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dbtools FROM PUBLIC;
GRANT SELECT ON dbtools.env_stamp, dbtools.audit TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON dbtools.seeds TO PUBLIC;
REVOKE ALL ON FUNCTION dbtools.append_audit(timestamptz, text, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbtools.append_audit(timestamptz, text, text, text, text, text, text, text, text) TO PUBLIC;
";

/// The `dbtools` schema with the stamp assertion's function, as one script (see
/// [`SCHEMA_SQL`]).
fn schema_script() -> String {
    let function = ASSERT_FUNCTION
        .replace("STAMP_JSON", STAMP_JSON)
        .replace("CURRENT_IDENTITY", CURRENT_IDENTITY);
    format!(
        "{SCHEMA_SQL}{function}ALTER FUNCTION dbtools.assert_stamp(text, boolean, boolean, boolean) OWNER TO CURRENT_USER;
REVOKE ALL ON FUNCTION dbtools.assert_stamp(text, boolean, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dbtools.assert_stamp(text, boolean, boolean, boolean) TO PUBLIC;
"
    )
}

/// What a new stamp says.
#[derive(Debug, Clone)]
pub struct NewStamp<'a> {
    pub env: &'a str,
    pub protection: Protection,
    pub app: Option<&'a str>,
    pub tool: &'a str,
    /// For an adoption: where the copy came from.
    pub adopted_from: Option<String>,
}

/// A fresh nonce: 128 random bits, hex.
fn nonce() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| Error::Failed(format!("no random source: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the stamp (and the schema, owned by the role connected, which must be the instance's
/// master) in one transaction. `expected` is the stamp read before (`None`: unstamped); if
/// another machine changed it meanwhile nothing is written. Returns the stamp written.
pub fn write(client: &mut pg::Client, new: &NewStamp, expected: Option<&Stamp>) -> Result<Stamp> {
    let by = crate::identity::user_at_host();
    let nonce = nonce()?;
    let condition = match expected {
        Some(previous) => format!(
            "s.env = {} AND s.nonce IS NOT DISTINCT FROM {}",
            quote_literal(&previous.env),
            previous
                .nonce
                .as_deref()
                .map(quote_literal)
                .unwrap_or_else(|| "NULL".into())
        ),
        None => "false".to_string(),
    };
    let optional = |v: Option<&str>| v.map(quote_literal).unwrap_or_else(|| "NULL".into());
    let sql = format!(
        "BEGIN;\n{PINNED_SEARCH_PATH}{schema}\
         WITH cur AS (SELECT {CURRENT_IDENTITY} AS j) \
         INSERT INTO dbtools.env_stamp AS s (singleton, env, protection, app, stamped_by, stamped_at, tool, system_identifier, database_oid, database_name, nonce, adopted_from) \
         SELECT true, {env}, {protection}, {app}, {by}, now(), {tool}, j->>'system_identifier', j->>'database_oid', j->>'database_name', {nonce}, {adopted} FROM cur \
         ON CONFLICT (singleton) DO UPDATE SET env = excluded.env, protection = excluded.protection, app = excluded.app, \
         stamped_by = excluded.stamped_by, stamped_at = now(), tool = excluded.tool, system_identifier = excluded.system_identifier, \
         database_oid = excluded.database_oid, database_name = excluded.database_name, nonce = excluded.nonce, adopted_from = excluded.adopted_from \
         WHERE {condition};\n\
         SELECT count(*) FROM dbtools.env_stamp WHERE nonce = {nonce};\nCOMMIT;",
        env = quote_literal(new.env),
        protection = quote_literal(new.protection.as_str()),
        app = optional(new.app),
        by = quote_literal(&by),
        tool = quote_literal(new.tool),
        nonce = quote_literal(&nonce),
        adopted = optional(new.adopted_from.as_deref()),
        schema = schema_script(),
    );
    let messages = client.simple_query(&sql).map_err(|e| {
        let _ = client.simple_query("ROLLBACK");
        match e.as_db_error().map(|d| d.code().code()) {
            Some("42501") => Error::Failed(format!(
                "cannot stamp: this role may not own the dbtools schema ({}); stamp as the instance's master user (dbguard stamp does when the env names its instance in dbtools.toml)",
                e.as_db_error().map(|d| d.message()).unwrap_or_default()
            )),
            _ => pg::statement_error("stamping the database", &e),
        }
    })?;
    let written = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    if written.as_deref() != Some("1") {
        return Err(Error::Refused(
            "the stamp changed while this ran (another machine stamped the database): read it again with `dbguard check`".into(),
        ));
    }
    read(client)?
        .stamp
        .ok_or_else(|| Error::Failed("the stamp just written cannot be read back".into()))
}

/// Brings an existing `dbtools` schema to the current version under the role connected (the
/// instance's master), without touching the stamp. Returns whether anything was owned by
/// another role before (an upgrade from app-role ownership).
pub fn upgrade_schema(client: &mut pg::Client) -> Result<bool> {
    let reading = read(client)?;
    let Some(owner) = reading.schema_owner.as_deref() else {
        return Ok(false);
    };
    let function_missing = client
        .simple_query("SELECT pg_catalog.to_regprocedure('dbtools.append_audit(timestamptz, text, text, text, text, text, text, text, text)') IS NULL \
            OR pg_catalog.to_regprocedure('dbtools.assert_stamp(text, boolean, boolean, boolean)') IS NULL")
        .map_err(|e| pg::statement_error("reading the dbtools schema", &e))?
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::Row(row) if row.get(0) == Some("t")));
    if owner == reading.current_user && !function_missing {
        return Ok(false);
    }
    client
        .batch_execute(&format!(
            "BEGIN;\n{PINNED_SEARCH_PATH}{}COMMIT;",
            schema_script()
        ))
        .map_err(|e| {
            let _ = client.simple_query("ROLLBACK");
            pg::statement_error("upgrading the dbtools schema", &e)
        })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_unescaped_once() {
        assert_eq!(unescape_xml("a&lt;b&amp;amp;"), "a<b&amp;");
    }

    #[test]
    fn identities_differ_by_oid_name_or_known_cluster() {
        let a = DatabaseIdentity {
            system_identifier: Some("1".into()),
            database_oid: "16384".into(),
            database_name: "app_test".into(),
        };
        let mut b = a.clone();
        assert!(a.same_as(&b));
        b.system_identifier = None;
        assert!(a.same_as(&b), "an unknown cluster is no difference");
        b.database_oid = "16385".into();
        assert!(!a.same_as(&b));
        let mut c = a.clone();
        c.database_name = "app_dev".into();
        assert!(!a.same_as(&c));
        let mut d = a.clone();
        d.system_identifier = Some("2".into());
        assert!(!a.same_as(&d));
    }

    #[test]
    fn the_assertion_checks_protection_only_for_destructive_actions() {
        assert_eq!(
            assertion("test", None),
            "SELECT dbtools.assert_stamp('test', false, true, true);\n"
        );
        let sql = assertion(
            "te'st",
            Some(Destructive {
                confirmed: true,
                break_glass: false,
            }),
        );
        assert_eq!(
            sql,
            "SELECT dbtools.assert_stamp('te''st', true, true, false);\n"
        );
        let script = schema_script();
        assert!(!script.contains("STAMP_JSON") && !script.contains("CURRENT_IDENTITY"));
        assert!(script.contains("SET search_path = pg_catalog, pg_temp"));
    }
}
