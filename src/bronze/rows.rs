//! Bronze rows, where they come from (the landing store, or the files an
//! interval run rewrites) and their ordered, de-duplicated merge.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::landing::{Collection, ScanCursor, SharedStore, Stamp, Stored};
use crate::stages::Stage;

/// One document version.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub stamp: Stamp,
    pub run_id: String,
    pub endpoint: String,
    pub content_hash: String,
    /// The document as JSON text.
    pub doc: String,
}

impl Row {
    pub fn ingested_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.stamp).unwrap_or_default()
    }

    fn key(&self) -> (Stamp, &str) {
        (self.stamp, &self.id)
    }

    fn from_stored(s: Stored<String>) -> Row {
        Row {
            doc: s.doc,
            id: s.id,
            stamp: s.ingested_at,
            run_id: s.run_id,
            endpoint: s.endpoint,
            content_hash: s.content_hash,
        }
    }
}

/// Rows collected into the next record batch.
#[derive(Default)]
pub struct RowBatch {
    rows: Vec<Row>,
    bytes: usize,
}

impl RowBatch {
    pub fn push(&mut self, row: Row) {
        self.bytes += row.doc.len();
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The collected rows as a record batch of the bronze schema; empties
    /// the batch.
    pub fn take(&mut self, schema: &SchemaRef) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let n = rows.len();
        let text = |f: &dyn Fn(&Row) -> &str| -> ArrayRef {
            let bytes = rows.iter().map(|r| f(r).len()).sum();
            let mut b = StringBuilder::with_capacity(n, bytes);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let mut stamps = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        rows.iter().for_each(|r| stamps.append_value(r.stamp));
        let columns = vec![
            text(&|r| &r.id),
            Arc::new(stamps.finish()) as ArrayRef,
            text(&|r| &r.run_id),
            text(&|r| &r.endpoint),
            text(&|r| &r.content_hash),
            text(&|r| &r.doc),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("columns match the bronze schema")
    }
}

/// Rows of a record batch in the bronze schema (any id column name).
pub fn rows_of(batch: &RecordBatch, place: &str) -> Result<Vec<Row>> {
    let bad = |what: &str| Error::Input {
        place: place.into(),
        problem: format!("not a bronze file: {what}"),
        fix: "rebuild the table: delete its folder and run bronze again (the landing store \
              holds the current versions)"
            .into(),
    };
    if batch.num_columns() != 6 {
        return Err(bad("expected 6 columns"));
    }
    let text = |i: usize| -> Result<&StringArray> {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .filter(|a| a.null_count() == 0)
            .ok_or_else(|| bad(&format!("column {i} is not non-null text")))
    };
    let stamps = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| bad("ingested_at is not a microsecond timestamp"))?;
    let (ids, runs, endpoints, hashes, docs) = (text(0)?, text(2)?, text(3)?, text(4)?, text(5)?);
    Ok((0..batch.num_rows())
        .map(|i| Row {
            id: ids.value(i).to_string(),
            stamp: stamps.value(i),
            run_id: runs.value(i).to_string(),
            endpoint: endpoints.value(i).to_string(),
            content_hash: hashes.value(i).to_string(),
            doc: docs.value(i).to_string(),
        })
        .collect())
}

/// An ordered stream of rows.
pub enum RowStream {
    Store {
        store: SharedStore,
        collection: Collection,
        after: Option<ScanCursor>,
        /// Stop after this stamp (inclusive).
        upto: Stamp,
        /// Documents per page, adapted so a page stays near [`PAGE_BYTES`].
        page: usize,
        buffer: VecDeque<Row>,
        done: bool,
    },
    File {
        stream: BoxStream<'static, Result<RecordBatch>>,
        place: String,
        buffer: VecDeque<Row>,
    },
}

const PAGE_BYTES: usize = 2 * 1024 * 1024;
const FIRST_PAGE: usize = 256;
const MAX_PAGE: usize = 5000;

impl RowStream {
    pub fn store(
        store: SharedStore,
        collection: Collection,
        after: Option<ScanCursor>,
        upto: Stamp,
    ) -> RowStream {
        RowStream::Store {
            store,
            collection,
            after,
            upto,
            page: FIRST_PAGE,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    pub fn file(stream: BoxStream<'static, Result<RecordBatch>>, place: String) -> RowStream {
        RowStream::File {
            stream,
            place,
            buffer: VecDeque::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Row>> {
        match self {
            RowStream::Store {
                store,
                collection,
                after,
                upto,
                page,
                buffer,
                done,
            } => {
                while buffer.is_empty() && !*done {
                    let scan = store.scan_text(*collection, after.as_ref(), *page);
                    let docs = Stage::LandingRead.time_async(scan).await?;
                    *done = docs.len() < *page;
                    if let Some(last) = docs.last() {
                        *after = Some((last.ingested_at, last.id.clone()));
                    }
                    let rows: Vec<Row> = docs.into_iter().map(Row::from_stored).collect();
                    if !rows.is_empty() {
                        let bytes: usize = rows.iter().map(|r| r.doc.len()).sum();
                        let average = (bytes / rows.len()).max(1);
                        *page = (PAGE_BYTES / average).clamp(16, MAX_PAGE);
                    }
                    for row in rows {
                        if row.stamp > *upto {
                            *done = true;
                            break;
                        }
                        buffer.push_back(row);
                    }
                }
                Ok(buffer.pop_front())
            }
            RowStream::File {
                stream,
                place,
                buffer,
            } => {
                while buffer.is_empty() {
                    match stream.next().await {
                        Some(batch) => buffer.extend(rows_of(&batch?, place)?),
                        None => return Ok(None),
                    }
                }
                Ok(buffer.pop_front())
            }
        }
    }
}

/// The k-way merge of ordered sources, in `(stamp, id)` order, each version
/// once: the same version from the store and from a rewritten file is one
/// row.
pub struct Merge {
    heads: Vec<(Option<Row>, RowStream)>,
    started: bool,
    last: Option<(Stamp, String)>,
}

impl Merge {
    pub fn new(sources: Vec<RowStream>) -> Merge {
        Merge {
            heads: sources.into_iter().map(|s| (None, s)).collect(),
            started: false,
            last: None,
        }
    }

    pub async fn next(&mut self) -> Result<Option<Row>> {
        if !self.started {
            for (head, source) in &mut self.heads {
                *head = source.next().await?;
            }
            self.started = true;
        }
        loop {
            let Some(i) = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(i, (head, _))| head.as_ref().map(|r| (i, r.key())))
                .min_by(|a, b| a.1.cmp(&b.1))
                .map(|(i, _)| i)
            else {
                return Ok(None);
            };
            let (head, source) = &mut self.heads[i];
            let row = std::mem::replace(head, source.next().await?).expect("chosen head");
            if self
                .last
                .as_ref()
                .is_some_and(|(s, id)| (*s, id.as_str()) == row.key())
            {
                continue;
            }
            self.last = Some((row.stamp, row.id.clone()));
            return Ok(Some(row));
        }
    }
}
