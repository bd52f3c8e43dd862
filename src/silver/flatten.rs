//! One worker's flattening: bronze versions in, one Arrow record batch
//! per silver table out. Each document is parsed once (simd-json) and
//! walked once: the walk checks whether every value fits its column (or
//! the document goes to quarantine, whole) and notes the rows and values
//! it met, which are appended once the whole document passed. Nothing but
//! the current chunk's column builders is held in memory.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate};
use simd_json::StaticNode;

use crate::stages::Stage;

use super::definition::{ColumnRule, Declared, Parser, SilverTable};
use super::schema::{
    CONTENT_HASH, INGESTED_AT, Kind, Naming, Observed, Recorded, Scalar, TableKinds, TableShape,
    join, join_scalar, list_item, push_key, shape, timestamp, widen,
};
use crate::error::Result;
use crate::json_tape::{self, Json, TapeParser};
use crate::landing::Stamp;

/// The path lookups run once per value: a fast, fixed-seed hash (no
/// hash-flooding concern, the keys are our own paths).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Documents nested deeper than this go to quarantine (and the walk stays
/// far from the stack's limit).
const MAX_DEPTH: usize = 64;
/// The longest value quoted in a quarantine reason.
const QUOTE: usize = 60;

/// What every worker of one run shares: the definition and the kinds that
/// are fixed (recorded by earlier runs, declared, or decided by this one).
#[derive(Debug)]
pub struct Plan {
    pub def: SilverTable,
    /// Locked kinds by table path, then column path: a value that does not
    /// fit sends its document to quarantine.
    pub locked: BTreeMap<String, BTreeMap<String, Kind>>,
    /// How a document's `unique` values become its identity, when the
    /// definition names any.
    identify: Option<Identify>,
}

impl Plan {
    /// A plan locking the kinds `recorded` fixed (paths only ever seen
    /// null stay open).
    pub fn new(def: SilverTable, recorded: &Recorded) -> Plan {
        let mut locked = BTreeMap::new();
        for (path, table) in recorded {
            let columns: BTreeMap<String, Kind> = table
                .columns
                .iter()
                .filter(|(_, k)| locks(**k))
                .map(|(p, k)| (p.clone(), *k))
                .collect();
            locked.insert(path.clone(), columns);
        }
        let identify = Identify::new(&def);
        Plan {
            def,
            locked,
            identify,
        }
    }
}

/// How a document's `unique` values become one hash, computed on the tape
/// the flattening parsed (one parse per document, not one more to compare).
#[derive(Debug)]
struct Identify {
    paths: Vec<UniquePath>,
}

#[derive(Debug)]
struct UniquePath {
    /// Dotted, as [`Json::at`] reads it.
    path: String,
    /// Compared as an instant (the definition parses it as a timestamp).
    instant: bool,
}

impl Identify {
    fn new(def: &SilverTable) -> Option<Identify> {
        let paths: Vec<UniquePath> = def
            .unique
            .iter()
            .map(|path| {
                let parse = def.columns.get(path).and_then(|r| r.parse);
                UniquePath {
                    path: path.clone(),
                    instant: parse == Some(Parser::Timestamp),
                }
            })
            .collect();
        (!paths.is_empty()).then_some(Identify { paths })
    }

    /// A hash of the values at the `unique` paths, each tagged: a string
    /// as its length and text, an instant as microseconds, any other value
    /// as the length and text of its JSON (absent and `null` alike). A
    /// document that is not JSON (`root` is `None`) is identified by its
    /// key alone: it is no other event's duplicate (it goes to
    /// quarantine). Bytes, not formatted text: this runs for every row.
    fn identity(&self, root: Option<Json>, key: &str, bytes: &mut Vec<u8>) -> u128 {
        bytes.clear();
        let Some(root) = root else {
            bytes.push(b'!');
            with_length(bytes, key.as_bytes());
            return xxhash_rust::xxh3::xxh3_128(bytes);
        };
        for path in &self.paths {
            match root.at(&path.path) {
                Some(Json::String(s)) => {
                    let instant = path
                        .instant
                        .then(|| DateTime::parse_from_rfc3339(s).ok())
                        .flatten();
                    match instant {
                        Some(t) => {
                            bytes.push(b't');
                            bytes.extend_from_slice(&t.timestamp_micros().to_le_bytes());
                        }
                        None => {
                            bytes.push(b's');
                            with_length(bytes, s.as_bytes());
                        }
                    }
                }
                None | Some(Json::Static(StaticNode::Null)) => bytes.push(b'n'),
                Some(value) => {
                    bytes.push(b'j');
                    with_length(bytes, json_text(value).as_bytes());
                }
            }
        }
        xxhash_rust::xxh3::xxh3_128(bytes)
    }
}

/// `text` after its length, so that no text runs into the next.
fn with_length(bytes: &mut Vec<u8>, text: &[u8]) {
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(text);
}

/// Whether a recorded kind fixes its path: `Null` and a list of nulls
/// say nothing yet.
fn locks(kind: Kind) -> bool {
    !matches!(kind, Kind::Null | Kind::List(Scalar::Null))
}

/// One bronze version to flatten.
pub struct Version<'a> {
    pub key: &'a str,
    pub stamp: Stamp,
    pub content_hash: &'a str,
    pub doc: &'a str,
}

/// A table's rows of one chunk, with the shape they were built in.
pub struct TableBatch {
    pub shape: TableShape,
    pub batch: RecordBatch,
}

/// The quarantine rows of one chunk.
pub fn quarantine_schema(key: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(key, DataType::Utf8, false),
        Field::new(INGESTED_AT, timestamp(), false),
        Field::new(CONTENT_HASH, DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("doc", DataType::Utf8, false),
    ]))
}

