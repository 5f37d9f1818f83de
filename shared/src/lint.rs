//! The lint: destructive or risky statements in migrations and seeds, found with PostgreSQL's
//! own parser (pg_query), so a `DROP TABLE` inside a string, a comment or a function body is not
//! a finding and a `drop   table` on two lines is.
//!
//! A file opts in to a rule with a comment naming it, like strong_migrations' `safety_assured`:
//! `-- dbguard:allow drop-column: the column moved to accounts in 20260101` (several rules may be
//! listed, comma-separated; what follows `:` is the reason). An unknown rule name there is an
//! error, so a typo never silently allows nothing. What a finding means depends on the env:
//! on `open` envs it is a warning; on `confirm`/`locked` envs (and when no env is given) a
//! finding without an opt-in blocks.

use crate::contract::{LintFinding, Protection};
use crate::exit::{Error, Result};
use crate::sql;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType};
use pg_query::{Node, NodeEnum};
use std::collections::BTreeSet;

/// Every rule: name and why it matters.
pub const RULES: &[(&str, &str)] = &[
    ("drop-table", "DROP TABLE deletes the table and every row in it"),
    ("drop-schema", "DROP SCHEMA deletes the schema and everything in it"),
    ("drop-database", "DROP DATABASE deletes the whole database"),
    ("drop-column", "DROP COLUMN deletes the column's data, and code still reading it breaks"),
    ("truncate", "TRUNCATE deletes every row"),
    ("delete-without-where", "DELETE without WHERE deletes every row"),
    ("update-without-where", "UPDATE without WHERE rewrites every row"),
    ("alter-column-type", "ALTER COLUMN TYPE rewrites the table under an exclusive lock and can lose data"),
    ("add-not-null", "NOT NULL on an existing table scans it under an exclusive lock, and a new NOT NULL column without DEFAULT fails once the table has rows"),
    ("create-index-blocking", "CREATE INDEX without CONCURRENTLY blocks writes to an existing table while it builds"),
    ("add-constraint-validating", "a foreign key or CHECK added without NOT VALID locks and scans the existing table"),
    ("rename", "renaming a table or column breaks code that still uses the old name"),
];

/// Whether findings without an opt-in block on an env of this protection (`None`: no env given,
/// judged strictly).
pub fn enforced(protection: Option<Protection>) -> bool {
    protection.is_none_or(|p| p != Protection::Open)
}

/// The rules a file opts in to with `-- dbguard:allow …` comments.
pub fn allowed_rules(file: &str, text: &str) -> Result<BTreeSet<&'static str>> {
    const MARK: &str = "dbguard:allow";
    let mut allowed = BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        let Some(at) = line.find(MARK) else {
            continue;
        };
        if !line[..at].contains("--") && !line[..at].contains("/*") {
            continue;
        }
        let rest = &line[at + MARK.len()..];
        let names = rest.split(':').next().unwrap_or_default();
        let names = names.trim_end().trim_end_matches("*/");
        for name in names
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|n| !n.is_empty())
        {
            match RULES.iter().find(|(rule, _)| *rule == name) {
                Some((rule, _)) => {
                    allowed.insert(*rule);
                }
                None => {
                    let known: Vec<&str> = RULES.iter().map(|(rule, _)| *rule).collect();
                    return Err(Error::BadInput(format!(
                        "{file}:{}: dbguard:allow names unknown rule {name:?} (rules: {})",
                        number + 1,
                        known.join(", ")
                    )));
                }
            }
        }
    }
    Ok(allowed)
}

/// Lints blocks of SQL from one file, each with the line it starts on. `allowed` comes from
/// [`allowed_rules`] over the whole file. SQL that does not parse is an error naming the line.
pub fn lint_blocks(
    file: &str,
    blocks: &[(&str, usize)],
    allowed: &BTreeSet<&'static str>,
) -> Result<Vec<LintFinding>> {
    let mut findings = Vec::new();
    // Tables created in this file: indexes, constraints and NOT NULL on them lock nobody.
    let mut created: BTreeSet<String> = BTreeSet::new();
    for (text, first_line) in blocks {
        let parsed = sql::parse(text, *first_line)
            .map_err(|(line, message)| Error::BadInput(format!("{file}:{line}: {message}")))?;
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
                continue;
            };
            let start = sql::statement_start(text, raw.stmt_location.max(0) as usize);
            let line = sql::line_at(text, start, *first_line);
            let statement: String = text[start..]
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect();
            for (rule, detail) in statement_findings(node, &mut created) {
                findings.push(LintFinding {
                    file: file.to_string(),
                    line,
                    rule: rule.to_string(),
                    message: format!("{}{detail}", summary(rule)),
                    statement: statement.clone(),
                    allowed: allowed.contains(rule),
                });
            }
        }
    }
    Ok(findings)
}

