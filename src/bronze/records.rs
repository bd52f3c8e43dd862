//! What the two record sources share (event files, Kafka topics): the
//! checks a record passes, the batch one commit publishes, and publishing
//! it with the source's positions in the same commit.
//!
//! A commit publishes the quarantine first, then the rows. Each table
//! records its own positions, so a crash between the two commits never
//! quarantines a record twice: the rerun sees the quarantine already past
//! it and only takes the rows again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use super::definition::PartitionValues;
use super::{BronzeTable, LAYER, PAYLOAD, schema};
use crate::error::{Error, Result};
use crate::lake::{DataFile, Lake, Snapshot, Table, Transaction};
use crate::landing::{Batch, Collection, SharedStore, Stamp};

/// A record longer than this is quarantined (only its start is kept).
pub(super) const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// How much of a quarantined record is kept.
pub(super) const KEPT_TEXT_BYTES: usize = 4096;
/// Documents per upsert into a landing collection.
const LANDING_BATCH: usize = 1000;

/// The quarantine of a record-fed table.
pub fn quarantine_name(table: &str) -> String {
    format!("{table}_quarantine")
}

/// What a records run took, for the first lines of its report.
pub(super) struct Taken<'a> {
    /// `lines` or `messages`.
    pub unit: &'a str,
    /// `files` or `partitions`: where they came from, with the count of each.
    pub from: &'a str,
    pub per_source: &'a BTreeMap<String, u64>,
    /// `commits` or `batches`, and how many.
    pub published: (&'a str, u64),
    pub quarantined: u64,
}

/// The report's head: what was taken (or that nothing was) and what went
/// to quarantine.
pub(super) fn render_head(table: &str, t: &Taken, version: Option<u64>, rows: u64) -> String {
    let unit = t.unit;
    let mut out = match version {
        None => format!("bronze.{table}: no new {unit} ({rows} rows)"),
        Some(v) => format!(
            "bronze.{table}: took {} {unit} from {} {} in {} {}, version {v}, {rows} rows in all",
            t.per_source.values().sum::<u64>(),
            t.per_source.len(),
            t.from,
            t.published.1,
            t.published.0,
        ),
    };
    if t.quarantined > 0 {
        out.push_str(&format!(
            "\n  {} {unit} quarantined (see bronze.{})",
            t.quarantined,
            quarantine_name(table)
        ));
    }
    out
}

/// Where a record came from.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Line {
        file: Arc<str>,
        line: u64,
    },
    Message {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

impl Origin {
    /// Append the row's `endpoint`, `file:line` or `topic:partition:offset`,
    /// without the formatting machinery: this runs for every row.
    fn write_endpoint(&self, out: &mut impl std::fmt::Write) {
        let mut write = |parts: &[&str]| {
            for part in parts {
                out.write_str(part).expect("writing to memory cannot fail");
            }
        };
        let (mut first, mut second) = (itoa::Buffer::new(), itoa::Buffer::new());
        match self {
            Origin::Line { file, line } => write(&[file, ":", first.format(*line)]),
            Origin::Message {
                topic,
                partition,
                offset,
            } => write(&[
                topic,
                ":",
                first.format(*partition),
                ":",
                second.format(*offset),
            ]),
        }
    }
}

/// A batch between [`Publisher::start`] and [`Publisher::finish`]: its
/// quarantine committed, its files encoding on tasks of their own. Dropped,
/// the files are written but in no version (vacuum deletes them).
pub(super) struct Publishing {
    txn: Transaction,
    files: Vec<tokio::task::JoinHandle<Result<DataFile>>>,
    at: Option<Value>,
    now: DateTime<Utc>,
}

/// A record's content hash: 32 hex digits of its document's XXH3-128.
pub(super) type ContentHash = [u8; 32];

/// The content hash of `doc`, computed where the records are judged (on
/// every core), not where they are taken in order.
pub(super) fn content_hash(doc: &str) -> ContentHash {
    let mut hash = [0u8; 32];
    hex::encode_to_slice(
        xxhash_rust::xxh3::xxh3_128(doc.as_bytes()).to_be_bytes(),
        &mut hash,
    )
    .expect("16 bytes fill 32 hex digits");
    hash
}

/// A record that did not pass, kept for the quarantine.
struct Rejected {
    origin: Origin,
    problem: String,
    text: String,
}

/// The object a JSON record holds, or why it is not one.
pub(super) fn json_object(text: &str) -> std::result::Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(format!(
            "a JSON {} is not a record; write one object per record",
            kind(&other)
        )),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A record's key and its event time (when the table has one).
pub(super) type Checked = (String, Option<DateTime<Utc>>);

/// The key and event time of the JSON record `text`, or what is wrong with
/// it. Only the fields the checks read (the key, the required fields, the
/// event time) are parsed into values; the others are checked to be JSON
/// and skipped, which is most of a record and several times cheaper than
/// building its whole tree.
pub(super) fn checked_record(
    def: &BronzeTable,
    text: &str,
) -> std::result::Result<Checked, String> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let picked = Picked { def }
        .deserialize(&mut parser)
        .and_then(|object| parser.end().map(|()| object));
    match picked {
        // A field given twice counts as in a map: the last one.
        Ok(fields) => check_fields(def, |name| {
            fields
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        }),
        // The rare bad record is parsed again, whole, to say what it is.
        Err(_) => json_object(text).and_then(|object| check(def, &object)),
    }
}

