//! Bronze from files: NDJSON or CSV files under a folder of the lake (event
//! files apps or a generator drop there), each line taken exactly once.
//!
//! The table's commit records how far into each file it has read (a byte
//! offset at a line end, and the lines before it), so the checkpoint moves
//! with the data it covers: a run killed anywhere redoes only uncommitted
//! work. Reading stops at the last line break, so a file still being
//! appended to is taken up to its last whole line now and the rest later;
//! a last line without a break is taken once the file has settled. Lines
//! that are not a record (bad JSON; a missing key, event time or required
//! field; a field count that does not match the CSV header) go to `<table>_quarantine`
//! with their file and line number; that table keeps its own offsets, so
//! a crash between the two commits never quarantines a line twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::rows::{Row, RowBatch};
use super::{BronzeTable, LAYER, LOCK_LEASE, PAYLOAD, schema};
use crate::clock::SharedClock;
use crate::config::IngestSettings;
use crate::error::Result;
use crate::lake::{DataFile, Lake, ObjectInfo, Snapshot, Table, Transaction};
use crate::landing::{Batch, Collection, SharedStore, Stamp, lease};

/// A line longer than this is quarantined (only its start is kept).
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Documents per upsert into a landing collection.
const LANDING_BATCH: usize = 1000;
/// How much of a quarantined line is kept.
const KEPT_TEXT_BYTES: usize = 4096;

/// How far a table has read one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Bytes consumed: always just after a line break (or the file's end).
    pub offset: u64,
    /// Lines consumed, so the next line's number is `lines + 1`.
    pub lines: u64,
}

/// File path (relative to the lake root) → how far it was read.
pub type Checkpoint = BTreeMap<String, Mark>;

/// What one files run took in.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilesReport {
    /// Files with new lines this run, and how many lines it took from each.
    pub files: BTreeMap<String, u64>,
    pub lines_quarantined: u64,
    /// Files left alone, each with the reason.
    pub skipped: BTreeMap<String, String>,
    pub commits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

fn format_of(path: &str) -> Option<Format> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("ndjson" | "jsonl" | "json") => Some(Format::Ndjson),
        Some("csv") => Some(Format::Csv),
        _ => None,
    }
}

/// Names writers use while a file is not ready: hidden or temporary.
fn in_progress(path: &str) -> bool {
    let hidden = path.split('/').any(|p| p.starts_with(['.', '_']));
    let temporary = [".tmp", ".part", ".partial", ".inprogress", ".crdownload"]
        .iter()
        .any(|s| path.to_ascii_lowercase().ends_with(s));
    hidden || temporary
}

/// The quarantine of a files-fed table.
pub fn quarantine_name(table: &str) -> String {
    format!("{table}_quarantine")
}