/// What appending a checked document does, in the order the walk met it.
enum Op<'v> {
    /// A row of `table` at the array positions `chain` (a range of
    /// [`Flattener::chains`]).
    Row {
        table: usize,
        chain: std::ops::Range<usize>,
    },
    /// A table's array was present in an accepted document (even empty).
    Present(usize),
    Value {
        table: usize,
        column: usize,
        val: Val<'v>,
    },
}

/// The emptied `ops` for a document of another lifetime, keeping their
/// allocation (the collect reuses it in place).
fn recycle<'a, 'b>(mut ops: Vec<Op<'a>>) -> Vec<Op<'b>> {
    ops.clear();
    ops.into_iter().map(|_| unreachable!("cleared")).collect()
}

/// Why a walk stopped early.
enum Stop {
    TooDeep,
    /// An object names a field twice: the walk starts over, taking each
    /// key's last value.
    RepeatedKey,
}

/// A worker's state: column builders per table, kinds seen so far.
pub struct Flattener {
    plan: Arc<Plan>,
    tables: Vec<TableBuf>,
    by_path: FastMap<String, usize>,
    quarantine: Quarantine,
    /// A value met an unlocked column of another kind: this pass's output
    /// is not usable, the run decides kinds and flattens again.
    pub conflicts: u64,
    offenses: Vec<String>,
    touched: Vec<(usize, usize)>,
    /// Held between documents only for their allocation.
    ops: Vec<Op<'static>>,
    /// The array positions of the rows in `ops`.
    chains: Vec<i32>,
    /// Objects walked so far: a column met twice in one object's walk
    /// means the object repeats a key.
    objects: u64,
    /// Walk only the last of the pairs with the same key.
    last_key_only: bool,
    /// Taken while a document is walked, put back after.
    parser: Option<TapeParser>,
    /// Held between documents only for its allocation.
    identity_bytes: Vec<u8>,
    /// Document bytes taken since the last chunk.
    pending_bytes: usize,
    pending_rows: usize,
    /// Time spent parsing and flattening since the last chunk, counted to
    /// the stages at the chunk rather than at every document, which took
    /// two adds to counters every core shares.
    parsing: Duration,
    flattening: Duration,
}

struct TableBuf {
    path: String,
    /// Whether an accepted document had this array (even empty).
    applied: bool,
    parent: Option<usize>,
    rows: usize,
    key: StringBuilder,
    positions: Vec<Int32Builder>,
    columns: Vec<ColumnBuf>,
    index: FastMap<String, usize>,
    /// The columns of an object's fields by field name: slot 0 for the
    /// table's own object, slot `c + 1` for the object in column `c`. A
    /// field is found by its short name instead of hashing and comparing
    /// its whole path, once per value.
    fields: Vec<FastMap<Box<str>, usize>>,
    meta: Option<(TimestampMicrosecondBuilder, StringBuilder)>,
}

struct ColumnBuf {
    path: String,
    /// Whether a value (even null) of an accepted document reached it:
    /// paths only quarantined documents have are not columns.
    applied: bool,
    kind: Kind,
    locked: bool,
    /// The last object whose walk met this column ([`Flattener::objects`]).
    object: u64,
    rule: Rule,
    tentative: Option<Kind>,
    /// Arrays finished before the column changed kind.
    sealed: Vec<ArrayRef>,
    builder: Builder,
    observed: Observed,
}

#[derive(Debug, Clone, Copy, Default)]
struct Rule {
    drop: bool,
    list: bool,
    declared: Option<Declared>,
    parse: Option<Parser>,
}

impl From<&ColumnRule> for Rule {
    fn from(r: &ColumnRule) -> Rule {
        Rule {
            drop: r.drop,
            list: r.list,
            declared: r.declared,
            parse: r.parse,
        }
    }
}

struct Quarantine {
    key: StringBuilder,
    ingested_at: TimestampMicrosecondBuilder,
    content_hash: StringBuilder,
    reason: StringBuilder,
    doc: StringBuilder,
    rows: usize,
}

impl Quarantine {
    fn new() -> Quarantine {
        Quarantine {
            key: StringBuilder::new(),
            ingested_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            content_hash: StringBuilder::new(),
            reason: StringBuilder::new(),
            doc: StringBuilder::new(),
            rows: 0,
        }
    }
}

/// A value on its way into a column.
enum Val<'v> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'v str),
    /// Text made from the value (a declared string or JSON).
    Text(String, Kind),
    Date(i32),
    Ts(i64),
    Object,
    Array,
    List(Scalar, Vec<Item<'v>>),
}

enum Item<'v> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'v, str>),
}

