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

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::records::{
    self, KEPT_TEXT_BYTES, MAX_RECORD_BYTES, Origin, Pending, Publisher, Publishing, Taken,
};
use super::{BronzeTable, IngestSettings, LOCK_LEASE};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::lake::{Lake, ObjectInfo, Transaction};
use crate::landing::{SharedStore, Stamp, lease};
use crate::stages::Stage;

/// Input gathered before its lines are judged, and lines judged together:
/// enough for both cores to share, little enough to hold.
const JUDGED_BYTES: usize = 1 << 20;
const JUDGED_LINES: usize = 4096;

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

/// Turns lines of one file into records.
#[derive(Clone)]
struct LineReader<'d> {
    def: &'d BronzeTable,
    format: Format,
    /// The CSV header's field names, or what is wrong with it.
    header: Option<std::result::Result<Vec<String>, String>>,
}

/// Where a read stands in its file.
struct Line {
    /// The file, shared by every row's origin: a copy of its path per
    /// line was an allocation per row.
    file: Arc<str>,
    /// Just past the last line taken.
    at: Mark,
    /// How far the quarantine has read this file.
    qmark: Mark,
    /// The ingest stamp of this run's rows.
    stamp: Stamp,
    /// Bytes of the current over-long line dropped from the buffer.
    skipped: u64,
}

/// What one line holds, decided apart from where it stands in its file,
/// so that a batch of lines is judged on every core.
enum Judged<'l> {
    /// The CSV header, which the reader takes before judging more lines.
    Header,
    Blank,
    /// A record and its JSON text: the line's own for NDJSON, made from
    /// the fields for CSV.
    Record(records::Checked, Cow<'l, str>, records::ContentHash),
    Bad(String),
}

/// A line without its break (`\n` or `\r\n`).
fn without_break(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// The whole lines at the start of `rest`, as many as are judged at a
/// time (a CSV file's header alone). memchr finds the ends 16 or 32 bytes
/// at a time, on the task that every line passes through; the rest waits
/// for the next read.
fn batch_of_lines<'b>(rest: &'b [u8], reader: &LineReader) -> Vec<&'b [u8]> {
    let most = if reader.wants_header() {
        1
    } else {
        JUDGED_LINES
    };
    let mut start = 0;
    memchr::memchr_iter(b'\n', rest)
        .take(most)
        .map(|end| {
            let line = &rest[start..=end];
            start = end + 1;
            line
        })
        .collect()
}

