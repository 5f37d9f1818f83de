//! A schema as comparable text: one sorted line per table, column, index, constraint, trigger,
//! view, function, sequence and type, read from the catalog in one query. `verify` compares
//! snapshots of its scratch schema between steps; `diff` compares two envs' schemas.

use dbtools::names::quote_literal;
use dbtools::{pg, Result};
use postgres::SimpleQueryMessage;

/// Every object of `schema` but dbmate's and dbmigrate's own table, as sorted lines.
pub(crate) fn snapshot(client: &mut pg::Client, schema: &str) -> Result<Vec<String>> {
    let sql = format!(
        "WITH s AS (SELECT oid FROM pg_namespace WHERE nspname = {schema}),
         rel AS (SELECT c.* FROM pg_class c JOIN s ON c.relnamespace = s.oid WHERE c.relname <> 'schema_migrations'),
         objects(line) AS (
           SELECT 'relation ' || relname || ' ' || CASE relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
             WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
             ELSE relkind::text END FROM rel WHERE relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           UNION ALL
           SELECT 'column ' || rel.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
             || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
             || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
             || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
           FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attnum > 0 AND NOT a.attisdropped AND rel.relkind IN ('r', 'p', 'v', 'm', 'f')
           UNION ALL
           SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN rel t ON t.oid = i.indrelid
           UNION ALL
           SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
             FROM pg_constraint con JOIN rel ON rel.oid = con.conrelid
           UNION ALL
           SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal
           UNION ALL
           SELECT 'view ' || relname || ' ' || md5(pg_get_viewdef(oid)) FROM rel WHERE relkind IN ('v', 'm')
           UNION ALL
           SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
             || md5(pg_get_functiondef(p.oid)) FROM pg_proc p JOIN s ON p.pronamespace = s.oid WHERE p.prokind IN ('f', 'p')
           UNION ALL
           SELECT 'type ' || t.typname || ' ' || CASE t.typtype WHEN 'e' THEN 'enum (' ||
             (SELECT string_agg(enumlabel, ', ' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid) || ')'
             WHEN 'd' THEN 'domain ' || format_type(t.typbasetype, t.typtypmod) ELSE 'composite' END
           FROM pg_type t JOIN s ON t.typnamespace = s.oid
           WHERE t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
         )
         SELECT line FROM objects",
        schema = quote_literal(schema)
    );
    let messages = client
        .simple_query(&sql)
        .map_err(|e| pg::statement_error("reading the schema from the catalog", &e))?;
    let mut lines: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// Lines only in `a` and lines only in `b` (both sorted).
pub(crate) fn difference(a: &[String], b: &[String]) -> (Vec<String>, Vec<String>) {
    let only_a = a
        .iter()
        .filter(|l| b.binary_search(l).is_err())
        .cloned()
        .collect();
    let only_b = b
        .iter()
        .filter(|l| a.binary_search(l).is_err())
        .cloned()
        .collect();
    (only_a, only_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_is_by_line() {
        let a: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let b: Vec<String> = ["b", "c", "d"].map(String::from).to_vec();
        assert_eq!(difference(&a, &b), (vec!["a".into()], vec!["d".into()]));
    }
}