fn quarantine_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("file"),
        Field::new("line", DataType::Int64, false),
        text("problem"),
        text("text"),
        text("run_id"),
        Field::new(
            "ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

fn checkpoint_of(txn: &Transaction) -> Checkpoint {
    txn.base()
        .properties
        .get("files")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// A line that is not a record.
struct Rejected {
    file: String,
    line: u64,
    problem: String,
    text: String,
}

/// Turns lines of one file into records.
struct LineReader<'d> {
    def: &'d BronzeTable,
    format: Format,
    /// The CSV header's field names, or what is wrong with it.
    header: Option<std::result::Result<Vec<String>, String>>,
}

/// Where a read stands in its file.
struct Line {
    /// Just past the last line taken.
    at: Mark,
    /// How far the quarantine has read this file.
    qmark: Mark,
    /// The ingest stamp of this run's rows.
    stamp: Stamp,
    /// Bytes of the current over-long line dropped from the buffer.
    skipped: u64,
}

impl LineReader<'_> {
    /// The record on `line` as a JSON object's text, its key and its
    /// partition time, or what is wrong with it.
    fn record(
        &self,
        line: &str,
    ) -> std::result::Result<(String, String, Option<DateTime<Utc>>), String> {
        let (object, text) = match self.format {
            Format::Ndjson => match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(o)) => (o, line.to_string()),
                Ok(other) => {
                    return Err(format!(
                        "a JSON {} is not a record; write one object per line",
                        kind(&other)
                    ));
                }
                Err(e) => return Err(format!("not JSON: {e}")),
            },
            Format::Csv => {
                let header = match self
                    .header
                    .as_ref()
                    .expect("CSV files are read after their header")
                {
                    Ok(header) => header,
                    Err(problem) => {
                        return Err(format!("the CSV header (line 1) is unusable: {problem}"));
                    }
                };
                let fields = csv_fields(line)?;
                if fields.len() != header.len() {
                    return Err(format!(
                        "{} fields where the header has {}",
                        fields.len(),
                        header.len()
                    ));
                }
                let object: Map<String, Value> = header
                    .iter()
                    .zip(fields)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), Value::String(v)))
                    .collect();
                let text = serde_json::to_string(&object).expect("maps serialize");
                (object, text)
            }
        };
        let key = match object.get(&self.def.key) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(format!(
                    "key {:?} is a {}, not an id",
                    self.def.key,
                    kind(other)
                ));
            }
            None => return Err(format!("no key field {:?}", self.def.key)),
        };
        for field in &self.def.required {
            match object.get(field) {
                None | Some(Value::Null) => {
                    return Err(format!("no {field}, which every record needs"));
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    return Err(format!("{field} is empty, and every record needs one"));
                }
                Some(_) => {}
            }
        }
        let at = match self.def.event_time.as_deref() {
            None => None,
            Some(field) => match object.get(field) {
                Some(Value::String(s)) => Some(
                    DateTime::parse_from_rfc3339(s)
                        .map_err(|e| {
                            format!("{field} {s:?} is not an RFC 3339 time ({e}); write 2026-11-21T09:30:00Z")
                        })?
                        .with_timezone(&Utc),
                ),
                Some(other) => {
                    return Err(format!("{field} is a {}, not an RFC 3339 time", kind(other)));
                }
                None => return Err(format!("no event time field {field:?}")),
            },
        };
        Ok((key, text, at))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The fields of one CSV line (RFC 4180 quoting; one record per line).
fn csv_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(str::to_string).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(format!("not a CSV record: {e}")),
    }
}

/// Rows of one commit, grouped by partition, and the lines rejected.
#[derive(Default)]
struct Pending {
    rows: BTreeMap<Vec<(&'static str, String)>, RowBatch>,
    rejected: Vec<Rejected>,
    bytes: u64,
}

/// Runs one files-fed bronze table.
pub struct FilesRun<'a> {
    pub lake: &'a Lake,
    pub store: &'a SharedStore,
    pub clock: &'a SharedClock,
    /// The table's lock and its holder, renewed at each commit.
    pub lock: (&'a str, &'a str),
    pub def: &'a BronzeTable,
    pub folder: &'a str,
    pub settings: &'a IngestSettings,
    pub run_id: &'a str,
    pub now: DateTime<Utc>,
}

