//! The shape of a silver table family: which JSON paths became which
//! columns of which tables, with what types. Kinds are inferred from the
//! data, merged by fixed rules, recorded with each commit, and turned into
//! Arrow schemas with stable names.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, ListArray, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use super::definition::{Declared, Parser, SilverTable};
use crate::error::{Error, Result};
use crate::landing::Stamp;

/// The root table's columns besides the key: when the row's version was
/// ingested, and its content hash (together they order versions).
pub const INGESTED_AT: &str = "_ingested_at";
pub const CONTENT_HASH: &str = "_content_hash";
/// The position column of a child table.
pub const IDX: &str = "idx";
/// Column names longer than this are cut and made unique with a hash.
const MAX_NAME: usize = 120;

/// The element type of a list column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scalar {
    Null,
    Bool,
    Int,
    Float,
    String,
}

/// What a JSON path holds. `Object` and `Array` are structure (an object's
/// fields are columns of their own, an array is a child table); the rest
/// are columns. `Null` is a path only ever seen null: a text column of
/// nulls until a value gives it a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Json,
    Date,
    Timestamp,
    Object,
    Array,
    List(Scalar),
}

impl Kind {
    pub fn is_column(self) -> bool {
        !matches!(self, Kind::Object | Kind::Array)
    }

    /// The kind a declared type or parser locks a path to.
    pub fn declared(declared: Option<Declared>, parse: Option<Parser>) -> Option<Kind> {
        match (declared, parse) {
            (Some(Declared::Bool), _) => Some(Kind::Bool),
            (Some(Declared::Int), _) => Some(Kind::Int),
            (Some(Declared::Float), _) => Some(Kind::Float),
            (Some(Declared::String), _) => Some(Kind::String),
            (Some(Declared::Json), _) => Some(Kind::Json),
            (None, Some(Parser::SpotifyReleaseDate | Parser::Date)) => Some(Kind::Date),
            (None, Some(Parser::Timestamp)) => Some(Kind::Timestamp),
            (None, None) => None,
        }
    }

    pub fn arrow(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Null | Kind::String | Kind::Json | Kind::Object | Kind::Array => DataType::Utf8,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => timestamp(),
            Kind::List(scalar) => DataType::List(Arc::new(list_item(scalar))),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Kind::List(s) => format!("list of {}", Kind::from(s).describe()),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        }
    }
}

impl From<Scalar> for Kind {
    fn from(s: Scalar) -> Kind {
        match s {
            Scalar::Null => Kind::Null,
            Scalar::Bool => Kind::Bool,
            Scalar::Int => Kind::Int,
            Scalar::Float => Kind::Float,
            Scalar::String => Kind::String,
        }
    }
}

/// The field of a list column's elements (`element`, as Parquet's list
/// convention and every engine expect).
pub fn list_item(scalar: Scalar) -> Field {
    let data_type = match scalar {
        Scalar::Null | Scalar::String => DataType::Utf8,
        Scalar::Bool => DataType::Boolean,
        Scalar::Int => DataType::Int64,
        Scalar::Float => DataType::Float64,
    };
    Field::new("element", data_type, true)
}

pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The kind a column of kind `column` becomes when it meets a value of
/// kind `value`, or `None` when the two do not mix. Null meets anything;
/// int and float widen to float (exact up to 2^53); nothing else changes
/// type on its own.
pub fn join(column: Kind, value: Kind) -> Option<Kind> {
    match (column, value) {
        (c, Kind::Null) => Some(c),
        (Kind::Null, v) => Some(v),
        (c, v) if c == v => Some(c),
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Some(Kind::Float),
        (Kind::List(a), Kind::List(b)) => join_scalar(a, b).map(Kind::List),
        _ => None,
    }
}

pub fn join_scalar(a: Scalar, b: Scalar) -> Option<Scalar> {
    match join(a.into(), b.into())? {
        Kind::Null => Some(Scalar::Null),
        Kind::Bool => Some(Scalar::Bool),
        Kind::Int => Some(Scalar::Int),
        Kind::Float => Some(Scalar::Float),
        _ => Some(Scalar::String),
    }
}

/// Where a value sits in history: its version's ingest stamp, then its key.
pub type Position = (Stamp, String);

/// The kinds seen at one path, each with the earliest position it was seen
/// at. The path's type is the earliest kind, widened by the later kinds
/// that join it: so a field that changes type mid-history keeps its first
/// type and the later rows are the offenders, whichever worker saw what.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed(Vec<(Kind, Position)>);

