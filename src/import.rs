//! `soundlake import`: raw Spotify objects from a file into the landing
//! store, exactly as the crawl lands them. Accepts NDJSON (one object or
//! saved response per line), a JSON array, or one saved API response
//! (`{"tracks": [...]}`, a paging object, a search response, one object).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::landing::{Batch, Collection, Prepared, SharedStore, UpsertCounts, peek};
use crate::progress::Bar;

/// Lines parsed together, on every core.
const PARSED_LINES: usize = 1000;
/// Bytes of lines parsed together, at most (a line may hold a whole page).
const PARSED_BYTES: usize = 8 << 20;
/// Documents per write to the store, at most. Large writes are what make
/// an import fast: ids are random, so each document lands on its own page
/// of the id index, and a write puts each page it touched in the store's
/// log once. 600k tracks took 19.6 s in writes of 1,000 and 9.3 s in
/// writes of 20,000.
pub const WRITE_DOCUMENTS: usize = 20_000;
/// Bytes of document text per write, at most, so that large documents
/// make smaller writes.
pub const WRITE_BYTES: usize = 32 << 20;
/// A single JSON document (not NDJSON) is parsed whole; past this size the
/// file should be NDJSON, which streams.
const MAX_DOCUMENT_BYTES: u64 = 1 << 30;
/// Longest accepted NDJSON line.
const MAX_LINE_BYTES: usize = 64 << 20;
/// Rejects listed in an error message.
const SHOWN_REJECTS: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub collection: Collection,
    pub run_id: String,
    pub format: &'static str,
    pub loaded: UpsertCounts,
    pub rejects: Vec<Reject>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    /// `line 7`, or `item 3` inside a JSON array.
    pub place: String,
    pub reason: String,
}

/// Import `path` into `collection`, showing the bytes read on `bar`. With
/// `strict`, any reject means nothing is loaded and the error lists the
/// rejects.
pub async fn import(
    store: &SharedStore,
    collection: Collection,
    path: &Path,
    strict: bool,
    run_id: &str,
    bar: &Bar,
) -> Result<ImportReport> {
    if collection == Collection::Searches {
        return Err(Error::Input {
            place: "collection searches".into(),
            problem: "search responses are keyed by the searched name, which a dump does not carry"
                .into(),
            fix: "import artists, albums, tracks or audio_features".into(),
        });
    }
    let format = detect(path)?;
    let mut report = ImportReport {
        file: path.display().to_string(),
        collection,
        run_id: run_id.to_string(),
        format: format.name(),
        loaded: UpsertCounts::default(),
        rejects: Vec::new(),
    };
    let mut loader = Loader {
        store,
        collection,
        batch: Batch {
            run_id: run_id.to_string(),
            endpoint: format!(
                "import:{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            docs: Vec::new(),
        },
        positions: Default::default(),
        bytes: 0,
        counts: UpsertCounts::default(),
        dry: false,
        writing: None,
    };
    // Strict imports validate everything first, in a dry pass, and load in
    // a second pass.
    let passes: &[(bool, &str)] = if strict {
        &[(true, "checking"), (false, "loading")]
    } else {
        &[(false, "loading")]
    };
    for &(dry, what) in passes {
        loader.dry = dry;
        bar.restart();
        bar.set_message(what);
        let read = read(
            path,
            format,
            collection,
            &mut loader,
            &mut report.rejects,
            bar,
        )
        .await;
        let handed = match read {
            Ok(()) => loader.flush().await,
            failed => failed,
        };
        // The write in flight finishes before the import answers, even when
        // reading failed: every batch handed to the store is loaded.
        let settled = loader.settle().await;
        handed?;
        settled?;
        if dry && !report.rejects.is_empty() {
            return Err(rejected(path, &report.rejects));
        }
    }
    bar.finish();
    if loader.counts == UpsertCounts::default() && !report.rejects.is_empty() {
        return Err(rejected(path, &report.rejects));
    }
    report.loaded = loader.counts;
    Ok(report)
}

fn rejected(path: &Path, rejects: &[Reject]) -> Error {
    let shown: Vec<String> = rejects
        .iter()
        .take(SHOWN_REJECTS)
        .map(|r| format!("{}: {}", r.place, r.reason))
        .collect();
    let more = rejects.len().saturating_sub(SHOWN_REJECTS);
    Error::Input {
        place: path.display().to_string(),
        problem: format!(
            "{} rejected, nothing loaded:\n    {}{}",
            plural(rejects.len(), "entry", "entries"),
            shown.join("\n    "),
            if more > 0 {
                format!("\n    … and {more} more")
            } else {
                String::new()
            }
        ),
        fix: "correct or remove those lines, or import without --strict to load the valid ones"
            .into(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Ndjson,
    Document,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Document => "json",
        }
    }
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Error::io("cannot read the import file", path, e))
}

