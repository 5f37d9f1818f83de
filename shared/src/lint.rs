//! The lint: an allowlist classifier over PostgreSQL's own parse tree (pg_query) for the SQL a
//! migration's up sections and seed files will run. "Unknown means refused": every statement
//! is judged from its complete tree (CTEs, EXPLAIN, PREPARE/EXECUTE, MERGE, rules, function
//! and DO bodies included); what is not known to be safe is a finding, so a `DROP TABLE` inside
//! a string or a comment is not one, a `drop   table` on two lines is, and so is a statement
//! kind nobody taught the lint. [`judge`] holds the classifier, [`known`] the short lists of
//! harmless built-in functions and settings.
//!
//! A file opts in to a rule with a real SQL comment naming it, like strong_migrations'
//! `safety_assured`: `-- dbguard:allow drop-column: the column moved to accounts in 20260101`
//! (several rules may be listed, comma-separated; what follows `:` is the reason). The scanner
//! finds the comments, so the same words inside a string or a dollar-quoted body opt in to
//! nothing. An unknown rule name there is an error, so a typo never silently allows nothing.
//!
//! What a finding means depends on its rule's [`Enforcement`] and the env: `protected` rules
//! warn on `open` envs and block on `confirm`/`locked` envs (and when no env is given) without
//! an opt-in; `everywhere` rules (other databases, roles: the whole server) block on every env
//! without an opt-in; `forbidden` (the guard's own `dbtools` schema) blocks always, opt-in or
//! not. [`blocking`] and [`warnings`] decide it for every tool.
//!
//! Functions the run's files define are judged where they are defined, so calling them is
//! fine; that is why a run is linted as a whole ([`Linter`], [`lint_files`]).

mod chunks;
mod judge;
mod known;

use crate::contract::{Enforcement, LintFinding, Protection};
use crate::exit::{Error, Result};
use crate::sql;
use pg_query::protobuf::{ScanToken, Token};
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::Path;

/// Every rule. The names are what files write in `-- dbguard:allow <rule>` comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(
    clippy::enum_variant_names,
    reason = "CreateRule is the rule about CREATE RULE"
)]
pub(crate) enum Rule {
    DropTable,
    DropSchema,
    DropDatabase,
    DropColumn,
    Truncate,
    DeleteWithoutWhere,
    UpdateWithoutWhere,
    MergeDelete,
    MergeUpdate,
    Replace,
    TriggerOnExistingTable,
    AlterColumnType,
    AddNotNull,
    CreateIndexBlocking,
    AddConstraintValidating,
    Rename,
    SetSchema,
    Drop,
    Cascade,
    CreateRule,
    DynamicSql,
    UnknownFunction,
    UnknownPrepared,
    Unclassified,
    CrossDatabase,
    Role,
    UpsertFromQuery,
    SequenceReset,
    DropConstraint,
    RowSecurity,
    Privileges,
    SearchPath,
    ShadowsBuiltin,
    DbtoolsSchema,
}

