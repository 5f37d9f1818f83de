//! The classifier behind the lint: one statement's complete pg_query tree in, the rules it
//! breaks out. "Unknown means refused": a statement kind, ALTER TABLE action, setting or
//! function call not known to be safe is itself a finding.
//!
//! Three passes over each statement, because each sees what the others cannot:
//! - its **tokens** (PostgreSQL's scanner): `CASCADE` and any mention of the `dbtools` schema,
//!   wherever in the statement they are, outside string literals and comments (a string that
//!   names `dbtools.` or puts it in a search path counts too);
//! - its **kind**, read from the typed tree: the allowlist of statement kinds, the specific
//!   rules (drop-table, rename, …), and the bodies of functions and DO blocks, whose PL/pgSQL
//!   (`pg_query::parse_plpgsql`) hands back each SQL statement and expression as text, judged
//!   again by these same three passes;
//! - its **whole tree**, walked generically through the tree's serde form: DML wherever it
//!   hides (data-modifying CTEs, EXPLAIN ANALYZE, PREPARE, rule actions), every function call,
//!   every EXECUTE of a prepared statement. The walk goes through the tree's `Serialize` impl
//!   with a serializer that writes nothing (see `stream`), which keeps big seeds linear and fast.

mod stream;

use super::known::{self, Setting};
use super::Rule;
use pg_query::protobuf::{
    AExprKind, AlterTableType, BoolExprType, CmdType, ConstrType, MergeMatchKind, NullTestType,
    ObjectType, OnConflictAction, RangeVar, ScanToken, Token, VariableSetKind,
};
use pg_query::{Node, NodeEnum};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One rule broken, with a detail naming what it touches (and where, inside a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) rule: Rule,
    pub(super) detail: String,
    /// For a call inside a function body to a function not (yet) defined: `(schema, name)`.
    /// The body runs later, so a definition anywhere in the run settles it
    /// ([`Judge::defines`] once every file is judged).
    pub(super) unless_defined: Option<(String, String)>,
    /// For a rule whose cost grows with an existing table: that table, quoted as `to_regclass`
    /// reads it, so a caller with a connection can weigh it.
    pub(super) table: Option<String>,
}

/// Function names, each with the schemas it was defined under ("" when unqualified).
#[derive(Debug, Default)]
struct Functions {
    names: BTreeMap<String, BTreeSet<String>>,
}

impl Functions {
    fn define(&mut self, funcname: &[Node]) {
        let (schema, name) = split_name(&strings(funcname));
        self.names.entry(name).or_default().insert(schema);
    }

    /// An unqualified call finds any definition of the name; a qualified one needs the same
    /// schema, or an unqualified definition when the call says `public` (where those land).
    fn contains(&self, schema: &str, name: &str) -> bool {
        self.names.get(name).is_some_and(|schemas| {
            schema.is_empty()
                || schemas.contains(schema)
                || (schema == "public" && schemas.contains(""))
        })
    }
}

/// What a statement is judged within: at top level, or inside a body (named for messages).
#[derive(Debug, Clone)]
struct Scope {
    /// "" at top level; e.g. "function f()" or "function g() in a DO block" inside a body.
    within: String,
    /// True when the SQL runs as the migration runs (top level, a top-level DO block): it may
    /// call the functions defined before it. False in a function body, which runs whenever it
    /// is called, by then with every function of the run defined.
    runs_now: bool,
    /// Inside a function or DO body: the names that read as column references yet are values
    /// there (PL/pgSQL variables and parameters, `new`, `old`, an SQL function's parameters),
    /// lower case. Empty at top level.
    values: BTreeSet<String>,
}

/// The text one statement came from and its scanner tokens.
pub(super) struct Source<'a> {
    /// The text the tokens' offsets index into.
    pub(super) sql: &'a str,
    /// The statement's own text (a slice of `sql`).
    pub(super) statement: &'a str,
    pub(super) tokens: &'a [ScanToken],
}

/// Judges the statements of one lint run in order, remembering what they created, defined
/// and prepared.
#[derive(Default)]
pub(super) struct Judge {
    /// The functions defined by the statements judged so far.
    defined: Functions,
    prepared: BTreeSet<String>,
    /// Objects created (not `IF NOT EXISTS`, not `OR REPLACE`) by the statements so far, as
    /// `<object type>:<name>`: indexes, constraints and drops on them endanger nothing.
    created: BTreeSet<String>,
    found: Vec<Found>,
}

impl Judge {
    /// Whether the statements judged so far define `schema.name`.
    pub(super) fn defines(&self, schema: &str, name: &str) -> bool {
        self.defined.contains(schema, name)
    }

    /// Every rule one top-level statement breaks (each once).
    pub(super) fn statement(&mut self, node: &NodeEnum, source: &Source) -> Vec<Found> {
        let top = Scope {
            within: String::new(),
            runs_now: true,
            values: BTreeSet::new(),
        };
        self.judge(node, source, &top);
        let mut found = std::mem::take(&mut self.found);
        let mut seen = BTreeSet::new();
        found.retain(|f| seen.insert((f.rule, f.detail.clone())));
        // One reference to the guard's schema is enough to refuse; more would only repeat it.
        let mut forbidden = false;
        found.retain(|f| f.rule != Rule::DbtoolsSchema || !std::mem::replace(&mut forbidden, true));
        found
    }

    fn judge(&mut self, node: &NodeEnum, source: &Source, scope: &Scope) {
        self.tokens(source, scope);
        self.kind(node, source, scope);
        self.tree(node, scope);
    }

    fn push(&mut self, rule: Rule, detail: impl Into<String>, scope: &Scope) {
        let mut detail = detail.into();
        if !scope.within.is_empty() {
            detail.push_str(&format!(" (in {})", scope.within));
        }
        self.found.push(Found {
            rule,
            detail,
            unless_defined: None,
            table: None,
        });
    }

    /// [`Judge::push`] for a rule whose cost grows with `relation`'s size.
    fn push_sized(
        &mut self,
        rule: Rule,
        relation: Option<&RangeVar>,
        detail: impl Into<String>,
        scope: &Scope,
    ) {
        self.push(rule, detail, scope);
        if let (Some(last), Some(relation)) = (self.found.last_mut(), relation) {
            last.table = Some(crate::sql::quoted_relation(relation));
        }
    }

    /// A call of `schema.name` that is not a known built-in: fine once defined; SQL that runs
    /// now needs the definition before it, a body only somewhere in the run.
    fn called(&mut self, schema: &str, name: &str, detail: String, scope: &Scope) {
        if self.defined.contains(schema, name) {
            return;
        }
        self.push(Rule::UnknownFunction, detail, scope);
        if !scope.runs_now {
            if let Some(last) = self.found.last_mut() {
                last.unless_defined = Some((schema.to_string(), name.to_string()));
            }
        }
    }

    /// Pass 1: tokens. `CASCADE` (but not a foreign key's `ON DELETE/UPDATE CASCADE`) and the
    /// `dbtools` schema named anywhere.
    fn tokens(&mut self, source: &Source, scope: &Scope) {
        // A bare `dbtools` string counts where the statement sets a search path or schema.
        let sets_path = source.tokens.iter().any(|t| {
            let text = source
                .sql
                .get(t.start.max(0) as usize..t.end.max(0) as usize)
                .unwrap_or_default();
            t.token == Token::Schema as i32
                || ((t.token == Token::Ident as i32 || t.token == Token::Sconst as i32)
                    && text.trim_matches('\'').eq_ignore_ascii_case("search_path"))
        });
        let mut previous = None;
        for token in source.tokens {
            let kind = token.token;
            if kind == Token::SqlComment as i32 || kind == Token::CComment as i32 {
                continue;
            }
            let text = source
                .sql
                .get(token.start.max(0) as usize..token.end.max(0) as usize)
                .unwrap_or_default();
            if kind == Token::Cascade as i32
                && previous != Some(Token::DeleteP as i32)
                && previous != Some(Token::Update as i32)
            {
                self.push(Rule::Cascade, "", scope);
            } else if (kind == Token::Ident as i32 || kind == Token::Uident as i32)
                && identifier(text, kind) == "dbtools"
            {
                self.push(Rule::DbtoolsSchema, " (names the dbtools schema)", scope);
            } else if (kind == Token::Sconst as i32 || kind == Token::Usconst as i32)
                && match dbtools_mention(&string_constant(text)) {
                    Mention::Qualified => true,
                    Mention::Item => sets_path,
                    Mention::None => false,
                }
            {
                self.push(
                    Rule::DbtoolsSchema,
                    " (a string names the dbtools schema)",
                    scope,
                );
            }
            previous = Some(kind);
        }
    }