impl Val<'_> {
    fn kind(&self) -> Kind {
        match self {
            Val::Null => Kind::Null,
            Val::Bool(_) => Kind::Bool,
            Val::Int(_) => Kind::Int,
            Val::Float(_) => Kind::Float,
            Val::Str(_) => Kind::String,
            Val::Text(_, kind) => *kind,
            Val::Date(_) => Kind::Date,
            Val::Ts(_) => Kind::Timestamp,
            Val::Object => Kind::Object,
            Val::Array => Kind::Array,
            Val::List(scalar, _) => Kind::List(*scalar),
        }
    }

    fn quote(&self) -> String {
        let text = match self {
            Val::Null => "null".to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => f.to_string(),
            Val::Str(s) => serde_json::to_string(s).unwrap_or_default(),
            Val::Text(s, _) => s.clone(),
            Val::Date(d) => d.to_string(),
            Val::Ts(t) => t.to_string(),
            Val::Object => "an object".into(),
            Val::Array => "an array".into(),
            Val::List(..) => "a list".into(),
        };
        cut(&text, QUOTE)
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Flattener {
    pub fn new(plan: Arc<Plan>) -> Flattener {
        let mut flattener = Flattener {
            plan,
            tables: Vec::new(),
            by_path: FastMap::default(),
            quarantine: Quarantine::new(),
            conflicts: 0,
            offenses: Vec::new(),
            touched: Vec::new(),
            ops: Vec::new(),
            chains: Vec::new(),
            objects: 0,
            last_key_only: false,
            parser: Some(TapeParser::with_max_depth(MAX_DEPTH * 2)),
            identity_bytes: Vec::new(),
            pending_bytes: 0,
            pending_rows: 0,
            parsing: Duration::ZERO,
            flattening: Duration::ZERO,
        };
        flattener.table("", None);
        flattener
    }

    /// Document bytes and rows taken since the last [`Flattener::chunk`].
    pub fn pending(&self) -> (usize, usize) {
        (self.pending_bytes, self.pending_rows)
    }

    /// Flatten one version into the builders, or into quarantine with the
    /// reasons it does not fit. Returns its identity (see [`Identify`])
    /// when the definition names `unique` fields.
    pub fn push(&mut self, v: &Version) -> Option<u128> {
        let started = Instant::now();
        self.pending_bytes += v.doc.len();
        self.pending_rows += 1;
        let mut parser = self.parser.take().expect("put back after each document");
        let mut parsed_at = None;
        let mut identity = None;
        let walked = parser.walk(v.doc, |root| {
            parsed_at = Some(Instant::now());
            if let Some(identify) = &self.plan.identify {
                identity = Some(identify.identity(Some(root), v.key, &mut self.identity_bytes));
            }
            let Json::Object(fields) = root else {
                self.quarantine(v, "the document is not a JSON object".into());
                return;
            };
            // `ops` borrow the document's tape: they are emptied before it
            // is gone.
            let mut ops = recycle(std::mem::take(&mut self.ops));
            match self.check(&mut ops, v, fields) {
                Err(Stop::RepeatedKey) => unreachable!("the second walk takes one of each"),
                Err(Stop::TooDeep) => self.quarantine(
                    v,
                    format!(
                        "nested more than {MAX_DEPTH} levels deep; silver flattens up to {MAX_DEPTH}"
                    ),
                ),
                Ok(()) if !self.offenses.is_empty() => {
                    let reason = self.offenses.join("; ");
                    self.quarantine(v, reason)
                }
                Ok(()) => self.append(v, &mut ops),
            }
            self.ops = recycle(ops);
        });
        self.parser = Some(parser);
        let parse_done = parsed_at.unwrap_or_else(Instant::now);
        if let Err(e) = walked {
            self.quarantine(v, format!("the document is not valid JSON: {e}"));
            if let Some(identify) = &self.plan.identify {
                identity = Some(identify.identity(None, v.key, &mut self.identity_bytes));
            }
        }
        self.parsing += parse_done - started;
        self.flattening += parse_done.elapsed();
        identity
    }

    /// Walk a document, checking its values and noting what to append. An
    /// object that repeats a key is read as serde_json and Trino read it:
    /// the last value counts (the tape holds every pair).
    fn check<'t>(
        &mut self,
        ops: &mut Vec<Op<'t>>,
        v: &Version,
        fields: json_tape::Object<'t>,
    ) -> std::result::Result<(), Stop> {
        let conflicts = self.conflicts;
        let walk = |this: &mut Flattener, ops: &mut Vec<Op<'t>>| {
            this.offenses.clear();
            this.chains.clear();
            ops.clear();
            this.conflicts = conflicts;
            let checked = this.fields(
                ops,
                v,
                fields,
                0,
                None,
                &mut String::new(),
                &mut Vec::new(),
                0,
            );
            for (t, c) in this.touched.drain(..) {
                this.tables[t].columns[c].tentative = None;
            }
            checked
        };
        match walk(self, ops) {
            Err(Stop::RepeatedKey) => {
                self.last_key_only = true;
                let checked = walk(self, ops);
                self.last_key_only = false;
                checked
            }
            checked => checked,
        }
    }

    /// Append a checked document: its rows and values, as the walk met them.
    fn append(&mut self, v: &Version, ops: &mut Vec<Op>) {
        self.new_row(0, v, &[]);
        let chains = std::mem::take(&mut self.chains);
        for op in ops.drain(..) {
            match op {
                Op::Row { table, chain } => self.new_row(table, v, &chains[chain]),
                Op::Present(table) => self.tables[table].applied = true,
                Op::Value { table, column, val } => self.apply(v, table, column, val),
            }
        }
        self.chains = chains;
    }

    fn quarantine(&mut self, v: &Version, reason: String) {
        let q = &mut self.quarantine;
        q.key.append_value(v.key);
        q.ingested_at.append_value(v.stamp);
        q.content_hash.append_value(v.content_hash);
        q.reason.append_value(cut(&reason, 4000));
        q.doc.append_value(v.doc);
        q.rows += 1;
    }

    fn table(&mut self, path: &str, parent: Option<usize>) -> usize {
        if let Some(&i) = self.by_path.get(path) {
            return i;
        }
        let depth = match parent {
            None => 0,
            Some(p) => self.tables[p].positions.len() + 1,
        };
        self.tables.push(TableBuf {
            path: path.into(),
            applied: parent.is_none(),
            parent,
            rows: 0,
            key: StringBuilder::new(),
            positions: (0..depth).map(|_| Int32Builder::new()).collect(),
            columns: Vec::new(),
            index: FastMap::default(),
            fields: Vec::new(),
            meta: parent.is_none().then(|| {
                (
                    TimestampMicrosecondBuilder::new().with_timezone("UTC"),
                    StringBuilder::new(),
                )
            }),
        });
        let index = self.tables.len() - 1;
        self.by_path.insert(path.into(), index);
        // Declared paths get their columns with the table, so files carry
        // them even when no value arrived.
        let plan = self.plan.clone();
        let root = String::new();
        for (column, rule) in &plan.def.columns {
            if Kind::declared(rule.declared, rule.parse).is_none() {
                continue;
            }
            let known = plan.locked.keys().chain(self.by_path.keys()).chain([&root]);
            if holder_table(known, column).as_deref() == Some(path) {
                self.column(index, column);
            }
        }
        index
    }

    fn column(&mut self, table: usize, path: &str) -> usize {
        let t = &mut self.tables[table];
        if let Some(&c) = t.index.get(path) {
            return c;
        }
        let rule = self
            .plan
            .def
            .columns
            .get(path)
            .map(Rule::from)
            .unwrap_or_default();
        let declared = Kind::declared(rule.declared, rule.parse);
        let recorded = self
            .plan
            .locked
            .get(&t.path)
            .and_then(|columns| columns.get(path))
            .copied();
        let kind = declared.or(recorded).unwrap_or(Kind::Null);
        t.columns.push(ColumnBuf {
            path: path.into(),
            applied: declared.is_some(),
            kind,
            locked: declared.is_some() || recorded.is_some(),
            object: 0,
            rule,
            tentative: None,
            sealed: Vec::new(),
            builder: Builder::new(kind),
            observed: Observed::default(),
        });
        t.index.insert(path.into(), t.columns.len() - 1);
        t.columns.len() - 1
    }

    fn new_row(&mut self, table: usize, v: &Version, chain: &[i32]) {
        let t = &mut self.tables[table];
        t.rows += 1;
        t.key.append_value(v.key);
        for (builder, position) in t.positions.iter_mut().zip(chain) {
            builder.append_value(*position);
        }
        if let Some((ingested_at, hash)) = &mut t.meta {
            ingested_at.append_value(v.stamp);
            hash.append_value(v.content_hash);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fields<'t>(
        &mut self,
        ops: &mut Vec<Op<'t>>,
        v: &Version,
        fields: json_tape::Object<'t>,
        table: usize,
        object: Option<usize>,
        path: &mut String,
        chain: &mut Vec<i32>,
        depth: usize,
    ) -> std::result::Result<(), Stop> {
        if depth + 1 > MAX_DEPTH && !fields.is_empty() {
            return Err(Stop::TooDeep);
        }
        let slot = object.map_or(0, |c| c + 1);
        self.objects += 1;
        let this_object = self.objects;
        let mut own_key_met = false;
        let last_key_only = self.last_key_only;
        let pairs = fields.iter().enumerate().filter(|(i, (key, _))| {
            !last_key_only || !fields.iter().skip(i + 1).any(|(later, _)| later == *key)
        });
        for (_, (key, value)) in pairs {
            let len = path.len();
            push_key(path, key);
            // The document's own key is the row key, not a column.
            if table == 0 && *path == self.plan.def.key {
                if std::mem::replace(&mut own_key_met, true) {
                    return Err(Stop::RepeatedKey);
                }
                if matches!(value, Json::String(s) if s == v.key) {
                    path.truncate(len);
                    continue;
                }
            }
            let known = self.tables[table]
                .fields
                .get(slot)
                .and_then(|columns| columns.get(key))
                .copied();
            let column = match known {
                Some(column) => column,
                None => {
                    let column = self.column(table, path);
                    let t = &mut self.tables[table];
                    if t.fields.len() <= slot {
                        t.fields.resize_with(slot + 1, FastMap::default);
                    }
                    t.fields[slot].insert(key.into(), column);
                    column
                }
            };
            let met = &mut self.tables[table].columns[column].object;
            if std::mem::replace(met, this_object) == this_object {
                return Err(Stop::RepeatedKey);
            }
            let walked = self.walk(ops, v, value, table, column, path, chain, depth + 1, false);
            path.truncate(len);
            walked?;
        }
        Ok(())
    }

    /// One value at `path`, in `column` of the current row of `table`.
    /// `element` is set for the elements of an array, whose rules the
    /// array already applied.
    #[allow(clippy::too_many_arguments)]
    fn walk<'t>(
        &mut self,
        ops: &mut Vec<Op<'t>>,
        v: &Version,
        value: Json<'t>,
        table: usize,
        column: usize,
        path: &mut String,
        chain: &mut Vec<i32>,
        depth: usize,
        element: bool,
    ) -> std::result::Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::TooDeep);
        }
        let rule = if element {
            Rule::default()
        } else {
            self.tables[table].columns[column].rule
        };
        if rule.drop {
            return Ok(());
        }
        if let Some(declared) = rule.declared {
            let val = declared_value(declared, value);
            self.leaf(ops, table, column, val);
            return Ok(());
        }
        if let Some(parser) = rule.parse {
            let val = parsed_value(parser, value);
            self.leaf(ops, table, column, val);
            return Ok(());
        }
        if rule.list {
            let val = list_value(value);
            self.leaf(ops, table, column, val);
            return Ok(());
        }
        match value {
            Json::Static(node) => {
                let val = match node {
                    StaticNode::Null => Val::Null,
                    StaticNode::Bool(b) => Val::Bool(b),
                    StaticNode::I64(i) => Val::Int(i),
                    StaticNode::U64(u) => match i64::try_from(u) {
                        Ok(i) => Val::Int(i),
                        Err(_) => Val::Float(u as f64),
                    },
                    StaticNode::F64(f) => Val::Float(f),
                };
                self.leaf(ops, table, column, val);
            }
            Json::String(s) => self.leaf(ops, table, column, Val::Str(s)),
            Json::Object(fields) => {
                self.leaf(ops, table, column, Val::Object);
                self.fields(ops, v, fields, table, Some(column), path, chain, depth)?;
            }
            Json::Array(items) => {
                self.leaf(ops, table, column, Val::Array);
                let mut child_path = path.clone();
                if *path == self.tables[table].path {
                    child_path.push_str("[]");
                }
                let child = self.table(&child_path, Some(table));
                ops.push(Op::Present(child));
                // Every element is in the same column of the child table,
                // found once the first element is met.
                let mut element_column = None;
                let mut item_path = String::new();
                for (i, item) in items.iter().enumerate() {
                    chain.push(i32::try_from(i).unwrap_or(i32::MAX));
                    let start = self.chains.len();
                    self.chains.extend_from_slice(chain);
                    ops.push(Op::Row {
                        table: child,
                        chain: start..self.chains.len(),
                    });
                    if depth + 1 > MAX_DEPTH {
                        chain.pop();
                        return Err(Stop::TooDeep);
                    }
                    let element = match element_column {
                        Some(column) => column,
                        None => *element_column.insert(self.column(child, &child_path)),
                    };
                    item_path.clone_from(&child_path);
                    let walked = self.walk(
                        ops,
                        v,
                        item,
                        child,
                        element,
                        &mut item_path,
                        chain,
                        depth + 1,
                        true,
                    );
                    chain.pop();
                    walked?;
                }
            }
        }
        Ok(())
    }

    /// Check a value against its column, and note it for the append.
    fn leaf<'t>(&mut self, ops: &mut Vec<Op<'t>>, table: usize, column: usize, val: Val<'t>) {
        let kind = val.kind();
        let c = &mut self.tables[table].columns[column];
        let base = c.tentative.unwrap_or(c.kind);
        match join(base, kind) {
            Some(joined) if joined != base => {
                c.tentative = Some(joined);
                self.touched.push((table, column));
            }
            Some(_) => {}
            None if c.locked => self.offenses.push(format!(
                "`{}` is {}, found {}",
                c.path,
                base.describe(),
                val.quote()
            )),
            None => self.conflicts += 1,
        }
        if let Val::List(_, items) = &val
            && list_scalar(items).is_none()
        {
            self.offenses
                .push(format!("`{}` mixes kinds of elements in one list", c.path));
        }
        ops.push(Op::Value { table, column, val });
    }

    /// Append a checked value to its column, widening the column when the
    /// value's kind asks for it.
    fn apply(&mut self, v: &Version, table: usize, column: usize, val: Val) {
        let kind = val.kind();
        let rows = self.tables[table].rows;
        let c = &mut self.tables[table].columns[column];
        c.applied = true;
        c.observed.note(kind, v.stamp, v.key);
        let Some(joined) = join(c.kind, kind) else {
            return;
        };
        if joined != c.kind {
            let finished = c.builder.finish();
            if !finished.is_empty() {
                c.sealed.push(finished);
            }
            c.kind = joined;
            c.builder = Builder::new(joined);
        }
        if !joined.is_column() {
            return;
        }
        let filled = c.len();
        if filled + 1 < rows {
            c.builder.append_nulls(rows - 1 - filled);
        }
        c.builder.append(&val);
    }

    /// The rows taken since the last chunk, one batch per table (with the
    /// shape they were built in), plus quarantined versions.
    pub fn chunk(&mut self) -> Result<(Vec<TableBatch>, Option<RecordBatch>)> {
        self.pending_bytes = 0;
        self.pending_rows = 0;
        Stage::Parse.add(std::mem::take(&mut self.parsing));
        Stage::Flatten.add(std::mem::take(&mut self.flattening));
        let def = &self.plan.def;
        let naming = Naming::new(def);
        let paths: Vec<(String, Option<String>)> = self
            .tables
            .iter()
            .map(|t| {
                (
                    t.path.clone(),
                    t.parent.map(|p| self.tables[p].path.clone()),
                )
            })
            .collect();
        let parent_of = |path: &str| {
            paths
                .iter()
                .find(|(p, _)| p == path)
                .and_then(|(_, parent)| parent.clone())
        };
        let mut out = Vec::new();
        for t in &mut self.tables {
            let rows = t.rows;
            let live: Vec<usize> = (0..t.columns.len())
                .filter(|&i| {
                    let c = &t.columns[i];
                    c.applied && c.kind.is_column() && !c.rule.drop
                })
                .collect();
            if rows == 0 {
                continue;
            }
            let kinds: Vec<(&str, Kind)> = live
                .iter()
                .map(|&i| (t.columns[i].path.as_str(), t.columns[i].kind))
                .collect();
            let shape = shape(def, &naming, &t.path, &parent_of, &kinds)?;
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(shape.schema.fields().len());
            arrays.push(Arc::new(t.key.finish()));
            for p in &mut t.positions {
                arrays.push(Arc::new(p.finish()));
            }
            let mut by_path: HashMap<String, ArrayRef> = HashMap::new();
            for &i in &live {
                let c = &mut t.columns[i];
                let filled = c.len();
                if filled < rows {
                    c.builder.append_nulls(rows - filled);
                }
                let mut parts = std::mem::take(&mut c.sealed);
                parts.push(c.builder.finish());
                let to = c.kind.arrow();
                let parts: Vec<ArrayRef> = parts.iter().map(|a| widen(a, &to)).collect();
                // A column that never changed kind is one part: concat
                // would copy it whole.
                let array = match parts.as_slice() {
                    [whole] => whole.clone(),
                    _ => {
                        let refs: Vec<&dyn arrow_array::Array> =
                            parts.iter().map(|a| a.as_ref()).collect();
                        arrow_select::concat::concat(&refs).expect("parts share one type")
                    }
                };
                by_path.insert(c.path.clone(), array);
            }
            for column in &shape.columns {
                arrays.push(
                    by_path
                        .remove(column.path.as_str())
                        .expect("every live column built"),
                );
            }
            if let Some((ingested_at, hash)) = &mut t.meta {
                arrays.push(Arc::new(ingested_at.finish()));
                arrays.push(Arc::new(hash.finish()));
            }
            t.rows = 0;
            let batch = RecordBatch::try_new(shape.schema.clone(), arrays)
                .expect("arrays are built to the shape");
            out.push(TableBatch { shape, batch });
        }
        let quarantined = if self.quarantine.rows > 0 {
            let q = &mut self.quarantine;
            q.rows = 0;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(q.key.finish()),
                Arc::new(q.ingested_at.finish()),
                Arc::new(q.content_hash.finish()),
                Arc::new(q.reason.finish()),
                Arc::new(q.doc.finish()),
            ];
            Some(
                RecordBatch::try_new(quarantine_schema(&def.key), columns)
                    .expect("quarantine columns match"),
            )
        } else {
            None
        };
        Ok((out, quarantined))
    }

    /// Every table and path this worker saw, with the kinds it saw where.
    pub fn observed(&self) -> Sightings {
        self.tables
            .iter()
            .filter(|t| t.applied)
            .map(|t| {
                let parent = t.parent.map(|p| self.tables[p].path.clone());
                let columns = t
                    .columns
                    .iter()
                    .filter(|c| c.applied && !c.rule.drop)
                    .map(|c| (c.path.clone(), c.observed.clone()))
                    .collect();
                (t.path.clone(), (parent, columns))
            })
            .collect()
    }
}