impl Rule {
    pub(crate) const ALL: &'static [Rule] = &[
        Rule::DropTable,
        Rule::DropSchema,
        Rule::DropDatabase,
        Rule::DropColumn,
        Rule::Truncate,
        Rule::DeleteWithoutWhere,
        Rule::UpdateWithoutWhere,
        Rule::MergeDelete,
        Rule::MergeUpdate,
        Rule::Replace,
        Rule::TriggerOnExistingTable,
        Rule::AlterColumnType,
        Rule::AddNotNull,
        Rule::CreateIndexBlocking,
        Rule::AddConstraintValidating,
        Rule::Rename,
        Rule::SetSchema,
        Rule::Drop,
        Rule::Cascade,
        Rule::CreateRule,
        Rule::DynamicSql,
        Rule::UnknownFunction,
        Rule::UnknownPrepared,
        Rule::Unclassified,
        Rule::CrossDatabase,
        Rule::Role,
        Rule::UpsertFromQuery,
        Rule::SequenceReset,
        Rule::DropConstraint,
        Rule::RowSecurity,
        Rule::Privileges,
        Rule::SearchPath,
        Rule::ShadowsBuiltin,
        Rule::DbtoolsSchema,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Rule::DropTable => "drop-table",
            Rule::DropSchema => "drop-schema",
            Rule::DropDatabase => "drop-database",
            Rule::DropColumn => "drop-column",
            Rule::Truncate => "truncate",
            Rule::DeleteWithoutWhere => "delete-without-where",
            Rule::UpdateWithoutWhere => "update-without-where",
            Rule::MergeDelete => "merge-delete",
            Rule::MergeUpdate => "merge-update",
            Rule::Replace => "replace",
            Rule::TriggerOnExistingTable => "trigger-on-existing-table",
            Rule::AlterColumnType => "alter-column-type",
            Rule::AddNotNull => "add-not-null",
            Rule::CreateIndexBlocking => "create-index-blocking",
            Rule::AddConstraintValidating => "add-constraint-validating",
            Rule::Rename => "rename",
            Rule::SetSchema => "set-schema",
            Rule::Drop => "drop",
            Rule::Cascade => "cascade",
            Rule::CreateRule => "create-rule",
            Rule::DynamicSql => "dynamic-sql",
            Rule::UnknownFunction => "unknown-function",
            Rule::UnknownPrepared => "unknown-prepared",
            Rule::Unclassified => "unclassified",
            Rule::CrossDatabase => "cross-database",
            Rule::Role => "role",
            Rule::UpsertFromQuery => "upsert-from-query",
            Rule::SequenceReset => "sequence-reset",
            Rule::DropConstraint => "drop-constraint",
            Rule::RowSecurity => "row-security",
            Rule::Privileges => "privileges",
            Rule::SearchPath => "search-path",
            Rule::ShadowsBuiltin => "shadows-builtin",
            Rule::DbtoolsSchema => "dbtools-schema",
        }
    }

    /// Why it matters: the start of every finding's message.
    pub(crate) fn why(self) -> &'static str {
        match self {
            Rule::DropTable => "DROP TABLE deletes the table and every row in it",
            Rule::DropSchema => "DROP SCHEMA deletes the schema and everything in it",
            Rule::DropDatabase => "DROP DATABASE deletes a whole database",
            Rule::DropColumn => "DROP COLUMN deletes the column's data, and code still reading it breaks",
            Rule::Truncate => "TRUNCATE deletes every row",
            Rule::DeleteWithoutWhere => "DELETE without a WHERE that compares a column of its table to a value (a constant, parameter or variable) can delete every row",
            Rule::UpdateWithoutWhere => "UPDATE without a WHERE that compares a column of its table to a value (a constant, parameter or variable) can rewrite every row",
            Rule::MergeDelete => "MERGE … THEN DELETE deletes every target row its join finds, and a join (even of the table with itself) bounds far less visibly than a WHERE",
            Rule::MergeUpdate => "MERGE … WHEN MATCHED THEN UPDATE from a table or query rewrites every target row its join finds, as many as the source returns; only a VALUES list or a SELECT without FROM bounds it",
            Rule::Replace => "CREATE OR REPLACE of a function, procedure, view, trigger or rule the pending files did not create first changes what existing code and triggers run",
            Rule::TriggerOnExistingTable => "a BEFORE or INSTEAD OF trigger on a table the pending files did not create runs before every write to it and can swallow, rewrite or redirect each one",
            Rule::AlterColumnType => "ALTER COLUMN TYPE rewrites the table under an exclusive lock and can lose data",
            Rule::AddNotNull => "NOT NULL on an existing table scans it under an exclusive lock, and a new NOT NULL column without DEFAULT fails once the table has rows",
            Rule::CreateIndexBlocking => "CREATE INDEX without CONCURRENTLY blocks writes to an existing table while it builds",
            Rule::AddConstraintValidating => "a foreign key or CHECK added without NOT VALID locks and scans the existing table",
            Rule::Rename => "renaming an object breaks code that still uses the old name",
            Rule::SetSchema => "moving an object to another schema breaks code that finds it in the old one",
            Rule::Drop => "DROP removes an object the pending files did not create, and what depends on it breaks",
            Rule::Cascade => "CASCADE also drops or empties every object that depends on the target, none of which the file names",
            Rule::CreateRule => "a rule rewrites every later query on the table; DO INSTEAD can silently discard or redirect writes",
            Rule::DynamicSql => "EXECUTE of a string builds SQL at run time, which no lint can read",
            Rule::UnknownFunction => "a call to a function the pending files do not define (so the lint never judged its body) and that is not a known-harmless built-in can do anything",
            Rule::UnknownPrepared => "EXECUTE of a statement the pending files did not PREPARE runs SQL the lint never saw",
            Rule::Unclassified => "the statement is not on the lint's list of known-safe statements, and unknown means refused",
            Rule::CrossDatabase => "the statement reaches beyond this database (other databases, tablespaces, server settings), which no env of this app owns alone",
            Rule::Role => "roles and ownership are shared by every database on the server: changing them changes who may do what everywhere",
            Rule::UpsertFromQuery => "INSERT … SELECT … FROM (a table, a function such as generate_series, a subquery) … ON CONFLICT DO UPDATE rewrites every existing row the query matches, as many as the query returns; only VALUES or a SELECT without FROM bound it",
            Rule::SequenceReset => "setval or ALTER SEQUENCE … RESTART moves a sequence: moved back, every later insert collides with existing keys (or reuses ids other systems still hold)",
            Rule::DropConstraint => "DROP CONSTRAINT removes a check, key or foreign key the data relies on: duplicates and orphans can be written from then on",
            Rule::RowSecurity => "row level security and its policies decide which rows each role sees: enabled without the right policy, the app sees (and updates) no row at all",
            Rule::Privileges => "REVOKE and ALTER DEFAULT PRIVILEGES take access away, possibly from the app's own role, and break it at run time",
            Rule::SearchPath => "setting search_path, or creating a schema (one named like a role comes first in the default search path \"$user\", public and hides the app's tables), changes which table, function or operator every later unqualified name finds",
            Rule::ShadowsBuiltin => "a function, operator or aggregate named like a commonly called built-in can take over calls code means for pg_catalog's, wherever its schema comes first in a search path",
            Rule::DbtoolsSchema => "the dbtools schema holds the guard's own records (env stamp, applied migrations and seeds, audit); migrations and seeds may not touch it",
        }
    }

    pub(crate) fn enforcement(self) -> Enforcement {
        match self {
            Rule::DbtoolsSchema => Enforcement::Forbidden,
            Rule::CrossDatabase | Rule::DropDatabase | Rule::Role => Enforcement::Everywhere,
            _ => Enforcement::Protected,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|rule| rule.name() == name)
    }
}

/// Whether `protected` findings without an opt-in block on an env of this protection (`None`:
/// no env given, judged strictly).
pub fn enforced(protection: Option<Protection>) -> bool {
    protection.is_none_or(|p| p != Protection::Open)
}

/// Whether a finding stops a run on an env of this protection (`None`: no env given).
pub fn blocks(finding: &LintFinding, protection: Option<Protection>) -> bool {
    match finding.enforcement {
        Enforcement::Forbidden => true,
        Enforcement::Everywhere => !finding.allowed,
        Enforcement::Protected => !finding.allowed && enforced(protection),
    }
}

/// The findings that stop a run on an env of this protection, `forbidden` ones first.
pub fn blocking(findings: &[LintFinding], protection: Option<Protection>) -> Vec<&LintFinding> {
    let mut stop: Vec<&LintFinding> = findings.iter().filter(|f| blocks(f, protection)).collect();
    stop.sort_by_key(|f| std::cmp::Reverse(f.enforcement));
    stop
}

/// The findings to show as warnings on an env of this protection: without an opt-in, yet not
/// blocking (`protected` ones on open envs).
pub fn warnings(findings: &[LintFinding], protection: Option<Protection>) -> Vec<&LintFinding> {
    findings
        .iter()
        .filter(|f| !f.allowed && !blocks(f, protection))
        .collect()
}

/// `file:line: rule: message`, the way every tool names a finding.
pub fn describe(finding: &LintFinding) -> String {
    format!(
        "{}:{}: {}: {}",
        finding.file, finding.line, finding.rule, finding.message
    )
}

/// The refusal for blocking findings (from [`blocking`], not empty) on `env`; `outcome` says
/// what did not happen (`nothing was applied`).
pub fn refusal(
    env: &str,
    protection: Protection,
    blocking: &[&LintFinding],
    outcome: &str,
) -> String {
    let Some(first) = blocking.first() else {
        return format!("env {env}: {outcome}");
    };
    let more = match blocking.len() {
        1 => String::new(),
        n => format!(" (and {} more: `dbguard lint` lists them)", n - 1),
    };
    let which = match first.enforcement {
        Enforcement::Everywhere if protection == Protection::Open => {
            format!(", but {} blocks on every env", first.rule)
        }
        _ => String::new(),
    };
    let then = match first.enforcement {
        Enforcement::Forbidden => {
            "The dbtools schema belongs to the guard: this cannot be opted in".to_string()
        }
        _ => format!(
            "If it is intended, add `-- dbguard:allow {}: <reason>` to the file",
            first.rule
        ),
    };
    format!(
        "env {env} is {}{which}: {}{more}; {outcome}. {then}",
        protection.as_str(),
        describe(first)
    )
}