/// Lints one file: a migration's up sections (down sections undo by nature), or a whole SQL
/// file (a seed). Findings carry the file's opt-ins.
pub fn lint_file(path: &std::path::Path) -> Result<Vec<LintFinding>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let file = path.display().to_string();
    let text = String::from_utf8_lossy(&bytes);
    let allowed = allowed_rules(&file, &text)?;
    let is_migration = text
        .lines()
        .any(|line| line.trim_start().starts_with("-- migrate:up"));
    if is_migration {
        let migration = crate::migration_files::parse(path, &bytes)?;
        let blocks: Vec<(&str, usize)> = migration
            .sections
            .iter()
            .map(|s| (s.up.sql.as_str(), s.up.first_line))
            .collect();
        lint_blocks(&file, &blocks, &allowed)
    } else {
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        lint_blocks(&file, &[(body, 1)], &allowed)
    }
}

fn summary(rule: &str) -> &'static str {
    RULES
        .iter()
        .find(|(name, _)| *name == rule)
        .map(|(_, why)| *why)
        .unwrap_or("")
}

fn relation_name(relation: Option<&pg_query::protobuf::RangeVar>) -> String {
    relation
        .map(|r| {
            if r.schemaname.is_empty() {
                r.relname.clone()
            } else {
                format!("{}.{}", r.schemaname, r.relname)
            }
        })
        .unwrap_or_default()
}

fn is(value: i32, expected: impl Into<i32>) -> bool {
    value == expected.into()
}

