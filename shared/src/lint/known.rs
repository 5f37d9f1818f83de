//! What the lint knows to be harmless without reading it: built-in functions that only compute
//! a value (or take a transaction-scoped lock, or step a sequence), trigger functions shipped
//! with PostgreSQL, and session settings that change how SQL is read or how long it may wait;
//! and the other way round, the built-ins code calls so often that a function of the same
//! name (which can take over those calls) is a finding.
//!
//! Deliberately short: anything missing is a finding (`unknown-function`, `unclassified`) a
//! file opts in to, never a silent pass. Left out on purpose: functions that leave the
//! database or reach the server (`pg_read_file`, `dblink`, `lo_*`, `pg_terminate_backend`,
//! `pg_reload_conf`, …), session-level advisory locks (they outlive the migration), and settings
//! like `session_replication_role`, which switches off triggers and foreign keys.

/// Built-in functions (unqualified or in `pg_catalog`) that modify nothing but a sequence or a
/// transaction-scoped lock, and the pure functions of the common extensions `pgcrypto`
/// (`crypt`, `gen_salt`, `digest`, `hmac`, `gen_random_bytes`) and `uuid-ossp`
/// (`uuid_generate_v4`). Sorted, for binary search (a test checks).
const FUNCTIONS: &[&str] = &[
    "abs",
    "age",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_fill",
    "array_length",
    "array_lower",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "avg",
    "bit_length",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "cbrt",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "chr",
    "clock_timestamp",
    "concat",
    "concat_ws",
    "count",
    "crypt",
    "cume_dist",
    "current_database",
    "current_schema",
    "current_setting",
    "currval",
    "date",
    "date_bin",
    "date_part",
    "date_trunc",
    "decode",
    "dense_rank",
    "digest",
    "encode",
    "every",
    "exp",
    "extract",
    "first_value",
    "floor",
    "format",
    "gen_random_bytes",
    "gen_random_uuid",
    "gen_salt",
    "generate_series",
    "generate_subscripts",
    "hmac",
    "initcap",
    "isfinite",
    "json_agg",
    "json_array_elements",
    "json_array_elements_text",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object_agg",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_strip_nulls",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lag",
    "last_value",
    "lastval",
    "lead",
    "left",
    "length",
    "ln",
    "log",
    "lower",
    "lpad",
    "ltrim",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "max",
    "md5",
    "min",
    "mod",
    "nextval",
    "normalize",
    "now",
    "nth_value",
    "ntile",
    "octet_length",
    "overlay",
    "percent_rank",
    "percentile_cont",
    "percentile_disc",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_sleep",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_typeof",
    "phraseto_tsquery",
    "plainto_tsquery",
    "position",
    "power",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "random",
    "rank",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "row_to_json",
    "rpad",
    "rtrim",
    // Judged by its arguments: the setting it names must be one of SETTINGS.
    "set_config",
    "setweight",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sign",
    "split_part",
    "sqrt",
    "starts_with",
    "statement_timestamp",
    "string_agg",
    "string_to_array",
    "strpos",
    "substr",
    "substring",
    "sum",
    "timezone",
    "to_char",
    "to_date",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "to_tsquery",
    "to_tsvector",
    "transaction_timestamp",
    "translate",
    "trim",
    "trunc",
    "ts_headline",
    "ts_rank",
    "ts_rank_cd",
    "unnest",
    "upper",
    "uuid_generate_v4",
    "websearch_to_tsquery",
];