/// The rules a file opts in to with `-- dbguard:allow …` (or `/* dbguard:allow … */`)
/// comments: real comments only, found by PostgreSQL's scanner.
pub(crate) fn allowed_rules(file: &str, text: &str) -> Result<BTreeSet<Rule>> {
    let tokens = pg_query::scan_tokens(text)
        .map_err(|e| Error::BadInput(format!("{file}: cannot read the SQL: {e}")))?;
    opt_ins(file, text, &tokens)
}

/// [`allowed_rules`] from the text's scanner tokens.
fn opt_ins(file: &str, text: &str, tokens: &[ScanToken]) -> Result<BTreeSet<Rule>> {
    const MARK: &str = "dbguard:allow";
    let lines = LineIndex::new(text, 1);
    let mut allowed = BTreeSet::new();
    for token in tokens {
        if token.token != Token::SqlComment as i32 && token.token != Token::CComment as i32 {
            continue;
        }
        let (start, end) = (token.start.max(0) as usize, token.end.max(0) as usize);
        let comment = text.get(start..end).unwrap_or_default();
        let Some(at) = comment.find(MARK) else {
            continue;
        };
        let rest = &comment[at + MARK.len()..];
        let rest = rest.lines().next().unwrap_or_default();
        let names = rest.split(':').next().unwrap_or_default();
        let names = names.trim_end().trim_end_matches("*/");
        let line = lines.line(start + at);
        for name in names
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|n| !n.is_empty())
        {
            match Rule::from_name(name) {
                Some(rule) if rule.enforcement() == Enforcement::Forbidden => {
                    return Err(Error::BadInput(format!(
                        "{file}:{line}: dbguard:allow names {name}, which cannot be opted in: the dbtools schema belongs to the guard"
                    )));
                }
                Some(rule) => {
                    allowed.insert(rule);
                }
                None => {
                    let known: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                    return Err(Error::BadInput(format!(
                        "{file}:{line}: dbguard:allow names unknown rule {name:?} (rules: {})",
                        known.join(", ")
                    )));
                }
            }
        }
    }
    Ok(allowed)
}

/// Line numbers of byte offsets in one pass: the offsets where lines start, searched.
struct LineIndex {
    first_line: usize,
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str, first_line: usize) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        LineIndex { first_line, starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.first_line + self.starts.partition_point(|&start| start <= offset) - 1
    }
}

/// Lints the files of one run together, in the order they will run: objects created by
/// earlier statements may be dropped or indexed without a finding; functions defined anywhere
/// in the run are known (and judged where they are defined): SQL that runs as the migration
/// runs may call those defined before it, function bodies (which run later) any of them.
///
/// Each statement is judged as it is added and its tree dropped, so memory stays flat however
/// big a seed is; only a function body's calls to functions not yet defined wait for
/// [`Linter::findings`].
#[derive(Default)]
pub struct Linter {
    judge: judge::Judge,
    /// Findings so far, each with the function whose later definition would settle it.
    findings: Vec<(LintFinding, Option<(String, String)>)>,
}

impl Linter {
    pub fn new() -> Self {
        Linter::default()
    }

    /// Adds a file: a migration's up sections (down sections undo by nature), or a whole SQL
    /// file (a seed). SQL that does not parse is an error naming the file and line.
    pub(crate) fn add_file(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::BadInput(format!("cannot read {}: {e}", path.display())))?;
        let file = path.display().to_string();
        let text = String::from_utf8_lossy(&bytes);
        let is_migration = text
            .lines()
            .any(|line| line.trim_start().starts_with("-- migrate:up"));
        if is_migration {
            self.add_migration(&crate::migration_files::parse(path, &bytes)?)
        } else {
            self.add_sql(&file, &text)
        }
    }

    /// Adds a migration as it was read (its up sections; the opt-ins from its text): what a
    /// tool lints before running it must be the copy it runs, not the file read again.
    pub fn add_migration(&mut self, migration: &crate::migration_files::Migration) -> Result<()> {
        let blocks: Vec<(&str, usize)> = migration
            .sections
            .iter()
            .map(|s| (s.up.sql.as_str(), s.up.first_line))
            .collect();
        let file = migration.path.display().to_string();
        self.add_blocks(&file, &migration.text, &blocks)
    }

    /// Adds a whole SQL file (a seed) by name and text.
    pub fn add_sql(&mut self, file: &str, text: &str) -> Result<()> {
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        self.add_blocks(file, body, &[(body, 1)])
    }

    /// Adds blocks of SQL from one file, each with the line it starts on; `whole` is the file's
    /// text, where the opt-in comments are.
    pub(crate) fn add_blocks(
        &mut self,
        file: &str,
        whole: &str,
        blocks: &[(&str, usize)],
    ) -> Result<()> {
        // A seed is one block, the whole file: its tokens serve both.
        let whole_is_block = matches!(blocks, [(text, 1)] if std::ptr::eq(*text, whole));
        let mut allowed = match whole_is_block {
            true => BTreeSet::new(),
            false => allowed_rules(file, whole)?,
        };
        for (text, first_line) in blocks {
            let tokens = pg_query::scan_tokens(text)
                .map_err(|e| Error::BadInput(format!("{file}:{first_line}: {e}")))?;
            if whole_is_block {
                allowed = opt_ins(file, whole, &tokens)?;
            }
            let block = Block {
                file,
                text,
                tokens: &tokens,
                lines: LineIndex::new(text, *first_line),
                allowed: &allowed,
            };
            // Parsed a chunk at a time, on worker threads; each tree judged here, in order,
            // and dropped (see `chunks`).
            let ends = chunks::chunk_ends(&tokens, text.len());
            let mut outcome = Ok(());
            chunks::parse_in_order(text, &ends, |start, parsed| {
                let tree = match parsed {
                    Ok(tree) => tree,
                    // A cut inside a `BEGIN ATOMIC` body: the rest of the block, whole.
                    Err(_) => match pg_query::parse(&text[start..], 0) {
                        Ok(tree) => {
                            self.judge_tree(&block, start, &tree);
                            return ControlFlow::Break(());
                        }
                        Err(_) => {
                            outcome = Err(match sql::parse(text, *first_line) {
                                Err((line, message)) => {
                                    Error::BadInput(format!("{file}:{line}: {message}"))
                                }
                                Ok(_) => Error::BadInput(format!(
                                    "{file}:{first_line}: the SQL does not parse"
                                )),
                            });
                            return ControlFlow::Break(());
                        }
                    },
                };
                self.judge_tree(&block, start, tree);
                ControlFlow::Continue(())
            });
            outcome?;
        }
        Ok(())
    }

    /// Judges the statements of a tree parsed from `block.text[chunk_start..]`.
    fn judge_tree(&mut self, block: &Block, chunk_start: usize, tree: &pg_query::ParseResult) {
        let text = block.text;
        let chunk = &text[chunk_start..];
        for raw in &tree.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
                continue;
            };
            let location = (raw.stmt_location.max(0) as usize).min(chunk.len());
            let end = match raw.stmt_len {
                0 => chunk.len(),
                len => (location + len as usize).min(chunk.len()),
            };
            let start = chunk_start + sql::statement_start(chunk, location).min(end);
            let end = chunk_start + end;
            let first = block.tokens.partition_point(|t| (t.start as usize) < start);
            let last = block.tokens.partition_point(|t| (t.start as usize) < end);
            let source = judge::Source {
                sql: text,
                statement: &text[start..end],
                tokens: &block.tokens[first..last],
            };
            let found = self.judge.statement(node, &source);
            if found.is_empty() {
                continue;
            }
            let line = block.lines.line(start);
            let statement: String = text[start..]
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect();
            for f in found {
                let enforcement = f.rule.enforcement();
                let finding = LintFinding {
                    file: block.file.to_string(),
                    line,
                    rule: f.rule.name().to_string(),
                    message: format!("{}{}", f.rule.why(), f.detail),
                    statement: statement.clone(),
                    allowed: enforcement != Enforcement::Forbidden
                        && block.allowed.contains(&f.rule),
                    enforcement,
                    table: f.table,
                };
                self.findings.push((finding, f.unless_defined));
            }
        }
    }

    /// The findings of every statement added, in order.
    pub fn findings(self) -> Vec<LintFinding> {
        let judge = self.judge;
        self.findings
            .into_iter()
            .filter(|(_, unless)| {
                !unless
                    .as_ref()
                    .is_some_and(|(schema, name)| judge.defines(schema, name))
            })
            .map(|(finding, _)| finding)
            .collect()
    }
}