/// NDJSON when the first non-blank line is a whole JSON value by itself;
/// a single JSON document otherwise.
fn detect(path: &Path) -> Result<Format> {
    let mut reader = BufReader::new(open(path)?);
    loop {
        let mut line = Vec::new();
        let n = read_line(&mut reader, &mut line, path, 1)?;
        if n == 0 {
            return Err(Error::Input {
                place: path.display().to_string(),
                problem: "the file is empty".into(),
                fix: "give a file of Spotify objects: NDJSON, a JSON array or a saved API response"
                    .into(),
            });
        }
        let text = String::from_utf8_lossy(&line);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('[') {
            return Ok(Format::Document);
        }
        return Ok(match serde_json::from_str::<Value>(trimmed) {
            Ok(_) => Format::Ndjson,
            Err(_) if trimmed.starts_with('{') && !trimmed.ends_with('}') => Format::Document,
            // A broken first line of NDJSON is a reject like any other.
            Err(_) => Format::Ndjson,
        });
    }
}

/// Read one line (with its newline) into `buf`, refusing monsters.
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    path: &Path,
    line_no: usize,
) -> Result<usize> {
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| Error::io("cannot read the import file", path, e))?;
    if n > MAX_LINE_BYTES {
        return Err(Error::Input {
            place: format!("{}:{line_no}", path.display()),
            problem: format!("the line is longer than {} MiB", MAX_LINE_BYTES >> 20),
            fix: "split the data into one object per line".into(),
        });
    }
    Ok(n)
}

async fn read(
    path: &Path,
    format: Format,
    collection: Collection,
    loader: &mut Loader<'_>,
    rejects: &mut Vec<Reject>,
    bar: &Bar,
) -> Result<()> {
    match format {
        Format::Ndjson => {
            let mut reader = BufReader::new(open(path)?);
            let mut line_no = 0;
            loop {
                // A batch of lines, parsed on every core while the store
                // writes the batch before it.
                let mut lines = Vec::new();
                let mut bytes = 0;
                while lines.len() < PARSED_LINES && bytes < PARSED_BYTES {
                    let mut line = Vec::new();
                    let n = read_line(&mut reader, &mut line, path, line_no + 1)?;
                    if n == 0 {
                        break;
                    }
                    line_no += 1;
                    bytes += n;
                    lines.push((line_no, line));
                }
                if lines.is_empty() {
                    return Ok(());
                }
                bar.inc(bytes as u64);
                if loader.dry {
                    let checked: Vec<_> = lines
                        .par_iter()
                        .map(|(_, line)| check_line(collection, line))
                        .collect();
                    for ((line_no, _), found) in lines.iter().zip(checked) {
                        match found {
                            Some(Ok(documents)) => bar.count(documents as u64),
                            Some(Err(reason)) => {
                                rejects.push(reject(format!("line {line_no}"), reason))
                            }
                            None => {}
                        }
                    }
                    continue;
                }
                let parsed: Vec<_> = lines
                    .par_iter()
                    .map(|(_, line)| parse_line(collection, line))
                    .collect();
                for ((line_no, _), found) in lines.iter().zip(parsed) {
                    let Some(found) = found else { continue };
                    if let Ok(found) = &found {
                        bar.count(found.len() as u64);
                    }
                    loader
                        .take(found, &format!("line {line_no}"), rejects)
                        .await?;
                }
            }
        }
        Format::Document => {
            let file = open(path)?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > MAX_DOCUMENT_BYTES {
                return Err(Error::Input {
                    place: path.display().to_string(),
                    problem: format!("a single JSON document of {} MiB", size >> 20),
                    fix: "convert it to NDJSON (one object per line), which imports in a stream"
                        .into(),
                });
            }
            bar.inc(size);
            let value: Value = serde_json::from_reader(BufReader::new(file)).map_err(|e| {
                Error::Input {
                    place: format!("{}:{}:{}", path.display(), e.line(), e.column()),
                    problem: format!("not valid JSON ({e}); nothing loaded"),
                    fix: "repair the file, or save it as NDJSON so one bad line does not spoil the rest"
                        .into(),
                }
            })?;
            match value {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let place = format!("item {}", i + 1);
                        loader
                            .take(prepared(objects(collection, item)), &place, rejects)
                            .await?;
                    }
                }
                other => {
                    loader
                        .take(prepared(objects(collection, other)), "document", rejects)
                        .await?
                }
            }
            Ok(())
        }
    }
}