/// `pg_catalog` functions and operators that application code commonly calls unqualified: a
/// function, aggregate or operator of the same name in any schema can take the calls over
/// (a better argument-type match, or a schema before `pg_catalog` in a search path), so
/// creating one is the `shadows-builtin` finding. Keywords with their own grammar
/// (`coalesce`, `greatest`, `nullif`, …) cannot be shadowed and are not listed. Sorted.
const SHADOWED: &[&str] = &[
    "!=",
    "#>",
    "#>>",
    "&&",
    "*",
    "+",
    "-",
    "->",
    "->>",
    "/",
    "<",
    "<=",
    "<>",
    "<@",
    "=",
    ">",
    ">=",
    "?",
    "@>",
    "abs",
    "array_agg",
    "array_append",
    "array_length",
    "array_position",
    "array_to_json",
    "array_to_string",
    "avg",
    "btrim",
    "char_length",
    "concat",
    "concat_ws",
    "count",
    "current_database",
    "current_schema",
    "current_setting",
    "date_part",
    "date_trunc",
    "decode",
    "encode",
    "format",
    "gen_random_uuid",
    "generate_series",
    "has_database_privilege",
    "has_function_privilege",
    "has_schema_privilege",
    "has_table_privilege",
    "json_agg",
    "json_build_array",
    "json_build_object",
    "json_typeof",
    "jsonb_agg",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_set",
    "jsonb_typeof",
    "left",
    "length",
    "lower",
    "ltrim",
    "max",
    "md5",
    "min",
    "nextval",
    "now",
    "pg_advisory_lock",
    "pg_advisory_unlock",
    "pg_advisory_xact_lock",
    "pg_try_advisory_lock",
    "pg_try_advisory_xact_lock",
    "pg_typeof",
    "quote_ident",
    "quote_literal",
    "random",
    "regexp_replace",
    "replace",
    "right",
    "round",
    "row_to_json",
    "rtrim",
    "set_config",
    "split_part",
    "string_agg",
    "substr",
    "sum",
    "to_char",
    "to_json",
    "to_jsonb",
    "to_regclass",
    "to_regprocedure",
    "to_regtype",
    "to_timestamp",
    "unnest",
    "upper",
    "||",
    "~",
    "~~",
];

/// Whether a function, aggregate or operator named `name` (in any schema) shadows a commonly
/// called built-in.
pub(super) fn shadows_builtin(name: &str) -> bool {
    SHADOWED
        .binary_search(&name.to_ascii_lowercase().as_str())
        .is_ok()
}

/// Trigger functions PostgreSQL ships, which a `CREATE TRIGGER` may name.
const TRIGGER_FUNCTIONS: &[&str] = &[
    "suppress_redundant_updates_trigger",
    "tsvector_update_trigger",
    "tsvector_update_trigger_column",
];

/// Settings a migration or seed may change with SET, SET LOCAL, RESET or `set_config`: how SQL
/// is read and printed, how long statements may wait, planner and memory knobs. Sorted.
const SETTINGS: &[&str] = &[
    "application_name",
    "bytea_output",
    "check_function_bodies",
    "client_encoding",
    "client_min_messages",
    "constraint_exclusion",
    "datestyle",
    "default_table_access_method",
    "default_tablespace",
    "default_toast_compression",
    "default_with_oids",
    "escape_string_warning",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lock_timeout",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers_per_gather",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "synchronous_commit",
    "temp_buffers",
    "timezone",
    "transaction_timeout",
    "work_mem",
    "xmloption",
];

/// Whether a call to `schema.name` (schema empty when unqualified) is a known-harmless built-in.
pub(super) fn harmless_function(schema: &str, name: &str) -> bool {
    (schema.is_empty() || schema == "pg_catalog") && FUNCTIONS.binary_search(&name).is_ok()
}

/// Whether a trigger may call `schema.name` without the pending files defining it.
pub(super) fn builtin_trigger_function(schema: &str, name: &str) -> bool {
    (schema.is_empty() || schema == "pg_catalog") && TRIGGER_FUNCTIONS.contains(&name)
}

/// What changing a setting means: harmless, a change of role, or unknown. Custom settings
/// (`app.tenant`, with a dot) only carry values for the app's own SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Setting {
    Harmless,
    Role,
    Unknown,
}

pub(super) fn setting(name: &str) -> Setting {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "role" | "session_authorization" | "session authorization" => Setting::Role,
        // SET TRANSACTION … / SET SESSION CHARACTERISTICS …: isolation and read-only modes.
        "transaction" | "session characteristics" | "transaction snapshot" => Setting::Harmless,
        _ if name.contains('.') || SETTINGS.binary_search(&name.as_str()).is_ok() => {
            Setting::Harmless
        }
        _ => Setting::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_for_binary_search() {
        assert!(FUNCTIONS.windows(2).all(|w| w[0] < w[1]));
        assert!(SETTINGS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            SHADOWED.windows(2).all(|w| w[0] < w[1]),
            "SHADOWED is not sorted"
        );
        assert!(shadows_builtin("to_jsonb") && shadows_builtin("||"));
        assert!(!harmless_function("", "setval"));
        assert!(harmless_function("pg_catalog", "now"));
        assert!(!harmless_function("public", "now"));
        assert_eq!(setting("session_replication_role"), Setting::Unknown);
        assert_eq!(setting("app.tenant"), Setting::Harmless);
    }
}