/// A JSON object's fields that `def` checks, the others skipped. They are
/// a handful, so a list searched in place beats hashing each name into a
/// map (a tenth of bronze's time, by `perf`).
struct Picked<'d> {
    def: &'d BronzeTable,
}

impl<'d> Picked<'d> {
    /// The definition's own name for `field`, if it checks it.
    fn wanted(&self, field: &str) -> Option<&'d str> {
        let def = self.def;
        std::iter::once(def.key.as_str())
            .chain(def.event_time.as_deref())
            .chain(def.required.iter().map(String::as_str))
            .find(|name| *name == field)
    }
}

/// A field name, borrowed from the text unless it holds escapes.
#[derive(Deserialize)]
struct FieldName<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de, 'd> DeserializeSeed<'de> for Picked<'d> {
    type Value = Vec<(&'d str, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'd> Visitor<'de> for Picked<'d> {
    type Value = Vec<(&'d str, Value)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut fields: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut picked = Vec::new();
        while let Some(FieldName(name)) = fields.next_key()? {
            match self.wanted(&name) {
                Some(name) => picked.push((name, fields.next_value()?)),
                None => {
                    fields.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(picked)
    }
}

/// A record's key and event time, or what is wrong with it.
pub(super) fn check(
    def: &BronzeTable,
    object: &Map<String, Value>,
) -> std::result::Result<Checked, String> {
    check_fields(def, |name| object.get(name))
}

/// [`check`] of the record whose field `name` holds `value(name)`.
fn check_fields<'v>(
    def: &BronzeTable,
    value: impl Fn(&str) -> Option<&'v Value>,
) -> std::result::Result<Checked, String> {
    let key = match value(&def.key) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(format!("key {:?} is a {}, not an id", def.key, kind(other)));
        }
        None => return Err(format!("no key field {:?}", def.key)),
    };
    for field in &def.required {
        match value(field) {
            None | Some(Value::Null) => {
                return Err(format!("no {field}, which every record needs"));
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(format!("{field} is empty, and every record needs one"));
            }
            Some(_) => {}
        }
    }
    let at = match def.event_time.as_deref() {
        None => None,
        Some(field) => match value(field) {
            Some(Value::String(s)) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| {
                        format!(
                            "{field} {s:?} is not an RFC 3339 time ({e}); write 2026-11-21T09:30:00Z"
                        )
                    })?
                    .with_timezone(&Utc),
            ),
            Some(other) => {
                return Err(format!(
                    "{field} is a {}, not an RFC 3339 time",
                    kind(other)
                ));
            }
            None => return Err(format!("no event time field {field:?}")),
        },
    };
    Ok((key, at))
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Rows of one commit, grouped by partition, and the records rejected.
#[derive(Default)]
pub(super) struct Pending {
    /// By partition bucket ([`super::Partitioning::bucket`]).
    rows: BTreeMap<i64, PartitionRows>,
    rejected: Vec<Rejected>,
    /// Input taken, in bytes: what sizes a commit.
    pub bytes: u64,
}