/// The documents on one NDJSON line, or why it holds none; `None` for a
/// blank line.
fn parse_line(
    collection: Collection,
    line: &[u8],
) -> Option<std::result::Result<Vec<Prepared>, String>> {
    let text = match line_text(line)? {
        Ok(text) => text,
        Err(reason) => return Some(Err(reason)),
    };
    // Most lines are one object with its `id`: prepared in one pass over
    // the text, with no tree.
    if collection != Collection::AlbumTracks
        && let Some((doc, kind)) = Prepared::parse(text, "id", "type")
        && fits(collection, doc.id(), kind.as_deref()).is_ok()
    {
        return Some(Ok(vec![doc]));
    }
    // Anything else (a saved response, an album's page of tracks, a line
    // to reject) the slow way, with its messages.
    Some(tree(text).and_then(|v| prepared(objects(collection, v))))
}

/// How many documents one NDJSON line holds, or why it holds none, as
/// [`parse_line`] would find (a strict import's check pass): the same
/// verdict, without preparing the documents it will prepare again.
fn check_line(collection: Collection, line: &[u8]) -> Option<std::result::Result<usize, String>> {
    let text = match line_text(line)? {
        Ok(text) => text,
        Err(reason) => return Some(Err(reason)),
    };
    if collection != Collection::AlbumTracks
        && let Some((id, kind)) = peek(text, "id", "type")
        && fits(collection, &id, kind.as_deref()).is_ok()
    {
        return Some(Ok(1));
    }
    Some(
        tree(text)
            .and_then(|v| objects(collection, v))
            .map(|docs| docs.len()),
    )
}

/// A line's text, trimmed; `None` for a blank line.
fn line_text(line: &[u8]) -> Option<std::result::Result<&str, String>> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Some(Err("not UTF-8 text".into()));
    };
    let text = text.trim();
    (!text.is_empty()).then_some(Ok(text))
}

fn tree(text: &str) -> std::result::Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))
}

fn prepared(
    found: std::result::Result<Vec<(String, Value)>, String>,
) -> std::result::Result<Vec<Prepared>, String> {
    found.map(|docs| {
        docs.into_iter()
            .map(|(id, doc)| Prepared::new(id, &doc))
            .collect()
    })
}

fn reject(place: String, reason: String) -> Reject {
    Reject { place, reason }
}