impl Observed {
    pub fn note(&mut self, kind: Kind, stamp: Stamp, key: &str) {
        if kind == Kind::Null {
            return;
        }
        for (seen, (s, k)) in &mut self.0 {
            if *seen == kind {
                if (stamp, key) < (*s, k.as_str()) {
                    *s = stamp;
                    *k = key.to_string();
                }
                return;
            }
        }
        self.0.push((kind, (stamp, key.to_string())));
    }

    pub fn merge(&mut self, other: &Observed) {
        for (kind, (stamp, key)) in &other.0 {
            self.note(*kind, *stamp, key);
        }
    }

    /// The path's kind given what history already fixed (`prior`).
    pub fn decide(&self, prior: Kind) -> Kind {
        let mut seen: Vec<&(Kind, Position)> = self.0.iter().collect();
        seen.sort_by(|a, b| a.1.cmp(&b.1));
        seen.iter()
            .fold(prior, |kind, (next, _)| join(kind, *next).unwrap_or(kind))
    }
}

/// One table of the family as recorded: its parent (`None` for the root)
/// and the kind of every path it holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableKinds {
    pub parent: Option<String>,
    pub columns: BTreeMap<String, Kind>,
}

/// The recorded shape of a family, by table path (`""` is the root; a
/// child table's path is its array's path, `[]` marking an array inside an
/// array).
pub type Recorded = BTreeMap<String, TableKinds>;

/// A column of a table: the path it holds, its name and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnShape {
    pub path: String,
    pub name: String,
    pub kind: Kind,
}

/// One table of the family, ready to write.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub path: String,
    /// The lake table name: `tracks`, `tracks__artists`.
    pub name: String,
    /// Data columns, sorted by name.
    pub columns: Vec<ColumnShape>,
    pub schema: SchemaRef,
    /// Identifies `schema`; files record it so a run knows which files
    /// need their columns brought up to date.
    pub fingerprint: String,
}

/// The name of a column for a path relative to its table (`album.name` →
/// `album__name`; the element itself → `value`; `[]` → `items`). Segments
/// that are not plain lowercase identifiers keep a readable form plus a
/// short hash of the original, so distinct keys never share a name.
pub fn relative_name(relative: &str) -> String {
    if relative.is_empty() {
        return "value".into();
    }
    let mut parts = Vec::new();
    for segment in relative.split('.') {
        let core = segment.trim_end_matches("[]");
        let arrays = (segment.len() - core.len()) / 2;
        if !core.is_empty() {
            parts.push(segment_name(&unescape(core)));
        }
        parts.extend(std::iter::repeat_n("items".to_string(), arrays));
    }
    let name = parts.join("__");
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME - 9;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}_{:08x}", &name[..cut], short_hash(relative) as u32)
    } else {
        name
    }
}

/// A JSON key as part of a column name.
fn segment_name(raw: &str) -> String {
    let plain = raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !raw.contains("__")
        && !raw.ends_with('_');
    if plain {
        return raw.to_string();
    }
    let mut readable: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    while readable.contains("__") {
        readable = readable.replace("__", "_");
    }
    let readable = readable.trim_matches('_');
    let readable = if readable.starts_with(|c: char| c.is_ascii_lowercase()) {
        readable.to_string()
    } else {
        format!("c{readable}")
    };
    format!("{readable}_{:04x}", short_hash(raw) as u16)
}

pub fn short_hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// Escape a JSON key for a path: `.`, `[` and `%` would read as structure.
pub fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    if key.bytes().any(|b| matches!(b, b'.' | b'[' | b'%')) {
        for c in key.chars() {
            match c {
                '.' => path.push_str("%2E"),
                '[' => path.push_str("%5B"),
                '%' => path.push_str("%25"),
                c => path.push(c),
            }
        }
    } else {
        path.push_str(key);
    }
}

/// A path segment as the JSON key it came from.
fn unescape(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    Cow::Owned(
        segment
            .replace("%2E", ".")
            .replace("%5B", "[")
            .replace("%25", "%"),
    )
}

/// `path` relative to the table at `table` (which it starts with).
fn relative<'p>(path: &'p str, table: &str) -> &'p str {
    if table.is_empty() {
        path
    } else {
        path[table.len()..].trim_start_matches('.')
    }
}

/// The names of a family's tables, from the table tree: root name,
/// `<parent>__<array>` below it, renamed where the definition says so.
pub struct Naming<'d> {
    def: &'d SilverTable,
}