/// The rules one statement breaks, each with a detail naming what it touches.
fn statement_findings(
    node: &NodeEnum,
    created: &mut BTreeSet<String>,
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    match node {
        NodeEnum::CreateStmt(create) => {
            created.insert(relation_name(create.relation.as_ref()));
        }
        NodeEnum::DropStmt(drop) => {
            let names = object_names(&drop.objects);
            if is(drop.remove_type, ObjectType::ObjectTable)
                && !names.iter().all(|n| created.contains(n))
            {
                found.push(("drop-table", format!(" ({})", names.join(", "))));
            } else if is(drop.remove_type, ObjectType::ObjectSchema) {
                found.push(("drop-schema", format!(" ({})", names.join(", "))));
            }
        }
        NodeEnum::DropdbStmt(drop) => found.push(("drop-database", format!(" ({})", drop.dbname))),
        NodeEnum::TruncateStmt(truncate) => {
            let names: Vec<String> = truncate
                .relations
                .iter()
                .filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::RangeVar(r)) => Some(relation_name(Some(r))),
                    _ => None,
                })
                .collect();
            found.push(("truncate", format!(" ({})", names.join(", "))));
        }
        NodeEnum::DeleteStmt(delete) if delete.where_clause.is_none() => found.push((
            "delete-without-where",
            format!(" ({})", relation_name(delete.relation.as_ref())),
        )),
        NodeEnum::UpdateStmt(update) if update.where_clause.is_none() => found.push((
            "update-without-where",
            format!(" ({})", relation_name(update.relation.as_ref())),
        )),
        NodeEnum::IndexStmt(index) if !index.concurrent => {
            let table = relation_name(index.relation.as_ref());
            if !created.contains(&table) {
                found.push((
                    "create-index-blocking",
                    format!(" ({table}; use CREATE INDEX CONCURRENTLY in a transaction:false migration)"),
                ));
            }
        }
        NodeEnum::RenameStmt(rename)
            if is(rename.rename_type, ObjectType::ObjectTable)
                || is(rename.rename_type, ObjectType::ObjectColumn) =>
        {
            let table = relation_name(rename.relation.as_ref());
            let what = if rename.subname.is_empty() {
                format!(" ({table} → {})", rename.newname)
            } else {
                format!(" ({table}.{} → {})", rename.subname, rename.newname)
            };
            found.push(("rename", what));
        }
        NodeEnum::AlterTableStmt(alter) => {
            let table = relation_name(alter.relation.as_ref());
            let new_table = created.contains(&table);
            for command in &alter.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = command.node.as_ref() else {
                    continue;
                };
                let column = format!(" ({table}.{})", cmd.name);
                let subtype = cmd.subtype;
                if is(subtype, AlterTableType::AtDropColumn) {
                    found.push(("drop-column", column));
                } else if is(subtype, AlterTableType::AtAlterColumnType) && !new_table {
                    found.push(("alter-column-type", column));
                } else if is(subtype, AlterTableType::AtSetNotNull) && !new_table {
                    found.push(("add-not-null", column));
                } else if is(subtype, AlterTableType::AtAddColumn) && !new_table {
                    if let Some(NodeEnum::ColumnDef(def)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        if not_null_without_default(def) {
                            found.push(("add-not-null", format!(" ({table}.{})", def.colname)));
                        }
                    }
                } else if is(subtype, AlterTableType::AtAddConstraint) && !new_table {
                    if let Some(NodeEnum::Constraint(constraint)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        let validating = (is(constraint.contype, ConstrType::ConstrForeign)
                            || is(constraint.contype, ConstrType::ConstrCheck))
                            && !constraint.skip_validation;
                        if validating {
                            found.push((
                                "add-constraint-validating",
                                format!(" ({table}; add it NOT VALID, then VALIDATE CONSTRAINT)"),
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    found
}

fn not_null_without_default(def: &pg_query::protobuf::ColumnDef) -> bool {
    let kinds: Vec<i32> = def
        .constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(constraint)) => Some(constraint.contype),
            _ => None,
        })
        .collect();
    let not_null = def.is_not_null
        || kinds
            .iter()
            .any(|k| is(*k, ConstrType::ConstrNotnull) || is(*k, ConstrType::ConstrPrimary));
    let filled = def.raw_default.is_some()
        || kinds.iter().any(|k| {
            is(*k, ConstrType::ConstrDefault)
                || is(*k, ConstrType::ConstrIdentity)
                || is(*k, ConstrType::ConstrGenerated)
        });
    not_null && !filled
}

/// `DROP TABLE a, s.b` lists each object as a list of name parts.
fn object_names(objects: &[Node]) -> Vec<String> {
    objects
        .iter()
        .map(|object| match object.node.as_ref() {
            Some(NodeEnum::List(list)) => list
                .items
                .iter()
                .filter_map(|item| match item.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("."),
            Some(NodeEnum::String(s)) => s.sval.clone(),
            _ => String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<String> {
        let allowed = allowed_rules("f.sql", sql).unwrap();
        lint_blocks("f.sql", &[(sql, 1)], &allowed)
            .unwrap()
            .into_iter()
            .map(|f| format!("{}:{}{}", f.line, f.rule, if f.allowed { "+" } else { "" }))
            .collect()
    }

    #[test]
    fn finds_each_rule_where_the_parser_sees_it() {
        let sql = "drop table a;\ndrop schema s cascade;\ntruncate b;\ndelete from c;\n\
                   update d set x = 1;\nalter table e drop column f;\nalter table e alter column g type bigint;\n\
                   alter table e alter column h set not null;\nalter table e add column i int not null;\n\
                   create index on e (g);\nalter table e add constraint k foreign key (g) references a (id);\n\
                   alter table e rename column g to gg;\nalter table e rename to ee;\ndrop database z;\n";
        assert_eq!(
            rules(sql),
            [
                "1:drop-table",
                "2:drop-schema",
                "3:truncate",
                "4:delete-without-where",
                "5:update-without-where",
                "6:drop-column",
                "7:alter-column-type",
                "8:add-not-null",
                "9:add-not-null",
                "10:create-index-blocking",
                "11:add-constraint-validating",
                "12:rename",
                "13:rename",
                "14:drop-database"
            ]
        );
    }

    #[test]
    fn safe_forms_and_text_that_only_looks_dangerous_are_not_findings() {
        let sql = "create table t (id int primary key, n int not null);\ncreate index on t (n);\n\
                   alter table t alter column n type bigint;\n\
                   select 'drop table x';\n-- drop table y;\n\
                   create function f() returns void language sql as $$ delete from t $$;\n\
                   delete from t where id = 1;\nupdate t set n = 2 where id = 1;\n\
                   alter table u add column c int not null default 0;\n\
                   alter table u add constraint fk foreign key (c) references t (id) not valid;\n\
                   create index concurrently on u (c);\ndrop table t;\n";
        assert_eq!(rules(sql), Vec::<String>::new());
    }

    #[test]
    fn opt_in_comments_name_rules_and_typos_are_errors() {
        let sql = "-- dbguard:allow drop-column, truncate: moved to accounts\nalter table a drop column b;\ntruncate c;\ndelete from d;\n";
        assert_eq!(
            rules(sql),
            ["2:drop-column+", "3:truncate+", "4:delete-without-where"]
        );
        let typo = allowed_rules("f.sql", "-- dbguard:allow drop-tabel\n").unwrap_err();
        assert!(
            typo.to_string()
                .contains("f.sql:1: dbguard:allow names unknown rule \"drop-tabel\""),
            "{typo}"
        );
    }

    #[test]
    fn invalid_sql_names_file_and_line() {
        let error =
            lint_blocks("m.sql", &[("select 1;\nselec 2;\n", 3)], &BTreeSet::new()).unwrap_err();
        assert!(
            error.to_string().starts_with("m.sql:4: syntax error"),
            "{error}"
        );
    }
}