impl FilesRun<'_> {
    fn table(&self) -> Table {
        self.lake.table(LAYER, &self.def.name)
    }

    fn quarantine(&self) -> Table {
        self.lake.table(LAYER, &quarantine_name(&self.def.name))
    }

    /// Take every new whole line of every file, committing about every
    /// `commit_mib` of input.
    pub async fn run(&self) -> Result<(FilesReport, Option<u64>, u64)> {
        let mut report = FilesReport::default();
        let listing = self.lake.list_files(self.folder).await?;
        let mut version = None;
        let limit = self.settings.commit_mib * 1024 * 1024;
        let mut txn = self.table().begin(self.run_id, self.now).await?;
        let mut qtxn = self.quarantine().begin(self.run_id, self.now).await?;
        let mut marks = checkpoint_of(&txn);
        let mut qmarks = checkpoint_of(&qtxn);
        let mut pending = Pending::default();
        for object in &listing {
            if in_progress(&object.path) {
                continue;
            }
            let Some(format) = format_of(&object.path) else {
                report.skipped.insert(
                    object.path.clone(),
                    "not .ndjson, .jsonl, .json or .csv".into(),
                );
                continue;
            };
            let mark = marks.get(&object.path).copied().unwrap_or_default();
            if object.size < mark.offset {
                report.skipped.insert(
                    object.path.clone(),
                    format!(
                        "shrank to {} bytes after {} were taken: files must only grow; \
                         write new events to a new file",
                        object.size, mark.offset
                    ),
                );
                continue;
            }
            if object.size == mark.offset {
                continue;
            }
            let mut mark = mark;
            loop {
                let qmark = qmarks.get(&object.path).copied().unwrap_or_default();
                let (next, taken) = self
                    .read(object, format, (mark, qmark), limit, &mut pending)
                    .await?;
                if next != mark {
                    *report.files.entry(object.path.clone()).or_default() += taken;
                    marks.insert(object.path.clone(), next);
                    qmarks.insert(object.path.clone(), next.max_by_offset(qmark));
                }
                let more = next.offset < object.size && next != mark;
                mark = next;
                if pending.bytes >= limit {
                    let taken = std::mem::take(&mut pending);
                    let snapshot = self
                        .commit((txn, qtxn), (&marks, &qmarks), taken, &mut report)
                        .await?;
                    version = Some(snapshot.version);
                    let (lock, holder) = self.lock;
                    lease::hold(self.store, lock, holder, self.clock.now(), LOCK_LEASE).await?;
                    txn = self.table().begin(self.run_id, self.now).await?;
                    qtxn = self.quarantine().begin(self.run_id, self.now).await?;
                }
                if !more {
                    break;
                }
            }
        }
        let (version, rows) = if pending.bytes > 0 {
            let snapshot = self
                .commit((txn, qtxn), (&marks, &qmarks), pending, &mut report)
                .await?;
            (Some(snapshot.version), snapshot.rows())
        } else {
            (version, txn.base().rows())
        };
        Ok((report, version, rows))
    }

    /// Read `object` from `mark` until its last whole line, or until the
    /// commit's input reaches `limit`; rows and rejections go to `pending`.
    /// Returns the new mark and the lines taken as rows.
    async fn read(
        &self,
        object: &ObjectInfo,
        format: Format,
        (mark, qmark): (Mark, Mark),
        limit: u64,
        pending: &mut Pending,
    ) -> Result<(Mark, u64)> {
        let mut reader = LineReader {
            def: self.def,
            format,
            header: None,
        };
        if format == Format::Csv && mark.offset > 0 {
            reader.header = Some(self.csv_header(object).await?);
        }
        let settle =
            TimeDelta::seconds(i64::try_from(self.settings.settle_secs).unwrap_or(i64::MAX));
        let settled = self.now - object.modified >= settle;
        let mut stream = self
            .lake
            .read_range(&object.path, mark.offset..object.size)
            .await?;
        let mut line = Line {
            at: mark,
            qmark,
            stamp: self.now.timestamp_micros(),
            skipped: 0,
        };
        let mut taken = 0u64;
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let Some(chunk) = stream.next().await.transpose()? else {
                // The file's end: a last line without a break is whole only
                // once the file has settled.
                if settled && !buffer.is_empty() {
                    taken += self.take_line(&mut reader, object, &buffer, &mut line, pending);
                }
                break;
            };
            buffer.extend_from_slice(&chunk);
            let mut start = 0usize;
            let mut full = false;
            while let Some(pos) = buffer[start..].iter().position(|&b| b == b'\n') {
                let text = &buffer[start..start + pos + 1];
                taken += self.take_line(&mut reader, object, text, &mut line, pending);
                start += pos + 1;
                if pending.bytes >= limit {
                    full = true;
                    break;
                }
            }
            buffer.drain(..start);
            if full {
                break;
            }
            if buffer.len() > MAX_LINE_BYTES {
                // Keep the start of an over-long line for its rejection and
                // skip the rest; the line ends at its break.
                line.skipped += (buffer.len() - KEPT_TEXT_BYTES) as u64;
                buffer.truncate(KEPT_TEXT_BYTES);
            }
        }
        Ok((line.at, taken))
    }

    async fn csv_header(
        &self,
        object: &ObjectInfo,
    ) -> Result<std::result::Result<Vec<String>, String>> {
        let mut stream = self
            .lake
            .read_range(&object.path, 0..object.size.min(MAX_LINE_BYTES as u64))
            .await?;
        let mut head = Vec::new();
        while let Some(chunk) = stream.next().await {
            head.extend_from_slice(&chunk?);
            if head.contains(&b'\n') {
                break;
            }
        }
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        Ok(header_of(line))
    }

    /// Take one line (with its break, if it has one) as a row or a
    /// rejection and move `line` past it. Returns 1 for a row.
    fn take_line(
        &self,
        reader: &mut LineReader,
        object: &ObjectInfo,
        bytes: &[u8],
        line: &mut Line,
        pending: &mut Pending,
    ) -> u64 {
        let at = line.at;
        let length = bytes.len() as u64 + line.skipped;
        let overlong = line.skipped > 0;
        line.at.offset += length;
        line.at.lines += 1;
        line.skipped = 0;
        pending.bytes += length;
        let number = line.at.lines;
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let mut reject = |problem: String| {
            // Lines the quarantine holds already were quarantined by a run
            // whose data commit did not happen.
            if at.offset >= line.qmark.offset {
                let kept = &bytes[..bytes.len().min(KEPT_TEXT_BYTES)];
                pending.rejected.push(Rejected {
                    file: object.path.clone(),
                    line: number,
                    problem,
                    text: String::from_utf8_lossy(kept).into_owned(),
                });
            }
            0
        };
        if overlong {
            return reject(format!("longer than {MAX_LINE_BYTES} bytes"));
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return reject("not UTF-8 text".into());
        };
        if reader.format == Format::Csv && reader.header.is_none() {
            let header = header_of(bytes);
            let problem = header.as_ref().err().cloned();
            reader.header = Some(header);
            return problem.map_or(0, reject);
        }
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return 0;
        }
        match reader.record(text) {
            Ok((key, doc, event_time)) => {
                let time = event_time.unwrap_or_else(|| {
                    DateTime::from_timestamp_micros(line.stamp).unwrap_or_default()
                });
                let content_hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(doc.as_bytes()));
                pending
                    .rows
                    .entry(self.def.partition_by.of(time))
                    .or_default()
                    .push(Row {
                        id: key,
                        stamp: line.stamp,
                        run_id: self.run_id.to_string(),
                        endpoint: format!("{}:{number}", object.path),
                        content_hash,
                        doc,
                    });
                1
            }
            Err(problem) => reject(problem),
        }
    }

    /// Publish one commit's rows and rejections: the quarantine first, then
    /// the data with the checkpoint. Returns the data table's new snapshot.
    async fn commit(
        &self,
        (mut txn, mut qtxn): (Transaction, Transaction),
        (marks, qmarks): (&Checkpoint, &Checkpoint),
        pending: Pending,
        report: &mut FilesReport,
    ) -> Result<Snapshot> {
        report.commits += 1;
        report.lines_quarantined += pending.rejected.len() as u64;
        if !pending.rejected.is_empty() {
            let batch = rejected_batch(&pending.rejected, self.run_id, self.now);
            let mut writer = qtxn.create_file(&[], batch.schema(), &["text"])?;
            writer.write(&batch).await?;
            qtxn.add(writer.finish().await?);
        }
        if let Some(collection) = self.def.copy_to_landing {
            self.copy_to_landing(collection, &pending).await?;
        }
        let mut qprops = Map::new();
        qprops.insert("files".into(), json!(qmarks));
        qtxn.commit("append", qprops, self.now).await?;

        let schema = schema(&self.def.key);
        for (partition, mut rows) in pending.rows {
            let mut writer = txn.create_file(&partition, schema.clone(), &PAYLOAD)?;
            let stamp = self.now.timestamp_micros();
            writer.write(&rows.take(&schema)).await?;
            writer.set_stat("min_ingested_at", json!(stamp));
            writer.set_stat("max_ingested_at", json!(stamp));
            let file: DataFile = writer.finish().await?;
            txn.add(file);
        }
        let mut props = Map::new();
        props.insert("source".into(), json!(self.def.source.describe()));
        props.insert("key".into(), json!(self.def.key));
        props.insert("files".into(), json!(marks));
        txn.commit("append", props, self.now).await
    }

    /// Upsert the commit's records into a landing collection, by key,
    /// before the commit: a rerun after a crash upserts the same documents
    /// again, which leaves them unchanged.
    async fn copy_to_landing(&self, collection: Collection, pending: &Pending) -> Result<()> {
        let rows = pending.rows.values().flat_map(RowBatch::rows);
        let mut batch = Batch {
            run_id: self.run_id.to_string(),
            endpoint: self.def.source.describe(),
            docs: Vec::new(),
        };
        let mut ids = std::collections::HashSet::new();
        for row in rows {
            // An event delivered twice goes in a later batch: a batch holds
            // an id once.
            if batch.docs.len() == LANDING_BATCH || ids.contains(&row.id) {
                self.store.upsert(collection, &batch).await?;
                batch.docs.clear();
                ids.clear();
            }
            let doc = serde_json::from_str(&row.doc).expect("rows are JSON objects");
            ids.insert(row.id.clone());
            batch.docs.push((row.id.clone(), doc));
        }
        if !batch.docs.is_empty() {
            self.store.upsert(collection, &batch).await?;
        }
        Ok(())
    }
}