impl<'d> Naming<'d> {
    pub fn new(def: &'d SilverTable) -> Naming<'d> {
        Naming { def }
    }

    pub fn quarantine_table(&self) -> String {
        format!("{}_quarantine", self.def.name)
    }

    /// `(table name, key columns)` for the table at `path`, whose ancestors
    /// are `parents(path)`.
    pub fn table(
        &self,
        path: &str,
        parent_of: &dyn Fn(&str) -> Option<String>,
    ) -> (String, Vec<String>) {
        let Some(parent) = parent_of(path) else {
            return (self.def.name.clone(), vec![self.def.key.clone()]);
        };
        let (parent_name, mut keys) = self.table(&parent, parent_of);
        let suffix = match self.def.columns.get(path).and_then(|r| r.rename.clone()) {
            Some(name) => name,
            None => relative_name(relative(path, &parent)),
        };
        if keys.len() == 1 {
            keys = vec![self.def.parent_key.clone()];
        } else if let Some(last) = keys.last_mut() {
            let parent_suffix = parent_name
                .strip_prefix(&format!("{}__", self.def.name))
                .unwrap_or(&parent_name);
            *last = format!("{parent_suffix}_{IDX}");
        }
        keys.push(IDX.into());
        (format!("{parent_name}__{suffix}"), keys)
    }

    /// The column name of `path` in the table at `table`.
    pub fn column(&self, table: &str, path: &str, reserved: &[String]) -> String {
        let name = match self.def.columns.get(path).and_then(|r| r.rename.clone()) {
            Some(name) => name,
            None => relative_name(relative(path, table)),
        };
        if reserved.contains(&name) {
            format!("{name}_{:04x}", short_hash(path) as u16)
        } else {
            name
        }
    }
}

/// Arrow schemas for every table of a recorded family.
pub fn shapes(def: &SilverTable, recorded: &Recorded) -> Result<Vec<TableShape>> {
    let naming = Naming::new(def);
    let parent_of = |path: &str| recorded.get(path).and_then(|t| t.parent.clone());
    let mut shapes = Vec::new();
    for (path, table) in recorded {
        let columns: Vec<(&str, Kind)> = table
            .columns
            .iter()
            .filter(|(_, k)| k.is_column())
            .map(|(p, k)| (p.as_str(), *k))
            .collect();
        shapes.push(shape(def, &naming, path, &parent_of, &columns)?);
    }
    Ok(shapes)
}

/// The shape of one table holding `columns`.
pub fn shape(
    def: &SilverTable,
    naming: &Naming,
    path: &str,
    parent_of: &dyn Fn(&str) -> Option<String>,
    columns: &[(&str, Kind)],
) -> Result<TableShape> {
    let (name, keys) = naming.table(path, parent_of);
    let root = keys.len() == 1;
    let mut reserved = keys.clone();
    if root {
        reserved.extend([INGESTED_AT.to_string(), CONTENT_HASH.to_string()]);
    }
    let mut shaped: Vec<ColumnShape> = columns
        .iter()
        .map(|(p, kind)| ColumnShape {
            path: p.to_string(),
            name: naming.column(path, p, &reserved),
            kind: *kind,
        })
        .collect();
    shaped.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = shaped.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Error::config(
            def.file.display().to_string(),
            format!(
                "paths {:?} and {:?} both become column {:?} of {name}",
                pair[0].path, pair[1].path, pair[0].name
            ),
            "give one of them another name with [columns.\"<path>\"] rename = \"...\"",
        ));
    }
    let mut fields: Vec<Field> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let data_type = if i == 0 {
                DataType::Utf8
            } else {
                DataType::Int32
            };
            Field::new(key, data_type, false)
        })
        .collect();
    fields.extend(
        shaped
            .iter()
            .map(|c| Field::new(&c.name, c.kind.arrow(), true)),
    );
    if root {
        fields.push(Field::new(INGESTED_AT, timestamp(), false));
        fields.push(Field::new(CONTENT_HASH, DataType::Utf8, false));
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(TableShape {
        path: path.into(),
        name,
        columns: shaped,
        fingerprint: fingerprint(&schema),
        schema,
    })
}

pub fn fingerprint(schema: &Schema) -> String {
    let text: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable()))
        .collect();
    format!("{:016x}", short_hash(&text.join(",")))
}