/// One partition's rows of a commit, appended straight into the bronze
/// columns they are written as: a row allocates nothing of its own, and
/// its document is copied once, from the input into the column.
struct PartitionRows {
    values: PartitionValues,
    ids: StringBuilder,
    stamps: Vec<Stamp>,
    endpoints: StringBuilder,
    hashes: StringBuilder,
    docs: StringBuilder,
}

impl PartitionRows {
    fn new(values: PartitionValues) -> PartitionRows {
        PartitionRows {
            values,
            ids: StringBuilder::new(),
            stamps: Vec::new(),
            endpoints: StringBuilder::new(),
            hashes: StringBuilder::new(),
            docs: StringBuilder::new(),
        }
    }

    /// The rows in the bronze schema `schema`, taken by run `run_id`, and
    /// the range of their ingest stamps.
    fn finish(mut self, schema: &SchemaRef, run_id: &str) -> Rows {
        let n = self.stamps.len();
        let span = (
            self.stamps.iter().copied().min(),
            self.stamps.iter().copied().max(),
        );
        let stamps = TimestampMicrosecondArray::from(self.stamps).with_timezone("UTC");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(stamps),
            Arc::new(StringArray::from(vec![run_id; n])),
            Arc::new(self.endpoints.finish()),
            Arc::new(self.hashes.finish()),
            Arc::new(self.docs.finish()),
        ];
        let batch =
            RecordBatch::try_new(schema.clone(), columns).expect("columns match the bronze schema");
        Rows {
            partition: self.values,
            batch,
            span,
        }
    }
}

/// One partition's rows, ready to write: the partition, the rows in the
/// bronze schema and the range of their ingest stamps.
struct Rows {
    partition: PartitionValues,
    batch: RecordBatch,
    span: (Option<Stamp>, Option<Stamp>),
}

impl Pending {
    /// Take the checked record `doc` from `origin` as a row stamped
    /// `stamp`, partitioned by its event time (or the stamp, when the
    /// table has none).
    pub fn row(
        &mut self,
        def: &BronzeTable,
        origin: &Origin,
        (key, at): Checked,
        (doc, hash): (&str, &ContentHash),
        stamp: Stamp,
    ) {
        let time = at.unwrap_or_else(|| DateTime::from_timestamp_micros(stamp).unwrap_or_default());
        let rows = self
            .rows
            .entry(def.partition_by.bucket(time))
            .or_insert_with(|| PartitionRows::new(def.partition_by.of(time)));
        rows.ids.append_value(key);
        rows.stamps.push(stamp);
        origin.write_endpoint(&mut rows.endpoints);
        rows.endpoints.append_value("");
        rows.hashes
            .append_value(std::str::from_utf8(hash).expect("hex digits are text"));
        rows.docs.append_value(doc);
    }

