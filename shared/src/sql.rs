//! What PostgreSQL's own parser (pg_query) tells us about a migration body before we send it:
//! statements that would break our `BEGIN; body; record; COMMIT;` framing, and the statement
//! boundaries of `transaction:false` bodies (dollar quotes, comments and all).

use crate::exit::{Error, Result};
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
        let offset = statement_start(sql, raw.stmt_location.max(0) as usize);
        return Some(Unwrappable {
            offset,
            what: what.to_string(),
            transaction_control,
        });
    }
    None
}

/// A statement of a `transaction:false` section in a form that runs inside a transaction, for
/// `dbmigrate verify` (which works in one it rolls back): `CREATE INDEX CONCURRENTLY` becomes a
/// plain CREATE INDEX (same index); statements with no such form (VACUUM, CREATE DATABASE, …)
/// are `None`, to be skipped.
pub fn in_transaction_form(statement: &str) -> Option<String> {
    let mut parsed = pg_query::parse(statement, 0).ok()?;
    let mut changed = false;
    for raw in &mut parsed.protobuf.stmts {
        match raw.stmt.as_mut().and_then(|s| s.node.as_mut()) {
            Some(NodeEnum::IndexStmt(index)) if index.concurrent => {
                index.concurrent = false;
                changed = true;
            }
            Some(NodeEnum::IndexStmt(_)) => {}
            Some(node) if is_transaction_bound(node) => return None,
            _ => {}
        }
    }
    if !changed {
        return find_unwrappable(statement)
            .is_none()
            .then(|| statement.to_string());
    }
    pg_query::deparse(&parsed.protobuf, Default::default()).ok()
}

fn is_transaction_bound(node: &NodeEnum) -> bool {
    matches!(
        node,
        NodeEnum::VacuumStmt(_)
            | NodeEnum::CreatedbStmt(_)
            | NodeEnum::DropdbStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::ReindexStmt(_)
            | NodeEnum::TransactionStmt(_)
    )
}

/// A `CREATE INDEX CONCURRENTLY` with a name: what a failed build leaves behind (an INVALID
/// index of that name in the table's schema), so that it can be found and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentIndex {
    /// The index's name, as PostgreSQL stores it (unquoted).
    pub name: String,
    /// The table, quoted and qualified as written (`"s"."t"` or `"t"`), for `to_regclass`.
    pub table: String,
    pub if_not_exists: bool,
}

/// A table as written, each part quoted (`"s"."t"` or `"t"`): what `to_regclass` reads the
/// way the statement's own search path would.
pub(crate) fn quoted_relation(relation: &pg_query::protobuf::RangeVar) -> String {
    let quote = crate::names::quote_ident;
    if relation.schemaname.is_empty() {
        quote(&relation.relname)
    } else {
        format!(
            "{}.{}",
            quote(&relation.schemaname),
            quote(&relation.relname)
        )
    }
}

/// The named `CREATE INDEX CONCURRENTLY` this one statement is, if it is one. An unnamed one
/// gets a name only the server knows, so it has nothing to look for.
pub fn concurrent_index(statement: &str) -> Option<ConcurrentIndex> {
    let parsed = pg_query::parse(statement, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let Some(NodeEnum::IndexStmt(index)) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
        return None;
    };
    if !index.concurrent || index.idxname.is_empty() {
        return None;
    }
    let table = quoted_relation(index.relation.as_ref()?);
    Some(ConcurrentIndex {
        name: index.idxname.clone(),
        table,
        if_not_exists: index.if_not_exists,
    })
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

/// Where a statement's first token is. The parser places a statement right after the previous
/// one's semicolon, so whitespace and comments in between come first.
pub(crate) fn statement_start(sql: &str, location: usize) -> usize {
    let bytes = sql.as_bytes();
    let mut at = location.min(bytes.len());
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes[at..].starts_with(b"--") {
            at = sql[at..].find('\n').map_or(bytes.len(), |end| at + end + 1);
        } else if bytes[at..].starts_with(b"/*") {
            // Block comments nest in PostgreSQL.
            let mut depth = 0usize;
            while at < bytes.len() {
                if bytes[at..].starts_with(b"/*") {
                    depth += 1;
                    at += 2;
                } else if bytes[at..].starts_with(b"*/") {
                    depth -= 1;
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    at += 1;
                }
            }
        } else {
            return at;
        }
    }
}