    /// Pass 2: the statement's kind, from the typed tree.
    fn kind(&mut self, node: &NodeEnum, source: &Source, scope: &Scope) {
        self.upserts(node, scope);
        match node {
            // Reads, writes with their own rules in pass 3, and harmless utility statements.
            NodeEnum::SelectStmt(_)
            | NodeEnum::InsertStmt(_)
            | NodeEnum::UpdateStmt(_)
            | NodeEnum::DeleteStmt(_)
            | NodeEnum::MergeStmt(_)
            | NodeEnum::ExplainStmt(_)
            | NodeEnum::ExecuteStmt(_)
            | NodeEnum::DeallocateStmt(_)
            | NodeEnum::DeclareCursorStmt(_)
            | NodeEnum::FetchStmt(_)
            | NodeEnum::ClosePortalStmt(_)
            | NodeEnum::PlassignStmt(_)
            | NodeEnum::ReturnStmt(_)
            | NodeEnum::VariableShowStmt(_)
            | NodeEnum::TransactionStmt(_)
            | NodeEnum::ConstraintsSetStmt(_)
            | NodeEnum::LockStmt(_)
            | NodeEnum::VacuumStmt(_)
            | NodeEnum::ReindexStmt(_)
            | NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::NotifyStmt(_)
            | NodeEnum::ListenStmt(_)
            | NodeEnum::UnlistenStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::CreateStatsStmt(_)
            | NodeEnum::AlterDomainStmt(_) => {}
            NodeEnum::GrantStmt(grant) if grant.is_grant => {}
            NodeEnum::GrantStmt(_) => self.push(Rule::Privileges, " (REVOKE)", scope),
            NodeEnum::AlterDefaultPrivilegesStmt(_) => {
                self.push(Rule::Privileges, " (ALTER DEFAULT PRIVILEGES)", scope)
            }
            NodeEnum::CreatePolicyStmt(policy) => self.push(
                Rule::RowSecurity,
                format!(
                    " (CREATE POLICY {} on {})",
                    policy.policy_name,
                    relation_name(policy.table.as_ref())
                ),
                scope,
            ),
            NodeEnum::AlterPolicyStmt(policy) => self.push(
                Rule::RowSecurity,
                format!(
                    " (ALTER POLICY {} on {})",
                    policy.policy_name,
                    relation_name(policy.table.as_ref())
                ),
                scope,
            ),
            NodeEnum::AlterSeqStmt(seq) => {
                if has_option(&seq.options, "restart") {
                    self.push(
                        Rule::SequenceReset,
                        format!(
                            " (ALTER SEQUENCE {} RESTART)",
                            relation_name(seq.sequence.as_ref())
                        ),
                        scope,
                    );
                }
            }
            NodeEnum::DefineStmt(define) => {
                let kind = ObjectType::try_from(define.kind).unwrap_or(ObjectType::Undefined);
                let (schema, name) = split_name(&strings(&define.defnames));
                if matches!(
                    kind,
                    ObjectType::ObjectAggregate | ObjectType::ObjectOperator
                ) && known::shadows_builtin(&name)
                {
                    self.push(
                        Rule::ShadowsBuiltin,
                        format!(" ({} {})", object_kind(kind), qualified(&schema, &name)),
                        scope,
                    );
                }
                self.push(
                    Rule::Unclassified,
                    format!(
                        " ({} is not a statement the lint knows to be safe)",
                        kind_name(node)
                    ),
                    scope,
                );
            }
            NodeEnum::CreateStmt(create) if !create.if_not_exists => {
                self.created(
                    ObjectType::ObjectTable,
                    relation_name(create.relation.as_ref()),
                );
            }
            NodeEnum::CreateStmt(_) => {}
            NodeEnum::CreateTableAsStmt(create) => {
                if let Some(into) = create.into.as_ref().filter(|_| !create.if_not_exists) {
                    let kind =
                        ObjectType::try_from(create.objtype).unwrap_or(ObjectType::ObjectTable);
                    self.created(kind, relation_name(into.rel.as_ref()));
                }
            }
            NodeEnum::IndexStmt(index) => {
                let table = relation_name(index.relation.as_ref());
                if !index.concurrent && !self.is_created(ObjectType::ObjectTable, &table) {
                    self.push_sized(
                        Rule::CreateIndexBlocking,
                        index.relation.as_ref(),
                        format!(" ({table}; use CREATE INDEX CONCURRENTLY in a transaction:false migration)"),
                        scope,
                    );
                }
                if !index.if_not_exists && !index.idxname.is_empty() {
                    let schema = index.relation.as_ref().map(|r| r.schemaname.as_str());
                    let name = match schema {
                        Some(schema) if !schema.is_empty() => format!("{schema}.{}", index.idxname),
                        _ => index.idxname.clone(),
                    };
                    self.created(ObjectType::ObjectIndex, name);
                }
            }
            NodeEnum::ViewStmt(view) if !view.replace => {
                self.created(ObjectType::ObjectView, relation_name(view.view.as_ref()));
            }
            NodeEnum::ViewStmt(view) => {
                let name = relation_name(view.view.as_ref());
                self.replaced(ObjectType::ObjectView, "VIEW", &name, scope);
            }
            NodeEnum::CreateSeqStmt(seq) if !seq.if_not_exists => {
                self.created(
                    ObjectType::ObjectSequence,
                    relation_name(seq.sequence.as_ref()),
                );
            }
            NodeEnum::CreateSeqStmt(_) => {}
            NodeEnum::CreateEnumStmt(e) => {
                self.created(ObjectType::ObjectType, strings(&e.type_name).join("."));
            }
            NodeEnum::CreateRangeStmt(r) => {
                self.created(ObjectType::ObjectType, strings(&r.type_name).join("."));
            }
            NodeEnum::CompositeTypeStmt(c) => {
                self.created(ObjectType::ObjectType, relation_name(c.typevar.as_ref()));
            }
            NodeEnum::CreateDomainStmt(d) => {
                self.created(ObjectType::ObjectDomain, strings(&d.domainname).join("."));
            }
            NodeEnum::CreateExtensionStmt(e) if !e.if_not_exists => {
                self.created(ObjectType::ObjectExtension, e.extname.clone());
            }
            NodeEnum::CreateExtensionStmt(_) => {}
            NodeEnum::AlterEnumStmt(e) if !e.old_val.is_empty() => self.push(
                Rule::Rename,
                format!(
                    " (value {:?} of {} → {:?})",
                    e.old_val,
                    strings(&e.type_name).join("."),
                    e.new_val
                ),
                scope,
            ),
            NodeEnum::AlterEnumStmt(_) => {}
            NodeEnum::CreateSchemaStmt(schema) => {
                self.push(
                    Rule::SearchPath,
                    format!(
                        " (CREATE SCHEMA {}: a schema named like a role comes first in the default search path \"$user\", public and hides the app's tables)",
                        schema.schemaname
                    ),
                    scope,
                );
                if !schema.if_not_exists {
                    self.created(ObjectType::ObjectSchema, schema.schemaname.clone());
                }
                for element in &schema.schema_elts {
                    if let Some(inner) = element.node.as_ref() {
                        self.kind(inner, source, scope);
                    }
                }
            }
            NodeEnum::CreateFunctionStmt(function) => self.function(function, source, scope),
            NodeEnum::CreateTrigStmt(trigger) => {
                let (schema, name) = split_name(&strings(&trigger.funcname));
                if !known::builtin_trigger_function(&schema, &name) {
                    let detail = format!(
                        " (trigger {} calls {})",
                        trigger.trigname,
                        qualified(&schema, &name)
                    );
                    self.called(&schema, &name, detail, scope);
                }
                let table = relation_name(trigger.relation.as_ref());
                let name = format!("{table}.{}", trigger.trigname);
                // PostgreSQL's trigger timing bits (catalog/pg_trigger.h): BEFORE and INSTEAD OF
                // triggers can swallow, rewrite or redirect each write; an AFTER trigger sees
                // the write done, and its function is judged where it is defined (or is an
                // unknown function), so a counter trigger on an existing table passes.
                const TRIGGER_TYPE_BEFORE: i32 = 1 << 1;
                const TRIGGER_TYPE_INSTEAD: i32 = 1 << 6;
                let intercepts = trigger.timing & (TRIGGER_TYPE_BEFORE | TRIGGER_TYPE_INSTEAD) != 0;
                if intercepts
                    && !self.was_created(ObjectType::ObjectTable, &table)
                    && !self.was_created(ObjectType::ObjectView, &table)
                {
                    self.push(
                        Rule::TriggerOnExistingTable,
                        format!(" (trigger {} on {table})", trigger.trigname),
                        scope,
                    );
                }
                if trigger.replace {
                    self.replaced(ObjectType::ObjectTrigger, "TRIGGER", &name, scope);
                } else {
                    self.created(ObjectType::ObjectTrigger, name);
                }
            }
            NodeEnum::DoStmt(block) => self.do_block(block, scope),
            NodeEnum::PrepareStmt(prepare) => {
                self.prepared.insert(prepare.name.clone());
            }
            NodeEnum::CallStmt(call) => {
                if let Some(call) = call.funccall.as_ref() {
                    let first = call
                        .args
                        .first()
                        .and_then(|a| a.node.as_ref())
                        .and_then(string_node);
                    self.call(&strings(&call.funcname), first.as_deref(), scope);
                }
            }
            NodeEnum::CopyStmt(copy) if copy.is_program || !copy.filename.is_empty() => self.push(
                Rule::Unclassified,
                " (COPY to or from a file or program on the server)",
                scope,
            ),
            NodeEnum::CopyStmt(_) => {}
            NodeEnum::RuleStmt(rule) => {
                let table = relation_name(rule.relation.as_ref());
                self.push(
                    Rule::CreateRule,
                    format!(" ({} on {table})", rule.rulename),
                    scope,
                );
                let name = format!("{table}.{}", rule.rulename);
                if rule.replace {
                    self.replaced(ObjectType::ObjectRule, "RULE", &name, scope);
                } else {
                    self.created(ObjectType::ObjectRule, name);
                }
            }
            NodeEnum::AlterTableStmt(alter) => self.alter_table(alter, scope),
            NodeEnum::RenameStmt(rename) => {
                let what = rename_target(rename);
                match ObjectType::try_from(rename.rename_type) {
                    Ok(ObjectType::ObjectDatabase) => self.push(
                        Rule::CrossDatabase,
                        format!(" (renames database {what})"),
                        scope,
                    ),
                    Ok(ObjectType::ObjectRole) => {
                        self.push(Rule::Role, format!(" (renames role {what})"), scope)
                    }
                    _ => self.push(
                        Rule::Rename,
                        format!(" ({what} → {})", rename.newname),
                        scope,
                    ),
                }
            }
            NodeEnum::AlterObjectSchemaStmt(alter) => {
                let what = match alter.relation.as_ref() {
                    Some(relation) => relation_name(Some(relation)),
                    None => alter
                        .object
                        .as_ref()
                        .map(|o| object_name(o))
                        .unwrap_or_default(),
                };
                self.push(
                    Rule::SetSchema,
                    format!(" ({what} → schema {})", alter.newschema),
                    scope,
                );
            }
            NodeEnum::DropStmt(drop) => {
                let names: Vec<String> = drop.objects.iter().map(object_name).collect();
                let kind = ObjectType::try_from(drop.remove_type).unwrap_or(ObjectType::Undefined);
                if names.iter().all(|n| self.is_created(kind, n)) {
                    return;
                }
                let rule = match kind {
                    ObjectType::ObjectTable => Rule::DropTable,
                    ObjectType::ObjectSchema => Rule::DropSchema,
                    _ => Rule::Drop,
                };
                let detail = match rule {
                    Rule::Drop => format!(" ({} {})", object_kind(kind), names.join(", ")),
                    _ => format!(" ({})", names.join(", ")),
                };
                self.push(rule, detail, scope);
            }
            NodeEnum::DropdbStmt(drop) => {
                self.push(Rule::DropDatabase, format!(" ({})", drop.dbname), scope)
            }
            NodeEnum::CreatedbStmt(_)
            | NodeEnum::AlterDatabaseStmt(_)
            | NodeEnum::AlterDatabaseSetStmt(_)
            | NodeEnum::AlterDatabaseRefreshCollStmt(_)
            | NodeEnum::AlterSystemStmt(_)
            | NodeEnum::CreateTableSpaceStmt(_)
            | NodeEnum::DropTableSpaceStmt(_)
            | NodeEnum::AlterTableSpaceOptionsStmt(_)
            | NodeEnum::AlterTableMoveAllStmt(_) => self.push(
                Rule::CrossDatabase,
                format!(" ({})", kind_name(node)),
                scope,
            ),
            NodeEnum::CreateRoleStmt(_)
            | NodeEnum::AlterRoleStmt(_)
            | NodeEnum::AlterRoleSetStmt(_)
            | NodeEnum::DropRoleStmt(_)
            | NodeEnum::DropOwnedStmt(_)
            | NodeEnum::ReassignOwnedStmt(_)
            | NodeEnum::GrantRoleStmt(_) => {
                self.push(Rule::Role, format!(" ({})", kind_name(node)), scope)
            }
            NodeEnum::TruncateStmt(truncate) => {
                let names: Vec<String> = truncate
                    .relations
                    .iter()
                    .filter_map(|n| match n.node.as_ref() {
                        Some(NodeEnum::RangeVar(r)) => Some(relation_name(Some(r))),
                        _ => None,
                    })
                    .collect();
                self.push(Rule::Truncate, format!(" ({})", names.join(", ")), scope);
            }
            NodeEnum::VariableSetStmt(set) => {
                let kind =
                    VariableSetKind::try_from(set.kind).unwrap_or(VariableSetKind::Undefined);
                let resets = matches!(
                    kind,
                    VariableSetKind::VarReset | VariableSetKind::VarResetAll
                );
                // RESET ROLE only goes back to the migration's own role, RESET search_path to
                // the session's own path.
                let back = known::setting(&set.name) == Setting::Role
                    || set.name.eq_ignore_ascii_case("search_path");
                if !(resets && back) && kind != VariableSetKind::VarResetAll {
                    self.setting(&set.name, scope);
                }
            }
            other => self.push(
                Rule::Unclassified,
                format!(
                    " ({} is not a statement the lint knows to be safe)",
                    kind_name(other)
                ),
                scope,
            ),
        }
    }

