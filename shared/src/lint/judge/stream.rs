//! Pass 3 of the judge: a statement's typed tree walked through its `Serialize` impl, in the
//! order its serde form would be written, with a serializer that writes nothing and keeps only
//! what the rules need (a call's name and first argument, a DML statement's table and WHERE).
//! Writing each tree out as JSON and reading it back cost more than parsing the SQL; the small
//! parts the rules read whole (a name, a WHERE, a MERGE) become a `serde_json::Value` directly.

use super::{Judge, Scope};
use crate::lint::Rule;
use serde::ser::{self, Serialize};
use serde_json::Value;
use std::fmt;

/// The methods of a serializer that keeps no scalar (numbers, flags: a node's location, a
/// kind) and looks through options, units and newtype structs, for both walkers here.
macro_rules! ignore_scalars {
    () => {
        ignore_scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16,
            serialize_i32: i32, serialize_i64: i64, serialize_u8: u8, serialize_u16: u16,
            serialize_u32: u32, serialize_u64: u64, serialize_f32: f32, serialize_f64: f64,
            serialize_char: char, serialize_bytes: &[u8]);
    };
    ($($method:ident: $type:ty),*) => {
        $(fn $method(self, _: $type) -> Result<(), Stop> {
            Ok(())
        })*
        fn serialize_none(self) -> Result<(), Stop> {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
            value.serialize(self)
        }
        fn serialize_unit(self) -> Result<(), Stop> {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
            Ok(())
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<(), Stop> {
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<(), Stop> {
            value.serialize(self)
        }
    };
}

/// The seven compound traits of a serializer, over its inherent `element`, `field`, `map_key`
/// and `map_value`, ending with `$end`.
macro_rules! compound_impls {
    ($type:ty, $end:expr) => {
        compound_impls!(@elements $type, $end, SerializeSeq: serialize_element,
            SerializeTuple: serialize_element, SerializeTupleStruct: serialize_field,
            SerializeTupleVariant: serialize_field);
        compound_impls!(@fields $type, $end, SerializeStruct, SerializeStructVariant);
        impl ser::SerializeMap for $type {
            type Ok = ();
            type Error = Stop;
            fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
                self.map_key(key)
            }
            fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
                self.map_value(value)
            }
            fn end(self) -> Result<(), Stop> {
                ($end)(self)
            }
        }
    };
    (@elements $type:ty, $end:expr, $($trait:ident: $method:ident),*) => {$(
        impl ser::$trait for $type {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
                self.element(value)
            }
            fn end(self) -> Result<(), Stop> {
                ($end)(self)
            }
        }
    )*};
    (@fields $type:ty, $end:expr, $($trait:ident),*) => {$(
        impl ser::$trait for $type {
            type Ok = ();
            type Error = Stop;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Stop> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Stop> {
                ($end)(self)
            }
        }
    )*};
}

/// Walks a typed tree, judging the nodes pass 3 knows.
pub(super) fn walk<T: Serialize + ?Sized>(judge: &mut Judge, node: &T, scope: &Scope) {
    // Nothing here fails; an error would only stop the walk early.
    let _ = node.serialize(Walker {
        judge,
        scope,
        mode: Mode::Walk,
        first: None,
    });
}

/// What the value being serialized is, for the walk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Any value: its nodes judged.
    Walk,
    /// A FuncCall: its name and first argument (a string constant names `set_config`'s setting).
    Call,
    /// A call's arguments: the first read whole (for its string constant), every one walked.
    Args,
    /// DELETE or UPDATE: a finding unless its WHERE names a column and bounds something.
    Dml(Rule),
    /// EXECUTE of a prepared statement: known when the run PREPAREd it.
    Execute,
}

#[derive(Debug)]
pub(super) struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("walk stopped")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct Walker<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
    mode: Mode,
    /// In `Mode::Args`: where the first argument's string constant goes.
    first: Option<&'a mut Option<String>>,
}

/// A value read whole, as its serde form.
fn value<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The value under `key` (a field or node name), judged by what the key says it is.
fn dispatch<T: Serialize + ?Sized>(
    judge: &mut Judge,
    scope: &Scope,
    key: &str,
    node: &T,
) -> Result<(), Stop> {
    let mode = match key {
        // Nothing to judge in a column reference; a function's `sql_body` is judged with the
        // function's own scope by `Judge::function`.
        "ColumnRef" | "sql_body" => return Ok(()),
        "FuncCall" => Mode::Call,
        "DeleteStmt" => Mode::Dml(Rule::DeleteWithoutWhere),
        "UpdateStmt" => Mode::Dml(Rule::UpdateWithoutWhere),
        "ExecuteStmt" => Mode::Execute,
        "MergeStmt" => {
            let merge = value(node);
            judge.merge(&merge, scope);
            judge.walk_value(&merge, scope);
            return Ok(());
        }
        _ => Mode::Walk,
    };
    node.serialize(Walker {
        judge,
        scope,
        mode,
        first: None,
    })
}

/// A struct, map or sequence being walked, with what its mode gathers.
struct Compound<'a> {
    judge: &'a mut Judge,
    scope: &'a Scope,
    mode: Mode,
    index: usize,
    key: Option<String>,
    name: Vec<String>,
    first: Option<String>,
    /// In `Mode::Args`: where the first argument's string constant goes.
    slot: Option<&'a mut Option<String>>,
    relation: Value,
    condition: Value,
}