/// The documents in one value, each with its key: the Spotify objects
/// (itself, or the items of a saved batch response, paging object or search
/// response), or for `album_tracks` the saved page itself.
fn objects(
    collection: Collection,
    value: Value,
) -> std::result::Result<Vec<(String, Value)>, String> {
    if collection == Collection::AlbumTracks {
        return album_tracks_page(value).map(|keyed| vec![keyed]);
    }
    let Value::Object(mut map) = value else {
        return Err("not a JSON object".into());
    };
    if map.contains_key("id") {
        return check(collection, Value::Object(map)).map(|o| vec![keyed(o)]);
    }
    let wrapped = map.remove(collection.name());
    let listing = match wrapped {
        Some(Value::Array(items)) => items,
        Some(Value::Object(mut paging)) => match paging.remove("items") {
            Some(Value::Array(items)) => items,
            _ => return Err(format!("`{collection}` holds no `items` array")),
        },
        Some(_) => return Err(format!("`{collection}` is neither a list nor a page")),
        None => match map.remove("items") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(format!(
                    "not a Spotify object (no `id`) nor a response listing {collection}"
                ));
            }
        },
    };
    listing
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| check(collection, v).map(keyed))
        .collect()
}

/// A checked Spotify object with its `id` as key.
fn keyed(object: Value) -> (String, Value) {
    let id = object["id"].as_str().unwrap_or_default().to_string();
    (id, object)
}

/// A saved page of `GET /albums/{id}/tracks`, keyed by the album its `href`
/// names and its `offset`.
fn album_tracks_page(page: Value) -> std::result::Result<(String, Value), String> {
    let href = page["href"]
        .as_str()
        .ok_or("not a page of an album's tracks (no `href`)")?;
    let album = url::Url::parse(href).ok().and_then(|url| {
        let segments: Vec<String> = url.path_segments()?.map(str::to_string).collect();
        let at = segments.iter().position(|s| s == "albums")?;
        match &segments[at + 1..] {
            [id, tracks] if tracks == "tracks" && !id.is_empty() => Some(id.clone()),
            _ => None,
        }
    });
    let Some(album) = album else {
        return Err(format!(
            "`href` {href:?} is not an album's track listing (…/albums/{{id}}/tracks)"
        ));
    };
    let offset = page["offset"]
        .as_u64()
        .ok_or("the page has no whole-number `offset`")?;
    if !page["items"].is_array() {
        return Err("the page has no `items` array".into());
    }
    Ok((crate::landing::album_tracks_key(&album, offset), page))
}

fn check(collection: Collection, object: Value) -> std::result::Result<Value, String> {
    let Some(id) = object.get("id") else {
        return Err("an object has no `id`".into());
    };
    let Value::String(id) = id else {
        return Err("`id` is not a string".into());
    };
    fits(collection, id, object.get("type").and_then(Value::as_str))?;
    Ok(object)
}

/// Whether an object with this string `id` and `type` (if a string)
/// belongs in `collection`, or why not.
fn fits(collection: Collection, id: &str, kind: Option<&str>) -> std::result::Result<(), String> {
    if id.trim().is_empty() {
        return Err("`id` is empty".into());
    }
    if let (Some(kind), Some(expected)) = (kind, collection.object_type())
        && kind != expected
    {
        return Err(format!(
            "object {} is of type {kind:?}, not {expected:?}: wrong collection?",
            Value::from(id)
        ));
    }
    Ok(())
}

struct Loader<'a> {
    store: &'a SharedStore,
    collection: Collection,
    batch: Batch,
    positions: std::collections::HashMap<String, usize>,
    /// The text taken into the batch, replaced copies included.
    bytes: usize,
    counts: UpsertCounts,
    /// Validate only (the first pass of a strict import).
    dry: bool,
    /// The write in flight: the store writes one batch while the next is
    /// read and parsed.
    writing: Option<tokio::task::JoinHandle<Result<UpsertCounts>>>,
}