    /// `INSERT … SELECT … FROM <anything> … ON CONFLICT … DO UPDATE`, wherever an INSERT hides in
    /// the statement (a CTE, EXPLAIN, PREPARE): the query, not a list of values, decides which
    /// existing rows are rewritten. `INSERT … VALUES … ON CONFLICT`, what seeds do, is fine.
    fn upserts(&mut self, node: &NodeEnum, scope: &Scope) {
        let with = match node {
            NodeEnum::InsertStmt(insert) => {
                let updates = insert
                    .on_conflict_clause
                    .as_ref()
                    .is_some_and(|c| c.action == OnConflictAction::OnconflictUpdate as i32);
                let from_table = || {
                    insert
                        .select_stmt
                        .as_deref()
                        .and_then(|s| s.node.as_ref())
                        .is_some_and(|s| match s {
                            NodeEnum::SelectStmt(select) => select_reads_table(select),
                            _ => false,
                        })
                };
                if updates && from_table() {
                    let table = relation_name(insert.relation.as_ref());
                    self.push(
                        Rule::UpsertFromQuery,
                        format!(" ({table}: INSERT … SELECT … ON CONFLICT DO UPDATE)"),
                        scope,
                    );
                }
                if let Some(NodeEnum::SelectStmt(select)) =
                    insert.select_stmt.as_deref().and_then(|s| s.node.as_ref())
                {
                    self.upserts_in(select.with_clause.as_ref(), scope);
                }
                insert.with_clause.as_ref()
            }
            NodeEnum::SelectStmt(select) => select.with_clause.as_ref(),
            NodeEnum::UpdateStmt(update) => update.with_clause.as_ref(),
            NodeEnum::DeleteStmt(delete) => delete.with_clause.as_ref(),
            NodeEnum::MergeStmt(merge) => merge.with_clause.as_ref(),
            NodeEnum::ExplainStmt(explain) => {
                if let Some(query) = explain.query.as_deref().and_then(|q| q.node.as_ref()) {
                    self.upserts(query, scope);
                }
                None
            }
            NodeEnum::PrepareStmt(prepare) => {
                if let Some(query) = prepare.query.as_deref().and_then(|q| q.node.as_ref()) {
                    self.upserts(query, scope);
                }
                None
            }
            NodeEnum::RuleStmt(rule) => {
                for action in rule.actions.iter().filter_map(|a| a.node.as_ref()) {
                    self.upserts(action, scope);
                }
                None
            }
            _ => None,
        };
        self.upserts_in(with, scope);
    }

