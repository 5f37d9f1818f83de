//! What PostgreSQL's own parser (pg_query) tells us about a migration body before we send it:
//! statements that would break our `BEGIN; body; record; COMMIT;` framing, and the statement
//! boundaries of `transaction:false` bodies (dollar quotes, comments and all).

use dbtools::{Error, Result};
use pg_query::NodeEnum;

/// A statement that cannot run inside the transaction we wrap a migration in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrappable {
    /// Byte offset of the statement in the body.
    pub offset: usize,
    pub what: String,
    /// True for transaction control (BEGIN/COMMIT/…): never allowed in a transactional body;
    /// false for statements that need `transaction:false` (CREATE INDEX CONCURRENTLY, VACUUM, …).
    pub transaction_control: bool,
}

/// Finds the first statement of a transactional body that our framing cannot hold. A body the
/// parser cannot read is left to the server, which reports the error with its position.
pub fn find_unwrappable(sql: &str) -> Option<Unwrappable> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let (what, transaction_control) = match node {
            NodeEnum::TransactionStmt(_) => (
                "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT …)",
                true,
            ),
            NodeEnum::IndexStmt(index) if index.concurrent => ("CREATE INDEX CONCURRENTLY", false),
            NodeEnum::ReindexStmt(_)
                if sql[raw.stmt_location.max(0) as usize..]
                    .to_ascii_lowercase()
                    .contains("concurrently") =>
            {
                ("REINDEX … CONCURRENTLY", false)
            }
            NodeEnum::VacuumStmt(_) => ("VACUUM", false),
            NodeEnum::CreatedbStmt(_) => ("CREATE DATABASE", false),
            NodeEnum::DropdbStmt(_) => ("DROP DATABASE", false),
            NodeEnum::AlterSystemStmt(_) => ("ALTER SYSTEM", false),
            _ => continue,
        };
        let offset = raw.stmt_location.max(0) as usize;
        // The parser's location is where the statement's first token starts after whitespace.
        let offset = offset + sql[offset..].len() - sql[offset..].trim_start().len();
        return Some(Unwrappable {
            offset,
            what: what.to_string(),
            transaction_control,
        });
    }
    None
}

/// Splits a `transaction:false` body into its statements, each with its byte offset.
pub fn split(sql: &str) -> Result<Vec<(usize, String)>> {
    let statements = pg_query::split_with_parser(sql)
        .map_err(|e| Error::BadInput(format!("cannot split into statements: {e}")))?;
    Ok(statements
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let start = s.as_ptr() as usize - sql.as_ptr() as usize;
            let leading = s.len() - s.trim_start().len();
            (start + leading, s.trim().to_string())
        })
        .collect())
}

/// The 1-based line of a byte offset in a block that starts at `first_line`.
pub fn line_at(sql: &str, offset: usize, first_line: usize) -> usize {
    first_line + sql[..offset.min(sql.len())].matches('\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_transaction_control_and_concurrent_statements() {
        let body = "create table t (id int);\n\ncommit;\n";
        let found = find_unwrappable(body).unwrap();
        assert!(found.transaction_control);
        assert_eq!(line_at(body, found.offset, 10), 12);
        let found = find_unwrappable("create index concurrently i on t (id);").unwrap();
        assert!(!found.transaction_control);
        assert_eq!(found.what, "CREATE INDEX CONCURRENTLY");
        assert!(find_unwrappable("create index i on t (id); select 'commit;';").is_none());
        assert!(find_unwrappable(
            "create function f() returns int language plpgsql as $$ begin return 1; end $$;"
        )
        .is_none());
    }

    #[test]
    fn splits_with_dollar_quotes_and_comments() {
        let body = "-- lead\ncreate index concurrently i on t (id);\ncreate function f() returns int language sql as $$ select 1; $$;\n/* x; y */ select 2;\n";
        let parts = split(body).unwrap();
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(
            parts[0].1.starts_with("-- lead\ncreate index")
                || parts[0].1.starts_with("create index"),
            "{parts:?}"
        );
        assert!(parts[1].1.contains("$$ select 1; $$"));
    }
}