impl LineReader<'_> {
    fn wants_header(&self) -> bool {
        self.format == Format::Csv && self.header.is_none()
    }

    /// Judge a batch of lines on every core.
    fn judge_all<'l>(&self, lines: &[&'l [u8]]) -> Vec<Judged<'l>> {
        Stage::Parse.par_map(lines, |l| self.judge(l))
    }

    fn judge<'l>(&self, bytes: &'l [u8]) -> Judged<'l> {
        let Ok(text) = std::str::from_utf8(without_break(bytes)) else {
            return Judged::Bad("not UTF-8 text".into());
        };
        if self.wants_header() {
            return Judged::Header;
        }
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            return Judged::Blank;
        }
        match self.record(text) {
            Ok((checked, doc)) => {
                let hash = records::content_hash(&doc);
                Judged::Record(checked, doc, hash)
            }
            Err(problem) => Judged::Bad(problem),
        }
    }

    /// The record on `line` as a JSON object's text, its key and its
    /// partition time, or what is wrong with it.
    fn record<'l>(
        &self,
        line: &'l str,
    ) -> std::result::Result<(records::Checked, Cow<'l, str>), String> {
        match self.format {
            Format::Ndjson => Ok((
                records::checked_record(self.def, line)?,
                Cow::Borrowed(line),
            )),
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
                Ok((records::check(self.def, &object)?, Cow::Owned(text)))
            }
        }
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
    fn publisher(&self) -> Publisher<'_> {
        Publisher {
            lake: self.lake,
            store: self.store,
            def: self.def,
            run_id: self.run_id,
            positions: "files",
        }
    }

    /// Take every new whole line of every file, committing about every
    /// `commit_mib` of input.
    pub async fn run(&self) -> Result<(FilesReport, Option<u64>, u64)> {
        let mut report = FilesReport::default();
        let listing = self.lake.list_files(self.folder).await?;
        let limit = self.settings.commit_mib * 1024 * 1024;
        let publisher = self.publisher();
        let txns = publisher.begin(self.now).await?;
        let mut marks: Checkpoint = records::positions(&txns.0, "files");
        let mut qmarks: Checkpoint = records::positions(&txns.1, "files");
        let (mut version, mut rows) = (None, txns.0.base().rows());
        // The first commit's transactions; the next ones are begun when
        // their commit starts, after the one before is committed.
        let mut txns = Some(txns);
        // A commit's files are encoded while the next commit's input is
        // read: one after the other, a core idled through each half.
        let mut publishing = None;
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
                    if let Some(before) = publishing.take() {
                        (version, rows) = self.finish(before).await?;
                    }
                    let taken = std::mem::take(&mut pending);
                    publishing = Some(
                        self.start(txns.take(), (&marks, &qmarks), taken, &mut report)
                            .await?,
                    );
                }
                if !more {
                    break;
                }
            }
        }
        if let Some(before) = publishing.take() {
            (version, rows) = self.finish(before).await?;
        }
        if pending.bytes > 0 {
            let last = self
                .start(txns.take(), (&marks, &qmarks), pending, &mut report)
                .await?;
            (version, rows) = self.finish(last).await?;
        }
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
            file: Arc::from(object.path.as_str()),
            at: mark,
            qmark,
            stamp: self.now.timestamp_micros(),
            skipped: 0,
        };
        let mut taken = 0u64;
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = stream.next().await.transpose()?;
            if let Some(chunk) = &chunk {
                buffer.extend_from_slice(chunk);
                if buffer.len() < JUDGED_BYTES {
                    continue;
                }
            }
            let (used, lines, full) =
                self.take_lines(&mut reader, &buffer, &mut line, pending, limit);
            taken += lines;
            buffer.drain(..used);
            if full {
                break;
            }
            if chunk.is_none() {
                // The file's end: a last line without a break is whole only
                // once the file has settled.
                if settled && !buffer.is_empty() {
                    let judged = reader.judge(&buffer);
                    taken += self.take_line(&mut reader, &buffer, judged, &mut line, pending);
                }
                break;
            }
            if buffer.len() > MAX_RECORD_BYTES {
                // Keep the start of an over-long line for its rejection and
                // skip the rest; the line ends at its break.
                line.skipped += (buffer.len() - KEPT_TEXT_BYTES) as u64;
                buffer.truncate(KEPT_TEXT_BYTES);
            }
        }
        Ok((line.at, taken))
    }

    /// Take the whole lines at the start of `buffer` until the commit's
    /// input reaches `limit`, judging them on every core a batch at a
    /// time, the next batch judged while this one is taken in order.
    /// Returns the bytes used, the lines taken as rows, and whether the
    /// limit was reached.
    fn take_lines(
        &self,
        reader: &mut LineReader,
        buffer: &[u8],
        line: &mut Line,
        pending: &mut Pending,
        limit: u64,
    ) -> (usize, u64, bool) {
        let (mut used, mut taken) = (0, 0);
        let mut lines = batch_of_lines(buffer, reader);
        let mut judged = reader.judge_all(&lines);
        loop {
            if lines.is_empty() {
                return (used, taken, false);
            }
            // A CSV header changes how the lines after it are judged: none
            // is judged ahead of it.
            let ahead = if reader.wants_header() {
                Vec::new()
            } else {
                let batch: usize = lines.iter().map(|l| l.len()).sum();
                batch_of_lines(&buffer[used + batch..], reader)
            };
            let ahead_reader = reader.clone();
            let (ahead_judged, full) = rayon::join(
                || ahead_reader.judge_all(&ahead),
                || {
                    for (bytes, judged) in lines.iter().zip(judged) {
                        taken += self.take_line(reader, bytes, judged, line, pending);
                        used += bytes.len();
                        if pending.bytes >= limit {
                            return true;
                        }
                    }
                    false
                },
            );
            if full {
                return (used, taken, true);
            }
            if ahead.is_empty() {
                // After a header, the lines that follow it.
                lines = batch_of_lines(&buffer[used..], reader);
                judged = reader.judge_all(&lines);
            } else {
                (lines, judged) = (ahead, ahead_judged);
            }
        }
    }

    async fn csv_header(
        &self,
        object: &ObjectInfo,
    ) -> Result<std::result::Result<Vec<String>, String>> {
        let mut stream = self
            .lake
            .read_range(&object.path, 0..object.size.min(MAX_RECORD_BYTES as u64))
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

    /// Take one line (with its break, if it has one), judged, as a row or
    /// a rejection and move `line` past it. Returns 1 for a row.
    fn take_line(
        &self,
        reader: &mut LineReader,
        bytes: &[u8],
        judged: Judged,
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
        let bytes = without_break(bytes);
        let origin = Origin::Line {
            file: line.file.clone(),
            line: number,
        };
        let mut reject = |problem: String| {
            // Lines the quarantine holds already were quarantined by a run
            // whose data commit did not happen.
            if at.offset >= line.qmark.offset {
                pending.reject(origin.clone(), problem, bytes);
            }
            0
        };
        if overlong {
            return reject(format!("longer than {MAX_RECORD_BYTES} bytes"));
        }
        match judged {
            Judged::Header => {
                let header = header_of(bytes);
                let problem = header.as_ref().err().cloned();
                reader.header = Some(header);
                problem.map_or(0, reject)
            }
            Judged::Blank => 0,
            Judged::Record(checked, doc, hash) => {
                pending.row(self.def, &origin, checked, (&doc, &hash), line.stamp);
                1
            }
            Judged::Bad(problem) => reject(problem),
        }
    }

    /// Start publishing one commit's rows and rejections with the
    /// checkpoint (see [`Publisher::start`]), in `txns` or, when they were
    /// used by a commit before, in transactions begun now.
    async fn start(
        &self,
        txns: Option<(Transaction, Transaction)>,
        (marks, qmarks): (&Checkpoint, &Checkpoint),
        pending: Pending,
        report: &mut FilesReport,
    ) -> Result<Publishing> {
        report.commits += 1;
        report.lines_quarantined += pending.rejected();
        let publisher = self.publisher();
        let txns = match txns {
            Some(txns) => txns,
            None => publisher.begin(self.now).await?,
        };
        publisher
            .start(
                txns,
                (Some(json!(marks)), Some(json!(qmarks))),
                pending,
                self.now,
            )
            .await
    }

    /// Commit a started commit's rows and renew the table's lock. Returns
    /// the data table's new version and rows.
    async fn finish(&self, publishing: Publishing) -> Result<(Option<u64>, u64)> {
        let snapshot = self.publisher().finish(publishing).await?;
        let (lock, holder) = self.lock;
        lease::hold(self.store, lock, holder, self.clock.now(), LOCK_LEASE).await?;
        Ok((Some(snapshot.version), snapshot.rows()))
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

/// A files run as a few lines of text.
pub fn render(table: &str, r: &FilesReport, version: Option<u64>, rows: u64) -> String {
    let taken = Taken {
        unit: "lines",
        from: "files",
        per_source: &r.files,
        published: ("commits", r.commits),
        quarantined: r.lines_quarantined,
    };
    let mut out = records::render_head(table, &taken, version, rows);
    for (file, lines) in &r.files {
        out.push_str(&format!("\n  {file}: {lines} lines"));
    }
    for (file, why) in &r.skipped {
        out.push_str(&format!("\n  skipped {file}: {why}"));
    }
    out
}