    fn upserts_in(&mut self, with: Option<&pg_query::protobuf::WithClause>, scope: &Scope) {
        for cte in with.into_iter().flat_map(|w| &w.ctes) {
            if let Some(NodeEnum::CommonTableExpr(cte)) = cte.node.as_ref() {
                if let Some(query) = cte.ctequery.as_deref().and_then(|q| q.node.as_ref()) {
                    self.upserts(query, scope);
                }
            }
        }
    }

    fn created(&mut self, kind: ObjectType, name: String) {
        self.created.insert(format!("{}:{name}", kind as i32));
    }

    fn is_created(&self, kind: ObjectType, name: &str) -> bool {
        self.created.contains(&format!("{}:{name}", kind as i32))
    }

    /// [`Self::is_created`], reading an unqualified name and one in `public` as the same.
    fn was_created(&self, kind: ObjectType, name: &str) -> bool {
        let bare = name.strip_prefix("public.").unwrap_or(name);
        self.is_created(kind, bare) || self.is_created(kind, &format!("public.{bare}"))
    }

    /// CREATE OR REPLACE of `name`: a finding unless this run created it first (then it only
    /// replaces the run's own code).
    fn replaced(&mut self, kind: ObjectType, what: &str, name: &str, scope: &Scope) {
        if !self.was_created(kind, name) {
            self.push(
                Rule::Replace,
                format!(
                    " (CREATE OR REPLACE {what} {name}, which the pending files did not create)"
                ),
                scope,
            );
        }
    }

    fn setting(&mut self, name: &str, scope: &Scope) {
        if name.eq_ignore_ascii_case("search_path") {
            self.push(Rule::SearchPath, format!(" (SET {name})"), scope);
            return;
        }
        match known::setting(name) {
            Setting::Harmless => {}
            Setting::Role => self.push(Rule::Role, format!(" (SET {name})"), scope),
            Setting::Unknown => self.push(
                Rule::Unclassified,
                format!(" (setting {name} is not one the lint knows to be harmless)"),
                scope,
            ),
        }
    }

    /// A call of `funcname` (its first argument when that is a string constant).
    fn call(&mut self, funcname: &[String], first_arg: Option<&str>, scope: &Scope) {
        let (schema, name) = split_name(funcname);
        if name == "setval" && (schema.is_empty() || schema == "pg_catalog") {
            let sequence = first_arg.map(|s| format!(" of {s}")).unwrap_or_default();
            self.push(Rule::SequenceReset, format!(" (setval{sequence})"), scope);
        } else if name == "set_config" && known::harmless_function(&schema, &name) {
            match first_arg {
                Some(setting) => self.setting(setting, scope),
                None => self.push(
                    Rule::Unclassified,
                    " (set_config of a setting named by an expression)",
                    scope,
                ),
            }
        } else if !known::harmless_function(&schema, &name) {
            let detail = format!(" ({}())", qualified(&schema, &name));
            self.called(&schema, &name, detail, scope);
        }
    }