/// `array` as `to`, for the changes [`join`] allows: from all-null, int to
/// float, and the same inside lists. Anything else is a bug upstream.
pub fn widen(array: &ArrayRef, to: &DataType) -> ArrayRef {
    if array.data_type() == to {
        return array.clone();
    }
    if array.logical_null_count() == array.len() {
        return new_null_array(to, array.len());
    }
    match (array.data_type(), to) {
        (DataType::Int64, DataType::Float64) => {
            let ints = array
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("Int64 arrays downcast");
            Arc::new(
                ints.iter()
                    .map(|v| v.map(|i| i as f64))
                    .collect::<Float64Array>(),
            )
        }
        (DataType::List(_), DataType::List(item)) => {
            let list = array
                .as_any()
                .downcast_ref::<ListArray>()
                .expect("List arrays downcast");
            Arc::new(ListArray::new(
                item.clone(),
                list.offsets().clone(),
                widen(list.values(), item.data_type()),
                list.nulls().cloned(),
            ))
        }
        (from, to) => unreachable!("silver never widens {from} to {to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_join_only_losslessly() {
        assert_eq!(join(Kind::Int, Kind::Float), Some(Kind::Float));
        assert_eq!(join(Kind::Float, Kind::Int), Some(Kind::Float));
        assert_eq!(join(Kind::Null, Kind::Object), Some(Kind::Object));
        assert_eq!(join(Kind::Array, Kind::Null), Some(Kind::Array));
        assert_eq!(join(Kind::Int, Kind::String), None);
        assert_eq!(join(Kind::String, Kind::Int), None);
        assert_eq!(join(Kind::Object, Kind::String), None);
        assert_eq!(
            join(Kind::List(Scalar::Null), Kind::List(Scalar::Int)),
            Some(Kind::List(Scalar::Int))
        );
        assert_eq!(
            join(Kind::List(Scalar::Int), Kind::List(Scalar::String)),
            None
        );
    }

    #[test]
    fn the_earliest_kind_in_history_wins_whatever_the_order_seen() {
        let mut a = Observed::default();
        a.note(Kind::String, 20, "b");
        a.note(Kind::Int, 10, "z");
        a.note(Kind::Float, 30, "a");
        assert_eq!(a.decide(Kind::Null), Kind::Float);
        let mut b = Observed::default();
        b.note(Kind::Int, 10, "z");
        b.note(Kind::String, 10, "y");
        assert_eq!(
            b.decide(Kind::Null),
            Kind::String,
            "same stamp: the key breaks the tie"
        );
        assert_eq!(
            b.decide(Kind::Int),
            Kind::Int,
            "recorded history comes first"
        );
        let mut merged = Observed::default();
        merged.merge(&b);
        merged.merge(&a);
        let mut other = Observed::default();
        other.merge(&a);
        other.merge(&b);
        assert_eq!(merged.decide(Kind::Null), other.decide(Kind::Null));
    }

    #[test]
    fn names_are_stable_readable_and_distinct() {
        assert_eq!(relative_name("album.release_date"), "album__release_date");
        assert_eq!(relative_name(""), "value");
        assert_eq!(relative_name("[]"), "items");
        assert_eq!(relative_name("a[][].b"), "a__items__items__b");
        let camel = relative_name("trackNumber");
        assert!(
            camel.starts_with("tracknumber_") && camel.len() == 16,
            "{camel}"
        );
        assert_ne!(relative_name("a-b"), relative_name("a_b"));
        assert_ne!(relative_name("A"), relative_name("a"));
        assert_ne!(relative_name("a__b"), relative_name("a.b"));
        assert!(
            relative_name("日本").starts_with("c_"),
            "{}",
            relative_name("日本")
        );
        let long = "x".repeat(300);
        assert!(relative_name(&long).len() <= MAX_NAME);
        assert_ne!(relative_name(&long), relative_name(&"x".repeat(301)));
        let mut path = String::new();
        push_key(&mut path, "a.b");
        push_key(&mut path, "c");
        assert_eq!(path, "a%2Eb.c");
    }

    #[test]
    fn widening_keeps_values_and_nulls() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)]));
        let floats = widen(&ints, &DataType::Float64);
        let floats = floats.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(
            floats.iter().collect::<Vec<_>>(),
            vec![Some(1.0), None, Some(-3.0)]
        );
        let nulls = new_null_array(&DataType::Utf8, 2);
        assert_eq!(widen(&nulls, &DataType::Int64).null_count(), 2);
    }
}