impl Loader<'_> {
    async fn take(
        &mut self,
        found: std::result::Result<Vec<Prepared>, String>,
        place: &str,
        rejects: &mut Vec<Reject>,
    ) -> Result<()> {
        match found {
            Err(reason) => rejects.push(reject(place.to_string(), reason)),
            Ok(docs) => {
                for doc in docs {
                    self.bytes += doc.text().len();
                    // A later copy of an id in the same write replaces the earlier.
                    match self.positions.get(doc.id()) {
                        Some(&at) => self.batch.docs[at] = doc,
                        None => {
                            self.positions
                                .insert(doc.id().to_string(), self.batch.docs.len());
                            self.batch.docs.push(doc);
                        }
                    }
                }
                if self.batch.docs.len() >= WRITE_DOCUMENTS || self.bytes >= WRITE_BYTES {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Hand the batch to the store, once the write before it is done.
    async fn flush(&mut self) -> Result<()> {
        if !self.dry && !self.batch.docs.is_empty() {
            self.settle().await?;
            let batch = Batch {
                run_id: self.batch.run_id.clone(),
                endpoint: self.batch.endpoint.clone(),
                docs: std::mem::take(&mut self.batch.docs),
            };
            let (store, collection) = (Arc::clone(self.store), self.collection);
            self.writing = Some(tokio::spawn(async move {
                store.upsert(collection, batch).await
            }));
        }
        self.batch.docs.clear();
        self.positions.clear();
        self.bytes = 0;
        Ok(())
    }

    /// Wait for the write in flight and count what it did.
    async fn settle(&mut self) -> Result<()> {
        if let Some(writing) = self.writing.take() {
            let written = writing
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            self.counts += written?;
        }
        Ok(())
    }
}

/// An import report as text: the counts, then a line per rejected record.
pub fn render(report: &ImportReport) -> String {
    let l = report.loaded;
    let mut out = format!(
        "imported {} into {} ({}): {} new, {} changed, {} unchanged; {} rejected\n",
        report.file,
        report.collection,
        report.format,
        l.new,
        l.changed,
        l.unchanged,
        report.rejects.len()
    );
    for r in &report.rejects {
        out += &format!("  rejected {}: {}\n", r.place, r.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_pass_judges_every_line_as_the_load_pass_does() {
        let deep = format!(
            "{{\"id\":\"x\",\"v\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        let lines: Vec<&[u8]> = vec![
            br#"{"id":"t1","type":"track","name":"x"}"#,
            br#"{"id":"a1","type":"album"}"#,
            br#"{"id":"f1","type":"audio_features","energy":0.5}"#,
            br#"{"id":"  "}"#,
            br#"{"id":42}"#,
            br#"{"name":"no id"}"#,
            br#"{"id":"t2","type":7}"#,
            br#"{"tracks":[{"id":"t3"},null,{"id":"t4","type":"track"}]}"#,
            br#"{"items":[{"id":"t5"}]}"#,
            br#"{"albums":{"items":[{"id":"a2","type":"album"}]}}"#,
            br#"{"id":"t6","id":"t7"}"#,
            br#"{"id":"t8","type":"track","type":"album"}"#,
            br#"{"id":"t9","a":{"b":1,"b":2}}"#,
            br#"{"id":"t10","n":1e400}"#,
            br#"{"id":"t11","s":"\ud800"}"#,
            br#"{"href":"https://api.spotify.com/v1/albums/a3/tracks?offset=0&limit=50","offset":0,"items":[]}"#,
            b"{\"id\":\"t12\",\"s\":\"\xff\"}",
            b"   ",
            b"[1,2]",
            b"not json",
            deep.as_bytes(),
        ];
        for collection in [
            Collection::Tracks,
            Collection::Albums,
            Collection::AlbumTracks,
            Collection::AudioFeatures,
        ] {
            for line in &lines {
                let loaded = parse_line(collection, line).map(|found| found.map(|docs| docs.len()));
                assert_eq!(
                    check_line(collection, line),
                    loaded,
                    "{collection}: {}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
}