    fn alter_table(&mut self, alter: &pg_query::protobuf::AlterTableStmt, scope: &Scope) {
        let table = relation_name(alter.relation.as_ref());
        let new_table = self.is_created(ObjectType::ObjectTable, &table);
        for command in &alter.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = command.node.as_ref() else {
                continue;
            };
            let column = format!(" ({table}.{})", cmd.name);
            let subtype =
                AlterTableType::try_from(cmd.subtype).unwrap_or(AlterTableType::Undefined);
            match subtype {
                AlterTableType::AtDropColumn => self.push(Rule::DropColumn, column, scope),
                // A constraint of a table this run created protects no existing row yet.
                AlterTableType::AtDropConstraint if !new_table => {
                    self.push(Rule::DropConstraint, column, scope)
                }
                AlterTableType::AtEnableRowSecurity | AlterTableType::AtForceRowSecurity => {
                    let how = match subtype {
                        AlterTableType::AtForceRowSecurity => "FORCE",
                        _ => "ENABLE",
                    };
                    self.push(
                        Rule::RowSecurity,
                        format!(" ({table}: {how} ROW LEVEL SECURITY)"),
                        scope,
                    )
                }
                AlterTableType::AtSetIdentity
                    if cmd.def.as_ref().is_some_and(|d| match d.node.as_ref() {
                        Some(NodeEnum::List(list)) => has_option(&list.items, "restart"),
                        _ => false,
                    }) =>
                {
                    self.push(
                        Rule::SequenceReset,
                        format!(" ({table}.{}: identity RESTART)", cmd.name),
                        scope,
                    )
                }
                AlterTableType::AtAlterColumnType if !new_table => self.push_sized(
                    Rule::AlterColumnType,
                    alter.relation.as_ref(),
                    column,
                    scope,
                ),
                AlterTableType::AtSetNotNull if !new_table => {
                    self.push_sized(Rule::AddNotNull, alter.relation.as_ref(), column, scope)
                }
                AlterTableType::AtAddColumn if !new_table => {
                    if let Some(NodeEnum::ColumnDef(def)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        if not_null_without_default(def) {
                            self.push_sized(
                                Rule::AddNotNull,
                                alter.relation.as_ref(),
                                format!(" ({table}.{})", def.colname),
                                scope,
                            );
                        }
                    }
                }
                AlterTableType::AtAddConstraint if !new_table => {
                    if let Some(NodeEnum::Constraint(constraint)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        let validating = (constraint.contype == ConstrType::ConstrForeign as i32
                            || constraint.contype == ConstrType::ConstrCheck as i32)
                            && !constraint.skip_validation;
                        if validating {
                            self.push_sized(
                                Rule::AddConstraintValidating,
                                alter.relation.as_ref(),
                                format!(" ({table}; add it NOT VALID, then VALIDATE CONSTRAINT)"),
                                scope,
                            );
                        }
                    }
                }
                // Known safe: they keep every row and every column's data.
                AlterTableType::AtAddColumn
                | AlterTableType::AtAlterColumnType
                | AlterTableType::AtSetNotNull
                | AlterTableType::AtAddConstraint
                | AlterTableType::AtColumnDefault
                | AlterTableType::AtDropNotNull
                | AlterTableType::AtDropExpression
                | AlterTableType::AtSetStatistics
                | AlterTableType::AtSetOptions
                | AlterTableType::AtResetOptions
                | AlterTableType::AtSetStorage
                | AlterTableType::AtSetCompression
                | AlterTableType::AtAddIndex
                | AlterTableType::AtAddIndexConstraint
                | AlterTableType::AtAlterConstraint
                | AlterTableType::AtValidateConstraint
                | AlterTableType::AtDropConstraint
                | AlterTableType::AtClusterOn
                | AlterTableType::AtDropCluster
                | AlterTableType::AtSetRelOptions
                | AlterTableType::AtResetRelOptions
                | AlterTableType::AtReplaceRelOptions
                | AlterTableType::AtEnableTrig
                | AlterTableType::AtEnableAlwaysTrig
                | AlterTableType::AtEnableReplicaTrig
                | AlterTableType::AtEnableTrigAll
                | AlterTableType::AtEnableTrigUser
                | AlterTableType::AtReplicaIdentity
                | AlterTableType::AtAttachPartition
                | AlterTableType::AtAddIdentity
                | AlterTableType::AtSetIdentity
                | AlterTableType::AtDropIdentity => {}
                other => self.push(
                    Rule::Unclassified,
                    format!(
                        " (ALTER TABLE {table}: {} is not an action the lint knows to be safe)",
                        other.as_str_name()
                    ),
                    scope,
                ),
            }
        }
    }

    /// CREATE FUNCTION/PROCEDURE: defined from here on; its body judged here, where it is
    /// defined, so calling it later needs no second look.
    fn function(
        &mut self,
        function: &pg_query::protobuf::CreateFunctionStmt,
        source: &Source,
        scope: &Scope,
    ) {
        let names = strings(&function.funcname);
        let name = names.join(".");
        if !function.is_procedure && known::shadows_builtin(names.last().map_or("", |n| n)) {
            self.push(Rule::ShadowsBuiltin, format!(" (function {name}())"), scope);
        }
        if scope.within.is_empty() {
            self.defined.define(&function.funcname);
        }
        let (kind, what) = if function.is_procedure {
            (ObjectType::ObjectProcedure, "PROCEDURE")
        } else {
            (ObjectType::ObjectFunction, "FUNCTION")
        };
        if function.replace {
            self.replaced(kind, what, &name, scope);
        } else {
            self.created(kind, name.clone());
        }
        let mut values = scope.values.clone();
        values.extend(["new".to_string(), "old".to_string()]);
        for parameter in &function.parameters {
            if let Some(NodeEnum::FunctionParameter(p)) = parameter.node.as_ref() {
                if !p.name.is_empty() {
                    values.insert(p.name.to_ascii_lowercase());
                }
            }
        }
        let inner = Scope {
            within: within(&format!("function {name}()"), scope),
            runs_now: false,
            values,
        };
        let option = |wanted: &str| {
            function.options.iter().find_map(|o| match o.node.as_ref() {
                Some(NodeEnum::DefElem(d)) if d.defname == wanted => d.arg.as_deref(),
                _ => None,
            })
        };
        let language = option("language")
            .and_then(|n| n.node.as_ref())
            .and_then(string_node)
            .unwrap_or_else(|| "sql".into())
            .to_ascii_lowercase();
        if let Some(body) = function.sql_body.as_deref() {
            // BEGIN ATOMIC … END / RETURN expr: already parsed, a list of statements.
            for statement in flatten(body) {
                self.kind(statement, source, &inner);
                self.tree(statement, &inner);
            }
            return;
        }
        let body = option("as")
            .map(|n| match n.node.as_ref() {
                Some(NodeEnum::List(list)) => strings(&list.items),
                Some(other) => string_node(other).into_iter().collect(),
                None => Vec::new(),
            })
            .unwrap_or_default();
        let returns = function
            .return_type
            .as_ref()
            .and_then(|t| strings(&t.names).pop())
            .unwrap_or_default();
        match (language.as_str(), body.first()) {
            ("plpgsql", Some(body)) => {
                // pg_query's PL/pgSQL JSON breaks on trigger functions (their TG_* variables
                // are "promise" datums it cannot print): read the same body as a plain
                // function that declares those variables itself.
                let text = match returns.as_str() {
                    "trigger" => Some(("record", TRIGGER_VARIABLES)),
                    "event_trigger" => Some(("void", EVENT_TRIGGER_VARIABLES)),
                    _ => None,
                }
                .map(|(returns, variables)| {
                    let semicolon = if ends_with_semicolon(body) { "" } else { ";" };
                    plpgsql_function(
                        returns,
                        &format!("DECLARE {variables} BEGIN {body}\n{semicolon} END"),
                    )
                });
                self.plpgsql_text(text.as_deref().unwrap_or(source.statement), &inner);
            }
            ("sql", Some(body)) => self.fragment(body, 0, &inner),
            ("plpgsql" | "sql", None) => {
                self.push(Rule::Unclassified, " (a body the lint cannot find)", &inner)
            }
            (other, _) => self.push(
                Rule::Unclassified,
                format!(" (a body in language {other}, which the lint cannot read)"),
                &inner,
            ),
        }
    }

    /// A DO block: its PL/pgSQL, parsed as the body of a throwaway function.
    fn do_block(&mut self, block: &pg_query::protobuf::DoStmt, scope: &Scope) {
        let arg = |wanted: &str| {
            block.args.iter().find_map(|a| match a.node.as_ref() {
                Some(NodeEnum::DefElem(d)) if d.defname == wanted => d
                    .arg
                    .as_deref()
                    .and_then(|n| n.node.as_ref())
                    .and_then(string_node),
                _ => None,
            })
        };
        let inner = Scope {
            within: within("a DO block", scope),
            runs_now: scope.runs_now,
            values: scope.values.clone(),
        };
        let language = arg("language")
            .unwrap_or_else(|| "plpgsql".into())
            .to_ascii_lowercase();
        if language != "plpgsql" {
            self.push(
                Rule::Unclassified,
                format!(" (a DO block in language {language}, which the lint cannot read)"),
                &inner,
            );
            return;
        }
        let body = arg("as").unwrap_or_default();
        self.plpgsql_text(&plpgsql_function("void", &body), &inner);
    }

    /// A `CREATE FUNCTION … LANGUAGE plpgsql` statement's body, judged.
    fn plpgsql_text(&mut self, create_function: &str, scope: &Scope) {
        match pg_query::parse_plpgsql(create_function) {
            Ok(tree) => {
                // Its datums (variables, parameters, records such as a loop's `r`) are values
                // in the SQL it runs.
                let mut inner = scope.clone();
                refnames(&tree, &mut inner.values);
                inner.values.extend(["new".to_string(), "old".to_string()]);
                self.plpgsql(&tree, &inner)
            }
            Err(e) => self.push(
                Rule::Unclassified,
                format!(" (a body the lint cannot read: {e})"),
                scope,
            ),
        }
    }

    /// A PL/pgSQL tree: dynamic SQL is a finding; every SQL statement and expression in it is
    /// parsed (in the mode PL/pgSQL itself uses) and judged like top-level SQL.
    fn plpgsql(&mut self, value: &Value, scope: &Scope) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match key.as_str() {
                        "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => {
                            self.push(Rule::DynamicSql, " (EXECUTE of a string)", scope)
                        }
                        "dynquery" if !child.is_null() => self.push(
                            Rule::DynamicSql,
                            " (OPEN/RETURN QUERY … EXECUTE of a string)",
                            scope,
                        ),
                        "PLpgSQL_expr" => {
                            if let Some(query) = child.get("query").and_then(Value::as_str) {
                                let mode =
                                    child.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
                                self.fragment(query, mode as i32, scope);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.plpgsql(child, scope);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.plpgsql(item, scope)),
            _ => {}
        }
    }

    /// SQL from inside a body, parsed in `mode` (a pg_query parser option: statement,
    /// PL/pgSQL expression or assignment) and judged statement by statement.
    fn fragment(&mut self, sql: &str, mode: i32, scope: &Scope) {
        let parsed = match pg_query::parse(sql, mode) {
            Ok(parsed) => parsed,
            Err(e) => {
                let start: String = sql.chars().take(60).collect();
                self.push(
                    Rule::Unclassified,
                    format!(" (SQL the lint cannot read: {start:?}: {e})"),
                    scope,
                );
                return;
            }
        };
        let tokens = pg_query::scan_tokens(sql).unwrap_or_default();
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
                continue;
            };
            let start = (raw.stmt_location.max(0) as usize).min(sql.len());
            let end = match raw.stmt_len {
                0 => sql.len(),
                len => (start + len as usize).min(sql.len()),
            };
            let first = tokens.partition_point(|t| (t.start as usize) < start);
            let last = tokens.partition_point(|t| (t.start as usize) < end);
            let source = Source {
                sql,
                statement: sql.get(start..end).unwrap_or(sql),
                tokens: &tokens[first..last],
            };
            self.judge(node, &source, scope);
        }
    }

    /// Pass 3: the whole tree, walked through its serde form without writing it out.
    fn tree(&mut self, node: &NodeEnum, scope: &Scope) {
        stream::walk(self, node, scope);
    }

    /// An EXECUTE of prepared statement `name`.
    fn executed(&mut self, name: &str, scope: &Scope) {
        if !self.prepared.contains(name) {
            self.push(Rule::UnknownPrepared, format!(" ({name})"), scope);
        }
    }

    /// Pass 3 over a tree already read into a `Value` (a MERGE, a call's first argument).
    fn walk_value(&mut self, value: &Value, scope: &Scope) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match key.as_str() {
                        "FuncCall" => {
                            let first = child
                                .get("args")
                                .and_then(Value::as_array)
                                .and_then(|args| args.first())
                                .and_then(json_string_constant);
                            self.call(&json_strings(&child["funcname"]), first.as_deref(), scope);
                        }
                        "DeleteStmt" => self.dml(
                            Rule::DeleteWithoutWhere,
                            &child["relation"],
                            &child["where_clause"],
                            scope,
                        ),
                        "UpdateStmt" => self.dml(
                            Rule::UpdateWithoutWhere,
                            &child["relation"],
                            &child["where_clause"],
                            scope,
                        ),
                        "MergeStmt" => self.merge(child, scope),
                        "ExecuteStmt" => {
                            self.executed(child["name"].as_str().unwrap_or_default(), scope)
                        }
                        // Judged with the function's own scope by `function`.
                        "sql_body" => continue,
                        _ => {}
                    }
                    self.walk_value(child, scope);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| self.walk_value(item, scope)),
            _ => {}
        }
    }

    /// An UPDATE or DELETE of `relation` (serde form) under `condition`, its WHERE: a finding
    /// unless the WHERE is bounded by a value ([`json_value_bound`]).
    fn dml(&mut self, rule: Rule, relation: &Value, condition: &Value, scope: &Scope) {
        let table = json_relation(relation);
        // WHERE CURRENT OF a cursor: the one row it is on.
        if json_node(condition).is_some_and(|(kind, _)| kind == "CurrentOfExpr") {
            return;
        }
        if !json_filters(condition) {
            self.push(rule, unbounded(&table, condition), scope);
        } else if !json_value_bound(condition, &targets(relation), &scope.values) {
            self.push(
                rule,
                format!(" ({table}: its WHERE is not bounded by a value)"),
                scope,
            );
        }
    }

    /// MERGE: any DELETE action is a finding (a join, even of the table with itself, can
    /// match every row); so is WHEN MATCHED THEN UPDATE from a table or query (merge-update:
    /// only a VALUES list or a SELECT without FROM bounds the rows it rewrites); an UPDATE
    /// action needs a bound: a join condition naming a column
    /// (WHEN MATCHED) or its own AND condition (WHEN NOT MATCHED BY SOURCE reaches every target
    /// row the source lacks).
    fn merge(&mut self, merge: &Value, scope: &Scope) {
        let table = json_relation(&merge["relation"]);
        let joined = json_filters(&merge["join_condition"]);
        for clause in merge["merge_when_clauses"].as_array().into_iter().flatten() {
            let clause = &clause["node"]["MergeWhenClause"];
            let command = clause["command_type"].as_i64().unwrap_or(0);
            let kind = clause["match_kind"].as_i64().unwrap_or(0);
            let by_source = kind == MergeMatchKind::MergeWhenNotMatchedBySource as i64;
            let when = if by_source {
                "WHEN NOT MATCHED BY SOURCE"
            } else {
                "WHEN MATCHED"
            };
            if command == CmdType::CmdDelete as i64 {
                self.push(
                    Rule::MergeDelete,
                    format!(" (MERGE INTO {table} … {when} THEN DELETE)"),
                    scope,
                );
            } else if command == CmdType::CmdUpdate as i64 {
                if !by_source && json_source_reads_rows(&merge["source_relation"]) {
                    self.push(
                        Rule::MergeUpdate,
                        format!(" (MERGE INTO {table} USING a table or query … WHEN MATCHED THEN UPDATE)"),
                        scope,
                    );
                }
                let bounded = json_filters(&clause["condition"]) || (joined && !by_source);
                if !bounded {
                    self.push(
                        Rule::UpdateWithoutWhere,
                        format!(" (MERGE INTO {table} … {when} THEN UPDATE, bounded by no column)"),
                        scope,
                    );
                }
            }
        }
    }
}