/// One block being judged: where it is from and what its statements need.
struct Block<'a> {
    file: &'a str,
    text: &'a str,
    tokens: &'a [ScanToken],
    lines: LineIndex,
    allowed: &'a BTreeSet<Rule>,
}

/// Lints the migrations of one run together, as they were read (see [`Linter`]).
pub fn lint_migrations(
    migrations: &[&crate::migration_files::Migration],
) -> Result<Vec<LintFinding>> {
    let mut linter = Linter::new();
    for migration in migrations {
        linter.add_migration(migration)?;
    }
    Ok(linter.findings())
}

/// Lints the files of one run together (see [`Linter`]).
pub fn lint_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<LintFinding>> {
    let mut linter = Linter::new();
    for path in paths {
        linter.add_file(path.as_ref())?;
    }
    Ok(linter.findings())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_is_linted_as_it_was_read_not_read_again() {
        let dir = std::env::temp_dir().join(format!("dbtools-lint-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("1_drop.sql");
        std::fs::write(&path, "-- migrate:up\ndrop table users;\n").unwrap();
        let migration =
            crate::migration_files::parse(&path, &std::fs::read(&path).unwrap()).unwrap();
        // The file changes after it was read (a swap while waiting for the lock): what runs
        // is the copy read, so that is what is judged.
        std::fs::write(&path, "-- migrate:up\nselect 1;\n").unwrap();
        let findings = lint_migrations(&[&migration]).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "drop-table");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn lint(sql: &str) -> Vec<LintFinding> {
        let mut linter = Linter::new();
        linter.add_sql("f.sql", sql).unwrap();
        linter.findings()
    }

    /// `line:rule`, `+` when opted in.
    fn rules(sql: &str) -> Vec<String> {
        lint(sql)
            .into_iter()
            .map(|f| format!("{}:{}{}", f.line, f.rule, if f.allowed { "+" } else { "" }))
            .collect()
    }

    /// The rules that stop a run on a confirm env.
    fn blocking_on(sql: &str, protection: Option<Protection>) -> Vec<String> {
        let findings = lint(sql);
        blocking(&findings, protection)
            .into_iter()
            .map(|f| f.rule.clone())
            .collect()
    }

    fn blocks_on_confirm(sql: &str, rule: &str) {
        let found = blocking_on(sql, Some(Protection::Confirm));
        assert!(
            found.iter().any(|r| r == rule),
            "{sql}: {found:?} lacks {rule}"
        );
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
                "2:cascade",
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
        // The function body is judged now (it used to be skipped): a DELETE with WHERE is safe.
        let sql = "create table t (id int primary key, n int not null);\ncreate index on t (n);\n\
                   alter table t alter column n type bigint;\n\
                   select 'drop table x';\n-- drop table y;\n\
                   create function f() returns void language sql as $$ delete from t where id = 0 $$;\n\
                   delete from t where id = 1;\nupdate t set n = 2 where id = 1;\n\
                   alter table u add column c int not null default 0;\n\
                   alter table u add constraint fk foreign key (c) references t (id) not valid;\n\
                   create index concurrently on u (c);\nselect f();\ndrop table t;\n\
                   insert into t (id, n) values (1, 2) on conflict (id) do update set n = excluded.n;\n\
                   set lock_timeout = '5s';\nreset search_path;\n\
                   create table c (p int references u (c) on delete cascade on update cascade);\n\
                   comment on table c is 'children';\ngrant select on c to reader;\n\
                   create view v as select count(*) from c;\ndrop view v;\n";
        assert_eq!(rules(sql), Vec::<String>::new());
    }

    /// WHERE clauses that bound something, upserts of literal rows, GRANT, and constraints of
    /// a table the run itself created stay quiet under the hardened rules.
    #[test]
    fn bounded_writes_and_seed_upserts_are_not_findings() {
        let sql = "delete from t where id = 1;\nupdate t set n = 2 where slug = 'x';\n\
                   delete from t where created_at < now() - interval '30 days';\n\
                   delete from t where id in (1, 2, 3);\nupdate t set n = 1 where id = 1 or id = 2;\n\
                   delete from t using u where t.u_id = u.id and t.id = 4;\n\
                   update t set n = u.n from u where u.id = t.u_id and t.kind in ('a', 'b');\n\
                   delete from t where id = any($1);\ndelete from t where n between 1 and 9;\n\
                   delete from t x where x.id = 1::bigint;\nupdate t set n = 1 where lower(s) = lower('X');\n\
                   delete from public.t where public.t.id = 2;\n\
                   delete from t where id = 1 or false;\nupdate t set n = 0 where id = 1 and true;\n\
                   delete from t where deleted_at is null and id = 3;\n\
                   delete from t where not (id = 3);\ndelete from t where deleted_at is null;\n\
                   insert into t (id, n) values (1, 2) on conflict (id) do update set n = excluded.n;\n\
                   insert into t (id) values (1) on conflict do nothing;\n\
                   insert into t (id, n) select 1, 2 on conflict (id) do update set n = excluded.n;\n\
                   insert into t (id) select id from u on conflict do nothing;\n\
                   insert into t (id) select id from u;\n\
                   grant select on t to reader;\n";
        assert_eq!(rules(sql), Vec::<String>::new());
        let sql = "create table n (id int, constraint n_pk primary key (id));\n\
                   alter table n drop constraint n_pk;\nreset search_path;\nselect nextval('s');\n\
                   create function app_lower(t text) returns text language sql as 'select lower(t)';\n\
                   create procedure now() language sql as 'select 1';\n";
        assert_eq!(rules(sql), Vec::<String>::new());
        // Function and DO bodies are judged by the same code.
        let sql = "create function bump(target int) returns void language plpgsql as $$\n\
                   begin update t set n = n + 1 where id = target; end $$;\n\
                   do $$ begin delete from t where id = 1; end $$;\n\
                   create function f(k int) returns void language sql as 'delete from t where id = k';\n\
                   create function g() returns trigger language plpgsql as $$\n\
                   begin update t set n = new.n where id = old.id; return new; end $$;\n\
                   do $$ declare r record; begin\n\
                   for r in select id from t loop delete from t where id = r.id; end loop;\n\
                   update t set n = 0 where current of c; end $$;\n";
        assert_eq!(rules(sql), Vec::<String>::new());
    }

    /// Statements that once passed as safe on a confirm env yet destroy or corrupt data.
    #[test]
    fn hardened_rules_fire() {
        // WHERE clauses that bound nothing.
        for (sql, rule) in [
            ("delete from t where id = id;", "delete-without-where"),
            ("update t set n = 1 where t.id = t.id;", "update-without-where"),
            ("delete from t where n >= n;", "delete-without-where"),
            ("delete from t where lower(s) <= lower(s);", "delete-without-where"),
            ("delete from t where a is not distinct from a;", "delete-without-where"),
            ("delete from t where id is not null;", "delete-without-where"),
            ("delete from t where not (id is null);", "delete-without-where"),
            ("update t set n = 1 where id = 5 or n is not null;", "update-without-where"),
            ("delete from t where true;", "delete-without-where"),
            ("delete from t where 1 = 1;", "delete-without-where"),
            ("delete from t where 1 < 2;", "delete-without-where"),
            ("delete from t where id = 5 or true;", "delete-without-where"),
            ("delete from t where id = 5 or 1 = 1;", "delete-without-where"),
            ("update t set n = 1 where id = 5 or 'a' = 'a';", "update-without-where"),
            ("delete from t where (id = 5 or id = id) and 1 = 1;", "delete-without-where"),
            ("delete from t where id is not null and n = n;", "delete-without-where"),
            ("with d as (delete from t where id = id returning *) select 1;", "delete-without-where"),
            ("do $$ begin delete from t where id = id; end $$;", "delete-without-where"),
            ("create function f() returns void language sql as 'update t set n = 1 where n is not null';", "update-without-where"),
            ("create function f() returns void language plpgsql as $$ begin update t set n = 1 where 2 > 1 or id = 3; end $$;", "update-without-where"),
            ("merge into t using u on t.id = t.id when matched then update set n = 1;", "update-without-where"),
            // Naming a column is not enough: the WHERE must compare a target column to a value.
            ("delete from t where id = id + 0;", "delete-without-where"),
            ("delete from t where id in (select id from t);", "delete-without-where"),
            ("delete from t where id = any(select id from t);", "delete-without-where"),
            ("delete from t where exists (select 1 from u where u.id = t.id);", "delete-without-where"),
            ("delete from t using u where t.u_id = u.id and u.gone;", "delete-without-where"),
            ("delete from t using u where t.u_id = u.id and u.id = 3;", "delete-without-where"),
            ("delete from t a using t b where a.x = b.x;", "delete-without-where"),
            ("update t set n = u.n from u where u.id = t.u_id;", "update-without-where"),
            ("update t set n = n + 1 where id = n;", "update-without-where"),
            ("delete from t where (id = id) is true;", "delete-without-where"),
            ("delete from t where gone;", "delete-without-where"),
            ("delete from t where id = 1 or id = n;", "delete-without-where"),
            ("delete from t where id = (select max(id) from t);", "delete-without-where"),
            ("with d as (delete from t where id = id + 0 returning *) select 1;", "delete-without-where"),
            ("do $$ begin update t set n = 1 where id = n; end $$;", "update-without-where"),
            ("create function f(k int) returns void language sql as 'delete from t where id = id + k';", "delete-without-where"),
            ("create function f() returns void language plpgsql as $$ begin delete from t where id in (select id from u); end $$;", "delete-without-where"),
        ] {
            blocks_on_confirm(sql, rule);
        }
        let findings = lint("delete from t where id = id;");
        assert!(
            findings[0]
                .message
                .ends_with("(t: its WHERE bounds nothing)"),
            "{findings:?}"
        );
        let findings = lint("delete from t where id = id + 0;");
        assert!(
            findings[0]
                .message
                .ends_with("(t: its WHERE is not bounded by a value)"),
            "{findings:?}"
        );
        // MERGE updates from a table or query; VALUES and a SELECT without FROM pass.
        for sql in [
            "merge into t using u on t.id = u.id when matched then update set n = u.n;",
            "merge into t using (select id, n from u) s on t.id = s.id when matched then update set n = s.n;",
            "merge into t using generate_series(1, 10) g(id) on t.id = g.id when matched then update set n = 0;",
            "merge into t using (select 1 as id union select 2) s on t.id = s.id when matched then update set n = 0;",
            "do $$ begin merge into t using u on t.id = u.id when matched then update set n = 1; end $$;",
        ] {
            blocks_on_confirm(sql, "merge-update");
        }
        let sql = "merge into t using (values (1, 2)) s (id, n) on t.id = s.id when matched then update set n = s.n;\n\
                   merge into t using (select 1 as id, 2 as n) s on t.id = s.id when matched then update set n = s.n \
                   when not matched then insert (id, n) values (s.id, s.n);\n";
        assert_eq!(rules(sql), Vec::<String>::new());
        // CREATE OR REPLACE of what the run did not create; triggers on existing tables;
        // CREATE SCHEMA.
        for (sql, rule) in [
            ("create or replace function f() returns int language sql as 'select 1';", "replace"),
            ("create or replace procedure p() language sql as 'select 1';", "replace"),
            ("create or replace view v as select 1;", "replace"),
            ("create or replace trigger tr after insert on t for each row execute function suppress_redundant_updates_trigger();", "replace"),
            ("create or replace rule r as on insert to t do instead nothing;", "replace"),
            ("create function f() returns int language sql as 'select 1';\ncreate or replace function g() returns int language sql as 'select 1';", "replace"),
            ("create trigger tr before insert on t for each row execute function suppress_redundant_updates_trigger();", "trigger-on-existing-table"),
            ("create trigger tr instead of insert on v for each row execute function suppress_redundant_updates_trigger();", "trigger-on-existing-table"),
            ("create schema app;", "search-path"),
            ("create schema if not exists reporting;", "search-path"),
            ("create schema authorization app;", "search-path"),
        ] {
            blocks_on_confirm(sql, rule);
        }
        let sql = "create function f() returns int language sql as 'select 1';\n\
                   create or replace function f() returns int language sql as 'select 2';\n\
                   create or replace function public.f() returns int language sql as 'select 3';\n\
                   create view v as select 1 as x;\ncreate or replace view v as select 2 as x;\n\
                   create table t2 (id int);\n\
                   create function touch() returns trigger language plpgsql as $$ begin return new; end $$;\n\
                   create trigger tr before update on t2 for each row execute function touch();\n\
                   create or replace trigger tr before update on t2 for each row execute function touch();\n";
        assert_eq!(rules(sql), Vec::<String>::new());
        // Upserts whose rows come from a query.
        for sql in [
            "insert into t (id, n) select id, n from u on conflict (id) do update set n = excluded.n;",
            "insert into t (id) select id from u join v using (id) on conflict (id) do update set n = 0;",
            "insert into t (id) (select id from u union select 1) on conflict (id) do update set n = 0;",
            "with s as (select id from u) insert into t (id) select id from s on conflict (id) do update set n = 0;",
            "with x as (insert into t (id) select id from u on conflict (id) do update set n = 0 returning 1) select 1;",
            "explain analyze insert into t (id) select id from u on conflict (id) do update set n = 0;",
            "do $$ begin insert into t (id) select id from u on conflict (id) do update set n = 0; end $$;",
            "insert into t (id) select g from generate_series(1, 100) g on conflict (id) do update set n = 0;",
            "insert into t (id) select id from (select 1 as id) s on conflict (id) do update set n = 0;",
            "insert into t (id) select x from unnest(array[1, 2]) x on conflict (id) do update set n = 0;",
            "insert into t (id) select * from (values (1)) v (id) on conflict (id) do update set n = 0;",
        ] {
            blocks_on_confirm(sql, "upsert-from-query");
        }
        for (sql, rule) in [
            ("select setval('t_id_seq', 1);", "sequence-reset"),
            ("select pg_catalog.setval('t_id_seq', (select max(id) from t));", "sequence-reset"),
            ("alter sequence t_id_seq restart;", "sequence-reset"),
            ("alter sequence t_id_seq restart with 1;", "sequence-reset"),
            ("alter table t alter column id restart with 1;", "sequence-reset"),
            ("do $$ begin perform setval('s', 1); end $$;", "sequence-reset"),
            ("alter table t drop constraint t_pkey;", "drop-constraint"),
            ("alter table t drop constraint if exists t_n_check;", "drop-constraint"),
            ("alter table t enable row level security;", "row-security"),
            ("alter table t force row level security;", "row-security"),
            ("create policy p on t using (false);", "row-security"),
            ("alter policy p on t using (false);", "row-security"),
            ("alter default privileges revoke all on tables from app;", "privileges"),
            ("alter default privileges grant select on tables to reader;", "privileges"),
            ("revoke all on t from app;", "privileges"),
            ("revoke usage on schema public from public;", "privileges"),
            ("set search_path = evil, public;", "search-path"),
            ("set local search_path to evil;", "search-path"),
            ("select set_config('search_path', 'evil, public', false);", "search-path"),
            ("select pg_catalog.set_config('search_path', '', true);", "search-path"),
            ("do $$ begin set search_path = evil; end $$;", "search-path"),
            ("create function to_jsonb(anyelement) returns jsonb language sql as 'select null::jsonb';", "shadows-builtin"),
            ("create or replace function public.now() returns timestamptz language sql as 'select null::timestamptz';", "shadows-builtin"),
            ("create function evil.set_config(text, text, boolean) returns text language sql as 'select 1::text';", "shadows-builtin"),
            ("create function \"lower\"(text) returns text language sql as 'select 1::text';", "shadows-builtin"),
            ("create function pg_try_advisory_lock(bigint) returns boolean language sql as 'select true';", "shadows-builtin"),
            ("create aggregate count(int) (sfunc = int4pl, stype = int);", "shadows-builtin"),
            ("create operator = (leftarg = text, rightarg = text, function = texteq);", "shadows-builtin"),
            ("create operator public.|| (leftarg = text, rightarg = text, function = textcat);", "shadows-builtin"),
        ] {
            blocks_on_confirm(sql, rule);
        }
        // Each is opted in like any protected rule.
        let sql = "-- dbguard:allow sequence-reset, search-path: sync ids after the import\n\
                   select setval('t_id_seq', (select max(id) from t));\nset search_path = app;\n";
        assert_eq!(rules(sql), ["2:sequence-reset+", "3:search-path+"]);
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
        let block = allowed_rules("f.sql", "select 1;\n/* dbguard:allow cascade */\n").unwrap();
        assert!(block.contains(&Rule::Cascade));
    }

    #[test]
    fn opt_ins_inside_strings_and_bodies_do_not_count() {
        let sql = "select '-- dbguard:allow drop-table';\ndrop table t;\n";
        assert_eq!(rules(sql), ["2:drop-table"]);
        let sql = "create function f() returns int language plpgsql as $$\nbegin\n\
                   -- dbguard:allow truncate\nreturn 1;\nend $$;\ntruncate t;\n";
        assert_eq!(rules(sql), ["6:truncate"]);
        // Nor does a typo inside a string stop the lint.
        assert!(allowed_rules("f.sql", "select 'dbguard:allow nonsense';")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn invalid_sql_names_file_and_line() {
        let mut linter = Linter::new();
        let text = "select 1;\nselec 2;\n";
        let error = linter.add_blocks("m.sql", text, &[(text, 3)]).unwrap_err();
        assert!(
            error.to_string().starts_with("m.sql:4: syntax error"),
            "{error}"
        );
    }

    /// Every walk-around that once ran on a confirm env with no finding.
    #[test]
    fn known_walk_arounds_block_on_protected_envs() {
        blocks_on_confirm(
            "create table if not exists t (id int);\ndrop table t;",
            "drop-table",
        );
        blocks_on_confirm("drop type mood cascade;", "cascade");
        blocks_on_confirm("drop type mood;", "drop");
        blocks_on_confirm(
            "with d as (delete from t returning *) select * from d;",
            "delete-without-where",
        );
        blocks_on_confirm(
            "with u as (update t set x = 1 returning *) select 1;",
            "update-without-where",
        );
        blocks_on_confirm("explain analyze delete from t;", "delete-without-where");
        blocks_on_confirm(
            "explain (analyze) update t set x = 1;",
            "update-without-where",
        );
        blocks_on_confirm(
            "prepare p as delete from t;\nexecute p;",
            "delete-without-where",
        );
        blocks_on_confirm("execute q;", "unknown-prepared");
        blocks_on_confirm(
            "merge into t using s on t.id = s.id when matched then delete;",
            "merge-delete",
        );
        blocks_on_confirm(
            "merge into t using t as s on true when matched then update set x = 1;",
            "update-without-where",
        );
        blocks_on_confirm("do $$ begin drop table t; end $$;", "drop-table");
        blocks_on_confirm(
            "do $$ begin execute 'drop table ' || 't'; end $$;",
            "dynamic-sql",
        );
        blocks_on_confirm(
            "create function wipe() returns void language plpgsql as $$\nbegin\n  drop table t;\nend $$;\nselect wipe();",
            "drop-table",
        );
        blocks_on_confirm(
            "create function wipe() returns void language sql as 'truncate t';",
            "truncate",
        );
        blocks_on_confirm(
            "create procedure wipe() language sql begin atomic delete from t; end;\ncall wipe();",
            "delete-without-where",
        );
        blocks_on_confirm("alter schema app rename to old_app;", "rename");
        blocks_on_confirm("alter table t set schema archive;", "set-schema");
        for kind in [
            "view v",
            "sequence s",
            "domain d",
            "extension e",
            "function f()",
        ] {
            let sql = format!("drop {kind} cascade;");
            blocks_on_confirm(&sql, "cascade");
            blocks_on_confirm(&sql, "drop");
        }
        blocks_on_confirm("delete from t where true;", "delete-without-where");
        blocks_on_confirm("update t set x = 1 where 1 = 1;", "update-without-where");
        blocks_on_confirm("select evil();", "unknown-function");
        blocks_on_confirm("call public.evil();", "unknown-function");
        blocks_on_confirm("set session_replication_role = replica;", "unclassified");
        blocks_on_confirm(
            "select set_config('session_replication_role', 'replica', false);",
            "unclassified",
        );
        blocks_on_confirm("load 'evil';", "unclassified");
        blocks_on_confirm("alter table t disable trigger all;", "unclassified");
        blocks_on_confirm(
            "create rule r as on insert to t do instead nothing;",
            "create-rule",
        );
        blocks_on_confirm("copy t from '/etc/passwd';", "unclassified");
        blocks_on_confirm("alter table t drop constraint k cascade;", "cascade");
        blocks_on_confirm("revoke select on t from r cascade;", "cascade");
    }

    #[test]
    fn messages_name_what_is_unknown() {
        let messages: Vec<String> = lint(
            "create cast (text as int) with inout;\nalter table t set unlogged;\n\
             set session_replication_role = replica;\ncreate function f() returns int language plperl as 'return 1';\n",
        )
        .into_iter()
        .map(|f| format!("{}: {}", f.rule, f.message))
        .collect();
        let expected = [
            "(CreateCastStmt is not a statement the lint knows to be safe)",
            "(ALTER TABLE t: AT_SetUnLogged is not an action the lint knows to be safe)",
            "(setting session_replication_role is not one the lint knows to be harmless)",
            "(a body in language plperl, which the lint cannot read) (in function f())",
        ];
        assert_eq!(messages.len(), expected.len(), "{messages:#?}");
        for (message, end) in messages.iter().zip(expected) {
            assert!(message.starts_with("unclassified: "), "{message}");
            assert!(message.ends_with(end), "{message}");
        }
    }

    #[test]
    fn drop_owned_in_a_transaction_false_section_blocks_everywhere() {
        let dir = std::env::temp_dir().join(format!("dbguard-lint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("20260101000009_cleanup.sql");
        std::fs::write(
            &path,
            "-- migrate:up transaction:false\nDROP OWNED BY CURRENT_USER;\n-- migrate:down\n",
        )
        .unwrap();
        let findings = lint_files(&[&path]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let stop = blocking(&findings, Some(Protection::Open));
        assert_eq!(stop.len(), 1, "{findings:?}");
        assert_eq!((stop[0].rule.as_str(), stop[0].line), ("role", 2));
        assert_eq!(stop[0].enforcement, Enforcement::Everywhere);
    }

    #[test]
    fn function_calls_are_known_when_the_run_defines_them() {
        // Top-level SQL runs now: the function must be defined before it.
        assert_eq!(
            rules(
                "select later();\ncreate function later() returns int language sql as 'select 1';"
            ),
            ["1:unknown-function"]
        );
        // A body runs later: any function of the run is known by then.
        let sql =
            "create function a() returns int language plpgsql as $$ begin return b(); end $$;\n\
                   create function b() returns int language sql as 'select 1';\nselect a();";
        assert_eq!(rules(sql), Vec::<String>::new());
        // Across files of one run.
        let mut linter = Linter::new();
        linter
            .add_sql(
                "1.sql",
                "create function app_now() returns timestamptz language sql as 'select now()';",
            )
            .unwrap();
        linter
            .add_sql("2.sql", "insert into t (at) values (app_now());")
            .unwrap();
        assert_eq!(linter.findings(), Vec::new());
        // Findings in a body name it and carry the line of its CREATE.
        let findings = lint("select 1;\ncreate function f() returns void language plpgsql as $$\nbegin\n  delete from t;\nend $$;");
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].line, 2);
        assert!(
            findings[0].message.ends_with("(t) (in function f())"),
            "{}",
            findings[0].message
        );
        let findings = lint("do $$ begin perform evil(); end $$;");
        assert!(
            findings[0].message.ends_with("(evil()) (in a DO block)"),
            "{findings:?}"
        );
    }

    #[test]
    fn trigger_functions_are_read_with_their_variables() {
        let sql = "create table t (id int, updated_at timestamptz);\n\
                   create function touch() returns trigger language plpgsql as $$\n\
                   begin\n  new.updated_at := now();\n  if tg_op = 'UPDATE' then return new; end if;\n  return old;\nend;\n$$;\n\
                   create trigger t_touch before update on t for each row execute function touch();\n\
                   create function ddl_note() returns event_trigger language plpgsql as $$ begin raise notice '%', tg_tag; end $$;\n";
        // The event trigger itself is not on the list; its function is fine.
        assert_eq!(rules(sql), Vec::<String>::new());
        let sql = "create function purge() returns trigger language plpgsql as $$\n\
                   begin delete from audit; return null; end $$;\n\
                   create function rows_of(t text) returns setof record language plpgsql as $$\n\
                   begin return query execute format('select * from %I', t); end $$;\n";
        assert_eq!(rules(sql), ["1:delete-without-where", "3:dynamic-sql"]);
    }

    #[test]
    fn the_dbtools_schema_is_forbidden_whatever_the_file_says() {
        for sql in [
            "delete from dbtools.applied where version = '1';",
            "insert into \"dbtools\".audit (x) values (1);",
            "set search_path = dbtools, public;",
            "set search_path to 'dbtools';",
            "select set_config('search_path', 'public, dbtools', false);",
            "select 'dbtools.stamp'::regclass;",
            "select setval(E'dbt\\157ols.seq', 1);",
            "create schema if not exists dbtools;",
            "do $$ begin update dbtools.stamp set env = 'x' where true; end $$;",
            "alter table t set schema dbtools;",
        ] {
            let found = blocking_on(
                &format!("-- dbguard:allow set-schema, update-without-where: x\n{sql}"),
                Some(Protection::Open),
            );
            assert_eq!(
                found.first().map(String::as_str),
                Some("dbtools-schema"),
                "{sql}: {found:?}"
            );
        }
        let error = allowed_rules("f.sql", "-- dbguard:allow dbtools-schema: mine\n").unwrap_err();
        assert!(error.to_string().contains("cannot be opted in"), "{error}");
        // The product's name in data is not a reference to the schema.
        assert_eq!(
            rules("insert into tools (name) values ('dbtools');"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn cross_database_and_role_statements_block_on_open_envs_unless_opted_in() {
        let sql = "create role app_reader;\ncreate database other;\ngrant admin to app;\n\
                   alter database app set work_mem = '64MB';\nreassign owned by a to b;\nset role postgres;\n";
        let open = blocking_on(sql, Some(Protection::Open));
        assert_eq!(
            open,
            [
                "role",
                "cross-database",
                "role",
                "cross-database",
                "role",
                "role"
            ]
        );
        let allowed =
            format!("-- dbguard:allow role, cross-database: the reader role, once\n{sql}");
        assert_eq!(
            blocking_on(&allowed, Some(Protection::Open)),
            Vec::<String>::new()
        );
        assert_eq!(
            blocking_on(&allowed, Some(Protection::Locked)),
            Vec::<String>::new()
        );
        // Protected rules only warn on open envs.
        let findings = lint("truncate t;");
        assert!(blocking(&findings, Some(Protection::Open)).is_empty());
        assert_eq!(warnings(&findings, Some(Protection::Open)).len(), 1);
        assert_eq!(blocking(&findings, None).len(), 1);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let findings = lint("truncate t;");
        let stop = blocking(&findings, Some(Protection::Confirm));
        assert_eq!(
            refusal("test", Protection::Confirm, &stop, "nothing was applied"),
            "env test is confirm: f.sql:1: truncate: TRUNCATE deletes every row (t); nothing was applied. If it is intended, add `-- dbguard:allow truncate: <reason>` to the file"
        );
        let findings = lint("create role r;\ndelete from dbtools.audit where true;");
        let stop = blocking(&findings, Some(Protection::Open));
        let message = refusal("dev", Protection::Open, &stop, "nothing was seeded");
        assert!(
            message.starts_with("env dev is open: f.sql:2: dbtools-schema: "),
            "{message}"
        );
        assert!(message.contains("(and 1 more"), "{message}");
        assert!(message.ends_with("this cannot be opted in"), "{message}");
        let findings = lint("create role r;");
        let stop = blocking(&findings, Some(Protection::Open));
        let message = refusal("dev", Protection::Open, &stop, "nothing was applied");
        assert!(
            message.starts_with("env dev is open, but role blocks on every env: "),
            "{message}"
        );
    }

    #[test]
    fn lines_stay_right_over_many_statements() {
        let mut sql = String::new();
        for i in 0..2000 {
            sql.push_str(&format!("insert into t (id) values ({i});\n"));
        }
        sql.push_str("-- a comment\n\ndelete from t;\n");
        assert_eq!(rules(&sql), ["2003:delete-without-where"]);
    }

    #[test]
    fn big_blocks_are_parsed_in_chunks_whatever_the_cut() {
        // 6553 ten-byte statements end at 65530: the next `;` outside parentheses, inside the
        // BEGIN ATOMIC body, is past 64 KiB, where the chunk is cut and the parser disagrees.
        let mut sql = "select 1;\n".repeat(6553);
        sql.push_str("create procedure p() language sql begin atomic delete from t; end;\n");
        sql.push_str(&"select 2;\n".repeat(7000));
        sql.push_str("truncate t;\n");
        assert_eq!(rules(&sql), ["6554:delete-without-where", "13555:truncate"]);
        let mut broken = "select 1;\n".repeat(20_000);
        broken.push_str("selec 2;\n");
        let mut linter = Linter::new();
        let error = linter.add_sql("big.sql", &broken).unwrap_err();
        assert!(
            error.to_string().starts_with("big.sql:20001: syntax error"),
            "{error}"
        );
    }

    #[test]
    fn a_tree_too_deep_to_read_is_an_error_with_its_line_wherever_it_is() {
        // Past the first chunk, so a worker parses it; the error is found again on this thread,
        // which gets a main thread's stack.
        let mut sql = "select 1;\n".repeat(20_000);
        sql.push_str(&format!(
            "select {}1{};\n",
            "abs(".repeat(200),
            ")".repeat(200)
        ));
        sql.push_str(&"select 2;\n".repeat(1000));
        let error = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn(move || Linter::new().add_sql("deep.sql", &sql).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        assert!(
            error
                .to_string()
                .starts_with("deep.sql:20001: nested too deeply to read"),
            "{error}"
        );
    }

    /// The example app's migrations and seeds are ordinary schema work: nothing in them may
    /// block on a confirm env without an opt-in.
    #[test]
    fn the_example_app_lints_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // Two runs, as the tools make them: the migrations, then the seeds.
        for top in ["migrations", "seeds"] {
            let mut files = Vec::new();
            let mut dirs = vec![root.join(top)];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else if path.extension().is_some_and(|e| e == "sql") {
                        files.push(path);
                    }
                }
            }
            files.sort();
            assert!(files.len() >= 2, "{files:?}");
            let findings = lint_files(&files).unwrap();
            let stop = blocking(&findings, Some(Protection::Confirm));
            assert!(stop.is_empty(), "{stop:#?}");
            assert!(findings.is_empty(), "{findings:#?}");
            // And one at a time, as a team applies them over weeks: each pending alone.
            if top == "migrations" {
                for file in &files {
                    let alone = lint_files(std::slice::from_ref(file)).unwrap();
                    let stop = blocking(&alone, Some(Protection::Confirm));
                    assert!(stop.is_empty(), "{}: {stop:#?}", file.display());
                }
            }
        }
    }
}