impl<'a> Walker<'a> {
    /// A variant's fields: walked plainly, whatever mode the value had.
    fn plain(self) -> Compound<'a> {
        Walker {
            mode: Mode::Walk,
            first: None,
            ..self
        }
        .compound()
    }

    fn compound(self) -> Compound<'a> {
        Compound {
            judge: self.judge,
            scope: self.scope,
            mode: self.mode,
            index: 0,
            key: None,
            name: Vec::new(),
            first: None,
            slot: self.first,
            relation: Value::Null,
            condition: Value::Null,
        }
    }
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Stop> {
        let index = self.index;
        self.index += 1;
        if self.mode == Mode::Args && index == 0 {
            if let Some(slot) = self.slot.as_mut() {
                **slot = string_constant(item);
            }
        }
        item.serialize(Walker {
            judge: &mut *self.judge,
            scope: self.scope,
            mode: Mode::Walk,
            first: None,
        })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, item: &T) -> Result<(), Stop> {
        match (self.mode, key) {
            (Mode::Call, "funcname") => self.name = Texts::all(item).texts,
            (Mode::Call, "args") => {
                let mut first = None;
                item.serialize(Walker {
                    judge: &mut *self.judge,
                    scope: self.scope,
                    mode: Mode::Args,
                    first: Some(&mut first),
                })?;
                self.first = first;
            }
            (Mode::Dml(_), "relation") => self.relation = value(item),
            (Mode::Dml(_), "where_clause") => {
                self.condition = value(item);
                self.judge.walk_value(&self.condition, self.scope);
            }
            (Mode::Execute, "name") => {
                self.relation = value(item);
            }
            _ => dispatch(&mut *self.judge, self.scope, key, item)?,
        }
        Ok(())
    }

    fn map_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        self.key = Some(match value(key) {
            Value::String(key) => key,
            other => other.to_string(),
        });
        Ok(())
    }

    fn map_value<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Stop> {
        let key = self.key.take().unwrap_or_default();
        self.field(&key, item)
    }

    fn end(self) -> Result<(), Stop> {
        match self.mode {
            Mode::Call => self
                .judge
                .call(&self.name, self.first.as_deref(), self.scope),
            Mode::Dml(rule) => self
                .judge
                .dml(rule, &self.relation, &self.condition, self.scope),
            Mode::Execute => self
                .judge
                .executed(self.relation.as_str().unwrap_or_default(), self.scope),
            Mode::Walk | Mode::Args => {}
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for Walker<'a> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    ignore_scalars!();
    fn serialize_str(self, _: &str) -> Result<(), Stop> {
        Ok(())
    }
    /// `{"Variant": value}`: the variant name is the key (a node kind, for `NodeEnum`).
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        dispatch(self.judge, self.scope, variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Stop> {
        Ok(self.compound())
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Stop> {
        Ok(self.compound())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Stop> {
        Ok(self.compound())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Stop> {
        Ok(self.plain())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Stop> {
        Ok(self.compound())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Stop> {
        Ok(self.compound())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Stop> {
        Ok(self.plain())
    }
}

compound_impls!(Compound<'_>, Compound::end);

/// A string constant (`'app.batch'`) in serde form: an `AConst` whose value is an `Sval`.
fn string_constant<T: Serialize + ?Sized>(node: &T) -> Option<String> {
    let mut found = Texts {
        texts: Vec::new(),
        variants: Vec::new(),
        most_variants: 2,
    };
    node.serialize(&mut found).ok()?;
    match (found.variants.as_slice(), found.texts.as_mut_slice()) {
        (["AConst", "Sval"], [text]) => Some(std::mem::take(text)),
        _ => None,
    }
}

/// The strings of a small tree (a qualified name's `sval`s) and the variants (node kinds) it
/// goes through, read without building its serde form; it gives up past `most_variants`.
struct Texts {
    texts: Vec<String>,
    variants: Vec<&'static str>,
    most_variants: usize,
}

impl Texts {
    fn element<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Stop> {
        item.serialize(self)
    }

    fn field<T: Serialize + ?Sized>(&mut self, _: &str, item: &T) -> Result<(), Stop> {
        item.serialize(self)
    }

    /// Keys are names, not strings of the tree.
    fn map_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Stop> {
        Ok(())
    }

    fn map_value<T: Serialize + ?Sized>(&mut self, item: &T) -> Result<(), Stop> {
        item.serialize(self)
    }

    /// Every string in `node`.
    fn all<T: Serialize + ?Sized>(node: &T) -> Texts {
        let mut found = Texts {
            texts: Vec::new(),
            variants: Vec::new(),
            most_variants: usize::MAX,
        };
        // Nothing here fails.
        let _ = node.serialize(&mut found);
        found
    }
}

impl ser::Serializer for &mut Texts {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore_scalars!();
    fn serialize_str(self, text: &str) -> Result<(), Stop> {
        self.texts.push(text.to_string());
        Ok(())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        if self.variants.len() == self.most_variants {
            return Err(Stop);
        }
        self.variants.push(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
}

compound_impls!(&mut Texts, |_| Ok(()));