/// What PostgreSQL declares in a trigger function, declared by hand (see `function`).
const TRIGGER_VARIABLES: &str = "new record; old record; tg_name name; tg_when text; \
     tg_level text; tg_op text; tg_relid oid; tg_relname name; tg_table_name name; \
     tg_table_schema name; tg_nargs integer; tg_argv text[];";
const EVENT_TRIGGER_VARIABLES: &str = "tg_event text; tg_tag text;";

/// A throwaway PL/pgSQL function around `body`, for `pg_query::parse_plpgsql`.
fn plpgsql_function(returns: &str, body: &str) -> String {
    let mut tag = String::from("$dbguard$");
    while body.contains(&tag) {
        tag.insert(tag.len() - 1, '_');
    }
    format!(
        "CREATE FUNCTION pg_temp.dbguard() RETURNS {returns} LANGUAGE plpgsql AS {tag}{body}{tag}"
    )
}

/// Whether PL/pgSQL text ends with `;` (comments aside), as a block nested in another must.
fn ends_with_semicolon(body: &str) -> bool {
    pg_query::scan_tokens(body)
        .ok()
        .and_then(|tokens| {
            tokens
                .into_iter()
                .rev()
                .find(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
        })
        .is_some_and(|t| t.token == Token::Ascii59 as i32)
}

fn within(what: &str, scope: &Scope) -> String {
    if scope.within.is_empty() {
        what.to_string()
    } else {
        format!("{what} in {}", scope.within)
    }
}

/// A WHERE (or join condition) that names no column — `WHERE true`, `WHERE 1 = 1` — bounds
/// nothing; absent, neither; nor one that names a column yet matches every row
/// ([`json_bounds_nothing`]).
fn json_filters(condition: &Value) -> bool {
    !condition.is_null() && json_has_column(condition) && !json_bounds_nothing(condition)
}

/// The detail of an UPDATE/DELETE whose WHERE ([`json_filters`]) does not filter.
fn unbounded(table: &str, condition: &Value) -> String {
    match condition.is_null() {
        true => format!(" ({table})"),
        false => format!(" ({table}: its WHERE bounds nothing)"),
    }
}

/// Whether a MERGE's source (serde form) reads rows from a table or query: anything but a
/// `VALUES` list or a SELECT without FROM (unknown means refused).
fn json_source_reads_rows(source: &Value) -> bool {
    let Some(("RangeSubselect", subselect)) = json_node(source) else {
        return true;
    };
    match json_node(&subselect["subquery"]) {
        Some(("SelectStmt", select)) => {
            let empty = |field: &str| select[field].as_array().is_none_or(Vec::is_empty);
            !(select["larg"].is_null()
                && select["rarg"].is_null()
                && empty("from_clause")
                && select["with_clause"].is_null())
        }
        _ => true,
    }
}

/// The names a column of the target of an UPDATE/DELETE is qualified with: its alias, or its
/// table name (lower case).
fn targets(relation: &Value) -> BTreeSet<String> {
    let alias = relation["alias"]["aliasname"].as_str().unwrap_or_default();
    let name = match alias.is_empty() {
        true => relation["relname"].as_str().unwrap_or_default(),
        false => alias,
    };
    BTreeSet::from([name.to_ascii_lowercase()])
}

/// Whether an UPDATE/DELETE's WHERE is bounded by a value. Unknown means refused: naming a
/// column is not enough (`id = id + 0`, `id IN (SELECT id FROM t)`, `a.x = b.x` between the
/// target and its USING/FROM tables all reach every row). The WHERE needs at least one
/// top-level AND-conjunct that compares a column of the target (unqualified, or qualified with
/// its alias or name) to a *value*:
/// - a side holding only target columns, and another holding no column reference to any table
///   and no subquery: constants, parameters (`$1`), casts, functions and operators over those
///   (`now() - interval '30 days'`, `lower('X')`); inside a function or DO body also its
///   variables, parameters, loop records and `NEW`/`OLD` (column references whose first name
///   is one of [`Scope::values`]);
/// - any operator counts, and `col IN (1, 2)`, `col = ANY($1)`, `col BETWEEN v1 AND v2`,
///   `NOT (col = v)`; `col IS NULL` too (and `WHERE CURRENT OF` a cursor: one row);
/// - an OR conjunct counts when every branch is bounded by a value (or plainly false).
///
/// Anything else — `(id = id) IS TRUE`, a bare boolean column, `EXISTS (…)`, a join condition
/// alone — is reported under delete-/update-without-where.
fn json_value_bound(
    condition: &Value,
    targets: &BTreeSet<String>,
    values: &BTreeSet<String>,
) -> bool {
    let Some((kind, node)) = json_node(condition) else {
        return false;
    };
    let is = |field: &str, value: i32| node[field].as_i64() == Some(value as i64);
    let bound = |arg: &Value| json_value_bound(arg, targets, values);
    match kind {
        "BoolExpr" => {
            let args = json_args(node);
            if is("boolop", BoolExprType::AndExpr as i32) {
                args.iter().any(bound)
            } else if is("boolop", BoolExprType::OrExpr as i32) {
                !args.is_empty() && args.iter().all(|a| bound(a) || json_plainly_false(a))
            } else {
                matches!(args, [arg] if json_node(arg).is_some_and(|(k, _)| k == "AExpr") && bound(arg))
            }
        }
        "AExpr" => {
            let (left, right) = (&node["lexpr"], &node["rexpr"]);
            let side = |v: &Value| json_side(v, targets, values);
            matches!(
                (side(left), side(right)),
                (Side::Target, Side::Value) | (Side::Value, Side::Target)
            )
        }
        "NullTest" => {
            is("nulltesttype", NullTestType::IsNull as i32)
                && json_side(&node["arg"], targets, values) == Side::Target
        }
        _ => false,
    }
}

/// What one side of a comparison is, for [`json_value_bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Columns of the target only (and values), no subquery.
    Target,
    /// No column of any table, no subquery.
    Value,
    /// Anything else: a subquery, another table's column, nothing at all.
    Other,
}

