//! Pass 3 of the judge, streamed: a statement's serialized tree read with serde visitors that
//! keep nothing but what the rules need (a call's name and first argument, a DML statement's
//! table and whether its WHERE names a column). Building a `serde_json::Value` of every tree
//! instead cost more than parsing the SQL. MERGE, rare, is read into a `Value` and judged there.

use super::{json_has_column, json_string_constant, json_strings, Judge, Scope};
use crate::lint::Rule;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Walks a serialized tree, judging the nodes pass 3 knows.
pub(super) fn walk(judge: &mut Judge, json: &[u8], scope: &Scope) {
    let mut reader = serde_json::Deserializer::from_slice(json);
    // The JSON was just written by serde_json from the same tree: it always reads back.
    let _ = Walk { judge, scope }.deserialize(&mut reader);
}

/// Any value: its nodes judged; the answer is whether a column reference is inside.
struct Walk<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a serialized pg_query tree")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut column = false;
        while let Some(inside) = seq.next_element_seed(Walk {
            judge: &mut *self.judge,
            scope: self.scope,
        })? {
            column |= inside;
        }
        Ok(column)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (judge, scope) = (self.judge, self.scope);
        let mut column = false;
        // Keys are field and node names: never escaped, so they borrow from the JSON.
        while let Some(key) = map.next_key::<&'de str>()? {
            column |= match key {
                "ColumnRef" => {
                    map.next_value::<IgnoredAny>()?;
                    true
                }
                // Judged with the function's own scope by `Judge::function`.
                "sql_body" => {
                    map.next_value::<IgnoredAny>()?;
                    false
                }
                "FuncCall" => map.next_value_seed(Call { judge, scope })?,
                "DeleteStmt" => map.next_value_seed(Dml {
                    judge,
                    scope,
                    rule: Rule::DeleteWithoutWhere,
                })?,
                "UpdateStmt" => map.next_value_seed(Dml {
                    judge,
                    scope,
                    rule: Rule::UpdateWithoutWhere,
                })?,
                "ExecuteStmt" => map.next_value_seed(Execute { judge, scope })?,
                "MergeStmt" => {
                    let merge: Value = map.next_value()?;
                    judge.merge(&merge, scope);
                    judge.walk_value(&merge, scope);
                    json_has_column(&merge)
                }
                _ => map.next_value_seed(Walk {
                    judge: &mut *judge,
                    scope,
                })?,
            };
        }
        Ok(column)
    }
}

/// Declares `deserialize` for a map-only seed that visits itself.
macro_rules! map_seed {
    ($name:ident) => {
        impl<'de> DeserializeSeed<'de> for $name<'_> {
            type Value = bool;

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
                deserializer.deserialize_map(self)
            }
        }
    };
}

/// A FuncCall: its name and first argument (a string constant names `set_config`'s setting).
struct Call<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
}
map_seed!(Call);

impl<'de> Visitor<'de> for Call<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a FuncCall")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (judge, scope) = (self.judge, self.scope);
        let (mut name, mut first, mut column) = (Vec::new(), None, false);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "funcname" => name = json_strings(&map.next_value::<Value>()?),
                "args" => {
                    column |= map.next_value_seed(Args {
                        judge: &mut *judge,
                        scope,
                        first: &mut first,
                    })?
                }
                _ => {
                    column |= map.next_value_seed(Walk {
                        judge: &mut *judge,
                        scope,
                    })?
                }
            }
        }
        judge.call(&name, first.as_deref(), scope);
        Ok(column)
    }
}

/// A call's arguments: the first read whole (for its string constant), every one walked.
struct Args<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
    first: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Args<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Args<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a FuncCall's arguments")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let (judge, scope) = (self.judge, self.scope);
        let mut column = false;
        if let Some(first) = seq.next_element::<Value>()? {
            *self.first = json_string_constant(&first);
            judge.walk_value(&first, scope);
            column |= json_has_column(&first);
        }
        while let Some(inside) = seq.next_element_seed(Walk {
            judge: &mut *judge,
            scope,
        })? {
            column |= inside;
        }
        Ok(column)
    }
}

/// DELETE or UPDATE: a finding unless its WHERE names a column and bounds something (its WHERE,
/// small, is read whole to tell).
struct Dml<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
    rule: Rule,
}
map_seed!(Dml);

impl<'de> Visitor<'de> for Dml<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DeleteStmt or UpdateStmt")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (judge, scope) = (self.judge, self.scope);
        let (mut relation, mut condition, mut column) = (Value::Null, Value::Null, false);
        while let Some(key) = map.next_key::<&'de str>()? {
            let seed = Walk {
                judge: &mut *judge,
                scope,
            };
            match key {
                "relation" => relation = map.next_value()?,
                "where_clause" => {
                    condition = map.next_value()?;
                    judge.walk_value(&condition, scope);
                    column |= json_has_column(&condition);
                }
                _ => column |= map.next_value_seed(seed)?,
            }
        }
        judge.dml(self.rule, &relation, &condition, scope);
        Ok(column)
    }
}

/// EXECUTE of a prepared statement: known when the run PREPAREd it.
struct Execute<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
}
map_seed!(Execute);

impl<'de> Visitor<'de> for Execute<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ExecuteStmt")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let (judge, scope) = (self.judge, self.scope);
        let (mut name, mut column) = (String::new(), false);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "name" => name = map.next_value()?,
                _ => {
                    column |= map.next_value_seed(Walk {
                        judge: &mut *judge,
                        scope,
                    })?
                }
            }
        }
        judge.executed(&name, scope);
        Ok(column)
    }
}