impl Mark {
    fn max_by_offset(self, other: Mark) -> Mark {
        if other.offset > self.offset {
            other
        } else {
            self
        }
    }
}

fn header_of(line: &[u8]) -> std::result::Result<Vec<String>, String> {
    let text =
        std::str::from_utf8(line).map_err(|_| "the CSV header is not UTF-8 text".to_string())?;
    let text = text.trim_start_matches('\u{feff}').trim_end_matches('\r');
    let fields = csv_fields(text)?;
    let names: Vec<String> = fields.into_iter().map(|f| f.trim().to_string()).collect();
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err(format!("the CSV header {text:?} has an empty field name"));
    }
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(format!("the CSV header names {:?} twice", twice.1));
    }
    Ok(names)
}

fn rejected_batch(rejected: &[Rejected], run_id: &str, now: DateTime<Utc>) -> RecordBatch {
    let n = rejected.len();
    let text = |f: &dyn Fn(&Rejected) -> &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, 0);
        rejected.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish())
    };
    let mut lines = Int64Builder::with_capacity(n);
    rejected
        .iter()
        .for_each(|r| lines.append_value(r.line as i64));
    let mut stamps = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    (0..n).for_each(|_| stamps.append_value(now.timestamp_micros()));
    RecordBatch::try_new(
        quarantine_schema(),
        vec![
            text(&|r| &r.file),
            Arc::new(lines.finish()),
            text(&|r| &r.problem),
            text(&|r| &r.text),
            Arc::new(StringArray::from(vec![run_id; n])),
            Arc::new(stamps.finish()),
        ],
    )
    .expect("columns match the quarantine schema")
}

/// A files run as a few lines of text.
pub fn render(table: &str, r: &FilesReport, version: Option<u64>, rows: u64) -> String {
    let mut out = match version {
        None => format!("bronze.{table}: no new lines ({rows} rows)"),
        Some(v) => format!(
            "bronze.{table}: took {} lines from {} files in {} commits, version {v}, {rows} rows in all",
            r.files.values().sum::<u64>(),
            r.files.len(),
            r.commits
        ),
    };
    if r.lines_quarantined > 0 {
        out.push_str(&format!(
            "\n  {} lines quarantined (see bronze.{})",
            r.lines_quarantined,
            quarantine_name(table)
        ));
    }
    for (file, lines) in &r.files {
        out.push_str(&format!("\n  {file}: {lines} lines"));
    }
    for (file, why) in &r.skipped {
        out.push_str(&format!("\n  skipped {file}: {why}"));
    }
    out
}