fn json_side(side: &Value, targets: &BTreeSet<String>, values: &BTreeSet<String>) -> Side {
    if side.is_null() {
        return Side::Other;
    }
    let mut columns = Vec::new();
    if !json_columns(side, &mut columns) {
        return Side::Other;
    }
    let (mut target, mut other) = (false, false);
    for fields in &columns {
        let first = fields.first().map(|f| f.to_ascii_lowercase());
        let is_target = match fields.as_slice() {
            [] => false,
            [_] => !first.as_ref().is_some_and(|f| values.contains(f)),
            [.., qualifier, _] => targets.contains(&qualifier.to_ascii_lowercase()),
        };
        if is_target {
            target = true;
        } else if !first.is_some_and(|f| values.contains(&f)) {
            other = true;
        }
    }
    match (target, other) {
        (_, true) => Side::Other,
        (true, false) => Side::Target,
        (false, false) => Side::Value,
    }
}

/// Collects every column reference's names; false when a subquery is inside.
fn json_columns(value: &Value, columns: &mut Vec<Vec<String>>) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(key, child)| match key.as_str() {
            "SubLink" => false,
            "ColumnRef" => {
                columns.push(json_strings(&child["fields"]));
                true
            }
            _ => json_columns(child, columns),
        }),
        Value::Array(items) => items.iter().all(|item| json_columns(item, columns)),
        _ => true,
    }
}

/// Every `refname` in a PL/pgSQL tree (its datums: variables, parameters, records), lower case.
fn refnames(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child.as_str()) {
                    ("refname", Some(name)) => {
                        names.insert(name.to_ascii_lowercase());
                    }
                    _ => refnames(child, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refnames(item, names)),
        _ => {}
    }
}

/// Whether a condition that names a column still matches every row. Undecidable in general
/// (`WHERE id IN (SELECT id FROM t)` is as unbounded as no WHERE); this heuristic catches the
/// forms that read like a filter yet are always true, or true for every row of a typical
/// table:
/// - a comparison of an expression with itself: `id = id`, `a >= a`, `a <= a`,
///   `a IS NOT DISTINCT FROM a`;
/// - `col IS NOT NULL`, or `NOT (col IS NULL)` (every row, for a NOT NULL or key column);
/// - an OR with any branch that is one of these, or that names no column (`true`, `1 = 1`,
///   `1 < 2`, `$1 IS NULL`), unless that constant branch is plainly false (`false`, `1 = 2`);
/// - an AND whose every branch is such a tautology.
///
/// Anything else that names a column counts as a bound: `id = 1`, `slug = 'x'`,
/// `created_at < now() - interval '30 days'`, `id IN (…)`, a join condition.
fn json_bounds_nothing(condition: &Value) -> bool {
    let Some((kind, node)) = json_node(condition) else {
        return false;
    };
    let is = |field: &str, value: i32| node[field].as_i64() == Some(value as i64);
    match kind {
        "BoolExpr" => {
            let args = json_args(node);
            if is("boolop", BoolExprType::OrExpr as i32) {
                args.iter().any(json_always_true)
            } else if is("boolop", BoolExprType::AndExpr as i32) {
                !args.is_empty() && args.iter().all(json_always_true)
            } else {
                // NOT (col IS NULL).
                matches!(args, [arg] if json_node(arg).is_some_and(|(kind, test)| {
                    kind == "NullTest"
                        && test["nulltesttype"].as_i64() == Some(NullTestType::IsNull as i64)
                }))
            }
        }
        "AExpr" => {
            let operator = json_strings(&node["name"]);
            let reflexive = (is("kind", AExprKind::AexprOp as i32)
                && matches!(operator.as_slice(), [op] if ["=", ">=", "<="].contains(&op.as_str())))
                || is("kind", AExprKind::AexprNotDistinct as i32);
            reflexive
                && !node["lexpr"].is_null()
                && same_but_locations(&node["lexpr"], &node["rexpr"])
        }
        "NullTest" => is("nulltesttype", NullTestType::IsNotNull as i32),
        _ => false,
    }
}

/// A branch of a condition that is always true: a tautology naming a column, or a constant
/// that is not plainly false.
fn json_always_true(branch: &Value) -> bool {
    json_bounds_nothing(branch) || (!json_has_column(branch) && !json_plainly_false(branch))
}

/// `false`, or a comparison of two literals of one kind that does not hold (`1 = 2`).
fn json_plainly_false(condition: &Value) -> bool {
    let Some((kind, node)) = json_node(condition) else {
        return false;
    };
    match kind {
        "AConst" => {
            node["val"]["Boolval"]["boolval"].as_bool() == Some(false)
                || node["val"]["Boolval"]
                    .as_object()
                    .is_some_and(|b| b.is_empty())
        }
        "AExpr" if node["kind"].as_i64() == Some(AExprKind::AexprOp as i64) => {
            let literal = |side: &Value| match json_node(side) {
                Some(("AConst", c)) => {
                    if let Some(i) = c["val"]["Ival"].as_object() {
                        Some(Value::from(
                            i.get("ival").and_then(Value::as_i64).unwrap_or(0),
                        ))
                    } else {
                        c["val"]["Sval"]["sval"].as_str().map(Value::from)
                    }
                }
                _ => None,
            };
            let (Some(left), Some(right)) = (literal(&node["lexpr"]), literal(&node["rexpr"]))
            else {
                return false;
            };
            let order = match (&left, &right) {
                (Value::Number(a), Value::Number(b)) => a.as_i64().cmp(&b.as_i64()),
                (Value::String(a), Value::String(b)) => a.cmp(b),
                _ => return false,
            };
            let holds = match json_strings(&node["name"]).as_slice() {
                [op] => match op.as_str() {
                    "=" => order.is_eq(),
                    "<>" | "!=" => order.is_ne(),
                    "<" => order.is_lt(),
                    "<=" => order.is_le(),
                    ">" => order.is_gt(),
                    ">=" => order.is_ge(),
                    _ => return false,
                },
                _ => return false,
            };
            !holds
        }
        _ => false,
    }
}