/// Parses SQL, or says which line does not parse and why.
pub fn parse(
    sql: &str,
    first_line: usize,
) -> std::result::Result<pg_query::ParseResult, (usize, String)> {
    pg_query::parse(sql, 0).map_err(|whole| {
        // The parser names no position; parse statement by statement (cut at the semicolons
        // the scanner sees, so strings, comments and dollar quotes are respected) to find it.
        let semicolons: Vec<usize> = pg_query::scan(sql)
            .map(|scanned| {
                scanned
                    .tokens
                    .iter()
                    .filter(|t| t.token == pg_query::protobuf::Token::Ascii59 as i32)
                    .map(|t| t.end.max(0) as usize)
                    .collect()
            })
            .unwrap_or_default();
        let mut start = 0;
        for end in semicolons.into_iter().chain([sql.len()]) {
            let piece = &sql[start..end.min(sql.len())];
            if !piece.trim().is_empty() {
                if let Err(e) = pg_query::parse(piece, 0) {
                    let line = line_at(sql, statement_start(sql, start), first_line);
                    return (line, parse_message(&e));
                }
            }
            start = end;
        }
        (first_line, parse_message(&whole))
    })
}

fn parse_message(error: &pg_query::Error) -> String {
    match error {
        pg_query::Error::Parse(message) => message.clone(),
        // PostgreSQL parsed it, but the tree is deeper than pg_query's decoder reads (about
        // 50 nested calls or subqueries): nothing judged means nothing runs.
        pg_query::Error::Decode(_) => "nested too deeply to read (pg_query decodes at most 100 \
            levels of parse tree); split the expression or move it into a function"
            .to_string(),
        other => other.to_string(),
    }
}

/// The 1-based line of a byte offset in a block that starts at `first_line`.
pub fn line_at(sql: &str, offset: usize, first_line: usize) -> usize {
    first_line + sql[..offset.min(sql.len())].matches('\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_deep_to_read_is_said_plainly_with_its_line() {
        let deep = format!(
            "select 1;\nselect {}1{};\n",
            "abs(".repeat(200),
            ")".repeat(200)
        );
        // A main thread's stack: a test thread's 2 MiB is too small to decode that deep.
        let (line, message) = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || parse(&deep, 1).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(line, 2);
        assert!(
            message.starts_with("nested too deeply to read"),
            "{message}"
        );
    }

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
    fn statement_start_skips_comments_and_parse_errors_name_the_line() {
        let sql = "select 1;\n-- note\n/* a /* nested */ b */\n  update t set x = 1;";
        let start = statement_start(sql, 9);
        assert!(sql[start..].starts_with("update"), "{}", &sql[start..]);
        let (line, message) = parse("select 1;\nselect 2;\nselec 3;\n", 5).unwrap_err();
        assert_eq!(line, 7);
        assert!(message.starts_with("syntax error"), "{message}");
    }

    #[test]
    fn concurrent_index_builds_get_an_in_transaction_form() {
        let plain = in_transaction_form("create index concurrently i on t (a)").unwrap();
        assert_eq!(plain.to_lowercase(), "create index i on t using btree (a)");
        assert_eq!(in_transaction_form("vacuum t"), None);
        assert_eq!(
            in_transaction_form("alter table t add column b int").as_deref(),
            Some("alter table t add column b int")
        );
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

    #[test]
    fn a_named_concurrent_index_is_found_with_its_table() {
        let found =
            concurrent_index("CREATE INDEX CONCURRENTLY IF NOT EXISTS \"Big Idx\" ON app.t (a)")
                .unwrap();
        assert_eq!(found.name, "Big Idx");
        assert_eq!(found.table, "\"app\".\"t\"");
        assert!(found.if_not_exists);
        let plain = concurrent_index("create index concurrently i on \"T\" (a)").unwrap();
        assert_eq!(
            (plain.table.as_str(), plain.if_not_exists),
            ("\"T\"", false)
        );
        assert_eq!(concurrent_index("create index concurrently on t (a)"), None);
        assert_eq!(concurrent_index("create index i on t (a)"), None);
        assert_eq!(concurrent_index("select 1"), None);
    }
}