/// What one worker saw: by table path, the table's parent and, by column
/// path, the kinds seen where.
pub type Sightings = BTreeMap<String, (Option<String>, BTreeMap<String, Observed>)>;

/// What every worker saw, merged, and the kinds it decides given the
/// recorded and declared ones.
pub fn decide(def: &SilverTable, prior: &Recorded, seen: &[Sightings]) -> Recorded {
    let mut merged = Sightings::new();
    for worker in seen {
        for (path, (parent, columns)) in worker {
            let entry = merged
                .entry(path.clone())
                .or_insert_with(|| (parent.clone(), BTreeMap::new()));
            for (column, observed) in columns {
                entry.1.entry(column.clone()).or_default().merge(observed);
            }
        }
    }
    let mut decided = prior.clone();
    for (path, (parent, columns)) in merged {
        let table = decided.entry(path).or_insert_with(|| TableKinds {
            parent,
            columns: BTreeMap::new(),
        });
        for (column, observed) in columns {
            let rule = def.columns.get(&column);
            let declared = rule.and_then(|r| Kind::declared(r.declared, r.parse));
            let before = declared
                .or_else(|| table.columns.get(&column).copied())
                .unwrap_or(Kind::Null);
            table.columns.insert(column, observed.decide(before));
        }
    }
    // A declared path has its column even before (or without) a value:
    // in the table whose path is its longest prefix.
    for (path, rule) in &def.columns {
        let Some(kind) = Kind::declared(rule.declared, rule.parse) else {
            continue;
        };
        let holder = holder_table(decided.keys(), path);
        if let Some(table) = holder.and_then(|t| decided.get_mut(&t)) {
            table.columns.entry(path.clone()).or_insert(kind);
        }
    }
    decided
}