    /// Quarantine a record, keeping the start of its bytes.
    pub fn reject(&mut self, origin: Origin, problem: String, bytes: &[u8]) {
        let kept = &bytes[..bytes.len().min(KEPT_TEXT_BYTES)];
        self.rejected.push(Rejected {
            origin,
            problem,
            text: String::from_utf8_lossy(kept).into_owned(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.rejected.is_empty()
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.len() as u64
    }
}

/// The positions a table recorded under `key` in its last commit.
pub(super) fn positions<T: DeserializeOwned + Default>(txn: &Transaction, key: &str) -> T {
    txn.base()
        .properties
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Publishes the batches of one record-fed table.
pub(super) struct Publisher<'a> {
    pub lake: &'a Lake,
    pub store: &'a SharedStore,
    pub def: &'a BronzeTable,
    pub run_id: &'a str,
    /// The commit property holding the source's positions: `files` or `kafka`.
    pub positions: &'static str,
}

impl Publisher<'_> {
    fn table(&self) -> Table {
        self.lake.table(LAYER, &self.def.name)
    }

    fn quarantine(&self) -> Table {
        self.lake.table(LAYER, &quarantine_name(&self.def.name))
    }

    /// Open transactions on the table and its quarantine.
    pub async fn begin(&self, now: DateTime<Utc>) -> Result<(Transaction, Transaction)> {
        let mut txn = self.table().begin(self.run_id, now).await?;
        txn.declare(
            schema(&self.def.key),
            Some(&self.def.partition_by.columns()),
        );
        let mut qtxn = self.quarantine().begin(self.run_id, now).await?;
        qtxn.declare(rejected_schema(self.positions == "kafka"), Some(&[]));
        Ok((txn, qtxn))
    }

    /// Publish one batch: the quarantine with its positions, then the rows
    /// with theirs (as the property `positions`; none: the source records
    /// them as claims of the transactions). Returns the table's new snapshot.
    pub async fn publish(
        &self,
        txns: (Transaction, Transaction),
        positions: (Option<Value>, Option<Value>),
        pending: Pending,
        now: DateTime<Utc>,
    ) -> Result<Snapshot> {
        let publishing = self.start(txns, positions, pending, now).await?;
        self.finish(publishing).await
    }

    /// The first part of [`Publisher::publish`]: commit the quarantine and
    /// start encoding the rows' files. The caller may read on meanwhile.
    pub async fn start(
        &self,
        (mut txn, mut qtxn): (Transaction, Transaction),
        (at, quarantined_at): (Option<Value>, Option<Value>),
        pending: Pending,
        now: DateTime<Utc>,
    ) -> Result<Publishing> {
        if !pending.rejected.is_empty() {
            let batch = rejected_batch(&pending.rejected, self.run_id, now);
            let mut writer = qtxn.create_file(&[], batch.schema(), &["text"])?;
            writer.write(&batch).await?;
            qtxn.add(writer.finish().await?);
        }
        let schema = schema(&self.def.key);
        let partitions: Vec<Rows> = pending
            .rows
            .into_values()
            .map(|rows| rows.finish(&schema, self.run_id))
            .collect();
        if let Some(collection) = self.def.copy_to_landing {
            self.copy_to_landing(collection, &partitions).await?;
        }
        let mut qprops = Map::new();
        if let Some(positions) = quarantined_at {
            qprops.insert(self.positions.into(), positions);
        }
        qtxn.commit("append", qprops, now).await?;
        fail::fail_point!("bronze-between-quarantine-and-rows");

        // Each partition's file is encoded by a task of its own (the
        // runtime runs one per core at a time): one after another, encoding
        // was bronze's critical path. The files join the commit in order.
        let mut files = Vec::with_capacity(partitions.len());
        for Rows {
            partition,
            batch,
            span: (min, max),
        } in partitions
        {
            let mut writer = txn.create_file(&partition, schema.clone(), &PAYLOAD)?;
            files.push(tokio::spawn(async move {
                writer.write(&batch).await?;
                writer.set_stat("min_ingested_at", json!(min));
                writer.set_stat("max_ingested_at", json!(max));
                writer.finish().await
            }));
        }
        Ok(Publishing {
            txn,
            files,
            at,
            now,
        })
    }

    /// The rest of [`Publisher::publish`]: the files in order, then the
    /// rows' commit.
    pub async fn finish(&self, publishing: Publishing) -> Result<Snapshot> {
        let Publishing {
            mut txn,
            files,
            at,
            now,
        } = publishing;
        for file in files {
            let file: DataFile = file
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            txn.add(file);
        }
        txn.commit("append", self.properties(at), now).await
    }

    /// The table's properties, with `positions` if given.
    fn properties(&self, positions: Option<Value>) -> Map<String, Value> {
        let mut props = Map::new();
        props.insert("source".into(), json!(self.def.source.describe()));
        props.insert("key".into(), json!(self.def.key));
        if let Some(positions) = positions {
            props.insert(self.positions.into(), positions);
        }
        props
    }

    /// Create the table and its quarantine, empty, where they do not exist
    /// yet. Writers starting together race to create them: the losers
    /// find them created, which is all they wanted.
    pub async fn create(
        &self,
        (txn, qtxn): (Transaction, Transaction),
        now: DateTime<Utc>,
    ) -> Result<()> {
        for (txn, properties) in [(qtxn, Map::new()), (txn, self.properties(None))] {
            if txn.base().exists() {
                continue;
            }
            match txn.commit("append", properties, now).await {
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Upsert the batch's records into a landing collection, by key,
    /// before the commit: a rerun after a crash upserts the same documents
    /// again, which leaves them unchanged.
    async fn copy_to_landing(&self, collection: Collection, partitions: &[Rows]) -> Result<()> {
        let endpoint = self.def.source.describe();
        let mut docs = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for rows in partitions {
            let (keys, texts) = (rows.batch.column(0), rows.batch.column(5));
            let (keys, texts) = (keys.as_string::<i32>(), texts.as_string::<i32>());
            for (id, text) in keys.iter().flatten().zip(texts.iter().flatten()) {
                // An event delivered twice goes in a later batch: a batch
                // holds an id once.
                if docs.len() == LANDING_BATCH || ids.contains(id) {
                    let batch = Batch::new(self.run_id, &endpoint, std::mem::take(&mut docs));
                    self.store.upsert(collection, batch).await?;
                    ids.clear();
                }
                let doc = serde_json::from_str(text).expect("rows are JSON objects");
                ids.insert(id);
                docs.push((id.to_string(), doc));
            }
        }
        if !docs.is_empty() {
            let batch = Batch::new(self.run_id, &endpoint, docs);
            self.store.upsert(collection, batch).await?;
        }
        Ok(())
    }
}

/// The quarantine's rows: where each record came from (file and line, or
/// topic, partition and offset), the problem, the start of its text.
/// The columns of a record-fed quarantine: where each rejected record
/// came from (a file line or a Kafka message), then why and what it was.
fn rejected_schema(from_kafka: bool) -> SchemaRef {
    let not_null = |name: &str, t: DataType| Field::new(name, t, false);
    let mut fields = if from_kafka {
        vec![
            not_null("topic", DataType::Utf8),
            not_null("partition", DataType::Int32),
            not_null("offset", DataType::Int64),
        ]
    } else {
        vec![
            not_null("file", DataType::Utf8),
            not_null("line", DataType::Int64),
        ]
    };
    fields.extend([
        not_null("problem", DataType::Utf8),
        not_null("text", DataType::Utf8),
        not_null("run_id", DataType::Utf8),
        not_null(
            "ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
    ]);
    Arc::new(Schema::new(fields))
}

fn rejected_batch(rejected: &[Rejected], run_id: &str, now: DateTime<Utc>) -> RecordBatch {
    let n = rejected.len();
    let text = |f: &dyn Fn(&Rejected) -> &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, 0);
        rejected.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish())
    };
    let from_kafka = matches!(rejected[0].origin, Origin::Message { .. });
    let mut columns: Vec<ArrayRef> = if from_kafka {
        let mut topics = StringBuilder::with_capacity(n, 0);
        let mut partitions = Int32Builder::with_capacity(n);
        let mut offsets = Int64Builder::with_capacity(n);
        for r in rejected {
            if let Origin::Message {
                topic,
                partition,
                offset,
            } = &r.origin
            {
                topics.append_value(topic);
                partitions.append_value(*partition);
                offsets.append_value(*offset);
            }
        }
        vec![
            Arc::new(topics.finish()),
            Arc::new(partitions.finish()),
            Arc::new(offsets.finish()),
        ]
    } else {
        let mut lines = Int64Builder::with_capacity(n);
        let mut files = StringBuilder::with_capacity(n, 0);
        for r in rejected {
            if let Origin::Line { file, line } = &r.origin {
                files.append_value(file);
                lines.append_value(*line as i64);
            }
        }
        vec![Arc::new(files.finish()), Arc::new(lines.finish())]
    };
    let mut stamps = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    (0..n).for_each(|_| stamps.append_value(now.timestamp_micros()));
    columns.extend([
        text(&|r| &r.problem),
        text(&|r| &r.text),
        Arc::new(StringArray::from(vec![run_id; n])) as ArrayRef,
        Arc::new(stamps.finish()),
    ]);
    RecordBatch::try_new(rejected_schema(from_kafka), columns)
        .expect("columns match the quarantine schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bronze::definition::{BronzeSource, Partitioning};

    fn events() -> BronzeTable {
        BronzeTable {
            name: "events".into(),
            source: BronzeSource::Files("landing/events".into()),
            key: "event_id".into(),
            partition_by: Partitioning::EventHour,
            event_time: Some("event_ts".into()),
            required: vec!["user_id".into()],
            copy_to_landing: None,
            file: "bronze/events.toml".into(),
        }
    }

    #[test]
    fn endpoints_name_the_line_or_the_message() {
        let endpoint = |origin: Origin| {
            let mut out = String::new();
            origin.write_endpoint(&mut out);
            out
        };
        let line = Origin::Line {
            file: "landing/events/day 1.ndjson".into(),
            line: 1_234_567,
        };
        assert_eq!(endpoint(line), "landing/events/day 1.ndjson:1234567");
        let message = Origin::Message {
            topic: "plays".into(),
            partition: 2,
            offset: -1,
        };
        assert_eq!(endpoint(message), "plays:2:-1");
    }

    #[test]
    fn picking_fields_judges_every_record_as_the_whole_tree_does() {
        let def = events();
        let whole = |text: &str| json_object(text).and_then(|o| check(&def, &o));
        for text in [
            r#"{"event_id":"e1","user_id":"u","event_ts":"2026-11-20T10:00:00Z","extra":{"deep":[1,{"x":null}]}}"#,
            r#"{"event_id":7,"user_id":"u","event_ts":"2026-11-20T10:00:00+02:00"}"#,
            r#"{"event_id":"e1","event_id":"e2","user_id":"u","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event_id":"e1","user_id":"u","user_id":"","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event_id":"e1","event_ts":"soon","user_id":"u","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event\u005fid":"escaped","user_id":"u","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event_id":"e1","user_id":"  ","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event_id":"e1","user_id":"u","event_ts":"yesterday"}"#,
            r#"{"event_id":{"a":1},"user_id":"u","event_ts":"2026-11-20T10:00:00Z"}"#,
            r#"{"event_id":"e1","user_id":"u"}"#,
            r#"{"event_id":"e1","user_id":"u","event_ts":"2026-11-20T10:00:00Z","bad":[1,}"#,
            r#"{"event_id":"e1","user_id":"u","event_ts":"2026-11-20T10:00:00Z"} trailing"#,
            r#"[{"event_id":"e1"}]"#,
            r#""just text""#,
            "",
            "{",
        ] {
            assert_eq!(checked_record(&def, text), whole(text), "{text}");
        }
        assert_eq!(
            checked_record(
                &def,
                r#"{"event\u005fid":"escaped","user_id":"u","event_ts":"2026-11-20T10:00:00Z"}"#
            )
            .unwrap()
            .0,
            "escaped"
        );
        // A field nobody reads may nest deeper than serde_json builds trees
        // (128 levels): it is valid JSON, skipped, and the record is taken.
        let deep = format!(
            r#"{{"event_id":"e","user_id":"u","event_ts":"2026-11-20T10:00:00Z","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(checked_record(&def, &deep).unwrap().0, "e");
        assert!(whole(&deep).unwrap_err().contains("recursion limit"));
    }
}