/// A node's `args` in serde form (a BoolExpr's branches), empty when it has none.
fn json_args(node: &Value) -> &[Value] {
    node["args"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A `Node` in serde form (`{"node": {"Kind": {…}}}`, or the bare `{"Kind": {…}}`): its kind
/// and fields.
fn json_node(value: &Value) -> Option<(&str, &Value)> {
    let inner = value.get("node").unwrap_or(value);
    let map = inner.as_object()?;
    match map.len() {
        1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

/// Whether two trees in serde form are the same expression, wherever each was written: equal
/// but for their `location`s.
fn same_but_locations(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let fields = |map: &serde_json::Map<String, Value>| {
                map.iter()
                    .filter(|(key, _)| key.as_str() != "location")
                    .count()
            };
            fields(a) == fields(b)
                && a.iter()
                    .filter(|(key, _)| key.as_str() != "location")
                    .all(|(key, child)| {
                        b.get(key)
                            .is_some_and(|other| same_but_locations(child, other))
                    })
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_but_locations(a, b))
        }
        (a, b) => a == b,
    }
}

/// Whether a SELECT reads rows from anything in a FROM clause (a table, a function such as
/// generate_series, a subquery, a join; or either side of a UNION …), rather than from a VALUES
/// list or a SELECT without FROM.
fn select_reads_table(select: &pg_query::protobuf::SelectStmt) -> bool {
    if !select.values_lists.is_empty() {
        return false;
    }
    let side = |s: &Option<Box<pg_query::protobuf::SelectStmt>>| {
        s.as_deref().is_some_and(select_reads_table)
    };
    if side(&select.larg) || side(&select.rarg) {
        return true;
    }
    !select.from_clause.is_empty()
}

/// Whether a list of `DefElem` options holds `name`.
fn has_option(options: &[Node], name: &str) -> bool {
    options
        .iter()
        .any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == name))
}

/// Whether a column reference is inside.
fn json_has_column(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, child)| key == "ColumnRef" || json_has_column(child)),
        Value::Array(items) => items.iter().any(json_has_column),
        _ => false,
    }
}

fn json_relation(relation: &Value) -> String {
    let schema = relation["schemaname"].as_str().unwrap_or_default();
    let name = relation["relname"].as_str().unwrap_or_default();
    qualified(schema, name)
}

/// The `sval`s of a list of `String` nodes (a qualified name) in serde form.
fn json_strings(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["node"]["String"]["sval"].as_str().map(str::to_string))
        .collect()
}

/// A string constant argument in serde form.
fn json_string_constant(arg: &Value) -> Option<String> {
    arg["node"]["AConst"]["val"]["Sval"]["sval"]
        .as_str()
        .map(str::to_string)
}

fn string_node(node: &NodeEnum) -> Option<String> {
    match node {
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::AConst(c) => match c.val.as_ref() {
            Some(pg_query::protobuf::a_const::Val::Sval(s)) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn strings(list: &[Node]) -> Vec<String> {
    list.iter()
        .filter_map(|n| n.node.as_ref().and_then(string_node))
        .collect()
}

/// `[schema, name]` or `[name]` (a catalog-qualified `[db, schema, name]` keeps the last two).
fn split_name(parts: &[String]) -> (String, String) {
    match parts {
        [] => (String::new(), String::new()),
        [name] => (String::new(), name.clone()),
        [.., schema, name] => (schema.clone(), name.clone()),
    }
}

fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

pub(super) fn relation_name(relation: Option<&RangeVar>) -> String {
    relation
        .map(|r| qualified(&r.schemaname, &r.relname))
        .unwrap_or_default()
}

/// The name of a DROP/ALTER object: a list of name parts, a bare name, a function with its
/// arguments or a type name.
fn object_name(object: &Node) -> String {
    match object.node.as_ref() {
        Some(NodeEnum::List(list)) => strings(&list.items).join("."),
        Some(NodeEnum::String(s)) => s.sval.clone(),
        Some(NodeEnum::ObjectWithArgs(f)) => strings(&f.objname).join("."),
        Some(NodeEnum::TypeName(t)) => strings(&t.names).join("."),
        _ => String::new(),
    }
}

fn rename_target(rename: &pg_query::protobuf::RenameStmt) -> String {
    let base = match rename.relation.as_ref() {
        Some(relation) => relation_name(Some(relation)),
        None => rename
            .object
            .as_deref()
            .map(object_name)
            .unwrap_or_default(),
    };
    match (base.is_empty(), rename.subname.is_empty()) {
        (_, true) => base,
        (true, false) => rename.subname.clone(),
        (false, false) => format!("{base}.{}", rename.subname),
    }
}

/// `OBJECT_MATVIEW` → `matview`.
fn object_kind(kind: ObjectType) -> String {
    kind.as_str_name()
        .trim_start_matches("OBJECT_")
        .replace('_', " ")
        .to_ascii_lowercase()
}

/// A node's kind as pg_query names it (`CreateCastStmt`), for messages.
fn kind_name(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    debug
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The statements of a parsed SQL-standard function body (`BEGIN ATOMIC … END` is a list of
/// lists of statements).
fn flatten(node: &Node) -> Vec<&NodeEnum> {
    match node.node.as_ref() {
        Some(NodeEnum::List(list)) => list.items.iter().flat_map(flatten).collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    }
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
    let is = |k: &i32, t: ConstrType| *k == t as i32;
    let not_null = def.is_not_null
        || kinds
            .iter()
            .any(|k| is(k, ConstrType::ConstrNotnull) || is(k, ConstrType::ConstrPrimary));
    let filled = def.raw_default.is_some()
        || kinds.iter().any(|k| {
            is(k, ConstrType::ConstrDefault)
                || is(k, ConstrType::ConstrIdentity)
                || is(k, ConstrType::ConstrGenerated)
        });
    not_null && !filled
}

/// An identifier token's name: unquoted ones fold to lower case, quoted ones keep theirs.
fn identifier(text: &str, kind: i32) -> String {
    if kind == Token::Uident as i32 {
        // U&"d\0062tools": let the parser decode it.
        return pg_query::parse(&format!("SELECT 1 AS {text}"), 0)
            .ok()
            .and_then(|p| first_target(&p).map(|t| t.name.clone()))
            .unwrap_or_default();
    }
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_ascii_lowercase(),
    }
}

/// A string constant token's value.
fn string_constant(text: &str) -> String {
    if let Some(plain) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return plain.replace("''", "'");
    }
    if let Some(after) = text.strip_prefix('$') {
        if let Some(end) = after.find('$') {
            let tag = &text[..end + 2];
            if text.len() >= 2 * tag.len() {
                return text[tag.len()..text.len() - tag.len()].to_string();
            }
        }
    }
    // E'…', U&'…', N'…': escapes the parser knows how to read.
    pg_query::parse(&format!("SELECT {text}"), 0)
        .ok()
        .and_then(|p| {
            first_target(&p)
                .and_then(|t| t.val.as_ref())
                .and_then(|v| v.node.as_ref())
                .and_then(string_node)
        })
        .unwrap_or_else(|| text.to_string())
}

fn first_target(parsed: &pg_query::ParseResult) -> Option<&pg_query::protobuf::ResTarget> {
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?;
    let Some(NodeEnum::SelectStmt(select)) = stmt.node.as_ref() else {
        return None;
    };
    match select.target_list.first()?.node.as_ref()? {
        NodeEnum::ResTarget(target) => Some(target),
        _ => None,
    }
}

/// How a string mentions the dbtools schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mention {
    None,
    /// `dbtools.x`: a regclass, a function name, a qualified name in any form.
    Qualified,
    /// `dbtools` alone or as an item of a comma-separated list: a search path, if the
    /// statement sets one.
    Item,
}

fn dbtools_mention(value: &str) -> Mention {
    let lower = value.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    let mut found = Mention::None;
    let mut from = 0;
    while let Some(at) = lower[from..].find("dbtools").map(|i| i + from) {
        from = at + "dbtools".len();
        if at.checked_sub(1).is_some_and(|i| is_name(bytes[i])) {
            continue;
        }
        let rest = lower[from..].trim_start_matches('"').trim_start();
        match rest.bytes().next() {
            Some(b'.') => return Mention::Qualified,
            None | Some(b',') => found = Mention::Item,
            _ => {}
        }
    }
    found
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_name_the_guard_schema() {
        assert_eq!(dbtools_mention("dbtools.applied"), Mention::Qualified);
        assert_eq!(dbtools_mention("\"dbtools\".applied"), Mention::Qualified);
        assert_eq!(dbtools_mention("public, dbtools"), Mention::Item);
        assert_eq!(dbtools_mention("DBTOOLS"), Mention::Item);
        assert_eq!(dbtools_mention("built with dbtools tools"), Mention::None);
        assert_eq!(dbtools_mention("mydbtools.x"), Mention::None);
        assert_eq!(string_constant("E'dbt\\157ols.x'"), "dbtools.x");
        assert_eq!(string_constant("$q$a'b$q$"), "a'b");
        assert_eq!(identifier("\"DbTools\"", Token::Ident as i32), "DbTools");
        assert_eq!(identifier("DbTools", Token::Ident as i32), "dbtools");
    }
}