/// The table a path belongs to among `tables`: the longest table path
/// that is a prefix of it (the root when none is).
fn holder_table<'t>(tables: impl Iterator<Item = &'t String>, path: &str) -> Option<String> {
    tables
        .filter(|t| {
            t.is_empty()
                || path
                    .strip_prefix(t.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .max_by_key(|t| t.len())
        .cloned()
}

fn declared_value(declared: Declared, value: Json) -> Val {
    if matches!(value, Json::Static(StaticNode::Null)) {
        return Val::Null;
    }
    match declared {
        Declared::Json => Val::Text(json_text(value), Kind::Json),
        Declared::String => match value {
            Json::String(s) => Val::Str(s),
            other => Val::Text(json_text(other), Kind::String),
        },
        // Text that spells the declared type converts (CSV files carry
        // every value as text).
        Declared::Bool => match value {
            Json::Static(StaticNode::Bool(b)) => Val::Bool(b),
            Json::String(s) => match s.trim() {
                "true" | "TRUE" | "True" => Val::Bool(true),
                "false" | "FALSE" | "False" => Val::Bool(false),
                _ => mismatch(value),
            },
            _ => mismatch(value),
        },
        Declared::Int => match value {
            Json::Static(StaticNode::I64(i)) => Val::Int(i),
            Json::Static(StaticNode::U64(u)) => i64::try_from(u).map_or(mismatch(value), Val::Int),
            Json::String(s) => s.trim().parse().map_or(mismatch(value), Val::Int),
            _ => mismatch(value),
        },
        Declared::Float => match value {
            Json::Static(StaticNode::I64(i)) => Val::Float(i as f64),
            Json::Static(StaticNode::U64(u)) => Val::Float(u as f64),
            Json::Static(StaticNode::F64(f)) => Val::Float(f),
            Json::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map_or(mismatch(value), Val::Float),
            _ => mismatch(value),
        },
    }
}

/// A value of the wrong kind for its declared type, carried as what it is
/// so the check names it.
fn mismatch(value: Json) -> Val {
    match value {
        Json::String(s) => Val::Str(s),
        Json::Object(_) => Val::Object,
        Json::Array(_) => Val::Array,
        Json::Static(StaticNode::Bool(b)) => Val::Bool(b),
        Json::Static(StaticNode::F64(f)) => Val::Float(f),
        Json::Static(_) => Val::Text(json_text(value), Kind::Json),
    }
}

fn parsed_value(parser: Parser, value: Json) -> Val {
    let Json::String(text) = value else {
        return if matches!(value, Json::Static(StaticNode::Null)) {
            Val::Null
        } else {
            mismatch(value)
        };
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date");
    let date = |d: NaiveDate| Val::Date((d - epoch).num_days() as i32);
    let parsed = match parser {
        Parser::SpotifyReleaseDate => {
            let padded = match text.len() {
                4 => format!("{text}-01-01"),
                7 => format!("{text}-01"),
                _ => text.to_string(),
            };
            NaiveDate::parse_from_str(&padded, "%Y-%m-%d")
                .ok()
                .map(date)
        }
        Parser::Date => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(date),
        Parser::Timestamp => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Val::Ts(t.timestamp_micros())),
    };
    parsed.unwrap_or(Val::Str(text))
}

fn list_value(value: Json) -> Val {
    let Json::Array(items) = value else {
        return match value {
            Json::Static(StaticNode::Null) => Val::Null,
            other => mismatch(other),
        };
    };
    let items: Vec<Item> = items
        .iter()
        .map(|item| match item {
            Json::Static(StaticNode::Null) => Item::Null,
            Json::Static(StaticNode::Bool(b)) => Item::Bool(b),
            Json::Static(StaticNode::I64(i)) => Item::Int(i),
            Json::Static(StaticNode::U64(u)) => {
                i64::try_from(u).map_or(Item::Float(u as f64), Item::Int)
            }
            Json::Static(StaticNode::F64(f)) => Item::Float(f),
            Json::String(s) => Item::Str(Cow::Borrowed(s)),
            nested => Item::Str(Cow::Owned(json_text(nested))),
        })
        .collect();
    let scalar = list_scalar(&items).unwrap_or(Scalar::String);
    Val::List(scalar, items)
}

/// The element type of a list's items, `None` when they do not mix.
fn list_scalar(items: &[Item]) -> Option<Scalar> {
    items.iter().try_fold(Scalar::Null, |acc, item| {
        let kind = match item {
            Item::Null => Scalar::Null,
            Item::Bool(_) => Scalar::Bool,
            Item::Int(_) => Scalar::Int,
            Item::Float(_) => Scalar::Float,
            Item::Str(_) => Scalar::String,
        };
        join_scalar(acc, kind)
    })
}

/// Compact JSON with object keys sorted, so the same value always gives
/// the same text.
pub fn json_text(value: Json) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: Json, out: &mut String) {
    use std::fmt::Write as _;
    match value {
        Json::Static(StaticNode::Null) => out.push_str("null"),
        Json::Static(StaticNode::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
        Json::Static(StaticNode::I64(i)) => {
            write!(out, "{i}").expect("writing to memory cannot fail")
        }
        Json::Static(StaticNode::U64(u)) => {
            write!(out, "{u}").expect("writing to memory cannot fail")
        }
        Json::Static(StaticNode::F64(f)) => match serde_json::Number::from_f64(f) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("null"),
        },
        Json::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(fields) => {
            let mut sorted: Vec<(&str, Json)> = fields.iter().collect();
            // Stable, so of the pairs a repeated key has the last is last:
            // the one kept.
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            sorted.reverse();
            sorted.dedup_by(|later, kept| later.0 == kept.0);
            sorted.reverse();
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

impl ColumnBuf {
    fn len(&self) -> usize {
        self.sealed.iter().map(|a| a.len()).sum::<usize>() + self.builder.len()
    }
}

/// A column builder of one kind.
enum Builder {
    Nulls(usize),
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
    ListBool(ListBuilder<BooleanBuilder>),
    ListInt(ListBuilder<Int64Builder>),
    ListFloat(ListBuilder<Float64Builder>),
    ListText(ListBuilder<StringBuilder>),
}

impl Builder {
    fn new(kind: Kind) -> Builder {
        let field = |s: Scalar| Arc::new(list_item(s));
        match kind {
            Kind::Null | Kind::Object | Kind::Array => Builder::Nulls(0),
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Int => Builder::Int(Int64Builder::new()),
            Kind::Float => Builder::Float(Float64Builder::new()),
            Kind::String | Kind::Json => Builder::Text(StringBuilder::new()),
            Kind::Date => Builder::Date(Date32Builder::new()),
            Kind::Timestamp => Builder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            Kind::List(s @ Scalar::Bool) => {
                Builder::ListBool(ListBuilder::new(BooleanBuilder::new()).with_field(field(s)))
            }
            Kind::List(s @ Scalar::Int) => {
                Builder::ListInt(ListBuilder::new(Int64Builder::new()).with_field(field(s)))
            }
            Kind::List(s @ Scalar::Float) => {
                Builder::ListFloat(ListBuilder::new(Float64Builder::new()).with_field(field(s)))
            }
            Kind::List(s @ (Scalar::String | Scalar::Null)) => {
                Builder::ListText(ListBuilder::new(StringBuilder::new()).with_field(field(s)))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Nulls(n) => *n,
            Builder::Bool(b) => b.len(),
            Builder::Int(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Ts(b) => b.len(),
            Builder::ListBool(b) => b.len(),
            Builder::ListInt(b) => b.len(),
            Builder::ListFloat(b) => b.len(),
            Builder::ListText(b) => b.len(),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            Builder::Nulls(count) => *count += n,
            Builder::Bool(b) => b.append_nulls(n),
            Builder::Int(b) => b.append_nulls(n),
            Builder::Float(b) => b.append_nulls(n),
            Builder::Text(b) => b.append_nulls(n),
            Builder::Date(b) => b.append_nulls(n),
            Builder::Ts(b) => b.append_nulls(n),
            Builder::ListBool(b) => (0..n).for_each(|_| b.append_null()),
            Builder::ListInt(b) => (0..n).for_each(|_| b.append_null()),
            Builder::ListFloat(b) => (0..n).for_each(|_| b.append_null()),
            Builder::ListText(b) => (0..n).for_each(|_| b.append_null()),
        }
    }

    /// Append a value whose kind joins the builder's (the caller checked).
    fn append(&mut self, val: &Val) {
        if matches!(val, Val::Null) {
            self.append_nulls(1);
            return;
        }
        match (self, val) {
            (Builder::Bool(b), Val::Bool(x)) => b.append_value(*x),
            (Builder::Int(b), Val::Int(x)) => b.append_value(*x),
            (Builder::Float(b), Val::Float(x)) => b.append_value(*x),
            (Builder::Float(b), Val::Int(x)) => b.append_value(*x as f64),
            (Builder::Text(b), Val::Str(x)) => b.append_value(x),
            (Builder::Text(b), Val::Text(x, _)) => b.append_value(x),
            (Builder::Date(b), Val::Date(x)) => b.append_value(*x),
            (Builder::Ts(b), Val::Ts(x)) => b.append_value(*x),
            (Builder::ListBool(b), Val::List(_, items)) => {
                for item in items {
                    match item {
                        Item::Bool(x) => b.values().append_value(*x),
                        _ => b.values().append_null(),
                    }
                }
                b.append(true);
            }
            (Builder::ListInt(b), Val::List(_, items)) => {
                for item in items {
                    match item {
                        Item::Int(x) => b.values().append_value(*x),
                        _ => b.values().append_null(),
                    }
                }
                b.append(true);
            }
            (Builder::ListFloat(b), Val::List(_, items)) => {
                for item in items {
                    match item {
                        Item::Float(x) => b.values().append_value(*x),
                        Item::Int(x) => b.values().append_value(*x as f64),
                        _ => b.values().append_null(),
                    }
                }
                b.append(true);
            }
            (Builder::ListText(b), Val::List(_, items)) => {
                for item in items {
                    match item {
                        Item::Str(x) => b.values().append_value(x),
                        _ => b.values().append_null(),
                    }
                }
                b.append(true);
            }
            (builder, val) => unreachable!(
                "a {} value reached a {} builder",
                val.kind().describe(),
                builder.kind_name()
            ),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Builder::Nulls(_) => "null",
            Builder::Bool(_) => "bool",
            Builder::Int(_) => "int",
            Builder::Float(_) => "float",
            Builder::Text(_) => "text",
            Builder::Date(_) => "date",
            Builder::Ts(_) => "timestamp",
            Builder::ListBool(_)
            | Builder::ListInt(_)
            | Builder::ListFloat(_)
            | Builder::ListText(_) => "list",
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Nulls(n) => {
                let array = new_null_array(&DataType::Null, *n);
                *n = 0;
                array
            }
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::ListBool(b) => Arc::new(b.finish()),
            Builder::ListInt(b) => Arc::new(b.finish()),
            Builder::ListFloat(b) => Arc::new(b.finish()),
            Builder::ListText(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_sorts_keys_and_keeps_the_last_of_a_repeated_one() {
        let mut parser = TapeParser::default();
        let mut text = |doc: &str| parser.walk(doc, json_text).unwrap();
        assert_eq!(
            text(r#"{"b":1,"a":[1.5,{"y":"é\n","x":null}],"c":{},"b":[true]}"#),
            r#"{"a":[1.5,{"x":null,"y":"é\n"}],"b":[true],"c":{}}"#
        );
        assert_eq!(text(r#"[{"k":1,"k":2,"k":3}]"#), r#"[{"k":3}]"#);
        assert_eq!(text(r#""only text""#), r#""only text""#);
    }

    #[test]
    fn identities_compare_values_as_json_and_instants_as_instants() {
        let path = |path: &str, instant: bool| UniquePath {
            path: path.into(),
            instant,
        };
        let identify = Identify {
            paths: vec![
                path("user_id", false),
                path("event_ts", true),
                path("n", false),
                path("a.b", false),
            ],
        };
        let mut parser = TapeParser::default();
        let mut bytes = Vec::new();
        // As the flattening does: the document's root, or none when it
        // is not JSON.
        let mut keyed = |key: &str, doc: &str| match parser
            .walk(doc, |root| identify.identity(Some(root), key, &mut bytes))
        {
            Ok(identity) => identity,
            Err(_) => identify.identity(None, key, &mut bytes),
        };
        assert_eq!(
            keyed("e1", "{not json"),
            keyed("e1", r#"{"user_id": "u1"#),
            "a document that is not JSON is identified by its key"
        );
        assert_ne!(
            keyed("e1", "{not json"),
            keyed("e2", "{not json"),
            "and is no other event's duplicate"
        );
        assert_ne!(keyed("e1", "{not json"), keyed("e1", "{}"));
        let mut id = |doc: &str| keyed("e", doc);
        let base = id(r#"{"user_id":"u1","event_ts":"2026-11-14T10:00:00Z","n":1}"#);
        assert_eq!(
            base,
            id(r#"{"n":1,"extra":[1,2],"event_ts":"2026-11-14T11:00:00+01:00","user_id":"u1"}"#),
            "field order, other fields and the spelling of an instant do not matter"
        );
        assert_ne!(
            base,
            id(r#"{"user_id":"u2","event_ts":"2026-11-14T10:00:00Z","n":1}"#)
        );
        assert_ne!(
            base,
            id(r#"{"user_id":"u1","event_ts":"2026-11-14T10:00:00Z","n":"1"}"#),
            "a number is not its text"
        );
        assert_ne!(
            base,
            id(r#"{"user_id":"u1","event_ts":"2026-11-14T10:00:01Z","n":1}"#)
        );
        assert_eq!(
            id(r#"{"event_ts":"soon","n":null}"#),
            id(r#"{"user_id":null,"event_ts":"soon"}"#),
            "absent is null; a time that does not parse compares as text"
        );
        assert_eq!(
            id(r#"{"user_id":"u2","user_id":"u1","event_ts":"2026-11-14T10:00:00Z","n":1}"#),
            base,
            "of a repeated key the last counts"
        );
        assert_ne!(id(r#"{"a":{"b":1}}"#), id(r#"{"a":{"b":2}}"#));
        assert_eq!(
            id(r#"{"a":{"b":{"x":1,"y":2}}}"#),
            id(r#"{"a":{"c":0,"b":{"y":2,"x":1}}}"#),
            "a dotted path reaches into objects; an object's key order does not matter"
        );
        assert_ne!(
            id(r#"{"user_id":"A\u001fnull"}"#),
            id(r#"{"user_id":"A","event_ts":"null\u001fnull"}"#),
            "text holding the separator is not two values"
        );
        assert_ne!(
            id(r#"{"event_ts":1763114400000000}"#),
            id(r#"{"event_ts":"2025-11-14T10:00:00Z"}"#),
            "an instant is not a number"
        );
    }
}
